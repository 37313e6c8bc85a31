//! The hub: named channels, event ids, bounded history and fan-out.
//!
//! Every event goes through the hub: lines of followed files (channel
//! `log:NAME`), published events and broadcasts. The hub assigns each event
//! an id, encodes it once into shared bytes and wakes its subscribers, which
//! then pull what they have not seen yet from the channel's history. There
//! is no per-subscriber queue: a subscriber is only a cursor, so a slow one
//! costs no memory and never blocks the publisher or anyone else.
//!
//! The hub knows nothing of HTTP or files. [`Hub`] is an enum of backends:
//! the in-memory one (one process) and Redis (many nodes sharing channels,
//! see [`redis`]).

mod memory;
pub mod redis;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

pub use memory::{MemoryHub, MemorySubscription};
pub use redis::{LogOwner, RedisHub, RedisSubscription};

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
    /// Straight into the memory hub.
    Memory {
        /// The hub.
        hub: Arc<MemoryHub>,
        /// `log:NAME`.
        channel: String,
    },
    /// Through the stream's queue to Redis.
    Redis(Arc<redis::LogQueue>),
}

impl LogPublisher {
    /// Publishes one line as a `message` event.
    ///
    /// # Errors
    /// The memory hub's refusals; with Redis, a full queue (Redis has been
    /// unreachable for a while).
    pub fn publish(&self, line: &str) -> Result<(), HubError> {
        match self {
            LogPublisher::Memory { hub, channel } => hub
                .publish(channel, crate::sse::DEFAULT_EVENT_TYPE, line)
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
    /// An in-memory hub keeping `history` events per channel and at most
    /// `max_channels` channels.
    pub fn memory(history: usize, max_channels: usize) -> Hub {
        Hub::Memory(Arc::new(MemoryHub::new(history, max_channels)))
    }

    /// Publishes one event; `data` line breaks are normalised to LF. With
    /// Redis, answered once Redis holds the event.
    ///
    /// # Errors
    /// Bad channel name, too many channels, or the backend unavailable.
    pub async fn publish(
        &self,
        channel: &str,
        event_type: &str,
        data: &str,
    ) -> Result<Published, HubError> {
        match self {
            Hub::Memory(hub) => hub.publish(channel, event_type, data),
            Hub::Redis(hub) => hub.publish(channel, event_type, data).await,
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
            Hub::Redis(hub) => hub.subscribe(channels, start).map(Subscription::Redis),
        }
    }

    /// Channels that exist now (with Redis: in the whole cluster), sorted by
    /// name.
    pub async fn channels(&self) -> Vec<ChannelInfo> {
        match self {
            Hub::Memory(hub) => hub.channels(),
            Hub::Redis(hub) => hub.channels().await,
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
            Hub::Redis(hub) => hub.ensure_channel(channel),
        }
    }

    /// Whether channel `channel` exists (with Redis: anywhere in the
    /// cluster, or has ever held events there).
    ///
    /// # Errors
    /// Redis unavailable and the channel unknown here.
    pub async fn has_channel(&self, channel: &str) -> Result<bool, HubError> {
        match self {
            Hub::Memory(hub) => Ok(hub.channels().iter().any(|c| c.name == channel)),
            Hub::Redis(hub) => hub.has_channel(channel).await,
        }
    }

    /// Whether the hub works now (always, in memory).
    pub fn health(&self) -> Health {
        match self {
            Hub::Memory(_) => Health::Ok,
            Hub::Redis(hub) => hub.health(),
        }
    }

    /// This node's name in a cluster (`None` in memory).
    pub fn node(&self) -> Option<&str> {
        match self {
            Hub::Memory(_) => None,
            Hub::Redis(hub) => Some(hub.node_name()),
        }
    }

    /// The publisher of log channel `channel` (`log:NAME`) following `path`.
    pub fn log_publisher(&self, channel: &str, path: &str) -> LogPublisher {
        match self {
            Hub::Memory(hub) => LogPublisher::Memory {
                hub: hub.clone(),
                channel: channel.to_string(),
            },
            Hub::Redis(hub) => LogPublisher::Redis(hub.log_queue(channel, path)),
        }
    }

    /// Claims log channel `channel` for this node (a no-op in memory).
    ///
    /// # Errors
    /// [`HubError::Claimed`] when another node follows it; unavailable.
    pub async fn claim_log(&self, channel: &str, path: &str) -> Result<(), HubError> {
        match self {
            Hub::Memory(_) => Ok(()),
            Hub::Redis(hub) => hub.claim_log(channel, path).await,
        }
    }

    /// Tells other nodes the state of a log stream this node follows.
    pub fn set_log_state(&self, channel: &str, state: &str) {
        if let Hub::Redis(hub) = self {
            hub.set_log_state(channel, state);
        }
    }

    /// Who follows each log stream of the cluster, by channel (empty in
    /// memory: every log stream is this process's).
    pub async fn log_owners(&self) -> HashMap<String, LogOwner> {
        match self {
            Hub::Memory(_) => HashMap::new(),
            Hub::Redis(hub) => hub.log_owners().await,
        }
    }

    /// Whether this node should do the work leased as `what` (only one node
    /// of a cluster does; always true in memory).
    pub async fn lead(&self, what: &str) -> bool {
        match self {
            Hub::Memory(_) => true,
            Hub::Redis(hub) => hub.lead(what).await,
        }
    }

    /// Gives up this node's claims (at shutdown).
    pub async fn release_claims(&self) {
        if let Hub::Redis(hub) = self {
            hub.release_claims().await;
        }
    }
}

impl Subscription {
    /// Waits for and returns the next deliveries, in id order. Never
    /// returns an empty batch.
    pub async fn next_batch(&mut self) -> Vec<Delivery> {
        match self {
            Subscription::Memory(sub) => sub.next_batch().await,
            Subscription::Redis(sub) => sub.next_batch().await,
        }
    }

    /// Deliveries that are ready now, without waiting (may be empty).
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
