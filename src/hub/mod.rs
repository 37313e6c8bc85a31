//! The hub: named channels, event ids, bounded history and fan-out.
//!
//! Every event goes through the hub: lines of followed files (channel
//! `log:NAME`), published events and broadcasts. The hub assigns each event
//! an id, encodes it once into shared bytes and wakes its subscribers, which
//! then pull what they have not seen yet from the channel's history. There
//! is no per-subscriber queue: a subscriber is only a cursor, so a slow one
//! costs no memory and never blocks the publisher or anyone else.
//!
//! The history is bounded three ways ([`HubLimits`]): in events per channel,
//! in bytes for the whole hub (oldest events first), and in age. A
//! background sweep ([`Hub::run_sweeper`]) expires old events and drops the
//! channels they leave empty and unsubscribed.
//!
//! The hub knows nothing of HTTP or files. [`Hub`] is an enum of backends:
//! the in-memory one (one process), optionally fed through the write-ahead
//! log of `--data-dir` ([`Hub::with_wal`]), and Redis (many nodes sharing
//! channels, see [`redis`]). Channel names are parsed once into
//! [`ChannelName`]; what a channel is comes from [`ChannelName::kind`]
//! alone.

mod cursor;
mod durable;
mod event;
mod id;
mod memory;
mod name;
pub mod redis;
mod scale_out;
mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use event::StoredEvent;
pub use id::{EventId, NotAnId, Tag, MAX_TAG};
pub use memory::{MemoryHub, MemorySubscription};
pub use name::{ChannelKind, ChannelName};
pub(crate) use name::{LOG_PREFIX, MAX_CHANNEL_NAME};
pub use redis::{LogOwner, RedisHub, RedisSubscription};
pub use scale_out::ScaleOut;

/// Told of every event this process commits, after the hub's locks are
/// released (alerting: see [`crate::alerts`]). Set once with
/// [`Hub::set_tap`]; without one the hub does no such work.
///
/// With Redis only the events this node publishes are told, never those
/// that arrive from other nodes, so that each event is told once in the
/// cluster. Events restored from the write-ahead log at start are not
/// told again.
pub trait CommitTap: Send + Sync + 'static {
    /// `events` were committed, in id order. Runs on the publisher's path:
    /// must never block or wait.
    fn committed(&self, events: Vec<Arc<StoredEvent>>);
}

/// An event as the hub would store it, for tests of what taps receive.
#[cfg(test)]
pub(crate) fn test_event(
    seq: u64,
    channel: &str,
    event_type: &str,
    data: &str,
) -> Arc<StoredEvent> {
    let pending = crate::sse::PendingEvent::encode(event_type, data);
    let allocated = pending.allocated();
    let tag = Tag::new("0000test").expect("a tag");
    let frame = pending.with_id(EventId::new(tag, seq).text().as_str());
    Arc::new(StoredEvent::new(
        seq,
        ChannelName::parse(channel).expect("a channel name"),
        frame,
        allocated,
        Arc::default(),
    ))
}

/// How much history the hub keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubLimits {
    /// Events retained per channel (`--history`, at least 1).
    pub history: usize,
    /// Bytes of retained events in the whole hub (`--history-bytes`): the
    /// oldest events, whatever their channel, leave first. Counts every
    /// event's frame, its bookkeeping, and its `/events` envelope while it
    /// exists. The newest event is always kept, so the bound can be passed
    /// by at most one event.
    pub history_bytes: usize,
    /// Events older than this leave the history (`--history-ttl`); zero
    /// keeps them until the other limits evict them.
    pub history_ttl: Duration,
    /// Most client channels that may exist at once (`--max-channels`); log
    /// streams and `broadcast` do not count (see
    /// [`ChannelKind::counts_toward_max_channels`]), nor channels first
    /// created by ingest (see [`Creator`]).
    pub max_channels: usize,
    /// Most channels first created by ingest from log shippers that may
    /// exist at once (`--max-ingest-channels`), a budget of their own so
    /// that neither crowds out the other.
    pub max_ingest_channels: usize,
}

