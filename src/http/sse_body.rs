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

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use regex::Regex;
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, ReusableBoxFuture};

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

/// What woke a stream besides its hub subscription.
enum Wake {
    /// The server is stopping.
    Shutdown,
    /// The heartbeat ticked.
    Tick,
    /// The heartbeat's sender is gone (the server is stopping).
    Closed,
}

/// The type of [`wait_wake`]'s result: the wake and what it waited on,
/// given back for the next wait.
type Woken = (Wake, CancellationToken, watch::Receiver<u64>);

/// Waits for shutdown or the next heartbeat tick, owning both so that the
/// wait is one long-lived future: a stream registers on these two shared
/// wait lists once per heartbeat, not once per batch of events.
async fn wait_wake(shutdown: CancellationToken, mut tick: watch::Receiver<u64>) -> Woken {
    let wake = tokio::select! {
        biased;
        _ = shutdown.cancelled() => Wake::Shutdown,
        changed = tick.changed() => match changed {
            Ok(()) => Wake::Tick,
            Err(_) => Wake::Closed,
        },
    };
    (wake, shutdown, tick)
}

/// Waits for the subscription's next batch, owning it (so that the wait
/// can be kept across polls without borrowing the body). Boxed: an
/// `async fn` keeps its argument twice in its state (rust-lang/rust#62958),
/// and every open stream holds this future for its whole life.
async fn next_batch(mut subscription: Box<Subscription>) -> (Vec<Delivery>, Box<Subscription>) {
    let batch = subscription.next_batch().await;
    (batch, subscription)
}

/// An SSE response body: a hand-written state machine rather than a
/// stream of `async` blocks, so that what it keeps per open stream is its
/// fields and two long-lived waits (the hub's, and shutdown-or-heartbeat's,
/// each in one allocation reused for the stream's life), and no frame
/// queue: a hub batch is turned into frames one at a time as the
/// connection takes them, and its vector is freed once taken.
struct SseStream {
    /// Plain or enveloped events.
    payload: Payload,
    /// Server-side `?grep` filter.
    filter: Option<Filter>,
    /// Frames made for this stream alone, see [`SseBody::local`].
    local: Option<BoxStream<'static, Bytes>>,
    /// Server metrics.
    metrics: Arc<Metrics>,
    /// The open-stream count guard.
    _guard: OpenStreamGuard,
    /// The token's expiry timer, see [`SseBody::expiry`].
    expiry: Option<Pin<Box<Sleep>>>,
    /// Frames made here (`retry:`, the initial frames, a ping, the token's
    /// expiry, a local frame), last to send first; freed once empty.
    own: Vec<Bytes>,
    /// What is left of the hub's last batch.
    batch: std::vec::IntoIter<Delivery>,
    /// Events and bytes of `batch` taken, counted into the metrics once the
    /// batch is done (one update per batch, not per event).
    delivered: u64,
    bytes: u64,
    /// Whether anything was sent since the last heartbeat tick.
    sent_since_tick: bool,
    /// A tick came while other sources were ready: handled once they are not.
    ticked: bool,
    /// The body ends once `own` is sent (token expired).
    ending: bool,
    /// The hub wait, owning the subscription.
    next: ReusableBoxFuture<'static, (Vec<Delivery>, Box<Subscription>)>,
    /// The shutdown-or-heartbeat wait.
    wake: ReusableBoxFuture<'static, Woken>,
}

impl SseStream {
    /// The frame for one delivery, or `None` when the filter skips it.
    fn frame_of(&mut self, delivery: Delivery) -> Option<Bytes> {
        match delivery {
            Delivery::Event(event) => {
                if self.filter.as_ref().is_some_and(|f| !f.passes(&event)) {
                    return None;
                }
                self.delivered += 1;
                Some(match self.payload {
                    Payload::Plain => event.frame.clone(),
                    Payload::Envelope => event.envelope_frame(),
                })
            }
            Delivery::Reset { channel, reason } => {
                self.metrics.resets.inc();
                let notice = ResetNotice {
                    reason,
                    channel: &channel,
                };
                Some(sse::encode_event(None, "reset", &to_json(&notice)))
            }
        }
    }

