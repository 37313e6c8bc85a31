//! The file half of the follower: one path, one open file, no async.
//!
//! [`Tailer::step`] does everything a wake-up requires (open, detect
//! truncation and rotation, read what is new) with blocking calls, and
//! reports what it saw as [`Output`]s. The async driver in the parent module
//! runs it on the blocking pool and decides when to call it again.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::split::LineSplitter;
use super::{FilePosition, Fingerprint, FollowState};

/// Size of one read.
pub(crate) const CHUNK: usize = 64 * 1024;
/// Reads per step at most, so that a huge append neither holds the blocking
/// thread for long nor buffers more than this many chunks of lines.
const CHUNKS_PER_STEP: usize = 16;
/// At start, the initial lines are looked for in at most this many bytes at
/// the end of the file, so a huge file is never read whole.
pub(crate) const TAIL_WINDOW: u64 = 1024 * 1024;
/// A step stops reading once it has this many lines ready, so what one
/// step hands over stays small even when the lines are short (at most this
/// plus one chunk's worth).
const LINES_PER_STEP: usize = 1024;
/// Leading bytes of a file that make its [`Fingerprint`].
pub(crate) const FINGERPRINT_BYTES: usize = 256;

/// Something the sink must hear about, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// A line and where in its file it ended.
    Line(String, FilePosition),
    State(FollowState),
    Rotated,
}

/// What one [`Tailer::step`] achieved.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Progress {
    /// Bytes were read (so a held partial line is not yet stale).
    pub read: bool,
    /// The read budget ran out before the end of the file: step again soon.
    pub more: bool,
}

/// An open file and how far it has been read.
#[derive(Debug)]
struct Open {
    file: File,
    /// (device, inode): what the path must still name for this to be "the" file.
    id: (u64, u64),
    pos: u64,
    /// Its first bytes (up to [`FINGERPRINT_BYTES`], more as it grows).
    fingerprint: Fingerprint,
}

impl Open {
    /// Where a line ending at `offset` of this file ended.
    fn position(&self, offset: u64) -> FilePosition {
        FilePosition {
            dev: self.id.0,
            ino: self.id.1,
            offset,
            fingerprint: self.fingerprint,
        }
    }
}

/// State of one followed path between wake-ups.
#[derive(Debug)]
pub(crate) struct Tailer {
    path: PathBuf,
    initial_lines: usize,
    tail_window: u64,
    splitter: LineSplitter,
    open: Option<Open>,
    /// True until the path is first seen missing or first opened: a file that
    /// is there from the start is joined at its end (after the initial lines),
    /// one that appears later is read from its start.
    join_at_end: bool,
    /// A file was followed before, so the next one opened is a rotation.
    opened_before: bool,
    /// Last state reported, so that only changes are reported.
    state: Option<FollowState>,
    buf: Box<[u8]>,
    /// Where a previous run stopped, used at the first open.
    resume: Option<FilePosition>,
    /// A path that is a symbolic link is followed (to a regular file only).
    follow_links: bool,
}

impl Tailer {
    pub(crate) fn new(path: PathBuf, max_line: usize, initial_lines: usize) -> Self {
        Tailer {
            path,
            initial_lines,
            tail_window: TAIL_WINDOW,
            splitter: LineSplitter::new(max_line),
            open: None,
            join_at_end: true,
            opened_before: false,
            state: None,
            buf: vec![0; CHUNK].into_boxed_slice(),
            resume: None,
            follow_links: false,
        }
    }

    /// Whether a path that is a symbolic link is followed (to a regular
    /// file only); without it, a link is refused.
    pub(crate) fn follow_links(mut self, follow: bool) -> Self {
        self.follow_links = follow;
        self
    }

    /// Goes on from where a previous run stopped instead of joining at the
    /// end: at `position` if the path still names that file (same device,
    /// inode and first bytes); else the rest of that file is read first if
    /// it is found beside the path (rotated), and the path's file from its
    /// start.
    pub(crate) fn resume_from(mut self, position: FilePosition) -> Self {
        self.resume = Some(position);
        self
    }

    #[cfg(test)]
    fn with_tail_window(mut self, window: u64) -> Self {
        self.tail_window = window;
        self
    }

