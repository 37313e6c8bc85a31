//! The tutorial's demo streams: `/stream`, one shared feed of typed events,
//! and `/stream-numbers`, a count from 1 to 10 per connection.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{stream, ApiError, AppState, Framing, StreamParams};
use crate::hub::{ChannelRequest, Hub};
use crate::metrics::Metrics;
use crate::sse;

/// Hub channel carrying the shared `/stream` feed.
pub const DEMO_CHANNEL: &str = "stream";

/// Starts the task that publishes the `/stream` feed into channel `stream`:
/// `message` every 2 s, `sensor` every 4 s, `heartbeat` every 5 s,
/// `notification` every 8 s.
pub fn spawn_demo_feed(
    hub: Hub,
    metrics: Arc<Metrics>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) {
    tracker.spawn(async move {
        let start = tokio::time::Instant::now();
        let every = |secs| tokio::time::interval_at(start + Duration::from_secs(secs), Duration::from_secs(secs));
        let (mut message, mut sensor, mut heartbeat, mut notification) = (every(2), every(4), every(5), every(8));
        let mut counter: u64 = 0;
        loop {
            let (event, data) = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = message.tick() => {
                    counter += 1;
                    ("message", serde_json::json!({"message": format!("Hello from tailcast #{counter}"), "counter": counter, "timestamp": now()}))
                }
                _ = sensor.tick() => {
                    let mut rng = rand::rng();
                    ("sensor", serde_json::json!({
                        "temperature": (rng.random_range(180..300) as f64) / 10.0,
                        "humidity": (rng.random_range(300..700) as f64) / 10.0,
                        "pressure": (rng.random_range(9900..10300) as f64) / 10.0,
                        "timestamp": now(),
                    }))
                }
                _ = heartbeat.tick() => ("heartbeat", serde_json::json!({"status": "alive", "timestamp": now()})),
                _ = notification.tick() => {
                    let levels = ["info", "success", "warning", "error"];
                    let level = levels[rand::rng().random_range(0..levels.len())];
                    ("notification", serde_json::json!({"title": "Demo notification", "message": format!("Something happened ({level})"), "level": level, "timestamp": now()}))
                }
            };
            // With Redis, one node of the cluster publishes the feed.
            if hub.lead(DEMO_CHANNEL).await
                && hub.publish(DEMO_CHANNEL, event, &data.to_string()).await.is_ok()
            {
                metrics.events_published.inc();
            }
        }
    });
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `GET /stream`: `connected` first, then the shared demo feed.
pub async fn stream(
    State(app): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = StreamParams::parse(query.as_deref(), &headers)?;
    let request = ChannelRequest::new(DEMO_CHANNEL, params.tail.unwrap_or(0));
    let mut sse = app.open_stream(
        vec![request],
        params,
        Framing::Plain,
        Some(DEMO_CHANNEL.into()),
    )?;
    let connected =
        serde_json::json!({"message": "Connected to tailcast demo stream", "timestamp": now()});
    sse.initial
        .push(sse::encode_event(None, "connected", &connected.to_string()));
    Ok(stream::response(sse))
}

/// `GET /stream-numbers`: 1 to 10, one a second, then `event: close` with
/// a `retry:` field, then the response ends.
pub async fn stream_numbers(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
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
    Ok(stream::response(
        app.open_local_stream(&headers, Box::pin(numbers))?,
    ))
}