    /// The next frame already made or in the current batch.
    fn next_ready(&mut self) -> Option<Bytes> {
        if let Some(frame) = self.own.pop() {
            if self.own.is_empty() {
                self.own = Vec::new();
            }
            return Some(frame);
        }
        while let Some(delivery) = self.batch.next() {
            if let Some(frame) = self.frame_of(delivery) {
                self.bytes += frame.len() as u64;
                self.sent_since_tick = true;
                if self.batch.len() == 0 {
                    self.finish_batch();
                }
                return Some(frame);
            }
        }
        self.finish_batch();
        None
    }

    /// Counts the finished batch into the metrics and frees its vector.
    fn finish_batch(&mut self) {
        if self.delivered > 0 {
            self.metrics.events_delivered.inc_by(self.delivered);
        }
        if self.bytes > 0 {
            self.metrics.bytes_sent.inc_by(self.bytes);
        }
        self.delivered = 0;
        self.bytes = 0;
        self.batch = Vec::new().into_iter();
    }
}

impl Drop for SseStream {
    fn drop(&mut self) {
        self.finish_batch();
    }
}

impl http_body::Body for SseStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if let Some(frame) = this.next_ready() {
                return Poll::Ready(Some(Ok(http_body::Frame::data(frame))));
            }
            if this.ending {
                return Poll::Ready(None);
            }
            // In the order of priority: shutdown, the token's expiry (a
            // flood of events must not delay either), the hub, local frames,
            // then the heartbeat.
            if let Poll::Ready((wake, shutdown, tick)) = this.wake.poll(cx) {
                match wake {
                    Wake::Shutdown | Wake::Closed => return Poll::Ready(None),
                    Wake::Tick => this.ticked = true,
                }
                this.wake.set(wait_wake(shutdown, tick));
                continue;
            }
            if let Some(expiry) = this.expiry.as_mut() {
                if expiry.as_mut().poll(cx).is_ready() {
                    this.expiry = None;
                    this.own.push(token_expired_frame());
                    this.ending = true;
                    continue;
                }
            }
            if let Poll::Ready((batch, subscription)) = this.next.poll(cx) {
                this.next.set(next_batch(subscription));
                this.batch = batch.into_iter();
                continue;
            }
            if let Some(local) = this.local.as_mut() {
                match local.poll_next_unpin(cx) {
                    Poll::Ready(Some(frame)) => {
                        this.sent_since_tick = true;
                        this.own.push(frame);
                        continue;
                    }
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => {}
                }
            }
            if std::mem::take(&mut this.ticked) {
                let idle = !std::mem::replace(&mut this.sent_since_tick, false);
                if idle {
                    this.own.push(Bytes::from_static(sse::PING));
                    continue;
                }
            }
            return Poll::Pending;
        }
    }
}

