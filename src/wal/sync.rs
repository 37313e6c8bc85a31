//! The syncer: one thread that makes appended records durable, by group
//! commit under `--fsync always` and on a timer under `--fsync 1s`.
//!
//! Group commit: a publisher that must wait for the disk registers the
//! sequence number it needs and waits on [`Durable`]. The thread takes the
//! newest written sequence number at the moment it starts an `fdatasync`,
//! so one call answers every publish that was written before it began, and
//! everything written while it runs is answered by the next one. A burst of
//! N concurrent publishes therefore costs about two fsyncs, not N.
//!
//! Rolls: an append that starts a new segment does no fsync (it runs under
//! the hub's commit lock). It hands the old segment to this thread and
//! wakes it; a sync seals the rolled segments (oldest first), then syncs
//! the directory (the new segments' names), then the newest segment, and
//! only then moves the watermark, so `durable` never passes a record that
//! is not on disk. The files of the segments retention took out of service
//! at the roll are recorded in `dropped.json` and deleted here after such a
//! sync too (more fsyncs).
//!
//! A failed fsync poisons the log: the kernel may have dropped the dirty
//! pages, so nothing after it can be promised. Waiters get the error and
//! appends are refused until a restart (which re-reads and checks the log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{FsyncPolicy, Shared};

/// How far the log is known to be on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Durable {
    /// Every record up to this sequence number has been fsynced.
    pub seq: u64,
    /// Set once an fsync failed; nothing more becomes durable.
    pub error: Option<Arc<str>>,
}

/// State shared by the syncer thread and the waiters.
pub(crate) struct SyncShared {
    /// std mutex: held only to read or bump these fields.
    state: Mutex<SyncState>,
    /// Wakes the thread on a request or on stop.
    wake: Condvar,
    /// The durable watermark, for async and blocking waiters.
    pub(crate) durable: watch::Sender<Durable>,
    /// Fsyncs of the newest segment done so far (seals included).
    pub(crate) fsyncs: AtomicU64,
    /// Held by a sync from taking the work to publishing the watermark, so
    /// two syncs (the thread's and a test's or `close`'s) never overlap.
    pub(crate) syncing: Mutex<()>,
}

#[derive(Default)]
struct SyncState {
    /// Highest sequence number somebody waits to see durable.
    requested: u64,
    /// Set by [`SyncShared::stop`]: sync once more and end.
    stop: bool,
    /// Set by [`SyncShared::rolled`]: seal, sync and delete retired segments.
    rolled: bool,
}

impl SyncShared {
    pub(crate) fn new(durable_seq: u64) -> Self {
        SyncShared {
            state: Mutex::new(SyncState::default()),
            wake: Condvar::new(),
            durable: watch::Sender::new(Durable {
                seq: durable_seq,
                error: None,
            }),
            fsyncs: AtomicU64::new(0),
            syncing: Mutex::new(()),
        }
    }

    /// Says a segment was rolled away from: seal it and delete what
    /// retention retired, now.
    pub(crate) fn rolled(&self) {
        self.state.lock().expect("sync lock").rolled = true;
        self.wake.notify_one();
    }

    /// Asks for everything up to `seq` to be made durable.
    pub(crate) fn request(&self, seq: u64) {
        let mut state = self.state.lock().expect("sync lock");
        if seq > state.requested {
            state.requested = seq;
            self.wake.notify_one();
        }
    }

    /// Ends the thread after one last sync.
    pub(crate) fn stop(&self) {
        self.state.lock().expect("sync lock").stop = true;
        self.wake.notify_one();
    }
}

/// With `--fsync always`, records nobody waits for (log lines) are still
/// synced at least this often.
const ALWAYS_BACKSTOP: Duration = Duration::from_secs(1);

/// The syncer thread's loop; returns after [`SyncShared::stop`]. It syncs
/// as soon as somebody waits for a record not yet durable, and otherwise on
/// the timer (`--fsync 1s`, or a one-second backstop under `always`).
pub(crate) fn run(shared: Arc<Shared>, policy: FsyncPolicy) {
    let sync = &shared.sync;
    let interval = match policy {
        FsyncPolicy::Always => ALWAYS_BACKSTOP,
        FsyncPolicy::Every(interval) => interval,
    };
    let mut last_sync = Instant::now();
    loop {
        let (stop, rolled) = {
            let mut state = sync.state.lock().expect("sync lock");
            loop {
                let durable = sync.durable.borrow().seq;
                if state.stop || state.rolled || state.requested > durable {
                    break;
                }
                let due = last_sync + interval;
                let now = Instant::now();
                if now >= due {
                    break;
                }
                state = sync
                    .wake
                    .wait_timeout(state, due - now)
                    .expect("sync lock")
                    .0;
            }
            (state.stop, std::mem::take(&mut state.rolled))
        };
        last_sync = Instant::now();
        sync_once(&shared);
        if rolled || stop {
            shared.remove_retired();
        }
        if stop {
            return;
        }
    }
}

/// Fsyncs what has been written so far (rolled segments first, then the
/// directory, then the newest segment) and publishes the new watermark.
pub(crate) fn sync_once(shared: &Shared) {
    let _syncing = shared.sync.syncing.lock().expect("syncing lock");
    let durable = shared.sync.durable.borrow().clone();
    if durable.error.is_some() {
        return;
    }
    let Some(work) = shared.take_unsynced() else {
        return;
    };
    if work.written <= durable.seq && work.unsealed.is_empty() && !work.dir_dirty {
        return;
    }
    let mut done = 0;
    let mut result = Ok(());
    for file in &work.unsealed {
        result = file.sync_data().map_err(|e| ("sealing a segment", e));
        if result.is_err() {
            break;
        }
        done += 1;
    }
    if result.is_ok() && work.dir_dirty {
        result = super::segment::sync_dir(&shared.dir).map_err(|e| ("syncing its directory", e));
    }
    if result.is_ok() {
        result = work.file.sync_data().map_err(|e| ("", e));
        done += u64::from(result.is_ok());
    }
    shared.sync.fsyncs.fetch_add(done, Ordering::Relaxed);
    match result {
        Ok(()) => {
            shared
                .sync
                .durable
                .send_modify(|d| d.seq = d.seq.max(work.written));
        }
        Err((what, err)) => {
            let what = if what.is_empty() {
                String::new()
            } else {
                format!(" while {what}")
            };
            let why: Arc<str> = format!("fsync of the event log failed{what}: {err}").into();
            tracing::error!("{why}; refusing further events until restart");
            shared.poison(&why);
            shared.sync.durable.send_modify(|d| d.error = Some(why));
        }
    }
}