impl Default for HubLimits {
    /// The defaults of `tailcast serve` (10,000 events per channel, 64 MiB,
    /// 1 h, 10,000 client channels, 10,000 ingest channels; a config test
    /// checks they equal the flags' defaults).
    fn default() -> Self {
        HubLimits {
            history: 10_000,
            history_bytes: 64 * 1024 * 1024,
            history_ttl: Duration::from_secs(3600),
            max_channels: 10_000,
            max_ingest_channels: 10_000,
        }
    }
}

impl HubLimits {
    /// How often the sweep runs: a quarter of the ttl, between 50 ms and
    /// one minute (one minute when there is no ttl: the sweep then only
    /// drops channels that other limits emptied). An event is so kept at
    /// most `history_ttl` plus one period.
    pub fn sweep_period(&self) -> Duration {
        if self.history_ttl.is_zero() {
            return Duration::from_secs(60);
        }
        (self.history_ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(60))
    }
}

/// Errors a hub operation can report.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HubError {
    /// The channel name breaks the naming rules.
    #[error("invalid channel name {name:?}: {why}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// Creating one more channel would pass `--max-channels`.
    #[error("too many channels: the limit is {limit}")]
    TooManyChannels {
        /// The configured limit.
        limit: usize,
    },
    /// Creating one more channel for ingest would pass
    /// `--max-ingest-channels`.
    #[error("too many ingest channels: the limit is {limit} (--max-ingest-channels)")]
    TooManyIngestChannels {
        /// The configured limit.
        limit: usize,
    },
    /// A batch that the history could not hold whole: its first events
    /// would be evicted by its last ones before anyone could read them.
    #[error(
        "batch too large: {events} events taking {bytes} bytes, but the history keeps \
         {max_events} events per channel and {max_bytes} bytes in all"
    )]
    BatchTooLarge {
        /// Events in the batch.
        events: usize,
        /// What they would take in memory.
        bytes: usize,
        /// `--history`.
        max_events: usize,
        /// `--history-bytes`.
        max_bytes: usize,
    },
    /// A batch with no events.
    #[error("empty batch: there is no event to publish")]
    EmptyBatch,
    /// The backend cannot take the operation now (Redis unreachable); nothing
    /// was accepted.
    #[error("{detail}")]
    Unavailable {
        /// What failed.
        detail: String,
    },
    /// Another node of the cluster follows this log stream.
    #[error("log stream {channel} is already followed by node {node}; give this one another name (NAME=PATH) or stop the other node")]
    Claimed {
        /// The log channel (`log:NAME`).
        channel: String,
        /// The node that holds it.
        node: String,
    },
    /// The write-ahead log (`--data-dir`) could not take or give events.
    #[error("the event log failed: {0}")]
    Wal(String),
    /// An id given as a position (`before=`) is not one of this hub's.
    #[error("unknown event id {0:?}")]
    UnknownId(String),
}

/// Who asks for a channel that does not exist yet. It decides the budget
/// the new channel counts against for as long as it exists, whoever uses
/// it later: see `Creator::budget`, the one place of that rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creator {
    /// A client publishing or subscribing: `--max-channels`.
    Client,
    /// Ingest from log shippers (Loki, OTLP, shipper NDJSON, syslog):
    /// `--max-ingest-channels`.
    Ingest,
}

/// Which limit a channel counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// None: log streams and `broadcast`.
    Free,
    /// `--max-channels`.
    Client,
    /// `--max-ingest-channels`.
    Ingest,
}

impl Creator {
    /// The budget of a channel of `kind` that this creator makes: log
    /// streams and `broadcast` count nowhere; an ordinary channel counts
    /// against its creator's limit.
    pub(crate) fn budget(self, kind: ChannelKind) -> Budget {
        match self {
            _ if !kind.counts_toward_max_channels() => Budget::Free,
            Creator::Client => Budget::Client,
            Creator::Ingest => Budget::Ingest,
        }
    }
}

/// Whether the hub can serve everything now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Working.
    Ok,
    /// Publishing is refused for now (Redis unreachable or silent); open
    /// streams stay open. The text says what failed.
    Degraded(String),
}

