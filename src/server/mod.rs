//! `tailcast serve`: wires the hub, the log streams, the heartbeat tick and
//! the HTTP router together and serves until shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse as _, Response};
use futures_util::future::{Either, FutureExt as _};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::config::ServeConfig;
use crate::follow::FollowOptions;
use crate::http::{self, routes, ApiError, AppState};
use crate::hub::{Hub, HubLimits, RedisHub};
use crate::metrics::Metrics;
use crate::streams::LogStreams;

/// `impl AsyncWrite for $wrapper<IO>` passing every call to its `inner`
/// field: for wrappers that only change the reading side.
macro_rules! forward_async_write {
    ($wrapper:ident) => {
        impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<IO> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}

mod guarded;
mod h2;
mod per_ip;
mod send_timeout;
mod sse_conn;
mod timeouts;
pub mod tls;
mod tls_stream;

use guarded::GuardedBody;
use per_ip::PerIpStreams;
use send_timeout::SendTimeoutIo;
use timeouts::{Activity, Timeouts, WatchReads};
use tls::{Certificates, PreparedTls};

/// Interval of the demo log generator.
const DEMO_INTERVAL: Duration = Duration::from_millis(300);

/// Longest wait for followers and generators to stop after shutdown.
const TASK_GRACE: Duration = Duration::from_secs(1);

/// Serves `config` on `listener` until `shutdown` is cancelled, then ends
/// every stream and returns. With no files configured, runs the demo: a
/// generated log in a temporary folder, served as stream `demo`. `tls`:
/// the pair of `--tls-cert`/`--tls-key`, loaded by [`tls::prepare`] before
/// listening; every connection is TLS when it is given. `ready` is called
/// once everything has started (the event log opened, Redis reached, log
/// streams claimed), just before the first connection is accepted: a
/// server that fails to start never says it is ready. It is told the
/// addresses of the other listeners ([`Started`]).
///
/// # Errors
/// The demo's temporary folder cannot be created, or serving fails.
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    tls: Option<PreparedTls>,
    shutdown: CancellationToken,
    ready: impl FnOnce(&Started),
) -> io::Result<()> {
    let tracker = TaskTracker::new();
    let (state, demo_dir) = match start_app(config, &tracker, &shutdown).await {
        Ok(started) => started,
        Err(e) => {
            // Tasks already started (Redis supervisor, followers) stop.
            shutdown.cancel();
            tracker.close();
            let _ = tokio::time::timeout(TASK_GRACE, tracker.wait()).await;
            return Err(e);
        }
    };
    // The syslog listeners bind once the hub has started, and serve from
    // here on: a refusal to bind is a refusal to start.
    let syslog = match crate::syslog::Listeners::bind(&state.config).await {
        Ok(syslog) => syslog,
        Err(e) => {
            shutdown.cancel();
            tracker.close();
            let _ = tokio::time::timeout(TASK_GRACE, tracker.wait()).await;
            return Err(e);
        }
    };
    let started = Started {
        syslog_tcp: syslog.tcp_addr(),
        syslog_udp: syslog.udp_addr(),
    };
    syslog.start(
        &state.config,
        state.hub.clone(),
        state.metrics.clone(),
        &tracker,
        &shutdown,
    );
    warn_if_public_without_auth(&listener, &state.auth);
    let log = state.hub.wal().cloned();
    let listening = listener.local_addr().ok().map(|a| a.ip());
    let connections = Connections::new(state, demo_dir, tls, listening, &tracker, &shutdown)?;
    ready(&started);
    let served = serve(listener, connections.clone()).await;
    if let Some(scale_out) = connections.hub.scale_out() {
        scale_out.release_claims().await;
    }
    tracker.close();
    let _ = tokio::time::timeout(TASK_GRACE, tracker.wait()).await;
    if let Some(log) = log {
        // The last checkpoints and fsync, off the runtime.
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = log.checkpoints().save() {
                tracing::warn!("cannot save follower checkpoints: {e}");
            }
            log.close();
        })
        .await;
    }
    drop(connections.demo_dir.lock().ok().and_then(|mut d| d.take()));
    served
}

