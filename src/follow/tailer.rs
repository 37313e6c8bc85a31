//! The file half of the follower: one path, one open file, no async.
//!
//! [`Tailer::step`] does everything a wake-up requires (open, detect
//! truncation and rotation, read what is new) with blocking calls, and
//! reports what it saw as [`Output`]s. The async driver in the parent module
//! runs it on the blocking pool and decides when to call it again.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::split::LineSplitter;
use super::FollowState;

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

/// Something the sink must hear about, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Line(String),
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
        }
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
        self.splitter.flush(|line| out.push(Output::Line(line)));
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
        match id_of_path(&self.path) {
            Ok(Some(id)) if id == open.id => {
                self.set_state(FollowState::Following, out);
                self.open = Some(open);
            }
            Ok(Some(_)) => {
                // The path names another file now: finish the old one (the
                // writer may have added to it since the read above), then
                // start the new one from its beginning.
                progress.read |= self.drain(&mut open, out);
                self.flush_partial(out);
                drop(open);
                self.try_open(out);
            }
            Ok(None) if is_deleted(&open.file) => {
                progress.read |= self.drain(&mut open, out);
                self.flush_partial(out);
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
            self.flush_partial(out);
            open.file.seek(SeekFrom::Start(0))?;
            open.pos = 0;
            out.push(Output::Rotated);
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
            self.splitter
                .push(&self.buf[..n], |line| out.push(Output::Line(line)));
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
                let why = format!("cannot open {}: {err}", self.path.display());
                self.set_state(FollowState::Error(why), out);
            }
        }
    }

    fn open_path(&mut self) -> io::Result<Open> {
        let mut file = File::open(&self.path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::other("it is a directory"));
        }
        self.splitter.clear();
        let pos = if self.join_at_end {
            self.initial_offset(&mut file, meta.len())?
        } else {
            0
        };
        file.seek(SeekFrom::Start(pos))?;
        Ok(Open {
            file,
            id: (meta.dev(), meta.ino()),
            pos,
        })
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

fn id_of_path(path: &std::path::Path) -> io::Result<Option<(u64, u64)>> {
    match std::fs::metadata(path) {
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
                Output::Line(l) => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    fn step(tailer: &mut Tailer) -> Vec<Output> {
        let mut out = Vec::new();
        tailer.step(&mut out);
        out
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
