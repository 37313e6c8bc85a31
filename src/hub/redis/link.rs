//! The command connection and its supervisor: connect, agree on the epoch,
//! probe liveness, reconnect with backoff.
//!
//! One multiplexed connection carries every command of the node
//! (publishes, history reads, claims); the feed has its own (see `feed`).
//! The supervisor runs the epoch check ([`super::scripts::SYNC`]) as the
//! liveness probe: it must answer within [`PROBE_TIMEOUT`], or the
//! connection is dropped, the node is `degraded` and publishes fail at once
//! until a new connection has passed the check. A timeout is not an error
//! the `redis` crate's connection manager reconnects on, which is why this
//! module keeps the connection itself.
//!
//! The socket under each connection is ours ([`Watched`]): it records when
//! Redis closed it. A connection whose socket has closed is never used
//! again: `/health` says `degraded` at once, and a publish that finds it
//! so goes once on a fresh connection (see [`publish`] for why that can
//! never publish twice).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify};

use super::cluster::{self, Primary};
use super::scripts::{int, items, text, unexpected};
use super::{
    Line, Node, BACKOFF_MAX, BACKOFF_MIN, COMMAND_TIMEOUT, CONNECT_TIMEOUT, FEED_MIN_LEN,
    PROBE_INTERVAL, PROBE_TIMEOUT, START_TIMEOUT,
};
use crate::hub::{Budget, ChannelName, Creator, Health, HubError};

/// A connection to Redis and whether its socket has closed.
#[derive(Clone)]
pub(crate) struct Conn {
    /// The connection commands are sent on.
    pub(crate) multiplexed: MultiplexedConnection,
    /// Set by the socket ([`Watched`]) on EOF or an error: from then on
    /// the connection's task writes nothing more.
    closed: Arc<AtomicBool>,
    /// Cluster mode: the primary of the slot this connection goes to.
    primary: Option<Arc<Primary>>,
}

impl Conn {
    pub(crate) fn with_primary(self, primary: Primary) -> Conn {
        Conn {
            primary: Some(Arc::new(primary)),
            ..self
        }
    }

    pub(crate) fn primary(&self) -> Option<&Primary> {
        self.primary.as_deref()
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn same(&self, other: &Conn) -> bool {
        Arc::ptr_eq(&self.closed, &other.closed)
    }
}

/// State of the command connection, shared by every task of the node.
pub(crate) struct Link {
    /// The live connection; `None` while Redis is unreachable (std mutex:
    /// held only to clone or replace it).
    conn: Mutex<Option<Conn>>,
    /// One reconnection at a time from publishes (see [`reconnect`]).
    reconnecting: tokio::sync::Mutex<()>,
    /// The epoch agreed with Redis; the feed reader follows it.
    pub(crate) line: watch::Sender<Option<Line>>,
    /// The epoch check passes on the command connection.
    commands_up: AtomicBool,
    /// The feed reader is connected and reading.
    pub(crate) feed_up: AtomicBool,
    /// The last failure, for `/health`.
    problem: Mutex<String>,
    /// Highest number seen on the current epoch (epoch, seq): when Redis
    /// reports less, it lost writes.
    seen: Mutex<(Arc<str>, u64)>,
    /// Wakes the supervisor for an epoch check now.
    check_now: Notify,
}

impl Link {
    pub(crate) fn new() -> Self {
        Link {
            conn: Mutex::new(None),
            reconnecting: tokio::sync::Mutex::new(()),
            line: watch::Sender::new(None),
            commands_up: AtomicBool::new(false),
            feed_up: AtomicBool::new(false),
            problem: Mutex::new(String::new()),
            seen: Mutex::new((Arc::from(""), 0)),
            check_now: Notify::new(),
        }
    }

    pub(crate) fn start(&self, conn: Conn, line: Line, seq: u64) {
        *self.seen.lock().expect("seen lock") = (line.epoch.clone(), seq);
        self.line.send_replace(Some(line));
        self.install(conn);
    }

