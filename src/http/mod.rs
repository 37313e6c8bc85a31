//! The HTTP interface: routes, request parsing, SSE responses and JSON
//! errors. Only this module knows HTTP status codes and error shapes.

mod assets;
mod channels;
mod demo;
mod error;
mod metrics;
mod stream;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use regex::{Regex, RegexBuilder};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

pub use demo::spawn_demo_feed;
pub use error::ApiError;
pub use metrics::spawn_host_sampler;
pub use stream::{ConnectionGuard, Filter, Framing, SseStream};

use crate::config::ServeConfig;
use crate::hub::{ChannelRequest, Hub, Start, BROADCAST_CHANNEL, LOG_PREFIX};
use crate::metrics::Metrics;
use crate::streams::LogStreams;

/// Largest compiled size of a `?grep=` regex, so a hostile pattern cannot
/// take the server's memory.
const GREP_SIZE_LIMIT: usize = 1 << 20;

/// Shared state of every request handler.
pub struct AppState {
    /// The validated settings.
    pub config: ServeConfig,
    /// Channels, ids, history, fan-out.
    pub hub: Hub,
    /// Followed files.
    pub streams: LogStreams,
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
    /// The shared heartbeat tick: one task bumps it every `--heartbeat`.
    pub tick: watch::Receiver<u64>,
    /// Cancelled on shutdown; ends every stream.
    pub shutdown: CancellationToken,
    /// When the server started, for `/health`.
    pub started: Instant,
    /// The latest `metrics` SSE frame, refreshed every second.
    pub host_metrics: watch::Receiver<bytes::Bytes>,
}

/// The web console page.
const CONSOLE_HTML: &str = include_str!("../../assets/console.html");

/// Builds the router with every route, the JSON 404/405 answers and CORS.
pub fn router(state: Arc<AppState>) -> Router {
    let cors = cors_layer(&state.config.cors_origins);
    let max_body = state.config.max_body;
    let router = Router::new()
        .route("/", get(|| async { Html(CONSOLE_HTML) }))
        .route("/health", get(health))
        .route("/api/streams", get(api_streams))
        .route("/logs/{name}", get(logs))
        .route("/stream-logs", get(stream_logs))
        .route("/realtime/{channel}", get(channels::realtime))
        .route("/events", get(channels::events))
        .route("/channels/{channel}", post(channels::publish))
        .route("/api/broadcast", post(channels::broadcast))
        .route("/stream", get(demo::stream))
        .route("/stream-numbers", get(demo::stream_numbers))
        .route("/metrics", get(metrics::metrics))
        .merge(assets::router())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                format!("{method} is not allowed on this path"),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(Any)
        .expose_headers(Any);
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(Any));
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(layer.allow_origin(AllowOrigin::list(list)))
}

/// Query parameters shared by the SSE endpoints.
#[derive(Debug, Default)]
struct StreamParams {
    tail: Option<usize>,
    grep: Option<Regex>,
    last_event_id: Option<String>,
    channels: Vec<String>,
}

impl StreamParams {
    fn parse(query: Option<&str>, headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut params = StreamParams::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*key {
                "tail" => {
                    let n = value.parse().map_err(|_| {
                        ApiError::bad_request(
                            "invalid tail",
                            format!("tail must be a non-negative integer, got {value:?}"),
                        )
                    })?;
                    params.tail = Some(n);
                }
                "grep" => {
                    let regex = RegexBuilder::new(&value)
                        .size_limit(GREP_SIZE_LIMIT)
                        .build()
                        .map_err(|e| ApiError::bad_request("invalid regex", e.to_string()))?;
                    params.grep = Some(regex);
                }
                "lastEventId" => params.last_event_id = Some(value.into_owned()),
                "channel" => params.channels.push(value.into_owned()),
                _ => {}
            }
        }
        // The header wins: a browser sends it on reconnect, with a newer id
        // than the one fixed in the URL.
        if let Some(id) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
            params.last_event_id = Some(id.to_string());
        }
        Ok(params)
    }

    fn start(&self) -> Start {
        match &self.last_event_id {
            Some(id) => Start::After(id.clone()),
            None => Start::Now,
        }
    }
}

