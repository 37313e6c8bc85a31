//! The in-memory hub backend.
//!
//! Ordering: one hub-wide sequence numbers every event. A publish takes the
//! `commit` lock, gives its event the next number, appends it to the
//! channel's history and only then advances `committed`. So every event
//! numbered at or below `committed` is already in its channel, and a
//! subscriber that reads up to a snapshot of `committed` can merge several
//! channels in strict id order without ever skipping one. One
//! `Last-Event-ID` therefore resumes any set of channels.
//!
//! Backpressure: a subscriber is a cursor into the histories plus a
//! `Notify`. Publishing appends and wakes; it never waits for a subscriber.
//! A subscriber that falls more than `history` events behind finds its next
//! event evicted and receives a `reset` for that channel, then continues
//! from the oldest retained event. Memory is bounded by `history` events per
//! channel, whatever the subscribers do.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Notify;

use super::{
    validate_channel_name, ChannelInfo, ChannelRequest, Delivery, HubError, Published, Start,
    StoredEvent,
};

/// Most events handed to a subscriber per batch; bounds the work done under
/// a channel lock and the size of one write.
const MAX_BATCH: usize = 512;

/// The in-memory backend. See the module docs for its ordering and
/// backpressure rules.
pub struct MemoryHub {
    /// Random per-process prefix of every id, so that ids from another run
    /// are recognised and answered with `reset`.
    epoch: String,
    /// Events retained per channel.
    history: usize,
    /// Most channels that may exist at once.
    max_channels: usize,
    /// Held while a publish numbers and inserts its event (never across
    /// an `.await`, so a std mutex). Lock order: `commit`, then a channel.
    commit: Mutex<()>,
    /// Highest sequence number whose event is in its channel.
    committed: AtomicU64,
    /// All channels by name.
    channels: RwLock<HashMap<Arc<str>, Arc<Channel>>>,
    /// Source of subscriber keys.
    next_subscriber: AtomicU64,
}

/// One channel: its history and who to wake.
struct Channel {
    name: Arc<str>,
    /// std mutex: held only for short, non-async sections.
    inner: Mutex<ChannelInner>,
}

struct ChannelInner {
    /// Retained events, oldest first, in increasing `seq`.
    events: VecDeque<Arc<StoredEvent>>,
    /// `seq` of the newest evicted event (0: none evicted yet).
    evicted_through: u64,
    /// Wakers of the current subscribers, by subscriber key.
    subscribers: HashMap<u64, Arc<Notify>>,
    /// Set when the channel was dropped from the hub (no subscribers, no
    /// history); whoever still holds it must look the name up again.
    removed: bool,
}

/// Whether an empty, unsubscribed channel stays: log streams are listed
/// before their first line, and every stream includes the broadcast channel.
fn is_pinned(name: &str) -> bool {
    name.starts_with(super::LOG_PREFIX) || name == super::BROADCAST_CHANNEL
}

impl MemoryHub {
    /// A hub keeping `history` events per channel (at least 1) and at most
    /// `max_channels` channels.
    pub fn new(history: usize, max_channels: usize) -> Self {
        MemoryHub {
            epoch: format!("{:08x}", rand::random::<u32>()),
            history: history.max(1),
            max_channels,
            commit: Mutex::new(()),
            committed: AtomicU64::new(0),
            channels: RwLock::new(HashMap::new()),
            next_subscriber: AtomicU64::new(1),
        }
    }

    fn id_of(&self, seq: u64) -> String {
        format!("{}-{}", self.epoch, seq)
    }

    /// Parses an id of this hub run; `None` for garbage or another run's id.
    fn parse_id(&self, id: &str) -> Option<u64> {
        let (epoch, seq) = id.trim().split_once('-')?;
        if epoch != self.epoch {
            return None;
        }
        seq.parse().ok()
    }

