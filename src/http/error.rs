//! The one error type of the HTTP edge: a status and a JSON body
//! `{"error": "...", "detail": "..."}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::auth::AuthError;
use crate::hub::HubError;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short machine-friendly summary.
    pub error: &'static str,
    /// What was wrong and what to do, for people.
    pub detail: String,
    /// `WWW-Authenticate` value of a 401.
    pub challenge: Option<&'static str>,
}

impl ApiError {
    /// 400 Bad Request.
    pub(crate) fn bad_request(error: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, detail)
    }

    /// 404 Not Found.
    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found", detail)
    }

    /// Any status.
    pub(crate) fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            detail: detail.into(),
            challenge: None,
        }
    }
}

/// The challenge of a 401 without a token.
const CHALLENGE: &str = "Bearer realm=\"tailcast\"";

/// The challenge of a 401 for a token that is not good.
const CHALLENGE_INVALID: &str = "Bearer realm=\"tailcast\", error=\"invalid_token\"";

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing(detail) => ApiError {
                challenge: Some(CHALLENGE),
                ..ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
            },
            AuthError::Invalid(detail) => ApiError {
                challenge: Some(CHALLENGE_INVALID),
                ..ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
            },
            AuthError::Forbidden(detail) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
            }
            AuthError::BadName(detail) => ApiError::bad_request("invalid channel name", detail),
        }
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::InvalidName { .. } => {
                ApiError::bad_request("invalid channel name", e.to_string())
            }
            HubError::TooManyChannels { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many channels",
                e.to_string(),
            ),
            HubError::TooManyIngestChannels { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many ingest channels",
                e.to_string(),
            ),
            HubError::BatchTooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch too large",
                e.to_string(),
            ),
            HubError::EmptyBatch => ApiError::bad_request("no events", e.to_string()),
            HubError::Unavailable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
            HubError::Claimed { .. } => {
                ApiError::new(StatusCode::CONFLICT, "claimed", e.to_string())
            }
            HubError::Wal(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "event log unavailable",
                e.to_string(),
            ),
            HubError::UnknownId(_) => ApiError::bad_request("unknown id", e.to_string()),
        }
    }
}

/// The JSON body of every error answer.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    detail: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: self.error,
            detail: &self.detail,
        });
        let mut response = (self.status, body).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still be on its way: the connection
            // cannot carry another request (HTTP/2 drops the header and
            // ends only the stream).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ingest_budget_is_a_503_to_retry() {
        let answer = ApiError::from(HubError::TooManyIngestChannels { limit: 3 }).into_response();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.headers()[header::RETRY_AFTER], "5");
    }
}