    /// Makes `conn` (which passed the epoch check) the command connection.
    fn install(&self, conn: Conn) {
        *self.conn.lock().expect("conn lock") = Some(conn);
        self.commands_up.store(true, Ordering::Release);
    }

    /// The command connection while up. `Ok(None)`: it was up but Redis has
    /// closed its socket (the node is now `degraded` and the supervisor
    /// reconnects); `Err`: Redis is unreachable.
    fn live(&self) -> Result<Option<Conn>, HubError> {
        let conn = match &*self.conn.lock().expect("conn lock") {
            Some(conn) if self.commands_up.load(Ordering::Acquire) => conn.clone(),
            _ => return Err(self.unavailable()),
        };
        if conn.is_closed() {
            self.down_conn(Some(&conn), "Redis closed the connection");
            self.check_now.notify_one();
            return Ok(None);
        }
        Ok(Some(conn))
    }

    /// The command connection, or why there is none.
    fn conn(&self) -> Result<MultiplexedConnection, HubError> {
        match self.live()? {
            Some(conn) => Ok(conn.multiplexed),
            None => Err(self.unavailable()),
        }
    }

    /// The installed connection whatever its state (for the supervisor),
    /// unless its socket has closed.
    fn installed(&self) -> Option<Conn> {
        let conn = self.conn.lock().expect("conn lock").clone()?;
        if conn.is_closed() {
            self.down_conn(Some(&conn), "Redis closed the connection");
            return None;
        }
        Some(conn)
    }

    fn unavailable(&self) -> HubError {
        HubError::Unavailable {
            detail: format!(
                "Redis is unreachable ({}); retry later",
                self.problem.lock().expect("problem lock")
            ),
        }
    }

    /// Cluster mode: `host:port` of the primary the command connection
    /// goes to (while it has one).
    pub(crate) fn primary_addr(&self) -> Option<String> {
        let conn = self.conn.lock().expect("conn lock");
        conn.as_ref()?.primary().map(|p| p.addr.clone())
    }

    /// The current epoch.
    pub(crate) fn line(&self) -> Option<Line> {
        self.line.borrow().clone()
    }

    /// Records that `seq` exists on `epoch`.
    pub(crate) fn saw(&self, epoch: &str, seq: u64) {
        let mut seen = self.seen.lock().expect("seen lock");
        if &*seen.0 == epoch && seq > seen.1 {
            seen.1 = seq;
        }
    }

    /// The highest number seen on the current epoch.
    pub(crate) fn seen(&self) -> u64 {
        self.seen.lock().expect("seen lock").1
    }

    pub(crate) fn set_problem(&self, what: &str, why: impl std::fmt::Display) {
        *self.problem.lock().expect("problem lock") = format!("{what}: {why}");
    }

    fn down(&self, why: impl std::fmt::Display) {
        self.down_conn(None, why);
    }

    /// Marks the command connection lost; with `failed`, only if that is
    /// still the installed one (not one a publish has installed since).
    fn down_conn(&self, failed: Option<&Conn>, why: impl std::fmt::Display) {
        {
            let mut conn = self.conn.lock().expect("conn lock");
            if let (Some(failed), Some(current)) = (failed, conn.as_ref()) {
                if !failed.same(current) {
                    return;
                }
            }
            *conn = None;
        }
        if self.commands_up.swap(false, Ordering::AcqRel) {
            tracing::warn!("Redis connection lost: {why}");
        }
        self.set_problem("commands", why);
    }

    /// A command failed: when the connection itself is gone, the node is
    /// degraded at once (not at the next probe) and the supervisor
    /// reconnects now.
    fn failed(&self, e: &redis::RedisError) {
        if e.is_unrecoverable_error() || e.is_io_error() || cluster::redirected(e) {
            self.down(e);
        }
        self.check_now.notify_one();
    }

