//! `tailcast serve`: wires the hub, the log streams, the heartbeat tick and
//! the HTTP router together and serves until shutdown.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Auth, AuthSettings};
use crate::config::ServeConfig;
use crate::follow::FollowOptions;
use crate::http::{self, AppState};
use crate::hub::{Hub, HubLimits, RedisHub};
use crate::metrics::Metrics;
use crate::streams::LogStreams;

mod sse_conn;

/// Interval of the demo log generator.
const DEMO_INTERVAL: Duration = Duration::from_millis(300);

/// Longest wait for followers and generators to stop after shutdown.
const TASK_GRACE: Duration = Duration::from_secs(1);

/// Serves `config` on `listener` until `shutdown` is cancelled, then ends
/// every stream and returns. With no files configured, runs the demo: a
/// generated log in a temporary folder, served as stream `demo`.
///
/// # Errors
/// The demo's temporary folder cannot be created, or serving fails.
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let auth = Auth::start(&AuthSettings::from_config(&config), shutdown.clone())
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    warn_if_public_without_auth(&listener, &auth);
    let metrics = Arc::new(Metrics::new());
    let limits = HubLimits {
        history: config.history,
        history_bytes: config.history_bytes,
        history_ttl: config.history_ttl,
        max_channels: config.max_channels,
    };
    let tracker = TaskTracker::new();
    let hub = match &config.redis {
        None => Hub::memory(limits),
        Some(url) => {
            let options = crate::hub::redis::RedisOptions {
                url: url.clone(),
                prefix: config.redis_prefix.clone(),
                node: config.node.clone().unwrap_or_else(host_name),
                limits,
            };
            let hub = RedisHub::connect(options, shutdown.clone(), &tracker)
                .await
                .map_err(io::Error::other)?;
            Hub::Redis(hub)
        }
    };
    let opts = FollowOptions {
        max_line: config.max_line,
        initial_lines: config.backlog.max(config.history.min(1000)),
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
    for log in streams.list() {
        if let Err(e) = hub.claim_log(&log.channel, &log.path).await {
            shutdown.cancel();
            tracker.close();
            let _ = tokio::time::timeout(TASK_GRACE, tracker.wait()).await;
            return Err(io::Error::other(e.to_string()));
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
    http::spawn_demo_feed(hub.clone(), metrics.clone(), &tracker, shutdown.clone());
    let host_metrics = http::spawn_host_sampler(metrics.clone(), &tracker, shutdown.clone());
    let send_timeout = config.send_timeout;
    let state = Arc::new(AppState {
        config,
        hub: hub.clone(),
        streams,
        metrics: metrics.clone(),
        tick,
        shutdown: shutdown.clone(),
        started: Instant::now(),
        host_metrics,
        auth,
    });
    let listener = SendTimeoutListener {
        listener,
        timeout: send_timeout,
        metrics,
    };
    let served = serve_http1(listener, http::router(state), shutdown.clone()).await;
    hub.release_claims().await;
    tracker.close();
    let _ = tokio::time::timeout(TASK_GRACE, tracker.wait()).await;
    drop(demo_dir);
    served
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
             --jwt-public-key or --jwks-url, or bind to 127.0.0.1 behind a proxy"
        );
    }
}

/// Serves HTTP/1.1 on `listener` with `router` until `shutdown`, then
/// waits for every connection to end (SSE bodies end on `shutdown`).
///
/// This is `axum::serve` made lean per connection, which matters with tens
/// of thousands of idle SSE streams. Each connection first goes to
/// [`sse_conn::serve`], which reads the request head into a small buffer
/// and serves SSE requests itself, without hyper's two 8 KiB buffers; every
/// other request is handed to hyper with the bytes already read replayed.
/// On the hyper path the router is shared (an `Arc` clone) and its future
/// is boxed only while a request is being routed, so hyper's per-connection
/// slot for the service future holds a pointer (axum's serve rebuilds the
/// route tables per connection, ~8 KiB, and keeps the ~4 KiB future).
async fn serve_http1(
    mut listener: SendTimeoutListener,
    router: axum::Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    use axum::serve::Listener as _;

    let connections = TaskTracker::new();
    let builder = Arc::new(hyper::server::conn::http1::Builder::new());
    loop {
        let io = tokio::select! {
            _ = shutdown.cancelled() => break,
            (io, _addr) = listener.accept() => io,
        };
        let router = router.clone();
        let builder = builder.clone();
        let token = shutdown.clone();
        connections.spawn(async move {
            if let Some(io) = sse_conn::serve(io, &router, &token).await {
                // Boxed: hyper's connection state must not size the task
                // of every lean SSE connection.
                Box::pin(serve_hyper(io, router, &builder, token)).await;
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Serves one connection with hyper until it ends, or until `shutdown`,
/// when it finishes the current response and closes.
async fn serve_hyper<IO>(
    io: IO,
    router: axum::Router,
    builder: &hyper::server::conn::http1::Builder,
    shutdown: CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt as _;

    let service = hyper::service::service_fn(move |request| -> RouteFuture {
        Box::pin(router.clone().oneshot(request))
    });
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// The router's answer to one request, boxed (see [`serve_http1`]).
type RouteFuture = Pin<
    Box<dyn Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send>,
>;

/// Accepts connections with `TCP_NODELAY` set (events must not wait for
/// Nagle) and wrapped in [`SendTimeoutIo`].
struct SendTimeoutListener {
    listener: TcpListener,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl axum::serve::Listener for SendTimeoutListener {
    type Io = SendTimeoutIo;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let io = SendTimeoutIo {
                        inner: stream,
                        timeout: self.timeout,
                        stalled: None,
                        metrics: self.metrics.clone(),
                    };
                    return (io, addr);
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// A connection that fails its write with `TimedOut` once the peer has
/// accepted no bytes for `timeout`: this is how a subscriber that stopped
/// reading is dropped (guarantee 3). The timer exists only while a write is
/// blocked.
pub struct SendTimeoutIo {
    inner: TcpStream,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    metrics: Arc<Metrics>,
}

impl SendTimeoutIo {
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_ready() {
            self.metrics.slow_dropped.inc();
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "subscriber stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for SendTimeoutIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendTimeoutIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
