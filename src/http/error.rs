//! The one error type of the HTTP edge: a status and a JSON body
//! `{"error": "...", "detail": "..."}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::hub::HubError;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short machine-friendly summary.
    pub error: &'static str,
    /// What was wrong and what to do, for people.
    pub detail: String,
}

impl ApiError {
    /// 400 Bad Request.
    pub fn bad_request(error: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, detail)
    }

    /// 404 Not Found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found", detail)
    }

    /// Any status.
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            detail: detail.into(),
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
            HubError::Unavailable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
            HubError::Claimed { .. } => {
                ApiError::new(StatusCode::CONFLICT, "claimed", e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({"error": self.error, "detail": self.detail}));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
