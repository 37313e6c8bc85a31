//! What every backend's store shares: what one channel holds under its
//! lock ([`ChannelState`]: its retained [`History`], its subscribers'
//! wakers and its `removed` flag), the hub-wide
//! [`Ledger`] of retained events (their count and cost, and the age queue
//! that evicts the hub's oldest first), and the sweep's expiry
//! ([`expire`]).
//!
//! The memory hub keeps one [`ChannelState`] per channel, written under
//! the commit lock (its [`Ledger`]) and the channel lock; the Redis replica
//! keeps one per channel, written by its feed reader under its ledger's
//! lock. Both evict only from the front, with one rule each:
//! - `--history` per channel: the channel's oldest, right after an event
//!   goes in ([`Ledger::insert`]);
//! - `--history-bytes` for the hub: the hub's oldest, before an event
//!   goes in, until it fits ([`Ledger::make_room`]; so the budget is
//!   exceeded by at most the event being inserted, which is kept);
//! - `--history-ttl`: every event older than the ttl, by the sweep
//!   ([`expire`]; per event, as DESIGN.md promises, not per idle channel).
//!
//! So a channel's history is always a run of increasing numbers, and an
//! event is retained exactly when it is above its channel's
//! [`Stored::evicted_through`].
//!
//! Channels come and go by one rule too: an ordinary (not pinned) channel
//! with no events and no subscribers leaves its map, when its last
//! subscriber leaves ([`leave`]), by the sweep ([`drop_unused`]) or on
//! request ([`remove_unsubscribed`]). It leaves the map and gets its
//! `removed` flag in one critical section (map write lock, then channel
//! lock; [`mark_removed`]), and what it had evicted raises the backend's
//! `dropped_through`, where a channel of that name made later starts (so a
//! resume from before it gets `too old`, or reads Redis, rather than a
//! silent gap).
//!
//! And channels are made by one rule ([`Budgets`], [`channels_for`],
//! [`register`]): the missing ones of a request are made all together or
//! not at all, under the map's write lock, each on the budget of who made
//! it (`--max-channels` for clients, `--max-ingest-channels` for ingest;
//! log streams and `broadcast` on none), kept as counters that a channel
//! gives back when it leaves the map. A subscription registers on every
//! channel while holding the map lock, so it cannot race a removal, and a
//! refused one leaves neither a channel nor a subscriber behind.

use std::collections::{HashMap, HashSet, VecDeque};
use std::mem::size_of;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::Notify;

use super::{
    Budget, ChannelInfo, ChannelName, Creator, HistoryUsage, HubError, HubLimits, StoredEvent,
};

/// What one channel of any backend holds under its (std) lock.
pub(crate) struct ChannelState {
    /// Retained events, oldest first, and their cost.
    pub(crate) history: History,
    /// Wakers of the current subscribers, by subscriber key.
    pub(crate) subscribers: HashMap<u64, Arc<Notify>>,
    /// Set when the channel left its backend's map (in the same critical
    /// section as the removal); whoever still holds it must look the
    /// name up again.
    pub(crate) removed: bool,
}

