//! The HTTP edge of ingest (`/loki/api/v1/push`, `/v1/logs`, `GET /ready`):
#![allow(dead_code)] // the endpoints that use it land on this branch next
//! who may push, checked from the request head before one byte of body is
//! read ([`IngestHead`]), and committing parsed records
//! ([`commit_records`]) all or nothing, in order.
//!
//! Each protocol's handler: take an `IngestHead`, read the body with
//! `body::read` (bounded by `--max-body` decoded and `--body-timeout`),
//! parse it with its `crate::ingest` module into `Record`s, then call
//! `commit_records`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};

use super::body::BodyLimits;
use super::publish::NewEvent;
use super::{ApiError, AppState};
use crate::auth::{Caller, Right};
use crate::hub::{ChannelKind, ChannelName};
use crate::ingest::{self, Record};

/// An ingest request whose caller may push, checked from the head alone.
#[derive(Debug)]
pub struct IngestHead {
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

/// The bounds of an ingest body: `--max-body` (decoded) and
/// `--body-timeout`.
pub fn body_limits(app: &AppState) -> BodyLimits {
    BodyLimits {
        max_bytes: app.config.max_body,
        timeout: app.config.body_timeout,
    }
}

/// What [`commit_records`] published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
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
pub async fn commit_records(
    app: &AppState,
    head: &IngestHead,
    records: Vec<Record>,
) -> Result<Committed, ApiError> {
    let received = ingest::now_ns();
    let mut groups: Vec<(ChannelName, Vec<NewEvent>)> = Vec::new();
    for record in &records {
        record
            .check()
            .map_err(|e| app.refused(ApiError::bad_request("invalid records", e.to_string())))?;
        let channel = ingest::channel_for(head.channel.as_ref(), &record.labels);
        let event = NewEvent {
            event_type: ingest::EVENT_TYPE.to_string(),
            data: record.event_data(received),
        };
        match groups.iter_mut().find(|(name, _)| *name == channel) {
            Some((_, events)) => events.push(event),
            None => groups.push((channel, vec![event])),
        }
    }
    for (channel, _) in &groups {
        app.auth
            .authorize(&head.caller, Right::Publish(channel))
            .map_err(|e| app.refused(e.into()))?;
    }
    // Not yet atomic across channels: one batch per channel (see the
    // ingest issue: a hub-wide batch of several channels).
    for (channel, events) in &groups {
        app.publish_batch(channel, events).await?;
    }
    Ok(Committed {
        records: records.len(),
    })
}

/// `GET /ready`: 200 once the server serves (Vector's health check).
pub async fn ready() -> &'static str {
    "ready\n"
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
pub async fn loki_push(
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
            return Ok(
                super::body::answer_then_discard(refused, body, body_limits(&app), version).await,
            )
        }
    };
    let limits = body_limits(&app);
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
        let bytes = super::body::read(body, encoding, limits).await?;
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
    let records = parsed.await.map_err(|e| app.refused(e))?;
    commit_records(&app, &head, records).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