    /// `ok` only while commands go through: the command connection passed
    /// its last check and its socket is open, and the feed is read.
    pub(crate) fn health(&self) -> Health {
        let open = self.installed().is_some();
        if open && self.commands_up.load(Ordering::Acquire) && self.feed_up.load(Ordering::Acquire)
        {
            Health::Ok
        } else {
            Health::Degraded(self.problem.lock().expect("problem lock").clone())
        }
    }
}

/// A connection with the node's timeouts: `response` bounds every reply
/// (`None` for the feed, whose reads block on purpose). With `--redis`, to
/// the server; with `--redis-cluster`, to the primary of the node's slot
/// (see `cluster`).
pub(crate) async fn connect(
    node: &Node,
    response: Option<Duration>,
) -> Result<Conn, redis::RedisError> {
    if node.opts.cluster {
        cluster::connect_primary(node, response).await
    } else {
        open(node.client.get_connection_info(), response).await
    }
}

/// A connection to the server `info` names. The socket is opened here,
/// not by the `redis` crate, so that it can tell when it closed
/// ([`Watched`]).
pub(crate) async fn open(
    info: &ConnectionInfo,
    response: Option<Duration>,
) -> Result<Conn, redis::RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(response);
    let closed = Arc::new(AtomicBool::new(false));
    let connecting = async {
        let socket: Box<dyn Socket> = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                tcp.set_nodelay(true)?;
                Box::new(tcp)
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            _ => {
                return Err(redis::RedisError::from(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "only redis:// and redis+unix:// are supported",
                )))
            }
        };
        let socket = Watched {
            inner: socket,
            closed: closed.clone(),
        };
        let (multiplexed, driver) =
            MultiplexedConnection::new_with_config(info.redis_settings(), socket, config).await?;
        // Ends when Redis closes the socket or every clone is dropped.
        tokio::spawn(driver);
        Ok(Conn {
            multiplexed,
            closed,
            primary: None,
        })
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(result) => result,
        Err(_) => Err(timed_out("connect")),
    }
}

/// A socket to Redis.
trait Socket: AsyncRead + AsyncWrite + Send + Unpin {}
impl<S: AsyncRead + AsyncWrite + Send + Unpin> Socket for S {}

/// A socket that records when it closed: EOF or an error on a read, an
/// error on a write. The `redis` crate's connection task stops at the
/// first of these and writes nothing after it, so a command handed to a
/// connection whose flag was already set never reached Redis.
struct Watched {
    inner: Box<dyn Socket>,
    closed: Arc<AtomicBool>,
}

impl Watched {
    fn watch<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(_)) = &result {
            self.closed.store(true, Ordering::Release);
        }
        result
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let room = buf.remaining();
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && room > 0 && buf.filled().len() == before {
            self.closed.store(true, Ordering::Release);
        }
        self.watch(result)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(result)
    }
}

pub(crate) fn timed_out(what: &str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what}: no answer from Redis"),
    ))
}

/// Runs the epoch check on `conn`: returns the agreed epoch and Redis's
/// sequence. In cluster mode it also checks that the primary is the one
/// the epoch was agreed on, or that the switch kept every write (see
/// `cluster`).
async fn sync(
    node: &Node,
    conn: &Conn,
    current: Option<&Line>,
) -> Result<(Line, u64), redis::RedisError> {
    let (record, proven) = cluster::primary_args(node, conn).await;
    let (epoch, seen, feed) = match current {
        Some(line) => (
            line.epoch.to_string(),
            node.link.seen(),
            node.keys.feed(line.tag.as_str()),
        ),
        None => (String::new(), 0, node.keys.feed("none")),
    };
    let fresh = format!("{:08x}", rand::random::<u32>());
    let mut invocation = node.scripts.sync.prepare_invoke();
    invocation
        .key(&node.keys.epoch)
        .key(&node.keys.seq)
        .key(feed)
        .key(&node.keys.primary)
        .arg(epoch)
        .arg(seen)
        .arg(fresh)
        .arg(record)
        .arg(proven);
    let mut multiplexed = conn.multiplexed.clone();
    let call = invocation.invoke_async::<Value>(&mut multiplexed);
    let reply = match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Ok(reply) => reply?,
        Err(_) => return Err(timed_out("liveness probe")),
    };
    let parts = items(&reply).ok_or_else(|| unexpected("epoch check", &reply))?;
    let (Some(epoch), Some(seq)) = (parts.first().and_then(text), parts.get(1).and_then(int))
    else {
        return Err(unexpected("epoch check", &reply));
    };
    let line = Line::parse(epoch).ok_or_else(|| unexpected("epoch", &reply))?;
    Ok((line, seq))
}

