//! Publishing: `POST /channels/{channel}` (one event, or one event per
//! NDJSON line) and `POST /api/broadcast`.
//!
//! Check first, body last: everything the request head decides (who the
//! caller is, the right to publish there, the channel, `?event=`, the
//! `Content-Encoding`) is checked by an extractor ([`PublishHead`],
//! [`BroadcastHead`]) before one byte of the body is read, so a caller
//! without the right gets its 401/403 whatever it sends. The body is then
//! read by [`super::body::read`] (bounded, with a deadline, decompressed)
//! and parsed here, completely, into [`NewEvent`]s before anything reaches
//! the hub: a request is either published whole or refused with nothing
//! published. NDJSON lines are counted before any is parsed. Which channels
//! clients may publish to is the hub's
//! [`ChannelKind::accepts_client_publish`]; this module only turns the
//! answer into a status.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::body::{self, BodyLimits, ContentEncoding};
use super::protocol::{BulkPublishAnswer, PublishAnswer};
use super::{ApiError, AppState};
use crate::auth::{Caller, Right};
use crate::hub::{ChannelKind, ChannelName};

/// Longest event type accepted from publishers, in characters.
pub(super) const MAX_EVENT_TYPE: usize = 64;

/// Event type of `POST /api/broadcast` events.
const BROADCAST_EVENT_TYPE: &str = "broadcast";

/// One event as a client asked to publish it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NewEvent {
    /// The SSE event type (checked by [`check_event_type`]).
    pub event_type: String,
    /// The data, exactly as sent (the hub normalises line breaks).
    pub data: String,
}

/// How a publish body is read, from its `Content-Type`. Shippers (Vector's
/// and Fluent Bit's `http` outputs, syslog-ng's `http()`) send their
/// records as they are: a JSON object without `data` is published whole
/// (see [`parse_value`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    /// Anything not JSON: the body is the data.
    Text,
    /// `application/json` or `*+json`: `{"event", "data"}`, or an array
    /// of values (see [`parse_value`]), one event per element.
    Json,
    /// `application/x-ndjson` (or `application/ndjson`): one event per
    /// line.
    Ndjson,
}

impl BodyFormat {
    fn of(headers: &HeaderMap) -> BodyFormat {
        let Some(mime) = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
        else {
            return BodyFormat::Text;
        };
        let mime = mime.trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/x-ndjson" | "application/ndjson" => BodyFormat::Ndjson,
            "application/json" => BodyFormat::Json,
            m if m.ends_with("+json") => BodyFormat::Json,
            _ => BodyFormat::Text,
        }
    }
}

/// The JSON form of an event: a publish body, or one NDJSON line.
#[derive(serde::Deserialize)]
struct JsonEvent {
    event: Option<String>,
    data: serde_json::Value,
}

/// What of a JSON object decides how it is published: whether it has
/// `data`, and its `event` if that is text (the rest is skipped, not kept).
#[derive(serde::Deserialize)]
struct ObjectShape {
    #[serde(default)]
    event: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    data: bool,
}

/// `true` for a field that is there, whatever its value (`null` too).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    <serde::de::IgnoredAny as serde::Deserialize>::deserialize(d).map(|_| true)
}