    pub(crate) fn has_partial(&self) -> bool {
        self.splitter.has_partial()
    }

    /// Emits the held partial line, if any.
    pub(crate) fn flush_partial(&mut self, out: &mut Vec<Output>) {
        if let Some(open) = &self.open {
            flush_into(&mut self.splitter, open, out);
        }
    }

    /// Brings the follower up to date with the file system.
    pub(crate) fn step(&mut self, out: &mut Vec<Output>) -> Progress {
        if self.open.is_none() {
            self.try_open(out);
        }
        let Some(mut open) = self.open.take() else {
            return Progress::default();
        };
        let mut progress = match self.read_new(&mut open, out) {
            Ok(progress) => progress,
            Err(err) => {
                self.set_state(FollowState::Error(format!("reading failed: {err}")), out);
                self.open = Some(open);
                return Progress::default();
            }
        };
        if progress.more {
            self.open = Some(open);
            return progress;
        }
        match id_of_path(&self.path, self.follow_links) {
            Ok(Some(id)) if id == open.id => {
                self.set_state(FollowState::Following, out);
                self.open = Some(open);
            }
            Ok(Some(_)) => {
                // The path names another file now: finish the old one (the
                // writer may have added to it since the read above), then
                // start the new one from its beginning.
                progress.read |= self.drain(&mut open, out);
                flush_into(&mut self.splitter, &open, out);
                drop(open);
                self.try_open(out);
            }
            Ok(None) if is_deleted(&open.file) => {
                progress.read |= self.drain(&mut open, out);
                flush_into(&mut self.splitter, &open, out);
                self.join_at_end = false;
                self.set_state(FollowState::Waiting, out);
            }
            Ok(None) => {
                // Renamed away with no successor yet: keep reading the old
                // file, whose writer may not have reopened its log yet.
                self.join_at_end = false;
                self.set_state(FollowState::Waiting, out);
                self.open = Some(open);
            }
            Err(err) => {
                self.set_state(FollowState::Error(format!("cannot stat: {err}")), out);
                self.open = Some(open);
            }
        }
        progress
    }

    /// Reads from the open file to its end, or until the step's budget is
    /// spent. A file now shorter than what was read was truncated in place:
    /// reading restarts at 0.
    fn read_new(&mut self, open: &mut Open, out: &mut Vec<Output>) -> io::Result<Progress> {
        let len = open.file.metadata()?.len();
        if len < open.pos {
            flush_into(&mut self.splitter, open, out);
            open.file.seek(SeekFrom::Start(0))?;
            open.pos = 0;
            self.splitter.start_at(0, false);
            open.fingerprint = fingerprint(&open.file, len)?;
            out.push(Output::Rotated);
        }
        if (open.fingerprint.len as usize) < FINGERPRINT_BYTES
            && len > u64::from(open.fingerprint.len)
        {
            // Still small when first seen: its identity grows with it.
            open.fingerprint = fingerprint(&open.file, len)?;
        }
        let mut progress = Progress::default();
        let lines_before = out.len();
        for _ in 0..CHUNKS_PER_STEP {
            if out.len() - lines_before >= LINES_PER_STEP {
                break;
            }
            let n = match open.file.read(&mut self.buf) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            if n == 0 {
                return Ok(progress);
            }
            open.pos += n as u64;
            progress.read = true;
            let at = &*open;
            self.splitter.push_at(&self.buf[..n], |line, end| {
                out.push(Output::Line(line, at.position(end)))
            });
        }
        progress.more = true;
        Ok(progress)
    }

    /// Reads a file that is being left to its end, budget or not. Errors end
    /// it: the file is being abandoned anyway.
    fn drain(&mut self, open: &mut Open, out: &mut Vec<Output>) -> bool {
        let mut read = false;
        loop {
            match self.read_new(open, out) {
                Ok(progress) => {
                    read |= progress.read;
                    if !progress.more {
                        return read;
                    }
                }
                Err(err) => {
                    tracing::debug!(path = %self.path.display(), %err, "rotated file ended early");
                    return read;
                }
            }
        }
    }

