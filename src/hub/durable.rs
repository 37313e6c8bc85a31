//! The hub's side of `--data-dir`: turning the write-ahead log's records
//! into events, and the reads that catch a subscriber up from disk when
//! what it needs has left the memory.
//!
//! The memory keeps the newest events (bounded as without a log); the log
//! keeps everything retained on disk. A subscriber whose cursor is behind
//! what the memory holds of one of its channels reads the gap from the log
//! in bounded batches (on the blocking pool when awaited), then goes on
//! from memory. Only what the log no longer serves (`--history` per channel,
//! `--retention-bytes`) produces a `reset`.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use super::{ChannelName, EventId, HistoryEvent, HistoryPage, StoredEvent, Tag};
use crate::sse::PendingEvent;
use crate::wal::{ChannelCursor, ForwardRead, HistoryQuery, Record, Wal, WalError};

/// Most bytes of event data one catch-up batch reads from the log.
const DISK_BATCH_BYTES: usize = 1 << 20;

/// The id of the record with sequence number `seq`: the epoch of the
/// segment holding it as the tag, then the number.
pub(crate) fn id_of(log: &Wal, seq: u64) -> EventId {
    EventId::new(Tag::hex(log.epoch_of(seq)), seq)
}

/// The log epoch and sequence number of `id`, if it is exactly an id as
/// the hub writes them with a log: the tag 8 lowercase hex digits.
pub(crate) fn parse_id(id: &str) -> Option<(u32, u64)> {
    let id = EventId::parse(id)?;
    Some((id.tag.to_hex()?, id.seq))
}

/// A record of the log as the event the hub first made of it (same id,
/// same bytes on the wire), counted against `envelope_bytes` like any.
pub(crate) fn event_of(
    log: &Wal,
    record: &Record,
    channel: ChannelName,
    envelope_bytes: Arc<AtomicUsize>,
) -> StoredEvent {
    let pending = PendingEvent::encode(&record.event_type, &record.data);
    let allocated = pending.allocated();
    let frame = pending.with_id(id_of(log, record.seq).text().as_str());
    StoredEvent::new(record.seq, channel, frame, allocated, envelope_bytes)
}

/// `/api/history` from the log: records of `channel` below `before` whose
/// data passes `filter`, newest first, among the `keep` newest the log
/// serves. (Blocking file I/O.)
pub(crate) fn history(
    log: &Wal,
    channel: &ChannelName,
    keep: usize,
    before: u64,
    limit: usize,
    filter: &dyn Fn(&str) -> bool,
) -> Result<HistoryPage, WalError> {
    let after = log.hidden_through(channel, keep)?;
    let page = log.history(&HistoryQuery {
        channel,
        after,
        before,
        limit,
        filter: &|view| filter(view.data),
    })?;
    Ok(HistoryPage {
        events: page
            .records
            .into_iter()
            .map(|r| HistoryEvent {
                id: id_of(log, r.seq).to_string(),
                channel: r.channel.into(),
                event_type: r.event_type.into(),
                data: r.data.into(),
            })
            .collect(),
        next_before: page.next_before.map(|seq| id_of(log, seq).to_string()),
    })
}

/// One read from the log for a subscriber behind the memory. Runs without
/// any hub lock, on whatever thread the caller likes.
pub(crate) struct DiskRead {
    pub log: Arc<Wal>,
    /// The subscription's channels.
    pub channels: Vec<ChannelName>,
    /// The hub's count of envelope bytes, for the events made here.
    pub envelope_bytes: Arc<AtomicUsize>,
    /// `--history`: newest records per channel the log serves.
    pub keep: usize,
    /// Per channel, records up to here are no longer served; computed by
    /// the first read of a catch-up and carried to the next ones.
    pub hidden: Option<Vec<u64>>,
    /// Read after this sequence number...
    pub after: u64,
    /// ...through this one.
    pub through: u64,
    /// Most events.
    pub max_records: usize,
}

/// What a [`DiskRead`] found.
pub(crate) struct DiskBatch {
    /// Per channel, hidden through; `fresh` when computed by this read.
    pub hidden: Vec<u64>,
    /// The hidden values were computed by this read (resets may be due).
    pub fresh: bool,
    /// The events, in order.
    pub events: Vec<Arc<StoredEvent>>,
    /// The read covered everything up to here.
    pub scanned_through: u64,
    /// The read's upper bound.
    pub through: u64,
}

