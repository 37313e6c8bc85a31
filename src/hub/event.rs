//! One event as the hub keeps it: its encoded frame, and nothing else that
//! can be derived from it.
//!
//! An event used to be stored three times (its data, its SSE frame, and the
//! JSON envelope of multiplexed streams). Now the frame is the one copy:
//! the id, event type and data are read back from it when needed
//! ([`crate::sse::FrameFields`]; single-line data is borrowed, not copied),
//! and the envelope is made on first use by a multiplexed stream, then
//! shared. What an event costs is counted in bytes ([`StoredEvent::cost`])
//! so the hub can bound its history in bytes.

use std::borrow::Cow;
use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::ChannelName;
use crate::sse::{self, FrameFields};

/// What one retained event costs besides its frame bytes: the event
/// itself behind its `Arc` (two counters), its slot in the channel's
/// history and in the hub-wide age queue, the shared header `Bytes` makes
/// on the first clone of the frame, and about 16 bytes of allocator
/// bookkeeping for each of those three allocations.
pub(super) const EVENT_OVERHEAD: usize = size_of::<StoredEvent>()
    + 2 * size_of::<usize>()
    + size_of::<Arc<StoredEvent>>()
    + super::store::AGE_ENTRY_SIZE
    + 32
    + 3 * 16;

/// One event as stored in a channel's history and shared by all
/// subscribers.
pub struct StoredEvent {
    /// Position in the hub's global order; the id is built from it.
    pub seq: u64,
    /// The channel the event belongs to.
    pub channel: ChannelName,
    /// The event encoded for single-channel streams, with its id: the only
    /// copy of its id, type and data.
    pub frame: Bytes,
    /// Bytes this event holds while retained (frame allocation and
    /// [`EVENT_OVERHEAD`]); the envelope is counted apart, while it exists.
    cost: usize,
    /// The event encoded for multiplexed streams (JSON envelope), made on
    /// first use and then shared.
    envelope: OnceLock<Bytes>,
    /// The hub's count of envelope bytes alive, kept up to date by
    /// [`StoredEvent::envelope_frame`] and `Drop`.
    envelope_bytes: Arc<AtomicUsize>,
}

impl StoredEvent {
    /// Wraps a numbered frame. `allocated` is the size of the frame's
    /// allocation (see [`sse::PendingEvent::allocated`]).
    pub(super) fn new(
        seq: u64,
        channel: ChannelName,
        frame: Bytes,
        allocated: usize,
        envelope_bytes: Arc<AtomicUsize>,
    ) -> Self {
        StoredEvent {
            seq,
            channel,
            frame,
            cost: allocated + EVENT_OVERHEAD,
            envelope: OnceLock::new(),
            envelope_bytes,
        }
    }

    /// What this event holds in memory while it is retained, envelope
    /// aside.
    pub fn cost(&self) -> usize {
        self.cost
    }

    fn fields(&self) -> FrameFields<'_> {
        FrameFields::read(&self.frame)
    }

    /// The id sent to clients.
    pub fn id(&self) -> &str {
        self.fields().id.unwrap_or_default()
    }

    /// The SSE event type (`message` by default).
    pub fn event_type(&self) -> &str {
        self.fields().event_type
    }

    /// The event's data, line breaks normalised to LF. Borrowed from the
    /// frame when it is one line (the usual case: a log line).
    pub fn data(&self) -> Cow<'_, str> {
        self.fields().data()
    }

    /// The event encoded with data `{"channel": ..., "data": ...}`, as sent
    /// on multiplexed streams. Made on first use, then shared; its bytes
    /// count against the hub's `--history-bytes` while the event lives.
    pub fn envelope_frame(&self) -> Bytes {
        self.envelope
            .get_or_init(|| {
                let fields = self.fields();
                let data = serde_json::json!({"channel": &*self.channel, "data": &*fields.data()});
                let frame = sse::encode_event(fields.id, fields.event_type, &data.to_string());
                self.envelope_bytes
                    .fetch_add(frame.len(), Ordering::Relaxed);
                frame
            })
            .clone()
    }
}

impl Drop for StoredEvent {
    fn drop(&mut self) {
        if let Some(envelope) = self.envelope.get() {
            self.envelope_bytes
                .fetch_sub(envelope.len(), Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for StoredEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredEvent")
            .field("seq", &self.seq)
            .field("channel", &self.channel)
            .field("frame", &self.frame)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ty: &str, data: &str) -> (StoredEvent, Arc<AtomicUsize>) {
        let counter = Arc::new(AtomicUsize::new(0));
        let pending = sse::PendingEvent::encode(ty, data);
        let allocated = pending.allocated();
        let frame = pending.with_id("abc-7");
        let channel = ChannelName::parse("news").unwrap();
        (
            StoredEvent::new(7, channel, frame, allocated, counter.clone()),
            counter,
        )
    }

    #[test]
    fn fields_are_read_back_from_the_frame() {
        let (e, _) = event("sensor", "a\r\nb");
        assert_eq!(e.id(), "abc-7");
        assert_eq!(e.event_type(), "sensor");
        assert_eq!(e.data(), "a\nb");
        assert_eq!(
            &e.frame[..],
            b"id: abc-7\nevent: sensor\ndata: a\ndata: b\n\n"
        );
        assert!(e.cost() >= e.frame.len() + EVENT_OVERHEAD);
    }

    #[test]
    fn envelope_is_made_once_and_counted_while_it_lives() {
        let (e, counter) = event("message", "say \"hi\"");
        let envelope = e.envelope_frame();
        assert_eq!(
            &envelope[..],
            b"id: abc-7\ndata: {\"channel\":\"news\",\"data\":\"say \\\"hi\\\"\"}\n\n"
        );
        assert_eq!(counter.load(Ordering::Relaxed), envelope.len());
        assert_eq!(e.envelope_frame().as_ptr(), envelope.as_ptr());
        assert_eq!(counter.load(Ordering::Relaxed), envelope.len());
        drop(e);
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }
}
