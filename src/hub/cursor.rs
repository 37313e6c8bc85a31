//! What every backend's subscription cursor shares: the batch bounds and
//! the merge of several channels' histories in id order.
//!
//! A subscriber is a cursor (the highest number handed out) into the
//! histories of its channels. Each step takes, from every channel, the
//! events numbered in (cursor, snapshot] — at most [`MAX_BATCH`] per
//! channel — merges them in id order and ends the batch with the event
//! that brings its frames to [`MAX_BATCH_BYTES`]. A channel cut short at
//! [`MAX_BATCH`] (or a read from below the memory that stopped early)
//! cuts the whole batch at its last event, so that the merge never skips
//! an event of another channel: what is above the cut comes next time.
//!
//! One rule for every backend (the memory hub, with or without a log, and
//! the Redis replica), live events and `?tail` backlogs alike: the batch
//! is priced by the encoded frames, and a batch of one event is never cut
//! (an event larger than the bound goes alone).

use std::collections::VecDeque;
use std::sync::Arc;

use super::StoredEvent;

/// Most events taken from one channel per batch; bounds the work done
/// under a channel lock and the size of one write.
pub(crate) const MAX_BATCH: usize = 512;

/// Most bytes of event frames handed to a subscriber per batch (the batch
/// ends with the event that reaches it; the same figure as a batch read
/// from the log). With [`MAX_BATCH`], what one step of a subscription
/// (a `?tail` backlog included) holds at once.
pub(crate) const MAX_BATCH_BYTES: usize = 1 << 20;

/// One batch being gathered from several channels (see the module docs).
#[derive(Default)]
pub(crate) struct Merge {
    events: Vec<Arc<StoredEvent>>,
    /// The lowest number at which a source was cut short: events above it
    /// wait for the next batch.
    cut: Option<u64>,
    /// Sources that gave events (one needs no sort).
    sources: usize,
}

impl Merge {
    /// An empty batch.
    #[inline]
    pub(crate) fn new() -> Merge {
        Merge::default()
    }

    /// Takes from `history` (one channel's, in increasing number) the
    /// events numbered in (`after`, `through`], at most [`MAX_BATCH`]; a
    /// channel with more cuts the batch at the last one taken.
    #[inline]
    pub(crate) fn take(&mut self, history: &VecDeque<Arc<StoredEvent>>, after: u64, through: u64) {
        let begin = history.partition_point(|e| e.seq <= after);
        let before = self.events.len();
        let mut last = after;
        for (taken, event) in history.range(begin..).enumerate() {
            if event.seq > through {
                break;
            }
            if taken == MAX_BATCH {
                self.cut_at(last);
                break;
            }
            last = event.seq;
            self.events.push(event.clone());
        }
        if self.events.len() > before {
            self.sources += 1;
        }
    }

    /// Adds events read from elsewhere (below the memory), in increasing
    /// number; `more` when the read stopped before its end (the batch is
    /// then cut at the last of them).
    #[inline]
    pub(crate) fn add(&mut self, events: impl IntoIterator<Item = Arc<StoredEvent>>, more: bool) {
        let before = self.events.len();
        self.events.extend(events);
        if self.events.len() > before {
            self.sources += 1;
            if more {
                let last = self.events.last().expect("just added").seq;
                self.cut_at(last);
            }
        }
    }

    /// Cuts the batch at `seq`: nothing above it goes in this batch.
    #[inline]
    pub(crate) fn cut_at(&mut self, seq: u64) {
        self.cut = Some(self.cut.map_or(seq, |c| c.min(seq)));
    }

    /// The batch in id order, bounded, and the number through which it
    /// covers the cursor's range: `None` when it holds everything up to
    /// the snapshot asked for.
    #[inline]
    pub(crate) fn finish(mut self) -> (Vec<Arc<StoredEvent>>, Option<u64>) {
        if self.sources > 1 {
            self.events.sort_by_key(|e| e.seq);
        }
        if let Some(limit) = self.cut {
            self.events.retain(|e| e.seq <= limit);
        }
        let end = cut_at_bytes(&mut self.events).or(self.cut);
        (self.events, end)
    }
}

/// Ends `events` (in id order) with the event that brings their frames to
/// [`MAX_BATCH_BYTES`]; returns the number of the last event kept when
/// some were cut off (they wait for the next batch).
#[inline]
pub(crate) fn cut_at_bytes(events: &mut Vec<Arc<StoredEvent>>) -> Option<u64> {
    let keep = batch_len(events, usize::MAX);
    if keep == events.len() {
        return None;
    }
    events.truncate(keep);
    events.last().map(|e| e.seq)
}

/// How many of `events` (in id order) one batch takes: at most `most`,
/// ending with the event that brings the frames to [`MAX_BATCH_BYTES`];
/// at least one, if there is one. The one byte rule of every batch.
#[inline]
fn batch_len(events: &[Arc<StoredEvent>], most: usize) -> usize {
    let mut bytes = 0;
    events
        .iter()
        .take(most)
        .position(|e| {
            bytes += e.frame.len();
            bytes >= MAX_BATCH_BYTES
        })
        .map_or(events.len().min(most), |last| last + 1)
}