/// What [`run`] listens on besides its HTTP listener, told to its `ready`
/// callback.
#[derive(Debug, Clone, Default)]
pub struct Started {
    /// `--syslog-tcp`, bound.
    pub syslog_tcp: Option<std::net::SocketAddr>,
    /// `--syslog-udp`, bound.
    pub syslog_udp: Option<std::net::SocketAddr>,
}

/// Builds the application state and starts its tasks on `tracker`: access
/// control, log followers (or the demo generator, whose folder is returned
/// to be kept until the end), the heartbeat tick, the hub's sweeper, the
/// demo feed, the host sampler. The hub is in memory, fed through the
/// write-ahead log of `--data-dir`, or shared through Redis (`--redis`:
/// connected first, and the log streams claimed; another node following
/// one of the names is an error).
async fn start_app(
    config: ServeConfig,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> io::Result<(Arc<AppState>, Option<tempfile::TempDir>)> {
    let auth = Auth::start(&config.auth_settings(), shutdown.clone())
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let metrics = Arc::new(Metrics::new());
    let limits = config.hub_limits();
    let redis = match (&config.redis, &config.redis_cluster) {
        (Some(url), _) => Some((url, false)),
        (None, Some(seeds)) => Some((seeds, true)),
        (None, None) => None,
    };
    let hub = match (redis, &config.data_dir) {
        (Some((url, cluster)), _) => {
            let options = crate::hub::redis::RedisOptions {
                url: url.clone(),
                cluster,
                prefix: config.redis_prefix.clone(),
                node: config.node.clone().unwrap_or_else(host_name),
                limits,
            };
            let hub = RedisHub::connect(options, shutdown.clone(), tracker)
                .await
                .map_err(io::Error::other)?;
            Hub::Redis(hub)
        }
        (None, Some(dir)) => open_durable_hub(dir, &config, limits).await?,
        (None, None) => Hub::memory(limits),
    };
    // Alerting is tapped into the hub before anything publishes.
    let alerts = match &config.alerts {
        Some(path) => {
            let (alerts, tap) =
                crate::alerts::start(path.clone(), metrics.clone(), tracker, shutdown.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            hub.set_tap(tap);
            Some(alerts)
        }
        None => None,
    };
    let opts = FollowOptions {
        max_line: config.max_line,
        initial_lines: config.backlog.max(config.history.min(1000)),
        follow_symlinks: config.follow_symlinks,
        ..FollowOptions::default()
    };
    let streams = LogStreams::new(
        hub.clone(),
        metrics.clone(),
        opts,
        config.forget_after,
        shutdown.clone(),
        tracker.clone(),
    );

    let demo_dir = if config.files.is_empty() {
        let dir = tempfile::Builder::new().prefix("tailcast-demo").tempdir()?;
        let path = dir.path().join("demo.log");
        let token = shutdown.clone();
        let generator_path = path.clone();
        tracker.spawn(async move {
            if let Err(e) = crate::generate::run(&generator_path, DEMO_INTERVAL, None, token).await
            {
                tracing::error!("demo generator stopped: {e}");
            }
        });
        streams.follow("demo", &path);
        Some(dir)
    } else {
        streams.start(&config.files);
        None
    };

    // With Redis, no other node may follow the same stream names.
    if let Some(scale_out) = hub.scale_out() {
        for log in streams.list() {
            if let Err(e) = scale_out.claim_log(&log.channel, &log.path).await {
                return Err(io::Error::other(e.to_string()));
            }
        }
    }

    let (tick_tx, tick) = watch::channel(0u64);
    let heartbeat = config.heartbeat;
    let tick_shutdown = shutdown.clone();
    tracker.spawn(async move {
        let mut interval =
            tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        loop {
            tokio::select! {
                _ = tick_shutdown.cancelled() => return,
                _ = interval.tick() => tick_tx.send_modify(|n| *n += 1),
            }
        }
    });

    tracker.spawn(hub.clone().run_sweeper(shutdown.clone()));
    http::spawn_demo_feed(hub.clone(), metrics.clone(), tracker, shutdown.clone());
    let host_metrics = http::spawn_host_sampler(metrics.clone(), tracker, shutdown.clone());
    let state = Arc::new(AppState {
        config,
        hub: hub.clone(),
        streams,
        metrics,
        tick,
        shutdown: shutdown.clone(),
        started: Instant::now(),
        host_metrics,
        auth,
        alerts,
    });
    Ok((state, demo_dir))
}

/// This machine's name, as a default `--node` (characters a node name may
/// not hold become `-`).
fn host_name() -> String {
    let name: String = sysinfo::System::host_name()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '-' })
        .take(64)
        .collect();
    if name.is_empty() {
        "tailcast".to_string()
    } else {
        name
    }
}

