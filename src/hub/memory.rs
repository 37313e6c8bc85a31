//! The in-memory hub backend.
//!
//! Ordering: one hub-wide sequence numbers every event. A publish encodes
//! its event first (a batch, which may span several channels: every
//! event), then takes the `commit` lock, gives the event the next
//! number (writing the id into the room left in front of the frame),
//! appends it to the channel's history and only then advances `committed`.
//! So every event numbered at or below `committed` is already in its
//! channel, and a subscriber that reads up to a snapshot of `committed` can
//! merge several channels in strict id order without ever skipping one. One
//! `Last-Event-ID` therefore resumes any set of channels.
//!
//! Channels come and go: an ordinary channel is dropped when it has no
//! events and no subscribers. A channel leaves the map and gets its
//! `removed` flag in one critical section (map write lock, then channel
//! lock). Whoever holds a channel found earlier and finds it `removed` looks
//! the name up again: a publish never commits into a removed channel, so a
//! publish answered `Ok` reaches every subscriber of the channel. A
//! subscription registers on every channel while holding the map lock (read
//! if they all exist, write if some must be created), so it cannot race a
//! removal, and it either registers on all of them or on none (the
//! store's rule, shared with the Redis replica: [`store::register`]).
//!
//! Backpressure: a subscriber is a cursor into the histories plus a
//! `Notify`. Publishing appends and wakes; it never waits for a subscriber.
//! A subscriber whose next event was evicted receives a `reset` for that
//! channel (`lagged`, or `too old` right after a resume), then continues
//! from the oldest retained event.
//!
//! Memory: every retained event is in its channel's history and in the
//! hub-wide [`store::Ledger`] (the commit lock guards it), which evicts by
//! the store's rules (`history` per channel and `history_bytes` for the hub
//! at publish, `history_ttl` by the sweep; see [`super::store`]). An event
//! is retained exactly when its seq is above its channel's
//! `evicted_through`.
//!
//! A `reset` goes only to a channel that lost events: one evicted past the
//! cursor, or (after an unknown id) one that holds or held events; a
//! channel that never had an event, such as an unused `broadcast`, gets
//! none.
//!
//! A channel dropped after its events were evicted leaves its
//! `evicted_through` in `dropped_through`; a channel created later starts
//! from there, so a resume from before it gets `too old` rather than a
//! silent gap.
//!
//! With a write-ahead log (`--data-dir`), ids and numbering come from the
//! log, every event is appended to it under the `commit` lock before it is
//! inserted (so before anyone can see it; one write into the page cache,
//! never an fsync: the log's syncer thread does those, a roll's included),
//! the async publish functions wait after the lock for the fsync
//! `--fsync always` asks (`MemoryHub::settle`), a channel starts with
//! `evicted_through` at the current sequence (older events may be on disk),
//! and a subscriber whose cursor is behind what the memory holds reads the
//! gap back from the log instead of getting a `reset` (see
//! [`super::durable`]). The memory limits, the ttl included, then bound only
//! what stays in memory; the log serves `history` events per channel within
//! `--retention-bytes`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::Notify;

use super::cursor::{cut_at_bytes, Merge, MAX_BATCH};
use super::durable::{self, DiskBatch, DiskRead};
use super::event::EVENT_OVERHEAD;
use super::store::{self, ChannelState, Stored};
use super::{
    Batch, Budget, ChannelInfo, ChannelName, ChannelRequest, Creator, Delivery, EventId,
    HistoryEvent, HistoryPage, HistoryUsage, HubError, HubLimits, Published, ResetReason, Start,
    StoredEvent, Swept, Tag,
};
use crate::follow::FilePosition;
use crate::sse::PendingEvent;
use crate::wal::{FsyncPolicy, NewRecord, Wal, WalError, SCAN_BUDGET};

/// The in-memory backend. See the module docs for its ordering, removal
/// and memory rules.
pub struct MemoryHub {
    /// Random per-process tag of every id, so that ids from another run
    /// are recognised and answered with `reset` (with a log: the log's
    /// current epoch).
    epoch: Tag,
    /// What history is kept.
    limits: HubLimits,
    /// Held while a publish numbers and inserts its events, and while
    /// anything evicts (never across an `.await`, so a std mutex). Lock
    /// order: `commit`, then the channel map, then a channel.
    commit: Mutex<Ledger>,
    /// Highest sequence number whose event is in its channel.
    committed: AtomicU64,
    /// All channels by name.
    channels: RwLock<HashMap<ChannelName, Arc<Channel>>>,
    /// How many channels in the map count against `max_channels` and
    /// `max_ingest_channels` (the store's rule: [`store::Budgets`]).
    budgets: store::Budgets,
    /// Source of subscriber keys.
    next_subscriber: AtomicU64,
    /// Bytes of `/events` envelopes alive (see [`StoredEvent`]).
    envelope_bytes: Arc<AtomicUsize>,
    /// Highest `evicted_through` of a dropped channel (see module docs).
    dropped_through: AtomicU64,
    /// With `--data-dir`: the log every event is written to first.
    log: Option<Arc<Wal>>,
    /// Told of every event committed (alerting), if set.
    tap: std::sync::OnceLock<Arc<dyn super::CommitTap>>,
}

/// The hub-wide account of retained events, under the commit lock.
type Ledger = store::Ledger<Channel>;

/// One channel: its history and who to wake.
struct Channel {
    name: ChannelName,
    /// The limit it counts against, decided by who created it.
    budget: Budget,
    /// `seq` of the newest evicted event (everything at or below it is
    /// gone). Written under the channel lock and the commit lock.
    evicted_through: AtomicU64,
    /// std mutex: held only for short, non-async sections.
    inner: Mutex<ChannelInner>,
}

/// A channel's history, subscribers and `removed` flag: the shared
/// [`ChannelState`], with nothing added.
type ChannelInner = ChannelState;

impl Stored for Channel {
    #[inline]
    fn name(&self) -> &ChannelName {
        &self.name
    }

    #[inline]
    fn state(&self) -> &Mutex<ChannelInner> {
        &self.inner
    }

    #[inline]
    fn evicted_through(&self) -> &AtomicU64 {
        &self.evicted_through
    }
}

/// What an append committed.
struct Appended {
    first: u64,
    last: u64,
    subscribers: usize,
}

impl MemoryHub {
    /// A hub with these limits (`history` at least 1).
    pub fn new(limits: HubLimits) -> Self {
        MemoryHub {
            epoch: Tag::random(),
            limits: HubLimits {
                history: limits.history.max(1),
                ..limits
            },
            commit: Mutex::new(Ledger::default()),
            committed: AtomicU64::new(0),
            channels: RwLock::new(HashMap::new()),
            budgets: store::Budgets::new(&limits),
            next_subscriber: AtomicU64::new(1),
            envelope_bytes: Arc::new(AtomicUsize::new(0)),
            dropped_through: AtomicU64::new(0),
            log: None,
            tap: std::sync::OnceLock::new(),
        }
    }

    /// A hub that writes every event to `log` before publishing it, gives
    /// ids that stay valid across restarts, and reads back from the log
    /// what left the memory. The memory starts with the newest
    /// `warm_bytes` of the log (within the limits, ttl included), so
    /// channels, `last_id` and backlogs are there at once after a restart.
    ///
    /// # Errors
    /// The log cannot be read.
    pub fn with_wal(limits: HubLimits, log: Arc<Wal>, warm_bytes: u64) -> Result<Self, WalError> {
        let mut hub = MemoryHub::new(limits);
        hub.epoch = Tag::hex(log.epoch());
        let last = log.last_seq();
        let mut after = log.seq_before_newest_bytes(warm_bytes);
        // Channels made while warming may have older events on disk.
        hub.committed.store(after, Ordering::Release);
        hub.log = Some(log.clone());
        let now = Instant::now();
        let now_ms = now_ms();
        while after < last {
            let batch = log.read_forward(&crate::wal::ForwardRead {
                channels: &[],
                after,
                through: last,
                max_records: 4096,
                max_bytes: 4 << 20,
            })?;
            for record in batch.records {
                let Ok(name) = ChannelName::parse(&record.channel) else {
                    continue;
                };
                let age =
                    std::time::Duration::from_millis(now_ms.saturating_sub(record.time_ms) as u64);
                if !hub.limits.history_ttl.is_zero() && age >= hub.limits.history_ttl {
                    continue;
                }
                let published = now.checked_sub(age).unwrap_or(now);
                let seq = record.seq;
                let pending = PendingEvent::encode(&record.event_type, &record.data);
                let cost = pending.allocated() + EVENT_OVERHEAD;
                // Restored with its own number: nothing goes to the log.
                // (Who created it is not in the log: it counts as a
                // client's.)
                let _ = hub.insert(
                    &[&name],
                    vec![(0, pending)],
                    cost,
                    Some((seq, published)),
                    None,
                    Creator::Client,
                );
            }
            after = batch.scanned_through.max(after + 1).min(last);
        }
        hub.committed.store(last, Ordering::Release);
        Ok(hub)
    }

    /// Waits until the events numbered up to `seq` are as durable as the
    /// log's `--fsync` policy asks before a publish is answered: on disk
    /// under `always` (group commit: one fsync serves every publisher
    /// waiting then); at once otherwise, the events being in the log since
    /// their commit. Without a log, at once.
    async fn settle(&self, seq: u64) -> Result<(), HubError> {
        match &self.log {
            Some(log) if log.fsync_policy() == FsyncPolicy::Always => log
                .wait_durable(seq)
                .await
                .map_err(|e| HubError::Wal(e.to_string())),
            _ => Ok(()),
        }
    }