impl JsonEvent {
    /// The event, with `default_type` when none is named. Non-string data
    /// is sent as compact JSON.
    fn into_event(self, default_type: &str) -> Result<NewEvent, ApiError> {
        let event_type = match self.event {
            Some(event) => {
                check_event_type(&event)?;
                event
            }
            None => default_type.to_string(),
        };
        let data = match self.data {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        Ok(NewEvent { event_type, data })
    }
}

/// Checks an event type given by a publisher: 400 `invalid event type`
/// (empty, too long, CR/LF/NUL) or `reserved event type` (see
/// [`crate::sse::is_reserved_event_type`]).
pub(super) fn check_event_type(event: &str) -> Result<(), ApiError> {
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
    if crate::sse::is_reserved_event_type(event) {
        return Err(ApiError::bad_request(
            "reserved event type",
            format!(
                "event type {event:?} is sent by the server alone ({}); choose another",
                crate::sse::RESERVED_EVENT_TYPES.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The channel of `POST /channels/{channel}`, if clients may publish to it.
///
/// # Errors
/// 400 for a bad name; 403 for a log stream or the broadcast channel.
fn publish_target(name: &str) -> Result<ChannelName, ApiError> {
    let channel = ChannelName::parse(name)?;
    match channel.kind() {
        kind if kind.accepts_client_publish() => Ok(channel),
        ChannelKind::Log => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read-only channel",
            format!("{channel} carries a log stream and cannot be published to"),
        )),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "reserved channel",
            format!(
                "{channel} is written only by the server: send broadcasts to POST /api/broadcast"
            ),
        )),
    }
}

/// The event type of `?event=`, checked, or the default one.
fn query_event_type(query: Option<&str>) -> Result<String, ApiError> {
    let query_type = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "event")
        .map(|(_, v)| v.into_owned());
    match query_type {
        Some(event) => {
            check_event_type(&event)?;
            Ok(event)
        }
        None => Ok(crate::sse::DEFAULT_EVENT_TYPE.to_string()),
    }
}

/// What `POST /channels/{channel}` asks for, checked from the request head
/// alone (the extractor runs before the body is read).
#[derive(Debug)]
pub(super) struct PublishHead {
    /// The channel, one clients may publish to.
    channel: ChannelName,
    /// `?event=`, or `message`.
    default_type: String,
    /// How the body is read (`Content-Type`).
    format: BodyFormat,
    /// How the body is encoded (`Content-Encoding`).
    encoding: ContentEncoding,
}

impl FromRequestParts<Arc<AppState>> for PublishHead {
    type Rejection = ApiError;

    /// # Errors
    /// 401/403 without the right to publish on the channel (before
    /// anything else is looked at); 400 bad channel name or `?event=`; 403
    /// a log stream or `broadcast`; 415 an unsupported `Content-Encoding`.
    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<PublishHead, ApiError> {
        let caller = Caller::from_request_parts(parts, app).await?;
        let checked = async {
            let Path(name) = Path::<String>::from_request_parts(parts, app)
                .await
                .map_err(|e| ApiError::bad_request("invalid channel name", e.body_text()))?;
            // First: a caller without the right learns nothing about the
            // channel, whatever it sends.
            app.auth.authorize(&caller, Right::Publish(&name))?;
            Ok(PublishHead {
                channel: publish_target(&name)?,
                default_type: query_event_type(parts.uri.query())?,
                format: BodyFormat::of(&parts.headers),
                encoding: ContentEncoding::of(&parts.headers)?,
            })
        };
        checked.await.map_err(|e| app.refused(e))
    }
}

/// `POST /api/broadcast` from a caller with the broadcast right, checked
/// from the request head alone.
#[derive(Debug)]
pub(super) struct BroadcastHead {
    /// How the body is encoded (`Content-Encoding`).
    encoding: ContentEncoding,
}

impl FromRequestParts<Arc<AppState>> for BroadcastHead {
    type Rejection = ApiError;

