//! The syslog listeners of `--syslog-tcp` and `--syslog-udp`: sockets,
//! limits and back-pressure around the parser in [`crate::ingest::syslog`].
//!
//! Syslog carries no credentials: whoever reaches the port publishes to
//! the channels `--syslog-channel` maps to. Each message is one event of
//! type `message` whose data is [`crate::ingest::Record::event_data`].
//!
//! - TCP: one task per connection, at most `MAX_TCP_CONNECTIONS` at
//!   once (more are closed at once and counted). A connection reads into
//!   one buffer of at most `--max-line` plus one read; the messages of one
//!   read are published together (one batch per channel, in order). A bad
//!   frame, an oversize one, text that is no syslog message, or a frame
//!   left unfinished for `--idle-timeout` closes that connection only
//!   (messages before it are published) and is counted in
//!   `tailcast_syslog_dropped_total{reason}`. An idle connection between
//!   frames stays open: senders keep theirs for days.
//! - Back-pressure: when the hub cannot take messages now (Redis down), a
//!   TCP connection stops reading and retries, so the sender buffers
//!   (rsyslog's queue, the kernel's socket buffers); UDP has no way to
//!   push back, and drops and counts (`reason="unavailable"`).
//! - Both stop on the shutdown token.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServeConfig;
use crate::hub::{ChannelName, Creator, Hub, HubError};
use crate::ingest::syslog::{parse_message, ChannelTemplate, FrameError, Framer};
use crate::ingest::{self, Record};
use crate::metrics::Metrics;

/// Most syslog TCP connections open at once; more are closed on accept
/// and counted (`reason="connection_limit"`). Each holds at most about
/// `--max-line` plus 16 KiB of buffer.
pub(crate) const MAX_TCP_CONNECTIONS: usize = 1024;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Most datagrams taken in one go (one publish) on UDP.
const UDP_BATCH: usize = 256;

/// Largest UDP datagram.
const MAX_DATAGRAM: usize = 65_535;

/// First and longest wait before retrying a publish the hub refused for
/// now (TCP).
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The bound syslog sockets, before they serve.
pub(crate) struct Listeners {
    tcp: Option<TcpListener>,
    udp: Option<UdpSocket>,
}

impl Listeners {
    /// Binds `--syslog-tcp` and `--syslog-udp` (none given: nothing).
    ///
    /// # Errors
    /// An address cannot be bound (the message names the option).
    pub(crate) async fn bind(config: &ServeConfig) -> io::Result<Listeners> {
        let tcp = match &config.syslog_tcp {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("--syslog-tcp: cannot listen on {addr}: {e}"),
                )
            })?),
            None => None,
        };
        let udp = match &config.syslog_udp {
            Some(addr) => Some(UdpSocket::bind(addr).await.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("--syslog-udp: cannot listen on {addr}: {e}"),
                )
            })?),
            None => None,
        };
        Ok(Listeners { tcp, udp })
    }

    /// The bound TCP address.
    pub(crate) fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound UDP address.
    pub(crate) fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// Serves both sockets on `tracker` until `shutdown`.
    pub(crate) fn start(
        self,
        config: &ServeConfig,
        hub: Hub,
        metrics: Arc<Metrics>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) {
        let sink = Arc::new(Sink {
            hub,
            metrics,
            template: config.syslog_channel.clone(),
            max_frame: config.max_line,
            stall: config.idle_timeout,
            max_batch: config.history.max(1),
            shutdown: shutdown.clone(),
        });
        if let Some(tcp) = self.tcp {
            tracker.spawn(accept(tcp, sink.clone(), tracker.clone()));
        }
        if let Some(udp) = self.udp {
            tracker.spawn(receive(udp, sink));
        }
    }
}

/// What every syslog task shares: where messages go and the limits.
struct Sink {
    hub: Hub,
    metrics: Arc<Metrics>,
    /// `--syslog-channel`.
    template: ChannelTemplate,
    /// `--max-line`: the largest frame or datagram.
    max_frame: usize,
    /// `--idle-timeout`: longest time a frame may stay unfinished.
    stall: Duration,
    /// `--history`: most events of one batch.
    max_batch: usize,
    shutdown: CancellationToken,
}

/// Why a publish did not happen.
enum Refusal {
    /// The hub cannot take them now (Redis unavailable): retry later.
    /// (What can never be accepted, such as too many channels or a failed
    /// write to the event log, is dropped with a warning and counted.)
    Later,
}

impl Sink {
    /// Publishes `records` in order, one batch per channel, from group
    /// `*done` on; `*done` counts the groups committed, so that a retry
    /// publishes nothing twice.
    async fn commit_groups(
        &self,
        groups: &[(ChannelName, Vec<String>)],
        done: &mut usize,
    ) -> Result<(), Refusal> {
        while let Some((channel, data)) = groups.get(*done) {
            let events: Vec<(&ChannelName, &str, &str)> = data
                .iter()
                .map(|d| (channel, ingest::EVENT_TYPE, d.as_str()))
                .collect();
            // Syslog channels count against --max-ingest-channels.
            match self.hub.publish_multi(&events, Creator::Ingest).await {
                Ok(batch) => {
                    self.metrics.events_published.inc_by(batch.count as u64);
                    self.metrics.syslog_messages.inc_by(batch.count as u64);
                    *done += 1;
                }
                Err(HubError::Unavailable { detail }) => {
                    tracing::debug!("syslog: the hub cannot take messages now: {detail}");
                    return Err(Refusal::Later);
                }
                Err(e) => {
                    tracing::warn!(%channel, "syslog: {} message(s) dropped: {e}", data.len());
                    for _ in data {
                        self.metrics.syslog_dropped("refused");
                    }
                    *done += 1;
                }
            }
        }
        Ok(())
    }

