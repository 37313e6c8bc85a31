//! Following log files like `tail -F`, and stdin.
//!
//! A follower turns the bytes appended to a file (or read from stdin) into
//! lines and hands each one to a [`LineSink`]. It knows nothing of HTTP, SSE
//! or the hub: the server wires a sink that publishes into the hub.
//!
//! What it does:
//! - [`follow_file`] follows one path through appends, rotation by rename,
//!   truncation in place (copytruncate), deletion and re-creation, waking on
//!   file notifications (inotify through `notify`) with polling as a safety
//!   net.
//! - [`follow_reader`] reads lines from a stream such as stdin.
//! - [`watch_glob`] reports the files a glob names, including new ones.
//! - `LineSplitter` does the framing: LF and CRLF endings, lossy UTF-8,
//!   the `--max-line` cut.
//!
//! What it does not do: follow several files per call (run one
//! [`follow_file`] per file: each has its own task and its own directory
//! watch), name streams, keep history, or encode SSE. NUL and other control
//! characters are passed on untouched; making them safe on the wire is the
//! SSE encoder's job.
//!
//! Known limits, shared with `tail -F`:
//! - Truncation is noticed as "the file is now shorter than what was read".
//!   A file truncated and then refilled past that point before the follower
//!   looks is indistinguishable from an append: the start of the new content
//!   is skipped.
//! - After a rename, bytes the writer adds to the old file once the new file
//!   has been seen and the old one drained are lost; a rotated file is only
//!   read while its successor does not exist yet, and once more at the switch.
//! - A file rotated twice between two looks loses the middle generation.
//! - Each [`follow_file`] and [`watch_glob`] call owns one `notify` watcher,
//!   that is one inotify instance and one thread. Past the kernel's
//!   `fs.inotify.max_user_instances` (often 128) the extra followers log a
//!   warning and poll; a shared watcher would lift this.

mod discover;
mod split;
mod tailer;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use discover::{is_glob, watch_glob};
pub(crate) use split::LineSplitter;

use tailer::{Output, Tailer};
use watch::DirWatch;

/// Shortest poll interval honoured, so that a zero cannot spin a core.
const MIN_POLL: Duration = Duration::from_millis(1);

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

/// The identity of a file's first bytes: the CRC32C of its first `len`
/// bytes (at most 256). With the device and inode it tells the same file
/// from a new one that got a reused inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// How many leading bytes were hashed (0 for an empty file).
    pub len: u32,
    /// Their CRC32C.
    pub crc: u32,
}

impl Fingerprint {
    /// The fingerprint of a file that starts with `first_bytes`.
    pub fn of(first_bytes: &[u8]) -> Fingerprint {
        Fingerprint {
            len: u32::try_from(first_bytes.len()).unwrap_or(u32::MAX),
            crc: crc32c::crc32c(first_bytes),
        }
    }
}

/// Where in which file a line ended: enough to go on from there after a
/// restart, exactly once (`follow_file_from`). With `--data-dir` it is
/// stored with the line's record and in the checkpoints, so the follower's
/// position and the published lines never disagree after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilePosition {
    /// The file's device.
    pub dev: u64,
    /// The file's inode.
    pub ino: u64,
    /// Byte offset just after the line.
    pub offset: u64,
    /// The file's first bytes.
    pub fingerprint: Fingerprint,
}

/// Receives what a follower produces. Called from the follower's task.
pub trait LineSink: Send + Sync + 'static {
    /// One complete line, without its line ending, valid UTF-8 (invalid bytes
    /// already replaced by U+FFFD), made of at most `max_line` bytes of the
    /// input. Replacement characters take 3 bytes each, so a line of binary
    /// data can be up to 3 × `max_line` bytes long; valid text never exceeds
    /// `max_line`.
    fn line(&self, line: String);
    /// A line of a followed file, with where it ended. By default the
    /// position is ignored.
    fn line_at(&self, line: String, position: FilePosition) {
        let _ = position;
        self.line(line);
    }
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
    /// Whether a followed path that is a symbolic link is followed (to a
    /// regular file only). Without it, the path is opened with
    /// `O_NOFOLLOW` and a link is refused. FIFOs, sockets and devices are
    /// refused either way.
    pub follow_symlinks: bool,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            max_line: 64 * 1024,
            initial_lines: 10,
            poll_interval: Duration::from_millis(500),
            partial_flush: Duration::from_millis(500),
            follow_symlinks: false,
        }
    }
}

