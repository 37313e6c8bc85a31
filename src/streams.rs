//! Log streams: naming followed files, running their followers, and
//! publishing their lines into the hub as channel `log:NAME`.
//!
//! This is the glue between [`crate::follow`] (which knows files, not the
//! hub) and [`crate::hub`] (which knows channels, not files).
//!
//! Streams found by a glob come and go with their files: one whose file has
//! been gone for `--forget-after` and that nobody subscribes to is removed,
//! with its follower task (and so its watcher) and its hub channel. If the
//! file comes back later, the glob finds it again as a new stream.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::FileSpec;
use crate::follow::{self, FilePosition, FollowOptions, FollowState, LineSink};
use crate::hub::{ChannelName, Hub, LogPublisher, LOG_PREFIX};
use crate::metrics::Metrics;
use crate::wal::FileCheckpoint;

/// How often changed follower checkpoints are saved (with `--data-dir`);
/// they are saved once more at shutdown. Between saves, the positions
/// stored with each line in the event log are the newer truth.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// One followed file (or stdin).
pub(crate) struct LogStream {
    /// Stream name, without the `log:` prefix.
    pub name: String,
    /// Hub channel carrying its lines (`log:NAME`).
    pub channel: ChannelName,
    /// The followed path (`-` for stdin).
    pub path: String,
    /// Found by a glob, so forgotten once its file is gone for good.
    pub matched_by_glob: bool,
    /// What the follower is doing (std mutex: never held across await).
    status: Mutex<Status>,
    /// Stops this stream's follower (a child of the server's shutdown).
    stop: CancellationToken,
}

/// A stream's follower state and how long its file has been gone.
struct Status {
    follow: FollowState,
    /// Since when the follower has been waiting for its file.
    gone_since: Option<Instant>,
    /// Removed from the server: lines still arriving are dropped, so its
    /// channel is not created again.
    forgotten: bool,
}

impl LogStream {
    /// The follower's current state.
    pub(crate) fn state(&self) -> FollowState {
        self.status.lock().expect("state lock").follow.clone()
    }

    /// Whether it is a glob match whose file has been gone since before
    /// `cutoff`.
    fn gone_before(&self, cutoff: Instant) -> bool {
        self.matched_by_glob
            && self
                .status
                .lock()
                .expect("state lock")
                .gone_since
                .is_some_and(|since| since <= cutoff)
    }
}

/// The server's log streams, in the order they were added. Cheap to clone.
#[derive(Clone)]
pub(crate) struct LogStreams {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    metrics: Arc<Metrics>,
    opts: FollowOptions,
    /// How long a glob match's file may be gone before it is forgotten.
    forget_after: Duration,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Streams in the order added (std mutex: never held across await).
    streams: Mutex<Vec<Arc<LogStream>>>,
}

/// Publishes a follower's lines to the hub.
struct HubSink {
    hub: Hub,
    publisher: LogPublisher,
    metrics: Arc<Metrics>,
    stream: Arc<LogStream>,
}

impl HubSink {
    /// Publishes a line; with a write-ahead log, its file position goes into
    /// the log with it and into the stream's checkpoint.
    fn forward_line(&self, line: &str, position: Option<FilePosition>) {
        self.metrics.lines_read.inc();
        // Held across the publish, so a stream being forgotten either gets
        // this line before its channel goes, or drops it.
        let status = self.stream.status.lock().expect("state lock");
        if status.forgotten {
            return;
        }
        match self.publisher.send_line(line, position) {
            Ok(_) => {
                self.metrics.events_published.inc();
                if let (Some(wal), Some(position)) = (self.hub.wal(), position) {
                    wal.checkpoints().set(
                        &self.stream.name,
                        FileCheckpoint {
                            path: self.stream.path.clone(),
                            position,
                        },
                    );
                }
            }
            Err(e) => tracing::warn!(stream = %self.stream.name, "dropping line: {e}"),
        }
    }
}

impl LineSink for HubSink {
    fn line(&self, line: String) {
        self.forward_line(&line, None);
    }

    fn line_at(&self, line: String, position: FilePosition) {
        self.forward_line(&line, Some(position));
    }