    fn channel(&self, name: &str) -> Result<Arc<Channel>, HubError> {
        if let Some(ch) = self.channels.read().expect("hub lock").get(name) {
            return Ok(ch.clone());
        }
        validate_channel_name(name)?;
        let mut channels = self.channels.write().expect("hub lock");
        if let Some(ch) = channels.get(name) {
            return Ok(ch.clone());
        }
        if channels.len() >= self.max_channels {
            return Err(HubError::TooManyChannels {
                limit: self.max_channels,
            });
        }
        let name: Arc<str> = name.into();
        let ch = Arc::new(Channel {
            name: name.clone(),
            inner: Mutex::new(ChannelInner {
                events: VecDeque::new(),
                evicted_through: 0,
                subscribers: HashMap::new(),
                removed: false,
            }),
        });
        channels.insert(name, ch.clone());
        Ok(ch)
    }

    /// See [`super::Hub::ensure_channel`].
    pub fn ensure_channel(&self, name: &str) -> Result<(), HubError> {
        self.channel(name).map(drop)
    }

    /// See [`super::Hub::publish`].
    pub fn publish(
        &self,
        channel: &str,
        event_type: &str,
        data: &str,
    ) -> Result<Published, HubError> {
        let ch = self.channel(channel)?;
        let data: Box<str> = if data.contains('\r') {
            data.replace("\r\n", "\n").replace('\r', "\n").into()
        } else {
            data.into()
        };
        let event_type: Arc<str> = event_type.into();
        let commit = self.commit.lock().expect("commit lock");
        let seq = self.committed.load(Ordering::Relaxed) + 1;
        let id = self.id_of(seq);
        let event = Arc::new(StoredEvent::new(
            seq,
            id.clone(),
            ch.name.clone(),
            event_type,
            data,
        ));
        let mut inner = ch.inner.lock().expect("channel lock");
        inner.events.push_back(event);
        if inner.events.len() > self.history {
            if let Some(old) = inner.events.pop_front() {
                inner.evicted_through = old.seq;
            }
        }
        self.committed.store(seq, Ordering::Release);
        drop(commit);
        for notify in inner.subscribers.values() {
            notify.notify_one();
        }
        Ok(Published {
            id,
            subscribers: inner.subscribers.len(),
        })
    }

    /// See [`super::Hub::subscribe`].
    pub fn subscribe(
        self: &Arc<Self>,
        requests: &[ChannelRequest],
        start: Start,
    ) -> Result<MemorySubscription, HubError> {
        let key = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        let mut channels: Vec<Arc<Channel>> = Vec::with_capacity(requests.len());
        let mut tails = Vec::with_capacity(requests.len());
        let mut implicit = Vec::with_capacity(requests.len());
        for req in requests {
            let ch = loop {
                let ch = self.channel(&req.name)?;
                let mut inner = ch.inner.lock().expect("channel lock");
                if !inner.removed {
                    inner.subscribers.insert(key, notify.clone());
                    drop(inner);
                    break ch;
                }
            };
            if !channels.iter().any(|c| Arc::ptr_eq(c, &ch)) {
                channels.push(ch);
                tails.push(req.tail);
                implicit.push(req.implicit);
            }
        }
        // Registered: anything committed after this snapshot wakes us.
        let snapshot = self.committed.load(Ordering::Acquire);
        let mut sub = MemorySubscription {
            hub: self.clone(),
            key,
            acked_evictions: vec![0; channels.len()],
            channels,
            notify,
            cursor: snapshot,
            lag_reason: "lagged",
            initial: Vec::new(),
        };
        match start {
            Start::Now => sub.initial = sub.tails(&tails, snapshot),
            Start::After(id) => match self.parse_id(&id).filter(|&seq| seq <= snapshot) {
                Some(seq) => {
                    sub.cursor = seq;
                    sub.lag_reason = "too old";
                }
                None => {
                    sub.cursor = 0;
                    for (i, ch) in sub.channels.iter().enumerate() {
                        let inner = ch.inner.lock().expect("channel lock");
                        sub.acked_evictions[i] = inner.evicted_through;
                        if implicit[i] && inner.events.is_empty() && inner.evicted_through == 0 {
                            continue;
                        }
                        sub.initial.push(Delivery::Reset {
                            channel: ch.name.clone(),
                            reason: "unknown id",
                        });
                    }
                }
            },
        }
        Ok(sub)
    }

