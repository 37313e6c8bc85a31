//! The web console's static files, embedded in the binary.
//!
//! `GET /` serves `assets/console.html` (see the router); the page loads its
//! script modules and style sheet from `/assets/...`, answered here from
//! strings compiled into the binary. No file is read at run time and the
//! page needs no network access beyond this server.
//!
//! The page and its assets are served with [`security_headers`]: a
//! `Content-Security-Policy` that allows scripts, styles and connections
//! to this server only, no inline script and no framing, plus `nosniff`
//! and `Referrer-Policy: no-referrer`. So the page holds no inline script
//! or style attribute (the theme is applied by `theme.js`).

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::ApiError;

/// Every embedded asset: name under `/assets/`, content type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "theme.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/theme.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/console/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/console.js"),
    ),
    (
        "sse.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/sse.js"),
    ),
    (
        "render.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/render.js"),
    ),
    (
        "ansi.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/ansi.js"),
    ),
    (
        "fields.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/fields.js"),
    ),
    (
        "view.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/view.js"),
    ),
    (
        "download.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/download.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/charts.js"),
    ),
    (
        "history.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/history.js"),
    ),
];

/// The `/assets/{file}` route, for merging into the main router.
pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/assets/{file}", get(asset))
}

/// The console's `Content-Security-Policy`: everything from this server
/// only, no inline script or style, no plugins, never framed. `data:`
/// images are for the page's empty favicon.
pub(super) const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Adds the console's security headers (see the module header) to a
/// response of the page or an asset.
pub(super) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (HeaderName::from_static("x-frame-options"), "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::not_found(format!("no asset named {file:?}")))?;
    // `no-cache` makes the browser revalidate, so a new binary's page never
    // runs with an old script; the files are small.
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        *body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    #[test]
    fn console_page_references_only_embedded_assets() {
        let page = include_str!("../../assets/console.html");
        for (name, _, body) in ASSETS {
            assert!(!body.is_empty(), "{name} is empty");
        }
        // Every `/assets/x` the page or a module names must be embedded.
        let mut sources: Vec<&str> = vec![page];
        sources.extend(ASSETS.iter().map(|(_, _, body)| *body));
        for text in sources {
            for (i, _) in text.match_indices("/assets/") {
                let rest = &text[i + "/assets/".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                    .collect();
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == name),
                    "/assets/{name} is not embedded"
                );
            }
        }
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "the page must not load anything from elsewhere"
        );
        // The CSP allows no inline script, style or handler.
        for script in page.split("<script").skip(1) {
            let tag = script.split('>').next().unwrap_or_default();
            assert!(tag.contains("src="), "inline script: <script{tag}>");
        }
        assert!(!page.contains("<style") && !page.contains(" style=\""));
        assert!(!page.contains(" onclick=") && !page.contains(" onload="));
    }
}
