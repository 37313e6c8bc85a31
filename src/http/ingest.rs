//! The HTTP edge of ingest (`/loki/api/v1/push`, `/v1/logs`, `GET /ready`):
//! who may push, checked from the request head before one byte of body is
//! read ([`IngestHead`]), and committing parsed records
//! ([`commit_records`]) all or nothing, in order.
//!
//! Each protocol's handler: take an `IngestHead`, read the body with
//! `body::read` (bounded by `--max-body` decoded and `--body-timeout`),
//! parse it with its `crate::ingest` module into `Record`s, then call
//! `commit_records`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Version};
use axum::response::{IntoResponse, Response};

use super::body::{self, BodyLimits, ContentEncoding};
use super::{ApiError, AppState};
use crate::auth::{Caller, Right};
use crate::hub::{ChannelKind, ChannelName, Creator};
use crate::ingest::{self, Record};

/// An ingest request whose caller may push, checked from the head alone.
#[derive(Debug)]
pub(super) struct IngestHead {
    /// Who sends.
    pub caller: Caller,
    /// `?channel=NAME`: every record goes there.
    pub channel: Option<ChannelName>,
    /// `Content-Type`, lower-case, without parameters (`""` when absent).
    pub content_type: String,
    /// `Content-Encoding`, lower-case, trimmed (`""` when absent).
    pub content_encoding: String,
}

impl FromRequestParts<Arc<AppState>> for IngestHead {
    type Rejection = ApiError;

    /// # Errors
    /// 401/403 for a caller who may publish nowhere (or, with `?channel=`,
    /// not there), before anything else is looked at; then 400 for a bad
    /// `?channel=` name and 403 for a log stream or `broadcast`.
    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<IngestHead, ApiError> {
        let caller = Caller::from_request_parts(parts, app).await?;
        let checked = || -> Result<IngestHead, ApiError> {
            let explicit = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .find(|(k, _)| k == "channel")
                .map(|(_, v)| v.into_owned());
            let channel = match explicit {
                Some(name) => {
                    app.auth.authorize(&caller, Right::Publish(&name))?;
                    let channel = ChannelName::parse(&name)?;
                    if channel.kind() != ChannelKind::Ordinary {
                        return Err(ApiError::new(
                            StatusCode::FORBIDDEN,
                            "reserved channel",
                            format!("{channel} cannot take ingested records"),
                        ));
                    }
                    Some(channel)
                }
                None => {
                    app.auth.authorize(&caller, Right::PublishAny)?;
                    None
                }
            };
            Ok(IngestHead {
                caller: caller.clone(),
                channel,
                content_type: header_text(&parts.headers, header::CONTENT_TYPE, true),
                content_encoding: header_text(&parts.headers, header::CONTENT_ENCODING, false),
            })
        };
        checked().map_err(|e| app.refused(e))
    }
}

/// A header's value, lower-case and trimmed; with `strip_params`, without
/// `;` parameters. `""` when absent or not text.
fn header_text(headers: &HeaderMap, name: header::HeaderName, strip_params: bool) -> String {
    let value = headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let value = if strip_params {
        value.split(';').next().unwrap_or("")
    } else {
        value
    };
    value.trim().to_ascii_lowercase()
}

/// What [`commit_records`] published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Committed {
    /// Records published.
    pub records: usize,
}

/// Publishes `records` (in order) to their channels ([`ingest::channel_for`]),
/// after checking each record and the caller's publish right on each
/// channel. Answers once the hub has committed them (with `--data-dir
/// --fsync always`: on disk).
///
/// # Errors
/// 400 for a record that can never be accepted (too many labels); 403
/// for a channel the caller may not publish to; 413 for more records than
/// the history holds; 503 (with `Retry-After`) when the hub cannot take
/// them now. Nothing is published on error.
pub(super) async fn commit_records(
    app: &AppState,
    head: &IngestHead,
    records: Vec<Record>,
) -> Result<Committed, ApiError> {
    let received = ingest::now_ns();
    let mut events: Vec<(ChannelName, String)> = Vec::with_capacity(records.len());
    for record in &records {
        record
            .check()
            .map_err(|e| app.refused(ApiError::bad_request("invalid records", e.to_string())))?;
        let channel = ingest::channel_for(head.channel.as_ref(), &record.labels);
        events.push((channel, record.event_data(received)));
    }
    let mut authorized: std::collections::HashSet<&ChannelName> = Default::default();
    for (channel, _) in &events {
        if !authorized.contains(channel) {
            app.auth
                .authorize(&head.caller, Right::Publish(channel))
                .map_err(|e| app.refused(e.into()))?;
            authorized.insert(channel);
        }
    }
    if events.is_empty() {
        // A request without records (shippers send them: an empty
        // OTLP export, a Loki push of empty streams) is taken as is.
        return Ok(Committed { records: 0 });
    }
    let events: Vec<(&ChannelName, &str, &str)> = events
        .iter()
        .map(|(channel, data)| (channel, ingest::EVENT_TYPE, data.as_str()))
        .collect();
    // One unit across channels: consecutive ids in record order, all or
    // nothing; channels it creates are on the ingest budget.
    let batch = app
        .hub
        .publish_multi(&events, Creator::Ingest)
        .await
        .map_err(|e| app.refused(e.into()))?;
    app.metrics.events_published.inc_by(batch.count as u64);
    Ok(Committed {
        records: records.len(),
    })
}