    /// The write-ahead log, if the hub has one.
    pub fn wal(&self) -> Option<&Arc<Wal>> {
        self.log.as_ref()
    }

    /// See [`super::Hub::set_tap`].
    pub fn set_tap(&self, tap: Arc<dyn super::CommitTap>) {
        let _ = self.tap.set(tap);
    }

    /// The limits this hub keeps.
    pub fn limits(&self) -> &HubLimits {
        &self.limits
    }

    fn id_of(&self, seq: u64) -> String {
        EventId::new(self.epoch, seq).to_string()
    }

    /// Parses an id of this run: exactly `EPOCH-SEQ` as this hub writes
    /// them (no sign, no leading zero, no spaces). `None` for anything
    /// else, including another run's ids. With a log, the ids of earlier
    /// runs that the log still knows count too.
    fn parse_id(&self, id: &str) -> Option<u64> {
        if let Some(log) = &self.log {
            let (epoch, seq) = durable::parse_id(id)?;
            return match log.id_status(epoch, seq) {
                crate::wal::IdStatus::Known | crate::wal::IdStatus::TooOld => Some(seq),
                crate::wal::IdStatus::Unknown => None,
            };
        }
        EventId::parse(id)
            .filter(|id| id.tag == self.epoch)
            .map(|id| id.seq)
    }

    fn new_channel(&self, name: &ChannelName, budget: Budget) -> Arc<Channel> {
        Arc::new(Channel {
            name: name.clone(),
            budget,
            evicted_through: AtomicU64::new(if self.log.is_some() {
                // Older events of the channel may be on disk.
                self.committed.load(Ordering::Acquire)
            } else {
                self.dropped_through.load(Ordering::Acquire)
            }),
            inner: Mutex::new(ChannelState::new()),
        })
    }

    /// The channels called `names` (distinct), the missing ones created on
    /// `creator`'s budget: all of them, or none (the store's rule:
    /// [`store::channels_for`]).
    fn channels_for(
        &self,
        names: &[&ChannelName],
        creator: Creator,
    ) -> Result<Vec<Arc<Channel>>, HubError> {
        store::channels_for(
            &self.channels,
            names,
            creator,
            &self.budgets,
            store::Enforce::Limit,
            |name, budget| self.new_channel(name, budget),
        )
    }

    /// See [`super::Hub::ensure_channel`].
    pub fn ensure_channel(&self, name: &ChannelName) -> Result<(), HubError> {
        self.channels_for(&[name], Creator::Client).map(drop)
    }

    /// Publishes one event and returns once it is committed: numbered, in
    /// its channel, and with a log written to the log (in the operating
    /// system's cache, so a crash of the process no longer loses it) but
    /// not necessarily on disk. [`super::Hub::publish`] (what a publisher
    /// answers after) also waits for `--fsync always`.
    pub fn publish(
        &self,
        channel: &ChannelName,
        event_type: &str,
        data: &str,
    ) -> Result<Published, HubError> {
        self.publish_from(channel, event_type, data, None)
    }

    /// See [`super::Hub::publish`]: [`MemoryHub::publish`], returning once
    /// the event is as durable as the log's `--fsync` policy asks.
    pub(crate) async fn publish_settled(
        &self,
        channel: &ChannelName,
        event_type: &str,
        data: &str,
    ) -> Result<Published, HubError> {
        let (published, seq) = self.publish_one(channel, event_type, data, None)?;
        self.settle(seq).await?;
        Ok(published)
    }

    /// Publishes one event; `source` (a log line's file position) is kept
    /// with it in the log, if there is one. Returns once committed, as
    /// [`MemoryHub::publish`]: a follower's checkpoint set after this is
    /// never ahead of the log.
    pub fn publish_from(
        &self,
        channel: &ChannelName,
        event_type: &str,
        data: &str,
        source: Option<FilePosition>,
    ) -> Result<Published, HubError> {
        self.publish_one(channel, event_type, data, source)
            .map(|(published, _)| published)
    }

    /// Commits one event; returns it and its sequence number.
    fn publish_one(
        &self,
        channel: &ChannelName,
        event_type: &str,
        data: &str,
        source: Option<FilePosition>,
    ) -> Result<(Published, u64), HubError> {
        let pending = PendingEvent::encode(event_type, data);
        let cost = pending.allocated() + EVENT_OVERHEAD;
        let appended = self.insert(
            &[channel],
            vec![(0, pending)],
            cost,
            None,
            source,
            Creator::Client,
        )?;
        let published = Published {
            id: self.id_of(appended.first),
            subscribers: appended.subscribers,
        };
        Ok((published, appended.last))
    }

    /// See [`super::Hub::publish_batch`]: the one-channel case of
    /// [`MemoryHub::publish_multi`], committed as [`MemoryHub::publish`].
    pub fn publish_batch<T: AsRef<str>, D: AsRef<str>>(
        &self,
        channel: &ChannelName,
        events: &[(T, D)],
    ) -> Result<Batch, HubError> {
        self.publish_multi(&Self::one_channel(channel, events), Creator::Client)
    }

    /// See [`super::Hub::publish_batch`]: [`MemoryHub::publish_batch`],
    /// returning once the events are as durable as `--fsync` asks.
    pub(crate) async fn publish_batch_settled<T: AsRef<str>, D: AsRef<str>>(
        &self,
        channel: &ChannelName,
        events: &[(T, D)],
    ) -> Result<Batch, HubError> {
        let events = Self::one_channel(channel, events);
        self.publish_multi_settled(&events, Creator::Client).await
    }

