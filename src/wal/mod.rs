//! The write-ahead log of `--data-dir`: every event, in id order, in
//! checksummed records on disk, read back by sequence range for resume and
//! newest first for `/api/history`.
//!
//! The log knows events (sequence number, time, channel, type, data, and
//! for log lines the file position) and files; it knows nothing of HTTP,
//! subscribers or the hub's memory. The hub numbers events and appends them
//! here before it makes them visible; this module only checks that the
//! numbers keep increasing.
//!
//! On disk, in `DIR/log/`:
//! - segments named after their first sequence number, each a 24-byte
//!   header (magic, epoch, first sequence number, CRC) and records (see
//!   `record` for the bytes). The newest segment is the only one written;
//!   past [`WalOptions::segment_bytes`] a new one is started (a roll). An
//!   append does no fsync, a roll included: the syncer thread seals the
//!   old segment (fsync), syncs the new one and the directory before the
//!   durable watermark passes the roll (see `sync.rs`), so an append never
//!   waits for the disk and never holds the hub's commit lock through an
//!   fsync.
//! - retention drops whole segments, oldest first, while the log is larger
//!   than `--retention-bytes`; the newest segment always stays. A roll
//!   takes them out of service at once; the syncer thread records them in
//!   `dropped.json` and deletes their files right after, so the disk may
//!   briefly hold a segment or two more.
//! - `dropped.json`: per channel, the newest record retention dropped, so
//!   that after a restart only channels that lost records are reset (see
//!   `dropped.rs`).
//!
//! At open every segment is read and checked. Where a record is cut short
//! or fails its checksum (a crash in the middle of a write, or damage), the
//! valid part ends: the newest segment is truncated there, a warning names
//! what was dropped, and the log goes on. After such a cut the log starts a
//! new *epoch* (part of every id), so an id handed out for a record that
//! did not survive can never name a different event later.
//!
//! Memory: per segment, one index entry per 64 KiB of records and one
//! counter per channel present; the data itself stays on disk.
//!
//! Known limits: a read for one channel among many scans the others'
//! records in the same segments (only segments without the channel are
//! skipped); reads are bounded per call (`read_forward` by its limits and a
//! scan budget, `history` by its scan budget) so a sparse channel costs
//! several calls rather than one long one.

mod checkpoint;
mod dropped;
mod files;
mod read;
pub(crate) mod record;
mod segment;
mod sync;

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub(crate) use checkpoint::{Checkpoints, FileCheckpoint};
pub(crate) use read::{ChannelCursor, ForwardRead, HistoryQuery, SCAN_BUDGET};
pub(crate) use record::{EncodeError, NewRecord, Record};
pub(crate) use sync::Durable;

use dropped::Dropped;
use segment::{Header, SegmentIndex};

/// Largest segment: the unit of retention and of the startup scan.
pub(crate) const MAX_SEGMENT_BYTES: u64 = 64 << 20;
/// Smallest segment, whatever `--retention-bytes` says.
pub const MIN_SEGMENT_BYTES: u64 = 64 << 10;

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before a publish is answered (group commit).
    Always,
    /// On a timer: a power loss may lose this much of acknowledged events;
    /// a crash of the process alone loses nothing.
    Every(Duration),
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("always") {
            return Ok(FsyncPolicy::Always);
        }
        match crate::units::parse_duration(text) {
            Ok(interval) if !interval.is_zero() => Ok(FsyncPolicy::Every(interval)),
            _ => Err(format!(
                "{text:?}: expected `always` or an interval such as 1s"
            )),
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Every(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

/// Parses `--fsync`: `always`, or an interval such as `1s`.
///
/// # Errors
/// A message saying what is expected.
pub(crate) fn parse_fsync(text: &str) -> Result<FsyncPolicy, String> {
    text.parse()
}

/// How the log is kept.
#[derive(Debug, Clone, Copy)]
pub struct WalOptions {
    /// When records are forced to disk.
    pub fsync: FsyncPolicy,
    /// Size the log is cut back to, whole segments at a time, oldest first.
    pub retention_bytes: u64,
    /// A segment is sealed and a new one started past this size.
    pub segment_bytes: u64,
}

impl WalOptions {
    /// Options for `--fsync` and `--retention-bytes`; segments are an eighth
    /// of the retention, between [`MIN_SEGMENT_BYTES`] and
    /// `MAX_SEGMENT_BYTES`, so retention works in steps of about 12 %.
    pub fn new(fsync: FsyncPolicy, retention_bytes: u64) -> Self {
        WalOptions {
            fsync,
            retention_bytes,
            segment_bytes: (retention_bytes / 8).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES),
        }
    }
}

/// What can go wrong with the log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The cause.
        source: io::Error,
    },
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another tailcast process")]
    Locked(PathBuf),
    /// The event cannot be stored.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The caller's sequence numbers do not increase (a bug in the caller).
    #[error("sequence number {seq} does not follow {last}")]
    OutOfOrder {
        /// The number given.
        seq: u64,
        /// The last number in the log.
        last: u64,
    },
    /// An earlier write or fsync failed; the log takes nothing more until
    /// the process restarts.
    #[error("the event log is unusable: {0}")]
    Poisoned(Arc<str>),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> WalError {
    let context = context.into();
    move |source| WalError::Io { context, source }
}

