//! The node's replica of the cluster's channels, and its subscriptions.
//!
//! The feed reader is the only writer: it appends each event to its
//! channel's history and then advances `committed`, so, as in the memory
//! hub, every event numbered at or below `committed` is already in its
//! channel and a subscriber reading up to a snapshot of `committed` merges
//! any set of channels in strict id order.
//!
//! What the replica does not hold is read from Redis. Each channel has a
//! `floor`: every event of the channel numbered in (`floor`, `committed`]
//! is in its history. Below the floor (events published before the node
//! started, evicted by `--history`, or skipped over when the node lost the
//! feed) a subscriber reads the channel's Redis stream instead, and Redis
//! says whether those events still exist (`reset` with `too old` or
//! `lagged` when they do not). So a slow subscriber costs no memory, and a
//! `Last-Event-ID` from any node resumes exactly here.
//!
//! Epochs: when the line of history changes (Redis lost its data), the
//! reader clears the replica, starts the new line at its base number and
//! bumps `generation`; every subscription then sends one `reset` (`history
//! lost`) for each of its channels that held events, and goes on with the
//! new line.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::link;
use super::scripts::Entry;
use super::{Line, Node};
use crate::hub::cursor::{split_batch, Merge};
use crate::hub::store::{self, ChannelState, Stored};
use crate::hub::{
    Budget, ChannelInfo, ChannelName, ChannelRequest, Creator, Delivery, EventId, HistoryUsage,
    HubError, HubLimits, ResetReason, Start, StoredEvent, Swept, Tag,
};
use crate::sse::PendingEvent;

/// Most events read from one channel stream per request.
const FETCH_COUNT: usize = 1000;

/// Most bytes of event data one subscriber reads off Redis in one step
/// (shared by the channels it reads), so large events resumed by many
/// clients cannot make a node hold unbounded copies at once; what is left
/// comes in the next steps.
const FETCH_BYTES: u64 = 8 << 20;

/// Each of `reads` concurrent channel reads' share of [`FETCH_BYTES`].
fn fetch_share(reads: usize) -> u64 {
    (FETCH_BYTES / reads.max(1) as u64).max(64 << 10)
}

/// Pause before a subscriber retries a history read that Redis did not
/// answer (its stream stays open meanwhile).
const FETCH_RETRY: Duration = Duration::from_millis(250);

/// Previous epoch tags remembered, to answer their ids with `history lost`
/// rather than `unknown id`.
const PREVIOUS_TAGS: usize = 16;

/// The feed entry's field naming who published it when not a client
/// ([`INGEST`]: the publish script writes it for an ingest publish, so
/// that every node counts the channels it brings on the ingest budget).
pub(super) const ORIGIN: &str = "o";

/// [`ORIGIN`] of an ingest publish.
pub(super) const INGEST: &str = "ingest";

const LAGGED: ResetReason = ResetReason::Lagged;
const TOO_OLD: ResetReason = ResetReason::TooOld;
const UNKNOWN_ID: ResetReason = ResetReason::UnknownId;
const HISTORY_LOST: ResetReason = ResetReason::HistoryLost;

/// The node's copy of the channels. See the module docs.
pub(crate) struct Replica {
    history: usize,
    /// How many channels here count against `--max-channels` and
    /// `--max-ingest-channels` (the store's rule: [`store::Budgets`]).
    budgets: store::Budgets,
    /// `--history-bytes`: retained events of all channels together.
    history_bytes: usize,
    /// The hub-wide account of retained events, with the age queue that
    /// evicts the oldest first (the store's rules, as in the memory hub).
    /// Written by the feed reader, the sweep and removals (std mutex,
    /// never held across an await).
    ledger: Mutex<Ledger>,
    /// Highest number whose event is in its channel here.
    committed: AtomicU64,
    /// Bumped on every epoch change, before the replica is cleared.
    generation: AtomicU64,
    /// The current line and what its change lost (written by the reader).
    state: RwLock<LineState>,
    /// Channels by name. Lock order: `state`, `ledger`, this map, then a
    /// channel.
    channels: RwLock<HashMap<ChannelName, Arc<Channel>>>,
    /// Bytes of `/events` envelopes made for retained events.
    envelope_bytes: Arc<AtomicUsize>,
    /// Floor of a channel created now (events of unknown channels below it
    /// may exist in Redis); a removed channel raises it to its own floor
    /// (the store's `dropped_through`).
    default_floor: AtomicU64,
    next_subscriber: AtomicU64,
}

struct LineState {
    line: Line,
    generation: u64,
    /// Channels that held events when the line last changed.
    lost: HashSet<ChannelName>,
    /// Tags of earlier lines, newest last.
    previous: VecDeque<Tag>,
}

pub(crate) struct Channel {
    name: ChannelName,
    /// Every event of the channel numbered in (floor, committed] is in its
    /// history (the store's `evicted_through`). Written under the channel
    /// lock.
    floor: AtomicU64,
    /// The limit it counts against here, decided by who made it (a client
    /// here, or the feed: the origin of the event that brought it).
    budget: Budget,
    /// std mutex: held only for short, non-async sections.
    inner: Mutex<ChannelInner>,
}

/// A channel's events numbered above its floor (oldest first, at most
/// `--history`), subscribers and `removed` flag: the shared
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
        &self.floor
    }
}

/// The replica's account of retained events.
type Ledger = store::Ledger<Channel>;