/// One event of `/api/history`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryEvent {
    /// The event's original id.
    pub id: String,
    /// Its channel.
    pub channel: String,
    /// Its type (`message` by default).
    #[serde(rename = "event")]
    pub event_type: String,
    /// Its data.
    pub data: String,
}

impl HistoryEvent {
    fn of(event: &StoredEvent) -> Self {
        HistoryEvent {
            id: event.id().to_string(),
            channel: event.channel.to_string(),
            event_type: event.event_type().to_string(),
            data: event.data().into_owned(),
        }
    }
}

/// A page of `/api/history`, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HistoryPage {
    /// The events, newest first.
    pub events: Vec<HistoryEvent>,
    /// Pass as `before` for the next (older) page; `None`: nothing older.
    pub next_before: Option<String>,
}

/// Why a subscriber is told that it missed events of a channel (the
/// `reason` of a `reset` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResetReason {
    /// A live subscriber fell so far behind that the events it had not yet
    /// taken left the history.
    Lagged,
    /// A resume (`Last-Event-ID`) asked for events that already left the
    /// history.
    TooOld,
    /// The `Last-Event-ID` is not an id of this run (garbage, another run's,
    /// from the future, not ASCII): nothing can be resumed.
    UnknownId,
    /// The backend lost the history it resumes from (e.g. a Redis stream
    /// that was trimmed or flushed underneath the server).
    HistoryLost,
}

impl ResetReason {
    /// The text sent to clients: `lagged`, `too old`, `unknown id`,
    /// `history lost`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::Lagged => "lagged",
            ResetReason::TooOld => "too old",
            ResetReason::UnknownId => "unknown id",
            ResetReason::HistoryLost => "history lost",
        }
    }
}

impl std::fmt::Display for ResetReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ResetReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// An event, in id order.
    Event(Arc<StoredEvent>),
    /// Events of `channel` were missed and cannot be resent.
    Reset {
        /// The channel that lost events for this subscriber.
        channel: ChannelName,
        /// Why.
        reason: ResetReason,
    },
}

/// Where a new subscription starts.
#[derive(Debug, Clone, Default)]
pub enum Start {
    /// Only events published from now on, plus each channel's `tail`.
    #[default]
    Now,
    /// After the event with this id (the client's `Last-Event-ID`). Any
    /// value that is not exactly an id of this run (garbage, empty, another
    /// run's, from the future) gets a `reset` with `unknown id`; it is
    /// never treated as absent.
    After(String),
}

impl Start {
    /// Resumes after an id given as raw bytes (an HTTP header value may be
    /// any bytes): bytes that are not an id of this run, UTF-8 or not,
    /// give `unknown id`.
    pub fn after_bytes(id: &[u8]) -> Start {
        Start::After(String::from_utf8_lossy(id).into_owned())
    }
}

/// One channel of a subscription request.
#[derive(Debug, Clone)]
pub struct ChannelRequest {
    /// Channel name.
    pub name: ChannelName,
    /// Retained events to send first when starting [`Start::Now`]: handed
    /// out in bounded batches, like a resume, before the live events.
    pub tail: usize,
    /// Added by the server (the broadcast channel), not asked for by the
    /// client: after an unknown id it gets a `reset` only if it holds events.
    /// (The memory hub, with or without a WAL, treats every channel so: a
    /// channel that never had an event gets no `reset`.)
    pub implicit: bool,
}

impl ChannelRequest {
    /// A channel the client asked for, with `tail` events of backlog.
    pub fn new(name: ChannelName, tail: usize) -> Self {
        ChannelRequest {
            name,
            tail,
            implicit: false,
        }
    }
}

/// Result of a publish.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    /// The id given to the event.
    pub id: String,
    /// Subscribers of the channel at publish time.
    pub subscribers: usize,
}

/// Result of a [`Hub::publish_batch`]: the events got consecutive ids from
/// `first_id` to `last_id`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Batch {
    /// Id of the first event of the batch.
    pub first_id: String,
    /// Id of the last event of the batch.
    pub last_id: String,
    /// Events published.
    pub count: usize,
    /// Subscribers of the channel (of all its channels for
    /// [`Hub::publish_multi`]) at publish time.
    pub subscribers: usize,
}