    /// See [`super::Hub::channels`].
    pub fn channels(&self) -> Vec<ChannelInfo> {
        let channels: Vec<Arc<Channel>> = self
            .channels
            .read()
            .expect("hub lock")
            .values()
            .cloned()
            .collect();
        let mut infos: Vec<ChannelInfo> = channels
            .iter()
            .map(|ch| {
                let inner = ch.inner.lock().expect("channel lock");
                ChannelInfo {
                    name: ch.name.to_string(),
                    subscribers: inner.subscribers.len(),
                    last_id: inner.events.back().map(|e| e.id.to_string()),
                    retained: inner.events.len(),
                }
            })
            .collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
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
    lag_reason: &'static str,
    /// Deliveries decided at subscribe time (resets, backlog).
    initial: Vec<Delivery>,
}

impl MemorySubscription {
    /// The last `tails[i]` events of each channel up to `snapshot`, merged.
    fn tails(&self, tails: &[usize], snapshot: u64) -> Vec<Delivery> {
        let mut events: Vec<Arc<StoredEvent>> = Vec::new();
        for (ch, &tail) in self.channels.iter().zip(tails) {
            if tail == 0 {
                continue;
            }
            let inner = ch.inner.lock().expect("channel lock");
            let end = inner.events.partition_point(|e| e.seq <= snapshot);
            let begin = end.saturating_sub(tail);
            events.extend(inner.events.range(begin..end).cloned());
        }
        events.sort_by_key(|e| e.seq);
        events.into_iter().map(Delivery::Event).collect()
    }