/// Warns when the server listens on an address other hosts can reach
/// while access control is off: anyone there reads every log.
fn warn_if_public_without_auth(listener: &TcpListener, auth: &Auth) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    if !auth.enabled() && !addr.ip().is_loopback() {
        tracing::warn!(
            "listening on {addr} with access control off: anyone who can reach this address \
             reads every stream and publishes to every channel; set --jwt-secret-file, \
             --jwt-public-key or --jwks-url, or bind to 127.0.0.1 behind a proxy \
             (requests naming this server by a host name need --allowed-host NAME)"
        );
    }
}

/// Everything a connection task needs, shared by all of them.
struct Connections {
    /// The one router every request goes through, whatever the protocol.
    router: axum::Router,
    /// `Host`/`Origin` rules with access control off, checked before
    /// routing.
    host_check: http::HostCheck,
    /// `--send-timeout`: on the socket, and per HTTP/2 stream.
    send_timeout: Duration,
    /// `--header-timeout` and `--idle-timeout`.
    timeouts: Timeouts,
    /// hyper's HTTP/1 settings.
    http1: hyper::server::conn::http1::Builder,
    /// The HTTP/2 settings.
    http2: ::h2::server::Builder,
    /// `--max-connections-per-ip`.
    per_ip: Arc<PerIpStreams>,
    /// `--tls-cert`/`--tls-key`: every connection is TLS when set.
    tls: Option<Arc<Certificates>>,
    metrics: Arc<Metrics>,
    /// The hub, to give up this node's Redis claims at the end.
    hub: Hub,
    shutdown: CancellationToken,
    /// The demo's temporary folder, removed at the end.
    demo_dir: std::sync::Mutex<Option<tempfile::TempDir>>,
}

/// Accepts connections on `listener` until shutdown, then waits for every
/// connection to end (SSE bodies end on shutdown).
async fn serve(listener: TcpListener, connections: Arc<Connections>) -> io::Result<()> {
    let tasks = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = connections.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let connections = connections.clone();
        tasks.spawn(async move { connections.serve_connection(stream, peer.ip()).await });
    }
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Opens the write-ahead log in `dir` (checking it, cutting a torn tail)
/// and the hub fed through it, off the async runtime.
async fn open_durable_hub(
    dir: &std::path::Path,
    config: &ServeConfig,
    limits: HubLimits,
) -> io::Result<Hub> {
    use crate::wal::{Wal, WalOptions};
    let dir = dir.to_path_buf();
    let opts = WalOptions::new(config.fsync, config.retention_bytes as u64);
    // Events take about twice their log size in memory (data and the
    // encoded frame): warm with half of --history-bytes.
    let warm_bytes = config.history_bytes as u64 / 2;
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let log = Wal::open(&dir, opts).map_err(io::Error::other)?;
        let recovery = log.recovery().clone();
        let log = Arc::new(log);
        let hub = Hub::with_wal(limits, log.clone(), warm_bytes).map_err(io::Error::other)?;
        tracing::info!(
            dir = %dir.display(),
            segments = recovery.segments,
            events = recovery.records,
            bytes = recovery.bytes,
            repaired = recovery.repairs.len(),
            last_seq = log.last_seq(),
            fsync = %opts.fsync,
            "event log opened in {:.3}s",
            started.elapsed().as_secs_f64()
        );
        Ok(hub)
    })
    .await
    .map_err(io::Error::other)?
}