/// `events` of [`Hub::publish_multi`] as the distinct channels (in order
/// of first appearance) and, per event, the index of its channel.
pub(crate) fn group_channels<'a>(
    events: &[(&'a ChannelName, &str, &str)],
) -> (Vec<&'a ChannelName>, Vec<usize>) {
    let mut names: Vec<&ChannelName> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let of = events
        .iter()
        .map(|(name, _, _)| {
            *index.entry(name.as_str()).or_insert_with(|| {
                names.push(name);
                names.len() - 1
            })
        })
        .collect();
    (names, of)
}

/// What `/api/streams` shows of a channel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChannelInfo {
    /// Channel name.
    pub name: ChannelName,
    /// What the channel is.
    pub kind: ChannelKind,
    /// Current subscribers.
    pub subscribers: usize,
    /// Id of the newest event, if any.
    pub last_id: Option<String>,
    /// Events retained for resume.
    pub retained: usize,
    /// Bytes those events take (frames and bookkeeping, envelopes aside).
    pub retained_bytes: usize,
}

/// Hub-wide history figures, for `/health` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HistoryUsage {
    /// Events retained in all channels.
    pub events: usize,
    /// Bytes counted against `--history-bytes` (envelopes included).
    pub bytes: usize,
    /// Channels that exist.
    pub channels: usize,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Events that left the history for being older than the ttl.
    pub expired: usize,
    /// Channels dropped for having no events and no subscribers.
    pub dropped: usize,
}

/// The hub, whichever backend carries it. Cheap to clone.
#[derive(Clone)]
pub enum Hub {
    /// Single process, everything in memory.
    Memory(Arc<MemoryHub>),
    /// Channels shared with other nodes through Redis.
    Redis(RedisHub),
}

/// A live subscription; dropping it unsubscribes.
pub enum Subscription {
    /// Subscription to a [`MemoryHub`].
    Memory(MemorySubscription),
    /// Subscription to a [`RedisHub`].
    Redis(RedisSubscription),
}

/// Publishes the lines of one log stream, from the follower's (synchronous)
/// side.
pub enum LogPublisher {
    /// Straight into the memory hub (through its write-ahead log, if any).
    Memory {
        /// The hub.
        hub: Arc<MemoryHub>,
        /// `log:NAME`.
        channel: ChannelName,
    },
    /// Through the stream's queue to Redis.
    Redis(Arc<redis::LogQueue>),
}

impl LogPublisher {
    /// Publishes one line as a `message` event. With a write-ahead log,
    /// `source` (the line's file position) is stored with it, so that
    /// following resumes exactly there after a restart; Redis has no use
    /// for it.
    ///
    /// # Errors
    /// The memory hub's refusals; with Redis, a full queue (Redis has been
    /// unreachable for a while).
    pub fn send_line(
        &self,
        line: &str,
        source: Option<crate::follow::FilePosition>,
    ) -> Result<(), HubError> {
        match self {
            LogPublisher::Memory { hub, channel } => hub
                .publish_from(channel, crate::sse::DEFAULT_EVENT_TYPE, line, source)
                .map(drop),
            LogPublisher::Redis(queue) => {
                if queue.push(line.to_string()) {
                    Ok(())
                } else {
                    Err(HubError::Unavailable {
                        detail: "Redis is unreachable and the line queue is full".into(),
                    })
                }
            }
        }
    }
}

impl Hub {
    /// An in-memory hub with these limits.
    pub fn memory(limits: HubLimits) -> Hub {
        Hub::Memory(Arc::new(MemoryHub::new(limits)))
    }

    /// An in-memory hub with these limits, fed through the write-ahead log
    /// `wal`: every event is appended to it first, ids survive restarts,
    /// and what leaves the memory is read back from disk. The memory starts
    /// with the newest `warm_bytes` of the WAL.
    ///
    /// # Errors
    /// The WAL cannot be read.
    pub fn with_wal(
        limits: HubLimits,
        wal: Arc<crate::wal::Wal>,
        warm_bytes: u64,
    ) -> Result<Hub, HubError> {
        MemoryHub::with_wal(limits, wal, warm_bytes)
            .map(|hub| Hub::Memory(Arc::new(hub)))
            .map_err(|e| HubError::Wal(e.to_string()))
    }

