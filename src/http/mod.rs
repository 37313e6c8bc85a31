//! The HTTP interface: routes, request parsing, SSE responses and JSON
//! errors. Only this module knows HTTP status codes and error shapes.

mod access;
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

use crate::auth::{Auth, Caller, Right};
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
    /// Access control: who may do what.
    pub auth: Auth,
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
        .route(
            "/api/session",
            get(access::show)
                .post(access::sign_in)
                .delete(access::sign_out),
        )
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

/// CORS: with `*`, any origin without credentials (the server ignores a
/// cross-origin request's cookie too; header and query tokens work);
/// explicit origins may send cookies (`Access-Control-Allow-Credentials`).
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new().allow_methods([Method::GET, Method::POST, Method::DELETE]);
    if origins.iter().any(|o| o == "*") {
        return Some(
            layer
                .allow_origin(Any)
                .allow_headers(Any)
                .expose_headers(Any),
        );
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        layer
            .allow_origin(AllowOrigin::list(list))
            .allow_credentials(true)
            .allow_headers(tower_http::cors::AllowHeaders::mirror_request())
            .expose_headers([
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::header::RETRY_AFTER,
            ]),
    )
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
        caller: &Caller,
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
            expiry: caller
                .expires_in()
                .map(|wait| Box::pin(tokio::time::sleep(wait))),
        })
    }

    /// Opens an SSE stream whose events are made for this connection alone
    /// (`local`), plus broadcasts.
    fn open_local_stream(
        &self,
        caller: &Caller,
        headers: &HeaderMap,
        local: futures_util::stream::BoxStream<'static, bytes::Bytes>,
    ) -> Result<SseStream, ApiError> {
        let mut sse = self.open_stream(
            caller,
            Vec::new(),
            StreamParams::parse(None, headers)?,
            Framing::Plain,
            None,
        )?;
        sse.local = Some(local);
        Ok(sse)
    }

    /// Opens the SSE stream of log stream `name`.
    fn open_log(
        &self,
        caller: &Caller,
        name: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        self.auth
            .authorize(caller, Right::Subscribe(&format!("{LOG_PREFIX}{name}")))?;
        let params = StreamParams::parse(query, headers)?;
        let log = self.streams.get(name).ok_or_else(|| {
            ApiError::not_found(format!("no log stream named {name:?}; see /api/streams"))
        })?;
        let request = ChannelRequest::new(
            log.channel.clone(),
            params.tail.unwrap_or(self.config.backlog),
        );
        let sse = self.open_stream(
            caller,
            vec![request],
            params,
            Framing::Plain,
            Some(log.channel.clone()),
        )?;
        Ok(stream::response(sse))
    }

    /// Publishes one event and counts it (or the refusal).
    fn publish(
        &self,
        channel: &str,
        event_type: &str,
        data: &str,
    ) -> Result<crate::hub::Published, ApiError> {
        match self.hub.publish(channel, event_type, data) {
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
    caller: Caller,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.open_log(&caller, &name, query.as_deref(), &headers)
}

async fn stream_logs(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let first = app.streams.first();
    let Some(first) = first else {
        app.auth.authorize_listing(&caller)?;
        return Err(ApiError::not_found("this server follows no log file"));
    };
    app.open_log(&caller, &first.name, query.as_deref(), &headers)
}

async fn health(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": app.started.elapsed().as_secs_f64(),
        "connections": app.metrics.connections.get(),
        "channels": app.hub.channels().len(),
    }))
}

/// `GET /api/streams`: the streams the caller may subscribe to; file
/// paths only for admins.
async fn api_streams(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    app.auth.authorize_listing(&caller)?;
    let may_see = |name: &str| app.auth.may(&caller, Right::Subscribe(name));
    let channels = app.hub.channels();
    let mut out = Vec::new();
    for log in app.streams.list() {
        if !may_see(&log.channel) {
            continue;
        }
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
        if !caller.is_admin() {
            entry.as_object_mut().map(|o| o.remove("path"));
        }
        out.push(entry);
    }
    for channel in channels
        .iter()
        .filter(|c| !c.name.starts_with(LOG_PREFIX) && may_see(&c.name))
    {
        out.push(serde_json::json!({
            "name": channel.name,
            "kind": "channel",
            "subscribers": channel.subscribers,
            "last_id": channel.last_id,
            "state": "open",
        }));
    }
    Ok(Json(out))
}
