//! Subscribing to channels: `/realtime/{channel}` (one channel) and
//! `/events?channel=A&channel=B` (several, enveloped). Publishing is in
//! [`super::publish`].

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::params::SseParams;
use super::sse_body::{self, FilterScope, Payload};
use super::{ApiError, AppState};
use crate::auth::{Caller, Right};
use crate::hub::{ChannelName, ChannelRequest};

/// Parses a channel name for a subscription; a log channel must name an
/// existing log stream, and defaults to `--backlog` lines of backlog.
async fn channel_request(
    app: &AppState,
    name: &str,
    tail: Option<usize>,
) -> Result<ChannelRequest, ApiError> {
    let channel = ChannelName::parse(name)?;
    let tail = match channel.log_stream() {
        Some(log) => {
            if !app.log_exists(log).await? {
                return Err(ApiError::not_found(format!(
                    "no log stream named {log:?}; see /api/streams"
                )));
            }
            tail.unwrap_or(app.config.backlog)
        }
        None => tail.unwrap_or(0),
    };
    Ok(ChannelRequest::new(channel, tail))
}

/// `GET /realtime/{channel}`: SSE of one channel, created on first use.
pub(super) async fn realtime(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.authorize(&caller, Right::Subscribe(&channel))?;
    let params = SseParams::parse(query.as_deref(), &headers, app.config.max_regex)?;
    let request = channel_request(&app, &channel, params.tail).await?;
    let body = app.subscribe_one(&caller, request, params).await?;
    Ok(sse_body::response(body))
}

/// `GET /events?channel=A&channel=B`: several channels and log streams on
/// one connection, each event's data wrapped as `{"channel", "data"}`. At
/// most `--max-stream-channels` distinct channels.
pub(super) async fn events(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Parsed before the check (it needs the channels), but nothing is
    // compiled: `grep` is compiled by `subscribe_sse`, after it.
    let mut params = SseParams::parse_with_channels(
        query.as_deref(),
        &headers,
        app.config.max_regex,
        app.config.max_stream_channels,
    )?;
    if params.channels.is_empty() {
        return Err(ApiError::bad_request(
            "no channel",
            "name at least one channel: /events?channel=A&channel=log:NAME",
        ));
    }
    // Every name is validated before any right is matched against one;
    // then one refused channel refuses the request, naming it.
    for name in &params.channels {
        ChannelName::parse(name)?;
    }
    for name in &params.channels {
        app.auth.authorize(&caller, Right::Subscribe(name))?;
    }
    let mut requests = Vec::with_capacity(params.channels.len());
    for name in std::mem::take(&mut params.channels) {
        requests.push(channel_request(&app, &name, params.tail).await?);
    }
    let body = app
        .subscribe_sse(
            &caller,
            requests,
            params,
            Payload::Envelope,
            FilterScope::AllButBroadcast,
        )
        .await?;
    Ok(sse_body::response(body))
}