    /// Deliveries ready now, without waiting.
    pub fn ready_batch(&mut self) -> Vec<Delivery> {
        if !self.initial.is_empty() {
            return std::mem::take(&mut self.initial);
        }
        let snapshot = self.hub.committed.load(Ordering::Acquire);
        if snapshot <= self.cursor {
            return Vec::new();
        }
        let mut resets = Vec::new();
        let mut events: Vec<Arc<StoredEvent>> = Vec::new();
        // Lowest last-taken seq among channels cut at MAX_BATCH: events above
        // it wait for the next batch so the merge stays in order.
        let mut cut: Option<u64> = None;
        for (i, ch) in self.channels.iter().enumerate() {
            let inner = ch.inner.lock().expect("channel lock");
            if inner.evicted_through > self.cursor
                && inner.evicted_through > self.acked_evictions[i]
            {
                self.acked_evictions[i] = inner.evicted_through;
                resets.push(Delivery::Reset {
                    channel: ch.name.clone(),
                    reason: self.lag_reason,
                });
            }
            let begin = inner.events.partition_point(|e| e.seq <= self.cursor);
            for (taken, event) in inner.events.range(begin..).enumerate() {
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
        self.lag_reason = "lagged";
        if self.channels.len() > 1 {
            events.sort_by_key(|e| e.seq);
        }
        match cut {
            Some(limit) => {
                events.retain(|e| e.seq <= limit);
                self.cursor = limit;
            }
            None => self.cursor = snapshot,
        }
        resets.extend(events.into_iter().map(Delivery::Event));
        resets
    }

    /// Waits for the next non-empty batch.
    pub async fn next_batch(&mut self) -> Vec<Delivery> {
        loop {
            let batch = self.ready_batch();
            if !batch.is_empty() {
                return batch;
            }
            self.notify.notified().await;
        }
    }
}

impl Drop for MemorySubscription {
    /// Unsubscribes, and drops channels left with no subscribers and no
    /// history (lock order: the channel map, then the channel).
    fn drop(&mut self) {
        for ch in &self.channels {
            let now_empty = match ch.inner.lock() {
                Ok(mut inner) => {
                    inner.subscribers.remove(&self.key);
                    inner.subscribers.is_empty() && inner.events.is_empty() && !is_pinned(&ch.name)
                }
                Err(_) => false,
            };
            if now_empty {
                let Ok(mut channels) = self.hub.channels.write() else {
                    continue;
                };
                let Ok(mut inner) = ch.inner.lock() else {
                    continue;
                };
                if inner.subscribers.is_empty() && inner.events.is_empty() && !inner.removed {
                    inner.removed = true;
                    if channels.get(&ch.name).is_some_and(|c| Arc::ptr_eq(c, ch)) {
                        channels.remove(&ch.name);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Subscription;
    use super::*;

    /// The memory hub with the `Hub` surface, publishing synchronously
    /// (`Hub::publish` is async for the Redis backend's sake).
    #[derive(Clone)]
    struct Hub(Arc<MemoryHub>);

    impl Hub {
        fn memory(history: usize, max_channels: usize) -> Hub {
            Hub(Arc::new(MemoryHub::new(history, max_channels)))
        }

        fn publish(
            &self,
            channel: &str,
            event_type: &str,
            data: &str,
        ) -> Result<Published, HubError> {
            self.0.publish(channel, event_type, data)
        }

        fn subscribe(
            &self,
            channels: &[ChannelRequest],
            start: Start,
        ) -> Result<Subscription, HubError> {
            self.0.subscribe(channels, start).map(Subscription::Memory)
        }

        fn channels(&self) -> Vec<ChannelInfo> {
            self.0.channels()
        }
    }

    fn hub(history: usize) -> Hub {
        Hub::memory(history, 100)
    }

    fn req(name: &str, tail: usize) -> ChannelRequest {
        ChannelRequest::new(name, tail)
    }

    fn data_of(batch: &[Delivery]) -> Vec<String> {
        batch
            .iter()
            .map(|d| match d {
                Delivery::Event(e) => format!("{}:{}", e.channel, e.data),
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
            hub.publish("a", "message", &i.to_string()).unwrap();
        }
        let mut sub = hub.subscribe(&[req("a", 2)], Start::Now).unwrap();
        hub.publish("a", "message", "5").unwrap();
        assert_eq!(drain(&mut sub), ["a:3", "a:4", "a:5"]);
    }

    #[test]
    fn resume_after_id_gives_exactly_the_missed_events() {
        let hub = hub(100);
        hub.publish("a", "message", "0").unwrap();
        let id = hub.publish("a", "message", "1").unwrap().id;
        hub.publish("a", "message", "2").unwrap();
        hub.publish("a", "message", "3").unwrap();
        let mut sub = hub.subscribe(&[req("a", 10)], Start::After(id)).unwrap();
        assert_eq!(drain(&mut sub), ["a:2", "a:3"]);
    }

    #[test]
    fn multiplexed_subscription_merges_in_id_order_and_resumes_all() {
        let hub = hub(100);
        let mut sub = hub
            .subscribe(&[req("a", 0), req("b", 0)], Start::Now)
            .unwrap();
        hub.publish("a", "message", "1").unwrap();
        let id = hub.publish("b", "message", "2").unwrap().id;
        hub.publish("a", "message", "3").unwrap();
        hub.publish("c", "message", "x").unwrap();
        hub.publish("b", "message", "4").unwrap();
        assert_eq!(drain(&mut sub), ["a:1", "b:2", "a:3", "b:4"]);
        let mut resumed = hub
            .subscribe(&[req("a", 0), req("b", 0)], Start::After(id))
            .unwrap();
        assert_eq!(drain(&mut resumed), ["a:3", "b:4"]);
    }

    #[test]
    fn unknown_or_foreign_id_gets_reset_then_everything_retained() {
        let hub = hub(100);
        hub.publish("a", "message", "1").unwrap();
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
        hub.publish("a", "message", "1").unwrap();
        let quiet = ChannelRequest {
            implicit: true,
            ..req("empty", 0)
        };
        let mut sub = hub
            .subscribe(&[req("a", 0), quiet.clone()], Start::After("x".into()))
            .unwrap();
        assert_eq!(drain(&mut sub), ["reset a unknown id", "a:1"]);
        hub.publish("empty", "message", "2").unwrap();
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
        let id = hub.publish("a", "message", "1").unwrap().id;
        let future = id.replace("-1", "-2");
        let mut sub = hub.subscribe(&[req("a", 0)], Start::After(future)).unwrap();
        assert_eq!(drain(&mut sub), ["reset a unknown id", "a:1"]);
    }

    #[test]
    fn resume_older_than_history_gets_one_reset() {
        let hub = hub(3);
        let id = hub.publish("a", "message", "0").unwrap().id;
        for i in 1..6 {
            hub.publish("a", "message", &i.to_string()).unwrap();
        }
        let mut sub = hub.subscribe(&[req("a", 0)], Start::After(id)).unwrap();
        assert_eq!(drain(&mut sub), ["reset a too old", "a:3", "a:4", "a:5"]);
        hub.publish("a", "message", "6").unwrap();
        assert_eq!(drain(&mut sub), ["a:6"]);
    }

    #[test]
    fn slow_subscriber_is_reset_and_memory_stays_bounded() {
        let hub = hub(4);
        let mut slow = hub.subscribe(&[req("a", 0)], Start::Now).unwrap();
        for i in 0..10 {
            hub.publish("a", "message", &i.to_string()).unwrap();
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
                if i % 3 == 0 { "a" } else { "b" },
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
                Delivery::Event(e) => e.data.parse::<u32>().unwrap(),
                Delivery::Reset { .. } => panic!("unexpected reset"),
            }));
        }
        assert_eq!(seen, (0..3000).collect::<Vec<_>>());
    }

    #[test]
    fn data_line_breaks_are_normalised() {
        let hub = hub(10);
        hub.publish("a", "message", "a\r\nb\rc\n").unwrap();
        let mut sub = hub.subscribe(&[req("a", 1)], Start::Now).unwrap();
        assert_eq!(drain(&mut sub), ["a:a\nb\nc\n"]);
    }

    #[test]
    fn subscriber_count_and_unsubscribe_on_drop() {
        let hub = hub(10);
        let sub = hub.subscribe(&[req("a", 0)], Start::Now).unwrap();
        assert_eq!(hub.publish("a", "message", "x").unwrap().subscribers, 1);
        drop(sub);
        let last = hub.publish("a", "message", "y").unwrap();
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
        hub.publish("kept", "message", "x").unwrap();
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
        hub.publish("passing", "message", "back").unwrap();
        assert_eq!(drain(&mut again), ["passing:back"]);
    }

    #[test]
    fn channel_limit_is_enforced() {
        let hub = Hub::memory(10, 2);
        hub.publish("a", "message", "x").unwrap();
        hub.publish("b", "message", "x").unwrap();
        assert_eq!(
            hub.publish("c", "message", "x"),
            Err(HubError::TooManyChannels { limit: 2 })
        );
    }

    #[tokio::test]
    async fn next_batch_wakes_on_publish_from_another_task() {
        let hub = hub(10);
        let mut sub = hub.subscribe(&[req("a", 0)], Start::Now).unwrap();
        let publisher = hub.clone();
        tokio::spawn(async move {
            publisher.publish("a", "message", "hello").unwrap();
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
                        hub.publish(ch, "message", &i.to_string()).unwrap();
                    }
                })
            })
            .collect();
        let mut last_seq = 0;
        let mut count = 0;
        while count < 4000 {
            for d in sub.ready_batch() {
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
}
