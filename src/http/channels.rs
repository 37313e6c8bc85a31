//! Channel endpoints: subscribe (`/realtime/{channel}`, `/events`),
//! publish (`POST /channels/{channel}`) and broadcast (`POST /api/broadcast`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;

use super::{stream, ApiError, AppState, Framing, StreamParams};
use crate::hub::{validate_channel_name, ChannelRequest, BROADCAST_CHANNEL, LOG_PREFIX};

/// Longest event type accepted from publishers, in characters.
pub const MAX_EVENT_TYPE: usize = 64;

/// Event type the server uses to report missed events; publishers may not.
const RESERVED_EVENT_TYPE: &str = "reset";

/// Checks a channel name for use in a subscription; log channels must name
/// an existing log stream.
async fn channel_request(
    app: &AppState,
    name: &str,
    tail: Option<usize>,
) -> Result<ChannelRequest, ApiError> {
    validate_channel_name(name)?;
    if let Some(log) = name.strip_prefix(LOG_PREFIX) {
        if !app.log_exists(log).await? {
            return Err(ApiError::not_found(format!(
                "no log stream named {log:?}; see /api/streams"
            )));
        }
        return Ok(ChannelRequest::new(
            name,
            tail.unwrap_or(app.config.backlog),
        ));
    }
    Ok(ChannelRequest::new(name, tail.unwrap_or(0)))
}

/// `GET /realtime/{channel}`: SSE of one channel, created on first use.
pub async fn realtime(
    State(app): State<Arc<AppState>>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = StreamParams::parse(query.as_deref(), &headers)?;
    let request = channel_request(&app, &channel, params.tail).await?;
    let sse = app.open_stream(vec![request], params, Framing::Plain, Some(channel))?;
    Ok(stream::response(sse))
}

/// `GET /events?channel=A&channel=B`: several channels and log streams on
/// one connection, each event's data wrapped as `{"channel", "data"}`.
pub async fn events(
    State(app): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut params = StreamParams::parse(query.as_deref(), &headers)?;
    if params.channels.is_empty() {
        return Err(ApiError::bad_request(
            "no channel",
            "name at least one channel: /events?channel=A&channel=log:NAME",
        ));
    }
    let mut requests = Vec::with_capacity(params.channels.len());
    for name in std::mem::take(&mut params.channels) {
        requests.push(channel_request(&app, &name, params.tail).await?);
    }
    let sse = app.open_stream(requests, params, Framing::Envelope, None)?;
    Ok(stream::response(sse))
}

/// Checks an event type given by a publisher.
fn check_event_type(event: &str) -> Result<(), ApiError> {
    let bad = |detail: String| Err(ApiError::bad_request("invalid event type", detail));
    if event.is_empty() {
        return bad("the event type is empty".into());
    }
    if event.chars().count() > MAX_EVENT_TYPE {
        return bad(format!(
            "the event type is longer than {MAX_EVENT_TYPE} characters"
        ));
    }
    if event.contains(['\r', '\n', '\0']) {
        return bad("the event type contains CR, LF or NUL".into());
    }
    if event == RESERVED_EVENT_TYPE {
        return bad("`reset` is reserved for the server's missed-events notice".into());
    }
    Ok(())
}

/// Turns a body rejection (too large, unreadable) into a JSON error.
fn body_error(rejection: BytesRejection, max_body: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body too large",
            format!("the body is larger than the limit of {max_body} bytes (--max-body)"),
        );
    }
    ApiError::new(rejection.status(), "unreadable body", rejection.body_text())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        })
}

/// The JSON form of a publish body.
#[derive(serde::Deserialize)]
struct JsonPublish {
    event: Option<String>,
    data: serde_json::Value,
}

/// `POST /channels/{channel}`: publish one event.
pub async fn publish(
    State(app): State<Arc<AppState>>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (event, data) = parse_publish(&app, &channel, query.as_deref(), &headers, body)
        .map_err(|e| app.refused(e))?;
    let published = app.publish(&channel, &event, &data).await?;
    Ok(Json(serde_json::json!({
        "id": published.id,
        "channel": channel,
        "subscribers": published.subscribers,
    })))
}

/// Checks a publish request and extracts its event type and data.
fn parse_publish(
    app: &AppState,
    channel: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(String, String), ApiError> {
    validate_channel_name(channel)?;
    if channel.starts_with(LOG_PREFIX) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read-only channel",
            format!("{channel} carries a log stream and cannot be published to"),
        ));
    }
    let body = body.map_err(|r| body_error(r, app.config.max_body))?;
    let mut event = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "event")
        .map(|(_, v)| v.into_owned());
    let data = if is_json(headers) {
        let parsed: JsonPublish = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "invalid JSON",
                format!("expected {{\"event\": ..., \"data\": ...}}: {e}"),
            )
        })?;
        if parsed.event.is_some() {
            event = parsed.event;
        }
        match parsed.data {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        }
    } else {
        String::from_utf8(body.to_vec()).map_err(|e| {
            ApiError::bad_request("invalid UTF-8", format!("the body must be UTF-8 text: {e}"))
        })?
    };
    let event = event.unwrap_or_else(|| crate::sse::DEFAULT_EVENT_TYPE.to_string());
    check_event_type(&event)?;
    Ok((event, data))
}

/// `POST /api/broadcast`: a JSON object delivered to every SSE client as
/// `event: broadcast`, kept in channel `broadcast` for resume.
pub async fn broadcast(
    State(app): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = body.map_err(|r| app.refused(body_error(r, app.config.max_body)))?;
    let text = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(_)) => String::from_utf8_lossy(&body).trim().to_string(),
        Ok(_) => return Err(app.refused(ApiError::bad_request(
            "invalid JSON",
            "the body must be a JSON object such as {\"message\": \"...\", \"timestamp\": \"...\"}",
        ))),
        Err(e) => return Err(app.refused(ApiError::bad_request("invalid JSON", e.to_string()))),
    };
    let published = app.publish(BROADCAST_CHANNEL, "broadcast", &text).await?;
    Ok(Json(serde_json::json!({
        "id": published.id,
        "channel": BROADCAST_CHANNEL,
        "subscribers": published.subscribers,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types() {
        assert!(check_event_type("sensor").is_ok());
        assert!(check_event_type(&"x".repeat(64)).is_ok());
        for bad in ["", "a\nb", "a\rb", "a\0b", "reset", &"x".repeat(65)] {
            assert!(check_event_type(bad).is_err(), "{bad:?}");
        }
    }
}