impl ChannelState {
    /// An empty channel.
    pub(crate) fn new() -> Self {
        ChannelState {
            history: History::default(),
            subscribers: HashMap::new(),
            removed: false,
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

/// What a backend retains: the ledger's events and their cost plus the
/// `/events` envelopes alive (`envelopes`), and the channels in its map.
pub(crate) fn usage<C: Stored>(
    ledger: &Mutex<Ledger<C>>,
    envelopes: &AtomicUsize,
    map: &ChannelMap<C>,
) -> HistoryUsage {
    let (events, bytes) = {
        let ledger = ledger.lock().expect("ledger lock");
        (ledger.events(), ledger.bytes())
    };
    HistoryUsage {
        events,
        bytes: bytes + envelopes.load(Ordering::Relaxed),
        channels: map.read().expect("map lock").len(),
    }
}

/// Every channel of a backend's map, sorted by name, as `GET /channels`
/// lists them (`info` locks one channel at a time, outside the map lock).
pub(crate) fn list<C>(map: &ChannelMap<C>, info: impl Fn(&C) -> ChannelInfo) -> Vec<ChannelInfo> {
    let channels: Vec<Arc<C>> = map.read().expect("map lock").values().cloned().collect();
    let mut infos: Vec<ChannelInfo> = channels.iter().map(|ch| info(ch)).collect();
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    infos
}

/// A channel of a backend's map as the [`Ledger`] sees it.
pub(crate) trait Stored {
    /// The channel's name (its key in the backend's map).
    fn name(&self) -> &ChannelName;
    /// The channel's state and its lock.
    fn state(&self) -> &Mutex<ChannelState>;
    /// The newest number that left the channel's history (every event of
    /// it at or below is gone from memory). Written under the channel
    /// lock; read without it by the ledger's compaction.
    fn evicted_through(&self) -> &AtomicU64;
}

/// How many channels of a backend's map count against each limit
/// (`--max-channels`, `--max-ingest-channels`; see [`Creator::budget`]),
/// and those limits. Changed only under the map's write lock, together
/// with the map.
pub(crate) struct Budgets {
    client: AtomicUsize,
    ingest: AtomicUsize,
    max_channels: usize,
    max_ingest_channels: usize,
}

impl Budgets {
    /// No channel yet, within `limits`.
    pub(crate) fn new(limits: &HubLimits) -> Self {
        Budgets {
            client: AtomicUsize::new(0),
            ingest: AtomicUsize::new(0),
            max_channels: limits.max_channels,
            max_ingest_channels: limits.max_ingest_channels,
        }
    }

    /// The counter of channels on `budget`, if it has one.
    fn counter(&self, budget: Budget) -> Option<&AtomicUsize> {
        match budget {
            Budget::Free => None,
            Budget::Client => Some(&self.client),
            Budget::Ingest => Some(&self.ingest),
        }
    }

    /// How many channels of the map count against `budget` (0 for
    /// [`Budget::Free`]).
    #[cfg(test)]
    pub(crate) fn count(&self, budget: Budget) -> usize {
        self.counter(budget)
            .map_or(0, |counter| counter.load(Ordering::Relaxed))
    }

    /// Gives back the budget of a channel that left the map (its write
    /// lock held).
    pub(crate) fn left(&self, budget: Budget) {
        if let Some(counter) = self.counter(budget) {
            counter.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Whether making channels checks their creator's limit: a publish, a
/// subscription or `ensure` does ([`Enforce::Limit`]); the replica's feed
/// reader, which mirrors channels Redis already holds (its publish script
/// checked the limits cluster-wide), only counts them ([`Enforce::Count`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enforce {
    /// Refuse what does not fit.
    Limit,
    /// Count, never refuse.
    Count,
}

/// Makes those of `names` that `map` (its write lock held) lacks, each on
/// `creator`'s budget for its kind (`make` builds one), or none when the
/// ones that count do not fit under `creator`'s limit (with
/// [`Enforce::Limit`]).
pub(crate) fn make_missing<'a, C>(
    map: &mut HashMap<ChannelName, Arc<C>>,
    names: impl Iterator<Item = &'a ChannelName>,
    creator: Creator,
    budgets: &Budgets,
    enforce: Enforce,
    make: impl Fn(&ChannelName, Budget) -> Arc<C>,
) -> Result<(), HubError> {
    let mut seen = HashSet::new();
    let missing: Vec<&ChannelName> = names
        .filter(|n| !map.contains_key(n.as_str()) && seen.insert(n.as_str()))
        .collect();
    let counted = missing
        .iter()
        .filter(|n| creator.budget(n.kind()) != Budget::Free)
        .count();
    let (budget, limit) = match creator {
        Creator::Client => (Budget::Client, budgets.max_channels),
        Creator::Ingest => (Budget::Ingest, budgets.max_ingest_channels),
    };
    let counter = budgets.counter(budget).expect("a counted budget");
    if enforce == Enforce::Limit && counted > 0 && counter.load(Ordering::Relaxed) + counted > limit
    {
        return Err(match creator {
            Creator::Client => HubError::TooManyChannels { limit },
            Creator::Ingest => HubError::TooManyIngestChannels { limit },
        });
    }
    counter.fetch_add(counted, Ordering::Relaxed);
    for name in missing {
        map.insert(name.clone(), make(name, creator.budget(name.kind())));
    }
    Ok(())
}

/// The channels called `names`, the missing ones made on `creator`'s
/// budget: all of them, or none made (see [`make_missing`]). Under the
/// map's read lock when they all exist, else its write lock.
pub(crate) fn channels_for<C>(
    map: &ChannelMap<C>,
    names: &[&ChannelName],
    creator: Creator,
    budgets: &Budgets,
    enforce: Enforce,
    make: impl Fn(&ChannelName, Budget) -> Arc<C>,
) -> Result<Vec<Arc<C>>, HubError> {
    {
        let map = map.read().expect("map lock");
        let found: Option<Vec<Arc<C>>> =
            names.iter().map(|n| map.get(n.as_str()).cloned()).collect();
        if let Some(found) = found {
            return Ok(found);
        }
    }
    let mut map = map.write().expect("map lock");
    make_missing(
        &mut map,
        names.iter().copied(),
        creator,
        budgets,
        enforce,
        make,
    )?;
    Ok(names
        .iter()
        .map(|n| map.get(n.as_str()).expect("just made").clone())
        .collect())
}

/// Registers subscriber `key` (woken by `notify`) on every channel of
/// `names` (distinct), making the missing ones on the client budget, or
/// on none: when they do not fit under `--max-channels`, nothing is made
/// or registered. Runs under the map lock (read when they all exist, else
/// write), so no channel can be removed meanwhile.
pub(crate) fn register<C: Stored>(
    map: &ChannelMap<C>,
    names: &[&ChannelName],
    budgets: &Budgets,
    key: u64,
    notify: &Arc<Notify>,
    make: impl Fn(&ChannelName, Budget) -> Arc<C>,
) -> Result<Vec<Arc<C>>, HubError> {
    let enlist = |channels: &[Arc<C>]| {
        for ch in channels {
            let mut state = ch.state().lock().expect("channel lock");
            debug_assert!(!state.removed, "a channel in the map is not removed");
            state.subscribers.insert(key, notify.clone());
        }
    };
    {
        let map = map.read().expect("map lock");
        let found: Option<Vec<Arc<C>>> =
            names.iter().map(|n| map.get(n.as_str()).cloned()).collect();
        if let Some(found) = found {
            enlist(&found);
            return Ok(found);
        }
    }
    let mut map = map.write().expect("map lock");
    make_missing(
        &mut map,
        names.iter().copied(),
        Creator::Client,
        budgets,
        Enforce::Limit,
        make,
    )?;
    let found: Vec<Arc<C>> = names
        .iter()
        .map(|n| map.get(n.as_str()).expect("just made").clone())
        .collect();
    enlist(&found);
    Ok(found)
}

/// Most events [`expire`] evicts per hold of the ledger's lock, so that a
/// large expiry does not stall the writers.
pub(crate) const SWEEP_CHUNK: usize = 4096;

/// Size of one entry of the age queue (part of an event's cost).
pub(crate) const AGE_ENTRY_SIZE: usize = size_of::<Age<()>>();

/// The hub-wide account of retained events: how many, what they cost,
/// and the age queue (every retained event oldest first, since numbers
/// grow with time, plus entries of events evicted by another rule, which
/// are skipped when met and compacted away). Kept under one lock: the
/// memory hub's commit lock, the replica's ledger lock. Lock order: the
/// ledger, then (the map, then) a channel.
pub(crate) struct Ledger<C> {
    ages: VecDeque<Age<C>>,
    bytes: usize,
    events: usize,
}

/// One event in the age queue.
struct Age<C> {
    seq: u64,
    published: Instant,
    channel: Arc<C>,
}

impl<C> Default for Ledger<C> {
    fn default() -> Self {
        Ledger {
            ages: VecDeque::new(),
            bytes: 0,
            events: 0,
        }
    }
}

impl<C: Stored> Ledger<C> {
    /// Number of retained events.
    #[inline]
    pub(crate) fn events(&self) -> usize {
        self.events
    }

    /// Cost of the retained events.
    #[inline]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends `event` (numbered above every event held) to `channel`,
    /// whose lock the caller holds (`state`), then evicts the channel's
    /// oldest if it holds more than `history`.
    #[inline]
    pub(crate) fn insert(
        &mut self,
        channel: &Arc<C>,
        state: &mut ChannelState,
        event: Arc<StoredEvent>,
        published: Instant,
        history: usize,
    ) {
        self.bytes += event.cost();
        self.events += 1;
        self.ages.push_back(Age {
            seq: event.seq,
            published,
            channel: channel.clone(),
        });
        state.history.push(event);
        if state.history.len() > history {
            self.evict_front(channel, state);
        }
    }

    /// Evicts `channel`'s oldest event (its lock held: `state`).
    #[inline]
    pub(crate) fn evict_front(
        &mut self,
        channel: &C,
        state: &mut ChannelState,
    ) -> Option<Arc<StoredEvent>> {
        let event = state.history.pop_oldest()?;
        self.bytes -= event.cost();
        self.events -= 1;
        channel
            .evicted_through()
            .store(event.seq, Ordering::Release);
        Some(event)
    }

    /// Evicts every event of `channel` (its lock held: `state`); returns
    /// them, to be dropped once the locks are released.
    pub(crate) fn forget(
        &mut self,
        channel: &C,
        state: &mut ChannelState,
    ) -> Vec<Arc<StoredEvent>> {
        let mut gone = Vec::with_capacity(state.history.len());
        while let Some(event) = self.evict_front(channel, state) {
            gone.push(event);
        }
        gone
    }

    /// Evicts the hub's oldest events until `incoming` more bytes fit in
    /// `limit` together with `envelopes` (the `/events` envelopes alive),
    /// or nothing is left to evict. No channel lock may be held.
    pub(crate) fn make_room(&mut self, limit: usize, envelopes: &AtomicUsize, incoming: usize) {
        while self.bytes + envelopes.load(Ordering::Relaxed) + incoming > limit {
            if self.evict_oldest(None).is_none() {
                break;
            }
        }
    }

    /// Evicts the hub's oldest retained event, if it was published before
    /// `before` (any age with `None`). Entries of events already evicted
    /// are dropped on the way. No channel lock may be held.
    pub(crate) fn evict_oldest(&mut self, before: Option<Instant>) -> Option<Arc<StoredEvent>> {
        while let Some(entry) = self.ages.front() {
            if entry.seq <= entry.channel.evicted_through().load(Ordering::Acquire) {
                self.ages.pop_front();
                continue;
            }
            if before.is_some_and(|before| entry.published >= before) {
                return None;
            }
            let entry = self.ages.pop_front().expect("front exists");
            let mut state = entry.channel.state().lock().expect("channel lock");
            // Retained and oldest of the hub, so oldest of its channel
            // (unless its history was emptied with its floor set below it:
            // the replica's change of line, which clears this queue too).
            if state.history.oldest_seq() != Some(entry.seq) {
                continue;
            }
            return self.evict_front(&entry.channel, &mut state);
        }
        None
    }

    /// Drops entries of evicted events once they outnumber retained ones
    /// (every entry when nothing is retained).
    pub(crate) fn compact(&mut self) {
        if self.events == 0 {
            self.ages.clear();
        } else if should_compact(self.ages.len(), self.events) {
            self.ages.retain(|entry| {
                entry.seq > entry.channel.evicted_through().load(Ordering::Acquire)
            });
        } else {
            return;
        }
        if self.ages.capacity() > 4 * self.ages.len() + 1024 {
            self.ages.shrink_to(2 * self.ages.len() + 1024);
        }
    }
}

/// Evicts, oldest first, every event published before `before` (the
/// sweep's `--history-ttl`), at most [`SWEEP_CHUNK`] per hold of `ledger`;
/// returns how many.
pub(crate) fn expire<C: Stored>(ledger: &Mutex<Ledger<C>>, before: Instant) -> usize {
    let mut expired = 0;
    loop {
        let mut garbage = Vec::new();
        let mut held = ledger.lock().expect("ledger lock");
        while garbage.len() < SWEEP_CHUNK {
            match held.evict_oldest(Some(before)) {
                Some(event) => garbage.push(event),
                None => break,
            }
        }
        held.compact();
        drop(held);
        expired += garbage.len();
        if garbage.len() < SWEEP_CHUNK {
            return expired;
        }
    }
}

/// A backend's channels by name.
pub(crate) type ChannelMap<C> = RwLock<HashMap<ChannelName, Arc<C>>>;

/// Takes `channel` out of `map` (its write lock held) and marks it
/// removed (its lock held: `state`), raising `dropped_through` to what it
/// evicted; `left` is told when it was the map's entry (the backend gives
/// back its budget).
pub(crate) fn mark_removed<C: Stored>(
    map: &mut HashMap<ChannelName, Arc<C>>,
    channel: &Arc<C>,
    state: &mut ChannelState,
    dropped_through: &AtomicU64,
    left: impl FnOnce(&C),
) {
    state.removed = true;
    let name = channel.name();
    if map.get(name).is_some_and(|c| Arc::ptr_eq(c, channel)) {
        map.remove(name);
        left(channel);
    }
    let evicted = channel.evicted_through().load(Ordering::Acquire);
    dropped_through.fetch_max(evicted, Ordering::AcqRel);
}

/// Drops `channel` from `map` (its write lock held) if it is not pinned
/// and has no events and no subscribers; returns whether it did.
pub(crate) fn drop_if_unused<C: Stored>(
    map: &mut HashMap<ChannelName, Arc<C>>,
    channel: &Arc<C>,
    dropped_through: &AtomicU64,
    left: impl FnOnce(&C),
) -> bool {
    if channel.name().kind().is_pinned() {
        return false;
    }
    let Ok(mut state) = channel.state().lock() else {
        return false;
    };
    if state.removed || !state.is_unused() {
        return false;
    }
    mark_removed(map, channel, &mut state, dropped_through, left);
    true
}

/// Unsubscribes `key` from `channel` (a cursor's `Drop`), and drops the
/// channel if that left it unused.
pub(crate) fn leave<C: Stored>(
    map: &ChannelMap<C>,
    channel: &Arc<C>,
    key: u64,
    dropped_through: &AtomicU64,
    left: impl FnOnce(&C),
) {
    let now_unused = match channel.state().lock() {
        Ok(mut state) => state.leave(key) && !channel.name().kind().is_pinned(),
        Err(_) => false,
    };
    if now_unused {
        if let Ok(mut map) = map.write() {
            drop_if_unused(&mut map, channel, dropped_through, left);
        }
    }
}

/// The sweep's second half: drops every channel left unused (see
/// [`drop_if_unused`]), and gives back the spare room of histories that
/// shrank; returns how many were dropped. Candidates are found under the
/// map's read lock, so the write lock is taken only when there are some.
pub(crate) fn drop_unused<C: Stored>(
    map: &ChannelMap<C>,
    dropped_through: &AtomicU64,
    left: impl Fn(&C),
) -> usize {
    let candidates: Vec<Arc<C>> = {
        let map = map.read().expect("map lock");
        map.values()
            .filter(|ch| {
                let mut state = ch.state().lock().expect("channel lock");
                state.history.shrink();
                !ch.name().kind().is_pinned() && state.is_unused()
            })
            .cloned()
            .collect()
    };
    if candidates.is_empty() {
        return 0;
    }
    let mut map = map.write().expect("map lock");
    candidates
        .iter()
        .filter(|ch| drop_if_unused(&mut map, ch, dropped_through, &left))
        .count()
}

/// Removes the channel `name` with its history if nobody subscribes to it
/// (true also when there is no such channel); see
/// [`crate::hub::Hub::remove_unsubscribed`].
pub(crate) fn remove_unsubscribed<C: Stored>(
    ledger: &Mutex<Ledger<C>>,
    map: &ChannelMap<C>,
    name: &ChannelName,
    dropped_through: &AtomicU64,
    left: impl FnOnce(&C),
) -> bool {
    let mut ledger = ledger.lock().expect("ledger lock");
    let mut map = map.write().expect("map lock");
    let Some(channel) = map.get(name.as_str()).cloned() else {
        return true;
    };
    let mut state = channel.state().lock().expect("channel lock");
    if !state.subscribers.is_empty() {
        return false;
    }
    let garbage = ledger.forget(&channel, &mut state);
    ledger.compact();
    mark_removed(&mut map, &channel, &mut state, dropped_through, left);
    drop(state);
    drop(map);
    drop(ledger);
    drop(garbage);
    true
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
        let page: Vec<u64> = h.below(8).iter().map(|e| e.seq).collect();
        assert_eq!(page, [3, 5]);
        assert_eq!(h.pop_oldest().map(|e| e.seq), Some(3));
        assert_eq!((h.oldest_seq(), h.bytes()), (Some(5), 3 * one));
        assert_eq!(h.newest().map(|e| e.seq), Some(9));
        for _ in 0..3 {
            h.pop_oldest();
        }
        assert!(h.is_empty() && h.bytes() == 0 && h.pop_oldest().is_none());
    }

    /// Subscribers are woken and counted; the last one to leave an empty
    /// channel finds it unused, not while it holds history.
    #[test]
    fn a_channel_wakes_its_subscribers_and_is_unused_once_empty() {
        let mut ch = ChannelState::new();
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

    /// A channel of a toy backend, for the ledger alone.
    struct Toy {
        name: ChannelName,
        evicted: AtomicU64,
        state: Mutex<ChannelState>,
    }

    impl Stored for Toy {
        fn name(&self) -> &ChannelName {
            &self.name
        }
        fn state(&self) -> &Mutex<ChannelState> {
            &self.state
        }
        fn evicted_through(&self) -> &AtomicU64 {
            &self.evicted
        }
    }

    fn toy(name: &str) -> Arc<Toy> {
        Arc::new(Toy {
            name: ChannelName::parse(name).unwrap(),
            evicted: AtomicU64::new(0),
            state: Mutex::new(ChannelState::new()),
        })
    }

    /// One rule per limit: `--history` right after an event goes in, the
    /// hub's oldest before one goes in for `--history-bytes` (skipping
    /// entries another rule evicted), by age for the ttl; the queue
    /// empties once nothing is retained.
    #[test]
    fn the_ledger_evicts_by_count_bytes_and_age_oldest_first() {
        let (a, b) = (toy("a"), toy("b"));
        let mut ledger = Ledger::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        let put = |ledger: &mut Ledger<Toy>, ch: &Arc<Toy>, seq: u64, ms: u64| {
            let mut state = ch.state.lock().unwrap();
            ledger.insert(ch, &mut state, event(seq, 100), at(ms), 2);
        };
        let one = event(1, 100).cost();
        put(&mut ledger, &a, 1, 0);
        put(&mut ledger, &b, 2, 10);
        put(&mut ledger, &a, 3, 20);
        put(&mut ledger, &a, 4, 30);
        // a1 left by count; its queue entry is skipped below.
        assert_eq!((ledger.events(), ledger.bytes()), (3, 3 * one));
        assert_eq!(a.evicted.load(Ordering::Relaxed), 1);
        let none = AtomicUsize::new(0);
        ledger.make_room(3 * one, &none, one);
        assert_eq!(b.evicted.load(Ordering::Relaxed), 2, "b2, the oldest left");
        assert_eq!((ledger.events(), ledger.bytes()), (2, 2 * one));
        // By age: a3 (20 ms) goes, a4 (30 ms) stays.
        assert_eq!(ledger.evict_oldest(Some(at(25))).map(|e| e.seq), Some(3));
        assert!(ledger.evict_oldest(Some(at(25))).is_none());
        let gone = ledger.forget(&*a, &mut a.state.lock().unwrap());
        assert_eq!(gone.len(), 1);
        ledger.compact();
        assert_eq!(
            (ledger.events(), ledger.bytes(), ledger.ages.len()),
            (0, 0, 0)
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