    fn state(&self, state: FollowState) {
        match &state {
            FollowState::Waiting => tracing::info!(path = %self.stream.path, "waiting for file"),
            FollowState::Following => tracing::info!(path = %self.stream.path, "following"),
            FollowState::Error(why) => {
                tracing::warn!(path = %self.stream.path, "cannot follow: {why}")
            }
        }
        if let Some(scale_out) = self.hub.scale_out() {
            let text = match &state {
                FollowState::Waiting => "waiting".to_string(),
                FollowState::Following => "following".to_string(),
                FollowState::Error(why) => format!("error: {why}"),
            };
            scale_out.set_log_state(&self.stream.channel, &text);
        }
        let mut status = self.stream.status.lock().expect("state lock");
        if state == FollowState::Waiting {
            status.gone_since.get_or_insert_with(Instant::now);
        } else {
            status.gone_since = None;
        }
        status.follow = state;
    }

    fn rotated(&self) {
        self.metrics.rotations.inc();
        tracing::info!(path = %self.stream.path, "file rotated or truncated");
    }
}

/// Turns a file name into a valid stream name: characters a channel name
/// may not hold become `_`.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(crate::hub::MAX_CHANNEL_NAME - LOG_PREFIX.len() - 4)
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out.insert(0, 'f');
    }
    out
}

/// Longest stream name: a channel name without the `log:` prefix.
const MAX_STREAM_NAME: usize = crate::hub::MAX_CHANNEL_NAME - LOG_PREFIX.len();

/// `base-N`, with `base` (a [`sanitize`]d name, so ASCII and starting with
/// a letter or digit) cut short enough for the whole to be a valid stream
/// name.
fn with_suffix(base: &str, suffix: u64) -> String {
    let tail = format!("-{suffix}");
    let room = MAX_STREAM_NAME.saturating_sub(tail.len());
    let kept: String = base.chars().take(room).collect();
    format!("{kept}{tail}")
}