/// A cut made at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repair {
    /// The segment.
    pub segment: PathBuf,
    /// Where its valid records end.
    pub offset: u64,
    /// Bytes after that point that were dropped (or, in an older segment,
    /// ignored).
    pub dropped_bytes: u64,
    /// Why the valid part ends there.
    pub why: String,
}

/// What [`Wal::open`] found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recovery {
    /// Segments kept.
    pub segments: usize,
    /// Valid records in them.
    pub records: u64,
    /// Bytes of valid records and headers.
    pub bytes: u64,
    /// Damage cut off (or skipped), with warnings already logged.
    pub repairs: Vec<Repair>,
}

/// What an id's `epoch` and sequence number mean to this log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdStatus {
    /// A record of this log has (or had, if `--history` hides it) this id.
    Known,
    /// The id is of this log but older than anything retained.
    TooOld,
    /// Another log's id, a record lost in a crash, or an id not given yet.
    Unknown,
}

/// Figures for `/metrics` and `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalInfo {
    /// Segment files.
    pub segments: usize,
    /// Bytes of the retained log.
    pub bytes: u64,
    /// Oldest retained sequence number (its segment's first).
    pub first_seq: u64,
    /// Newest sequence number appended (0: none ever).
    pub last_seq: u64,
    /// Newest sequence number known to be on disk.
    pub durable_seq: u64,
    /// Fsyncs done since open (group commit makes this far smaller than
    /// the number of appends under `--fsync always`).
    pub fsyncs: u64,
}

/// One segment file and its index.
pub(crate) struct Segment {
    header: Header,
    path: PathBuf,
    /// std mutex: held for index updates and snapshots, never for I/O.
    index: Mutex<SegmentIndex>,
}

/// The appending half; one at a time.
struct Writer {
    /// The newest segment, opened for append (shared with the syncer).
    file: Arc<File>,
    segment: Arc<Segment>,
    last_seq: u64,
    poisoned: Option<Arc<str>>,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    /// Segments rolled away from and not yet sealed (fsynced), oldest
    /// first: the syncer seals them before it moves the durable watermark.
    unsealed: Vec<Arc<File>>,
    /// A segment was created since the directory was last synced.
    dir_dirty: bool,
}

/// What the syncer must make durable: taken from the writer in one go.
pub(crate) struct Unsynced {
    /// The newest segment.
    file: Arc<File>,
    /// Records up to here are in it or in `unsealed`.
    written: u64,
    /// Older segments to seal first.
    unsealed: Vec<Arc<File>>,
    /// The directory must be synced (a segment was created).
    dir_dirty: bool,
}

/// State shared with the syncer thread.
pub(crate) struct Shared {
    /// `DIR/log`.
    dir: PathBuf,
    opts: WalOptions,
    /// Held `flock`: one process per data directory.
    _lock: File,
    /// std mutex, never held across an await. Lock order: writer, then
    /// segments, then a segment's index, then names or dropped.
    writer: Mutex<Writer>,
    /// Oldest first; the last is the one being written.
    segments: RwLock<Vec<Arc<Segment>>>,
    /// One shared copy of every channel name in the indexes.
    names: Mutex<HashSet<Arc<str>>>,
    /// What retention dropped, per channel (kept in `dropped.json`).
    dropped: Mutex<Dropped>,
    /// Segments retention took out of service whose files are still to
    /// delete (std mutex, held only to push or take).
    retired: Mutex<Vec<PathBuf>>,
    /// Held while retired segments are recorded and deleted: one at a time.
    removing: Mutex<()>,
    sync: sync::SyncShared,
    /// Mirror of the writer's `last_seq`, readable without its lock.
    last_seq: AtomicU64,
}