/// `GET /ready`: 200 once the server serves (Vector's health check).
pub(super) async fn ready() -> &'static str {
    "ready\n"
}

/// How an OTLP answer is encoded: as the request was (OTLP/HTTP asks the
/// answer, error or not, to be in the request's content type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OtlpFormat {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (OTLP JSON).
    Json,
    /// Anything else: refused with 415 and tailcast's own error JSON.
    Unsupported,
}

impl OtlpFormat {
    fn of(headers: &HeaderMap) -> OtlpFormat {
        match header_text(headers, header::CONTENT_TYPE, true).as_str() {
            "application/x-protobuf" | "application/protobuf" => OtlpFormat::Protobuf,
            "application/json" => OtlpFormat::Json,
            _ => OtlpFormat::Unsupported,
        }
    }
}

/// An OTLP error answer: the status and headers of the [`ApiError`]
/// (`Retry-After`, `WWW-Authenticate`, ...), with a `google.rpc.Status`
/// body in the request's content type, as the OTLP/HTTP specification
/// asks.
struct OtlpError {
    error: ApiError,
    format: OtlpFormat,
}

impl IntoResponse for OtlpError {
    fn into_response(self) -> Response {
        let code = grpc_code(self.error.status);
        let message = format!("{}: {}", self.error.error, self.error.detail);
        let format = self.format;
        let mut response = self.error.into_response();
        let (content_type, bytes) = match format {
            OtlpFormat::Protobuf => (
                "application/x-protobuf",
                ingest::otlp::status_protobuf(code, &message),
            ),
            OtlpFormat::Json => (
                "application/json",
                ingest::otlp::status_json(code, &message).into_bytes(),
            ),
            OtlpFormat::Unsupported => return response,
        };
        let headers = response.headers_mut();
        headers.remove(header::CONTENT_LENGTH);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        *response.body_mut() = Body::from(bytes);
        response
    }
}

/// The `google.rpc.Code` closest to an HTTP status.
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 => 5,             // NOT_FOUND
        408 => 4,             // DEADLINE_EXCEEDED
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 2,               // UNKNOWN
    }
}

/// `POST /v1/logs`: OTLP/HTTP logs, an `ExportLogsServiceRequest` as
/// protobuf (`application/x-protobuf`) or OTLP JSON (`application/json`),
/// optionally gzip, deflate or zstd (`Content-Encoding`).
///
/// The head is checked ([`IngestHead`]: 401/403), then the content type
/// (415), before the body is read; a refusal is answered at once and the
/// rest of the body discarded behind it. Then the body is read (413 on
/// its decoded size, 408), parsed (400 naming what is wrong) and
/// committed all or nothing (503 with `Retry-After` when the hub cannot
/// take it). Success: `200` with an empty `ExportLogsServiceResponse` in
/// the request's content type; errors carry a `google.rpc.Status` in it.
pub(super) async fn otlp_logs(
    State(app): State<Arc<AppState>>,
    head: Result<IngestHead, ApiError>,
    headers: HeaderMap,
    version: Version,
    body: Body,
) -> Response {
    let format = OtlpFormat::of(&headers);
    let otlp_error = |error: ApiError| OtlpError { error, format };
    let refused_from_head = match (head, format) {
        (Err(refused), _) => Err(refused),
        (Ok(_), OtlpFormat::Unsupported) => Err(app.refused(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type",
            "send OTLP logs as application/x-protobuf or application/json",
        ))),
        (Ok(head), _) => match ContentEncoding::of(&headers) {
            Ok(encoding) => Ok((head, encoding)),
            Err(e) => Err(app.refused(e)),
        },
    };
    let (head, encoding) = match refused_from_head {
        Ok(checked) => checked,
        Err(refused) => {
            return body::answer_then_discard(
                otlp_error(refused),
                body,
                BodyLimits::of(&app.config),
                version,
            )
            .await
        }
    };
    let mut body = body;
    let parsed = async {
        let bytes = body::read(&mut body, encoding, BodyLimits::of(&app.config)).await?;
        let records = match format {
            OtlpFormat::Json => ingest::otlp::parse_json(&bytes),
            _ => ingest::otlp::parse_protobuf(&bytes),
        };
        records.map_err(|e| ApiError::bad_request("invalid OTLP logs", e.to_string()))
    };
    let records = match parsed.await {
        Ok(records) => records,
        Err(e) => {
            let refused = otlp_error(app.refused(e));
            return body::answer_then_discard(refused, body, BodyLimits::of(&app.config), version)
                .await;
        }
    };
    if let Err(e) = commit_records(&app, &head, records).await {
        return otlp_error(e).into_response();
    }
    match format {
        OtlpFormat::Json => (
            [(header::CONTENT_TYPE, "application/json")],
            ingest::otlp::RESPONSE_JSON,
        )
            .into_response(),
        _ => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            ingest::otlp::response_protobuf(),
        )
            .into_response(),
    }
}

