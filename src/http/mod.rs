//! The HTTP interface: routes, request parsing, SSE responses and JSON
//! errors. Only this module knows HTTP status codes and error shapes.

mod access;
mod assets;
mod body;
mod channels;
mod demo;
mod error;
mod history;
mod host;
mod ingest;
mod metrics;
mod params;
mod protocol;
mod publish;
pub(crate) mod routes;
mod sse_body;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

pub(crate) use demo::spawn_demo_feed;
pub(crate) use error::ApiError;
pub(crate) use host::HostCheck;
pub(crate) use metrics::spawn_host_sampler;
use publish::NewEvent;
pub use sse_body::{Filter, FilterScope, OpenStreamGuard, Payload, SseBody};

use crate::auth::{Auth, Caller, Right};
use crate::config::ServeConfig;
use crate::hub::{Batch, ChannelName, ChannelRequest, Hub, Start, LOG_PREFIX};
use crate::metrics::Metrics;
use crate::streams::LogStreams;
use params::SseParams;
use protocol::{HealthAnswer, StreamEntry, StreamKind, StreamState};

/// Shared state of every request handler.
pub(crate) struct AppState {
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
    /// Alerting (`--alerts`), for `GET /api/alerts`.
    pub alerts: Option<crate::alerts::Alerts>,
}

/// The web console page.
const CONSOLE_HTML: &str = include_str!("../../assets/console.html");

/// Builds the router with every route, the JSON 404/405 answers and CORS.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let cors = cors_layer(&state.config.cors_origins);
    let max_body = state.config.max_body;
    // The console: the page and its assets, with their security headers.
    let console = Router::new()
        .route("/", get(|| async { Html(CONSOLE_HTML) }))
        .merge(assets::router())
        .layer(axum::middleware::map_response(assets::security_headers));
    let router = Router::new()
        .merge(console)
        .route("/health", get(health))
        .route("/ready", get(ingest::ready))
        .route("/v1/logs", post(ingest::otlp_logs))
        .route("/loki/api/v1/push", post(ingest::loki_push))
        .route("/api/streams", get(api_streams))
        .route("/api/alerts", get(api_alerts))
        .route(
            "/api/session",
            get(access::show)
                .post(access::sign_in)
                .delete(access::sign_out),
        )
        .route("/channels/{channel}", post(publish::handle))
        .route("/api/broadcast", post(publish::broadcast))
        .route("/api/history", get(history::history))
        .merge(routes::sse_router())
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

impl AppState {
    /// Subscribes an SSE response to `channels` (plus the broadcast
    /// channel); `?grep` filters the events in `filter_scope`. Call only
    /// once the caller is authorized: the `grep` regex is compiled here.
    /// The subscriber is registered before this returns, so before the
    /// client sees the response head; [`sse_body::response`] turns it into
    /// the response.
    ///
    /// # Errors
    /// 400 for a `grep` that does not compile; as [`AppState::open_sse`].
    async fn subscribe_sse(
        &self,
        caller: &Caller,
        channels: Vec<ChannelRequest>,
        mut params: SseParams,
        payload: Payload,
        filter_scope: FilterScope,
    ) -> Result<SseBody, ApiError> {
        let filter = params::compile(params.grep.take())
            .await?
            .map(|regex| Filter {
                scope: filter_scope,
                regex,
            });
        self.open_sse(caller, channels, params.start, payload, filter, true)
    }