impl Shared {
    /// The open newest file, the last sequence number written, and the
    /// rolled segments and directory still to sync: the syncer's work,
    /// taken (the writer forgets the segments to seal).
    fn take_unsynced(&self) -> Option<Unsynced> {
        let mut w = self.writer.lock().ok()?;
        Some(Unsynced {
            file: w.file.clone(),
            written: w.last_seq,
            unsealed: std::mem::take(&mut w.unsealed),
            dir_dirty: std::mem::take(&mut w.dir_dirty),
        })
    }

    fn poison(&self, why: &Arc<str>) {
        if let Ok(mut w) = self.writer.lock() {
            w.poisoned.get_or_insert_with(|| why.clone());
        }
    }

    fn intern(&self, name: &str) -> Arc<str> {
        let mut names = self.names.lock().expect("names lock");
        if let Some(n) = names.get(name) {
            return n.clone();
        }
        let n: Arc<str> = name.into();
        names.insert(n.clone());
        n
    }

    fn snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments.read().expect("segments lock").clone()
    }

    /// Starts a segment whose first record will be `first_seq` and writes
    /// on there, and takes what retention drops out of service. No fsync
    /// here (the writer's lock, and so the hub's commit lock, is held): the
    /// old segment is left to the syncer to seal, the new one's header and
    /// name to it to sync, and the retired files to it to delete; the
    /// syncer is woken for that.
    fn roll(&self, w: &mut Writer, first_seq: u64) -> Result<(), WalError> {
        let header = Header {
            epoch: w.segment.header.epoch,
            first_seq,
        };
        let (path, file) = segment::create(&self.dir, header, false).map_err(io_error(format!(
            "creating a segment in {}",
            self.dir.display()
        )))?;
        let segment = Arc::new(Segment {
            header,
            path,
            index: Mutex::new(SegmentIndex::empty()),
        });
        self.segments
            .write()
            .expect("segments lock")
            .push(segment.clone());
        let sealed = std::mem::replace(&mut w.file, Arc::new(file));
        w.unsealed.push(sealed);
        w.dir_dirty = true;
        w.segment = segment;
        self.retire();
        self.sync.rolled();
        Ok(())
    }

    /// Takes the oldest segments out of service until the sealed ones plus
    /// a full newest segment fit in `retention_bytes` (the newest always
    /// stays), and counts what they held as dropped, per channel. No I/O
    /// (it runs in a roll, under the writer's lock): their files are
    /// deleted by [`Shared::remove_retired`].
    fn retire(&self) {
        let mut segments = self.segments.write().expect("segments lock");
        let newest = segments.last().map_or(0, |s| s.len());
        let mut sealed: u64 = segments.iter().map(|s| s.len()).sum::<u64>() - newest;
        let room = self
            .opts
            .retention_bytes
            .saturating_sub(self.opts.segment_bytes);
        let mut retired = Vec::new();
        while sealed > room && segments.len() > 1 {
            let oldest = segments.remove(0);
            let through = segments[0].header.first_seq.saturating_sub(1);
            let index = oldest.index.lock().expect("index lock");
            self.dropped.lock().expect("dropped lock").add(
                index
                    .channels
                    .iter()
                    .map(|(name, stats)| (name, stats.last_seq)),
                through,
            );
            sealed -= index.valid_len;
            drop(index);
            retired.push(oldest.path.clone());
        }
        drop(segments);
        if !retired.is_empty() {
            self.retired.lock().expect("retired lock").extend(retired);
        }
    }

    /// Deletes the files of retired segments, after recording in
    /// `dropped.json` what they held: after a crash the record covers at
    /// least every segment that is gone. (Blocking I/O: the syncer's, or
    /// open's.)
    fn remove_retired(&self) {
        let _removing = self.removing.lock().expect("removing lock");
        let paths = std::mem::take(&mut *self.retired.lock().expect("retired lock"));
        if paths.is_empty() {
            return;
        }
        let recorded = self.dropped.lock().expect("dropped lock").clone();
        if let Err(e) = recorded.save(&self.dir) {
            // A restart then counts everything dropped as lost for every
            // channel: more resets, never a silent gap.
            tracing::warn!("cannot record what retention drops: {e}");
        }
        for path in paths {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::debug!(segment = %path.display(), "dropped by --retention-bytes")
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Out of service already; a restart finds it covered by
                // the record, and drops it again.
                Err(e) => {
                    tracing::warn!(segment = %path.display(), "cannot drop old segment: {e}")
                }
            }
        }
    }
}