/// Follows `path` like `tail -F` until `shutdown` is cancelled.
///
/// - If the file exists at start, its last `opts.initial_lines` complete
///   lines are emitted (looked for in its last MiB only), then new lines as
///   they are appended. The initial lines are read like appended bytes, a
///   bounded amount per turn, so a large `initial_lines` never becomes one
///   big batch. A trailing line without newline is not one of them:
///   it is held like any partial line (below). If it does not exist, the state is
///   [`FollowState::Waiting`] and the file is read from its start once it
///   appears. [`FollowState::Following`] is reported once it is open.
/// - Rotation by rename: the old file is read to its end, then the new one
///   from its start. While the path is missing, the renamed file is still
///   read (on the poll interval) and the state is `Waiting`.
/// - Truncation in place: reading restarts at offset 0.
/// - Deletion: the file is read to its end and the path waited for; a file
///   created there later is read from its start.
/// - Each of these calls [`LineSink::rotated`].
/// - A last line without a newline is held until its newline arrives. If no
///   byte arrives for `opts.partial_flush`, it is emitted as a line; a
///   newline arriving right after that ends it without adding an empty line,
///   while more text arriving becomes a new line.
/// - Only regular files are read. A path that is a FIFO, socket or device
///   (or, without `opts.follow_symlinks`, a symbolic link) is refused: it
///   is reported as [`FollowState::Error`] with a text starting `refused:`
///   and looked at again every `opts.poll_interval`. Every open (first,
///   after rotation, on resume) uses `O_NONBLOCK` (and `O_NOFOLLOW` unless
///   links are followed) and checks the type of what it opened, so a
///   path replaced by a link or a FIFO later is never read or waited on.
/// - Errors (permission denied, the path is a directory, I/O errors) are
///   reported as [`FollowState::Error`] and retried every
///   `opts.poll_interval`. Nothing here panics on bad input.
///
/// New bytes are noticed through a non-recursive watch on the parent
/// directory, so they arrive within milliseconds; the path is also checked
/// every `opts.poll_interval` in case a notification is missed or the watch
/// cannot be set up. Reads are done 64 KiB at a time on the blocking thread
/// pool, at most 1 MiB per turn, so a huge append neither stalls the runtime
/// nor allocates without bound.
///
/// The sink is called from this function's task, in file order. On shutdown
/// a held partial line is dropped.
pub async fn follow_file(
    path: PathBuf,
    opts: FollowOptions,
    sink: Arc<dyn LineSink>,
    shutdown: CancellationToken,
) {
    follow_file_from(path, None, opts, sink, shutdown).await;
}

/// [`follow_file`], going on from where a previous run stopped when
/// `resume` is given (the position of the last line it handled), instead
/// of joining at the end:
///
/// - the path still names that file (device, inode and fingerprint of its
///   first bytes): reading goes on at the position (from the start if the
///   file is now shorter, truncated meanwhile), with no initial lines;
/// - it names another file and the old one is found beside it (rotated by
///   rename): the rest of the old one is read first, then the new one from
///   its start;
/// - the old one is gone (replaced, deleted): the path's file is read from
///   its start, or waited for.
///
/// Every line is handed to [`LineSink::line_at`] with its position, so the
/// sink can store it with the line and hand it back here after a restart.
pub(crate) async fn follow_file_from(
    path: PathBuf,
    resume: Option<FilePosition>,
    opts: FollowOptions,
    sink: Arc<dyn LineSink>,
    shutdown: CancellationToken,
) {
    let wake = Arc::new(Notify::new());
    let name = path.file_name().map(ToOwned::to_owned);
    let mut watch = DirWatch::new(parent_dir(&path), wake.clone(), move |p| {
        name.is_some() && p.file_name() == name.as_deref()
    });
    let poll_interval = opts.poll_interval.max(MIN_POLL);
    let mut tailer =
        Tailer::new(path, opts.max_line, opts.initial_lines).follow_links(opts.follow_symlinks);
    if let Some(position) = resume {
        tailer = tailer.resume_from(position);
    }
    let mut last_read = Instant::now();
    let mut flush_due = false;
    loop {
        let job = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let progress = tailer.step(&mut out);
            if flush_due && !progress.read {
                tailer.flush_partial(&mut out);
            }
            (tailer, out, progress)
        });
        let (returned, out, progress) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            joined = job => match joined {
                Ok(result) => result,
                Err(err) => {
                    tracing::error!(%err, "file follower failed");
                    sink.state(FollowState::Error(format!("follower failed: {err}")));
                    return;
                }
            },
        };
        tailer = returned;
        flush_due = false;
        deliver(&*sink, out);
        if progress.read {
            last_read = Instant::now();
        }
        if progress.more {
            tokio::task::yield_now().await;
            continue;
        }
        let flush_at = tailer.has_partial().then(|| last_read + opts.partial_flush);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = sleep_until_some(flush_at) => flush_due = true,
            _ = tokio::time::sleep(poll_interval) => watch.refresh(),
        }
    }
}

/// Reads lines from `reader` (stdin, a pipe, a socket) until its end or until
/// `shutdown` is cancelled.
///
/// Reports [`FollowState::Following`] at start. Lines are framed as in
/// [`follow_file`], including the flush of a partial line after
/// `opts.partial_flush` without new bytes. At the end of the stream a held
/// partial line is emitted and the function returns; a read error is
/// reported as [`FollowState::Error`] and also ends it, since a stream
/// cannot be reopened.
pub async fn follow_reader<R: AsyncRead + Unpin + Send>(
    mut reader: R,
    opts: FollowOptions,
    sink: Arc<dyn LineSink>,
    shutdown: CancellationToken,
) {
    let mut splitter = LineSplitter::new(opts.max_line);
    let mut buf = vec![0; tailer::CHUNK];
    let mut flush_at = None;
    sink.state(FollowState::Following);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            read = reader.read(&mut buf) => match read {
                Ok(0) => {
                    splitter.flush(|line| sink.line(line));
                    return;
                }
                Ok(n) => {
                    splitter.push(&buf[..n], |line| sink.line(line));
                    flush_at = splitter
                        .has_partial()
                        .then(|| Instant::now() + opts.partial_flush);
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    splitter.flush(|line| sink.line(line));
                    sink.state(FollowState::Error(format!("reading failed: {err}")));
                    return;
                }
            },
            _ = sleep_until_some(flush_at) => {
                splitter.flush(|line| sink.line(line));
                flush_at = None;
            }
        }
    }
}

fn deliver(sink: &dyn LineSink, out: Vec<Output>) {
    for output in out {
        match output {
            Output::Line(line, position) => sink.line_at(line, position),
            Output::State(state) => sink.state(state),
            Output::Rotated => sink.rotated(),
        }
    }
}

/// Sleeps until `deadline`, or forever if there is none.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