    fn one_channel<'a, T: AsRef<str>, D: AsRef<str>>(
        channel: &'a ChannelName,
        events: &'a [(T, D)],
    ) -> Vec<(&'a ChannelName, &'a str, &'a str)> {
        events
            .iter()
            .map(|(t, d)| (channel, t.as_ref(), d.as_ref()))
            .collect()
    }

    /// See [`super::Hub::publish_multi`]; committed as
    /// [`MemoryHub::publish`].
    pub fn publish_multi(
        &self,
        events: &[(&ChannelName, &str, &str)],
        creator: Creator,
    ) -> Result<Batch, HubError> {
        self.commit_multi(events, creator).map(|(batch, _)| batch)
    }

    /// See [`super::Hub::publish_multi`]: [`MemoryHub::publish_multi`],
    /// returning once the events are as durable as `--fsync` asks.
    pub(crate) async fn publish_multi_settled(
        &self,
        events: &[(&ChannelName, &str, &str)],
        creator: Creator,
    ) -> Result<Batch, HubError> {
        let (batch, last) = self.commit_multi(events, creator)?;
        self.settle(last).await?;
        Ok(batch)
    }

    /// Commits a batch; returns it and the sequence number of its last
    /// event.
    fn commit_multi(
        &self,
        events: &[(&ChannelName, &str, &str)],
        creator: Creator,
    ) -> Result<(Batch, u64), HubError> {
        if events.is_empty() {
            return Err(HubError::EmptyBatch);
        }
        let (names, of) = super::group_channels(events);
        let pending: Vec<(usize, PendingEvent)> = events
            .iter()
            .zip(of)
            .map(|((_, event_type, data), c)| (c, PendingEvent::encode(event_type, data)))
            .collect();
        let cost: usize = pending
            .iter()
            .map(|(_, p)| p.allocated() + EVENT_OVERHEAD)
            .sum();
        let mut per_channel = vec![0usize; names.len()];
        for (c, _) in &pending {
            per_channel[*c] += 1;
        }
        if per_channel.iter().any(|n| *n > self.limits.history)
            || (events.len() > 1 && cost > self.limits.history_bytes)
        {
            return Err(HubError::BatchTooLarge {
                events: events.len(),
                bytes: cost,
                max_events: self.limits.history,
                max_bytes: self.limits.history_bytes,
            });
        }
        let appended = self.insert(&names, pending, cost, None, None, creator)?;
        let batch = Batch {
            first_id: self.id_of(appended.first),
            last_id: self.id_of(appended.last),
            count: events.len(),
            subscribers: appended.subscribers,
        };
        Ok((batch, appended.last))
    }

    /// Numbers `events` consecutively and appends each to the history of
    /// its channel (an index into `names`, which are distinct; see the
    /// module docs), making room for `cost` bytes first. Channels missing
    /// are created on `creator`'s budget. Only numbering, the log's write
    /// and insertion happen under the commit lock, with every channel of
    /// the batch locked (holders of `commit` may lock several): the events
    /// come encoded. `restore` gives the number and time of an event read
    /// back from the log at start (it is not written again); `source` goes
    /// into the log with a single event.
    fn insert(
        &self,
        names: &[&ChannelName],
        events: Vec<(usize, PendingEvent)>,
        cost: usize,
        restore: Option<(u64, Instant)>,
        source: Option<FilePosition>,
        creator: Creator,
    ) -> Result<Appended, HubError> {
        let mut events = Some(events);
        loop {
            let chs = self.channels_for(names, creator)?;
            let mut ledger = self.commit.lock().expect("commit lock");
            ledger.make_room(self.limits.history_bytes, &self.envelope_bytes, cost);
            let mut inners: Vec<_> = chs
                .iter()
                .map(|ch| ch.inner.lock().expect("channel lock"))
                .collect();
            if inners.iter().any(|inner| inner.removed) {
                // Dropped between the lookup and the lock: committing there
                // would lose the event. Look the names up again.
                continue;
            }
            let (first, published) = match restore {
                Some((seq, published)) => (seq, published),
                None => (self.committed.load(Ordering::Relaxed) + 1, Instant::now()),
            };
            let events = events.take().expect("appended once");
            // Restored events keep the epoch of the run that numbered them.
            let epoch = match (&self.log, restore) {
                (Some(log), Some(_)) => Tag::hex(log.epoch_of(first)),
                _ => self.epoch,
            };
            if let (Some(log), None) = (&self.log, restore) {
                // Into the log before anyone can see it; refused whole.
                log_events(log, names, first, &events, source)?;
            }
            let mut seq = first - 1;
            let tap = self.tap.get().filter(|_| restore.is_none());
            let mut tapped = Vec::with_capacity(if tap.is_some() { events.len() } else { 0 });
            for (c, pending) in events {
                seq += 1;
                let (ch, inner) = (&chs[c], &mut inners[c]);
                let allocated = pending.allocated();
                let frame = pending.with_id(EventId::new(epoch, seq).text().as_str());
                let event = Arc::new(StoredEvent::new(
                    seq,
                    ch.name.clone(),
                    frame,
                    allocated,
                    self.envelope_bytes.clone(),
                ));
                if tap.is_some() {
                    tapped.push(event.clone());
                }
                ledger.insert(ch, inner, event, published, self.limits.history);
            }
            if restore.is_none() {
                self.committed.store(seq, Ordering::Release);
            }
            ledger.compact();
            drop(ledger);
            let mut subscribers = 0;
            for inner in &inners {
                subscribers += inner.wake();
            }
            drop(inners);
            if let Some(tap) = tap {
                tap.committed(tapped);
            }
            return Ok(Appended {
                first,
                last: seq,
                subscribers,
            });
        }
    }

    /// See [`super::Hub::history`]. Without a log, from the memory.
    pub fn history(
        &self,
        channel: &ChannelName,
        before: Option<&str>,
        limit: usize,
        filter: &dyn Fn(&str) -> bool,
    ) -> Result<HistoryPage, HubError> {
        let before = match before {
            Some(id) => self
                .parse_id(id)
                .ok_or_else(|| HubError::UnknownId(id.chars().take(64).collect()))?,
            None => u64::MAX,
        };
        if let Some(log) = &self.log {
            return durable::history(log, channel, self.limits.history, before, limit, filter)
                .map_err(|e| HubError::Wal(e.to_string()));
        }
        let mut page = HistoryPage::default();
        let Some(ch) = self
            .channels
            .read()
            .expect("hub lock")
            .get(channel.as_str())
            .cloned()
        else {
            return Ok(page);
        };
        // Matched outside the channel lock, so a slow regex never holds up
        // a publish.
        let events: Vec<Arc<StoredEvent>> = {
            let inner = ch.inner.lock().expect("channel lock");
            inner.history.below(before)
        };
        // As the log and Redis do: at most SCAN_BUDGET bytes looked at per
        // page (plus the event that passes it), so one page never copies
        // and serializes `limit` large events.
        let mut scanned = 0u64;
        let mut looked: Option<&StoredEvent> = None;
        for event in events.iter().rev() {
            if page.events.len() == limit || scanned >= SCAN_BUDGET {
                page.next_before = looked.map(|e| e.id().to_string());
                break;
            }
            looked = Some(event);
            scanned += event.frame.len() as u64;
            if filter(&event.data()) {
                page.events.push(HistoryEvent::of(event));
            }
        }
        Ok(page)
    }

    /// See [`super::Hub::subscribe`].
    pub fn subscribe(
        self: &Arc<Self>,
        requests: &[ChannelRequest],
        start: Start,
    ) -> Result<MemorySubscription, HubError> {
        let mut seen = HashSet::with_capacity(requests.len());
        let requests: Vec<&ChannelRequest> = requests
            .iter()
            .filter(|r| seen.insert(r.name.as_str()))
            .collect();
        let key = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        let channels = self.register(&requests, key, &notify)?;
        // Registered: anything committed after this snapshot wakes us.
        let snapshot = self.committed.load(Ordering::Acquire);
        let mut sub = MemorySubscription {
            hub: self.clone(),
            key,
            acked_evictions: vec![0; channels.len()],
            channels,
            notify,
            cursor: snapshot,
            lag_reason: ResetReason::Lagged,
            initial: Vec::new(),
            backlog: None,
            catch_up: None,
        };
        match start {
            Start::Now => {
                let tails: Vec<usize> = requests.iter().map(|r| r.tail).collect();
                sub.backlog = sub.backlog(&tails, snapshot);
            }
            Start::After(id) => match self
                .parse_id(&id)
                .filter(|&seq| seq >= 1 && seq <= snapshot)
            {
                Some(seq) => {
                    sub.cursor = seq;
                    sub.lag_reason = ResetReason::TooOld;
                }
                None => {
                    sub.cursor = 0;
                    if self.log.is_some() {
                        sub.catch_up = Some(Box::new(CatchUp {
                            hidden: None,
                            quiet: true,
                        }));
                    }
                    for (i, ch) in sub.channels.iter().enumerate() {
                        let inner = ch.inner.lock().expect("channel lock");
                        let evicted = ch.evicted_through.load(Ordering::Acquire);
                        sub.acked_evictions[i] = evicted;
                        // Only a channel that holds or lost events is
                        // reset: one that never had any missed nothing.
                        let held = match &self.log {
                            Some(log) => {
                                !inner.history.is_empty()
                                    || log.holds_channel(&ch.name)
                                    || log.dropped_any(&ch.name)
                            }
                            None => !inner.history.is_empty() || evicted > 0,
                        };
                        if !held {
                            continue;
                        }
                        sub.initial.push(Delivery::Reset {
                            channel: ch.name.clone(),
                            reason: ResetReason::UnknownId,
                        });
                    }
                }
            },
        }
        Ok(sub)
    }

    /// Registers subscriber `key` on every requested channel (distinct),
    /// creating the missing ones, or on none (the store's rule:
    /// [`store::register`]).
    fn register(
        &self,
        requests: &[&ChannelRequest],
        key: u64,
        notify: &Arc<Notify>,
    ) -> Result<Vec<Arc<Channel>>, HubError> {
        let names: Vec<&ChannelName> = requests.iter().map(|r| &r.name).collect();
        store::register(
            &self.channels,
            &names,
            &self.budgets,
            key,
            notify,
            |name, budget| self.new_channel(name, budget),
        )
    }

    /// Gives back the budget of a channel that left the map.
    fn left(&self, ch: &Channel) {
        self.budgets.left(ch.budget);
    }

    /// See [`super::Hub::remove_unsubscribed`].
    pub fn remove_unsubscribed(&self, name: &ChannelName) -> bool {
        store::remove_unsubscribed(
            &self.commit,
            &self.channels,
            name,
            &self.dropped_through,
            |ch| self.left(ch),
        )
    }

    /// See [`super::Hub::sweep`].
    pub fn sweep(&self, now: Instant) -> Swept {
        let mut swept = Swept::default();
        if let Some(before) = now.checked_sub(self.limits.history_ttl) {
            if !self.limits.history_ttl.is_zero() {
                swept.expired = store::expire(&self.commit, before);
            }
        }
        swept.dropped =
            store::drop_unused(&self.channels, &self.dropped_through, |ch| self.left(ch));
        swept
    }

    /// See [`super::Hub::usage`].
    pub fn usage(&self) -> HistoryUsage {
        store::usage(&self.commit, &self.envelope_bytes, &self.channels)
    }

    /// See [`super::Hub::channels`].
    pub fn channels(&self) -> Vec<ChannelInfo> {
        store::list(&self.channels, |ch| {
            ch.inner.lock().expect("channel lock").info(&ch.name)
        })
    }
}

/// A subscriber of a [`MemoryHub`]: a cursor into the histories of its
/// channels and the `Notify` that publishes wake.
pub struct MemorySubscription {
    hub: Arc<MemoryHub>,
    key: u64,
    channels: Vec<Arc<Channel>>,
    notify: Arc<Notify>,
    /// Highest seq already handed out (or skipped as not subscribed).
    cursor: u64,
    /// Per channel, the eviction already reported with a reset.
    acked_evictions: Vec<u64>,
    /// Reason given for the next eviction found: "too old" right after a
    /// resume, then "lagged".
    lag_reason: ResetReason,
    /// Deliveries decided at subscribe time (resets).
    initial: Vec<Delivery>,
    /// The `?tail` backlog still to deliver, in steps (boxed: most
    /// subscribers have none, and each costs its size).
    backlog: Option<Box<Backlog>>,
    /// With a log, while catching up from disk (boxed: most subscribers
    /// never do, and each costs its size).
    catch_up: Option<Box<CatchUp>>,
}

/// A subscription's state while it reads from the log.
#[derive(Default)]
struct CatchUp {
    /// Per channel, what the log no longer serves, computed by the
    /// catch-up's first read and kept for the next ones.
    hidden: Option<Vec<u64>>,
    /// After an unknown id the `reset` is already queued: events the log no
    /// longer serves need no second one.
    quiet: bool,
}

/// A `?tail` backlog: the last events of each channel up to the subscribe
/// snapshot, served in bounded steps like a resume (each step is one
/// [`Merge`] of the channels: the batch rule of every cursor), before the
/// live events.
struct Backlog {
    /// Per channel, the seq of its first backlog event (`u64::MAX`: none).
    from: Vec<u64>,
    /// Highest seq handed out from the backlog so far.
    done: u64,
    /// The subscribe snapshot: the backlog ends there (the subscription's
    /// cursor starts there).
    through: u64,
}

