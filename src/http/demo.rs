//! The tutorial's demo streams: `/stream`, one shared feed of typed events
//! that runs only while someone listens, and `/stream-numbers`, a count
//! from 1 to 10 per connection.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use serde::Serialize;

use super::params::SseParams;
use super::protocol::to_json;
use super::sse_body;
use super::{ApiError, AppState};
use crate::auth::{Caller, Right};
use crate::hub::{ChannelName, ChannelRequest, Hub};
use crate::metrics::Metrics;
use crate::sse;

/// Hub channel carrying the shared `/stream` feed.
pub(super) const DEMO_CHANNEL: &str = "stream";

/// The channel name whose subscribe right `/stream-numbers` needs (no
/// hub channel: each connection counts by itself).
pub(super) const NUMBERS_CHANNEL: &str = "stream-numbers";

/// [`DEMO_CHANNEL`] as a channel name.
fn demo_channel() -> ChannelName {
    ChannelName::parse(DEMO_CHANNEL).expect("DEMO_CHANNEL is a valid channel name")
}

/// Data of the demo feed's `message` events.
#[derive(Serialize)]
struct DemoMessage {
    message: String,
    counter: u64,
    timestamp: String,
}

/// Data of the demo feed's `sensor` events: made-up readings.
#[derive(Serialize)]
struct SensorReading {
    temperature: f64,
    humidity: f64,
    pressure: f64,
    timestamp: String,
}

/// Data of the demo feed's `heartbeat` events.
#[derive(Serialize)]
struct DemoHeartbeat {
    status: &'static str,
    timestamp: String,
}

/// Data of the demo feed's `notification` events.
#[derive(Serialize)]
struct DemoNotification {
    title: &'static str,
    message: String,
    level: &'static str,
    timestamp: String,
}

/// Data of the `connected` event that opens `/stream`.
#[derive(Serialize)]
struct Connected {
    message: &'static str,
    timestamp: String,
}

/// The four kinds of event of the `/stream` feed.
#[derive(Debug, Clone, Copy)]
enum DemoEvent {
    Message,
    Sensor,
    Heartbeat,
    Notification,
}

/// Starts the task that publishes the `/stream` feed into channel `stream`:
/// `message` every 2 s, `sensor` every 4 s, `heartbeat` every 5 s,
/// `notification` every 8 s, but only while the channel has subscribers.
/// An idle server publishes nothing: no fake events in any history, no ids
/// used up, `events_per_s` stays 0.
pub(crate) fn spawn_demo_feed(
    hub: Hub,
    metrics: Arc<Metrics>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) {
    let channel = demo_channel();
    tracker.spawn(async move {
        let start = tokio::time::Instant::now();
        let every = |secs| {
            tokio::time::interval_at(start + Duration::from_secs(secs), Duration::from_secs(secs))
        };
        let (mut message, mut sensor, mut heartbeat, mut notification) =
            (every(2), every(4), every(5), every(8));
        let mut counter: u64 = 0;
        loop {
            let kind = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = message.tick() => DemoEvent::Message,
                _ = sensor.tick() => DemoEvent::Sensor,
                _ = heartbeat.tick() => DemoEvent::Heartbeat,
                _ = notification.tick() => DemoEvent::Notification,
            };
            if !has_subscribers(&hub).await {
                continue;
            }
            let (event, data) = match kind {
                DemoEvent::Message => {
                    counter += 1;
                    (
                        "message",
                        to_json(&DemoMessage {
                            message: format!("Hello from tailcast #{counter}"),
                            counter,
                            timestamp: now(),
                        }),
                    )
                }
                DemoEvent::Sensor => {
                    let mut rng = rand::rng();
                    (
                        "sensor",
                        to_json(&SensorReading {
                            temperature: f64::from(rng.random_range(180..300)) / 10.0,
                            humidity: f64::from(rng.random_range(300..700)) / 10.0,
                            pressure: f64::from(rng.random_range(9900..10300)) / 10.0,
                            timestamp: now(),
                        }),
                    )
                }
                DemoEvent::Heartbeat => (
                    "heartbeat",
                    to_json(&DemoHeartbeat {
                        status: "alive",
                        timestamp: now(),
                    }),
                ),
                DemoEvent::Notification => {
                    let levels = ["info", "success", "warning", "error"];
                    let level = levels[rand::rng().random_range(0..levels.len())];
                    (
                        "notification",
                        to_json(&DemoNotification {
                            title: "Demo notification",
                            message: format!("Something happened ({level})"),
                            level,
                            timestamp: now(),
                        }),
                    )
                }
            };
            // With Redis, one node of the cluster publishes the feed.
            let lead = match hub.scale_out() {
                Some(scale_out) => scale_out.lead(DEMO_CHANNEL).await,
                None => true,
            };
            if lead && hub.publish(&channel, event, &data).await.is_ok() {
                metrics.events_published.inc();
            }
        }
    });
}

/// Whether anyone subscribes to the demo channel (`/stream`, or `/events`
/// naming it). Asked once per tick, about once a second; the hub has no
/// per-channel query, so this walks its channel list (with Redis: the
/// cluster's, every node's subscribers counted).
async fn has_subscribers(hub: &Hub) -> bool {
    hub.channels()
        .await
        .iter()
        .any(|c| c.name == DEMO_CHANNEL && c.subscribers > 0)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `GET /stream`: `connected` first, then the shared demo feed.
pub(super) async fn demo_feed(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth
        .authorize(&caller, Right::Subscribe(DEMO_CHANNEL))?;
    let params = SseParams::parse(query.as_deref(), &headers, app.config.max_regex)?;
    let request = ChannelRequest::new(demo_channel(), params.tail.unwrap_or(0));
    let mut body = app.subscribe_one(&caller, request, params).await?;
    let connected = Connected {
        message: "Connected to tailcast demo stream",
        timestamp: now(),
    };
    body.initial
        .push(sse::encode_event(None, "connected", &to_json(&connected)));
    Ok(sse_body::response(body))
}

/// `GET /stream-numbers`: 1 to 10, one a second, then `event: close` with
/// a `retry:` field, then the response ends.
pub(super) async fn stream_numbers(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth
        .authorize(&caller, Right::Subscribe(NUMBERS_CHANNEL))?;
    let retry_ms = app.config.retry_ms;
    let numbers = futures_util::stream::unfold(1u32, move |n| async move {
        if n > 11 {
            return None;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let frame = if n <= 10 {
            sse::encode_event(None, "message", &n.to_string())
        } else {
            let mut close = format!("retry: {retry_ms}\n").into_bytes();
            close.extend_from_slice(&sse::encode_event(None, "close", "done"));
            Bytes::from(close)
        };
        Some((frame, n + 1))
    });
    Ok(sse_body::response(app.local_sse(
        &caller,
        &headers,
        Box::pin(numbers),
        true,
    )?))
}