impl Replica {
    /// An empty replica kept within `limits` (`--history-ttl` is applied
    /// by [`Replica::sweep`]).
    pub(crate) fn new(limits: &HubLimits) -> Self {
        Replica {
            history: limits.history.max(1),
            budgets: store::Budgets::new(limits),
            history_bytes: limits.history_bytes,
            ledger: Mutex::new(Ledger::default()),
            committed: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            state: RwLock::new(LineState {
                line: Line {
                    // Replaced by `start` before anyone subscribes.
                    epoch: "".into(),
                    tag: Tag::hex(0),
                    base: 0,
                },
                generation: 0,
                lost: HashSet::new(),
                previous: VecDeque::new(),
            }),
            channels: RwLock::new(HashMap::new()),
            envelope_bytes: Arc::new(AtomicUsize::new(0)),
            default_floor: AtomicU64::new(0),
            next_subscriber: AtomicU64::new(1),
        }
    }

    /// Starts on `line` with Redis at number `seq`: earlier events are read
    /// from Redis when needed.
    pub(crate) fn start(&self, line: Line, seq: u64) {
        self.state.write().expect("state lock").line = line;
        self.default_floor.store(seq, Ordering::Relaxed);
        self.committed.store(seq, Ordering::Release);
    }

    pub(crate) fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub(crate) fn line(&self) -> Line {
        self.state.read().expect("state lock").line.clone()
    }

    /// A channel for the map, on `budget`, complete above the floor of a
    /// channel made now.
    fn new_channel(&self, name: &ChannelName, budget: Budget) -> Arc<Channel> {
        Arc::new(Channel {
            name: name.clone(),
            floor: AtomicU64::new(self.default_floor.load(Ordering::Relaxed)),
            budget,
            inner: Mutex::new(ChannelState::new()),
        })
    }

    /// The channel `name`, made on `creator`'s budget if missing (the
    /// store's rule: [`store::channels_for`]).
    fn lookup(
        &self,
        name: &ChannelName,
        creator: Creator,
        enforce: store::Enforce,
    ) -> Result<Arc<Channel>, HubError> {
        let mut found = store::channels_for(
            &self.channels,
            &[name],
            creator,
            &self.budgets,
            enforce,
            |name, budget| self.new_channel(name, budget),
        )?;
        Ok(found.pop().expect("one channel"))
    }

