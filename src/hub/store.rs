//! What every backend's store shares: what one channel holds under its
//! lock ([`ChannelState`]: its retained [`History`], its subscribers'
//! wakers, its `removed` flag, and what the backend adds), and the rule
//! for compacting an oldest-first queue of events that other rules may
//! have evicted already.
//!
//! The memory hub keeps one [`ChannelState`] per channel, written under
//! the commit lock and the channel lock; the Redis replica keeps one per
//! channel (with its `floor`), written by its feed reader. Both evict only from the front (`--history` per
//! channel, `--history-bytes` hub-wide oldest first, `--history-ttl`), so
//! a channel's history is always a run of increasing numbers and an event
//! is retained exactly when it is at or after the front.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use super::{ChannelInfo, ChannelName, StoredEvent};

/// What one channel of any backend holds under its (std) lock; `X` is
/// what the backend adds (nothing for the memory hub; the floor and the
/// time of the last event for the Redis replica).
pub(crate) struct ChannelState<X = ()> {
    /// Retained events, oldest first, and their cost.
    pub(crate) history: History,
    /// Wakers of the current subscribers, by subscriber key.
    pub(crate) subscribers: HashMap<u64, Arc<Notify>>,
    /// Set when the channel left its backend's map (in the same critical
    /// section as the removal); whoever still holds it must look the
    /// name up again.
    pub(crate) removed: bool,
    /// The backend's own part.
    pub(crate) ext: X,
}

impl<X> ChannelState<X> {
    /// An empty channel.
    pub(crate) fn new(ext: X) -> Self {
        ChannelState {
            history: History::default(),
            subscribers: HashMap::new(),
            removed: false,
            ext,
        }
    }

    /// Wakes every subscriber (after a commit); returns how many.
    #[inline]
    pub(crate) fn wake(&self) -> usize {
        for notify in self.subscribers.values() {
            notify.notify_one();
        }
        self.subscribers.len()
    }

    /// Unsubscribes `key`; returns whether the channel is now unused (see
    /// [`Self::is_unused`]).
    pub(crate) fn leave(&mut self, key: u64) -> bool {
        self.subscribers.remove(&key);
        self.is_unused()
    }

    /// No subscribers and no history: an ordinary (not pinned) channel in
    /// this state leaves its map.
    pub(crate) fn is_unused(&self) -> bool {
        self.subscribers.is_empty() && self.history.is_empty()
    }

    /// The channel's line in `GET /channels`.
    pub(crate) fn info(&self, name: &ChannelName) -> ChannelInfo {
        ChannelInfo {
            name: name.clone(),
            kind: name.kind(),
            subscribers: self.subscribers.len(),
            last_id: self.history.newest().map(|e| e.id().to_string()),
            retained: self.history.len(),
            retained_bytes: self.history.bytes(),
        }
    }
}

/// One channel's retained events, oldest first, in increasing number, and
/// their cost ([`StoredEvent::cost`]).
#[derive(Default)]
pub(crate) struct History {
    events: VecDeque<Arc<StoredEvent>>,
    bytes: usize,
}

impl History {
    /// The events, oldest first (a cursor merges from them).
    #[inline]
    pub(crate) fn events(&self) -> &VecDeque<Arc<StoredEvent>> {
        &self.events
    }

    /// How many events are retained.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is retained.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// What the retained events cost.
    #[inline]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The newest event.
    #[inline]
    pub(crate) fn newest(&self) -> Option<&Arc<StoredEvent>> {
        self.events.back()
    }

    /// The oldest event's number.
    #[inline]
    pub(crate) fn oldest_seq(&self) -> Option<u64> {
        self.events.front().map(|e| e.seq)
    }

    /// Appends `event`, numbered above every event held.
    #[inline]
    pub(crate) fn push(&mut self, event: Arc<StoredEvent>) {
        debug_assert!(self.newest().is_none_or(|e| e.seq < event.seq));
        self.bytes += event.cost();
        self.events.push_back(event);
    }

    /// Evicts the oldest event.
    #[inline]
    pub(crate) fn pop_oldest(&mut self) -> Option<Arc<StoredEvent>> {
        let event = self.events.pop_front()?;
        self.bytes -= event.cost();
        Some(event)
    }

    /// Evicts every event; returns how many and what they cost.
    pub(crate) fn clear(&mut self) -> (usize, usize) {
        let forgotten = (self.events.len(), self.bytes);
        self.events.clear();
        self.bytes = 0;
        forgotten
    }

    /// Whether the event numbered `seq` is still held.
    pub(crate) fn holds(&self, seq: u64) -> bool {
        self.events.binary_search_by_key(&seq, |e| e.seq).is_ok()
    }

    /// Positions of the last `n` events numbered at or below `upto` (a
    /// `?tail`): `(begin, end)`, `begin == end` when there is none.
    pub(crate) fn tail(&self, upto: u64, n: usize) -> (usize, usize) {
        let end = self.events.partition_point(|e| e.seq <= upto);
        (end.saturating_sub(n), end)
    }

