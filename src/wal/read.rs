//! Reading the log back: forward by sequence range (resume), newest first
//! for one channel (`/api/history`), and single records.
//!
//! Reads work on *blocks*: the records between two sparse index entries
//! (about 64 KiB). A block is read with one positioned read and decoded in
//! memory, so a read never looks past the part of a segment its index
//! snapshot has checked, however the writer moves on meanwhile. A segment
//! dropped by retention while a read runs reads as empty.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::record::{self, Record, RecordView};
use super::segment::HEADER_LEN;
use super::{Segment, Wal, WalError};

/// Bytes a single [`Wal::read_forward`] or [`Wal::history`] call decodes at
/// most before it returns what it has, so that a sparse channel cannot make
/// one call read the whole log.
pub(crate) const SCAN_BUDGET: u64 = 8 << 20;

/// One channel of a forward read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelCursor<'a> {
    /// Channel name.
    pub channel: &'a str,
    /// Only records above this sequence number (e.g. the channel's
    /// [`Wal::hidden_through`]).
    pub after: u64,
}

/// A forward read: records of some channels in a sequence range, in order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForwardRead<'a> {
    /// The channels wanted; none: every channel.
    pub channels: &'a [ChannelCursor<'a>],
    /// Only records above this sequence number.
    pub after: u64,
    /// Only records up to this sequence number.
    pub through: u64,
    /// Stop after this many records.
    pub max_records: usize,
    /// Stop once the records' data and type reach this many bytes.
    pub max_bytes: usize,
}

/// What a forward read returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ForwardBatch {
    /// Matching records, in increasing sequence order.
    pub records: Vec<Record>,
    /// Every matching record up to this sequence number is in `records`:
    /// the next read continues after it. Equal to `through` when the range
    /// is done.
    pub scanned_through: u64,
}

/// A newest-first read of one channel.
pub(crate) struct HistoryQuery<'a> {
    /// Channel name.
    pub channel: &'a str,
    /// Only records above this sequence number.
    pub after: u64,
    /// Only records below this sequence number (`u64::MAX`: from the newest).
    pub before: u64,
    /// Most records returned.
    pub limit: usize,
    /// Which records count (the `q` regex on the data, say).
    pub filter: &'a dyn Fn(&RecordView<'_>) -> bool,
}

/// A page of history, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogPage {
    /// Matching records, newest first.
    pub records: Vec<Record>,
    /// Where the next page starts (`before` for the next query); `None`
    /// when nothing older is left.
    pub next_before: Option<u64>,
}

/// The frozen facts of a segment a read needs.
struct Snap {
    segment: Arc<Segment>,
    /// `(first seq, start offset, end offset)` of each block.
    blocks: Vec<(u64, u64, u64)>,
    /// How many records of the channels asked about the segment holds (of
    /// all channels when none is named), and the newest one's number.
    count: u64,
    last_seq: u64,
    /// The segment's newest record, or one before its first if it has none.
    segment_last: u64,
}

impl Snap {
    fn take(segment: &Arc<Segment>, channels: &[&str]) -> Snap {
        let index = segment.index.lock().expect("index lock");
        let mut blocks = Vec::with_capacity(index.sparse.len());
        for (i, &(seq, start)) in index.sparse.iter().enumerate() {
            let end = index.sparse.get(i + 1).map_or(index.valid_len, |e| e.1);
            blocks.push((seq, start, end));
        }
        let (mut count, mut last_seq) = if channels.is_empty() {
            (index.count, index.last_seq)
        } else {
            (0, 0)
        };
        for c in channels {
            if let Some(stats) = index.channels.get(*c) {
                count += stats.count;
                last_seq = last_seq.max(stats.last_seq);
            }
        }
        let segment_last = if index.count == 0 {
            segment.header.first_seq.saturating_sub(1)
        } else {
            index.last_seq
        };
        Snap {
            segment: segment.clone(),
            blocks,
            count,
            last_seq,
            segment_last,
        }
    }