/// What a subscription does next.
enum Step {
    /// Deliver this (maybe nothing: then wait for a publish).
    Ready(Vec<Delivery>),
    /// Read this from the log first (boxed: a catch-up is rare, and the
    /// step is held across the wait of every idle subscriber's future).
    Disk(Box<DiskRead>),
}

impl MemorySubscription {
    /// The backlog of the last `tails[i]` events of each channel up to
    /// `snapshot`, if there is one. Only where each channel's backlog
    /// starts is kept: the events stay in the history until delivered.
    fn backlog(&self, tails: &[usize], snapshot: u64) -> Option<Box<Backlog>> {
        let from: Vec<u64> = self
            .channels
            .iter()
            .zip(tails)
            .map(|(ch, &tail)| {
                if tail == 0 {
                    return u64::MAX;
                }
                let inner = ch.inner.lock().expect("channel lock");
                let (begin, end) = inner.history.tail(snapshot, tail);
                inner
                    .history
                    .events()
                    .get(begin)
                    .filter(|_| begin < end)
                    .map_or(u64::MAX, |e| e.seq)
            })
            .collect();
        let first = *from.iter().min()?;
        (first != u64::MAX).then(|| {
            Box::new(Backlog {
                from,
                done: first - 1,
                through: snapshot,
            })
        })
    }

    /// The next step of the backlog, if one is left: its events in id
    /// order, bounded like any batch. A backlog event evicted before it was
    /// handed out is reported with a `reset` (`lagged`) for its channel,
    /// as a resume would. Empty only when the backlog is done.
    fn backlog_step(&mut self) -> Vec<Delivery> {
        let Some(backlog) = self.backlog.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut merge = Merge::new();
        for (i, ch) in self.channels.iter().enumerate() {
            let Some(after) = backlog.from[i].checked_sub(1) else {
                continue;
            };
            let after = after.max(backlog.done);
            if after >= backlog.through {
                continue;
            }
            let inner = ch.inner.lock().expect("channel lock");
            // Evictions past the snapshot are the live part's to report.
            let evicted = ch
                .evicted_through
                .load(Ordering::Acquire)
                .min(backlog.through);
            if evicted > after && evicted > self.acked_evictions[i] {
                self.acked_evictions[i] = evicted;
                out.push(Delivery::Reset {
                    channel: ch.name.clone(),
                    reason: ResetReason::Lagged,
                });
            }
            merge.take(inner.history.events(), after, backlog.through);
        }
        let (events, end) = merge.finish();
        backlog.done = end.unwrap_or(backlog.through);
        if backlog.done >= backlog.through {
            self.backlog = None;
        }
        out.extend(events.into_iter().map(Delivery::Event));
        out
    }

    /// Deliveries ready now, without waiting (a read from the log, if one
    /// is due, is done on this thread).
    #[cfg(any(test, feature = "test-util"))]
    pub fn ready_batch(&mut self) -> Vec<Delivery> {
        match self.step() {
            Step::Ready(batch) => batch,
            Step::Disk(read) => self.apply_disk(read.run()),
        }
    }

    /// Waits for the next non-empty batch. Reads from the log run on the
    /// blocking pool.
    pub async fn next_batch(&mut self) -> Vec<Delivery> {
        loop {
            match self.step() {
                Step::Ready(batch) if !batch.is_empty() => return batch,
                Step::Ready(_) => self.notify.notified().await,
                Step::Disk(read) => {
                    let result = tokio::task::spawn_blocking(move || read.run())
                        .await
                        .unwrap_or_else(|e| {
                            Err(WalError::Poisoned(format!("log read failed: {e}").into()))
                        });
                    let batch = self.apply_disk(result);
                    if !batch.is_empty() {
                        return batch;
                    }
                }
            }
        }
    }

    /// What to deliver next: the initial deliveries, events from memory, or
    /// (with a log, when a channel's memory no longer reaches back to the
    /// cursor) a read from the log.
    fn step(&mut self) -> Step {
        if !self.initial.is_empty() {
            return Step::Ready(std::mem::take(&mut self.initial));
        }
        if self.backlog.is_some() {
            let batch = self.backlog_step();
            if !batch.is_empty() {
                return Step::Ready(batch);
            }
        }
        let snapshot = self.hub.committed.load(Ordering::Acquire);
        if snapshot <= self.cursor {
            return Step::Ready(Vec::new());
        }
        if let Some(read) = self.disk_read(snapshot) {
            return Step::Disk(Box::new(read));
        }
        let mut resets = Vec::new();
        let mut events: Vec<Arc<StoredEvent>> = Vec::new();
        // The live step (the hot path) keeps its own copy of
        // `Merge::take`/`Merge::finish` (the same rule and the shared
        // `cut_at_bytes`): through `Merge` it measured about 20 % slower
        // per subscriber in `benches/fanout.rs`.
        let mut cut: Option<u64> = None;
        for (i, ch) in self.channels.iter().enumerate() {
            let inner = ch.inner.lock().expect("channel lock");
            let evicted = ch.evicted_through.load(Ordering::Acquire);
            if evicted > self.cursor && self.hub.log.is_some() {
                // Evicted since `disk_read` looked: read it from the log.
                drop(inner);
                return match self.disk_read(snapshot) {
                    Some(read) => Step::Disk(Box::new(read)),
                    None => Step::Ready(Vec::new()),
                };
            }
            if evicted > self.cursor && evicted > self.acked_evictions[i] {
                self.acked_evictions[i] = evicted;
                resets.push(Delivery::Reset {
                    channel: ch.name.clone(),
                    reason: self.lag_reason,
                });
            }
            let held = inner.history.events();
            let begin = held.partition_point(|e| e.seq <= self.cursor);
            for (taken, event) in held.range(begin..).enumerate() {
                if event.seq > snapshot {
                    break;
                }
                if taken == MAX_BATCH {
                    let last = events.last().map_or(self.cursor, |e| e.seq);
                    cut = Some(cut.map_or(last, |c| c.min(last)));
                    break;
                }
                events.push(event.clone());
            }
        }
        self.lag_reason = ResetReason::Lagged;
        self.catch_up = None;
        if self.channels.len() > 1 {
            events.sort_by_key(|e| e.seq);
        }
        if let Some(limit) = cut {
            events.retain(|e| e.seq <= limit);
        }
        self.cursor = cut_at_bytes(&mut events).or(cut).unwrap_or(snapshot);
        resets.extend(events.into_iter().map(Delivery::Event));
        Step::Ready(resets)
    }

    /// With a log: the read that fills the gap between the cursor and what
    /// the memory holds, if there is one.
    fn disk_read(&mut self, snapshot: u64) -> Option<DiskRead> {
        let log = self.hub.log.as_ref()?;
        let behind = self
            .channels
            .iter()
            .map(|ch| ch.evicted_through.load(Ordering::Acquire))
            .max()
            .unwrap_or(0);
        if behind <= self.cursor {
            self.catch_up = None;
            return None;
        }
        Some(DiskRead {
            log: log.clone(),
            channels: self.channels.iter().map(|c| c.name.clone()).collect(),
            envelope_bytes: self.hub.envelope_bytes.clone(),
            keep: self.hub.limits.history,
            hidden: self.catch_up.as_mut().and_then(|c| c.hidden.take()),
            after: self.cursor,
            through: behind.min(snapshot),
            max_records: MAX_BATCH,
        })
    }

    /// Delivers what a read from the log found: first a `reset` for each
    /// channel whose events the log no longer serves past the cursor, then
    /// the events. A failed read is reported as `reset`s and skipped, never
    /// silently.
    fn apply_disk(&mut self, result: Result<DiskBatch, WalError>) -> Vec<Delivery> {
        let mut out = Vec::new();
        let batch = match result {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!("reading the event log for a subscriber failed: {e}");
                let through = self
                    .channels
                    .iter()
                    .map(|ch| ch.evicted_through.load(Ordering::Acquire))
                    .max()
                    .unwrap_or(0);
                for ch in &self.channels {
                    out.push(Delivery::Reset {
                        channel: ch.name.clone(),
                        reason: ResetReason::HistoryLost,
                    });
                }
                self.cursor = self.cursor.max(through);
                self.catch_up = None;
                return out;
            }
        };
        let catch_up = self.catch_up.get_or_insert_with(Box::default);
        if batch.fresh {
            for (i, &hidden) in batch.hidden.iter().enumerate() {
                if hidden > self.cursor && hidden > self.acked_evictions[i] {
                    self.acked_evictions[i] = hidden;
                    if !catch_up.quiet {
                        out.push(Delivery::Reset {
                            channel: self.channels[i].name.clone(),
                            reason: self.lag_reason,
                        });
                    }
                }
            }
            catch_up.quiet = false;
        }
        out.extend(batch.events.into_iter().map(Delivery::Event));
        self.cursor = self.cursor.max(batch.scanned_through);
        catch_up.hidden = (self.cursor < batch.through).then_some(batch.hidden);
        self.lag_reason = ResetReason::Lagged;
        out
    }
}

/// Writes `events` (numbered from `first`, each of the channel its index
/// in `names` says) to the log as one append.
fn log_events(
    log: &Wal,
    names: &[&ChannelName],
    first: u64,
    events: &[(usize, PendingEvent)],
    source: Option<FilePosition>,
) -> Result<(), HubError> {
    let time_ms = now_ms();
    let fields: Vec<_> = events.iter().map(|(_, e)| e.fields()).collect();
    let data: Vec<_> = fields.iter().map(|f| f.data()).collect();
    let records: Vec<NewRecord<'_>> = fields
        .iter()
        .zip(&data)
        .zip(events)
        .enumerate()
        .map(|(i, ((f, data), (c, _)))| NewRecord {
            seq: first + i as u64,
            time_ms,
            channel: names[*c].as_str(),
            event_type: f.event_type,
            data,
            source: if events.len() == 1 { source } else { None },
        })
        .collect();
    log.append(&records)
        .map(drop)
        .map_err(|e| HubError::Wal(e.to_string()))
}