/// Builds the `200 text/event-stream` response carrying `body`.
pub fn response(body: SseBody) -> Response {
    let SseBody {
        subscription,
        payload,
        filter,
        retry_ms,
        initial,
        local,
        tick,
        shutdown,
        metrics,
        guard,
        expiry,
    } = body;
    // Last to send first.
    let mut own = Vec::with_capacity(initial.len() + 1);
    own.extend(initial.into_iter().rev());
    own.push(sse::encode_retry(retry_ms));
    let frames = SseStream {
        payload,
        filter,
        local,
        metrics,
        _guard: guard,
        expiry,
        own,
        batch: Vec::new().into_iter(),
        delivered: 0,
        bytes: 0,
        sent_since_tick: true,
        ticked: false,
        ending: false,
        next: ReusableBoxFuture::new(next_batch(Box::new(subscription))),
        wake: ReusableBoxFuture::new(wait_wake(shutdown, tick)),
    };
    let mut response = Response::new(Body::new(frames));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::FutureExt;
    use http_body_util::BodyExt;

    use super::*;
    use crate::hub::{ChannelRequest, Hub, HubLimits, Start};

    /// The next data frame of `body` as text, or `None` when it ended.
    async fn next(body: &mut Body) -> Option<String> {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("a frame or the end within 5 s")?;
        let data = frame.expect("no error").into_data().expect("a data frame");
        Some(String::from_utf8(data.to_vec()).unwrap())
    }

    /// What an open stream keeps besides its two waits (each one
    /// allocation for the stream's life): guards what an idle HTTP/2
    /// stream or lean connection costs.
    #[test]
    fn an_sse_stream_stays_small() {
        let size = std::mem::size_of::<SseStream>();
        fn size_of_future<F>(_: &F) -> usize {
            std::mem::size_of::<F>()
        }
        let hub = Hub::memory(HubLimits::default());
        let subscription = hub.subscribe(&[], Start::Now).unwrap();
        let (_tick_tx, tick) = watch::channel(0u64);
        let (next, wake) = (
            next_batch(Box::new(subscription)),
            wait_wake(CancellationToken::new(), tick),
        );
        eprintln!(
            "SseStream: {size} bytes; hub wait {} bytes, shutdown-or-tick wait {} bytes",
            size_of_future(&next),
            size_of_future(&wake)
        );
        assert!(size <= 224, "the SSE body grew to {size} bytes");
        // 512 bytes while the subscription was an argument by value (held
        // twice) and a log read was inline in the memory hub's step.
        let hub_wait = size_of_future(&next);
        assert!(hub_wait <= 192, "the hub wait grew to {hub_wait} bytes");
    }

    /// Order: `retry:`, the initial frames, then the hub's events; a tick
    /// after events sends no ping, a tick on a quiet stream does; shutdown
    /// ends the body.
    #[tokio::test]
    async fn frames_come_in_order_with_pings_only_when_quiet_and_end_on_shutdown() {
        let hub = Hub::memory(HubLimits::default());
        let channel = ChannelName::parse("a").unwrap();
        let subscription = hub
            .subscribe(&[ChannelRequest::new(channel.clone(), 0)], Start::Now)
            .unwrap();
        let (tick_tx, tick) = watch::channel(0u64);
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let response = response(SseBody {
            subscription,
            payload: Payload::Plain,
            filter: None,
            retry_ms: 1500,
            initial: vec![Bytes::from_static(b": hello\n\n")],
            local: None,
            tick,
            shutdown: shutdown.clone(),
            metrics: metrics.clone(),
            guard: OpenStreamGuard::new(metrics.clone()),
            expiry: None,
        });
        let mut body = response.into_body();
        assert_eq!(next(&mut body).await.unwrap(), "retry: 1500\n\n");
        assert_eq!(next(&mut body).await.unwrap(), ": hello\n\n");
        hub.publish(&channel, "message", "one").await.unwrap();
        hub.publish(&channel, "message", "two").await.unwrap();
        let first = next(&mut body).await.unwrap();
        assert!(first.ends_with("data: one\n\n"), "{first:?}");
        let second = next(&mut body).await.unwrap();
        assert!(second.ends_with("data: two\n\n"), "{second:?}");
        // Events were sent since the last tick: no ping for this one.
        tick_tx.send_modify(|n| *n += 1);
        assert!(
            body.frame().now_or_never().is_none(),
            "no ping after events"
        );
        // Nothing sent since that tick: the next one pings.
        tick_tx.send_modify(|n| *n += 1);
        assert_eq!(next(&mut body).await.unwrap(), ": ping\n\n");
        hub.publish(&channel, "message", "three").await.unwrap();
        let third = next(&mut body).await.unwrap();
        assert!(third.ends_with("data: three\n\n"), "{third:?}");
        assert_eq!(metrics.events_delivered.get(), 3);
        shutdown.cancel();
        assert_eq!(next(&mut body).await, None);
        assert_eq!(metrics.open_sse_streams.get(), 1, "the body is still held");
        drop(body);
        assert_eq!(metrics.open_sse_streams.get(), 0);
    }
}