    /// Registers subscriber `key` on every channel of `names` (distinct),
    /// making the missing ones, or on none (the store's rule:
    /// [`store::register`]).
    fn register(
        &self,
        names: &[&ChannelName],
        key: u64,
        notify: &Arc<Notify>,
    ) -> Result<Vec<Arc<Channel>>, HubError> {
        store::register(
            &self.channels,
            names,
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

    /// Whether this node has an entry for `name`.
    pub(crate) fn knows(&self, name: &ChannelName) -> bool {
        self.channels.read().expect("map lock").contains_key(name)
    }

    pub(crate) fn ensure(&self, name: &ChannelName) -> Result<(), HubError> {
        self.lookup(name, Creator::Client, store::Enforce::Limit)
            .map(drop)
    }

    /// Subscribers of `name` on this node.
    pub(crate) fn subscribers(&self, name: &str) -> usize {
        self.channels
            .read()
            .expect("map lock")
            .get(name)
            .map_or(0, |ch| {
                ch.inner.lock().expect("channel lock").subscribers.len()
            })
    }

    /// Subscribers per channel on this node (channels with any).
    pub(crate) fn subscriber_counts(&self) -> Vec<(String, usize)> {
        self.channels
            .read()
            .expect("map lock")
            .values()
            .filter_map(|ch| {
                let n = ch.inner.lock().expect("channel lock").subscribers.len();
                (n > 0).then(|| (ch.name.to_string(), n))
            })
            .collect()
    }

    /// The channels this node knows, sorted by name.
    pub(crate) fn channels(&self) -> Vec<ChannelInfo> {
        store::list(&self.channels, |ch| {
            ch.inner.lock().expect("channel lock").info(&ch.name)
        })
    }

    /// Switches to `line` if it is not the current one (called by the feed
    /// reader before each read).
    pub(crate) fn follow(&self, line: &Line) {
        if self.state.read().expect("state lock").line == *line {
            return;
        }
        let mut state = self.state.write().expect("state lock");
        if state.line == *line {
            return;
        }
        let mut ledger = self.ledger.lock().expect("ledger lock");
        let channels = self.channels.write().expect("map lock");
        let mut lost = HashSet::new();
        let generation = state.generation + 1;
        // Published first: a subscriber that reads anything of the new line
        // then sees the new generation and starts over.
        self.generation.store(generation, Ordering::Release);
        for ch in channels.values() {
            let mut inner = ch.inner.lock().expect("channel lock");
            if !inner.history.is_empty() {
                lost.insert(ch.name.clone());
            }
            ledger.forget(ch, &mut inner);
            ch.floor.store(line.base, Ordering::Release);
        }
        // Nothing is retained: the age queue empties.
        ledger.compact();
        drop(ledger);
        self.default_floor.store(line.base, Ordering::Relaxed);
        self.committed.store(line.base, Ordering::Release);
        let old = std::mem::replace(&mut state.line, line.clone());
        if !old.epoch.is_empty() {
            state.previous.push_back(old.tag);
            if state.previous.len() > PREVIOUS_TAGS {
                state.previous.pop_front();
            }
        }
        state.generation = generation;
        state.lost = lost;
        drop(state);
        for ch in channels.values() {
            ch.inner.lock().expect("channel lock").wake();
        }
    }

    /// Events and bytes retained here, and channels known.
    pub(crate) fn usage(&self) -> HistoryUsage {
        store::usage(&self.ledger, &self.envelope_bytes, &self.channels)
    }

    /// Removes `name` if nobody here subscribes to it; see
    /// [`crate::hub::Hub::remove_unsubscribed`]. A channel of that name
    /// made later starts above what it forgot.
    pub(crate) fn remove_unsubscribed(&self, name: &ChannelName) -> bool {
        store::remove_unsubscribed(
            &self.ledger,
            &self.channels,
            name,
            &self.default_floor,
            |ch| self.left(ch),
        )
    }

    /// Expires the events that arrived more than `ttl` before `now` (the
    /// store's rule, as in the memory hub), then drops channels left with
    /// no events and no subscribers (log streams and `broadcast` keep their
    /// entry). A channel of a dropped name made later starts above what it
    /// forgot, so it reads the forgotten range from Redis if asked.
    pub(crate) fn sweep(&self, ttl: Duration, now: Instant) -> Swept {
        let mut swept = Swept::default();
        if ttl.is_zero() {
            return swept;
        }
        if let Some(before) = now.checked_sub(ttl) {
            swept.expired = store::expire(&self.ledger, before);
        }
        swept.dropped = store::drop_unused(&self.channels, &self.default_floor, |ch| self.left(ch));
        swept
    }

    /// Forgets everything up to `through`: the node missed feed entries, so
    /// channels are complete only above it.
    fn gap(&self, ledger: &mut Ledger, through: u64) {
        tracing::warn!(
            "the Redis feed no longer holds events up to number {through}; subscribers read them from the channel streams"
        );
        let channels = self.channels.write().expect("map lock");
        self.default_floor.store(through, Ordering::Relaxed);
        for ch in channels.values() {
            let mut inner = ch.inner.lock().expect("channel lock");
            ledger.forget(ch, &mut inner);
            ch.floor.store(through, Ordering::Release);
        }
        ledger.compact();
    }

    /// Appends feed entries of `line` in number order; returns the new
    /// `committed` if it moved.
    pub(crate) fn apply(&self, line: &Line, entries: Vec<Entry>) -> Option<u64> {
        let mut committed = self.committed.load(Ordering::Relaxed);
        let start = committed;
        let now = Instant::now();
        let mut touched: Vec<Arc<Channel>> = Vec::new();
        let mut ledger = self.ledger.lock().expect("ledger lock");
        for entry in entries {
            if entry.seq <= committed {
                continue;
            }
            if entry.seq != committed + 1 {
                self.gap(&mut ledger, entry.seq - 1);
            }
            committed = entry.seq;
            let Ok(name) = ChannelName::parse(entry.field("c")) else {
                continue;
            };
            // Redis checked the limits when the event was published: a
            // channel it brings is counted here, never refused.
            let creator = match entry.field(ORIGIN) {
                INGEST => Creator::Ingest,
                _ => Creator::Client,
            };
            let Ok(ch) = self.lookup(&name, creator, store::Enforce::Count) else {
                continue;
            };
            let event = Arc::new(self.stored(line, &ch.name, &entry));
            ledger.make_room(self.history_bytes, &self.envelope_bytes, event.cost());
            let mut inner = ch.inner.lock().expect("channel lock");
            ledger.insert(&ch, &mut inner, event, now, self.history);
            drop(inner);
            if !touched.iter().any(|c| Arc::ptr_eq(c, &ch)) {
                touched.push(ch);
            }
        }
        ledger.compact();
        drop(ledger);
        if committed == start {
            return None;
        }
        self.committed.store(committed, Ordering::Release);
        for ch in touched {
            ch.inner.lock().expect("channel lock").wake();
        }
        Some(committed)
    }
}

impl Replica {
    /// An event read from Redis, labelled with `line`'s tag, encoded once.
    fn stored(&self, line: &Line, channel: &ChannelName, entry: &Entry) -> StoredEvent {
        let event_type = match entry.field("t") {
            "" => crate::sse::DEFAULT_EVENT_TYPE,
            t => t,
        };
        let pending = PendingEvent::encode(event_type, entry.field("d"));
        let allocated = pending.allocated();
        StoredEvent::new(
            entry.seq,
            channel.clone(),
            pending.with_id(line.id(entry.seq).text().as_str()),
            allocated,
            self.envelope_bytes.clone(),
        )
    }
}

/// Start-up work a subscription does on its first batch.
#[derive(Debug, Clone)]
enum Pending {
    Nothing,
    /// The last `n` events of each channel up to the cursor.
    Tails(Vec<usize>),
    /// A `Last-Event-ID` above what this node has read: valid if Redis
    /// has given that number out, else unknown.
    Validate(u64),
    /// The rest of a tail, in id order, handed out in bounded steps
    /// ([`split_batch`]) like a resume.
    TailRest(Vec<Arc<StoredEvent>>),
}

/// A subscriber on this node: a cursor into the replica (and, below its
/// floors, into the channel streams in Redis) plus the `Notify` the feed
/// reader wakes.
pub struct RedisSubscription {
    node: Arc<Node>,
    key: u64,
    channels: Vec<Arc<Channel>>,
    implicit: Vec<bool>,
    /// Per channel: an event was delivered on the current line.
    delivered: Vec<bool>,
    notify: Arc<Notify>,
    /// Highest number handed out or skipped.
    cursor: u64,
    /// The replica generation the cursor belongs to.
    generation: u64,
    /// Reason for the next trim found below the cursor (`None`: say
    /// nothing, a reset was already sent).
    lag_reason: Option<ResetReason>,
    /// A reset to send for every channel first (`unknown id`, `history
    /// lost` for an id of an earlier epoch).
    announce: Option<ResetReason>,
    pending: Pending,
}

/// Registers a subscription; see [`crate::hub::Hub::subscribe`].
pub(crate) fn subscribe(
    node: &Arc<Node>,
    requests: &[ChannelRequest],
    start: Start,
) -> Result<RedisSubscription, HubError> {
    let replica = &node.replica;
    let (generation, tag, previous) = {
        let state = replica.state.read().expect("state lock");
        (state.generation, state.line.tag, state.previous.clone())
    };
    let mut sub = RedisSubscription {
        node: node.clone(),
        key: replica.next_subscriber.fetch_add(1, Ordering::Relaxed),
        channels: Vec::with_capacity(requests.len()),
        implicit: Vec::with_capacity(requests.len()),
        delivered: Vec::with_capacity(requests.len()),
        notify: Arc::new(Notify::new()),
        cursor: 0,
        generation,
        lag_reason: Some(LAGGED),
        announce: None,
        pending: Pending::Nothing,
    };
    let mut seen = HashSet::with_capacity(requests.len());
    let requests: Vec<&ChannelRequest> = requests
        .iter()
        .filter(|r| seen.insert(r.name.as_str()))
        .collect();
    let names: Vec<&ChannelName> = requests.iter().map(|r| &r.name).collect();
    // All or none: a refusal leaves nothing registered or made.
    sub.channels = replica.register(&names, sub.key, &sub.notify)?;
    sub.implicit = requests.iter().map(|r| r.implicit).collect();
    sub.delivered = vec![false; requests.len()];
    let tails: Vec<usize> = requests.iter().map(|r| r.tail).collect();
    // Registered: anything committed after this snapshot wakes us.
    sub.cursor = replica.committed();
    match start {
        Start::Now => {
            if tails.iter().any(|&t| t > 0) {
                sub.pending = Pending::Tails(tails);
            }
        }
        Start::After(id) => match EventId::parse(&id).map(|id| (id.tag, id.seq)) {
            Some((t, seq)) if t == tag => {
                if seq <= sub.cursor {
                    sub.cursor = seq;
                    sub.lag_reason = Some(TOO_OLD);
                } else {
                    sub.pending = Pending::Validate(seq);
                }
            }
            Some((t, _)) if previous.contains(&t) => sub.unknown(HISTORY_LOST),
            _ => sub.unknown(UNKNOWN_ID),
        },
    }
    Ok(sub)
}

/// What one step of a subscription produced.
enum Step {
    Ready(Vec<Delivery>),
    /// Nothing new: wait for a wake-up.
    Wait,
    /// Redis did not answer: try again shortly.
    Retry,
    /// State changed under us: look again at once.
    Again,
}

impl RedisSubscription {
    /// Everything retained is sent after one reset per channel.
    fn unknown(&mut self, reason: ResetReason) {
        self.cursor = 0;
        self.lag_reason = None;
        self.announce = Some(reason);
    }

    fn generation_changed(&self) -> bool {
        self.node.replica.generation.load(Ordering::Acquire) != self.generation
    }

    /// The line changed: one `history lost` per channel that held events,
    /// then the new line from its start.
    fn switched(&mut self) -> Vec<Delivery> {
        let state = self.node.replica.state.read().expect("state lock");
        let skipped = state.generation != self.generation + 1;
        let mut resets = Vec::new();
        for (i, ch) in self.channels.iter().enumerate() {
            if (skipped && !self.implicit[i]) || self.delivered[i] || state.lost.contains(&ch.name)
            {
                resets.push(Delivery::Reset {
                    channel: ch.name.clone(),
                    reason: HISTORY_LOST,
                });
            }
            self.delivered[i] = false;
        }
        self.generation = state.generation;
        self.cursor = state.line.base;
        self.lag_reason = Some(LAGGED);
        self.announce = None;
        self.pending = Pending::Nothing;
        resets
    }

    async fn step(&mut self) -> Step {
        if self.generation_changed() {
            let resets = self.switched();
            return if resets.is_empty() {
                Step::Again
            } else {
                Step::Ready(resets)
            };
        }
        if let Pending::TailRest(rest) = &mut self.pending {
            let batch = split_batch(rest).into_iter().map(Delivery::Event).collect();
            if rest.is_empty() {
                self.pending = Pending::Nothing;
            }
            return Step::Ready(batch);
        }
        match self.pending.clone() {
            Pending::Nothing | Pending::TailRest(_) => {}
            Pending::Tails(tails) => {
                return match self.tails(&tails).await {
                    Ok(_) if self.generation_changed() => Step::Again,
                    Ok(mut events) => {
                        self.pending = Pending::Nothing;
                        if events.is_empty() {
                            return Step::Again;
                        }
                        let batch = split_batch(&mut events)
                            .into_iter()
                            .map(Delivery::Event)
                            .collect();
                        if !events.is_empty() {
                            self.pending = Pending::TailRest(events);
                        }
                        Step::Ready(batch)
                    }
                    Err(_) => Step::Retry,
                }
            }
            Pending::Validate(seq) => {
                let known = self.node.link.seen() >= seq
                    || match link::cluster_seq(&self.node).await {
                        Ok(top) => top >= seq,
                        Err(_) => return Step::Retry,
                    };
                if self.generation_changed() {
                    return Step::Again;
                }
                self.pending = Pending::Nothing;
                if known {
                    self.cursor = seq;
                    self.lag_reason = Some(TOO_OLD);
                } else {
                    self.unknown(UNKNOWN_ID);
                }
            }
        }
        self.collect().await
    }

    /// The last events of each channel up to the cursor, merged in id
    /// order.
    async fn tails(&mut self, tails: &[usize]) -> Result<Vec<Arc<StoredEvent>>, HubError> {
        let upto = self.cursor;
        let line = self.node.replica.line();
        let mut events: Vec<Arc<StoredEvent>> = Vec::new();
        let mut fetch = Vec::new();
        for (i, (ch, &tail)) in self.channels.iter().zip(tails).enumerate() {
            if tail == 0 {
                continue;
            }
            let inner = ch.inner.lock().expect("channel lock");
            let (begin, end) = inner.history.tail(upto, tail);
            if end - begin == tail || ch.floor.load(Ordering::Acquire) == 0 {
                events.extend(inner.history.events().range(begin..end).cloned());
            } else {
                fetch.push((i, tail));
            }
        }
        // A tail is "up to N events": one that does not fit the byte
        // budget is the newest that do.
        let share = fetch_share(fetch.len());
        let reads = fetch.iter().map(|&(i, tail)| {
            link::history(
                &self.node,
                &self.channels[i].name,
                0,
                upto,
                tail,
                true,
                share,
            )
        });
        let results = futures_util::future::join_all(reads).await;
        for (&(i, _), result) in fetch.iter().zip(results) {
            let entries = result?.entries;
            let name = &self.channels[i].name;
            events.extend(
                entries
                    .iter()
                    .map(|e| Arc::new(self.node.replica.stored(&line, name, e))),
            );
        }
        events.sort_by_key(|e| e.seq);
        for event in &events {
            self.mark_delivered(&event.channel);
        }
        Ok(events)
    }

    fn mark_delivered(&mut self, channel: &ChannelName) {
        if let Some(i) = self.channels.iter().position(|c| c.name == *channel) {
            self.delivered[i] = true;
        }
    }

    /// Events past the cursor: from the replica above each channel's floor,
    /// from Redis below it.
    async fn collect(&mut self) -> Step {
        let snapshot = self.node.replica.committed();
        let mut holds = vec![false; self.channels.len()];
        if snapshot <= self.cursor {
            let Some(reason) = self.announce.take() else {
                return Step::Wait;
            };
            for (i, ch) in self.channels.iter().enumerate() {
                holds[i] = !ch.inner.lock().expect("channel lock").history.is_empty();
            }
            self.lag_reason = Some(LAGGED);
            let resets = self.announced(reason, &holds);
            return if resets.is_empty() {
                Step::Wait
            } else {
                Step::Ready(resets)
            };
        }
        let line = self.node.replica.line();
        let mut merge = Merge::new();
        let mut fetch = Vec::new();
        for (i, ch) in self.channels.iter().enumerate() {
            let inner = ch.inner.lock().expect("channel lock");
            holds[i] = !inner.history.is_empty();
            if ch.floor.load(Ordering::Acquire) > self.cursor {
                fetch.push(i);
                continue;
            }
            merge.take(inner.history.events(), self.cursor, snapshot);
        }
        if self.generation_changed() {
            return Step::Again;
        }
        let mut resets = Vec::new();
        if !fetch.is_empty() {
            let cursor = self.cursor;
            let share = fetch_share(fetch.len());
            let reads = fetch.iter().map(|&i| {
                link::history(
                    &self.node,
                    &self.channels[i].name,
                    cursor,
                    snapshot,
                    FETCH_COUNT,
                    false,
                    share,
                )
            });
            let results = futures_util::future::join_all(reads).await;
            if self.generation_changed() {
                return Step::Again;
            }
            for (&i, result) in fetch.iter().zip(results) {
                let Ok(link::HistoryRead {
                    trimmed,
                    entries,
                    more,
                }) = result
                else {
                    return Step::Retry;
                };
                let name = &self.channels[i].name;
                if trimmed > cursor {
                    if let Some(reason) = self.lag_reason {
                        resets.push(Delivery::Reset {
                            channel: name.clone(),
                            reason,
                        });
                    }
                }
                holds[i] |= !entries.is_empty();
                merge.add(
                    entries
                        .iter()
                        .map(|e| Arc::new(self.node.replica.stored(&line, name, e))),
                    entries.len() >= FETCH_COUNT || more,
                );
            }
        }
        if let Some(reason) = self.announce.take() {
            let mut first = self.announced(reason, &holds);
            first.append(&mut resets);
            resets = first;
        }
        self.lag_reason = Some(LAGGED);
        let (events, end) = merge.finish();
        self.cursor = end.unwrap_or(snapshot);
        for event in &events {
            self.mark_delivered(&event.channel);
        }
        resets.extend(events.into_iter().map(Delivery::Event));
        if resets.is_empty() {
            Step::Again
        } else {
            Step::Ready(resets)
        }
    }

    /// One `reason` reset per channel asked for, and per implicit channel
    /// that holds events.
    fn announced(&self, reason: ResetReason, holds: &[bool]) -> Vec<Delivery> {
        self.channels
            .iter()
            .enumerate()
            .filter(|&(i, _)| !self.implicit[i] || holds[i])
            .map(|(_, ch)| Delivery::Reset {
                channel: ch.name.clone(),
                reason,
            })
            .collect()
    }

    /// Waits for and returns the next deliveries, in id order.
    pub async fn next_batch(&mut self) -> Vec<Delivery> {
        loop {
            match self.step().await {
                Step::Ready(batch) => return batch,
                Step::Again => {}
                Step::Wait => self.notify.notified().await,
                Step::Retry => tokio::time::sleep(FETCH_RETRY).await,
            }
        }
    }

    /// Deliveries ready now from the replica alone, without waiting or
    /// reading Redis (may be empty).
    #[cfg(any(test, feature = "test-util"))]
    pub fn ready_batch(&mut self) -> Vec<Delivery> {
        let runtime = tokio::runtime::Handle::try_current();
        if runtime.is_err() {
            return Vec::new();
        }
        let mut step = Box::pin(self.step());
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        match std::future::Future::poll(step.as_mut(), &mut cx) {
            std::task::Poll::Ready(Step::Ready(batch)) => batch,
            _ => Vec::new(),
        }
    }
}

impl Drop for RedisSubscription {
    /// Unsubscribes, and drops local channels left with no subscribers and
    /// no events (the store's rule: a channel of that name made later
    /// starts above what this one forgot).
    fn drop(&mut self) {
        let replica = &self.node.replica;
        for ch in &self.channels {
            store::leave(
                &replica.channels,
                ch,
                self.key,
                &replica.default_floor,
                |ch| replica.left(ch),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! The replica's store without Redis: the feed reader's side (apply,
    //! evictions, gaps, epoch changes, sweep, removal) and the store's
    //! registration and channel budgets, some run against the memory hub
    //! too. Its subscriptions need a node and are covered by
    //! `tests/redis.rs`; the merge and batch rule they share with the
    //! memory hub by `crate::hub::cursor`'s tests.
    use super::*;

    fn line(epoch: &str) -> Line {
        Line::parse(epoch).unwrap()
    }

    /// A replica with `--history`, `--max-channels` and `--history-bytes`,
    /// started on line `0a1b2c3d` at number 0, and that line.
    fn started(history: usize, max_channels: usize, history_bytes: usize) -> (Line, Replica) {
        let l = line("0a1b2c3d:0");
        let replica = Replica::new(&HubLimits {
            history,
            max_channels,
            history_bytes,
            ..HubLimits::default()
        });
        replica.start(l.clone(), 0);
        (l, replica)
    }

    fn entry(seq: u64, channel: &str, data: &str) -> Entry {
        Entry {
            seq,
            fields: vec![("c".into(), channel.into()), ("d".into(), data.into())],
        }
    }

    fn n(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    fn info(replica: &Replica, name: &str) -> Option<ChannelInfo> {
        replica.channels().into_iter().find(|c| c.name == *name)
    }

    fn floor(replica: &Replica, name: &str) -> u64 {
        let map = replica.channels.read().unwrap();
        let ch = &map[&n(name)];
        let _inner = ch.inner.lock().unwrap();
        ch.floor.load(Ordering::Acquire)
    }

    #[test]
    fn the_feed_fills_channels_in_order_within_history() {
        let (l, replica) = started(2, 100, 64 << 20);
        let applied = replica.apply(
            &l,
            vec![
                entry(1, "a", "1"),
                entry(2, "b", "2"),
                entry(3, "a", "3"),
                entry(4, "a", "4"),
            ],
        );
        assert_eq!(applied, Some(4));
        assert_eq!(replica.committed(), 4);
        let a = info(&replica, "a").unwrap();
        assert_eq!((a.retained, a.last_id.as_deref()), (2, Some("0a1b2c3d-4")));
        assert_eq!(floor(&replica, "a"), 1, "event 1 left for --history 2");
        assert_eq!(info(&replica, "b").unwrap().retained, 1);
        assert_eq!(replica.usage().events, 3);
        // Entries already applied are skipped.
        assert_eq!(replica.apply(&l, vec![entry(4, "a", "4")]), None);
        assert_eq!(replica.usage().events, 3);
    }

    #[test]
    fn history_bytes_evict_the_oldest_of_all_channels_and_keep_the_newest() {
        let big = "x".repeat(10_000);
        let (l, replica) = started(100, 100, 25_000);
        replica.apply(&l, vec![entry(1, "a", &big), entry(2, "b", &big)]);
        replica.apply(&l, vec![entry(3, "a", &big)]);
        let usage = replica.usage();
        assert!(usage.bytes <= 25_000, "{usage:?}");
        assert_eq!(usage.events, 2, "the oldest (1, of a) left");
        assert_eq!(floor(&replica, "a"), 1);
        assert_eq!(floor(&replica, "b"), 0);
        // One event over the budget is still kept.
        let huge = "y".repeat(40_000);
        replica.apply(&l, vec![entry(4, "c", &huge)]);
        assert_eq!(replica.usage().events, 1);
        assert_eq!(info(&replica, "c").unwrap().retained, 1);
    }

    #[test]
    fn a_gap_in_the_feed_forgets_what_came_before_it() {
        let (l, replica) = started(100, 100, 64 << 20);
        replica.apply(&l, vec![entry(1, "a", "1")]);
        assert_eq!(replica.apply(&l, vec![entry(5, "a", "5")]), Some(5));
        assert_eq!(floor(&replica, "a"), 4, "2..=4 are read from Redis");
        assert_eq!(info(&replica, "a").unwrap().retained, 1);
    }

    #[test]
    fn a_new_line_clears_the_replica_and_remembers_the_old_tag() {
        let (old, replica) = started(100, 100, 64 << 20);
        replica.apply(&old, vec![entry(1, "a", "1")]);
        replica.ensure(&n("quiet")).unwrap();
        let new = line("ffff0000:10");
        replica.follow(&new);
        assert_eq!(replica.committed(), 10);
        assert_eq!(replica.usage().events, 0);
        assert_eq!(floor(&replica, "a"), 10);
        let state = replica.state.read().unwrap();
        assert_eq!(state.generation, 1);
        assert!(state.lost.contains(&n("a")) && !state.lost.contains(&n("quiet")));
        assert_eq!(state.previous, [old.tag]);
    }

    #[test]
    fn the_sweep_expires_old_events_and_drops_unused_channels_but_keeps_log_streams() {
        let (l, replica) = started(100, 100, 64 << 20);
        replica.apply(&l, vec![entry(1, "a", "1"), entry(2, "log:x", "2")]);
        let ttl = Duration::from_secs(60);
        assert_eq!(replica.sweep(ttl, Instant::now()), Swept::default());
        let later = Instant::now() + 2 * ttl;
        let swept = replica.sweep(ttl, later);
        assert_eq!((swept.expired, swept.dropped), (2, 1));
        assert!(!replica.knows(&n("a")));
        assert_eq!(info(&replica, "log:x").unwrap().retained, 0);
        assert_eq!(floor(&replica, "log:x"), 2);
        // A channel of that name made now starts above what it forgot (its
        // event 1), so it reads that from Redis.
        replica.ensure(&n("a")).unwrap();
        assert_eq!(floor(&replica, "a"), 1);
    }

    /// The store both backends share (`hub::store`) keeps the same
    /// channels, counts, costs and newest events whether the memory hub
    /// numbers the events or the feed brings them: eviction by count
    /// (`--history` per channel), by bytes (`--history-bytes`, the hub's
    /// oldest first, before the new event goes in) and by age (the sweep's
    /// `--history-ttl`, per event, then the channels left unused), the
    /// listing, the usage figures and the removal of an unsubscribed
    /// channel.
    #[test]
    fn the_replica_and_the_memory_hub_keep_the_same_store() {
        use crate::hub::memory::MemoryHub;
        use crate::hub::HubLimits;
        let data = "x".repeat(1000);
        // What one such event costs (the same in both: one encoding).
        let cost = {
            let probe = MemoryHub::new(HubLimits::default());
            probe.publish(&n("p"), "message", &data).unwrap();
            probe.usage().bytes
        };
        let limits = HubLimits {
            history: 2,
            history_bytes: 3 * cost + cost / 2,
            history_ttl: Duration::from_secs(60),
            ..HubLimits::default()
        };
        let memory = MemoryHub::new(limits);
        let (l, replica) = started(limits.history, 100, limits.history_bytes);
        let mut next = 1;
        let mut both = |channels: &[&str]| {
            let mut entries = Vec::new();
            for c in channels {
                memory.publish(&n(c), "message", &data).unwrap();
                entries.push(entry(next, c, &data));
                next += 1;
            }
            replica.apply(&l, entries);
        };
        // Ids differ by their tag only.
        let seq_of = |id: &Option<String>| id.as_deref().and_then(EventId::parse).map(|id| id.seq);
        let listed = |infos: Vec<ChannelInfo>| -> Vec<(String, usize, usize, Option<u64>)> {
            infos
                .iter()
                .map(|c| {
                    let last = seq_of(&c.last_id);
                    (c.name.to_string(), c.retained, c.retained_bytes, last)
                })
                .collect()
        };
        let usage = |u: HistoryUsage| (u.events, u.bytes, u.channels);
        // b1 a2 a3, then a4: the hub's oldest (b1) leaves by bytes before
        // a4 goes in, then a2 by count (the memory hub's rule: room is made
        // before an event goes in, whatever its own channel then evicts).
        both(&["b", "a", "a", "a"]);
        let want = vec![
            ("a".to_string(), 2, 2 * cost, Some(4)),
            ("b".to_string(), 0, 0, None),
        ];
        assert_eq!(listed(memory.channels()), want);
        assert_eq!(listed(replica.channels()), want);
        assert_eq!(floor(&replica, "a"), 2);
        assert_eq!(floor(&replica, "b"), 1);
        both(&["c"]);
        assert_eq!(usage(memory.usage()), (3, 3 * cost, 3));
        assert_eq!(usage(replica.usage()), (3, 3 * cost, 3));
        // A moment strictly after every event so far, and before the next.
        let published = Instant::now();
        let mid = loop {
            let now = Instant::now();
            if now > published {
                break now;
            }
        };
        // c6: a3 leaves by bytes.
        both(&["c"]);
        let want = vec![
            ("a".to_string(), 1, cost, Some(4)),
            ("b".to_string(), 0, 0, None),
            ("c".to_string(), 2, 2 * cost, Some(6)),
        ];
        assert_eq!(listed(memory.channels()), want);
        assert_eq!(listed(replica.channels()), want);
        // The sweep at `mid + ttl` expires every event older than the ttl
        // (a4 and c5, not c6 of the same channel), then drops the
        // channels left unused (a and b).
        let at = mid + limits.history_ttl;
        let swept = Swept {
            expired: 2,
            dropped: 2,
        };
        assert_eq!(memory.sweep(at), swept);
        assert_eq!(replica.sweep(limits.history_ttl, at), swept);
        let want = vec![("c".to_string(), 1, cost, Some(6))];
        assert_eq!(listed(memory.channels()), want);
        assert_eq!(listed(replica.channels()), want);
        assert_eq!(usage(memory.usage()), (1, cost, 1));
        assert_eq!(usage(replica.usage()), (1, cost, 1));
        both(&["d"]);
        assert!(memory.remove_unsubscribed(&n("c")) && replica.remove_unsubscribed(&n("c")));
        assert_eq!(usage(memory.usage()), (1, cost, 1));
        assert_eq!(usage(replica.usage()), (1, cost, 1));
        assert_eq!(listed(memory.channels()), listed(replica.channels()));
    }

    /// One registration rule for both backends (`store::register`): a
    /// subscription whose missing channels do not fit under
    /// `--max-channels` is refused whole, leaving neither a channel made
    /// for it nor a subscriber on the channels that existed; one that fits
    /// registers on all of them.
    #[test]
    fn a_refused_subscription_leaves_no_channel_and_no_subscriber_on_either_backend() {
        use crate::hub::memory::MemoryHub;
        let limits = HubLimits {
            max_channels: 2,
            ..HubLimits::default()
        };
        let memory = Arc::new(MemoryHub::new(limits));
        let (_, replica) = started(limits.history, limits.max_channels, limits.history_bytes);
        memory.ensure_channel(&n("a")).unwrap();
        replica.ensure(&n("a")).unwrap();
        let listed = |infos: Vec<ChannelInfo>| -> Vec<(String, usize)> {
            infos
                .iter()
                .map(|c| (c.name.to_string(), c.subscribers))
                .collect()
        };
        // a exists; b and c would make three client channels.
        let names = [n("log:x"), n("a"), n("b"), n("c")];
        let requests: Vec<ChannelRequest> = names
            .iter()
            .map(|name| ChannelRequest::new(name.clone(), 0))
            .collect();
        let refused = Err(HubError::TooManyChannels { limit: 2 });
        assert_eq!(memory.subscribe(&requests, Start::Now).map(drop), refused);
        let refs: Vec<&ChannelName> = names.iter().collect();
        let notify = Arc::new(Notify::new());
        assert_eq!(replica.register(&refs, 7, &notify).map(drop), refused);
        let want = vec![("a".to_string(), 0)];
        assert_eq!(listed(memory.channels()), want, "memory");
        assert_eq!(listed(replica.channels()), want, "replica");
        assert_eq!(replica.budgets.count(Budget::Client), 1);
        // a and b fit (the log stream counts nowhere): all registered.
        let fits = [n("a"), n("b"), n("log:x")];
        let requests: Vec<ChannelRequest> = fits
            .iter()
            .map(|name| ChannelRequest::new(name.clone(), 0))
            .collect();
        let sub = memory.subscribe(&requests, Start::Now).unwrap();
        let refs: Vec<&ChannelName> = fits.iter().collect();
        let registered = replica.register(&refs, 7, &notify).unwrap();
        assert_eq!(registered.len(), 3);
        let want = vec![
            ("a".to_string(), 1),
            ("b".to_string(), 1),
            ("log:x".to_string(), 1),
        ];
        assert_eq!(listed(memory.channels()), want, "memory");
        assert_eq!(listed(replica.channels()), want, "replica");
        assert_eq!(replica.budgets.count(Budget::Client), 2);
        drop(sub);
        for ch in &registered {
            store::leave(&replica.channels, ch, 7, &replica.default_floor, |ch| {
                replica.left(ch)
            });
        }
        // Their last subscriber gone, a and b leave and give back their
        // budget (the log stream is pinned).
        let want = vec![("log:x".to_string(), 0)];
        assert_eq!(listed(memory.channels()), want, "memory");
        assert_eq!(listed(replica.channels()), want, "replica");
        assert_eq!(replica.budgets.count(Budget::Client), 0);
    }

    /// Channels the feed brings from an ingest publish (`o: ingest`) count
    /// against `--max-ingest-channels` here too, not `--max-channels`, as
    /// in the memory hub: ingest does not crowd out client channels, and
    /// a channel leaving gives its budget back.
    #[test]
    fn ingest_channels_count_against_their_own_budget_on_the_replica_too() {
        use crate::hub::memory::MemoryHub;
        let limits = HubLimits {
            max_channels: 1,
            max_ingest_channels: 2,
            ..HubLimits::default()
        };
        let memory = MemoryHub::new(limits);
        let replica = Replica::new(&limits);
        let l = line("0a1b2c3d:0");
        replica.start(l.clone(), 0);
        let ingest = |seq: u64, channel: &str| {
            let mut e = entry(seq, channel, "x");
            e.fields.push((ORIGIN.into(), INGEST.into()));
            e
        };
        memory
            .publish_multi(
                &[(&n("i1"), "message", "x"), (&n("i2"), "message", "x")],
                Creator::Ingest,
            )
            .unwrap();
        replica.apply(&l, vec![ingest(1, "i1"), ingest(2, "i2")]);
        // The client budget is untouched: one client channel fits, not two.
        assert_eq!(memory.ensure_channel(&n("a")), Ok(()), "memory");
        assert_eq!(replica.ensure(&n("a")), Ok(()), "replica");
        let refused = Err(HubError::TooManyChannels { limit: 1 });
        assert_eq!(memory.ensure_channel(&n("b")), refused);
        assert_eq!(replica.ensure(&n("b")), refused);
        assert_eq!(replica.budgets.count(Budget::Ingest), 2);
        assert_eq!(replica.budgets.count(Budget::Client), 1);
        // A client's event on a new channel counts on the client budget,
        // whatever the feed brought before.
        replica.apply(&l, vec![entry(3, "c", "x")]);
        assert_eq!(replica.budgets.count(Budget::Client), 2);
        // Gone, an ingest channel gives its slot back.
        assert!(memory.remove_unsubscribed(&n("i1")) && replica.remove_unsubscribed(&n("i1")));
        assert_eq!(replica.budgets.count(Budget::Ingest), 1);
    }

    #[test]
    fn removing_an_unsubscribed_channel_frees_its_history_and_budget() {
        let (l, replica) = started(100, 1, 64 << 20);
        replica.ensure(&n("a")).unwrap();
        assert_eq!(
            replica.ensure(&n("b")),
            Err(HubError::TooManyChannels { limit: 1 })
        );
        replica.apply(&l, vec![entry(1, "a", "1")]);
        assert!(replica.remove_unsubscribed(&n("a")));
        assert_eq!(replica.usage().events, 0);
        replica.ensure(&n("b")).unwrap();
        assert_eq!(floor(&replica, "b"), 1);
    }
}