impl LogStreams {
    /// An empty set of streams; followers run until `shutdown`, tracked by
    /// `tracker`. Glob matches whose file has been gone for `forget_after`
    /// are forgotten (see the module docs).
    pub(crate) fn new(
        hub: Hub,
        metrics: Arc<Metrics>,
        opts: FollowOptions,
        forget_after: Duration,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        if let Some(log) = hub.wal().cloned() {
            let token = shutdown.clone();
            tracker.spawn(async move {
                let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
                loop {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    if log.checkpoints().is_dirty() {
                        let log = log.clone();
                        let saved =
                            tokio::task::spawn_blocking(move || log.checkpoints().save()).await;
                        if let Ok(Err(e)) = saved {
                            tracing::warn!("cannot save follower checkpoints: {e}");
                        }
                    }
                }
            });
        }
        LogStreams {
            inner: Arc::new(Inner {
                hub,
                metrics,
                opts,
                forget_after,
                shutdown,
                tracker,
                streams: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Starts following every spec: paths, globs (new matches are added as
    /// they appear, gone ones forgotten) and `-` for stdin.
    pub(crate) fn start(&self, specs: &[FileSpec]) {
        if specs.iter().any(|spec| follow::is_glob(&spec.path)) {
            self.inner
                .tracker
                .spawn(self.clone().forget_gone_until_shutdown());
        }
        for spec in specs {
            if spec.path == "-" {
                let stream = self.add(spec.name.as_deref().unwrap_or("stdin"), "-", false);
                let sink = self.sink(&stream);
                let (opts, shutdown) = (self.inner.opts.clone(), self.inner.shutdown.clone());
                self.inner.tracker.spawn(follow::follow_reader(
                    tokio::io::stdin(),
                    opts,
                    sink,
                    shutdown,
                ));
            } else if follow::is_glob(&spec.path) {
                let this = self.clone();
                let base = spec.name.clone();
                let on_match = move |path: PathBuf| {
                    let shown = path.display().to_string();
                    if this.list().iter().any(|s| s.path == shown) {
                        // Still followed: it only went away for a while.
                        return;
                    }
                    let name = match &base {
                        Some(prefix) => format!("{prefix}-{}", file_name(&path)),
                        None => file_name(&path),
                    };
                    this.spawn_follower(&name, &path, true);
                };
                let (opts, shutdown) = (self.inner.opts.clone(), self.inner.shutdown.clone());
                self.inner.tracker.spawn(follow::watch_glob(
                    spec.path.clone(),
                    opts,
                    on_match,
                    shutdown,
                ));
            } else {
                let path = PathBuf::from(&spec.path);
                let name = spec.name.clone().unwrap_or_else(|| file_name(&path));
                self.follow(&name, &path);
            }
        }
    }

    /// Adds a stream for `path` and spawns its follower.
    pub(crate) fn follow(&self, name: &str, path: &Path) -> Arc<LogStream> {
        self.spawn_follower(name, path, false)
    }

    fn spawn_follower(&self, name: &str, path: &Path, matched_by_glob: bool) -> Arc<LogStream> {
        let stream = self.add(name, &path.display().to_string(), matched_by_glob);
        let sink = self.sink(&stream);
        // With a write-ahead log, go on from where the previous run stopped.
        let resume = self.resume_position(&stream);
        // A path named explicitly may be a link (to a regular file); a glob
        // match only with --follow-symlinks.
        let mut opts = self.inner.opts.clone();
        opts.follow_symlinks |= !matched_by_glob;
        self.inner.tracker.spawn(follow::follow_file_from(
            path.to_path_buf(),
            resume,
            opts,
            sink,
            stream.stop.clone(),
        ));
        stream
    }

    /// Where a previous run stopped reading `stream`'s file: the position
    /// stored with its newest line in the event log, else its saved
    /// checkpoint; none if the stream followed another path then.
    fn resume_position(&self, stream: &LogStream) -> Option<FilePosition> {
        let log = self.inner.hub.wal()?;
        let saved = log.checkpoints().get(&stream.name);
        if saved.as_ref().is_some_and(|c| c.path != stream.path) {
            return None;
        }
        let newest = match log.last_record_of(stream.channel.as_str()) {
            Ok(record) => record.and_then(|r| r.source),
            Err(e) => {
                tracing::warn!(stream = %stream.name, "cannot read the last position: {e}");
                None
            }
        };
        let position = newest.or(saved.map(|c| c.position))?;
        tracing::info!(stream = %stream.name, offset = position.offset, "resuming from checkpoint");
        Some(position)
    }

    /// Forgets the glob matches whose file has been gone since before
    /// `now - forget_after` and that have no subscribers: their follower
    /// stops and their channel leaves the hub. Returns their names.
    pub(crate) fn forget_gone(&self, now: Instant) -> Vec<String> {
        let Some(cutoff) = now.checked_sub(self.inner.forget_after) else {
            return Vec::new();
        };
        let gone: Vec<Arc<LogStream>> = self
            .list()
            .into_iter()
            .filter(|s| s.gone_before(cutoff))
            .collect();
        let mut forgotten = Vec::new();
        for stream in gone {
            {
                let mut status = stream.status.lock().expect("state lock");
                if status.forgotten || !self.inner.hub.remove_unsubscribed(&stream.channel) {
                    continue;
                }
                status.forgotten = true;
            }
            stream.stop.cancel();
            self.inner
                .streams
                .lock()
                .expect("streams lock")
                .retain(|s| !Arc::ptr_eq(s, &stream));
            tracing::info!(path = %stream.path, stream = %stream.name, "file gone: log stream removed");
            forgotten.push(stream.name.clone());
        }
        forgotten
    }

    /// Runs [`LogStreams::forget_gone`] every quarter of `forget_after`
    /// (between 50 ms and a minute) until shutdown.
    async fn forget_gone_until_shutdown(self) {
        let period =
            (self.inner.forget_after / 4).clamp(Duration::from_millis(50), Duration::from_secs(60));
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = interval.tick() => {
                    self.forget_gone(Instant::now());
                }
            }
        }
    }

    fn sink(&self, stream: &Arc<LogStream>) -> Arc<dyn LineSink> {
        Arc::new(HubSink {
            hub: self.inner.hub.clone(),
            publisher: self.inner.hub.log_publisher(&stream.channel, &stream.path),
            metrics: self.inner.metrics.clone(),
            stream: stream.clone(),
        })
    }

    /// Registers a stream under a unique name (`-2`, `-3` on clashes; a
    /// long name is shortened to make room for the suffix, so any number
    /// of clashes gets a name).
    fn add(&self, wanted: &str, path: &str, matched_by_glob: bool) -> Arc<LogStream> {
        let base = sanitize(wanted);
        let mut streams = self.inner.streams.lock().expect("streams lock");
        let taken = |n: &str| streams.iter().any(|s| s.name == n);
        let mut name = base.clone();
        let mut suffix: u64 = 2;
        // Ends: every suffix gives another valid name (see `with_suffix`).
        let channel = loop {
            if !taken(&name) {
                if let Ok(channel) = ChannelName::log(&name) {
                    break channel;
                }
            }
            name = with_suffix(&base, suffix);
            suffix += 1;
        };
        if let Err(e) = self.inner.hub.ensure_channel(&channel) {
            tracing::warn!("log stream {name}: {e}");
        }
        let stream = Arc::new(LogStream {
            name,
            channel,
            path: path.to_string(),
            matched_by_glob,
            status: Mutex::new(Status {
                follow: FollowState::Waiting,
                gone_since: None,
                forgotten: false,
            }),
            stop: self.inner.shutdown.child_token(),
        });
        streams.push(stream.clone());
        stream
    }

    /// All streams, in the order added.
    pub(crate) fn list(&self) -> Vec<Arc<LogStream>> {
        self.inner.streams.lock().expect("streams lock").clone()
    }

    /// The stream called `name` (without `log:`).
    pub(crate) fn get(&self, name: &str) -> Option<Arc<LogStream>> {
        self.list().into_iter().find(|s| s.name == name)
    }

    /// The first stream added (what `/stream-logs` serves).
    pub(crate) fn first(&self) -> Option<Arc<LogStream>> {
        self.list().into_iter().next()
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize("app.log"), "app.log");
        assert_eq!(sanitize("my app (1).log"), "my_app__1_.log");
        assert_eq!(sanitize(".hidden"), "f.hidden");
        assert!(
            crate::hub::ChannelName::parse(&format!("log:{}", sanitize(&"é".repeat(300)))).is_ok()
        );
    }

    #[tokio::test]
    async fn clashing_names_get_suffixes() {
        let streams = LogStreams::new(
            Hub::memory(crate::hub::HubLimits::default()),
            Arc::new(Metrics::new()),
            FollowOptions::default(),
            Duration::from_secs(3600),
            CancellationToken::new(),
            TaskTracker::new(),
        );
        let names: Vec<String> = ["a.log", "a.log", "a.log"]
            .iter()
            .map(|n| streams.add(n, "/x", false).name.clone())
            .collect();
        assert_eq!(names, ["a.log", "a.log-2", "a.log-3"]);
    }

    #[tokio::test]
    async fn many_long_clashing_names_all_get_valid_unique_names() {
        let streams = LogStreams::new(
            Hub::memory(crate::hub::HubLimits {
                max_channels: 10_000,
                ..crate::hub::HubLimits::default()
            }),
            Arc::new(Metrics::new()),
            FollowOptions::default(),
            Duration::from_secs(3600),
            CancellationToken::new(),
            TaskTracker::new(),
        );
        // Each reduces to the same 121 characters ("f" and 120 of the rest).
        let long = format!(".{}", "x".repeat(300));
        let mut names = std::collections::HashSet::new();
        for i in 0..1_200 {
            let stream = streams.add(&format!("{long}{i}"), "/x", true);
            assert!(
                crate::hub::ChannelName::parse(stream.channel.as_str()).is_ok(),
                "{}",
                stream.channel.as_str()
            );
            assert!(names.insert(stream.name.clone()), "{} twice", stream.name);
        }
        assert_eq!(with_suffix("ab", 7), "ab-7");
        assert_eq!(
            with_suffix(&"y".repeat(200), u64::MAX).len(),
            MAX_STREAM_NAME
        );
    }
}
