//! `GET /metrics`: live host and server figures as SSE, or the Prometheus
//! text exposition, chosen by the `Accept` header.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::protocol::{to_json, MetricsSample};
use super::{sse_body, ApiError, AppState};
use crate::auth::Caller;
use crate::metrics::Metrics;
use crate::sse;

/// How often host figures are sampled and `metrics` events sent.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the one task that samples the host (CPU, memory, network) and the
/// server's rates every second and encodes the `metrics` event once for
/// every `/metrics` subscriber. Returns the receiver of those frames.
pub(crate) fn spawn_host_sampler(
    metrics: Arc<Metrics>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> watch::Receiver<Bytes> {
    let (tx, rx) = watch::channel(Bytes::new());
    tracker.spawn(async move {
        let mut system = sysinfo::System::new();
        let mut networks = sysinfo::Networks::new_with_refreshed_list();
        system.refresh_cpu_usage();
        let mut last = Instant::now();
        let mut last_events = metrics.events_published.get();
        let mut last_errors = publish_errors(&metrics);
        let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            system.refresh_cpu_usage();
            system.refresh_memory();
            networks.refresh(true);
            let secs = last.elapsed().as_secs_f64().max(0.001);
            last = Instant::now();
            let (rx_bytes, tx_bytes) = networks.iter().fold((0u64, 0u64), |(r, t), (_, n)| {
                (r + n.received(), t + n.transmitted())
            });
            let events = metrics.events_published.get();
            let errors = publish_errors(&metrics);
            let sample = MetricsSample {
                timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                cpu_percent: system.global_cpu_usage(),
                memory_used_bytes: system.used_memory(),
                memory_total_bytes: system.total_memory(),
                net_rx_bytes_per_s: rx_bytes as f64 / secs,
                net_tx_bytes_per_s: tx_bytes as f64 / secs,
                connections: metrics.open_sse_streams.get(),
                events_per_s: (events - last_events) as f64 / secs,
                publish_errors_per_s: (errors - last_errors) as f64 / secs,
            };
            last_events = events;
            last_errors = errors;
            tx.send_replace(sse::encode_event(None, "metrics", &to_json(&sample)));
        }
    });
    rx
}

fn publish_errors(metrics: &Metrics) -> u64 {
    metrics.publish_errors_total()
}

/// `GET /metrics`: SSE when the client accepts `text/event-stream`,
/// otherwise the Prometheus (OpenMetrics) text exposition. The SSE form
/// carries metric samples only, never broadcasts: `--metrics-public` opens
/// it to callers who may not read them.
pub(super) async fn metrics(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.authorize_metrics(&caller)?;
    if !super::routes::accepts_event_stream(&headers) {
        let mut response = app.metrics.render().into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        return Ok(response);
    }
    let mut frames = app.host_metrics.clone();
    frames.mark_unchanged();
    let samples = watch_values(frames).boxed();
    Ok(sse_body::response(
        app.local_sse(&caller, &headers, samples, false)?,
    ))
}

/// Each new value of `rx`, as a stream that ends when the sender is gone.
fn watch_values(
    rx: watch::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let frame = rx.borrow_and_update().clone();
        Some((frame, rx))
    })
}