    fn try_open(&mut self, out: &mut Vec<Output>) {
        match self.open_path() {
            Ok(open) => {
                if self.opened_before {
                    out.push(Output::Rotated);
                }
                self.opened_before = true;
                self.join_at_end = false;
                self.open = Some(open);
                self.set_state(FollowState::Following, out);
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                self.join_at_end = false;
                self.set_state(FollowState::Waiting, out);
            }
            Err(err) => {
                let why = match err.get_ref().and_then(|e| e.downcast_ref::<Refused>()) {
                    Some(refused) => format!("refused: {refused}"),
                    None => format!("cannot open {}: {err}", self.path.display()),
                };
                self.set_state(FollowState::Error(why), out);
            }
        }
    }

    fn open_path(&mut self) -> io::Result<Open> {
        if let Some(resume) = self.resume.take() {
            // Lines up to the checkpoint were published by a previous run:
            // no initial lines, and whatever file is found is new.
            self.join_at_end = false;
            if let Some(open) = self.open_resumed(&resume)? {
                return Ok(open);
            }
        }
        let mut file = open_regular(&self.path, self.follow_links)?;
        let meta = file.metadata()?;
        let pos = if self.join_at_end {
            self.initial_offset(&mut file, meta.len())?
        } else {
            0
        };
        file.seek(SeekFrom::Start(pos))?;
        // A line start: the LF before it, or the file's start.
        self.splitter.start_at(pos, false);
        Ok(Open {
            fingerprint: fingerprint(&file, meta.len())?,
            file,
            id: (meta.dev(), meta.ino()),
            pos,
        })
    }

    /// The file a previous run was reading, positioned where it stopped:
    /// the path's file if it is still that one, else that file found beside
    /// it (rotated while we were down). `None` if it is gone or was replaced.
    fn open_resumed(&mut self, at: &FilePosition) -> io::Result<Option<Open>> {
        let same = |file: &File| -> io::Result<bool> {
            let meta = file.metadata()?;
            Ok(meta.is_file()
                && (meta.dev(), meta.ino()) == (at.dev, at.ino)
                && has_fingerprint(file, at.fingerprint)?)
        };
        let file = match open_regular(&self.path, self.follow_links) {
            Ok(file) if same(&file)? => Some(file),
            Ok(_) => None,
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        let file = match file {
            Some(file) => file,
            None => match previous_generation(&self.path, at, self.follow_links, same) {
                Some((file, found)) => {
                    tracing::info!(
                        path = %self.path.display(),
                        previous = %found.display(),
                        "reading the rest of the file's previous generation first"
                    );
                    // What is at the path now is read from its start after.
                    self.opened_before = true;
                    file
                }
                None => return Ok(None),
            },
        };
        let meta = file.metadata()?;
        // Truncated while we were down: from the start.
        let offset = if meta.len() < at.offset { 0 } else { at.offset };
        let mid_line = if offset == 0 {
            false
        } else {
            let mut byte = [0u8];
            file.read_exact_at(&mut byte, offset - 1)?;
            byte[0] != b'\n'
        };
        let mut open = Open {
            id: (meta.dev(), meta.ino()),
            pos: offset,
            fingerprint: fingerprint(&file, meta.len())?,
            file,
        };
        open.file.seek(SeekFrom::Start(offset))?;
        self.splitter.start_at(offset, mid_line);
        Ok(Some(open))
    }

    /// Where following starts in a file that is there from the start: at
    /// the beginning of its last `initial_lines` complete lines found in
    /// the tail window. Those lines are then read like any new bytes, a
    /// budget per step, so the initial tail is never built as one batch;
    /// a trailing partial line is held as usual. With no initial lines
    /// wanted, following starts at the end.
    ///
    /// The window is scanned backwards one chunk at a time, so finding the
    /// offset takes no memory beyond the read buffer.
    fn initial_offset(&mut self, file: &mut File, len: u64) -> io::Result<u64> {
        if self.initial_lines == 0 {
            return Ok(len);
        }
        let window_start = len.saturating_sub(self.tail_window);
        // LFs seen from the end, and the earliest one so far.
        let mut found = 0;
        let mut earliest_lf = None;
        let mut end = len;
        while end > window_start {
            let start = end.saturating_sub(CHUNK as u64).max(window_start);
            let chunk = &mut self.buf[..(end - start) as usize];
            file.seek(SeekFrom::Start(start))?;
            file.read_exact(chunk)?;
            for i in memchr::memrchr_iter(b'\n', chunk) {
                found += 1;
                let at = start + i as u64;
                earliest_lf = Some(at);
                // The LF before the first wanted line: the last one's own
                // LF, then one per wanted line.
                if found == self.initial_lines + 1 {
                    return Ok(at + 1);
                }
            }
            end = start;
        }
        Ok(match earliest_lf {
            // Fewer lines than wanted: all of them. A window that starts
            // inside the file starts inside a line, which is skipped.
            _ if window_start == 0 => 0,
            Some(at) => at + 1,
            None => len,
        })
    }

    fn set_state(&mut self, state: FollowState, out: &mut Vec<Output>) {
        if self.state.as_ref() != Some(&state) {
            self.state = Some(state.clone());
            out.push(Output::State(state));
        }
    }
}

/// Emits the splitter's held partial line as a line of `open`.
fn flush_into(splitter: &mut LineSplitter, open: &Open, out: &mut Vec<Output>) {
    splitter.flush_at(|line, end| out.push(Output::Line(line, open.position(end))));
}

/// The fingerprint of a file of `len` bytes: its first bytes, up to
/// [`FINGERPRINT_BYTES`].
fn fingerprint(file: &File, len: u64) -> io::Result<Fingerprint> {
    let mut first = vec![0; (len as usize).min(FINGERPRINT_BYTES)];
    file.read_exact_at(&mut first, 0)?;
    Ok(Fingerprint::of(&first))
}

/// Whether `file` starts with the bytes `expected` was made of.
fn has_fingerprint(file: &File, expected: Fingerprint) -> io::Result<bool> {
    let mut first = vec![0; expected.len as usize];
    match file.read_exact_at(&mut first, 0) {
        Ok(()) => Ok(Fingerprint::of(&first) == expected),
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(err) => Err(err),
    }
}

/// A file beside `path` (same directory, another name) that is the file
/// `at` was read from: how a file rotated by rename is found again.
fn previous_generation(
    path: &Path,
    at: &FilePosition,
    follow_links: bool,
    same: impl Fn(&File) -> io::Result<bool>,
) -> Option<(File, PathBuf)> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let candidate = entry.path();
        if candidate == path {
            continue;
        }
        let meta = if follow_links {
            std::fs::metadata(&candidate)
        } else {
            std::fs::symlink_metadata(&candidate)
        };
        let Ok(meta) = meta else {
            continue;
        };
        if (meta.dev(), meta.ino()) != (at.dev, at.ino) {
            continue;
        }
        if let Ok(file) = open_regular(&candidate, follow_links) {
            if same(&file).unwrap_or(false) {
                return Some((file, candidate));
            }
        }
    }
    None
}