impl AppState {
    /// Subscribes an SSE stream to `channels` (plus the broadcast channel);
    /// `?grep` filters `filter_channel`, or with `None` every channel but
    /// broadcast.
    /// The subscriber is registered before this returns, so before the
    /// client sees the response head; [`stream::response`] turns it into
    /// the response.
    fn open_stream(
        &self,
        mut channels: Vec<ChannelRequest>,
        params: StreamParams,
        framing: Framing,
        filter_channel: Option<String>,
    ) -> Result<SseStream, ApiError> {
        if self.metrics.connections.get() >= self.config.max_sse_streams as i64 {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections",
                format!(
                    "the server holds its limit of {} streams; retry later",
                    self.config.max_sse_streams
                ),
            ));
        }
        channels.push(ChannelRequest {
            implicit: true,
            ..ChannelRequest::new(BROADCAST_CHANNEL, 0)
        });
        let start = params.start();
        if matches!(start, Start::After(_)) {
            self.metrics.resumes.inc();
        }
        let subscription = self.hub.subscribe(&channels, start)?;
        let filter = params.grep.map(|regex| Filter {
            channel: filter_channel,
            regex,
        });
        Ok(SseStream {
            subscription,
            framing,
            filter,
            retry_ms: self.config.retry_ms,
            initial: Vec::new(),
            local: None,
            tick: self.tick.clone(),
            shutdown: self.shutdown.clone(),
            metrics: self.metrics.clone(),
            guard: ConnectionGuard::new(self.metrics.clone()),
        })
    }

    /// Opens an SSE stream whose events are made for this connection alone
    /// (`local`), plus broadcasts.
    fn open_local_stream(
        &self,
        headers: &HeaderMap,
        local: futures_util::stream::BoxStream<'static, bytes::Bytes>,
    ) -> Result<SseStream, ApiError> {
        let mut sse = self.open_stream(
            Vec::new(),
            StreamParams::parse(None, headers)?,
            Framing::Plain,
            None,
        )?;
        sse.local = Some(local);
        Ok(sse)
    }

    /// Whether log stream `name` (without `log:`) exists: followed here,
    /// or, with Redis, anywhere in the cluster.
    async fn log_exists(&self, name: &str) -> Result<bool, ApiError> {
        if self.streams.get(name).is_some() {
            return Ok(true);
        }
        Ok(self.hub.has_channel(&format!("{LOG_PREFIX}{name}")).await?)
    }

    /// Opens the SSE stream of log stream `name`.
    async fn open_log(
        &self,
        name: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let params = StreamParams::parse(query, headers)?;
        if !self.log_exists(name).await? {
            return Err(ApiError::not_found(format!(
                "no log stream named {name:?}; see /api/streams"
            )));
        }
        let channel = format!("{LOG_PREFIX}{name}");
        let request =
            ChannelRequest::new(channel.clone(), params.tail.unwrap_or(self.config.backlog));
        let sse = self.open_stream(vec![request], params, Framing::Plain, Some(channel))?;
        Ok(stream::response(sse))
    }

    /// Publishes one event and counts it (or the refusal).
    async fn publish(
        &self,
        channel: &str,
        event_type: &str,
        data: &str,
    ) -> Result<crate::hub::Published, ApiError> {
        match self.hub.publish(channel, event_type, data).await {
            Ok(published) => {
                self.metrics.events_published.inc();
                Ok(published)
            }
            Err(e) => Err(self.refused(e.into())),
        }
    }

    /// Counts a refused publish by status and passes the error on.
    fn refused(&self, error: ApiError) -> ApiError {
        self.metrics
            .publish_errors
            .get_or_create(&crate::metrics::StatusLabel {
                status: error.status.as_u16(),
            })
            .inc();
        error
    }
}

async fn logs(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.open_log(&name, query.as_deref(), &headers).await
}

async fn stream_logs(
    State(app): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let first = match app.streams.first() {
        Some(first) => first.name.clone(),
        // With Redis: the first log stream another node follows.
        None => app
            .hub
            .channels()
            .await
            .into_iter()
            .find_map(|c| c.name.strip_prefix(LOG_PREFIX).map(str::to_string))
            .ok_or_else(|| ApiError::not_found("this server follows no log file"))?,
    };
    app.open_log(&first, query.as_deref(), &headers).await
}

async fn health(State(app): State<Arc<AppState>>) -> Response {
    let (status, code) = match app.hub.health() {
        crate::hub::Health::Ok => ("ok", StatusCode::OK),
        crate::hub::Health::Degraded(_) => ("degraded", StatusCode::SERVICE_UNAVAILABLE),
    };
    let mut body = serde_json::json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": app.started.elapsed().as_secs_f64(),
        "connections": app.metrics.connections.get(),
        "channels": app.hub.channels().await.len(),
    });
    if let Some(node) = app.hub.node() {
        body["node"] = node.into();
        body["redis"] = match app.hub.health() {
            crate::hub::Health::Ok => "ok".into(),
            crate::hub::Health::Degraded(why) => format!("unreachable: {why}").into(),
        };
    }
    (code, Json(body)).into_response()
}

async fn api_streams(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    let channels = app.hub.channels().await;
    let owners = app.hub.log_owners().await;
    let node = app.hub.node();
    let mut out = Vec::new();
    for log in app.streams.list() {
        let info = channels.iter().find(|c| c.name == log.channel);
        let state = match log.state() {
            crate::follow::FollowState::Waiting => "waiting".to_string(),
            crate::follow::FollowState::Following => "following".to_string(),
            crate::follow::FollowState::Error(why) => format!("error: {why}"),
        };
        let mut entry = serde_json::json!({
            "name": log.channel,
            "kind": "log",
            "path": log.path,
            "subscribers": info.map_or(0, |c| c.subscribers),
            "last_id": info.and_then(|c| c.last_id.clone()),
            "state": state,
        });
        if let Some(node) = node {
            entry["node"] = node.into();
        }
        out.push(entry);
    }
    // With Redis: log streams that other nodes follow (or followed).
    for channel in channels.iter().filter(|c| c.name.starts_with(LOG_PREFIX)) {
        if app.streams.list().iter().any(|l| l.channel == channel.name) {
            continue;
        }
        let owner = owners.get(&channel.name);
        out.push(serde_json::json!({
            "name": channel.name,
            "kind": "log",
            "path": owner.map(|o| o.path.clone()),
            "subscribers": channel.subscribers,
            "last_id": channel.last_id,
            "state": owner.map_or("error: no node follows it now".to_string(), |o| o.state.clone()),
            "node": owner.map(|o| o.node.clone()),
        }));
    }
    for channel in channels.iter().filter(|c| !c.name.starts_with(LOG_PREFIX)) {
        out.push(serde_json::json!({
            "name": channel.name,
            "kind": "channel",
            "subscribers": channel.subscribers,
            "last_id": channel.last_id,
            "state": "open",
        }));
    }
    Json(out)
}