/// Milliseconds since the Unix epoch, for the log's records.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Drop for MemorySubscription {
    /// Unsubscribes, and drops channels left with no subscribers and no
    /// history (lock order: the channel map, then the channel).
    fn drop(&mut self) {
        let hub = &self.hub;
        for ch in &self.channels {
            store::leave(&hub.channels, ch, self.key, &hub.dropped_through, |ch| {
                hub.left(ch)
            });
        }
    }
}
#[cfg(test)]
mod tests {
    use super::super::Subscription;
    use super::*;
    use std::sync::{mpsc, Barrier};
    use std::time::Duration;

    fn limits(history: usize) -> HubLimits {
        HubLimits {
            history,
            max_channels: 100,
            ..HubLimits::default()
        }
    }

    /// The memory hub with the `Hub` surface, publishing synchronously
    /// (`Hub::publish` is async for the Redis backend's sake).
    #[derive(Clone)]
    struct Hub(Arc<MemoryHub>);

    impl std::ops::Deref for Hub {
        type Target = MemoryHub;

        fn deref(&self) -> &MemoryHub {
            &self.0
        }
    }

    impl Hub {
        fn memory(limits: HubLimits) -> Hub {
            Hub(Arc::new(MemoryHub::new(limits)))
        }

        fn subscribe(
            &self,
            channels: &[ChannelRequest],
            start: Start,
        ) -> Result<Subscription, HubError> {
            self.0.subscribe(channels, start).map(Subscription::Memory)
        }
    }

    fn hub(history: usize) -> Hub {
        Hub::memory(limits(history))
    }

    fn n(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    fn req(name: &str, tail: usize) -> ChannelRequest {
        ChannelRequest::new(n(name), tail)
    }

    fn data_of(batch: &[Delivery]) -> Vec<String> {
        batch
            .iter()
            .map(|d| match d {
                Delivery::Event(e) => format!("{}:{}", e.channel, e.data()),
                Delivery::Reset { channel, reason } => format!("reset {channel} {reason}"),
            })
            .collect()
    }

    fn drain(sub: &mut Subscription) -> Vec<String> {
        let mut all = Vec::new();
        loop {
            let b = sub.ready_batch();
            if b.is_empty() {
                return all;
            }
            all.extend(data_of(&b));
        }
    }

    #[test]
    fn new_subscriber_gets_tail_then_live_events() {
        let hub = hub(100);
        for i in 0..5 {
            hub.publish(&n("a"), "message", &i.to_string()).unwrap();
        }
        let mut sub = hub.subscribe(&[req("a", 2)], Start::Now).unwrap();
        hub.publish(&n("a"), "message", "5").unwrap();
        assert_eq!(drain(&mut sub), ["a:3", "a:4", "a:5"]);
    }

    #[test]
    fn resume_after_id_gives_exactly_the_missed_events() {
        let hub = hub(100);
        hub.publish(&n("a"), "message", "0").unwrap();
        let id = hub.publish(&n("a"), "message", "1").unwrap().id;
        hub.publish(&n("a"), "message", "2").unwrap();
        hub.publish(&n("a"), "message", "3").unwrap();
        let mut sub = hub.subscribe(&[req("a", 10)], Start::After(id)).unwrap();
        assert_eq!(drain(&mut sub), ["a:2", "a:3"]);
    }

    #[test]
    fn multiplexed_subscription_merges_in_id_order_and_resumes_all() {
        let hub = hub(100);
        let mut sub = hub
            .subscribe(&[req("a", 0), req("b", 0)], Start::Now)
            .unwrap();
        hub.publish(&n("a"), "message", "1").unwrap();
        let id = hub.publish(&n("b"), "message", "2").unwrap().id;
        hub.publish(&n("a"), "message", "3").unwrap();
        hub.publish(&n("c"), "message", "x").unwrap();
        hub.publish(&n("b"), "message", "4").unwrap();
        assert_eq!(drain(&mut sub), ["a:1", "b:2", "a:3", "b:4"]);
        let mut resumed = hub
            .subscribe(&[req("a", 0), req("b", 0)], Start::After(id))
            .unwrap();
        assert_eq!(drain(&mut resumed), ["a:3", "b:4"]);
    }

    #[test]
    fn unknown_or_foreign_id_gets_reset_then_everything_retained() {
        let hub = hub(100);
        hub.publish(&n("a"), "message", "1").unwrap();
        for bad in ["garbage", "00000000-1", "", "ffffffff-99999"] {
            let mut sub = hub
                .subscribe(&[req("a", 0)], Start::After(bad.into()))
                .unwrap();
            assert_eq!(drain(&mut sub), ["reset a unknown id", "a:1"], "{bad}");
        }
    }

    #[test]
    fn implicit_channels_get_a_reset_only_when_they_hold_events() {
        let hub = hub(100);
        hub.publish(&n("a"), "message", "1").unwrap();
        let quiet = ChannelRequest {
            implicit: true,
            ..req("empty", 0)
        };
        let mut sub = hub
            .subscribe(&[req("a", 0), quiet.clone()], Start::After("x".into()))
            .unwrap();
        assert_eq!(drain(&mut sub), ["reset a unknown id", "a:1"]);
        // Asked for or not, a channel that never had an event missed nothing.
        let mut sub = hub
            .subscribe(&[req("a", 0), req("never", 0)], Start::After("x".into()))
            .unwrap();
        assert_eq!(drain(&mut sub), ["reset a unknown id", "a:1"]);
        hub.publish(&n("empty"), "message", "2").unwrap();
        let mut sub = hub
            .subscribe(&[req("a", 0), quiet], Start::After("x".into()))
            .unwrap();
        assert_eq!(
            drain(&mut sub),
            [
                "reset a unknown id",
                "reset empty unknown id",
                "a:1",
                "empty:2"
            ]
        );
    }

    #[test]
    fn id_from_the_future_is_unknown() {
        let hub = hub(100);
        let id = hub.publish(&n("a"), "message", "1").unwrap().id;
        let future = id.replace("-1", "-2");
        let mut sub = hub.subscribe(&[req("a", 0)], Start::After(future)).unwrap();
        assert_eq!(drain(&mut sub), ["reset a unknown id", "a:1"]);
    }

    #[test]
    fn resume_older_than_history_gets_one_reset() {
        let hub = hub(3);
        let id = hub.publish(&n("a"), "message", "0").unwrap().id;
        for i in 1..6 {
            hub.publish(&n("a"), "message", &i.to_string()).unwrap();
        }
        let mut sub = hub.subscribe(&[req("a", 0)], Start::After(id)).unwrap();
        assert_eq!(drain(&mut sub), ["reset a too old", "a:3", "a:4", "a:5"]);
        hub.publish(&n("a"), "message", "6").unwrap();
        assert_eq!(drain(&mut sub), ["a:6"]);
    }

    #[test]
    fn slow_subscriber_is_reset_and_memory_stays_bounded() {
        let hub = hub(4);
        let mut slow = hub.subscribe(&[req("a", 0)], Start::Now).unwrap();
        for i in 0..10 {
            hub.publish(&n("a"), "message", &i.to_string()).unwrap();
        }
        assert_eq!(hub.channels()[0].retained, 4);
        assert_eq!(
            drain(&mut slow),
            ["reset a lagged", "a:6", "a:7", "a:8", "a:9"]
        );
    }

    #[test]
    fn large_backlog_comes_in_bounded_batches_in_order() {
        let hub = hub(5000);
        let mut sub = hub
            .subscribe(&[req("a", 0), req("b", 0)], Start::Now)
            .unwrap();
        for i in 0..3000 {
            hub.publish(
                &n(if i % 3 == 0 { "a" } else { "b" }),
                "message",
                &i.to_string(),
            )
            .unwrap();
        }
        let mut seen = Vec::new();
        loop {
            let b = sub.ready_batch();
            if b.is_empty() {
                break;
            }
            assert!(b.len() <= 2 * MAX_BATCH);
            seen.extend(b.into_iter().map(|d| match d {
                Delivery::Event(e) => e.data().parse::<u32>().unwrap(),
                Delivery::Reset { .. } => panic!("unexpected reset"),
            }));
        }
        assert_eq!(seen, (0..3000).collect::<Vec<_>>());
    }

    /// `?tail` is served in steps like a resume: no first batch holds the
    /// whole backlog.
    #[test]
    fn a_tail_comes_in_bounded_batches_in_order() {
        // Over a MiB at most, plus the one event that passes it.
        const BOUND: usize = (1 << 20) + (100 << 10) + 256;
        let hub = hub(5000);
        let big = "x".repeat(100 << 10);
        for i in 0..60 {
            let channel = n(if i % 3 == 0 { "a" } else { "b" });
            hub.publish(&channel, "message", &format!("{i} {big}"))
                .unwrap();
        }
        for i in 60..3060 {
            hub.publish(&n("c"), "message", &i.to_string()).unwrap();
        }
        let mut sub = hub
            .subscribe(
                &[req("a", 5000), req("b", 5000), req("c", 5000)],
                Start::Now,
            )
            .unwrap();
        hub.publish(&n("a"), "message", "3060").unwrap();
        let (mut seen, mut batches) = (Vec::new(), 0);
        loop {
            let b = sub.ready_batch();
            if b.is_empty() {
                break;
            }
            batches += 1;
            let bytes: usize = b
                .iter()
                .map(|d| match d {
                    Delivery::Event(e) => e.frame.len(),
                    Delivery::Reset { .. } => panic!("unexpected reset"),
                })
                .sum();
            assert!(bytes <= BOUND, "batch {batches}: {bytes} bytes");
            assert!(
                b.len() <= 3 * MAX_BATCH,
                "batch {batches}: {} events",
                b.len()
            );
            seen.extend(b.iter().map(|d| match d {
                Delivery::Event(e) => e.data().split(' ').next().unwrap().parse::<u32>().unwrap(),
                Delivery::Reset { .. } => unreachable!(),
            }));
        }
        assert_eq!(seen, (0..3061).collect::<Vec<_>>());
        assert!(batches >= 7, "{batches} batches");
    }

    /// A backlog event evicted before it was handed out is reported, as a
    /// lagging live subscriber's would be; the rest follows in order.
    #[test]
    fn a_tail_evicted_before_it_is_sent_gets_a_reset() {
        let hub = hub(10);
        for i in 0..10 {
            hub.publish(&n("a"), "message", &i.to_string()).unwrap();
        }
        let mut sub = hub.subscribe(&[req("a", 10)], Start::Now).unwrap();
        for i in 10..15 {
            hub.publish(&n("a"), "message", &i.to_string()).unwrap();
        }
        let mut want = vec![format!("reset a {}", ResetReason::Lagged)];
        want.extend((5..15).map(|i| format!("a:{i}")));
        assert_eq!(drain(&mut sub), want);
    }

    /// A history page looks at most `SCAN_BUDGET` bytes (plus the event
    /// that passes it), then says where to go on.
    #[test]
    fn a_history_page_stops_at_the_byte_budget() {
        let hub = hub(100);
        let big = "x".repeat(1 << 20);
        for i in 0..20 {
            hub.publish(&n("a"), "message", &format!("{i} {big}"))
                .unwrap();
        }
        let all = |_: &str| true;
        let (mut before, mut seen, mut pages) = (None, Vec::new(), 0);
        loop {
            let page = hub.history(&n("a"), before.as_deref(), 1000, &all).unwrap();
            pages += 1;
            let bytes: usize = page.events.iter().map(|e| e.data.len()).sum();
            assert!(bytes as u64 <= SCAN_BUDGET + (1 << 20) + 16, "{bytes}");
            seen.extend(
                page.events
                    .iter()
                    .map(|e| e.data.split(' ').next().unwrap().to_string()),
            );
            match page.next_before {
                Some(id) => before = Some(id),
                None => break,
            }
        }
        let want: Vec<String> = (0..20).rev().map(|i| i.to_string()).collect();
        assert_eq!(seen, want);
        assert_eq!(pages, 3);
        // A filter that matches nothing still ends the page at the budget.
        let none = |_: &str| false;
        let page = hub.history(&n("a"), None, 1000, &none).unwrap();
        assert!(page.events.is_empty() && page.next_before.is_some());
    }

    #[test]
    fn data_line_breaks_are_normalised() {
        let hub = hub(10);
        hub.publish(&n("a"), "message", "a\r\nb\rc\n").unwrap();
        let mut sub = hub.subscribe(&[req("a", 1)], Start::Now).unwrap();
        assert_eq!(drain(&mut sub), ["a:a\nb\nc\n"]);
    }

    #[test]
    fn subscriber_count_and_unsubscribe_on_drop() {
        let hub = hub(10);
        let sub = hub.subscribe(&[req("a", 0)], Start::Now).unwrap();
        assert_eq!(hub.publish(&n("a"), "message", "x").unwrap().subscribers, 1);
        drop(sub);
        let last = hub.publish(&n("a"), "message", "y").unwrap();
        assert_eq!(last.subscribers, 0);
        assert_eq!(hub.channels()[0].last_id, Some(last.id));
    }

    #[test]
    fn channels_without_subscribers_or_history_are_dropped() {
        let hub = hub(10);
        let sub = hub
            .subscribe(
                &[req("passing", 0), req("kept", 0), req("log:x", 0)],
                Start::Now,
            )
            .unwrap();
        hub.publish(&n("kept"), "message", "x").unwrap();
        let names = |hub: &Hub| {
            hub.channels()
                .into_iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&hub), ["kept", "log:x", "passing"]);
        drop(sub);
        assert_eq!(names(&hub), ["kept", "log:x"]);
        // A dropped channel comes back on next use.
        let mut again = hub.subscribe(&[req("passing", 0)], Start::Now).unwrap();
        hub.publish(&n("passing"), "message", "back").unwrap();
        assert_eq!(drain(&mut again), ["passing:back"]);
    }