    /// Retained events of `channel` older than the event `before` (or the
    /// newest), newest first, whose data passes `filter`: at most `limit`.
    /// Read from the WAL when there is one (on the blocking pool), from the
    /// channel's stream in Redis with `--redis`, else from memory. A read
    /// looks at a bounded amount of history; a page can so hold fewer than
    /// `limit` events with a `next_before` to go on from.
    ///
    /// # Errors
    /// A `before` that is not an id of this hub, or a failed read (Redis
    /// unavailable).
    pub async fn history(
        &self,
        channel: &ChannelName,
        before: Option<&str>,
        limit: usize,
        filter: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Result<HistoryPage, HubError> {
        match self {
            Hub::Memory(hub) => {
                let (hub, channel) = (hub.clone(), channel.clone());
                let before = before.map(str::to_string);
                // Reading the WAL is file I/O, and a regex over many events
                // is CPU: neither runs on the async workers.
                tokio::task::spawn_blocking(move || {
                    hub.history(&channel, before.as_deref(), limit, &filter)
                })
                .await
                .map_err(|e| HubError::Wal(format!("history read failed: {e}")))?
            }
            Hub::Redis(hub) => hub.history(channel, before, limit, &filter).await,
        }
    }

    /// Sets the [`CommitTap`] told of every event this process commits
    /// from now on (once; later calls are ignored).
    pub fn set_tap(&self, tap: Arc<dyn CommitTap>) {
        match self {
            Hub::Memory(hub) => hub.set_tap(tap),
            Hub::Redis(hub) => hub.set_tap(tap),
        }
    }

    /// The write-ahead log, if the hub has one (never with Redis).
    pub fn wal(&self) -> Option<&Arc<crate::wal::Wal>> {
        match self {
            Hub::Memory(hub) => hub.wal(),
            Hub::Redis(_) => None,
        }
    }

    /// Publishes one event; `data` line breaks are normalised to LF. The
    /// event is encoded before the hub-wide lock is taken; only its
    /// numbering and insertion happen under it.
    ///
    /// A publish that returns `Ok` is in its channel's history (with Redis:
    /// in Redis), so every subscriber of the channel gets it (or a `reset`
    /// if it lags behind the history), even if the channel's last
    /// subscriber left meanwhile; and it is as durable as configured: with
    /// a write-ahead log, written to it (a `kill -9` no longer loses it),
    /// and on disk under `--fsync always`. Callers answer after it and need
    /// nothing else (this holds for every publish function of `Hub`).
    ///
    /// # Errors
    /// Too many channels; with Redis, [`HubError::Unavailable`] while Redis
    /// cannot be reached (nothing was published).
    pub async fn publish(
        &self,
        channel: &ChannelName,
        event_type: &str,
        data: &str,
    ) -> Result<Published, HubError> {
        match self {
            Hub::Memory(hub) => hub.publish_settled(channel, event_type, data).await,
            Hub::Redis(hub) => hub.publish(channel, event_type, data).await,
        }
    }

    /// Publishes `events` (each an event type and its data) to `channel`
    /// as one unit: they get consecutive ids in the given order, and no
    /// other event of any channel comes between them. All or nothing: on
    /// error nothing is published.
    ///
    /// ```
    /// # use tailcast::hub::{ChannelName, Hub, HubLimits};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hub = Hub::memory(HubLimits::default());
    /// let news = ChannelName::parse("news").unwrap();
    /// let batch = hub
    ///     .publish_batch(&news, &[("message", "one"), ("alert", "two")])
    ///     .await
    ///     .unwrap();
    /// assert_eq!(batch.count, 2);
    /// assert_ne!(batch.first_id, batch.last_id);
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`HubError::EmptyBatch`]; [`HubError::BatchTooLarge`] if the history
    /// could not hold the whole batch (more events than `--history`, or
    /// more bytes than `--history-bytes`); too many channels; Redis
    /// unavailable.
    pub async fn publish_batch<T: AsRef<str>, D: AsRef<str>>(
        &self,
        channel: &ChannelName,
        events: &[(T, D)],
    ) -> Result<Batch, HubError> {
        match self {
            Hub::Memory(hub) => hub.publish_batch_settled(channel, events).await,
            Hub::Redis(hub) => hub.publish_batch(channel, events).await,
        }
    }