/// Connects at start, retrying for up to [`START_TIMEOUT`]. The error says
/// whether it is final at once (`--redis-cluster` on a server not in
/// cluster mode).
pub(crate) async fn first_connect(node: &Node) -> Result<(Conn, Line, u64), (String, bool)> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    let mut backoff = BACKOFF_MIN;
    loop {
        let attempt = async {
            let conn = connect(node, Some(COMMAND_TIMEOUT)).await?;
            let (line, seq) = sync(node, &conn, None).await?;
            Ok::<_, redis::RedisError>((conn, line, seq))
        };
        match attempt.await {
            Ok(ok) => return Ok(ok),
            Err(e) if cluster::not_cluster(&e) => return Err((e.to_string(), true)),
            Err(e) if tokio::time::Instant::now() + backoff >= deadline => {
                return Err((e.to_string(), false))
            }
            Err(e) => {
                tracing::info!("waiting for Redis: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// A jittered delay between `d / 2` and `d`.
pub(crate) fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + rand::random::<f64>() / 2.0)
}

/// The supervisor: probes the command connection every [`PROBE_INTERVAL`]
/// (or at once when asked), adopts epoch changes, refreshes claims, and
/// reconnects with backoff when the probe fails. Runs until shutdown.
pub(crate) async fn supervise(node: Arc<Node>) {
    let mut backoff = BACKOFF_MIN;
    // A new connection not yet checked; otherwise the installed one (which
    // a publish may have replaced, see `reconnect`).
    let mut conn: Option<Conn> = None;
    let mut next_prune = tokio::time::Instant::now() + sweep_interval(&node);
    let mut next_census = tokio::time::Instant::now();
    loop {
        let Some(checked) = conn.take().or_else(|| node.link.installed()) else {
            tokio::select! {
                _ = node.shutdown.cancelled() => return,
                _ = tokio::time::sleep(jitter(backoff)) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            match connect(&node, Some(COMMAND_TIMEOUT)).await {
                Ok(fresh) => conn = Some(fresh),
                Err(e) => node.link.down(format!("reconnect failed: {e}")),
            }
            continue;
        };
        let mut live = checked.multiplexed.clone();
        let current = node.link.line();
        match sync(&node, &checked, current.as_ref()).await {
            Ok((line, seq)) => {
                adopt(&node, line, seq);
                if !node.link.commands_up.load(Ordering::Acquire) {
                    tracing::info!("Redis connection restored");
                }
                node.link.install(checked);
                backoff = BACKOFF_MIN;
                super::claims::refresh(&node, &mut live).await;
                if tokio::time::Instant::now() >= next_census {
                    next_census = tokio::time::Instant::now() + super::census::CENSUS_EVERY;
                    super::census::report(&node, &mut live).await;
                }
                if tokio::time::Instant::now() >= next_prune {
                    next_prune = tokio::time::Instant::now() + sweep_interval(&node);
                    prune(&node).await;
                }
            }
            Err(e) => {
                node.link.down_conn(Some(&checked), e);
                continue;
            }
        }
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
            _ = node.link.check_now.notified() => {}
        }
    }
}

/// How often expired channels are looked for: a quarter of
/// `--history-ttl`, between 1 s and 30 s.
fn sweep_interval(node: &Node) -> Duration {
    (node.opts.limits.history_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// Takes the epoch Redis agreed on: a new one makes the feed reader switch.
fn adopt(node: &Node, line: Line, seq: u64) {
    let changed = node.link.line.send_if_modified(|current| {
        if current.as_ref() == Some(&line) {
            return false;
        }
        tracing::warn!(
            "Redis history line changed to epoch {} (numbers above {}): subscribers get `history lost`",
            line.tag,
            line.base
        );
        *current = Some(line.clone());
        true
    });
    let mut seen = node.link.seen.lock().expect("seen lock");
    if changed || seen.0 != line.epoch {
        *seen = (line.epoch.clone(), seq);
    } else if seq > seen.1 {
        seen.1 = seq;
    }
}

/// Runs an epoch check now on the command connection (after a publish was
/// refused for being on another epoch).
async fn resync(node: &Node) -> Result<(), HubError> {
    let conn = node.link.live()?.ok_or_else(|| node.link.unavailable())?;
    let current = node.link.line();
    match sync(node, &conn, current.as_ref()).await {
        Ok((line, seq)) => {
            adopt(node, line, seq);
            Ok(())
        }
        Err(e) => {
            node.link.check_now.notify_one();
            Err(HubError::Unavailable {
                detail: format!("Redis did not answer: {e}"),
            })
        }
    }
}

/// The limit the publish script checks for creating `channel`: none for
/// log streams and `broadcast`, which clients cannot crowd out;
/// `--max-channels` for a client's channel. The script counts every
/// channel in Redis, log streams and ingest channels included, so an
/// ingest channel gets `--max-channels` plus `--max-ingest-channels`:
/// client channels alone cannot crowd it out.
fn channel_limit(channel: &str, creator: Creator, limits: &super::super::HubLimits) -> usize {
    match ChannelName::parse(channel) {
        Ok(name) => match creator.budget(name.kind()) {
            Budget::Free => usize::MAX,
            Budget::Client => limits.max_channels,
            Budget::Ingest => limits
                .max_channels
                .saturating_add(limits.max_ingest_channels),
        },
        Err(_) => limits.max_channels,
    }
}

/// Replaces a command connection whose socket Redis closed, for a publish
/// that found it so: a new connection, checked (epoch) and installed.
/// Publishes that find the same dead connection at once share one attempt.
async fn reconnect(node: &Node) -> Result<Conn, HubError> {
    let _one = node.link.reconnecting.lock().await;
    if let Ok(Some(conn)) = node.link.live() {
        return Ok(conn);
    }
    let fresh = connect(node, Some(COMMAND_TIMEOUT)).await.map_err(|e| {
        node.link.down(format!("reconnect failed: {e}"));
        node.link.unavailable()
    })?;
    let current = node.link.line();
    match sync(node, &fresh, current.as_ref()).await {
        Ok((line, seq)) => {
            adopt(node, line, seq);
            node.link.install(fresh.clone());
            tracing::info!("Redis connection restored");
            Ok(fresh)
        }
        Err(e) => {
            node.link.down(format!("reconnect failed: {e}"));
            node.link.check_now.notify_one();
            Err(node.link.unavailable())
        }
    }
}

/// Publishes `events` of `channel` in one script call; returns the first
/// and last numbers and the epoch they belong to. Fails at once while
/// Redis is unreachable: an event is answered only once Redis has it.
///
/// Retried once, on a fresh connection, only when the command connection's
/// socket was already closed before this publish handed it anything. That
/// cannot publish twice: the `redis` crate's connection task stops at the
/// EOF or error that closed the socket and writes nothing after it, so the
/// first try never left this process. A failure after the command was
/// handed over (broken pipe, reset, timeout) is not retried: the script
/// may have run, and only the client can decide to send again.
pub(crate) async fn run_publish_script(
    node: &Node,
    channel: &str,
    events: &[(&str, &str)],
) -> Result<(u64, u64, Line), HubError> {
    let events: Vec<(usize, &str, &str)> = events.iter().map(|(t, d)| (0, *t, *d)).collect();
    run_publish_multi_script(node, &[channel], &events, Creator::Client).await
}

/// [`publish`] for events of several channels (`channels` distinct; each
/// event names its channel by index) in one script call: consecutive
/// numbers in the given order, all or nothing. Channels missing are
/// created on `creator`'s budget.
pub(crate) async fn run_publish_multi_script(
    node: &Node,
    channels: &[&str],
    events: &[(usize, &str, &str)],
    creator: Creator,
) -> Result<(u64, u64, Line), HubError> {
    let limits = &node.opts.limits;
    let mut reconnected = false;
    for attempt in 0..2 {
        let mut conn = match node.link.live()? {
            Some(conn) => conn.multiplexed,
            None if !reconnected => {
                reconnected = true;
                reconnect(node).await?.multiplexed
            }
            None => return Err(node.link.unavailable()),
        };
        let line = node.link.line().ok_or_else(|| node.link.unavailable())?;
        let mut call = node.scripts.publish.prepare_invoke();
        call.key(&node.keys.epoch)
            .key(&node.keys.seq)
            .key(node.keys.feed(line.tag.as_str()))
            .key(&node.keys.channels);
        for channel in channels {
            call.key(node.keys.channel(channel));
        }
        call.arg(&*line.epoch)
            .arg(limits.history)
            .arg(limits.history.max(FEED_MIN_LEN))
            .arg(limits.history_ttl.as_millis() as u64)
            .arg(channels.len())
            .arg(match creator {
                Creator::Client => "",
                Creator::Ingest => super::replica::INGEST,
            });
        for channel in channels {
            call.arg(*channel)
                .arg(channel_limit(channel, creator, limits));
        }
        for (index, event_type, data) in events {
            call.arg(index + 1).arg(*event_type).arg(*data);
        }
        let reply = match tokio::time::timeout(
            COMMAND_TIMEOUT,
            call.invoke_async::<Value>(&mut conn),
        )
        .await
        {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                node.link.failed(&e);
                return Err(HubError::Unavailable {
                    detail: format!("Redis did not confirm the publish: {e}"),
                });
            }
            Err(_) => {
                node.link.check_now.notify_one();
                return Err(HubError::Unavailable {
                    detail: "Redis did not answer the publish in time".into(),
                });
            }
        };
        let parts = items(&reply).unwrap_or_default();
        match parts.first().and_then(text) {
            Some("ok") => {
                let (Some(first), Some(last)) =
                    (parts.get(1).and_then(int), parts.get(2).and_then(int))
                else {
                    break;
                };
                node.link.saw(&line.epoch, last);
                node.tap_published(channels, events, first, &line);
                return Ok((first, last, line));
            }
            Some("full") if attempt == 0 && prune(node).await > 0 => {}
            Some("full") => {
                return Err(match creator {
                    Creator::Client => HubError::TooManyChannels {
                        limit: limits.max_channels,
                    },
                    Creator::Ingest => HubError::TooManyIngestChannels {
                        limit: limits.max_ingest_channels,
                    },
                })
            }
            Some("epoch") | Some("behind") if attempt == 0 => resync(node).await?,
            _ => break,
        }
    }
    Err(HubError::Unavailable {
        detail: "Redis's history line changed during the publish; retry".into(),
    })
}

/// Channels looked at per prune.
const PRUNE_BATCH: usize = 1000;

/// Drops expired channels from the channel set; returns how many. The
/// least recently published channels are read first, then the prune
/// script checks them with every key it looks at declared (a script that
/// built key names itself would be refused by Redis Cluster).
pub(crate) async fn prune(node: &Node) -> u64 {
    let Ok(mut conn) = node.link.conn() else {
        return 0;
    };
    let mut range = redis::cmd("ZRANGE");
    range.arg(&node.keys.channels).arg(0).arg(PRUNE_BATCH - 1);
    let call = range.query_async::<Vec<String>>(&mut conn);
    let Ok(names) = query(node, call).await else {
        return 0;
    };
    if names.is_empty() {
        return 0;
    }
    let mut invocation = node.scripts.prune.prepare_invoke();
    invocation.key(&node.keys.channels);
    for name in &names {
        invocation
            .key(node.keys.channel(name))
            .key(node.keys.owner(name))
            .arg(name);
    }
    let call = invocation.invoke_async::<u64>(&mut conn);
    query(node, call).await.unwrap_or(0)
}

/// Reads retained events of `channel` in (after, upto], oldest first (or
/// the newest `count` when `newest`), at most about `budget` bytes of them
/// (at least one), with the number up to which the stream was trimmed.
pub(crate) async fn history(
    node: &Node,
    channel: &str,
    after: u64,
    upto: u64,
    count: usize,
    newest: bool,
    budget: u64,
) -> Result<HistoryRead, HubError> {
    let mut conn = node.link.conn()?;
    let mut invocation = node.scripts.history.prepare_invoke();
    invocation
        .key(node.keys.channel(channel))
        .arg(after)
        .arg(upto)
        .arg(count)
        .arg(if newest { "rev" } else { "fwd" })
        .arg(budget.max(1));
    let call = invocation.invoke_async::<Value>(&mut conn);
    let reply = match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            node.link.failed(&e);
            return Err(HubError::Unavailable {
                detail: format!("reading history: {e}"),
            });
        }
        Err(_) => {
            node.link.check_now.notify_one();
            return Err(HubError::Unavailable {
                detail: "reading history: no answer".into(),
            });
        }
    };
    let bad = || HubError::Unavailable {
        detail: format!("unexpected history reply {reply:?}"),
    };
    let parts = items(&reply).ok_or_else(bad)?;
    let [deleted, list, more] = parts else {
        return Err(bad());
    };
    let more = matches!(more, Value::Int(1));
    let deleted = text(deleted)
        .and_then(|id| id.split_once('-'))
        .map(|(ms, seq)| {
            if ms == "0" {
                seq.parse().unwrap_or(0)
            } else {
                u64::MAX
            }
        })
        .unwrap_or(0);
    let mut entries = super::scripts::entries(list).map_err(|_| bad())?;
    if newest {
        entries.reverse();
    }
    Ok(HistoryRead {
        trimmed: deleted,
        entries,
        more,
    })
}

/// One read of a channel stream (see [`history`]).
pub(crate) struct HistoryRead {
    /// The number below which the channel's events are gone.
    pub trimmed: u64,
    /// The entries read, oldest first.
    pub entries: Vec<super::scripts::Entry>,
    /// The byte budget cut `entries` short of the count asked for.
    pub more: bool,
}

/// Redis's current sequence number.
pub(crate) async fn cluster_seq(node: &Node) -> Result<u64, HubError> {
    let mut conn = node.link.conn()?;
    let mut cmd = redis::cmd("GET");
    cmd.arg(&node.keys.seq);
    let call = cmd.query_async::<Option<u64>>(&mut conn);
    match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
        Ok(Ok(seq)) => Ok(seq.unwrap_or(0)),
        _ => Err(node.link.unavailable()),
    }
}