/// Why a path is not followed: it is not a regular file (or a link that
/// may not be followed). Carried inside an [`io::Error`].
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Opens `path` for reading if it is a regular file, with no check-then-open
/// race: `O_NONBLOCK` so that a FIFO cannot block the open, `O_NOFOLLOW`
/// unless `follow_links`, then the type of what was opened is checked
/// (fstat). A directory is an error; a link that may not be followed, a
/// FIFO, socket or device is a [`Refused`] error.
fn open_regular(path: &Path, follow_links: bool) -> io::Result<File> {
    use rustix::fs::OFlags;
    let mut flags = OFlags::NONBLOCK;
    if !follow_links {
        flags |= OFlags::NOFOLLOW;
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path);
    let file = match opened {
        Err(err)
            if !follow_links
                && err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) =>
        {
            return Err(io::Error::other(Refused(
                "it is a symbolic link (--follow-symlinks follows links to regular files)".into(),
            )));
        }
        opened => opened?,
    };
    let kind = file.metadata()?.file_type();
    let what = if kind.is_file() {
        return Ok(file);
    } else if kind.is_dir() {
        return Err(io::Error::other("it is a directory"));
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "of an unknown type"
    };
    Err(io::Error::other(Refused(format!(
        "it is {what}, not a regular file"
    ))))
}

