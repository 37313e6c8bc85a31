//! Log streams: naming followed files, running their followers, and
//! publishing their lines into the hub as channel `log:NAME`.
//!
//! This is the glue between [`crate::follow`] (which knows files, not the
//! hub) and [`crate::hub`] (which knows channels, not files).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::FileSpec;
use crate::follow::{self, FollowOptions, FollowState, LineSink};
use crate::hub::{Hub, LogPublisher, LOG_PREFIX};
use crate::metrics::Metrics;

/// One followed file (or stdin).
pub struct LogStream {
    /// Stream name, without the `log:` prefix.
    pub name: String,
    /// Hub channel carrying its lines (`log:NAME`).
    pub channel: String,
    /// The followed path (`-` for stdin).
    pub path: String,
    /// What the follower is doing now (std mutex: never held across await).
    state: Mutex<FollowState>,
}

impl LogStream {
    /// The follower's current state.
    pub fn state(&self) -> FollowState {
        self.state.lock().expect("state lock").clone()
    }
}

/// The server's log streams, in the order they were added. Cheap to clone.
#[derive(Clone)]
pub struct LogStreams {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    metrics: Arc<Metrics>,
    opts: FollowOptions,
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

impl LineSink for HubSink {
    fn line(&self, line: String) {
        self.metrics.lines_read.inc();
        match self.publisher.publish(&line) {
            Ok(_) => {
                self.metrics.events_published.inc();
            }
            Err(e) => tracing::warn!(stream = %self.stream.name, "dropping line: {e}"),
        }
    }

    fn state(&self, state: FollowState) {
        match &state {
            FollowState::Waiting => tracing::info!(path = %self.stream.path, "waiting for file"),
            FollowState::Following => tracing::info!(path = %self.stream.path, "following"),
            FollowState::Error(why) => {
                tracing::warn!(path = %self.stream.path, "cannot follow: {why}")
            }
        }
        let text = match &state {
            FollowState::Waiting => "waiting".to_string(),
            FollowState::Following => "following".to_string(),
            FollowState::Error(why) => format!("error: {why}"),
        };
        self.hub.set_log_state(&self.stream.channel, &text);
        *self.stream.state.lock().expect("state lock") = state;
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

impl LogStreams {
    /// An empty set of streams; followers run until `shutdown`, tracked by
    /// `tracker`.
    pub fn new(
        hub: Hub,
        metrics: Arc<Metrics>,
        opts: FollowOptions,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        LogStreams {
            inner: Arc::new(Inner {
                hub,
                metrics,
                opts,
                shutdown,
                tracker,
                streams: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Starts following every spec: paths, globs (new matches are added as
    /// they appear) and `-` for stdin.
    pub fn start(&self, specs: &[FileSpec]) {
        for spec in specs {
            if spec.path == "-" {
                let stream = self.add(spec.name.as_deref().unwrap_or("stdin"), "-");
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
                    let name = match &base {
                        Some(prefix) => format!("{prefix}-{}", file_name(&path)),
                        None => file_name(&path),
                    };
                    this.follow(&name, &path);
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
    pub fn follow(&self, name: &str, path: &Path) -> Arc<LogStream> {
        let stream = self.add(name, &path.display().to_string());
        let sink = self.sink(&stream);
        let (opts, shutdown) = (self.inner.opts.clone(), self.inner.shutdown.clone());
        self.inner.tracker.spawn(follow::follow_file(
            path.to_path_buf(),
            opts,
            sink,
            shutdown,
        ));
        stream
    }

    fn sink(&self, stream: &Arc<LogStream>) -> Arc<dyn LineSink> {
        Arc::new(HubSink {
            hub: self.inner.hub.clone(),
            publisher: self.inner.hub.log_publisher(&stream.channel, &stream.path),
            metrics: self.inner.metrics.clone(),
            stream: stream.clone(),
        })
    }

    /// Registers a stream under a unique name (`-2`, `-3` on clashes).
    fn add(&self, wanted: &str, path: &str) -> Arc<LogStream> {
        let base = sanitize(wanted);
        let mut streams = self.inner.streams.lock().expect("streams lock");
        let taken = |n: &str| streams.iter().any(|s| s.name == n);
        let mut name = base.clone();
        let mut suffix = 2;
        while taken(&name) {
            name = format!("{base}-{suffix}");
            suffix += 1;
        }
        let channel = format!("{LOG_PREFIX}{name}");
        if let Err(e) = self.inner.hub.ensure_channel(&channel) {
            tracing::warn!("log stream {name}: {e}");
        }
        let stream = Arc::new(LogStream {
            name,
            channel,
            path: path.to_string(),
            state: Mutex::new(FollowState::Waiting),
        });
        streams.push(stream.clone());
        stream
    }

    /// All streams, in the order added.
    pub fn list(&self) -> Vec<Arc<LogStream>> {
        self.inner.streams.lock().expect("streams lock").clone()
    }

    /// The stream called `name` (without `log:`).
    pub fn get(&self, name: &str) -> Option<Arc<LogStream>> {
        self.list().into_iter().find(|s| s.name == name)
    }

    /// The first stream added (what `/stream-logs` serves).
    pub fn first(&self) -> Option<Arc<LogStream>> {
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
            crate::hub::validate_channel_name(&format!("log:{}", sanitize(&"é".repeat(300))))
                .is_ok()
        );
    }

    #[tokio::test]
    async fn clashing_names_get_suffixes() {
        let streams = LogStreams::new(
            Hub::memory(10, 100),
            Arc::new(Metrics::new()),
            FollowOptions::default(),
            CancellationToken::new(),
            TaskTracker::new(),
        );
        let names: Vec<String> = ["a.log", "a.log", "a.log"]
            .iter()
            .map(|n| streams.add(n, "/x").name.clone())
            .collect();
        assert_eq!(names, ["a.log", "a.log-2", "a.log-3"]);
    }
}