    /// Reads block `i` and calls `each` on its records in order until it
    /// returns false. `Ok(false)` if the segment file is gone.
    fn for_each_in_block(
        &self,
        file: &File,
        i: usize,
        mut each: impl FnMut(RecordView<'_>) -> bool,
    ) -> Result<(), WalError> {
        let (_, start, end) = self.blocks[i];
        let mut buf = vec![0; (end - start) as usize];
        file.read_exact_at(&mut buf, start)
            .map_err(|source| WalError::Io {
                context: format!("reading {}", self.segment.path.display()),
                source,
            })?;
        let mut at = 0;
        while at < buf.len() {
            let (view, used) = record::decode(&buf[at..]).map_err(|damage| WalError::Io {
                context: format!(
                    "reading {} at offset {}",
                    self.segment.path.display(),
                    start + at as u64
                ),
                source: io::Error::new(io::ErrorKind::InvalidData, damage.to_string()),
            })?;
            if !each(view) {
                return Ok(());
            }
            at += used;
        }
        Ok(())
    }

    /// Opens the segment; `None` if retention removed it.
    fn open(&self) -> Result<Option<File>, WalError> {
        match File::open(&self.segment.path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(WalError::Io {
                context: format!("opening {}", self.segment.path.display()),
                source,
            }),
        }
    }
}

impl Wal {
    /// Reads records of `read.channels` with sequence numbers in
    /// `(after, through]`, in order, up to the read's limits and
    /// `SCAN_BUDGET` bytes scanned. Segments without any of the channels
    /// are skipped without reading them.
    ///
    /// # Errors
    /// A segment cannot be read, or a record that was checked at open or
    /// append no longer decodes (the disk changed under us).
    pub(crate) fn read_forward(&self, read: &ForwardRead<'_>) -> Result<ForwardBatch, WalError> {
        let names: Vec<&str> = read.channels.iter().map(|c| c.channel).collect();
        let segments = self.shared.snapshot();
        let mut out = ForwardBatch {
            records: Vec::new(),
            scanned_through: read.after,
        };
        if read.through <= read.after {
            out.scanned_through = read.through.max(read.after);
            return Ok(out);
        }
        let mut bytes = 0usize;
        let mut scanned_bytes = 0u64;
        for (i, segment) in segments.iter().enumerate() {
            if segment.header.first_seq > read.through {
                break;
            }
            let snap = Snap::take(segment, &names);
            // The highest sequence number this segment can hold.
            let covers = segments
                .get(i + 1)
                .map_or(snap.segment_last, |next| next.header.first_seq - 1);
            if covers <= read.after {
                continue;
            }
            if snap.count == 0 || snap.last_seq <= read.after {
                out.scanned_through = out.scanned_through.max(covers.min(read.through));
                continue;
            }
            let Some(file) = snap.open()? else {
                out.scanned_through = out.scanned_through.max(covers.min(read.through));
                continue;
            };
            let first_block = snap
                .blocks
                .partition_point(|&(seq, _, _)| seq <= read.after + 1)
                .saturating_sub(1);
            let mut done = false;
            for b in first_block..snap.blocks.len() {
                let (_, start, end) = snap.blocks[b];
                let mut stop = false;
                snap.for_each_in_block(&file, b, |view| {
                    if view.seq <= read.after {
                        return true;
                    }
                    if view.seq > read.through {
                        stop = true;
                        return false;
                    }
                    let wanted = read.channels.is_empty()
                        || read
                            .channels
                            .iter()
                            .any(|c| c.channel == view.channel && view.seq > c.after);
                    if wanted {
                        bytes += view.data.len() + view.event_type.len();
                        out.records.push(view.to_record());
                    }
                    out.scanned_through = view.seq;
                    if out.records.len() >= read.max_records || bytes >= read.max_bytes {
                        stop = true;
                        return false;
                    }
                    true
                })?;
                scanned_bytes += end - start;
                if stop {
                    done = true;
                    break;
                }
                if scanned_bytes >= SCAN_BUDGET {
                    // Everything up to the end of this block was looked at.
                    return Ok(out);
                }
            }
            if done {
                if out.records.len() < read.max_records && bytes < read.max_bytes {
                    out.scanned_through = read.through;
                }
                return Ok(out);
            }
            out.scanned_through = out.scanned_through.max(covers.min(read.through));
        }
        Ok(out)
    }