    /// Subscribes an SSE response to `channels` from `start`, filtered by
    /// `filter`, plus the broadcast channel when `broadcasts` is true.
    ///
    /// # Errors
    /// 503 when `--max-connections` SSE streams are open; the hub's
    /// refusals (400 bad name, 503 too many channels).
    fn open_sse(
        &self,
        caller: &Caller,
        mut channels: Vec<ChannelRequest>,
        start: Start,
        payload: Payload,
        filter: Option<Filter>,
        broadcasts: bool,
    ) -> Result<SseBody, ApiError> {
        let limit = self.config.max_connections;
        if self.metrics.open_sse_streams.get() >= limit as i64 {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections",
                format!(
                    "the server holds its limit of {limit} SSE streams (--max-connections); retry later"
                ),
            ));
        }
        if broadcasts {
            channels.push(ChannelRequest {
                implicit: true,
                ..ChannelRequest::new(ChannelName::broadcast(), 0)
            });
        }
        if matches!(start, Start::After(_)) {
            self.metrics.resumes.inc();
        }
        let subscription = self.hub.subscribe(&channels, start)?;
        Ok(SseBody {
            subscription,
            payload,
            filter,
            retry_ms: self.config.retry_ms,
            initial: Vec::new(),
            local: None,
            tick: self.tick.clone(),
            shutdown: self.shutdown.clone(),
            metrics: self.metrics.clone(),
            guard: OpenStreamGuard::new(self.metrics.clone()),
            expiry: caller
                .expires_in()
                .map(|wait| Box::pin(tokio::time::sleep(wait))),
        })
    }

    /// [`AppState::subscribe_sse`] for the one channel of `request`
    /// (single-channel endpoints): plain payload, `grep` over that channel.
    async fn subscribe_one(
        &self,
        caller: &Caller,
        request: ChannelRequest,
        params: SseParams,
    ) -> Result<SseBody, ApiError> {
        let scope = FilterScope::Channel(request.name.clone());
        self.subscribe_sse(caller, vec![request], params, Payload::Plain, scope)
            .await
    }

    /// Opens an SSE response whose events are made for this connection
    /// alone (`local`), plus broadcasts when `broadcasts` is true (not on
    /// `/metrics`, which `--metrics-public` opens to anyone).
    fn local_sse(
        &self,
        caller: &Caller,
        headers: &HeaderMap,
        local: futures_util::stream::BoxStream<'static, bytes::Bytes>,
        broadcasts: bool,
    ) -> Result<SseBody, ApiError> {
        let params = SseParams::parse(None, headers, self.config.max_regex)?;
        let mut body = self.open_sse(
            caller,
            Vec::new(),
            params.start,
            Payload::Plain,
            None,
            broadcasts,
        )?;
        body.local = Some(local);
        Ok(body)
    }

    /// Whether log stream `name` (without `log:`) exists: followed here,
    /// or, with Redis, anywhere in the cluster.
    async fn log_exists(&self, name: &str) -> Result<bool, ApiError> {
        if self.streams.get(name).is_some() {
            return Ok(true);
        }
        let Ok(channel) = ChannelName::log(name) else {
            return Ok(false);
        };
        Ok(self.hub.has_channel(&channel).await?)
    }

    /// Opens the SSE response of log stream `name`.
    async fn log_sse(
        &self,
        caller: &Caller,
        name: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        self.auth
            .authorize(caller, Right::Subscribe(&format!("{LOG_PREFIX}{name}")))?;
        let params = SseParams::parse(query, headers, self.config.max_regex)?;
        if !self.log_exists(name).await? {
            return Err(ApiError::not_found(format!(
                "no log stream named {name:?}; see /api/streams"
            )));
        }
        let request = ChannelRequest::new(
            ChannelName::log(name)?,
            params.tail.unwrap_or(self.config.backlog),
        );
        let body = self.subscribe_one(caller, request, params).await?;
        Ok(sse_body::response(body))
    }

    /// Publishes one event and counts it (or the refusal). Returns once
    /// the event is as durable as configured (see [`Hub::publish`]).
    async fn publish_and_count(
        &self,
        channel: &ChannelName,
        event_type: &str,
        data: &str,
    ) -> Result<crate::hub::Published, ApiError> {
        let published = match self.hub.publish(channel, event_type, data).await {
            Ok(published) => published,
            Err(e) => return Err(self.refused(e.into())),
        };
        self.metrics.events_published.inc();
        Ok(published)
    }

    /// Publishes `events` (at least one) to `channel` with consecutive ids,
    /// all or none, and counts them (or the refusal).
    async fn publish_batch_and_count(
        &self,
        channel: &ChannelName,
        events: &[NewEvent],
    ) -> Result<Batch, ApiError> {
        let batch = {
            let events: Vec<(&str, &str)> = events
                .iter()
                .map(|e| (e.event_type.as_str(), e.data.as_str()))
                .collect();
            match self.hub.publish_batch(channel, &events).await {
                Ok(batch) => batch,
                Err(e) => return Err(self.refused(e.into())),
            }
        };
        self.metrics.events_published.inc_by(batch.count as u64);
        Ok(batch)
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

/// `GET /logs/{name}`: SSE of one log stream.
async fn logs(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.log_sse(&caller, &name, query.as_deref(), &headers)
        .await
}

/// `GET /stream-logs`: SSE of the first log stream (tutorial
/// compatibility).
async fn first_log(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let first = match app.streams.first() {
        Some(first) => Some(first.name.clone()),
        // With Redis: the first log stream another node follows.
        None => app
            .hub
            .channels()
            .await
            .into_iter()
            .find_map(|c| c.name.log_stream().map(str::to_string)),
    };
    let Some(first) = first else {
        app.auth.authorize_listing(&caller)?;
        return Err(ApiError::not_found("this server follows no log file"));
    };
    // A refusal must not tell a stranger the stream's name.
    app.auth.authorize_as(
        &caller,
        Right::Subscribe(&format!("{LOG_PREFIX}{first}")),
        "open the first log stream (/stream-logs)",
    )?;
    app.log_sse(&caller, &first, query.as_deref(), &headers)
        .await
}

/// `GET /health`: `200` `ok`, or with Redis unreachable `503` `degraded`.
async fn health(State(app): State<Arc<AppState>>) -> (StatusCode, Json<HealthAnswer>) {
    let usage = app.hub.usage();
    let node = app.hub.scale_out().map(|s| s.node());
    let (code, status, redis) = match (app.hub.health(), node) {
        (_, None) => (StatusCode::OK, "ok", None),
        (crate::hub::Health::Ok, Some(_)) => (StatusCode::OK, "ok", Some("ok".to_string())),
        (crate::hub::Health::Degraded(why), Some(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "degraded",
            Some(format!("unreachable: {why}")),
        ),
    };
    let body = HealthAnswer {
        status,
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: app.started.elapsed().as_secs_f64(),
        connections: app.metrics.open_sse_streams.get(),
        channels: usage.channels,
        history_events: usage.events,
        history_bytes: usage.bytes,
        node: node.map(str::to_string),
        redis,
    };
    (code, Json(body))
}

/// `GET /api/alerts`: the alert rules (webhooks redacted), their last
/// firing and counts, and the queues (see [`crate::alerts::Alerts::view`]).
/// Needs the admin right when access control is on; 404 without
/// `--alerts`.
async fn api_alerts(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    app.auth.authorize(&caller, Right::Admin)?;
    match &app.alerts {
        Some(alerts) => Ok(Json(alerts.view())),
        None => Err(ApiError::not_found(
            "alerting is off on this server: start it with --alerts FILE",
        )),
    }
}

/// `GET /api/streams`: log streams first (in the order they were added),
/// then the other channels by name; only those the caller may subscribe
/// to, file paths only for admins.
async fn api_streams(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Vec<StreamEntry>>, ApiError> {
    app.auth.authorize_listing(&caller)?;
    let may_see = |name: &str| app.auth.may(&caller, Right::Subscribe(name));
    let admin = caller.is_admin();
    let channels = app.hub.channels().await;
    let scale_out = app.hub.scale_out();
    let owners = match scale_out {
        Some(scale_out) => scale_out.log_owners().await,
        None => std::collections::HashMap::new(),
    };
    let node = scale_out.map(|s| s.node());
    let mut out = Vec::new();
    for log in app.streams.list() {
        if !may_see(&log.channel) {
            continue;
        }
        let info = channels.iter().find(|c| c.name == log.channel);
        out.push(StreamEntry {
            name: log.channel.to_string(),
            kind: StreamKind::Log,
            path: admin.then(|| log.path.clone()),
            subscribers: info.map_or(0, |c| c.subscribers),
            last_id: info.and_then(|c| c.last_id.clone()),
            retained: info.map_or(0, |c| c.retained),
            retained_bytes: info.map_or(0, |c| c.retained_bytes),
            state: StreamState::from(log.state()),
            node: node.map(str::to_string),
        });
    }
    for channel in channels {
        let kind = StreamKind::from(channel.kind);
        if !may_see(&channel.name) {
            continue;
        }
        if kind == StreamKind::Log {
            // With Redis: log streams that other nodes follow (or followed).
            let here = channel
                .name
                .log_stream()
                .is_some_and(|name| app.streams.get(name).is_some());
            if here {
                continue;
            }
            let owner = owners.get(channel.name.as_str());
            out.push(StreamEntry {
                name: channel.name.to_string(),
                kind,
                path: owner.filter(|_| admin).map(|o| o.path.clone()),
                subscribers: channel.subscribers,
                last_id: channel.last_id,
                retained: channel.retained,
                retained_bytes: channel.retained_bytes,
                state: owner.map_or(StreamState::Error("no node follows it now".into()), |o| {
                    StreamState::Remote(o.state.clone())
                }),
                node: owner.map(|o| o.node.clone()),
            });
            continue;
        }
        out.push(StreamEntry {
            name: channel.name.to_string(),
            kind,
            path: None,
            subscribers: channel.subscribers,
            last_id: channel.last_id,
            retained: channel.retained,
            retained_bytes: channel.retained_bytes,
            state: StreamState::Open,
            node: None,
        });
    }
    Ok(Json(out))
}