    /// The events numbered below `before`, oldest first (a history page
    /// is read from them outside the channel lock).
    pub(crate) fn below(&self, before: u64) -> Vec<Arc<StoredEvent>> {
        let end = self.events.partition_point(|e| e.seq < before);
        self.events.range(..end).cloned().collect()
    }

    /// Gives back the spare room of a history that shrank.
    pub(crate) fn shrink(&mut self) {
        let len = self.events.len();
        if self.events.capacity() > 4 * len + 64 {
            self.events.shrink_to(2 * len + 16);
        }
    }
}

/// Every channel of a backend's map, sorted by name, as `GET /channels`
/// lists them (`info` locks one channel at a time, outside the map lock).
pub(crate) fn list<C>(
    map: &RwLock<HashMap<ChannelName, Arc<C>>>,
    info: impl Fn(&C) -> ChannelInfo,
) -> Vec<ChannelInfo> {
    let channels: Vec<Arc<C>> = map.read().expect("map lock").values().cloned().collect();
    let mut infos: Vec<ChannelInfo> = channels.iter().map(|ch| info(ch)).collect();
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    infos
}

/// Whether an oldest-first queue of `queued` entries, of which `retained`
/// are of events still held, should drop the others now (they are skipped
/// when met; this bounds the queue to about twice the retained events).
#[inline]
pub(crate) fn should_compact(queued: usize, retained: usize) -> bool {
    queued > 2 * retained + 1024
}

#[cfg(test)]
mod tests {
    //! The history both backends keep per channel. The backends' own
    //! tests drive it through their writers: `hub::memory::tests` (publish,
    //! evictions, sweep) and `hub::redis::replica::tests` (the feed's
    //! apply, evictions, gaps, sweep).
    use super::*;
    use crate::hub::ChannelName;
    use std::future::Future;
    use std::sync::atomic::AtomicUsize;

    fn event(seq: u64, size: usize) -> Arc<StoredEvent> {
        Arc::new(StoredEvent::new(
            seq,
            ChannelName::parse("a").unwrap(),
            bytes::Bytes::from(vec![b'x'; size]),
            size,
            Arc::new(AtomicUsize::new(0)),
        ))
    }

    /// The cost follows every way in and out; the tail, holds and page
    /// reads see numbers, not positions.
    #[test]
    fn a_history_accounts_every_event_in_and_out() {
        let mut h = History::default();
        for seq in [3, 5, 8, 9] {
            h.push(event(seq, 100));
        }
        let one = event(1, 100).cost();
        assert_eq!((h.len(), h.bytes()), (4, 4 * one));
        assert_eq!(h.tail(8, 2), (1, 3), "5 and 8");
        assert_eq!(h.tail(2, 2), (0, 0));
        assert_eq!(h.tail(100, 10), (0, 4));
        assert!(h.holds(5) && !h.holds(4));
        let page: Vec<u64> = h.below(8).iter().map(|e| e.seq).collect();
        assert_eq!(page, [3, 5]);
        assert_eq!(h.pop_oldest().map(|e| e.seq), Some(3));
        assert_eq!((h.oldest_seq(), h.bytes()), (Some(5), 3 * one));
        assert_eq!(h.newest().map(|e| e.seq), Some(9));
        assert_eq!(h.clear(), (3, 3 * one));
        assert!(h.is_empty() && h.bytes() == 0 && h.pop_oldest().is_none());
    }

    /// Subscribers are woken and counted; the last one to leave an empty
    /// channel finds it unused, not while it holds history.
    #[test]
    fn a_channel_wakes_its_subscribers_and_is_unused_once_empty() {
        let mut ch = ChannelState::new(());
        let (one, two) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        ch.subscribers.insert(1, one.clone());
        ch.subscribers.insert(2, two.clone());
        assert_eq!(ch.wake(), 2);
        // A permit was stored for each: a wait now returns at once.
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        for n in [&one, &two] {
            let mut woken = std::pin::pin!(n.notified());
            assert!(woken.as_mut().poll(&mut cx).is_ready());
        }
        ch.history.push(event(1, 10));
        assert!(!ch.leave(1));
        assert!(!ch.leave(2), "it holds an event");
        ch.history.pop_oldest();
        assert!(ch.is_unused());
        let info = ch.info(&ChannelName::parse("a").unwrap());
        assert_eq!(
            (info.subscribers, info.retained, info.last_id),
            (0, 0, None)
        );
    }

    #[test]
    fn a_queue_is_compacted_only_when_mostly_stale() {
        assert!(!should_compact(1024, 0));
        assert!(should_compact(1025, 0));
        assert!(!should_compact(3024, 1000));
        assert!(should_compact(3025, 1000));
    }
}