    /// # Errors
    /// 401/403 without the broadcast right; 415 an unsupported
    /// `Content-Encoding`.
    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<BroadcastHead, ApiError> {
        let caller = Caller::from_request_parts(parts, app).await?;
        let checked = app
            .auth
            .authorize(&caller, Right::Broadcast)
            .map_err(ApiError::from)
            .and_then(|()| ContentEncoding::of(&parts.headers));
        match checked {
            Ok(encoding) => Ok(BroadcastHead { encoding }),
            Err(e) => Err(app.refused(e)),
        }
    }
}

/// What a publish request asks for.
#[derive(Debug)]
enum PublishRequest {
    /// One event (text or JSON body).
    One(NewEvent),
    /// Every line of an NDJSON body, in order (at least one).
    Batch(Vec<NewEvent>),
}

/// Parses a publish request's body (read whole, within the limits) into
/// events.
///
/// # Errors
/// 413 for an NDJSON body of more than `max_events` (`--history`) lines,
/// counted before any is parsed; 400 for a bad event type, bad JSON, a bad
/// NDJSON line (named by its number) or a body that is not UTF-8.
fn parse_request(
    format: BodyFormat,
    default_type: String,
    body: Bytes,
    max_events: usize,
) -> Result<PublishRequest, ApiError> {
    match format {
        BodyFormat::Ndjson => {
            let lines = count_lines(&body);
            if lines > max_events {
                return Err(too_many(format!("{lines} events"), max_events));
            }
            parse_ndjson(&body, &default_type, lines).map(PublishRequest::Batch)
        }
        BodyFormat::Json => {
            let text = std::str::from_utf8(&body).map_err(|e| {
                ApiError::bad_request("invalid UTF-8", format!("the body must be UTF-8 text: {e}"))
            })?;
            if text.trim_ascii_start().starts_with('[') {
                let elements = count_elements(text.as_bytes(), max_events);
                if elements > max_events {
                    return Err(too_many(
                        format!("more than {max_events} events"),
                        max_events,
                    ));
                }
                return parse_array(text, &default_type, elements).map(PublishRequest::Batch);
            }
            // One object keeps its meaning: `{"event", "data"}`, `data`
            // required (shippers send arrays or NDJSON).
            let event: JsonEvent = serde_json::from_str(text).map_err(|e| {
                ApiError::bad_request(
                    "invalid JSON",
                    format!("expected {{\"event\": ..., \"data\": ...}} or an array: {e}"),
                )
            })?;
            event.into_event(&default_type).map(PublishRequest::One)
        }
        BodyFormat::Text => {
            let data = String::from_utf8(body.into()).map_err(|e| {
                ApiError::bad_request("invalid UTF-8", format!("the body must be UTF-8 text: {e}"))
            })?;
            Ok(PublishRequest::One(NewEvent {
                event_type: default_type,
                data,
            }))
        }
    }
}

/// 413: a batch of more events than the history keeps per channel.
fn too_many(what: String, max_events: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "batch too large",
        format!(
            "the body holds {what}, more than the {max_events} events \
             the history keeps per channel (--history): send smaller batches"
        ),
    )
}

/// The elements of a JSON array body, counted without parsing it (one
/// pass, no allocation): commas at the top level of the array, outside
/// strings. Stops counting past `max` (the body is then refused whole). A
/// body that is not valid JSON is counted approximately and then refused
/// by the parser.
fn count_elements(body: &[u8], max: usize) -> usize {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let (mut count, mut seen) = (0usize, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => {
                count += 1;
                if count > max {
                    return count;
                }
            }
            _ => {}
        }
        if !seen && !b.is_ascii_whitespace() && (depth > 1 || (depth == 1 && b != b'[')) {
            seen = true;
        }
    }
    count + usize::from(seen)
}

/// Parses a JSON array body: one event per element (see [`parse_value`]),
/// in order. `elements`: the count of [`count_elements`], for the room to
/// keep.
///
/// # Errors
/// 400 for a body that is not a JSON array, naming the first bad element
/// (numbered from 1); 400 `no events` for an empty array.
fn parse_array(text: &str, default_type: &str, elements: usize) -> Result<Vec<NewEvent>, ApiError> {
    let values: Vec<&serde_json::value::RawValue> = serde_json::from_str(text).map_err(|e| {
        ApiError::bad_request("invalid JSON", format!("expected a JSON array: {e}"))
    })?;
    let mut events = Vec::with_capacity(elements.min(values.len()));
    for (index, value) in values.iter().enumerate() {
        let event = parse_value(value.get(), default_type).map_err(|mut e| {
            e.detail = format!("element {}: {}", index + 1, e.detail);
            e
        })?;
        events.push(event);
    }
    if events.is_empty() {
        return Err(ApiError::bad_request(
            "no events",
            "the JSON array is empty: send one JSON string or object per element",
        ));
    }
    Ok(events)
}

/// The non-blank lines of an NDJSON body (see [`parse_ndjson`]), counted
/// without parsing them (one pass, no allocation).
fn count_lines(body: &[u8]) -> usize {
    let mut count = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len())) {
        if !body[start..end].trim_ascii().is_empty() {
            count += 1;
        }
        start = end + 1;
    }
    count
}

