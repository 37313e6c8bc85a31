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
pub struct Durable {
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
}

#[derive(Default)]
struct SyncState {
    /// Highest sequence number somebody waits to see durable.
    requested: u64,
    /// Set by [`SyncShared::stop`]: sync once more and end.
    stop: bool,
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
        }
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
        let stop = {
            let mut state = sync.state.lock().expect("sync lock");
            loop {
                let durable = sync.durable.borrow().seq;
                if state.stop || state.requested > durable {
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
            state.stop
        };
        last_sync = Instant::now();
        sync_once(&shared);
        if stop {
            return;
        }
    }
}

/// Fsyncs what has been written so far and publishes the new watermark.
pub(crate) fn sync_once(shared: &Shared) {
    let durable = shared.sync.durable.borrow().clone();
    if durable.error.is_some() {
        return;
    }
    let Some((file, written)) = shared.written() else {
        return;
    };
    if written <= durable.seq {
        return;
    }
    match file.sync_data() {
        Ok(()) => {
            shared.sync.fsyncs.fetch_add(1, Ordering::Relaxed);
            shared
                .sync
                .durable
                .send_modify(|d| d.seq = d.seq.max(written));
        }
        Err(err) => {
            let why: Arc<str> = format!("fsync of the event log failed: {err}").into();
            tracing::error!("{why}; refusing further events until restart");
            shared.poison(&why);
            shared.sync.durable.send_modify(|d| d.error = Some(why));
        }
    }
}