    /// Records of one channel, newest first, below `before` and above
    /// `after`, that pass `filter`: at most `limit` of them, and at most
    /// `SCAN_BUDGET` bytes looked at. When the budget ends the page
    /// early, `next_before` says where to go on.
    ///
    /// # Errors
    /// As [`Wal::read_forward`].
    pub(crate) fn history(&self, query: &HistoryQuery<'_>) -> Result<LogPage, WalError> {
        let mut page = LogPage::default();
        if query.limit == 0 {
            return Ok(page);
        }
        let segments = self.shared.snapshot();
        let mut scanned_bytes = 0u64;
        for segment in segments.iter().rev() {
            if segment.header.first_seq >= query.before {
                continue;
            }
            let snap = Snap::take(segment, &[query.channel]);
            if snap.count == 0 || snap.last_seq <= query.after {
                if segment.header.first_seq <= query.after + 1 {
                    break;
                }
                continue;
            }
            let Some(file) = snap.open()? else { continue };
            let last_block = snap
                .blocks
                .partition_point(|&(seq, _, _)| seq < query.before);
            let mut found: Vec<Record> = Vec::new();
            for b in (0..last_block).rev() {
                let (block_first, start, end) = snap.blocks[b];
                found.clear();
                snap.for_each_in_block(&file, b, |view| {
                    if view.seq >= query.before {
                        return false;
                    }
                    if view.seq > query.after
                        && view.channel == query.channel
                        && (query.filter)(&view)
                    {
                        found.push(view.to_record());
                    }
                    true
                })?;
                for record in found.drain(..).rev() {
                    let seq = record.seq;
                    page.records.push(record);
                    if page.records.len() == query.limit {
                        page.next_before = Some(seq);
                        return Ok(page);
                    }
                }
                if block_first <= query.after + 1 {
                    return Ok(page);
                }
                scanned_bytes += end - start;
                if scanned_bytes >= SCAN_BUDGET {
                    page.next_before = Some(block_first);
                    return Ok(page);
                }
            }
            if segment.header.first_seq <= query.after + 1 {
                break;
            }
        }
        Ok(page)
    }

    /// The record with sequence number `seq`, if the log still holds it.
    ///
    /// # Errors
    /// As [`Wal::read_forward`].
    pub(crate) fn read_seq(&self, seq: u64) -> Result<Option<Record>, WalError> {
        let segments = self.shared.snapshot();
        let at = segments.partition_point(|s| s.header.first_seq <= seq);
        let Some(segment) = at.checked_sub(1).map(|i| &segments[i]) else {
            return Ok(None);
        };
        let snap = Snap::take(segment, &[]);
        let Some(file) = snap.open()? else {
            return Ok(None);
        };
        let block = snap
            .blocks
            .partition_point(|&(s, _, _)| s <= seq)
            .saturating_sub(1);
        let mut found = None;
        for b in block..snap.blocks.len() {
            snap.for_each_in_block(&file, b, |view| {
                if view.seq == seq {
                    found = Some(view.to_record());
                }
                view.seq < seq
            })?;
            if found.is_some() || snap.blocks[b].0 > seq {
                break;
            }
        }
        Ok(found)
    }

    /// The newest record of `channel`, if any is retained (not counting
    /// what `--history` hides): where a log stream left off.
    ///
    /// # Errors
    /// As [`Wal::read_forward`].
    pub(crate) fn last_record_of(&self, channel: &str) -> Result<Option<Record>, WalError> {
        for segment in self.shared.snapshot().iter().rev() {
            let last = {
                let index = segment.index.lock().expect("index lock");
                index.channels.get(channel).map(|s| s.last_seq)
            };
            if let Some(seq) = last {
                return self.read_seq(seq);
            }
        }
        Ok(None)
    }

    /// The sequence number after which about the newest `bytes` of the log
    /// begin (0: the whole log is smaller), for warming a memory cache of
    /// that size with [`Wal::read_forward`].
    pub(crate) fn seq_before_newest_bytes(&self, bytes: u64) -> u64 {
        let mut left = bytes;
        for segment in self.shared.snapshot().iter().rev() {
            let index = segment.index.lock().expect("index lock");
            let len = index.valid_len - HEADER_LEN;
            if len <= left {
                left -= len;
                continue;
            }
            let from = index.valid_len - left;
            let i = index.sparse.partition_point(|&(_, off)| off < from);
            return match index.sparse.get(i) {
                Some(&(seq, _)) => seq - 1,
                None => index.last_seq,
            };
        }
        0
    }

    /// The sequence number of the `nth` newest record of `channel` (1: the
    /// newest), if the log holds that many.
    pub(super) fn nth_newest(&self, channel: &str, nth: u64) -> Result<Option<u64>, WalError> {
        if nth == 0 {
            return Ok(None);
        }
        let mut newer = 0u64;
        for segment in self.shared.snapshot().iter().rev() {
            let snap = Snap::take(segment, &[channel]);
            if newer + snap.count < nth {
                newer += snap.count;
                continue;
            }
            let Some(file) = snap.open()? else {
                return Ok(None);
            };
            // Counting back from the segment's newest record of the channel.
            let mut rank = nth - newer;
            let mut seqs = Vec::new();
            for b in (0..snap.blocks.len()).rev() {
                seqs.clear();
                snap.for_each_in_block(&file, b, |view| {
                    if view.channel == channel {
                        seqs.push(view.seq);
                    }
                    true
                })?;
                if (seqs.len() as u64) >= rank {
                    return Ok(Some(seqs[seqs.len() - rank as usize]));
                }
                rank -= seqs.len() as u64;
            }
            return Ok(None);
        }
        Ok(None)
    }
}