/// Parses an NDJSON body: one event per line, each a JSON string (the
/// data) or an object `{"event", "data"}`. Lines are numbered from 1 and
/// end with LF or CRLF; blank lines are skipped; the last line needs no
/// line end. `lines`: the count of [`count_lines`], for the room to keep.
///
/// # Errors
/// 400 naming the first bad line; 400 `no events` when every line is blank.
fn parse_ndjson(body: &[u8], default_type: &str, lines: usize) -> Result<Vec<NewEvent>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = 1 + memchr::memchr_iter(b'\n', &body[..e.valid_up_to()]).count();
        ApiError::bad_request(
            "invalid UTF-8",
            format!("line {line}: the body must be UTF-8 text"),
        )
    })?;
    let mut events = Vec::with_capacity(lines);
    for (index, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim_ascii().is_empty() {
            continue;
        }
        let event = parse_line(line, default_type).map_err(|mut e| {
            e.detail = format!("line {}: {}", index + 1, e.detail);
            e
        })?;
        events.push(event);
    }
    if events.is_empty() {
        return Err(ApiError::bad_request(
            "no events",
            "the NDJSON body holds no line: send one JSON string or {\"event\", \"data\"} object per line",
        ));
    }
    Ok(events)
}

/// Parses one non-blank NDJSON line (see [`parse_value`]).
fn parse_line(line: &str, default_type: &str) -> Result<NewEvent, ApiError> {
    parse_value(line.trim_ascii(), default_type)
}

/// One JSON value of a publish body (an NDJSON line, or an element of a
/// JSON array) as an event:
/// - a string is the data;
/// - an object with `data` is `{"event", "data"}` (non-string data is sent
///   as compact JSON; `event`, if given, is the type);
/// - an object without `data` is a shipper's record, published whole: its
///   compact JSON text (keys in the order sent) is the data, with the
///   default type. If its `event` names a reserved type, it is refused
///   all the same, so a record can never look like one.
///
/// # Errors
/// 400 `invalid JSON` for bad JSON or another kind of value; 400 for a bad
/// or reserved event type.
fn parse_value(text: &str, default_type: &str) -> Result<NewEvent, ApiError> {
    let invalid = |e: serde_json::Error| ApiError::bad_request("invalid JSON", e.to_string());
    match text.as_bytes().first().copied().unwrap_or(b' ') {
        b'"' => Ok(NewEvent {
            event_type: default_type.to_string(),
            data: serde_json::from_str(text).map_err(invalid)?,
        }),
        b'{' => {
            let shape: ObjectShape = serde_json::from_str(text).map_err(invalid)?;
            if shape.data {
                return serde_json::from_str::<JsonEvent>(text)
                    .map_err(invalid)?
                    .into_event(default_type);
            }
            if let Some(serde_json::Value::String(event)) = &shape.event {
                if crate::sse::is_reserved_event_type(event) {
                    check_event_type(event)?;
                }
            }
            Ok(NewEvent {
                event_type: default_type.to_string(),
                data: compact_json(text),
            })
        }
        first => {
            let what = match first {
                b'[' => "an array",
                b'-' | b'0'..=b'9' => "a number",
                b'n' => "null",
                b't' | b'f' => "a boolean",
                _ => "something that is not JSON",
            };
            Err(ApiError::bad_request(
                "invalid JSON",
                format!("expected a JSON string or object, got {what}"),
            ))
        }
    }
}

