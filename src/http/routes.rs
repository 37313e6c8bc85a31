//! The SSE route table: the one place that says which requests are answered
//! with an event stream.
//!
//! The router registers its SSE `GET` routes from [`SSE_ROUTES`], and the
//! server asks [`is_sse_request`] before routing (the lean HTTP/1.1 path
//! serves exactly those requests, and the per-address stream limit counts
//! them). `/metrics` answers SSE or the Prometheus text by the `Accept`
//! header; its handler decides with [`accepts_event_stream`], the same rule
//! the table uses. So the lean path and the router cannot disagree.

use std::sync::Arc;

use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use axum::Router;

use super::{channels, demo, metrics, AppState};

/// One route whose `GET` may answer an event stream.
pub(crate) struct SseRoute {
    /// The path pattern, in the router's syntax: `{name}` is one non-empty
    /// segment.
    pub pattern: &'static str,
    /// `true`: the answer is SSE only when the request's `Accept` names
    /// `text/event-stream` (see [`accepts_event_stream`]); otherwise always.
    pub negotiated: bool,
    /// The route's handler.
    handler: fn() -> MethodRouter<Arc<AppState>>,
}

/// Every route that answers a `GET` with an event stream.
pub(crate) const SSE_ROUTES: &[SseRoute] = &[
    SseRoute {
        pattern: "/logs/{name}",
        negotiated: false,
        handler: || get(super::logs),
    },
    SseRoute {
        pattern: "/stream-logs",
        negotiated: false,
        handler: || get(super::first_log),
    },
    SseRoute {
        pattern: "/realtime/{channel}",
        negotiated: false,
        handler: || get(channels::realtime),
    },
    SseRoute {
        pattern: "/events",
        negotiated: false,
        handler: || get(channels::events),
    },
    SseRoute {
        pattern: "/stream",
        negotiated: false,
        handler: || get(demo::demo_feed),
    },
    SseRoute {
        pattern: "/stream-numbers",
        negotiated: false,
        handler: || get(demo::stream_numbers),
    },
    SseRoute {
        pattern: "/metrics",
        negotiated: true,
        handler: || get(metrics::metrics),
    },
];

/// The routes of [`SSE_ROUTES`], for [`super::router`].
pub(super) fn sse_router() -> Router<Arc<AppState>> {
    SSE_ROUTES.iter().fold(Router::new(), |router, route| {
        router.route(route.pattern, (route.handler)())
    })
}

/// Whether the request's `Accept` header names `text/event-stream` (any
/// of its values, any position).
pub(crate) fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| memchr::memmem::find(v.as_bytes(), b"text/event-stream").is_some())
}

/// Whether a request is answered with an event stream when it succeeds:
/// a `GET` of a route in [`SSE_ROUTES`] (with `Accept` naming
/// `text/event-stream` for a negotiated one). `path` is the raw
/// (percent-encoded) path, as the router matches it.
pub(crate) fn is_sse_request(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    *method == Method::GET
        && SSE_ROUTES.iter().any(|route| {
            matches_pattern(route.pattern, path)
                && (!route.negotiated || accepts_event_stream(headers))
        })
}

/// Whether `response` is an event stream: `200` with `Content-Type:
/// text/event-stream` (what the SSE routes answer when they succeed).
pub(crate) fn is_event_stream(response: &Response) -> bool {
    response.status() == StatusCode::OK
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// Whether `path` matches `pattern` as the router matches it: literal
/// segments equal, a `{param}` segment any non-empty segment.
fn matches_pattern(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some(w), Some(h)) if w.starts_with('{') && w.ends_with('}') => {
                if h.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(h)) if w == h => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse(method: Method, path: &str, accept: Option<&str>) -> bool {
        let mut headers = HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(header::ACCEPT, a.parse().unwrap());
        }
        is_sse_request(&method, path, &headers)
    }

    #[test]
    fn patterns_match_like_the_router() {
        assert!(matches_pattern("/logs/{name}", "/logs/app"));
        assert!(matches_pattern("/logs/{name}", "/logs/a%2Fb"));
        assert!(!matches_pattern("/logs/{name}", "/logs/"));
        assert!(!matches_pattern("/logs/{name}", "/logs"));
        assert!(!matches_pattern("/logs/{name}", "/logs/a/b"));
        assert!(!matches_pattern("/logs/{name}", "/logs/a/"));
        assert!(matches_pattern("/events", "/events"));
        assert!(!matches_pattern("/events", "/events/"));
        assert!(!matches_pattern("/events", "/eventsx"));
        assert!(!matches_pattern("/events", "//events"));
    }

    #[test]
    fn only_gets_of_sse_routes_are_streams() {
        assert!(sse(Method::GET, "/realtime/news", None));
        assert!(sse(Method::GET, "/events", None));
        assert!(!sse(Method::HEAD, "/events", None));
        assert!(!sse(Method::POST, "/events", None));
        assert!(!sse(Method::GET, "/health", None));
        assert!(!sse(Method::GET, "/channels/news", None));
    }

    #[test]
    fn metrics_is_a_stream_only_when_accepted() {
        assert!(!sse(Method::GET, "/metrics", None));
        assert!(!sse(Method::GET, "/metrics", Some("text/plain")));
        assert!(sse(Method::GET, "/metrics", Some("text/event-stream")));
        assert!(sse(
            Method::GET,
            "/metrics",
            Some("text/html, text/event-stream;q=0.9")
        ));
    }
}
