//! Access control at the HTTP edge: the [`Caller`] extractor every
//! protected handler takes, and the session endpoints that set and clear
//! the session cookie: `__Host-tailcast_token` with `Secure` over HTTPS or
//! with `--cookie-secure` (TLS terminated by a proxy), `tailcast_token`
//! otherwise.
//!
//! The extractor runs inside the shared router, so the lean SSE path and
//! hyper authenticate identically. It authenticates once per request; the
//! handler then asks `app.auth.authorize(&caller, right)` for what it is
//! about to do, before it looks anything up (so a refused request learns
//! nothing and leaves nothing behind). The publish endpoints ask in an
//! extractor of their own (`publish::PublishHead`), before the body is read.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::protocol::{SessionAnswer, SignedOut, TokenAnswer};
use super::{ApiError, AppState};
use crate::auth::{redact, Caller, TokenInfo};
use crate::config::ServeConfig;

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Caller, ApiError> {
        let result = app.auth.authenticate(&parts.headers, &parts.uri).await;
        // The URI may carry ?access_token=: only ever log it redacted.
        match &result {
            Ok(caller) => tracing::debug!(
                "{} {} as {}",
                parts.method,
                redact(&parts.uri.to_string()),
                describe(caller)
            ),
            Err(e) => tracing::debug!(
                "{} {} refused: {e}",
                parts.method,
                redact(&parts.uri.to_string())
            ),
        }
        result.map_err(ApiError::from)
    }
}

/// Who a caller is, for the debug log (never the token).
fn describe(caller: &Caller) -> String {
    match caller {
        Caller::Unrestricted => "anyone (access control off)".into(),
        Caller::Anonymous => "anonymous".into(),
        Caller::Token(info) => match &info.sub {
            Some(sub) => format!("token of {sub:?}"),
            None => "token without sub".into(),
        },
    }
}

/// The answer form of a verified token: `{"sub", "exp", "rights"}`.
fn token_answer(info: &TokenInfo) -> TokenAnswer<'_> {
    TokenAnswer {
        sub: info.sub.as_deref(),
        exp: info.exp,
        rights: &info.rights,
    }
}

/// `GET /api/session`: who the request is authenticated as:
/// `{"access_control": bool, "signed_in": bool, "sub", "exp", "rights"}`.
/// A bad token is a 401 like anywhere else.
pub(super) async fn show(State(app): State<Arc<AppState>>, caller: Caller) -> Response {
    let answer = match &caller {
        Caller::Token(info) => SessionAnswer {
            access_control: true,
            signed_in: true,
            token: Some(token_answer(info)),
        },
        _ => SessionAnswer {
            access_control: app.auth.enabled(),
            signed_in: false,
            token: None,
        },
    };
    Json(answer).into_response()
}

/// `POST /api/session`: takes the token from `Authorization: Bearer`,
/// verifies it and sets it as the session cookie (HttpOnly,
/// SameSite=Strict, Path=/; see [`session_cookie`]) expiring with the
/// token.
/// Answers `{"sub", "exp", "rights"}`.
pub(super) async fn sign_in(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !app.auth.enabled() {
        return Err(ApiError::not_found(
            "access control is off on this server: there is nothing to sign in to",
        ));
    }
    let token = match crate::auth::find_token(&headers, None, None, &[])? {
        Some((token, crate::auth::TokenOrigin::Header)) => token,
        _ => {
            return Err(crate::auth::AuthError::Missing(
                "POST /api/session takes the token as Authorization: Bearer <token>".into(),
            )
            .into())
        }
    };
    let info = app.auth.verify(&token).await.inspect_err(|e| {
        tracing::debug!("POST /api/session refused: {e}");
    })?;
    // The cookie lives as long as the server accepts the token (its `exp`
    // plus the clock leeway), so a request never goes out without it while
    // the token is still good, and an expired one is answered "expired".
    let max_age = info
        .exp
        .saturating_add(crate::auth::LEEWAY_SECS + 1)
        .saturating_sub(chrono::Utc::now().timestamp().max(0) as u64);
    let cookie = session_cookie(&app.config, &token, max_age);
    let mut response = Json(token_answer(&info)).into_response();
    let value = HeaderValue::from_str(&cookie).map_err(|_| {
        ApiError::from(crate::auth::AuthError::Invalid(
            "the token cannot be stored in a cookie".into(),
        ))
    })?;
    response.headers_mut().insert(header::SET_COOKIE, value);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    tracing::debug!(
        "session started for {}",
        describe(&Caller::Token(Arc::new(info)))
    );
    Ok(response)
}

/// `DELETE /api/session`: clears the cookie. Needs no token.
pub(super) async fn sign_out(State(app): State<Arc<AppState>>) -> Response {
    let cookie = session_cookie(&app.config, "", 0);
    let mut response = (StatusCode::OK, Json(SignedOut { signed_in: false })).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The `Set-Cookie` value of the session cookie holding `value` for
/// `max_age` seconds: `__Host-tailcast_token=…; Secure` when served over
/// HTTPS (`--tls-cert`) or with `--cookie-secure`, else `tailcast_token`.
fn session_cookie(config: &ServeConfig, value: &str, max_age: u64) -> String {
    let secure = config.tls_cert.is_some() || config.cookie_secure;
    format!(
        "{}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{}",
        crate::auth::cookie_name(secure),
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_host_prefixed_and_secure_over_https_or_with_cookie_secure() {
        let https = ServeConfig::from_args(["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        let proxied = ServeConfig::from_args(["--cookie-secure"]).unwrap();
        for config in [https, proxied] {
            let cookie = session_cookie(&config, "t", 60);
            assert_eq!(
                cookie,
                "__Host-tailcast_token=t; Max-Age=60; Path=/; HttpOnly; SameSite=Strict; Secure"
            );
        }
        let plain = ServeConfig::from_args::<_, &str>([]).unwrap();
        assert_eq!(
            session_cookie(&plain, "", 0),
            "tailcast_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"
        );
    }
}
