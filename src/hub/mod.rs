//! The hub: named channels, event ids, bounded history and fan-out.
//!
//! Every event goes through the hub: lines of followed files (channel
//! `log:NAME`), published events and broadcasts. The hub assigns each event
//! an id, encodes it once into shared bytes and wakes its subscribers, which
//! then pull what they have not seen yet from the channel's history. There
//! is no per-subscriber queue: a subscriber is only a cursor, so a slow one
//! costs no memory and never blocks the publisher or anyone else.
//!
//! The hub knows nothing of HTTP or files. [`Hub`] is an enum of backends so
//! that a Redis Streams backend can sit beside the in-memory one.

mod durable;
mod memory;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

pub use memory::{MemoryHub, MemorySubscription};

/// The channel that carries broadcasts; every subscription includes it.
pub const BROADCAST_CHANNEL: &str = "broadcast";

/// Prefix of the read-only channels that carry log streams.
pub const LOG_PREFIX: &str = "log:";

/// Longest allowed channel name, in characters.
pub const MAX_CHANNEL_NAME: usize = 128;

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
    /// The write-ahead log (`--data-dir`) could not take or give events.
    #[error("the event log failed: {0}")]
    Log(String),
    /// An id given as a position (`before=`) is not one of this hub's.
    #[error("unknown event id {0:?}")]
    UnknownId(String),
}