impl Connections {
    /// What the connections of `state` share; starts the TLS reloader
    /// when `tls` is given. `demo_dir` is kept until the end. `listening`:
    /// the address listened on, for the host check.
    fn new(
        state: Arc<AppState>,
        demo_dir: Option<tempfile::TempDir>,
        tls: Option<PreparedTls>,
        listening: Option<IpAddr>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> io::Result<Arc<Connections>> {
        let config = &state.config;
        let timeouts = Timeouts {
            header: config.header_timeout,
            idle: config.idle_timeout,
        };
        let tls = tls.map(|prepared| prepared.start(tracker, shutdown.clone()));
        let mut http1 = hyper::server::conn::http1::Builder::new();
        // Head and idle deadlines are ours (see `timeouts`).
        http1.header_read_timeout(None);
        Ok(Arc::new(Connections {
            send_timeout: config.send_timeout,
            timeouts,
            http1,
            http2: h2::builder(),
            per_ip: PerIpStreams::new(config.max_connections_per_ip),
            tls,
            metrics: state.metrics.clone(),
            hub: state.hub.clone(),
            shutdown: shutdown.clone(),
            host_check: http::HostCheck::new(config, state.auth.enabled(), listening),
            router: http::router(state),
            demo_dir: std::sync::Mutex::new(demo_dir),
        }))
    }

    /// The application and its connections' shared state, for tests.
    #[cfg(test)]
    async fn start(
        config: ServeConfig,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> io::Result<Arc<Connections>> {
        let (state, demo_dir) = start_app(config, tracker, shutdown).await?;
        Connections::new(state, demo_dir, None, None, tracker, shutdown)
    }

    /// Serves one accepted connection: TLS first when configured, then by
    /// protocol (see [`Connections::serve_protocol`]).
    ///
    /// Not an `async fn`, like [`Connections::serve_protocol`]: the
    /// returned future is the task of every connection for its whole life,
    /// and an `async fn` would keep room for its arguments (the socket)
    /// beside the future that took them over.
    fn serve_connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: IpAddr,
    ) -> impl Future<Output = ()> + Send + 'static {
        let accepted = tokio::time::Instant::now();
        // Events must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let io = SendTimeoutIo::new(stream, self.send_timeout, self.metrics.clone());
        match self.tls.clone() {
            None => Either::Left(self.serve_protocol(io, peer, accepted, false)),
            // Boxed: the TLS state must not size plaintext connections' tasks.
            Some(tls) => Either::Right(Box::pin(self.serve_tls(io, peer, accepted, tls))),
        }
    }

    /// Completes the TLS handshake (within the header deadline), then
    /// serves HTTP/2 when ALPN chose `h2`, HTTP/1.1 otherwise.
    ///
    /// The handshake is a boxed future of its own, dropped once done, so
    /// that an idle TLS connection keeps only the TLS stream and the
    /// protocol's state.
    fn serve_tls(
        self: Arc<Self>,
        io: SendTimeoutIo,
        peer: IpAddr,
        accepted: tokio::time::Instant,
        tls: Arc<Certificates>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let handshake = Box::pin(self.clone().tls_handshake(io, peer, accepted, tls));
        handshake.then(move |stream| match stream {
            None => Either::Left(std::future::ready(())),
            Some(stream) => {
                let h2 = stream.alpn_protocol() == Some(b"h2");
                // Boxed: the protocol futures take the stream by value
                // (`sse_conn::serve` is an `async fn`, which keeps room
                // for its argument beside the local it moves it into), so
                // the 1.2 KiB stream inline would be counted twice.
                Either::Right(self.serve_protocol(Box::new(stream), peer, accepted, h2))
            }
        })
    }