    /// Publishes `events` (each a channel, an event type and its data) of
    /// one or more channels as one unit: they get consecutive ids in the
    /// given order, no other event of any channel comes between them, and
    /// with a write-ahead log they are written in one append. All or
    /// nothing: on error nothing is published. A channel that does not
    /// exist yet is created on `creator`'s budget. [`Hub::publish_batch`]
    /// is its one-channel case.
    ///
    /// The returned batch counts the subscribers of every channel.
    ///
    /// # Errors
    /// [`HubError::EmptyBatch`]; [`HubError::BatchTooLarge`] if the history
    /// could not hold the whole batch (more events of one channel than
    /// `--history`, or more bytes than `--history-bytes`); too many
    /// channels ([`HubError::TooManyChannels`] or
    /// [`HubError::TooManyIngestChannels`], nothing created); Redis
    /// unavailable.
    pub async fn publish_multi(
        &self,
        events: &[(&ChannelName, &str, &str)],
        creator: Creator,
    ) -> Result<Batch, HubError> {
        match self {
            Hub::Memory(hub) => hub.publish_multi_settled(events, creator).await,
            Hub::Redis(hub) => hub.publish_multi(events, creator).await,
        }
    }

    /// Subscribes to several channels at once; ids resume all of them.
    /// The subscriber is registered before this returns, so everything
    /// published afterwards reaches it. All or nothing: on error no
    /// subscriber is registered and no channel is created.
    ///
    /// # Errors
    /// Too many channels.
    pub fn subscribe(
        &self,
        channels: &[ChannelRequest],
        start: Start,
    ) -> Result<Subscription, HubError> {
        match self {
            Hub::Memory(hub) => hub.subscribe(channels, start).map(Subscription::Memory),
            Hub::Redis(hub) => hub.subscribe(channels, start).map(Subscription::Redis),
        }
    }

    /// Channels that exist now (with Redis: in the whole cluster), sorted
    /// by name.
    pub async fn channels(&self) -> Vec<ChannelInfo> {
        match self {
            Hub::Memory(hub) => hub.channels(),
            Hub::Redis(hub) => hub.channels().await,
        }
    }

    /// Hub-wide history figures (with Redis: this node's replica).
    pub fn usage(&self) -> HistoryUsage {
        match self {
            Hub::Memory(hub) => hub.usage(),
            Hub::Redis(hub) => hub.usage(),
        }
    }

    /// Creates a channel if it does not exist yet (log streams are listed
    /// before their first line).
    ///
    /// # Errors
    /// Too many channels.
    pub fn ensure_channel(&self, channel: &ChannelName) -> Result<(), HubError> {
        match self {
            Hub::Memory(hub) => hub.ensure_channel(channel),
            Hub::Redis(hub) => hub.ensure_channel(channel),
        }
    }

    /// Whether `channel` exists (with Redis: anywhere in the cluster, or it
    /// has held events there).
    ///
    /// # Errors
    /// Redis unavailable and the channel unknown here.
    pub async fn has_channel(&self, channel: &ChannelName) -> Result<bool, HubError> {
        match self {
            Hub::Memory(hub) => Ok(hub.channels().iter().any(|c| c.name == *channel)),
            Hub::Redis(hub) => hub.has_channel(channel).await,
        }
    }

    /// Removes `channel` with its history, if nobody is subscribed to it
    /// (a log stream being forgotten). Returns whether it was removed (or
    /// did not exist); `false` means it has subscribers and was left alone.
    /// With Redis: this node's copy, and its claim is left to expire.
    pub fn remove_unsubscribed(&self, channel: &ChannelName) -> bool {
        match self {
            Hub::Memory(hub) => hub.remove_unsubscribed(channel),
            Hub::Redis(hub) => hub.remove_unsubscribed(channel),
        }
    }

