//! Wake-ups from file notifications (inotify on Linux) for one directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

/// Watches one directory, non-recursively, and wakes a task through a
/// [`Notify`] when something happens to an entry it cares about.
///
/// A [`Notify`] holds at most one pending wake-up, so a burst of events costs
/// one wake-up and no queue grows. The notification thread owned by the
/// watcher never blocks on the task.
///
/// When the watch cannot be installed (no such directory, inotify limits
/// reached), [`DirWatch::refresh`] tries again; until then, and always as a
/// safety net, the caller polls.
pub(crate) struct DirWatch {
    watcher: Option<RecommendedWatcher>,
    dir: PathBuf,
    installed: bool,
    /// Set by the notification thread when the directory itself is removed,
    /// which ends the kernel's watch.
    lost: Arc<AtomicBool>,
}

impl DirWatch {
    /// Starts watching `dir`. `wanted` tells whether an event about a path
    /// inside `dir` concerns the caller. Never fails: problems are logged and
    /// left to polling.
    pub(crate) fn new(
        dir: PathBuf,
        wake: Arc<Notify>,
        wanted: impl Fn(&Path) -> bool + Send + 'static,
    ) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let handler = {
            let dir = dir.clone();
            let lost = lost.clone();
            move |res: notify::Result<notify::Event>| {
                let Ok(event) = res else {
                    wake.notify_one();
                    return;
                };
                if matches!(event.kind, EventKind::Access(_)) {
                    return;
                }
                let about_dir = event.paths.iter().any(|p| p == &dir);
                if about_dir && matches!(event.kind, EventKind::Remove(_)) {
                    lost.store(true, Ordering::Relaxed);
                }
                if about_dir
                    || event.need_rescan()
                    || event.paths.is_empty()
                    || event.paths.iter().any(|p| wanted(p))
                {
                    wake.notify_one();
                }
            }
        };
        let watcher = match RecommendedWatcher::new(handler, notify::Config::default()) {
            Ok(watcher) => Some(watcher),
            Err(err) => {
                tracing::warn!(%err, "file notifications unavailable, polling only");
                None
            }
        };
        let mut watch = DirWatch {
            watcher,
            dir,
            installed: false,
            lost,
        };
        watch.refresh();
        watch
    }

    /// Installs the watch again if it is missing. Cheap when all is well;
    /// call it on every poll.
    pub(crate) fn refresh(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        if self.lost.swap(false, Ordering::Relaxed) {
            let _ = watcher.unwatch(&self.dir);
            self.installed = false;
        }
        if self.installed {
            return;
        }
        match watcher.watch(&self.dir, RecursiveMode::NonRecursive) {
            Ok(()) => self.installed = true,
            Err(err) => {
                tracing::debug!(dir = %self.dir.display(), %err, "cannot watch yet, polling");
            }
        }
    }
}