/// Checks a channel name: 1–128 characters of `A-Z a-z 0-9 _ . : -`,
/// starting with a letter or digit.
///
/// # Errors
/// [`HubError::InvalidName`] saying which rule the name breaks.
pub fn validate_channel_name(name: &str) -> Result<(), HubError> {
    let bad = |why| {
        Err(HubError::InvalidName {
            name: name.chars().take(MAX_CHANNEL_NAME + 8).collect(),
            why,
        })
    };
    let Some(first) = name.chars().next() else {
        return bad("it is empty");
    };
    if name.chars().count() > MAX_CHANNEL_NAME {
        return bad("it is longer than 128 characters");
    }
    if !first.is_ascii_alphanumeric() {
        return bad("it must start with a letter or digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
    {
        return bad("only letters, digits and _ . : - are allowed");
    }
    Ok(())
}

/// One event as stored in a channel's history and shared by all subscribers.
#[derive(Debug)]
pub struct StoredEvent {
    /// Position in the hub's global order; the id is built from it.
    pub seq: u64,
    /// The id sent to clients.
    pub id: Box<str>,
    /// The channel the event belongs to.
    pub channel: Arc<str>,
    /// The SSE event type (`message` by default).
    pub event_type: Arc<str>,
    /// The event's data, line breaks normalised to LF.
    pub data: Box<str>,
    /// The event encoded for single-channel streams, with its id.
    pub frame: Bytes,
    /// The event encoded for multiplexed streams (JSON envelope), made on
    /// first use and then shared.
    envelope: OnceLock<Bytes>,
}

impl StoredEvent {
    /// Builds and encodes an event.
    pub fn new(
        seq: u64,
        id: String,
        channel: Arc<str>,
        event_type: Arc<str>,
        data: Box<str>,
    ) -> Self {
        let frame = crate::sse::encode_event(Some(&id), &event_type, &data);
        StoredEvent {
            seq,
            id: id.into_boxed_str(),
            channel,
            event_type,
            data,
            frame,
            envelope: OnceLock::new(),
        }
    }

    /// The event encoded with data `{"channel": ..., "data": ...}`, as sent
    /// on multiplexed streams.
    pub fn envelope_frame(&self) -> Bytes {
        self.envelope
            .get_or_init(|| {
                let data = serde_json::json!({"channel": &*self.channel, "data": &*self.data});
                crate::sse::encode_event(Some(&self.id), &self.event_type, &data.to_string())
            })
            .clone()
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
        channel: Arc<str>,
        /// Why: `lagged`, `too old`, `unknown id`.
        reason: &'static str,
    },
}

/// Where a new subscription starts.
#[derive(Debug, Clone, Default)]
pub enum Start {
    /// Only events published from now on, plus each channel's `tail`.
    #[default]
    Now,
    /// After the event with this id (the client's `Last-Event-ID`).
    After(String),
}

/// One channel of a subscription request.
#[derive(Debug, Clone)]
pub struct ChannelRequest {
    /// Channel name.
    pub name: String,
    /// Retained events to send first when starting [`Start::Now`].
    pub tail: usize,
    /// Added by the server (the broadcast channel), not asked for by the
    /// client: after an unknown id it gets a `reset` only if it holds events.
    pub implicit: bool,
}

impl ChannelRequest {
    /// A channel the client asked for, with `tail` events of backlog.
    pub fn new(name: impl Into<String>, tail: usize) -> Self {
        ChannelRequest {
            name: name.into(),
            tail,
            implicit: false,
        }
    }
}

/// Result of a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The id given to the event.
    pub id: String,
    /// Subscribers of the channel at publish time.
    pub subscribers: usize,
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
            id: event.id.to_string(),
            channel: event.channel.to_string(),
            event_type: event.event_type.to_string(),
            data: event.data.to_string(),
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

/// What `/api/streams` shows of a channel.
#[derive(Debug, Clone)]
pub struct ChannelInfo {
    /// Channel name.
    pub name: String,
    /// Current subscribers.
    pub subscribers: usize,
    /// Id of the newest event, if any.
    pub last_id: Option<String>,
    /// Events retained for resume.
    pub retained: usize,
}

/// The hub, whichever backend carries it. Cheap to clone.
#[derive(Clone)]
pub enum Hub {
    /// Single process, everything in memory.
    Memory(Arc<MemoryHub>),
}

/// A live subscription; dropping it unsubscribes.
pub enum Subscription {
    /// Subscription to a [`MemoryHub`].
    Memory(MemorySubscription),
}

impl Hub {
    /// An in-memory hub keeping `history` events per channel and at most
    /// `max_channels` channels.
    pub fn memory(history: usize, max_channels: usize) -> Hub {
        Hub::Memory(Arc::new(MemoryHub::new(history, max_channels)))
    }

    /// An in-memory hub fed through the write-ahead log `log`: every event
    /// is appended to it first, ids survive restarts, and what leaves the
    /// memory is read back from disk. The memory starts with the newest
    /// `warm_bytes` of the log.
    ///
    /// # Errors
    /// The log cannot be read.
    pub fn durable(
        history: usize,
        max_channels: usize,
        log: Arc<crate::wal::Wal>,
        warm_bytes: u64,
    ) -> Result<Hub, HubError> {
        MemoryHub::with_log(history, max_channels, log, warm_bytes)
            .map(|hub| Hub::Memory(Arc::new(hub)))
            .map_err(|e| HubError::Log(e.to_string()))
    }

    /// Publishes a log line read from a file, keeping its file position in
    /// the write-ahead log (if any) so that following resumes exactly there.
    ///
    /// # Errors
    /// As [`Hub::publish`].
    pub fn publish_line(
        &self,
        channel: &str,
        data: &str,
        source: Option<crate::wal::SourcePosition>,
    ) -> Result<Published, HubError> {
        match self {
            Hub::Memory(hub) => {
                hub.publish_from(channel, crate::sse::DEFAULT_EVENT_TYPE, data, source)
            }
        }
    }

    /// Waits until everything published so far is on disk when the log is
    /// kept with `--fsync always`; returns at once otherwise. A publisher
    /// answers its client after this.
    ///
    /// # Errors
    /// The log failed.
    pub async fn flush(&self) -> Result<(), HubError> {
        match self {
            Hub::Memory(hub) => hub.flush().await,
        }
    }

    /// Retained events of `channel` older than the event `before` (or the
    /// newest), newest first, whose data passes `filter`: at most `limit`.
    /// Read from the log when there is one (blocking file I/O: call it off
    /// the async runtime), else from memory.
    ///
    /// # Errors
    /// A bad channel name, a `before` that is not an id of this hub, or a
    /// failed read.
    pub fn history(
        &self,
        channel: &str,
        before: Option<&str>,
        limit: usize,
        filter: &dyn Fn(&str) -> bool,
    ) -> Result<HistoryPage, HubError> {
        match self {
            Hub::Memory(hub) => hub.history(channel, before, limit, filter),
        }
    }

    /// The write-ahead log, if the hub has one.
    pub fn log(&self) -> Option<&Arc<crate::wal::Wal>> {
        match self {
            Hub::Memory(hub) => hub.log(),
        }
    }

    /// Publishes one event; `data` line breaks are normalised to LF.
    ///
    /// # Errors
    /// Bad channel name, or too many channels.
    pub fn publish(
        &self,
        channel: &str,
        event_type: &str,
        data: &str,
    ) -> Result<Published, HubError> {
        match self {
            Hub::Memory(hub) => hub.publish(channel, event_type, data),
        }
    }

    /// Subscribes to several channels at once; ids resume all of them.
    /// The subscriber is registered before this returns, so everything
    /// published afterwards reaches it.
    ///
    /// # Errors
    /// Bad channel name, or too many channels.
    pub fn subscribe(
        &self,
        channels: &[ChannelRequest],
        start: Start,
    ) -> Result<Subscription, HubError> {
        match self {
            Hub::Memory(hub) => hub.subscribe(channels, start).map(Subscription::Memory),
        }
    }

    /// Channels that exist now, sorted by name.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        match self {
            Hub::Memory(hub) => hub.channels(),
        }
    }

    /// Creates a channel if it does not exist yet (log streams are listed
    /// before their first line).
    ///
    /// # Errors
    /// Bad channel name, or too many channels.
    pub fn ensure_channel(&self, channel: &str) -> Result<(), HubError> {
        match self {
            Hub::Memory(hub) => hub.ensure_channel(channel),
        }
    }
}

impl Subscription {
    /// Waits for and returns the next deliveries, in id order. Never
    /// returns an empty batch.
    pub async fn next_batch(&mut self) -> Vec<Delivery> {
        match self {
            Subscription::Memory(sub) => sub.next_batch().await,
        }
    }

    /// Deliveries that are ready now, without waiting (may be empty).
    pub fn ready_batch(&mut self) -> Vec<Delivery> {
        match self {
            Subscription::Memory(sub) => sub.ready_batch(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        for ok in [
            "a",
            "news",
            "log:app.log",
            "A_b-c.d:e",
            "9lives",
            &"x".repeat(128),
        ] {
            assert_eq!(validate_channel_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            ":a",
            "a b",
            "a/b",
            "é",
            "a\n",
            &"x".repeat(129),
        ] {
            assert!(validate_channel_name(bad).is_err(), "{bad:?}");
        }
    }
}