/// `POST /loki/api/v1/push`: Loki push, protobuf (snappy block-compressed,
/// with or without `Content-Encoding: snappy`) or JSON (optionally gzip,
/// deflate, zstd or snappy), answered `204` once every record is
/// committed.
///
/// The head is checked (see [`IngestHead`]) before the body is read; a
/// refusal is answered at once and the rest of the body discarded behind
/// it.
///
/// # Errors
/// 415 for a `Content-Type` other than JSON or protobuf, or an unknown
/// `Content-Encoding`; 413 for a body over `--max-body` (on the wire,
/// decompressed, or as a snappy header claims before decompressing); 400
/// for a body that does not parse (naming what and where) or a record
/// with too many labels; then as [`commit_records`].
pub(super) async fn loki_push(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
    head: Result<IngestHead, ApiError>,
    version: axum::http::Version,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<axum::response::Response, ApiError> {
    // Imports here rather than at the top: each protocol's handler is
    // appended to this file on its own branch.
    use super::body::ContentEncoding;
    use axum::response::IntoResponse as _;
    use ingest::loki::{self, Format, SnappyError};

    let head = match head {
        Ok(head) => head,
        Err(refused) => {
            return Ok(super::body::answer_then_discard(
                refused,
                body,
                BodyLimits::of(&app.config),
                version,
            )
            .await)
        }
    };
    let limits = BodyLimits::of(&app.config);
    let mut body = body;
    let parsed = async {
        let format = Format::of(&head.content_type).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported content type",
                format!(
                    "Content-Type {:?}: send application/x-protobuf (snappy-compressed PushRequest) \
                     or application/json",
                    head.content_type
                ),
            )
        })?;
        // `snappy` is Loki's own content coding: the body is read as it
        // is and decompressed here, where its claimed size is checked first.
        let snappy = head.content_encoding == "snappy";
        let encoding = if snappy {
            ContentEncoding::Identity
        } else {
            ContentEncoding::of(&headers).map_err(|_| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported content encoding",
                    format!(
                        "Content-Encoding {:?}: send the body with snappy, gzip, deflate, zstd or none",
                        head.content_encoding
                    ),
                )
            })?
        };
        let bytes = super::body::read(&mut body, encoding, limits).await?;
        let bytes = if snappy || format == Format::Protobuf {
            loki::unsnap(&bytes, limits.max_bytes)
                .map_err(|e| match e {
                    SnappyError::TooLarge { .. } => ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body too large",
                        e.to_string(),
                    ),
                    SnappyError::Corrupt(_) => {
                        ApiError::bad_request("invalid Loki push", e.to_string())
                    }
                })?
                .into()
        } else {
            bytes
        };
        match format {
            Format::Protobuf => loki::parse_protobuf(&bytes),
            Format::Json => loki::parse_json(&bytes),
        }
        .map_err(|e| ApiError::bad_request("invalid Loki push", e.to_string()))
    };
    let records = match parsed.await {
        Ok(records) => records,
        Err(e) => {
            let refused = app.refused(e);
            return Ok(super::body::answer_then_discard(refused, body, limits, version).await);
        }
    };
    commit_records(&app, &head, records).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use prost::Message as _;

    async fn answer(error: ApiError, format: OtlpFormat) -> (Response, Vec<u8>) {
        let (parts, body) = OtlpError { error, format }.into_response().into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (Response::from_parts(parts, Body::empty()), bytes)
    }

    #[tokio::test]
    async fn otlp_errors_keep_status_and_headers_with_a_status_body() {
        let busy = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try later");
        let (response, body) = answer(busy(), OtlpFormat::Protobuf).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/x-protobuf"
        );
        let status = ingest::otlp::proto::Status::decode(&body[..]).unwrap();
        assert_eq!(
            (status.code, status.message.as_str()),
            (14, "unavailable: try later")
        );

        let (response, body) = answer(busy(), OtlpFormat::Json).await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(body, br#"{"code":14,"message":"unavailable: try later"}"#);

        let (response, body) =
            answer(ApiError::bad_request("bad", "x"), OtlpFormat::Unsupported).await;
        assert_eq!(response.status(), 400);
        assert_eq!(body, br#"{"error":"bad","detail":"x"}"#);
    }
}
