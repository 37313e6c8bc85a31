//! Following log files like `tail -F`, and stdin.
//!
//! A follower turns the bytes appended to a file (or read from stdin) into
//! lines and hands each one to a [`LineSink`]. It knows nothing of HTTP, SSE
//! or the hub: the server wires a sink that publishes into the hub.
//!
//! (Interface skeleton; the implementation lands with the follower work.)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// What a follower is doing right now, shown in `/api/streams`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowState {
    /// The path does not exist (yet); the follower waits for it.
    Waiting,
    /// The file is open and being read.
    Following,
    /// Reading failed; the follower retries. The text says why.
    Error(String),
}

/// Receives what a follower produces. Called from the follower's task.
pub trait LineSink: Send + Sync + 'static {
    /// One complete line, without its line ending, valid UTF-8
    /// (invalid bytes already replaced by U+FFFD), at most `max_line` bytes.
    fn line(&self, line: String);
    /// The follower's state changed.
    fn state(&self, state: FollowState);
    /// The followed path was rotated (renamed, truncated, or deleted and recreated).
    fn rotated(&self) {}
}

/// Settings shared by all followers.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Longer lines are split into pieces of at most this many bytes.
    pub max_line: usize,
    /// How many of the last lines already in a file to emit when following starts.
    pub initial_lines: usize,
    /// Safety-net poll interval for when file notifications are missed.
    pub poll_interval: Duration,
    /// A last line without newline is emitted after this long without new bytes.
    pub partial_flush: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            max_line: 64 * 1024,
            initial_lines: 10,
            poll_interval: Duration::from_millis(500),
            partial_flush: Duration::from_millis(500),
        }
    }
}

/// Follows `path` until `shutdown` is cancelled.
pub async fn follow_file(
    path: PathBuf,
    opts: FollowOptions,
    sink: Arc<dyn LineSink>,
    shutdown: CancellationToken,
) {
    let _ = (path, opts, sink, shutdown);
}

/// Follows a reader (stdin) until EOF or `shutdown`.
pub async fn follow_reader<R: tokio::io::AsyncRead + Unpin + Send>(
    reader: R,
    opts: FollowOptions,
    sink: Arc<dyn LineSink>,
    shutdown: CancellationToken,
) {
    let _ = (reader, opts, sink, shutdown);
}

/// Whether `pattern` contains glob metacharacters.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Reports every path matching `pattern`, now and as new ones appear.
pub async fn watch_glob(
    pattern: String,
    opts: FollowOptions,
    on_match: impl FnMut(PathBuf) + Send + 'static,
    shutdown: CancellationToken,
) {
    let _ = (pattern, opts, on_match, shutdown);
}