/// Whether `channel` is in the cluster's channel set.
pub(crate) async fn has_channel(node: &Node, channel: &str) -> Result<bool, HubError> {
    let mut conn = node.link.conn()?;
    let mut cmd = redis::cmd("ZSCORE");
    cmd.arg(&node.keys.channels).arg(channel);
    let call = cmd.query_async::<Option<f64>>(&mut conn);
    Ok(query(node, call).await?.is_some())
}

/// The cluster's channels with their newest numbers.
pub(crate) async fn cluster_channels(node: &Node) -> Result<Vec<(String, u64)>, HubError> {
    let mut conn = node.link.conn()?;
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(&node.keys.channels)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES");
    let call = cmd.query_async::<Vec<(String, f64)>>(&mut conn);
    match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
        Ok(Ok(list)) => Ok(list
            .into_iter()
            .map(|(name, score)| (name, score.max(0.0) as u64))
            .collect()),
        _ => Err(node.link.unavailable()),
    }
}

/// Runs `cmd` on the command connection with the command timeout.
pub(crate) async fn query<T: redis::FromRedisValue>(
    node: &Node,
    invocation: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, HubError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, invocation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(HubError::Unavailable {
            detail: e.to_string(),
        }),
        Err(_) => {
            node.link.check_now.notify_one();
            Err(HubError::Unavailable {
                detail: "no answer from Redis".into(),
            })
        }
    }
}

/// The command connection (for modules that build their own commands).
/// A connection whose socket has closed is not handed out.
pub(crate) fn command_conn(node: &Node) -> Result<MultiplexedConnection, HubError> {
    node.link.conn()
}