    /// Expires events older than the ttl as of `now`, and drops ordinary
    /// channels left with no events and no subscribers (with Redis: in
    /// this node's replica; Redis expires its streams itself).
    pub fn sweep(&self, now: Instant) -> Swept {
        match self {
            Hub::Memory(hub) => hub.sweep(now),
            Hub::Redis(hub) => hub.sweep(now),
        }
    }

    /// Runs [`Hub::sweep`] every [`HubLimits::sweep_period`] until
    /// `shutdown`. One task for the whole hub: there is no timer per event
    /// or per channel.
    pub async fn run_sweeper(self, shutdown: CancellationToken) {
        let period = match &self {
            Hub::Memory(hub) => hub.limits().sweep_period(),
            Hub::Redis(hub) => hub.limits().sweep_period(),
        };
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {
                    let swept = self.sweep(Instant::now());
                    if swept != Swept::default() {
                        tracing::debug!(expired = swept.expired, dropped = swept.dropped, "history swept");
                    }
                }
            }
        }
    }

    /// Whether the hub works now (always, in memory).
    pub fn health(&self) -> Health {
        match self {
            Hub::Memory(_) => Health::Ok,
            Hub::Redis(hub) => hub.health(),
        }
    }

    /// What only a hub shared with other nodes can do (node name, log
    /// stream claims, leases): `Some` with Redis, `None` for a hub of one
    /// process.
    pub fn scale_out(&self) -> Option<ScaleOut<'_>> {
        match self {
            Hub::Memory(_) => None,
            Hub::Redis(hub) => Some(ScaleOut::new(hub)),
        }
    }

    /// The publisher of log channel `channel` (`log:NAME`) following `path`.
    pub fn log_publisher(&self, channel: &ChannelName, path: &str) -> LogPublisher {
        match self {
            Hub::Memory(hub) => LogPublisher::Memory {
                hub: hub.clone(),
                channel: channel.clone(),
            },
            Hub::Redis(hub) => LogPublisher::Redis(hub.log_queue(channel, path)),
        }
    }
}

impl Subscription {
    /// Waits for and returns the next deliveries, in id order. Never
    /// returns an empty batch.
    pub async fn next_batch(&mut self) -> Vec<Delivery> {
        match self {
            Subscription::Memory(sub) => sub.next_batch().await,
            // Boxed: its future (Redis reads in flight) is much larger than
            // the memory hub's, and every idle stream holds this one's.
            Subscription::Redis(sub) => Box::pin(sub.next_batch()).await,
        }
    }

    /// Deliveries that are ready now, without waiting (may be empty).
    /// Test-only API (unit tests, and benches through the `test-util`
    /// feature): the server always waits with [`Subscription::next_batch`].
    #[cfg(any(test, feature = "test-util"))]
    pub fn ready_batch(&mut self) -> Vec<Delivery> {
        match self {
            Subscription::Memory(sub) => sub.ready_batch(),
            Subscription::Redis(sub) => sub.ready_batch(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hub of one process has no cluster-only operation to offer; the
    /// Redis side is covered by `tests/redis.rs` (claims, `/health`'s node,
    /// `/api/streams`' owners) through the real binary.
    #[test]
    fn a_memory_hub_is_not_scaled_out() {
        assert!(Hub::memory(HubLimits::default()).scale_out().is_none());
    }

    #[test]
    fn reset_reasons_are_sent_as_text() {
        for (reason, text) in [
            (ResetReason::Lagged, "lagged"),
            (ResetReason::TooOld, "too old"),
            (ResetReason::UnknownId, "unknown id"),
            (ResetReason::HistoryLost, "history lost"),
        ] {
            assert_eq!(reason.as_str(), text);
            assert_eq!(reason.to_string(), text);
            assert_eq!(serde_json::to_value(reason).unwrap(), text);
        }
    }
}
