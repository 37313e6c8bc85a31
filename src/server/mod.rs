//! `tailcast serve`: wires the hub, the log streams, the heartbeat tick and
//! the HTTP router together and serves until shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServeConfig;
use crate::follow::FollowOptions;
use crate::http::{self, AppState};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::streams::LogStreams;

mod send_timeout;
mod sse_conn;
mod timeouts;

use send_timeout::SendTimeoutIo;
use timeouts::{ActiveBody, Activity, Timeouts, WatchReads};

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
    let tracker = TaskTracker::new();
    let send_timeout = config.send_timeout;
    let timeouts = Timeouts {
        header: config.header_timeout,
        idle: config.idle_timeout,
    };
    let (state, demo_dir) = start_app(config, &tracker, &shutdown)?;
    let connections = Arc::new(Connections {
        send_timeout,
        timeouts,
        http1: {
            let mut builder = hyper::server::conn::http1::Builder::new();
            // Head and idle deadlines are ours (see `timeouts`).
            builder.header_read_timeout(None);
            builder
        },
        metrics: state.metrics.clone(),
        shutdown: shutdown.clone(),
        router: http::router(state),
    });
    let served = serve(listener, connections).await;
    tracker.close();
    let _ = tokio::time::timeout(TASK_GRACE, tracker.wait()).await;
    drop(demo_dir);
    served
}

/// Builds the application state and starts its tasks on `tracker`: log
/// followers (or the demo generator, whose folder is returned to be kept
/// until the end), the heartbeat tick, the demo feed, the host sampler.
fn start_app(
    config: ServeConfig,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> io::Result<(Arc<AppState>, Option<tempfile::TempDir>)> {
    let metrics = Arc::new(Metrics::new());
    let hub = Hub::memory(config.history, config.max_channels);
    let opts = FollowOptions {
        max_line: config.max_line,
        initial_lines: config.backlog.max(config.history.min(1000)),
        ..FollowOptions::default()
    };
    let streams = LogStreams::new(
        hub.clone(),
        metrics.clone(),
        opts,
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

    http::spawn_demo_feed(hub.clone(), metrics.clone(), tracker, shutdown.clone());
    let host_metrics = http::spawn_host_sampler(metrics.clone(), tracker, shutdown.clone());
    let state = Arc::new(AppState {
        config,
        hub,
        streams,
        metrics,
        tick,
        shutdown: shutdown.clone(),
        started: Instant::now(),
        host_metrics,
    });
    Ok((state, demo_dir))
}

/// Everything a connection task needs, shared by all of them.
struct Connections {
    /// The one router every request goes through.
    router: axum::Router,
    /// `--send-timeout` on the socket.
    send_timeout: Duration,
    /// `--header-timeout` and `--idle-timeout`.
    timeouts: Timeouts,
    /// hyper's HTTP/1 settings.
    http1: hyper::server::conn::http1::Builder,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

/// Accepts connections on `listener` until shutdown, then waits for every
/// connection to end (SSE bodies end on shutdown).
async fn serve(listener: TcpListener, connections: Arc<Connections>) -> io::Result<()> {
    let tasks = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = connections.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _addr)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let connections = connections.clone();
        tasks.spawn(async move { connections.serve_plain(stream).await });
    }
    tasks.close();
    tasks.wait().await;
    Ok(())
}

impl Connections {
    /// Serves one plaintext connection.
    ///
    /// It first goes to [`sse_conn::serve`], which reads the request head
    /// into a small buffer and serves SSE requests itself, without hyper's
    /// two 8 KiB buffers; every other request is handed to hyper with the
    /// bytes already read replayed. On the hyper path the router is shared
    /// (an `Arc` clone) and its future is boxed only while a request is
    /// being routed, so hyper's per-connection slot for the service future
    /// holds a pointer (axum's serve rebuilds the route tables per
    /// connection, ~8 KiB, and keeps the ~4 KiB future).
    async fn serve_plain(self: Arc<Self>, stream: TcpStream) {
        let accepted = tokio::time::Instant::now();
        // Events must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let io = SendTimeoutIo::new(stream, self.send_timeout, self.metrics.clone());
        let head_deadline = accepted + self.timeouts.header;
        if let Some(io) = sse_conn::serve(io, &self.router, &self.shutdown, head_deadline).await {
            // Boxed: hyper's connection state must not size the task of
            // every lean SSE connection.
            Box::pin(self.serve_http1(io, accepted)).await;
        }
    }

    /// Serves one HTTP/1 connection with hyper until it ends, its head or
    /// idle deadline passes (see [`timeouts`]), or shutdown, when it
    /// finishes the current response and closes.
    async fn serve_http1<IO>(&self, io: IO, accepted: tokio::time::Instant)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        use tower::ServiceExt as _;

        let activity = Activity::new(self.timeouts, accepted);
        let router = self.router.clone();
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |request| -> RouteFuture {
            let guard = requests.begin();
            let answer = router.clone().oneshot(request);
            Box::pin(async move {
                let Ok(response) = answer.await;
                Ok(response.map(|body| Body::new(ActiveBody::new(body, guard))))
            })
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
}

/// The router's answer to one request, boxed (see
/// [`Connections::serve_plain`]).
type RouteFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;