    /// `records` grouped by channel, in order of first appearance, each
    /// group at most `--history` events (a larger batch would be refused
    /// whole: its first events would be evicted by its last); a channel's
    /// groups keep its messages' order.
    fn group(&self, records: &[Record]) -> Vec<(ChannelName, Vec<String>)> {
        let received = ingest::now_ns();
        let mut groups: Vec<(ChannelName, Vec<String>)> = Vec::new();
        for record in records {
            let channel = self.template.channel(&record.labels);
            let data = record.event_data(received);
            match groups.iter_mut().rev().find(|(name, _)| *name == channel) {
                Some((_, events)) if events.len() < self.max_batch => events.push(data),
                _ => groups.push((channel, vec![data])),
            }
        }
        groups
    }

    /// Publishes `records`, waiting (without reading more) while the hub
    /// cannot take them. `false`: shutdown came first.
    async fn publish_with_backpressure(&self, records: &[Record]) -> bool {
        if records.is_empty() {
            return true;
        }
        let groups = self.group(records);
        let mut done = 0;
        let mut wait = RETRY_FIRST;
        loop {
            match self.commit_groups(&groups, &mut done).await {
                Ok(()) => return true,
                Err(Refusal::Later) => {}
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return false,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
    }
}

/// Accepts syslog TCP connections until shutdown.
async fn accept(listener: TcpListener, sink: Arc<Sink>, tracker: TaskTracker) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            _ = sink.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("syslog accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            sink.metrics.syslog_dropped("connection_limit");
            drop(stream);
            continue;
        };
        let sink = sink.clone();
        tracker.spawn(async move {
            if let Err(reason) = serve_tcp(stream, &sink).await {
                tracing::debug!(%peer, "syslog connection closed: {reason}");
                sink.metrics.syslog_dropped(reason);
            }
            drop(slot);
        });
    }
}

/// The reason label of a frame error.
fn frame_reason(error: &FrameError) -> &'static str {
    match error {
        FrameError::TooLarge { .. } => "oversize",
        FrameError::BadCount => "bad_frame",
    }
}

/// Reads, frames, parses and publishes one TCP connection until it ends
/// (`Ok`) or must be closed (`Err` with the reason to count).
async fn serve_tcp(mut stream: TcpStream, sink: &Sink) -> Result<(), &'static str> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut framer = Framer::new(sink.max_frame);
    // When the unfinished frame at the buffer's front began.
    let mut partial_since: Option<tokio::time::Instant> = None;
    let mut records = Vec::new();
    loop {
        let mut failure = None;
        loop {
            match framer.next_frame(&mut buf) {
                Ok(Some(frame)) => match parse_message(&frame) {
                    Ok(record) => records.push(record),
                    Err(_) => {
                        failure = Some("unparsable");
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    failure = Some(frame_reason(&e));
                    break;
                }
            }
        }
        // Messages before a bad frame are published; then it closes.
        if !sink.publish_with_backpressure(&records).await {
            return Ok(());
        }
        records.clear();
        if let Some(reason) = failure {
            return Err(reason);
        }
        partial_since = if buf.is_empty() {
            None
        } else {
            Some(partial_since.unwrap_or_else(tokio::time::Instant::now))
        };
        buf.reserve(READ_CHUNK);
        let read = async {
            match partial_since {
                Some(since) => {
                    tokio::time::timeout_at(since + sink.stall, stream.read_buf(&mut buf))
                        .await
                        .map_err(|_| "stalled")
                }
                None => Ok(stream.read_buf(&mut buf).await),
            }
        };
        let read = tokio::select! {
            _ = sink.shutdown.cancelled() => return Ok(()),
            read = read => read?,
        };
        match read {
            Ok(0) => {
                return match framer.finish(&mut buf) {
                    Ok(Some(frame)) => {
                        let record = parse_message(&frame).map_err(|_| "unparsable")?;
                        sink.publish_with_backpressure(&[record]).await;
                        Ok(())
                    }
                    Ok(None) => Ok(()),
                    Err(_) => Err("truncated"),
                };
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
}

/// Receives syslog datagrams until shutdown: one datagram, one message;
/// the datagrams waiting are published together.
async fn receive(socket: UdpSocket, sink: Arc<Sink>) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let received = tokio::select! {
            _ = sink.shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => received,
        };
        let mut records = Vec::new();
        let mut next = received.map(|(len, _)| len);
        let mut taken = 0;
        loop {
            match next {
                Ok(len) if len > sink.max_frame => sink.metrics.syslog_dropped("oversize"),
                Ok(len) => match parse_message(&buf[..len]) {
                    Ok(record) => records.push(record),
                    Err(_) => sink.metrics.syslog_dropped("unparsable"),
                },
                Err(e) => tracing::debug!("syslog UDP receive failed: {e}"),
            }
            taken += 1;
            if taken == UDP_BATCH {
                break;
            }
            next = match socket.try_recv_from(&mut buf) {
                Ok((len, _)) => Ok(len),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => Err(e),
            };
        }
        if records.is_empty() {
            continue;
        }
        let groups = sink.group(&records);
        let mut done = 0;
        if sink.commit_groups(&groups, &mut done).await.is_err() {
            for (_, lost) in &groups[done..] {
                for _ in lost {
                    sink.metrics.syslog_dropped("unavailable");
                }
            }
        }
    }
}
