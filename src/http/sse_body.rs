//! Turning a hub [`Subscription`] into an SSE response body ([`SseBody`]).
//!
//! The body is pulled by the connection (the server's lean SSE path, or
//! hyper): the next batch is taken from the hub only when the connection
//! asks for more, so a client that does not read only holds its
//! own cursor back (see the hub's backpressure rules). Each event's bytes
//! were encoded once by the hub and are shared, not copied. Heartbeats come
//! from one shared tick, not a timer per connection: a stream that sent
//! nothing since the previous tick gets `: ping` (so an idle stream sees one
//! every one to two heartbeat intervals).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use regex::Regex;
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::protocol::{to_json, ResetNotice, TokenExpiredNotice};
use crate::hub::{ChannelKind, ChannelName, Delivery, StoredEvent, Subscription};
use crate::metrics::Metrics;
use crate::sse;

/// What an SSE response carries as an event's data: the data as published,
/// or wrapped in the `/events` envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The event's data as published (single-channel endpoints).
    Plain,
    /// `{"channel": ..., "data": ...}` (multiplexed `/events`).
    Envelope,
}

/// Keeps the count of open SSE streams (what `--max-connections` limits)
/// right: decremented when the body is dropped.
pub struct OpenStreamGuard {
    metrics: Arc<Metrics>,
}

impl OpenStreamGuard {
    /// Counts one more open SSE stream.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        metrics.open_sse_streams.inc();
        metrics.streams_opened.inc();
        OpenStreamGuard { metrics }
    }
}

impl Drop for OpenStreamGuard {
    fn drop(&mut self) {
        self.metrics.open_sse_streams.dec();
    }
}

/// Everything one SSE response body needs.
pub struct SseBody {
    /// The hub subscription, already registered.
    pub subscription: Subscription,
    /// Plain or enveloped events.
    pub payload: Payload,
    /// Server-side `?grep` filter.
    pub filter: Option<Filter>,
    /// `retry:` value in ms, sent first.
    pub retry_ms: u64,
    /// Frames sent right after `retry:` (e.g. `/stream`'s `connected`).
    pub initial: Vec<Bytes>,
    /// Frames made for this connection alone (e.g. `/stream-numbers`),
    /// interleaved with the hub's; the response ends when it ends.
    pub local: Option<BoxStream<'static, Bytes>>,
    /// The shared heartbeat tick.
    pub tick: watch::Receiver<u64>,
    /// Ends the stream cleanly on shutdown.
    pub shutdown: CancellationToken,
    /// Server metrics.
    pub metrics: Arc<Metrics>,
    /// The open-stream count guard.
    pub guard: OpenStreamGuard,
    /// When the caller's token stops being accepted: the stream then sends
    /// `event: token-expired` and ends. One timer per authenticated stream,
    /// armed at open; nothing is checked per event.
    pub expiry: Option<Pin<Box<Sleep>>>,
}

/// Which events a `?grep` filter looks at; the others always pass.
#[derive(Debug, Clone)]
pub enum FilterScope {
    /// Events of this channel (single-channel endpoints).
    Channel(ChannelName),
    /// Events of every channel but `broadcast` (`/events`).
    AllButBroadcast,
}

impl FilterScope {
    fn covers(&self, event: &StoredEvent) -> bool {
        match self {
            FilterScope::Channel(channel) => *channel == event.channel,
            FilterScope::AllButBroadcast => event.channel.kind() != ChannelKind::Broadcast,
        }
    }
}

/// A `?grep` filter: events in its scope whose data does not match are
/// skipped.
pub struct Filter {
    /// The events it looks at.
    pub scope: FilterScope,
    /// What the data must match.
    pub regex: Regex,
}

impl Filter {
    fn passes(&self, event: &StoredEvent) -> bool {
        !self.scope.covers(event) || self.regex.is_match(&event.data())
    }
}

struct State {
    body: SseBody,
    pending: VecDeque<Bytes>,
    sent_since_tick: bool,
    /// The body ends once `pending` is written (token expired).
    ending: bool,
}

impl State {
    fn push_batch(&mut self, batch: Vec<Delivery>) {
        let mut delivered = 0;
        let mut bytes = 0;
        for delivery in batch {
            let frame = match delivery {
                Delivery::Event(event) => {
                    if self.body.filter.as_ref().is_some_and(|f| !f.passes(&event)) {
                        continue;
                    }
                    delivered += 1;
                    match self.body.payload {
                        Payload::Plain => event.frame.clone(),
                        Payload::Envelope => event.envelope_frame(),
                    }
                }
                Delivery::Reset { channel, reason } => {
                    self.body.metrics.resets.inc();
                    let notice = ResetNotice {
                        reason,
                        channel: &channel,
                    };
                    sse::encode_event(None, "reset", &to_json(&notice))
                }
            };
            bytes += frame.len();
            self.pending.push_back(frame);
        }
        if bytes > 0 {
            self.sent_since_tick = true;
        }
        self.body.metrics.events_delivered.inc_by(delivered);
        self.body.metrics.bytes_sent.inc_by(bytes as u64);
    }
}

/// The frame sent when the token of a stream expires (no id: the client's
/// `Last-Event-ID` stays on the last event it received).
fn token_expired_frame() -> Bytes {
    let notice = TokenExpiredNotice {
        reason: TokenExpiredNotice::REASON,
    };
    sse::encode_event(None, TOKEN_EXPIRED_EVENT_TYPE, &to_json(&notice))
}

/// Event type of the notice that a stream's token expired.
const TOKEN_EXPIRED_EVENT_TYPE: &str = "token-expired";

/// Waits for the token's expiry (never, without one).
async fn expired(expiry: &mut Option<Pin<Box<Sleep>>>) {
    match expiry {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn next_local(local: &mut Option<BoxStream<'static, Bytes>>) -> Option<Bytes> {
    match local {
        Some(stream) => stream.next().await,
        None => None,
    }
}

/// Builds the `200 text/event-stream` response carrying `body`.
pub fn response(body: SseBody) -> Response {
    let mut pending = VecDeque::with_capacity(4);
    pending.push_back(sse::encode_retry(body.retry_ms));
    pending.extend(body.initial.iter().cloned());
    let state = State {
        body,
        pending,
        sent_since_tick: true,
        ending: false,
    };
    let frames = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(frame) = st.pending.pop_front() {
                return Some((Ok::<Bytes, Infallible>(frame), st));
            }
            if st.ending {
                return None;
            }
            tokio::select! {
                biased;
                _ = st.body.shutdown.cancelled() => return None,
                // Before the hub: a flood of events must not delay it.
                _ = expired(&mut st.body.expiry), if st.body.expiry.is_some() => {
                    st.pending.push_back(token_expired_frame());
                    st.ending = true;
                }
                batch = st.body.subscription.next_batch() => st.push_batch(batch),
                frame = next_local(&mut st.body.local), if st.body.local.is_some() => match frame {
                    Some(frame) => {
                        st.sent_since_tick = true;
                        st.pending.push_back(frame);
                    }
                    None => return None,
                },
                changed = st.body.tick.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    if !st.sent_since_tick {
                        st.pending.push_back(Bytes::from_static(sse::PING));
                    }
                    st.sent_since_tick = false;
                }
            }
        }
    });
    let mut response = Response::new(Body::from_stream(frames));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