    #[test]
    fn channel_limit_is_enforced() {
        let hub = Hub::memory(HubLimits {
            max_channels: 2,
            ..limits(10)
        });
        hub.publish(&n("a"), "message", "x").unwrap();
        hub.publish(&n("b"), "message", "x").unwrap();
        assert_eq!(
            hub.publish(&n("c"), "message", "x"),
            Err(HubError::TooManyChannels { limit: 2 })
        );
        // Log streams and broadcast have their own budget.
        hub.ensure_channel(&n("log:late")).unwrap();
        hub.publish(&n("log:late"), "message", "line").unwrap();
        hub.publish(&ChannelName::broadcast(), "broadcast", "{}")
            .unwrap();
        let quiet = [req("log:other", 0), req("broadcast", 0)];
        drop(hub.subscribe(&quiet, Start::Now).unwrap());
        assert!(matches!(
            hub.subscribe(&[req("log:x", 0), req("c", 0)], Start::Now),
            Err(HubError::TooManyChannels { limit: 2 })
        ));
        // A dropped client channel frees its slot.
        assert!(hub.remove_unsubscribed(&n("a")));
        hub.publish(&n("c"), "message", "x").unwrap();
    }

    #[tokio::test]
    async fn next_batch_wakes_on_publish_from_another_task() {
        let hub = hub(10);
        let mut sub = hub.subscribe(&[req("a", 0)], Start::Now).unwrap();
        let publisher = hub.clone();
        tokio::spawn(async move {
            publisher.publish(&n("a"), "message", "hello").unwrap();
        });
        let batch = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next_batch())
            .await
            .expect("woken");
        assert_eq!(data_of(&batch), ["a:hello"]);
    }

    #[test]
    fn concurrent_publishers_never_break_multiplexed_order() {
        let hub = hub(100_000);
        let mut sub = hub
            .subscribe(&[req("a", 0), req("b", 0)], Start::Now)
            .unwrap();
        let handles: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|ch| {
                let hub = hub.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        hub.publish(&n(ch), "message", &i.to_string()).unwrap();
                    }
                })
            })
            .collect();
        let mut last_seq = 0;
        let mut count = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while count < 4000 {
            assert!(
                Instant::now() < deadline,
                "only {count} of 4000 events arrived"
            );
            let batch = sub.ready_batch();
            if batch.is_empty() {
                std::thread::yield_now();
            }
            for d in batch {
                let Delivery::Event(e) = d else {
                    panic!("reset")
                };
                assert!(e.seq > last_seq, "out of order");
                last_seq = e.seq;
                count += 1;
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(count, 4000);
    }

    /// Runs `f` on its own thread and fails if it takes longer than `limit`
    /// (instead of hanging the test run).
    fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(limit)
            .expect("the test did not finish in time (or panicked)")
    }

    fn names(hub: &Hub) -> Vec<String> {
        hub.channels()
            .into_iter()
            .map(|c| c.name.to_string())
            .collect()
    }

    fn epoch_of(hub: &Hub) -> String {
        let id = hub.publish(&n("epoch-probe"), "message", "x").unwrap().id;
        id.split_once('-').unwrap().0.to_string()
    }

    #[test]
    fn refused_subscribe_leaves_no_subscriber_and_no_channel() {
        let hub = Hub::memory(HubLimits {
            max_channels: 3,
            ..limits(10)
        });
        let held = hub.subscribe(&[req("c1", 0)], Start::Now).unwrap();
        hub.publish(&n("c2"), "message", "x").unwrap();
        hub.publish(&n("c3"), "message", "x").unwrap();
        for i in 0..200 {
            let refused = hub
                .subscribe(&[req("c1", 0), req(&format!("new{i}"), 0)], Start::Now)
                .err();
            assert_eq!(refused, Some(HubError::TooManyChannels { limit: 3 }));
        }
        assert_eq!(names(&hub), ["c1", "c2", "c3"]);
        assert_eq!(
            hub.channels()[0].subscribers,
            1,
            "phantom subscribers on c1"
        );
        drop(held);
        // One slot free, two channels wanted: neither is created.
        assert_eq!(names(&hub), ["c2", "c3"]);
        let refused = hub.subscribe(&[req("x", 0), req("y", 0)], Start::Now).err();
        assert_eq!(refused, Some(HubError::TooManyChannels { limit: 3 }));
        assert_eq!(names(&hub), ["c2", "c3"]);
        assert!(hub.channels().iter().all(|c| c.subscribers == 0));
    }

    #[test]
    fn a_publish_answered_ok_survives_its_channel_being_dropped_concurrently() {
        const ROUNDS: usize = 20_000;
        let hub = Hub::memory(HubLimits {
            max_channels: ROUNDS + 10,
            ..limits(10)
        });
        let checked = hub.clone();
        within(Duration::from_secs(60), move || {
            let barrier = Arc::new(Barrier::new(2));
            let dropper = {
                let (hub, barrier) = (hub.clone(), barrier.clone());
                std::thread::spawn(move || {
                    for round in 0..ROUNDS {
                        // The channel exists, empty, with one subscriber...
                        let sub = hub
                            .subscribe(&[req(&format!("r{round}"), 0)], Start::Now)
                            .unwrap();
                        barrier.wait();
                        // ...who leaves while the publisher publishes.
                        drop(sub);
                        barrier.wait();
                    }
                })
            };
            for round in 0..ROUNDS {
                barrier.wait();
                hub.publish(&n(&format!("r{round}")), "message", &round.to_string())
                    .unwrap();
                barrier.wait();
            }
            dropper.join().unwrap();
        });
        let infos = checked.channels();
        let lost: Vec<&str> = (0..ROUNDS)
            .filter(|round| {
                let name = format!("r{round}");
                !infos.iter().any(|c| c.name == name && c.retained == 1)
            })
            .map(|_| "lost")
            .collect();
        assert_eq!(
            lost.len(),
            0,
            "{} of {ROUNDS} publishes were lost",
            lost.len()
        );
        // And a subscriber that comes later gets it.
        let mut late = checked.subscribe(&[req("r7", 1)], Start::Now).unwrap();
        assert_eq!(drain(&mut late), ["r7:7"]);
    }

    #[test]
    fn concurrent_subscribers_droppers_and_publishers_lose_nothing() {
        // Publishers, each with its own subscriber that comes and goes on a
        // shared set of channels; every event answered Ok must be found by
        // a subscriber that arrives afterwards with a tail.
        let hub = Hub::memory(HubLimits {
            max_channels: 1000,
            ..limits(100_000)
        });
        let checked = hub.clone();
        let published = within(Duration::from_secs(60), move || {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let hub = hub.clone();
                    std::thread::spawn(move || {
                        let mut published = 0;
                        for i in 0..3000 {
                            let name = format!("s{}", i % 8);
                            if t % 2 == 0 {
                                let sub = hub.subscribe(&[req(&name, 0)], Start::Now).unwrap();
                                drop(sub);
                            } else {
                                hub.publish(&n(&name), "message", "x").unwrap();
                                published += 1;
                            }
                        }
                        published
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .sum::<usize>()
        });
        let retained: usize = checked.channels().iter().map(|c| c.retained).sum();
        assert_eq!(retained, published);
    }

    #[test]
    fn history_bytes_evict_the_oldest_events_of_the_whole_hub() {
        let big = "x".repeat(10_000);
        let hub = Hub::memory(HubLimits {
            history_bytes: 100_000,
            ..limits(1000)
        });
        let mut live = hub.subscribe(&[req("a", 0)], Start::Now).unwrap();
        let mut ids = Vec::new();
        for i in 0..30 {
            let channel = if i % 2 == 0 { "a" } else { "b" };
            ids.push(hub.publish(&n(channel), "message", &big).unwrap().id);
            let usage = hub.usage();
            assert!(usage.bytes <= 100_000, "{usage:?}");
        }
        let usage = hub.usage();
        assert!(usage.events >= 8 && usage.events < 10, "{usage:?}");
        // The retained events are the newest ones, whatever their channel.
        let infos = hub.channels();
        let retained: usize = infos.iter().map(|c| c.retained).sum();
        assert_eq!(retained, usage.events);
        let bytes: usize = infos.iter().map(|c| c.retained_bytes).sum();
        assert_eq!(bytes, usage.bytes);
        let mut resumed = hub
            .subscribe(
                &[req("a", 0), req("b", 0)],
                Start::After(ids[29 - usage.events].clone()),
            )
            .unwrap();
        assert_eq!(
            drain(&mut resumed).len(),
            usage.events,
            "no reset: nothing missed"
        );
        // A live subscriber that did not keep up is told, then continues.
        let got = drain(&mut live);
        assert_eq!(got[0], "reset a lagged");
        assert_eq!(got.len(), 1 + infos[0].retained);
        // A resume from an evicted event is too old.
        let mut old = hub
            .subscribe(&[req("a", 0)], Start::After(ids[0].clone()))
            .unwrap();
        assert_eq!(drain(&mut old)[0], "reset a too old");
    }

    #[test]
    fn envelopes_count_against_history_bytes_while_they_exist() {
        let hub = hub(10);
        hub.publish(&n("a"), "message", "hello").unwrap();
        let before = hub.usage().bytes;
        let mut sub = hub.subscribe(&[req("a", 1)], Start::Now).unwrap();
        let Delivery::Event(event) = sub.ready_batch().remove(0) else {
            panic!("expected the event")
        };
        let envelope = event.envelope_frame();
        assert_eq!(hub.usage().bytes, before + envelope.len());
        drop(event);
        for i in 0..10 {
            hub.publish(&n("a"), "message", &i.to_string()).unwrap();
        }
        // The enveloped event was evicted and freed: its envelope no longer counts.
        let usage = hub.usage();
        assert_eq!(usage.bytes, hub.channels()[0].retained_bytes);
    }

    #[test]
    fn the_ttl_expires_events_and_drops_one_off_channels_but_keeps_logs_and_broadcast() {
        let hub = Hub::memory(HubLimits {
            history_ttl: Duration::from_secs(60),
            // Client channels only: log:app and broadcast do not count.
            max_channels: 6,
            ..limits(100)
        });
        let t0 = Instant::now();
        hub.ensure_channel(&n("log:app")).unwrap();
        hub.publish(&n("log:app"), "message", "line").unwrap();
        hub.publish(&ChannelName::broadcast(), "broadcast", "{}")
            .unwrap();
        let mut first = None;
        for i in 0..6 {
            let id = hub
                .publish(&n(&format!("once{i}")), "message", "x")
                .unwrap()
                .id;
            first.get_or_insert(id);
        }
        assert_eq!(
            hub.publish(&n("fresh"), "message", "x"),
            Err(HubError::TooManyChannels { limit: 6 })
        );
        let subscribed = hub.subscribe(&[req("once0", 0)], Start::Now).unwrap();
        assert_eq!(hub.sweep(t0 + Duration::from_secs(30)), Swept::default());
        assert_eq!(
            hub.sweep(Instant::now() + Duration::from_secs(61)),
            Swept {
                expired: 8,
                dropped: 5
            }
        );
        assert_eq!(names(&hub), ["broadcast", "log:app", "once0"]);
        assert!(hub.channels().iter().all(|c| c.retained == 0));
        assert_eq!(hub.usage().bytes, 0);
        drop(subscribed);
        assert_eq!(names(&hub), ["broadcast", "log:app"]);
        // Room again for new channels.
        hub.publish(&n("fresh"), "message", "x").unwrap();
        // A resume from before the drop is told that events are gone...
        let mut resumed = hub
            .subscribe(&[req("once1", 0)], Start::After(first.unwrap()))
            .unwrap();
        assert_eq!(drain(&mut resumed), ["reset once1 too old"]);
        // ...while a new subscriber is not.
        let mut fresh = hub.subscribe(&[req("once2", 0)], Start::Now).unwrap();
        hub.publish(&n("once2"), "message", "y").unwrap();
        assert_eq!(drain(&mut fresh), ["once2:y"]);
    }

    #[test]
    fn a_zero_ttl_keeps_events() {
        let hub = Hub::memory(HubLimits {
            history_ttl: Duration::ZERO,
            ..limits(10)
        });
        hub.publish(&n("a"), "message", "x").unwrap();
        let swept = hub.sweep(Instant::now() + Duration::from_secs(1_000_000));
        assert_eq!(swept, Swept::default());
        assert_eq!(hub.channels()[0].retained, 1);
    }

    #[test]
    fn sweep_period_follows_the_ttl() {
        let period = |secs| {
            HubLimits {
                history_ttl: Duration::from_secs(secs),
                ..HubLimits::default()
            }
            .sweep_period()
        };
        assert_eq!(period(3600), Duration::from_secs(60));
        assert_eq!(period(2), Duration::from_millis(500));
        assert_eq!(period(0), Duration::from_secs(60));
    }

    #[test]
    fn a_batch_gets_consecutive_ids_all_or_nothing() {
        let hub = hub(5);
        let mut sub = hub.subscribe(&[req("a", 0)], Start::Now).unwrap();
        let batch = hub
            .publish_batch(
                &n("a"),
                &[("message", "1"), ("sensor", "2"), ("message", "3\r\n4")],
            )
            .unwrap();
        assert_eq!(batch.count, 3);
        assert_eq!(batch.subscribers, 1);
        let seq = |id: &str| id.split_once('-').unwrap().1.parse::<u64>().unwrap();
        assert_eq!(seq(&batch.last_id) - seq(&batch.first_id), 2);
        let got = sub.ready_batch();
        assert_eq!(data_of(&got), ["a:1", "a:2", "a:3\n4"]);
        let Delivery::Event(second) = &got[1] else {
            panic!()
        };
        assert_eq!(second.event_type(), "sensor");
        assert_eq!(
            hub.publish_batch::<&str, &str>(&n("a"), &[]),
            Err(HubError::EmptyBatch)
        );
        let six = [("message", "x"); 6];
        assert!(matches!(
            hub.publish_batch(&n("new"), &six),
            Err(HubError::BatchTooLarge {
                events: 6,
                max_events: 5,
                ..
            })
        ));
        assert_eq!(names(&hub), ["a"], "a refused batch creates no channel");
        assert!(sub.ready_batch().is_empty());
    }

    #[test]
    fn a_batch_of_several_channels_gets_consecutive_ids_in_record_order() {
        let hub = hub(5);
        let mut sub = hub
            .subscribe(&[req("a", 0), req("b", 0)], Start::Now)
            .unwrap();
        let (a, b) = (n("a"), n("b"));
        let batch = hub
            .publish_multi(
                &[
                    (&a, "message", "1"),
                    (&b, "message", "2"),
                    (&a, "message", "3"),
                    (&b, "message", "4"),
                ],
                Creator::Ingest,
            )
            .unwrap();
        assert_eq!((batch.count, batch.subscribers), (4, 2));
        let seq = |id: &str| id.split_once('-').unwrap().1.parse::<u64>().unwrap();
        assert_eq!(seq(&batch.last_id) - seq(&batch.first_id), 3);
        let got = sub.ready_batch();
        assert_eq!(data_of(&got), ["a:1", "b:2", "a:3", "b:4"]);
        let ids: Vec<u64> = got
            .iter()
            .map(|d| match d {
                Delivery::Event(e) => e.seq,
                _ => panic!("not an event"),
            })
            .collect();
        assert_eq!(
            ids,
            (seq(&batch.first_id)..=seq(&batch.last_id)).collect::<Vec<_>>()
        );
        // More of one channel than the history keeps: refused whole.
        let mut six: Vec<(&ChannelName, &str, &str)> = vec![(&b, "message", "x")];
        six.extend([(&a, "message", "y"); 6]);
        assert!(matches!(
            hub.publish_multi(&six, Creator::Ingest),
            Err(HubError::BatchTooLarge { max_events: 5, .. })
        ));
        assert!(sub.ready_batch().is_empty());
    }

    #[test]
    fn a_batch_refused_for_its_second_channel_publishes_nothing() {
        let hub = Hub::memory(HubLimits {
            max_channels: 2,
            max_ingest_channels: 2,
            ..limits(10)
        });
        let mut sub = hub.subscribe(&[req("a", 0)], Start::Now).unwrap();
        hub.publish(&n("b"), "message", "x").unwrap();
        let before = hub.committed.load(Ordering::Acquire);
        let (a, c) = (n("a"), n("c"));
        assert_eq!(
            hub.publish_multi(
                &[(&a, "message", "1"), (&c, "message", "2")],
                Creator::Client
            ),
            Err(HubError::TooManyChannels { limit: 2 })
        );
        assert!(sub.ready_batch().is_empty(), "nothing of it reached a");
        assert_eq!(hub.committed.load(Ordering::Acquire), before);
        assert_eq!(names(&hub), ["a", "b"], "and it created no channel");
    }

    #[test]
    fn ingest_channels_have_their_own_budget() {
        let hub = Hub::memory(HubLimits {
            max_channels: 2,
            max_ingest_channels: 2,
            ..limits(10)
        });
        hub.publish(&n("a"), "message", "x").unwrap();
        hub.publish(&n("b"), "message", "x").unwrap();
        // Clients are at their limit; ingest still creates its channels,
        // and may publish to clients' channels.
        let (a, i1, i2, i3) = (n("a"), n("i1"), n("i2"), n("i3"));
        hub.publish_multi(
            &[(&i1, "message", "1"), (&a, "message", "2")],
            Creator::Ingest,
        )
        .unwrap();
        hub.publish_multi(&[(&i2, "message", "3")], Creator::Ingest)
            .unwrap();
        assert_eq!(
            hub.publish(&n("c"), "message", "x"),
            Err(HubError::TooManyChannels { limit: 2 })
        );
        // Ingest at its limit: nothing of a refused request is published.
        let before = hub.committed.load(Ordering::Acquire);
        assert_eq!(
            hub.publish_multi(
                &[(&i1, "message", "4"), (&i3, "message", "5")],
                Creator::Ingest
            ),
            Err(HubError::TooManyIngestChannels { limit: 2 })
        );
        assert_eq!(hub.committed.load(Ordering::Acquire), before);
        // Clients subscribing to an ingest channel do not move it to their
        // budget; a dropped ingest channel frees an ingest slot.
        drop(hub.subscribe(&[req("i2", 0)], Start::Now).unwrap());
        assert!(hub.remove_unsubscribed(&i2));
        hub.publish_multi(&[(&i3, "message", "6")], Creator::Ingest)
            .unwrap();
        assert_eq!(names(&hub), ["a", "b", "i1", "i3"]);
    }

    #[test]
    fn batches_are_never_interleaved_with_other_publishes() {
        let hub = hub(100_000);
        let done = within(Duration::from_secs(60), move || {
            let single = {
                let hub = hub.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        hub.publish(&n("single"), "message", &i.to_string())
                            .unwrap();
                    }
                })
            };
            let events: Vec<(&str, String)> = (0..10).map(|i| ("message", i.to_string())).collect();
            let seq = |id: &str| id.split_once('-').unwrap().1.parse::<u64>().unwrap();
            for _ in 0..500 {
                let batch = hub.publish_batch(&n("bulk"), &events).unwrap();
                assert_eq!(seq(&batch.last_id) - seq(&batch.first_id), 9);
            }
            single.join().unwrap();
            true
        });
        assert!(done);
    }

    #[test]
    fn multi_channel_batches_in_opposite_orders_neither_deadlock_nor_interleave() {
        let hub = hub(100_000);
        let done = within(Duration::from_secs(60), move || {
            let mut sub = hub
                .subscribe(&[req("x", 0), req("y", 0)], Start::Now)
                .unwrap();
            let writers: Vec<_> = [("x", "y"), ("y", "x")]
                .into_iter()
                .map(|(first, second)| {
                    let hub = hub.clone();
                    std::thread::spawn(move || {
                        let (first, second) = (n(first), n(second));
                        let seq = |id: &str| id.split_once('-').unwrap().1.parse::<u64>().unwrap();
                        for i in 0..300 {
                            let events: Vec<(&ChannelName, &str, &str)> = (0..10)
                                .map(|j| {
                                    let ch = if j % 2 == 0 { &first } else { &second };
                                    (ch, "message", if i % 2 == 0 { "even" } else { "odd" })
                                })
                                .collect();
                            let batch = hub.publish_multi(&events, Creator::Ingest).unwrap();
                            assert_eq!(seq(&batch.last_id) - seq(&batch.first_id), 9);
                        }
                    })
                })
                .collect();
            for writer in writers {
                writer.join().unwrap();
            }
            // Every id from the first to the last, once, in order.
            let mut seqs = Vec::new();
            loop {
                let batch = sub.ready_batch();
                if batch.is_empty() {
                    break;
                }
                seqs.extend(batch.iter().map(|d| match d {
                    Delivery::Event(e) => e.seq,
                    _ => panic!("not an event"),
                }));
            }
            assert_eq!(seqs.len(), 6000);
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
            true
        });
        assert!(done);
    }

    #[test]
    fn any_id_not_exactly_of_this_run_is_unknown() {
        let hub = hub(100);
        let epoch = epoch_of(&hub);
        hub.publish(&n("a"), "message", "1").unwrap();
        for bad in [
            format!("{epoch}-+1"),
            format!("{epoch}-01"),
            format!("{epoch}-0"),
            format!(" {epoch}-1"),
            format!("{epoch}-1 "),
            format!("{epoch}-1é"),
            format!("{epoch}--1"),
            format!("{epoch}-"),
            "é".to_string(),
        ] {
            let mut sub = hub
                .subscribe(&[req("a", 0)], Start::After(bad.clone()))
                .unwrap();
            assert_eq!(drain(&mut sub), ["reset a unknown id", "a:1"], "{bad:?}");
        }
        let not_utf8 = [epoch.as_bytes(), b"-1\xff"].concat();
        let mut sub = hub
            .subscribe(&[req("a", 0)], Start::after_bytes(&not_utf8))
            .unwrap();
        assert_eq!(drain(&mut sub), ["reset a unknown id", "a:1"]);
        let mut ok = hub
            .subscribe(
                &[req("a", 0)],
                Start::after_bytes(format!("{epoch}-1").as_bytes()),
            )
            .unwrap();
        assert_eq!(drain(&mut ok), ["a:1"]);
    }

    #[test]
    fn removing_a_channel_needs_it_unsubscribed_and_frees_its_history() {
        let hub = hub(100);
        let log = n("log:gone");
        hub.ensure_channel(&log).unwrap();
        for i in 0..10 {
            hub.publish(&log, "message", &i.to_string()).unwrap();
        }
        let sub = hub.subscribe(&[req("log:gone", 0)], Start::Now).unwrap();
        assert!(!hub.remove_unsubscribed(&log));
        assert_eq!(hub.channels()[0].retained, 10);
        drop(sub);
        assert!(hub.remove_unsubscribed(&log));
        assert!(names(&hub).is_empty());
        assert_eq!(
            hub.usage(),
            HistoryUsage {
                events: 0,
                bytes: 0,
                channels: 0
            }
        );
        assert!(hub.remove_unsubscribed(&log), "already gone");
    }

    #[test]
    fn the_memory_figures_in_architecture_md_hold() {
        // ARCHITECTURE.md, "Memory bounds": keep these in step with it.
        const {
            assert!(EVENT_OVERHEAD <= 256);
            assert!(size_of::<Channel>() <= 144);
            assert!(size_of::<MemorySubscription>() <= 128);
        }
        // A 64-byte log line costs its frame (id room, `data: `, the line,
        // two LFs) plus the overhead.
        let hub = hub(10);
        hub.publish(&n("log:x"), "message", &"x".repeat(64))
            .unwrap();
        assert_eq!(
            hub.channels()[0].retained_bytes,
            crate::sse::ID_ROOM + 6 + 64 + 2 + EVENT_OVERHEAD
        );
    }
}
