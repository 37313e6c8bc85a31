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

mod memory;
mod name;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

pub use memory::{MemoryHub, MemorySubscription};

pub use name::{ChannelKind, ChannelName, BROADCAST_CHANNEL, LOG_PREFIX, MAX_CHANNEL_NAME};

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
}

/// Checks a channel name: 1–128 characters of `A-Z a-z 0-9 _ . : -`,
/// starting with a letter or digit. Prefer [`ChannelName::parse`], which
/// keeps the result.
///
/// # Errors
/// [`HubError::InvalidName`] saying which rule the name breaks.
pub fn validate_channel_name(name: &str) -> Result<(), HubError> {
    ChannelName::parse(name).map(drop)
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
