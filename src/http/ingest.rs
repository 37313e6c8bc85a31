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
use super::{ApiError, AppState};
use crate::auth::{Caller, Right};
use crate::hub::{ChannelKind, ChannelName, Creator};
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
    app.hub.flush().await?;
    Ok(Committed {
        records: records.len(),
    })
}

/// `GET /ready`: 200 once the server serves (Vector's health check).
pub async fn ready() -> &'static str {
    "ready\n"
}