    /// The TLS handshake of `io`, or `None` when it fails, misses the
    /// header deadline or shutdown comes first.
    async fn tls_handshake(
        self: Arc<Self>,
        io: SendTimeoutIo,
        peer: IpAddr,
        accepted: tokio::time::Instant,
        tls: Arc<Certificates>,
    ) -> Option<tls_stream::TlsStream<SendTimeoutIo>> {
        let deadline = accepted + self.timeouts.header;
        let handshake = tls_stream::accept(io, tls.current());
        tokio::select! {
            _ = self.shutdown.cancelled() => None,
            handshake = tokio::time::timeout_at(deadline, handshake) => match handshake {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    None
                }
                Err(_) => None,
            },
        }
    }

    /// Serves one connection by protocol: HTTP/2 when `h2` (ALPN) or when
    /// it opens with the HTTP/2 preface (h2c with prior knowledge); else
    /// HTTP/1.
    ///
    /// HTTP/1 first goes to [`sse_conn::serve`], which reads the request
    /// head into a small buffer and serves SSE requests itself, without
    /// hyper's two 8 KiB buffers; every other request is handed to hyper
    /// with the bytes already read replayed. On the hyper path the router is
    /// shared (an `Arc` clone) and its future is boxed only while a request
    /// is being routed, so hyper's per-connection slot for the service
    /// future holds a pointer (axum's serve rebuilds the route tables per
    /// connection, ~8 KiB, and keeps the ~4 KiB future).
    ///
    /// The returned future is the lean path's future followed by a boxed
    /// hand-over (`then`), so an idle SSE connection's task holds little
    /// more than the lean path's state (see the test
    /// `a_plaintext_connection_task_stays_small`).
    fn serve_protocol<IO>(
        self: Arc<Self>,
        io: IO,
        peer: IpAddr,
        accepted: tokio::time::Instant,
        h2: bool,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if h2 {
            return Either::Left(Box::pin(h2::serve(io, self, peer, accepted)));
        }
        let head_deadline = accepted + self.timeouts.header;
        let lean = sse_conn::serve(io, self.clone(), peer, head_deadline);
        Either::Right(lean.then(move |handed_over| {
            // Boxed: neither hyper's nor h2's connection state may size the
            // task of every lean SSE connection.
            let rest: ConnectionFuture = match handed_over {
                None => Box::pin(std::future::ready(())),
                Some(io) if io.starts_with(H2_PREFACE_LINE) => {
                    Box::pin(h2::serve(io, self, peer, accepted))
                }
                Some(io) => Box::pin(self.serve_http1(io, peer, accepted)),
            };
            rest
        }))
    }

    /// Serves one HTTP/1 connection with hyper until it ends, its head or
    /// idle deadline passes (see [`timeouts`]), or shutdown, when it
    /// finishes the current response and closes.
    async fn serve_http1<IO>(self: Arc<Self>, io: IO, peer: IpAddr, accepted: tokio::time::Instant)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new(self.timeouts, accepted);
        let requests = activity.clone();
        let connections = self.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let guard = requests.begin();
            let answer = connections.route(request.map(Body::new), peer);
            async move {
                let response = answer.await;
                Ok::<_, Infallible>(response.map(|body| GuardedBody::wrap(body, guard)))
            }
        });
        let io = WatchReads::new(io, activity.clone());
        let connection = self
            .http1
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => {}
            // Nothing is in flight: closing cuts nothing short.
            _ = activity.expired() => {}
            _ = self.shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }

    /// Routes one request from `peer` through the router, whatever the
    /// protocol. Its host and origin are checked first (see
    /// [`http::HostCheck`]): a refused request is answered unrouted. An
    /// SSE request (see [`routes::is_sse_request`]) then takes a
    /// `--max-connections-per-ip` slot, held by the response body while it
    /// streams; without one it is answered 503 unrouted.
    ///
    /// The future is boxed: hyper keeps the service future in every
    /// connection, and the router's is ~4 KiB.
    fn route(&self, request: Request<Body>, peer: IpAddr) -> RouteFuture {
        use tower::ServiceExt as _;

        if let Err(refused) =
            self.host_check
                .check(request.method(), request.uri(), request.headers())
        {
            return Box::pin(std::future::ready(refused.into_response()));
        }
        let mut slot = None;
        if self.per_ip.enabled()
            && routes::is_sse_request(request.method(), request.uri().path(), request.headers())
        {
            match self.per_ip.acquire(peer) {
                Some(taken) => slot = Some(taken),
                None => {
                    let refused = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many streams from this address",
                        format!(
                            "{peer} holds its limit of {} open streams \
                             (--max-connections-per-ip); retry later",
                            self.per_ip.limit()
                        ),
                    );
                    return Box::pin(std::future::ready(refused.into_response()));
                }
            }
        }
        let answer = self.router.clone().oneshot(request);
        Box::pin(async move {
            let Ok(response) = answer.await;
            match slot {
                Some(slot) if routes::is_event_stream(&response) => {
                    response.map(|body| GuardedBody::wrap(body, slot))
                }
                _ => response,
            }
        })
    }
}