impl DiskRead {
    /// Reads the batch (blocking file I/O).
    pub(crate) fn run(self) -> Result<DiskBatch, WalError> {
        let fresh = self.hidden.is_none();
        let hidden = match self.hidden {
            Some(hidden) => hidden,
            None => self
                .channels
                .iter()
                .map(|c| self.log.hidden_through(c, self.keep))
                .collect::<Result<Vec<u64>, WalError>>()?,
        };
        let cursors: Vec<ChannelCursor<'_>> = self
            .channels
            .iter()
            .zip(&hidden)
            .map(|(channel, &after)| ChannelCursor {
                channel: channel.as_str(),
                after,
            })
            .collect();
        let batch = self.log.read_forward(&ForwardRead {
            channels: &cursors,
            after: self.after,
            through: self.through,
            max_records: self.max_records,
            max_bytes: DISK_BATCH_BYTES,
        })?;
        let events = batch
            .records
            .into_iter()
            .filter_map(|record| {
                let channel = self
                    .channels
                    .iter()
                    .find(|c| c.as_str() == &*record.channel)?
                    .clone();
                Some(Arc::new(event_of(
                    &self.log,
                    &record,
                    channel,
                    self.envelope_bytes.clone(),
                )))
            })
            .collect();
        Ok(DiskBatch {
            hidden,
            fresh,
            events,
            scanned_through: batch.scanned_through,
            through: self.through,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ChannelRequest, Delivery, Hub, HubLimits, Start, Subscription};
    use super::*;
    use crate::wal::{FsyncPolicy, WalOptions};
    use std::path::Path;

    fn limits(history: usize) -> HubLimits {
        HubLimits {
            history,
            max_channels: 100,
            ..HubLimits::default()
        }
    }

    fn open(dir: &Path, history: usize, warm_bytes: u64) -> Hub {
        let opts = WalOptions::new(FsyncPolicy::Always, 1 << 30);
        let log = Arc::new(Wal::open(dir, opts).unwrap());
        Hub::with_wal(limits(history), log, warm_bytes).unwrap()
    }

    fn n(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    fn req(name: &str, tail: usize) -> ChannelRequest {
        ChannelRequest::new(n(name), tail)
    }

    fn drain(sub: &mut Subscription) -> Vec<String> {
        let mut all = Vec::new();
        loop {
            let batch = sub.ready_batch();
            if batch.is_empty() {
                return all;
            }
            all.extend(batch.iter().map(|d| match d {
                Delivery::Event(e) => format!("{}:{}", e.channel, e.data()),
                Delivery::Reset { channel, reason } => format!("reset {channel} {reason}"),
            }));
        }
    }

    fn seq(id: &str) -> u64 {
        parse_id(id).unwrap().1
    }

    #[tokio::test]
    async fn ids_and_resume_survive_a_restart_with_or_without_a_warm_memory() {
        for warm_bytes in [0, 1 << 20] {
            let dir = tempfile::tempdir().unwrap();
            let hub = open(dir.path(), 100, warm_bytes);
            let mut ids = Vec::new();
            for i in 0..6 {
                let channel = if i % 2 == 0 { "a" } else { "b" };
                ids.push(
                    hub.publish(&n(channel), "message", &i.to_string())
                        .await
                        .unwrap()
                        .id,
                );
            }
            drop(hub);
            let hub = open(dir.path(), 100, warm_bytes);
            let single = [req("a", 0)];
            let mut sub = hub
                .subscribe(&single, Start::After(ids[0].clone()))
                .unwrap();
            assert_eq!(drain(&mut sub), ["a:2", "a:4"], "warm {warm_bytes}");
            let both = [req("a", 0), req("b", 0)];
            let mut sub = hub.subscribe(&both, Start::After(ids[2].clone())).unwrap();
            let next = hub.publish(&n("b"), "message", "6").await.unwrap().id;
            assert_eq!(drain(&mut sub), ["b:3", "a:4", "b:5", "b:6"]);
            assert_eq!(seq(&next), seq(&ids[5]) + 1, "ids keep increasing");
            // A resumed event carries its original id and bytes.
            let mut sub = hub
                .subscribe(&single, Start::After(ids[3].clone()))
                .unwrap();
            match &sub.ready_batch()[0] {
                Delivery::Event(e) => {
                    assert_eq!(e.id(), ids[4]);
                    assert_eq!(
                        e.frame,
                        crate::sse::encode_event(Some(&ids[4]), "message", "4")
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_batch_of_several_channels_is_logged_in_record_order() {
        for warm_bytes in [0, 1 << 20] {
            let dir = tempfile::tempdir().unwrap();
            let hub = open(dir.path(), 100, warm_bytes);
            let start = hub.publish(&n("a"), "message", "0").await.unwrap().id;
            let (a, b) = (n("a"), n("b"));
            let batch = hub
                .publish_multi(
                    &[
                        (&a, "message", "1"),
                        (&b, "message", "2"),
                        (&a, "message", "3"),
                    ],
                    crate::hub::Creator::Ingest,
                )
                .await
                .unwrap();
            assert_eq!(seq(&batch.first_id), seq(&start) + 1);
            assert_eq!(seq(&batch.last_id), seq(&start) + 3);
            drop(hub);
            // After a restart, from the log (or the warmed memory).
            let hub = open(dir.path(), 100, warm_bytes);
            let both = [req("a", 0), req("b", 0)];
            let mut sub = hub.subscribe(&both, Start::After(start)).unwrap();
            assert_eq!(drain(&mut sub), ["a:1", "b:2", "a:3"], "warm {warm_bytes}");
        }
    }

    #[tokio::test]
    async fn the_memory_is_warmed_from_the_newest_events() {
        let dir = tempfile::tempdir().unwrap();
        let hub = open(dir.path(), 100, 1 << 20);
        hub.publish(&n("a"), "message", "old").await.unwrap();
        let last = hub
            .publish(&n("log:x"), "message", "line")
            .await
            .unwrap()
            .id;
        drop(hub);
        let hub = open(dir.path(), 100, 1 << 20);
        let channels = hub.channels().await;
        assert_eq!(channels.len(), 2);
        assert_eq!(channels[1].last_id.as_deref(), Some(last.as_str()));
        let mut sub = hub.subscribe(&[req("log:x", 10)], Start::Now).unwrap();
        assert_eq!(drain(&mut sub), ["log:x:line"]);
    }

    #[tokio::test]
    async fn a_resume_older_than_the_history_gets_too_old_then_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let hub = open(dir.path(), 3, 0);
        let first = hub.publish(&n("a"), "message", "0").await.unwrap().id;
        for i in 1..6 {
            hub.publish(&n("a"), "message", &i.to_string())
                .await
                .unwrap();
        }
        drop(hub);
        let hub = open(dir.path(), 3, 0);
        let mut sub = hub.subscribe(&[req("a", 0)], Start::After(first)).unwrap();
        assert_eq!(drain(&mut sub), ["reset a too old", "a:3", "a:4", "a:5"]);
    }

    #[tokio::test]
    async fn an_unknown_id_gets_one_reset_then_everything_retained_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let hub = open(dir.path(), 3, 0);
        for i in 0..5 {
            hub.publish(&n("a"), "message", &i.to_string())
                .await
                .unwrap();
        }
        drop(hub);
        let hub = open(dir.path(), 3, 0);
        for bad in ["garbage", "00000000-1", "ffffffff-2"] {
            let mut sub = hub
                .subscribe(&[req("a", 0)], Start::After(bad.into()))
                .unwrap();
            assert_eq!(
                drain(&mut sub),
                ["reset a unknown id", "a:2", "a:3", "a:4"],
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn many_events_come_back_from_disk_in_bounded_batches() {
        let dir = tempfile::tempdir().unwrap();
        let hub = open(dir.path(), 100_000, 0);
        let first = hub.publish(&n("a"), "message", "start").await.unwrap().id;
        for i in 0..3000 {
            hub.publish(
                &n(if i % 2 == 0 { "a" } else { "b" }),
                "message",
                &i.to_string(),
            )
            .await
            .unwrap();
        }
        drop(hub);
        let hub = open(dir.path(), 100_000, 0);
        let mut sub = hub
            .subscribe(&[req("a", 0), req("b", 0)], Start::After(first))
            .unwrap();
        let mut seen = Vec::new();
        loop {
            let batch = sub.ready_batch();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 512);
            for d in batch {
                match d {
                    Delivery::Event(e) => seen.push(e.data().parse::<u32>().unwrap()),
                    Delivery::Reset { .. } => panic!("unexpected reset"),
                }
            }
        }
        assert_eq!(seen, (0..3000).collect::<Vec<_>>());
    }

    /// Under `--fsync always` every publish function of `Hub` returns
    /// only once its events are on disk, with no `flush` by the caller
    /// (the HTTP handlers, ingest and syslog call none).
    #[tokio::test]
    async fn a_publish_returns_with_its_events_on_disk_under_fsync_always() {
        let dir = tempfile::tempdir().unwrap();
        let hub = open(dir.path(), 100, 0);
        let log = hub.wal().unwrap().clone();
        let (a, b) = (n("a"), n("b"));
        for round in 0..20 {
            let id = hub.publish(&a, "message", "one").await.unwrap().id;
            let durable = log.durable().seq;
            assert!(
                durable >= seq(&id),
                "round {round}: publish {id}, durable {durable}"
            );
            let batch = hub
                .publish_batch(&a, &[("message", "x"), ("message", "y")])
                .await
                .unwrap();
            let durable = log.durable().seq;
            assert!(
                durable >= seq(&batch.last_id),
                "round {round}: batch, durable {durable}"
            );
            let multi = hub
                .publish_multi(
                    &[(&a, "message", "1"), (&b, "message", "2")],
                    crate::hub::Creator::Ingest,
                )
                .await
                .unwrap();
            let durable = log.durable().seq;
            assert!(
                durable >= seq(&multi.last_id),
                "round {round}: multi, durable {durable}"
            );
        }
    }

    /// Under a timed `--fsync` a publish does not wait for the disk (it is
    /// in the log, which a crash of the process alone does not lose).
    #[tokio::test]
    async fn a_publish_under_a_timed_fsync_is_in_the_log_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions::new(
            FsyncPolicy::Every(std::time::Duration::from_secs(3600)),
            1 << 30,
        );
        let log = Arc::new(Wal::open(dir.path(), opts).unwrap());
        let hub = Hub::with_wal(limits(100), log.clone(), 0).unwrap();
        let id = hub.publish(&n("a"), "message", "one").await.unwrap().id;
        assert_eq!(log.last_seq(), seq(&id), "written before the answer");
        assert!(
            log.durable().seq < seq(&id),
            "not waiting for an hourly fsync"
        );
    }

    #[tokio::test]
    async fn next_batch_reads_the_log_off_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let hub = open(dir.path(), 100, 0);
        let first = hub.publish(&n("a"), "message", "0").await.unwrap().id;
        hub.publish(&n("a"), "message", "1").await.unwrap();
        drop(hub);
        let hub = open(dir.path(), 100, 0);
        let mut sub = hub.subscribe(&[req("a", 0)], Start::After(first)).unwrap();
        let batch = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next_batch())
            .await
            .unwrap();
        assert!(matches!(&batch[..], [Delivery::Event(e)] if e.data() == "1"));
    }

    #[tokio::test]
    async fn history_reads_the_same_with_and_without_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let durable = open(dir.path(), 5, 0);
        let memory = Hub::memory(limits(5));
        for hub in [&durable, &memory] {
            for i in 0..8 {
                let level = if i % 2 == 0 { "ERROR" } else { "INFO" };
                hub.publish(&n("a"), "message", &format!("{level} {i}"))
                    .await
                    .unwrap();
                hub.publish(&n("b"), "message", "ERROR other")
                    .await
                    .unwrap();
            }
        }
        for hub in [&durable, &memory] {
            let all = |_: &str| true;
            let page = hub.history(&n("a"), None, 2, all).await.unwrap();
            let data: Vec<&str> = page.events.iter().map(|e| e.data.as_str()).collect();
            assert_eq!(data, ["INFO 7", "ERROR 6"]);
            let before = page.next_before.clone().unwrap();
            assert_eq!(before, page.events[1].id);
            let page = hub.history(&n("a"), Some(&before), 10, all).await.unwrap();
            let data: Vec<&str> = page.events.iter().map(|e| e.data.as_str()).collect();
            assert_eq!(data, ["INFO 5", "ERROR 4", "INFO 3"], "--history 5 holds");
            assert_eq!(page.next_before, None);
            let errors = |d: &str| d.starts_with("ERROR");
            let page = hub.history(&n("a"), None, 10, errors).await.unwrap();
            assert_eq!(page.events.len(), 2);
            assert!(page
                .events
                .iter()
                .all(|e| e.channel == "a" && e.event_type == "message"));
            assert!(hub.history(&n("a"), Some("nope"), 10, all).await.is_err());
            assert_eq!(
                hub.history(&n("none"), None, 10, all).await.unwrap().events,
                []
            );
        }
    }

    #[test]
    fn ids_round_trip() {
        assert_eq!(EventId::new(Tag::hex(0xab), 42).to_string(), "000000ab-42");
        assert_eq!(parse_id("000000ab-42"), Some((0xab, 42)));
        assert_eq!(parse_id("deadbeef-1"), Some((0xdead_beef, 1)));
        for bad in [
            "",
            "ab-1",
            "0000000g-1",
            "000000ab-",
            "000000ab-x",
            "000000ab",
            " deadbeef-1",
            "DEADBEEF-1",
            "000000ab-01",
            "000000ab-+1",
        ] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }
}