/// Splits the first batch off `rest` (events in id order, e.g. a tail
/// read whole): at most [`MAX_BATCH`] events, ending with the one that
/// brings the frames to [`MAX_BATCH_BYTES`], at least one event.
pub(crate) fn split_batch(rest: &mut Vec<Arc<StoredEvent>>) -> Vec<Arc<StoredEvent>> {
    let later = rest.split_off(batch_len(rest, MAX_BATCH));
    std::mem::replace(rest, later)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::ChannelName;
    use std::sync::atomic::AtomicUsize;

    fn event(seq: u64, size: usize) -> Arc<StoredEvent> {
        let frame = bytes::Bytes::from(vec![b'x'; size]);
        Arc::new(StoredEvent::new(
            seq,
            ChannelName::parse("a").unwrap(),
            frame,
            size,
            Arc::new(AtomicUsize::new(0)),
        ))
    }

    fn seqs(batch: &[Arc<StoredEvent>]) -> Vec<u64> {
        batch.iter().map(|e| e.seq).collect()
    }

    fn frames(batch: &[Arc<StoredEvent>]) -> usize {
        batch.iter().map(|e| e.frame.len()).sum()
    }

    /// A long tail is handed out in bounded steps, in order, none lost
    /// (the Redis replica's tails; the memory rule since the shared
    /// cursor: a step ends with the event that reaches the byte bound).
    #[test]
    fn a_tail_comes_in_bounded_steps() {
        let mut rest: Vec<_> = (1..=40).map(|seq| event(seq, 300 << 10)).collect();
        let mut seen = Vec::new();
        let mut steps = 0;
        while !rest.is_empty() {
            let batch = split_batch(&mut rest);
            let bytes = frames(&batch);
            assert!(
                bytes < MAX_BATCH_BYTES + (300 << 10),
                "step of {bytes} bytes"
            );
            seen.extend(seqs(&batch));
            steps += 1;
        }
        assert_eq!(seen, (1..=40).collect::<Vec<_>>());
        assert_eq!(
            steps, 10,
            "four 300 KiB events per step (the 4th reaches 1 MiB)"
        );
        // Many small events: MAX_BATCH per step.
        let mut rest: Vec<_> = (1..=1200).map(|seq| event(seq, 10)).collect();
        assert_eq!(split_batch(&mut rest).len(), MAX_BATCH);
        assert_eq!(rest.len(), 1200 - MAX_BATCH);
        // One event over the byte bound still goes, alone.
        let mut rest = vec![event(1, 3 << 20), event(2, 10)];
        assert_eq!(seqs(&split_batch(&mut rest)), [1]);
        assert_eq!(seqs(&split_batch(&mut rest)), [2]);
        assert!(split_batch(&mut rest).is_empty());
    }

    /// Several channels merge in id order; a channel cut at MAX_BATCH cuts
    /// the batch there, and the rest comes next, none skipped.
    #[test]
    fn a_merge_stays_in_order_across_cuts() {
        // Channel a: odd numbers 1..=2001; channel b: even 2..=2000.
        let a: VecDeque<_> = (0..1001).map(|i| event(2 * i + 1, 10)).collect();
        let b: VecDeque<_> = (1..=1000).map(|i| event(2 * i, 10)).collect();
        let (mut cursor, snapshot, mut seen) = (0, 2001, Vec::new());
        while cursor < snapshot {
            let mut merge = Merge::new();
            merge.take(&a, cursor, snapshot);
            merge.take(&b, cursor, snapshot);
            let (batch, end) = merge.finish();
            assert!(batch.windows(2).all(|w| w[0].seq < w[1].seq));
            assert!(batch.len() <= 2 * MAX_BATCH);
            seen.extend(seqs(&batch));
            cursor = end.unwrap_or(snapshot);
        }
        assert_eq!(seen, (1..=2001).collect::<Vec<_>>());
    }

    /// The byte bound ends a merged batch too; one huge event goes alone.
    #[test]
    fn a_merge_ends_at_the_byte_bound() {
        let a: VecDeque<_> = (1..=10).map(|seq| event(seq, 300 << 10)).collect();
        let mut merge = Merge::new();
        merge.take(&a, 0, 10);
        let (batch, end) = merge.finish();
        assert_eq!(seqs(&batch), [1, 2, 3, 4]);
        assert_eq!(end, Some(4));
        let huge: VecDeque<_> = [event(1, 3 << 20), event(2, 1)].into();
        let mut merge = Merge::new();
        merge.take(&huge, 0, 2);
        assert_eq!(merge.finish().1, Some(1));
        // A read from below that stopped early cuts at its last event.
        let mut merge = Merge::new();
        merge.add([event(3, 1), event(5, 1)], true);
        merge.take(&[event(4, 1), event(6, 1)].into(), 0, 6);
        let (batch, end) = merge.finish();
        assert_eq!((seqs(&batch), end), (vec![3, 4, 5], Some(5)));
    }
}