/// The first line of the HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE_LINE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// The rest of a connection after the lean path handed it over.
type ConnectionFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The router's answer to one request, boxed (see [`Connections::route`]).
type RouteFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// What an idle plaintext SSE connection costs in its task: the
    /// future of [`Connections::serve_connection`] is allocated once per
    /// connection for its whole life. Guards the lean path's memory
    /// (docs/performance.md: KiB per idle connection).
    #[tokio::test]
    async fn a_plaintext_connection_task_stays_small() {
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let config = ServeConfig::from_args(["/nonexistent/tailcast-size-test.log"]).unwrap();
        let connections = Connections::start(config, &tracker, &shutdown)
            .await
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (stream, peer) = accepted.unwrap();
        let task = connections.clone().serve_connection(stream, peer.ip());
        let size = std::mem::size_of_val(&task);
        eprintln!("serve_connection future: {size} bytes");
        assert!(
            size <= 700,
            "the per-connection future grew to {size} bytes"
        );
        drop((task, client));
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }

    /// What an idle TLS SSE connection costs in its task: the boxed future
    /// of [`Connections::serve_tls`] (the lean path's state) and the boxed
    /// TLS stream (rustls' connection state, no buffer: see `tls_stream`)
    /// live as long as the connection. 2,968 bytes in one box when the
    /// stream was inline (an `async fn` kept it twice); 488 + 1,248 now.
    /// Guards the TLS figure of docs/performance.md (KiB per idle TLS
    /// connection).
    #[tokio::test]
    async fn a_tls_connection_task_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let certificates = Certificates::open(cert_file, key_file).unwrap();
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let config = ServeConfig::from_args(["/nonexistent/tailcast-size-test.log"]).unwrap();
        let connections = Connections::start(config, &tracker, &shutdown)
            .await
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (stream, peer) = accepted.unwrap();
        let io = SendTimeoutIo::new(stream, Duration::from_secs(10), connections.metrics.clone());
        let stream_size = std::mem::size_of::<tls_stream::TlsStream<SendTimeoutIo>>();
        let task =
            connections
                .clone()
                .serve_tls(io, peer.ip(), tokio::time::Instant::now(), certificates);
        let size = std::mem::size_of_val(&task);
        eprintln!("serve_tls future: {size} bytes, of which the TLS stream {stream_size}");
        assert!(
            size <= 560,
            "the per-connection TLS future grew to {size} bytes"
        );
        assert!(
            stream_size <= 1280,
            "the TLS stream grew to {stream_size} bytes"
        );
        drop((task, client));
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