/// Valid JSON `text` without the whitespace between its tokens (strings,
/// their escapes and the order of keys as sent).
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// `POST /channels/{channel}`: publish one event, or with an NDJSON body
/// one event per line.
///
/// The head is checked (see [`PublishHead`]) before the body is read; a
/// refusal is answered at once (the rest of the body is then discarded
/// behind it, see [`body::answer_then_discard`]).
pub(super) async fn handle(
    State(app): State<Arc<AppState>>,
    head: Result<PublishHead, ApiError>,
    version: Version,
    body: Body,
) -> Result<Response, ApiError> {
    let head = match head {
        Ok(head) => head,
        Err(refused) => {
            return Ok(body::answer_then_discard(
                refused,
                body,
                BodyLimits::of(&app.config),
                version,
            )
            .await)
        }
    };
    let PublishHead {
        channel,
        default_type,
        format,
        encoding,
    } = head;
    let mut body = body;
    let parsed = async {
        let bytes = body::read(&mut body, encoding, BodyLimits::of(&app.config)).await?;
        parse_request(format, default_type, bytes, app.config.history)
    };
    let request = match parsed.await {
        Ok(request) => request,
        Err(e) => {
            let refused = app.refused(e);
            return Ok(body::answer_then_discard(
                refused,
                body,
                BodyLimits::of(&app.config),
                version,
            )
            .await);
        }
    };
    match request {
        PublishRequest::One(event) => {
            let published = app
                .publish_and_count(&channel, &event.event_type, &event.data)
                .await?;
            Ok(Json(PublishAnswer {
                id: published.id,
                channel: &channel,
                subscribers: published.subscribers,
            })
            .into_response())
        }
        PublishRequest::Batch(events) => {
            let batch = app.publish_batch_and_count(&channel, &events).await?;
            Ok(Json(BulkPublishAnswer {
                channel: &channel,
                first_id: batch.first_id,
                last_id: batch.last_id,
                count: batch.count,
                subscribers: batch.subscribers,
            })
            .into_response())
        }
    }
}