/// The (device, inode) the path names now: of the link itself unless
/// links are followed, so a path replaced by a link counts as a new file.
fn id_of_path(path: &std::path::Path, follow_links: bool) -> io::Result<Option<(u64, u64)>> {
    let meta = if follow_links {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    match meta {
        Ok(meta) => Ok(Some((meta.dev(), meta.ino()))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

fn is_deleted(file: &File) -> bool {
    file.metadata().is_ok_and(|meta| meta.nlink() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(out: &[Output]) -> Vec<&str> {
        out.iter()
            .filter_map(|o| match o {
                Output::Line(l, _) => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    fn step(tailer: &mut Tailer) -> Vec<Output> {
        let mut out = Vec::new();
        tailer.step(&mut out);
        out
    }

    /// Follows `path` from its start to its current end and returns the
    /// last line's position, as a previous run would have stored it.
    fn last_position(path: &Path) -> FilePosition {
        let mut tailer = Tailer::new(path.to_path_buf(), 1000, 1000);
        step(&mut tailer)
            .into_iter()
            .rev()
            .find_map(|o| match o {
                Output::Line(_, p) => Some(p),
                _ => None,
            })
            .unwrap()
    }

    fn resumed(path: &Path, at: FilePosition) -> Vec<String> {
        let mut tailer = Tailer::new(path.to_path_buf(), 1000, 10).resume_from(at);
        let mut all = Vec::new();
        for _ in 0..3 {
            all.extend(lines(&step(&mut tailer)).into_iter().map(String::from));
        }
        all
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn refusal(out: &[Output]) -> Option<&str> {
        out.iter().find_map(|o| match o {
            Output::State(FollowState::Error(why)) if why.starts_with("refused: ") => {
                Some(why.as_str())
            }
            _ => None,
        })
    }

    #[test]
    fn a_file_replaced_by_a_link_or_a_fifo_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let secret = dir.path().join("secret");
        append(&secret, "SECRET\n");
        append(&path, "a\n");
        let mut tailer = Tailer::new(path.clone(), 1000, 10);
        assert_eq!(lines(&step(&mut tailer)), ["a"]);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let out = step(&mut tailer);
        assert!(lines(&out).is_empty(), "{out:?}");
        assert!(
            refusal(&out).is_some_and(|w| w.contains("symbolic link")),
            "{out:?}"
        );
        append(&secret, "SECRET 2\n");
        assert!(lines(&step(&mut tailer)).is_empty());

        // A FIFO is refused at once, links followed or not: no open blocks.
        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.unwrap().success());
        let mut tailer = Tailer::new(path.clone(), 1000, 10).follow_links(true);
        let out = step(&mut tailer);
        assert!(refusal(&out).is_some_and(|w| w.contains("FIFO")), "{out:?}");
        // With links followed, a link to a regular file is read.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        assert_eq!(lines(&step(&mut tailer)), ["SECRET", "SECRET 2"]);
        // But not one to a device.
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let mut tailer = Tailer::new(zero, 1000, 10).follow_links(true);
        let out = step(&mut tailer);
        assert!(
            refusal(&out).is_some_and(|w| w.contains("character device")),
            "{out:?}"
        );
    }

    #[test]
    fn resume_in_the_same_file_reads_only_what_came_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "a\nb\n");
        let at = last_position(&path);
        assert_eq!(at.offset, 4);
        append(&path, "c\nd\n");
        assert_eq!(resumed(&path, at), ["c", "d"]);
    }

    #[test]
    fn resume_after_a_rotation_drains_the_old_file_then_reads_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "old 1\n");
        let at = last_position(&path);
        append(&path, "old 2\n");
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        append(&path, "new 1\n");
        assert_eq!(resumed(&path, at), ["old 2", "new 1"]);
    }

    #[test]
    fn resume_after_a_replacement_reads_the_new_file_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "old 1\n");
        let at = last_position(&path);
        std::fs::remove_file(&path).unwrap();
        append(&path, "new 1\nnew 2\n");
        assert_eq!(resumed(&path, at), ["new 1", "new 2"]);
        // Same inode, other first bytes (a reused inode): also a new file.
        let at = FilePosition {
            fingerprint: Fingerprint::of(b"something else"),
            ..last_position(&path)
        };
        assert_eq!(resumed(&path, at), ["new 1", "new 2"]);
    }

    #[test]
    fn resume_after_a_truncation_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "first line that is long\n");
        let at = last_position(&path);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(0).unwrap();
        append(&path, "f\n");
        // Shorter than the checkpoint, and its first bytes changed: replaced.
        assert_eq!(resumed(&path, at), ["f"]);
    }

    #[test]
    fn resume_after_a_flushed_partial_line_does_not_add_an_empty_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "done\npart");
        let mut tailer = Tailer::new(path.clone(), 1000, 0);
        tailer.join_at_end = false;
        let mut out = Vec::new();
        tailer.step(&mut out);
        tailer.flush_partial(&mut out);
        let Some(Output::Line(line, at)) = out
            .into_iter()
            .rev()
            .find(|o| matches!(o, Output::Line(..)))
        else {
            panic!("no line");
        };
        assert_eq!((line.as_str(), at.offset), ("part", 9));
        append(&path, "\nnext\n");
        assert_eq!(resumed(&path, at), ["next"]);
    }

    #[test]
    fn a_missing_file_with_a_checkpoint_is_waited_for_and_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "old\n");
        let at = last_position(&path);
        std::fs::remove_file(&path).unwrap();
        let mut tailer = Tailer::new(path.clone(), 1000, 10).resume_from(at);
        assert_eq!(step(&mut tailer), [Output::State(FollowState::Waiting)]);
        append(&path, "new\n");
        assert_eq!(lines(&step(&mut tailer)), ["new"]);
    }

    #[test]
    fn initial_lines_come_from_the_tail_window_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let text: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let mut tailer = Tailer::new(path.clone(), 1000, 3).with_tail_window(25);
        let out = step(&mut tailer);
        assert_eq!(lines(&out), ["line 098", "line 099"]);

        let mut tailer = Tailer::new(path, 1000, 3);
        assert_eq!(
            lines(&step(&mut tailer)),
            ["line 097", "line 098", "line 099"]
        );
    }

    #[test]
    fn trailing_partial_line_is_held_after_initial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "a\nb\nc\npart").unwrap();
        let mut tailer = Tailer::new(path.clone(), 1000, 2);
        let out = step(&mut tailer);
        assert_eq!(lines(&out), ["b", "c"]);
        assert!(tailer.has_partial());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"ial\n").unwrap();
        assert_eq!(lines(&step(&mut tailer)), ["partial"]);
    }

    #[test]
    fn no_initial_lines_joins_at_the_very_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "a\npart").unwrap();
        let mut tailer = Tailer::new(path, 1000, 0);
        let out = step(&mut tailer);
        assert_eq!(out, [Output::State(FollowState::Following)]);
        assert!(!tailer.has_partial());
    }

    #[test]
    fn a_large_initial_tail_comes_over_several_bounded_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short-lines.log");
        std::fs::write(&path, "x\n".repeat(200_000) + "tail\nparti").unwrap();
        let mut tailer = Tailer::new(path, 1000, 100_000);
        let mut seen = Vec::new();
        let mut steps = 0;
        loop {
            let mut out = Vec::new();
            let progress = tailer.step(&mut out);
            let lines = lines(&out);
            assert!(
                lines.len() <= LINES_PER_STEP + CHUNK,
                "{} lines in one step",
                lines.len()
            );
            seen.extend(lines.into_iter().map(str::to_string));
            steps += 1;
            if !progress.more {
                break;
            }
        }
        assert_eq!(seen.len(), 100_000);
        assert_eq!(seen.last().map(String::as_str), Some("tail"));
        assert!(steps >= 3, "read in {steps} steps");
        assert!(tailer.has_partial());
    }

    #[test]
    fn huge_append_is_read_over_several_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "").unwrap();
        let mut tailer = Tailer::new(path.clone(), 1000, 0);
        step(&mut tailer);
        let total = CHUNK * CHUNKS_PER_STEP * 2 + 10;
        let line = "x".repeat(99) + "\n";
        std::fs::write(&path, line.repeat(total / 100)).unwrap();
        let mut seen = 0;
        let mut steps = 0;
        loop {
            let mut out = Vec::new();
            let progress = tailer.step(&mut out);
            seen += lines(&out).len();
            steps += 1;
            if !progress.more {
                break;
            }
        }
        assert_eq!(seen, total / 100);
        assert!(steps >= 3, "read in {steps} steps");
    }
}