impl Segment {
    fn len(&self) -> u64 {
        self.index.lock().expect("index lock").valid_len
    }
}

/// The write-ahead log. Appends are serialised; reads run beside them on
/// their own file handles. Dropping it stops the syncer after a last
/// fsync.
pub struct Wal {
    shared: Arc<Shared>,
    epoch: u32,
    recovery: Recovery,
    /// The followers' checkpoints, in the same (locked) directory.
    checkpoints: Checkpoints,
    /// std mutex: taken only to join the syncer on close.
    syncer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.shared.dir)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Name of the lock file in the data directory.
const LOCK_FILE: &str = "LOCK";
/// Folder of the segments in the data directory.
const LOG_DIR: &str = "log";

impl Wal {
    /// Opens (or creates) the log in `data_dir`, checks every segment,
    /// cuts a torn tail, applies retention and starts the syncer.
    ///
    /// # Errors
    /// The directory cannot be created or read, another process holds it,
    /// or the newest segment cannot be repaired.
    pub fn open(data_dir: &Path, opts: WalOptions) -> Result<Wal, WalError> {
        let dir = data_dir.join(LOG_DIR);
        files::create_dir(&dir).map_err(io_error(format!("creating {}", dir.display())))?;
        let lock_path = data_dir.join(LOCK_FILE);
        let lock = files::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(format!("opening {}", lock_path.display())))?;
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(WalError::Locked(data_dir.to_path_buf()));
        }
        let names: Mutex<HashSet<Arc<str>>> = Mutex::new(HashSet::new());
        let intern = |name: &str| -> Arc<str> {
            let mut names = names.lock().expect("names lock");
            if let Some(n) = names.get(name) {
                return n.clone();
            }
            let n: Arc<str> = name.into();
            names.insert(n.clone());
            n
        };
        let checkpoints = Checkpoints::load(data_dir)?;
        let mut recovery = Recovery::default();
        let (mut segments, newest_lost) = load_segments(&dir, intern, &mut recovery)?;
        let last_seq = last_seq_of(&segments);
        // Where the next record goes: the newest segment, unless there is
        // none, or records at the end of the log were lost: then a new epoch
        // begins in a new segment, so that no id is ever given twice.
        let epoch = match segments.last() {
            Some(last) if newest_lost => new_epoch(Some(last.header.epoch)),
            Some(last) => last.header.epoch,
            None => new_epoch(None),
        };
        if segments.is_empty() || newest_lost {
            let header = Header {
                epoch,
                first_seq: last_seq + 1,
            };
            if let Some(newest) = segments.last() {
                if newest.header.first_seq == header.first_seq {
                    // The cut newest segment holds no record: replace it.
                    std::fs::remove_file(&newest.path)
                        .map_err(io_error(format!("removing {}", newest.path.display())))?;
                    segments.pop();
                }
            }
            let (path, _) = segment::create(&dir, header, true)
                .map_err(io_error(format!("creating a segment in {}", dir.display())))?;
            segments.push(Arc::new(Segment {
                header,
                path,
                index: Mutex::new(SegmentIndex::empty()),
            }));
        }
        let newest = segments.last().expect("a segment").clone();
        let file = files::options()
            .append(true)
            .open(&newest.path)
            .map_err(io_error(format!("opening {}", newest.path.display())))?;
        // What a crashed process left in the page cache is on disk from here.
        file.sync_all()
            .map_err(io_error(format!("syncing {}", newest.path.display())))?;
        recovery.segments = segments.len();
        recovery.records = segments
            .iter()
            .map(|s| s.index.lock().expect("index lock").count)
            .sum();
        recovery.bytes = segments.iter().map(|s| s.len()).sum();
        let dropped = Dropped::load(&dir, segments[0].header.first_seq, |name| {
            let mut names = names.lock().expect("names lock");
            if let Some(n) = names.get(name) {
                return n.clone();
            }
            let n: Arc<str> = name.into();
            names.insert(n.clone());
            n
        });
        let shared = Arc::new(Shared {
            dir,
            opts,
            _lock: lock,
            writer: Mutex::new(Writer {
                file: Arc::new(file),
                segment: newest,
                last_seq,
                poisoned: None,
                buf: Vec::new(),
                unsealed: Vec::new(),
                dir_dirty: false,
            }),
            segments: RwLock::new(segments),
            names,
            dropped: Mutex::new(dropped),
            retired: Mutex::new(Vec::new()),
            removing: Mutex::new(()),
            sync: sync::SyncShared::new(last_seq),
            last_seq: AtomicU64::new(last_seq),
        });
        shared.retire();
        shared.remove_retired();
        let for_thread = shared.clone();
        let policy = opts.fsync;
        let syncer = std::thread::Builder::new()
            .name("tailcast-wal-sync".into())
            .spawn(move || sync::run(for_thread, policy))
            .map_err(io_error("starting the log's fsync thread"))?;
        Ok(Wal {
            shared,
            epoch,
            recovery,
            checkpoints,
            syncer: Mutex::new(Some(syncer)),
        })
    }

    /// The epoch of new records: part of every id this log hands out.
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The followers' checkpoints (`DIR/checkpoints.json`).
    pub(crate) fn checkpoints(&self) -> &Checkpoints {
        &self.checkpoints
    }

    /// What opening found and repaired.
    pub(crate) fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The newest sequence number appended (0 if none ever was).
    pub(crate) fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::Acquire)
    }

    /// Appends records, in order, with one write. Sequence numbers must be
    /// strictly increasing and above [`Wal::last_seq`]. When this returns
    /// the records are in the operating system's cache: a crash of the
    /// process no longer loses them, a power loss may until
    /// [`Wal::wait_durable`] says otherwise.
    ///
    /// Returns the last sequence number written.
    ///
    /// # Errors
    /// A record that cannot be encoded or is out of order (nothing is
    /// written), or a failed write (nothing is kept, and if the segment
    /// cannot be restored the log refuses every later append).
    pub(crate) fn append(&self, records: &[NewRecord<'_>]) -> Result<u64, WalError> {
        let shared = &*self.shared;
        let mut guard = shared.writer.lock().expect("writer lock");
        let w = &mut *guard;
        if let Some(why) = &w.poisoned {
            return Err(WalError::Poisoned(why.clone()));
        }
        let mut last = w.last_seq;
        for r in records {
            if r.seq <= last {
                return Err(WalError::OutOfOrder { seq: r.seq, last });
            }
            last = r.seq;
        }
        let Some(first) = records.first() else {
            return Ok(w.last_seq);
        };
        w.buf.clear();
        for r in records {
            if let Err(e) = record::encode(r, &mut w.buf) {
                w.buf.clear();
                return Err(e.into());
            }
        }
        let valid = w.segment.len();
        if valid > segment::HEADER_LEN && valid + w.buf.len() as u64 > shared.opts.segment_bytes {
            shared.roll(w, first.seq)?;
        }
        let valid = w.segment.len();
        if let Err(source) = (&*w.file).write_all(&w.buf) {
            let restored = w.file.set_len(valid);
            let context = format!("appending to {}", w.segment.path.display());
            if let Err(e) = restored {
                let why: Arc<str> = format!("{context}: {source}; cannot cut back: {e}").into();
                tracing::error!("{why}");
                w.poisoned = Some(why);
            }
            return Err(WalError::Io { context, source });
        }
        {
            let mut index = w.segment.index.lock().expect("index lock");
            let mut offset = valid;
            for r in records {
                let len = record::encoded_len(r) as u64;
                let name = match index.channels.get_key_value(r.channel) {
                    Some((name, _)) => name.clone(),
                    None => shared.intern(r.channel),
                };
                index.add(r.seq, offset, len, &name);
                offset += len;
            }
        }
        w.last_seq = last;
        shared.last_seq.store(last, Ordering::Release);
        Ok(last)
    }

    /// Waits until every record up to `seq` is on disk. Under
    /// `--fsync always` the syncer is woken at once and one fsync serves
    /// every waiter that arrived before it began; otherwise the wait lasts
    /// until the next timed sync (at most the interval), or until the
    /// syncer has sealed a roll, whichever comes first.
    ///
    /// # Errors
    /// [`WalError::Poisoned`] if an fsync failed.
    pub(crate) async fn wait_durable(&self, seq: u64) -> Result<(), WalError> {
        let mut rx = self.shared.sync.durable.subscribe();
        if rx.borrow().seq >= seq {
            return Ok(());
        }
        self.shared.sync.request(seq);
        let result = rx
            .wait_for(|d| d.seq >= seq || d.error.is_some())
            .await
            .map(|d| d.clone());
        match result {
            Ok(d) if d.seq >= seq => Ok(()),
            Ok(d) => Err(WalError::Poisoned(d.error.unwrap_or_else(|| "".into()))),
            Err(_) => Err(WalError::Poisoned("the log is closed".into())),
        }
    }

    /// The durable watermark now.
    pub(crate) fn durable(&self) -> Durable {
        self.shared.sync.durable.borrow().clone()
    }

    /// Sizes and sequence numbers, for metrics.
    pub fn info(&self) -> WalInfo {
        let segments = self.shared.snapshot();
        WalInfo {
            segments: segments.len(),
            bytes: segments.iter().map(|s| s.len()).sum(),
            first_seq: segments.first().map_or(1, |s| s.header.first_seq),
            last_seq: self.last_seq(),
            durable_seq: self.durable().seq,
            fsyncs: self.shared.sync.fsyncs.load(Ordering::Relaxed),
        }
    }

    /// Whether an id made of `epoch` and `seq` names a record of this log.
    pub(crate) fn id_status(&self, epoch: u32, seq: u64) -> IdStatus {
        if seq == 0 || seq > self.last_seq() {
            return IdStatus::Unknown;
        }
        let segments = self.shared.snapshot();
        let Some(oldest) = segments.first() else {
            return IdStatus::Unknown;
        };
        if seq < oldest.header.first_seq {
            return if epoch == oldest.header.epoch {
                IdStatus::TooOld
            } else {
                IdStatus::Unknown
            };
        }
        let at = segments.partition_point(|s| s.header.first_seq <= seq) - 1;
        if segments[at].header.epoch == epoch {
            IdStatus::Known
        } else {
            IdStatus::Unknown
        }
    }

    /// The epoch of the record with sequence number `seq` (the epoch of the
    /// segment holding it): with `seq`, the record's id.
    pub(crate) fn epoch_of(&self, seq: u64) -> u32 {
        let segments = self.shared.snapshot();
        let at = segments.partition_point(|s| s.header.first_seq <= seq);
        match at.checked_sub(1) {
            Some(i) => segments[i].header.epoch,
            None => segments.first().map_or(self.epoch, |s| s.header.epoch),
        }
    }

    /// Whether any retained segment holds a record of `channel`.
    pub(crate) fn holds_channel(&self, channel: &str) -> bool {
        self.shared.snapshot().iter().any(|s| {
            s.index
                .lock()
                .expect("index lock")
                .channels
                .contains_key(channel)
        })
    }

    /// Whether retention dropped records of `channel` (or, for a log whose
    /// dropped segments are not accounted for, of any channel).
    pub(crate) fn dropped_any(&self, channel: &str) -> bool {
        self.shared
            .dropped
            .lock()
            .expect("dropped lock")
            .through_of(channel)
            > 0
    }

    /// The `--fsync` policy the log was opened with.
    pub(crate) fn fsync_policy(&self) -> FsyncPolicy {
        self.shared.opts.fsync
    }

    /// Records of `channel` with a sequence number up to the returned value
    /// are no longer served: dropped by `--retention-bytes`, or hidden by
    /// `--history` (`keep` newest records per channel). 0: nothing hidden.
    ///
    /// # Errors
    /// Reading a segment failed.
    pub(crate) fn hidden_through(&self, channel: &str, keep: usize) -> Result<u64, WalError> {
        let dropped = self
            .shared
            .dropped
            .lock()
            .expect("dropped lock")
            .through_of(channel);
        Ok(self
            .nth_newest(channel, (keep as u64).saturating_add(1))?
            .unwrap_or(0)
            .max(dropped))
    }

    /// Stops the syncer after a last fsync, so everything appended is on
    /// disk when this returns. Appends after this are still written, and
    /// made durable only by the operating system.
    pub(crate) fn close(&self) {
        self.shared.sync.stop();
        let handle = self.syncer.lock().expect("syncer lock").take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

/// A random epoch, different from `not` (and from 0).
fn new_epoch(not: Option<u32>) -> u32 {
    loop {
        let e = rand::random::<u32>();
        if e != 0 && Some(e) != not {
            return e;
        }
    }
}

/// Lists, scans and checks the segments of `dir`, oldest first. Returns
/// them, and whether records at the very end of the log were lost (the
/// newest segment was cut, or set aside). Damaged
/// older segments are kept up to the damage; a damaged newest segment is
/// truncated there; a segment without a valid header, or whose header
/// disagrees with its name or the log, is renamed `*.damaged` and left
/// out. Leftover temporary files of a segment creation are removed.
fn load_segments(
    dir: &Path,
    mut intern: impl FnMut(&str) -> Arc<str>,
    recovery: &mut Recovery,
) -> Result<(Vec<Arc<Segment>>, bool), WalError> {
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(io_error(format!("reading {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_error(format!("reading {}", dir.display())))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first) = segment::parse_file_name(name) {
            found.push((first, entry.path()));
        } else if name.ends_with(".tmp")
            && segment::parse_file_name(&name[..name.len() - 4]).is_some()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    found.sort();
    let mut out: Vec<Arc<Segment>> = Vec::new();
    let mut newest_lost = false;
    let count = found.len();
    for (i, (first, path)) in found.iter().enumerate() {
        let next_first = found.get(i + 1).map(|(f, _)| *f);
        let newest = i + 1 == count;
        let set_aside = |why: &str| {
            let aside = path.with_extension("damaged");
            tracing::warn!(segment = %path.display(), "{why}; moved aside to {}", aside.display());
            std::fs::rename(path, &aside).map_err(io_error(format!("renaming {}", path.display())))
        };
        let scan = match segment::scan(path, &mut intern, next_first) {
            Ok(scan) => scan,
            Err(segment::ScanError::BadHeader) => {
                set_aside("segment without a valid header")?;
                newest_lost |= newest;
                continue;
            }
            Err(segment::ScanError::Io(e)) => {
                return Err(WalError::Io {
                    context: format!("reading {}", path.display()),
                    source: e,
                })
            }
        };
        if scan.header.first_seq != *first {
            set_aside("segment header does not match its name")?;
            newest_lost |= newest;
            continue;
        }
        if let Some((offset, damage)) = scan.damage {
            newest_lost |= newest;
            let dropped_bytes = scan.file_len - offset;
            if newest {
                tracing::warn!(
                    segment = %path.display(),
                    offset,
                    dropped_bytes,
                    "event log: {damage} at the end of the log (a write cut short by a crash); \
                     dropping the torn tail and going on"
                );
                let file = files::options()
                    .write(true)
                    .open(path)
                    .map_err(io_error(format!("opening {}", path.display())))?;
                file.set_len(offset)
                    .and_then(|()| file.sync_all())
                    .map_err(io_error(format!("truncating {}", path.display())))?;
            } else {
                tracing::warn!(
                    segment = %path.display(),
                    offset,
                    ignored_bytes = dropped_bytes,
                    "event log: {damage} inside an older segment; its records from there on are skipped"
                );
            }
            recovery.repairs.push(Repair {
                segment: path.clone(),
                offset,
                dropped_bytes,
                why: damage.to_string(),
            });
        }
        out.push(Arc::new(Segment {
            header: scan.header,
            path: path.clone(),
            index: Mutex::new(scan.index),
        }));
    }
    Ok((out, newest_lost))
}

/// The highest sequence number the segments hold or announce: the newest
/// record, or one before the newest segment's first if it is still empty
/// (a roll whose first append failed).
fn last_seq_of(segments: &[Arc<Segment>]) -> u64 {
    let newest_record = segments
        .iter()
        .rev()
        .find_map(|s| {
            let index = s.index.lock().expect("index lock");
            (index.count > 0).then_some(index.last_seq)
        })
        .unwrap_or(0);
    let announced = segments
        .last()
        .map_or(0, |s| s.header.first_seq.saturating_sub(1));
    newest_record.max(announced)
}

#[cfg(test)]
mod tests;