/// `POST /api/broadcast`: a JSON object delivered to every SSE client as
/// `event: broadcast`, kept in channel `broadcast` for resume. The right is
/// checked (see [`BroadcastHead`]) before the body is read.
pub(super) async fn broadcast(
    State(app): State<Arc<AppState>>,
    head: Result<BroadcastHead, ApiError>,
    version: Version,
    body: Body,
) -> Result<Response, ApiError> {
    let head = match head {
        Ok(head) => head,
        Err(refused) => {
            return Ok(body::answer_then_discard(
                refused,
                body,
                BodyLimits::of(&app.config),
                version,
            )
            .await)
        }
    };
    let mut body = body;
    let bytes = match body::read(&mut body, head.encoding, BodyLimits::of(&app.config)).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let refused = app.refused(e.into());
            return Ok(body::answer_then_discard(
                refused,
                body,
                BodyLimits::of(&app.config),
                version,
            )
            .await);
        }
    };
    let text = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(_)) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Ok(_) => return Err(app.refused(ApiError::bad_request(
            "invalid JSON",
            "the body must be a JSON object such as {\"message\": \"...\", \"timestamp\": \"...\"}",
        ))),
        Err(e) => return Err(app.refused(ApiError::bad_request("invalid JSON", e.to_string()))),
    };
    let channel = ChannelName::broadcast();
    let published = app
        .publish_and_count(&channel, BROADCAST_EVENT_TYPE, &text)
        .await?;
    Ok(Json(PublishAnswer {
        id: published.id,
        channel: &channel,
        subscribers: published.subscribers,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prop_assert;
    use proptest::prop_assert_eq;

    fn ndjson(body: &[u8]) -> Result<Vec<(String, String)>, String> {
        parse_ndjson(body, "message", 0)
            .map(|events| events.into_iter().map(|e| (e.event_type, e.data)).collect())
            .map_err(|e| format!("{}: {}", e.error, e.detail))
    }

    fn pair(t: &str, d: &str) -> (String, String) {
        (t.to_string(), d.to_string())
    }

    #[test]
    fn event_types() {
        assert!(check_event_type("sensor").is_ok());
        assert!(check_event_type(&"x".repeat(64)).is_ok());
        for bad in ["", "a\nb", "a\rb", "a\0b", &"x".repeat(65)] {
            assert_eq!(
                check_event_type(bad).unwrap_err().error,
                "invalid event type"
            );
        }
        for reserved in ["reset", "token-expired", "broadcast"] {
            let refused = check_event_type(reserved).unwrap_err();
            assert_eq!(
                (refused.status, refused.error),
                (StatusCode::BAD_REQUEST, "reserved event type")
            );
        }
        assert!(check_event_type("Reset").is_ok());
    }

    #[test]
    fn ndjson_lines_are_strings_or_event_objects() {
        let body = b"\"a\"\r\n\n{\"event\": \"t\", \"data\": \"b\"}\n  \n{\"data\": [1, {\"x\": null}]}\n\"last\"";
        assert_eq!(
            ndjson(body).unwrap(),
            [
                pair("message", "a"),
                pair("t", "b"),
                pair("message", "[1,{\"x\":null}]"),
                pair("message", "last")
            ]
        );
    }

    #[test]
    fn a_bad_ndjson_line_is_named() {
        for (body, expected) in [
            (&b"\"a\"\n{\"data\": 1\n"[..], "invalid JSON: line 2: "),
            (
                b"\n\n42\n",
                "invalid JSON: line 3: expected a JSON string or object, got a number",
            ),
            (
                b"[1]",
                "invalid JSON: line 1: expected a JSON string or object, got an array",
            ),
            (
                b"\"a\"\nnull",
                "invalid JSON: line 2: expected a JSON string or object, got null",
            ),
            (
                b"true",
                "invalid JSON: line 1: expected a JSON string or object, got a boolean",
            ),
            (
                b"{\"event\": \"reset\", \"message\": \"x\"}",
                "reserved event type: line 1: ",
            ),
            (
                b"{\"data\": 1, \"event\": 2}",
                "invalid JSON: line 1: invalid type: integer `2`",
            ),
            (b"\"a\" \"b\"", "invalid JSON: line 1: trailing characters"),
            (
                b"{\"event\": \"reset\", \"data\": 1}",
                "reserved event type: line 1: event type \"reset\" is sent by the server alone",
            ),
            (b"\"ok\"\n\"\xff\"", "invalid UTF-8: line 2: "),
            (b"\n\n\r\n", "no events: "),
            (b"", "no events: "),
        ] {
            let got = ndjson(body).unwrap_err();
            assert!(got.starts_with(expected), "{body:?}: {got}");
        }
    }

    #[test]
    fn objects_without_data_are_published_whole() {
        // Vector's `http` sink (json codec, newline_delimited framing) and
        // Fluent Bit's `http` output (`format json_lines`).
        let body = b"{\"message\":\"x\",\"host\":\"h\",\"timestamp\":\"2026-12-07T06:00:00Z\"}\n\
            { \"date\": 1733550000.100000, \"log\": \"a \\\" b\" , \"event\": \"login\" }\n\
            {\"data\": null}";
        assert_eq!(
            ndjson(body).unwrap(),
            [
                pair(
                    "message",
                    r#"{"message":"x","host":"h","timestamp":"2026-12-07T06:00:00Z"}"#
                ),
                pair(
                    "message",
                    r#"{"date":1733550000.100000,"log":"a \" b","event":"login"}"#
                ),
                pair("message", "null"),
            ]
        );
    }

    #[test]
    fn a_json_array_is_one_event_per_element() {
        let parse = |body: &'static [u8], max| {
            parse_request(
                BodyFormat::Json,
                "message".into(),
                Bytes::from_static(body),
                max,
            )
        };
        // Fluent Bit's `http` output with `format json`.
        let fluent = br#"[{"date":1733550000.100000,"log":"x"},{"date":1733550001.5,"log":"y"}]"#;
        let Ok(PublishRequest::Batch(events)) = parse(fluent, 10) else {
            panic!("a batch")
        };
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(
            data,
            [
                r#"{"date":1733550000.100000,"log":"x"}"#,
                r#"{"date":1733550001.5,"log":"y"}"#
            ]
        );
        let Ok(PublishRequest::Batch(mixed)) =
            parse(b" [\"s\", {\"event\": \"t\", \"data\": [1, 2]}]\n", 10)
        else {
            panic!("a batch")
        };
        assert_eq!(
            (mixed[1].event_type.as_str(), mixed[1].data.as_str()),
            ("t", "[1,2]")
        );
        for (body, max, error, detail) in [
            (
                &br#"[1,2,3]"#[..],
                2,
                "batch too large",
                "more than 2 events",
            ),
            (b"[]", 2, "no events", ""),
            (
                b"[\"a\", 7]",
                5,
                "invalid JSON",
                "element 2: expected a JSON string or object, got a number",
            ),
            (
                b"[\"a\", {\"event\": \"reset\", \"data\": 1}]",
                5,
                "reserved event type",
                "element 2: ",
            ),
            (b"[\"a\"", 5, "invalid JSON", "expected a JSON array"),
        ] {
            let Err(e) = parse(body, max) else {
                panic!("{body:?} refused")
            };
            assert_eq!(e.error, error, "{body:?}: {}", e.detail);
            assert!(e.detail.contains(detail), "{body:?}: {}", e.detail);
        }
        // One object keeps its meaning: `data` required.
        let Ok(PublishRequest::One(one)) = parse(b"{\"data\": {\"m\": 1}}", 1) else {
            panic!("one event")
        };
        assert_eq!(one.data, r#"{"m":1}"#);
        let Err(e) = parse(b"{\"message\": \"m\"}", 1) else {
            panic!("refused")
        };
        assert_eq!(e.error, "invalid JSON");
    }

    #[test]
    fn array_elements_are_counted_at_the_top_level_only() {
        assert_eq!(count_elements(b"[]", 10), 0);
        assert_eq!(count_elements(b" [ ] ", 10), 0);
        assert_eq!(count_elements(b"[1]", 10), 1);
        assert_eq!(count_elements(br#"[{"a":[1,2],"b":"x,]\","},"y,"]"#, 10), 2);
        assert_eq!(
            count_elements(&[&b"["[..], &b"1,".repeat(1000), b"1]"].concat(), 10),
            11
        );
    }

    proptest::proptest! {
        #[test]
        fn hostile_json_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let body = Bytes::from(body);
            let _ = parse_request(BodyFormat::Json, "message".into(), body.clone(), 8);
            let _ = parse_request(BodyFormat::Ndjson, "message".into(), body, 8);
        }

        #[test]
        fn compact_text_is_the_same_json(value in proptest_json()) {
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            let compact = compact_json(&pretty);
            prop_assert_eq!(serde_json::from_str::<serde_json::Value>(&compact).unwrap(), value);
            prop_assert!(!compact.contains('\n'));
            let elements = format!("[{compact},{pretty}]");
            prop_assert_eq!(count_elements(elements.as_bytes(), 10), 2);
        }
    }

    fn proptest_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[ -~\\n\\t\"\\\\é,\\[\\]{}]{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z ,\"]{0,4}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn ndjson_lines_are_counted_without_blank_ones() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"\n \r\n\t\n"), 0);
        assert_eq!(count_lines(b"a\n\nb\r\n  \nc"), 3);
        assert_eq!(count_lines(b"a\nb\n"), 2);
        assert_eq!(count_lines(&b"x\n".repeat(1000)), 1000);
    }

    #[test]
    fn too_many_ndjson_lines_are_refused_before_parsing() {
        let body = Bytes::from_static(b"\"a\"\n\"b\"\nnot json\n");
        let refused =
            parse_request(BodyFormat::Ndjson, "message".into(), body.clone(), 2).unwrap_err();
        assert_eq!(
            (refused.status, refused.error),
            (StatusCode::PAYLOAD_TOO_LARGE, "batch too large")
        );
        let parsed = parse_request(BodyFormat::Ndjson, "message".into(), body, 3).unwrap_err();
        assert_eq!(parsed.error, "invalid JSON");
    }

    #[test]
    fn body_format_follows_the_content_type() {
        let of = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            BodyFormat::of(&h)
        };
        assert_eq!(of("application/x-ndjson"), BodyFormat::Ndjson);
        assert_eq!(of("Application/NDJSON; charset=utf-8"), BodyFormat::Ndjson);
        assert_eq!(of("application/json"), BodyFormat::Json);
        assert_eq!(of("application/cloudevents+json"), BodyFormat::Json);
        assert_eq!(of("text/plain"), BodyFormat::Text);
        assert_eq!(BodyFormat::of(&HeaderMap::new()), BodyFormat::Text);
    }

    #[test]
    fn publish_targets_are_ordinary_channels_only() {
        assert!(publish_target("news").is_ok());
        assert_eq!(publish_target("-x").unwrap_err().status, 400);
        let log = publish_target("log:app").unwrap_err();
        assert_eq!(
            (log.status, log.error),
            (StatusCode::FORBIDDEN, "read-only channel")
        );
        let broadcast = publish_target("broadcast").unwrap_err();
        assert_eq!(
            (broadcast.status, broadcast.error),
            (StatusCode::FORBIDDEN, "reserved channel")
        );
    }
}
