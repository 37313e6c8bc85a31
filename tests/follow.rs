//! The `tail -F` contract, checked against real files in temporary folders.
//!
//! Every wait polls the sink with a deadline; nothing sleeps a fixed time to
//! let something happen.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tailcast::follow::{
    follow_file, follow_reader, is_glob, watch_glob, FollowOptions, FollowState, LineSink,
};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long any wait may take before the test fails: a watchdog, far above
/// what a loaded machine needs.
const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Line(String),
    State(FollowState),
    Rotated,
}

/// Records everything a follower reports. A std `Mutex`: no `.await` happens
/// while it is held.
#[derive(Default)]
struct TestSink {
    events: Mutex<Vec<Ev>>,
}

impl LineSink for TestSink {
    fn line(&self, line: String) {
        self.events.lock().unwrap().push(Ev::Line(line));
    }
    fn state(&self, state: FollowState) {
        self.events.lock().unwrap().push(Ev::State(state));
    }
    fn rotated(&self) {
        self.events.lock().unwrap().push(Ev::Rotated);
    }
}

impl TestSink {
    fn events(&self) -> Vec<Ev> {
        self.events.lock().unwrap().clone()
    }

    fn lines(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Ev::Line(l) => Some(l),
                _ => None,
            })
            .collect()
    }

    fn last_state(&self) -> Option<FollowState> {
        self.events().into_iter().rev().find_map(|e| match e {
            Ev::State(s) => Some(s),
            _ => None,
        })
    }

    fn rotations(&self) -> usize {
        self.events().iter().filter(|e| **e == Ev::Rotated).count()
    }

    /// Polls until `done` holds for the events seen so far, or panics with
    /// them once `deadline` has passed.
    async fn wait_for(&self, what: &str, deadline: Duration, done: impl Fn(&[Ev]) -> bool) {
        let give_up = tokio::time::Instant::now() + deadline;
        loop {
            if done(&self.events.lock().unwrap()) {
                return;
            }
            if tokio::time::Instant::now() >= give_up {
                panic!("timed out waiting for {what}; events: {:#?}", self.events());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn wait_lines(&self, count: usize) -> Vec<String> {
        let what = format!("{count} lines");
        self.wait_for(&what, DEADLINE, |evs| {
            evs.iter().filter(|e| matches!(e, Ev::Line(_))).count() >= count
        })
        .await;
        self.lines()
    }

    async fn wait_state(&self, state: FollowState) {
        let what = format!("state {state:?}");
        self.wait_for(&what, DEADLINE, |evs| {
            evs.iter().rev().find_map(|e| match e {
                Ev::State(s) => Some(s),
                _ => None,
            }) == Some(&state)
        })
        .await;
    }
}

fn opts() -> FollowOptions {
    FollowOptions {
        max_line: 64 * 1024,
        initial_lines: 10,
        poll_interval: Duration::from_millis(50),
        partial_flush: Duration::from_secs(30),
        follow_symlinks: false,
    }
}

struct Follower {
    sink: Arc<TestSink>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Follower {
    fn start(path: &Path, opts: FollowOptions) -> Self {
        let sink = Arc::new(TestSink::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(follow_file(
            path.to_path_buf(),
            opts,
            sink.clone(),
            shutdown.clone(),
        ));
        Follower {
            sink,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("follower did not stop on shutdown")
            .expect("follower task failed");
    }
}

fn append(path: &Path, bytes: impl AsRef<[u8]>) {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    file.write_all(bytes.as_ref()).unwrap();
}

#[tokio::test]
async fn appended_lines_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    File::create(&path).unwrap();
    let follower = Follower::start(&path, opts());
    follower.sink.wait_state(FollowState::Following).await;

    for i in 0..50 {
        append(&path, format!("line {i}\n"));
    }
    let lines = follower.sink.wait_lines(50).await;
    let expected: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected);
    follower.stop().await;
}

#[tokio::test]
async fn appends_arrive_through_notifications_without_polling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    File::create(&path).unwrap();
    let slow_poll = FollowOptions {
        poll_interval: Duration::from_secs(3600),
        ..opts()
    };
    let follower = Follower::start(&path, slow_poll);
    follower.sink.wait_state(FollowState::Following).await;

    append(&path, "one\n");
    assert_eq!(follower.sink.wait_lines(1).await, ["one"]);
    append(&path, "two\n");
    assert_eq!(follower.sink.wait_lines(2).await, ["one", "two"]);
    follower.stop().await;
}

#[tokio::test]
async fn existing_file_starts_with_its_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let text: String = (1..=20).map(|i| format!("old {i}\n")).collect();
    fs::write(&path, text).unwrap();
    let follower = Follower::start(
        &path,
        FollowOptions {
            initial_lines: 3,
            ..opts()
        },
    );
    follower.sink.wait_state(FollowState::Following).await;

    append(&path, "new\n");
    let lines = follower.sink.wait_lines(4).await;
    assert_eq!(lines, ["old 18", "old 19", "old 20", "new"]);
    assert_eq!(follower.sink.rotations(), 0);
    follower.stop().await;
}

#[tokio::test]
async fn missing_file_is_waited_for_and_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.log");
    let follower = Follower::start(
        &path,
        FollowOptions {
            initial_lines: 1,
            ..opts()
        },
    );
    follower.sink.wait_state(FollowState::Waiting).await;

    fs::write(&path, "first\nsecond\nthird\n").unwrap();
    let lines = follower.sink.wait_lines(3).await;
    assert_eq!(lines, ["first", "second", "third"]);
    follower.sink.wait_state(FollowState::Following).await;
    assert_eq!(follower.sink.rotations(), 0);
    follower.stop().await;
}

#[tokio::test]
async fn rotation_by_rename_reads_old_file_to_its_end_then_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, "old1\n").unwrap();
    let follower = Follower::start(&path, opts());
    follower.sink.wait_lines(1).await;
    follower.sink.wait_state(FollowState::Following).await;

    let mut writer = OpenOptions::new().append(true).open(&path).unwrap();
    writer.write_all(b"old2\n").unwrap();
    follower.sink.wait_lines(2).await;
    fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    writer.write_all(b"old3\n").unwrap();
    fs::write(&path, "new1\n").unwrap();
    follower.sink.wait_lines(4).await;
    append(&path, "new2\n");

    let lines = follower.sink.wait_lines(5).await;
    assert_eq!(lines, ["old1", "old2", "old3", "new1", "new2"]);
    assert_eq!(follower.sink.rotations(), 1);
    assert_eq!(follower.sink.last_state(), Some(FollowState::Following));
    follower.stop().await;
}

#[tokio::test]
async fn renamed_file_is_still_read_until_its_successor_appears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, "").unwrap();
    let follower = Follower::start(&path, opts());
    follower.sink.wait_state(FollowState::Following).await;

    let mut writer = OpenOptions::new().append(true).open(&path).unwrap();
    fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    follower.sink.wait_state(FollowState::Waiting).await;
    writer.write_all(b"late\n").unwrap();
    assert_eq!(follower.sink.wait_lines(1).await, ["late"]);

    writer.write_all(b"later\n").unwrap();
    fs::write(&path, "new\n").unwrap();
    let lines = follower.sink.wait_lines(3).await;
    assert_eq!(lines, ["late", "later", "new"]);
    follower.sink.wait_state(FollowState::Following).await;
    assert_eq!(follower.sink.rotations(), 1);
    follower.stop().await;
}

#[tokio::test]
async fn copytruncate_restarts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, "a1\na2\na3\n").unwrap();
    let follower = Follower::start(&path, opts());
    follower.sink.wait_lines(3).await;
    follower.sink.wait_state(FollowState::Following).await;

    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&path, "b1\n");
    follower.sink.wait_lines(4).await;
    append(&path, "b2\n");

    let lines = follower.sink.wait_lines(5).await;
    assert_eq!(lines, ["a1", "a2", "a3", "b1", "b2"]);
    assert_eq!(follower.sink.rotations(), 1);
    follower.stop().await;
}

#[tokio::test]
async fn deleted_file_is_waited_for_and_recreated_file_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, "x1\n").unwrap();
    let follower = Follower::start(&path, opts());
    follower.sink.wait_lines(1).await;
    follower.sink.wait_state(FollowState::Following).await;

    append(&path, "x2\n");
    fs::remove_file(&path).unwrap();
    follower.sink.wait_state(FollowState::Waiting).await;
    assert_eq!(follower.sink.lines(), ["x1", "x2"]);

    fs::write(&path, "y1\ny2\n").unwrap();
    let lines = follower.sink.wait_lines(4).await;
    assert_eq!(lines, ["x1", "x2", "y1", "y2"]);
    follower.sink.wait_state(FollowState::Following).await;
    assert_eq!(follower.sink.rotations(), 1);
    follower.stop().await;
}

#[tokio::test]
async fn partial_line_is_held_until_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    File::create(&path).unwrap();
    let follower = Follower::start(&path, opts());
    follower.sink.wait_state(FollowState::Following).await;

    append(&path, "first\nhel");
    follower.sink.wait_lines(1).await;
    append(&path, "lo\n");
    append(&path, "last\n");

    let lines = follower.sink.wait_lines(3).await;
    assert_eq!(lines, ["first", "hello", "last"]);
    follower.stop().await;
}

#[tokio::test]
async fn partial_line_is_flushed_after_a_quiet_period() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    File::create(&path).unwrap();
    let quick_flush = FollowOptions {
        partial_flush: Duration::from_millis(100),
        ..opts()
    };
    let follower = Follower::start(&path, quick_flush);
    follower.sink.wait_state(FollowState::Following).await;

    append(&path, "first\nno newline yet");
    let lines = follower.sink.wait_lines(2).await;
    assert_eq!(lines, ["first", "no newline yet"]);

    append(&path, "\nnext\n");
    let lines = follower.sink.wait_lines(3).await;
    assert_eq!(lines, ["first", "no newline yet", "next"]);
    follower.stop().await;
}

#[tokio::test]
async fn crlf_endings_are_stripped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    File::create(&path).unwrap();
    let follower = Follower::start(&path, opts());
    follower.sink.wait_state(FollowState::Following).await;

    append(&path, "one\r\ntwo\r\n\r\nin\rside\n");
    let lines = follower.sink.wait_lines(4).await;
    assert_eq!(lines, ["one", "two", "", "in\rside"]);
    follower.stop().await;
}

#[tokio::test]
async fn invalid_utf8_becomes_replacement_chars_and_nul_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    File::create(&path).unwrap();
    let follower = Follower::start(&path, opts());
    follower.sink.wait_state(FollowState::Following).await;

    append(&path, b"ok\xff\xfe\n\x00bin\x01\n");
    let lines = follower.sink.wait_lines(2).await;
    assert_eq!(lines, ["ok\u{FFFD}\u{FFFD}", "\0bin\x01"]);
    follower.stop().await;
}

#[tokio::test]
async fn binary_data_does_not_break_following() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.bin");
    File::create(&path).unwrap();
    let max_line = 1000;
    let follower = Follower::start(&path, FollowOptions { max_line, ..opts() });
    follower.sink.wait_state(FollowState::Following).await;

    let mut seed = 0x2545_f491_u32;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed >> 24) as u8
        })
        .collect();
    append(&path, &noise);
    append(&path, "\nstill here\n");
    follower
        .sink
        .wait_for("the line after the noise", DEADLINE, |evs| {
            evs.last() == Some(&Ev::Line("still here".into()))
        })
        .await;
    assert!(follower
        .sink
        .lines()
        .iter()
        .all(|l| l.len() <= 3 * max_line));
    assert_eq!(follower.sink.last_state(), Some(FollowState::Following));
    follower.stop().await;
}

#[tokio::test]
async fn long_line_is_split_at_max_line_on_char_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    File::create(&path).unwrap();
    let follower = Follower::start(
        &path,
        FollowOptions {
            max_line: 8,
            ..opts()
        },
    );
    follower.sink.wait_state(FollowState::Following).await;

    // a×6 + é (2 bytes) fills 8 exactly; 漢字 (3+3) leaves no room for 😀 (4).
    let text = "aaaaaaé漢字😀b";
    append(&path, format!("{text}\nshort\n"));
    let lines = follower.sink.wait_lines(4).await;
    assert_eq!(lines, ["aaaaaaé", "漢字", "😀b", "short"]);
    assert!(lines.iter().all(|l| l.len() <= 8));
    follower.stop().await;
}

#[tokio::test]
async fn directory_path_reports_an_error_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::create_dir(&path).unwrap();
    let follower = Follower::start(&path, opts());
    follower
        .sink
        .wait_for("an error state", DEADLINE, |evs| {
            evs.iter().any(
                |e| matches!(e, Ev::State(FollowState::Error(why)) if why.contains("directory")),
            )
        })
        .await;

    fs::remove_dir(&path).unwrap();
    fs::write(&path, "now a file\n").unwrap();
    assert_eq!(follower.sink.wait_lines(1).await, ["now a file"]);
    follower.sink.wait_state(FollowState::Following).await;
    follower.stop().await;
}

#[tokio::test]
async fn glob_picks_up_new_matching_files_once_each() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.log"), "").unwrap();
    fs::write(dir.path().join("a.txt"), "").unwrap();
    let pattern = format!("{}/*.log", dir.path().display());
    assert!(is_glob(&pattern));

    let found = Arc::new(Mutex::new(Vec::<PathBuf>::new()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(watch_glob(
        pattern,
        opts(),
        {
            let found = found.clone();
            move |path| found.lock().unwrap().push(path)
        },
        shutdown.clone(),
    ));
    let wait_for = |name: &'static str| {
        let found = found.clone();
        let target = dir.path().join(name);
        async move {
            let give_up = tokio::time::Instant::now() + DEADLINE;
            while !found.lock().unwrap().contains(&target) {
                assert!(
                    tokio::time::Instant::now() < give_up,
                    "{name} not found; found: {:?}",
                    found.lock().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_for("a.log").await;

    fs::write(dir.path().join("b.txt"), "").unwrap();
    fs::write(dir.path().join("b.log"), "").unwrap();
    wait_for("b.log").await;
    append(&dir.path().join("a.log"), "touch\n");
    fs::create_dir(dir.path().join("d.log")).unwrap();
    fs::write(dir.path().join("c.log"), "").unwrap();
    wait_for("c.log").await;

    let found = found.lock().unwrap().clone();
    let names: Vec<_> = found.iter().map(|p| p.file_name().unwrap()).collect();
    assert_eq!(names, ["a.log", "b.log", "c.log"]);

    shutdown.cancel();
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("watch_glob did not stop")
        .unwrap();
}

#[tokio::test]
async fn follow_reader_reads_lines_and_flushes_at_end_of_stream() {
    let (mut writer, reader) = tokio::io::duplex(16);
    let sink = Arc::new(TestSink::default());
    let task = tokio::spawn(follow_reader(
        reader,
        opts(),
        sink.clone(),
        CancellationToken::new(),
    ));

    writer
        .write_all(b"one\ntwo\r\nbad \xff\nunterminated")
        .await
        .unwrap();
    assert_eq!(sink.wait_lines(3).await, ["one", "two", "bad \u{FFFD}"]);
    drop(writer);
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("follow_reader did not return at end of stream")
        .unwrap();

    assert_eq!(
        sink.events(),
        [
            Ev::State(FollowState::Following),
            Ev::Line("one".into()),
            Ev::Line("two".into()),
            Ev::Line("bad \u{FFFD}".into()),
            Ev::Line("unterminated".into()),
        ]
    );
}

#[tokio::test]
async fn follow_reader_stops_on_shutdown() {
    let (_writer, reader) = tokio::io::duplex(16);
    let sink = Arc::new(TestSink::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(follow_reader(
        reader,
        opts(),
        sink.clone(),
        shutdown.clone(),
    ));
    sink.wait_state(FollowState::Following).await;
    shutdown.cancel();
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("follow_reader did not stop on shutdown")
        .unwrap();
    assert!(sink.lines().is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    /// Append these lines, the bytes cut into two writes at `split`.
    Write(Vec<String>, usize),
    /// Rename to `app.log.N` and create an empty `app.log`.
    Rename,
    /// Truncate in place.
    Truncate,
    /// Delete, then create an empty `app.log` once the follower waits.
    Recreate,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (proptest::collection::vec("[a-z0-9 é漢]{0,12}", 1..5), 0usize..80)
            .prop_map(|(lines, split)| Op::Write(lines, split)),
        1 => Just(Op::Rename),
        1 => Just(Op::Truncate),
        1 => Just(Op::Recreate),
    ]
}

/// Applies `ops` to a real file and checks, after each one, that the
/// follower has reported exactly what the model expects. Each operation waits
/// until the follower has caught up before the next, so the run never
/// depends on timing (a truncation refilled before the follower looks
/// cannot be detected by anyone and is not what this checks).
async fn run_model(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    File::create(&path).unwrap();
    let follower = Follower::start(&path, opts());
    follower.sink.wait_state(FollowState::Following).await;

    let mut expected: Vec<String> = Vec::new();
    let mut rotations = 0;
    let mut size = 0;
    for (n, op) in ops.into_iter().enumerate() {
        match op {
            Op::Write(lines, split) => {
                let bytes: String = lines.iter().map(|l| format!("{l}\n")).collect();
                let split = (0..=split.min(bytes.len()))
                    .rev()
                    .find(|&i| bytes.is_char_boundary(i))
                    .unwrap();
                append(&path, &bytes[..split]);
                append(&path, &bytes[split..]);
                size += bytes.len();
                expected.extend(lines);
            }
            Op::Rename => {
                fs::rename(&path, dir.path().join(format!("app.log.{n}"))).unwrap();
                File::create(&path).unwrap();
                size = 0;
                rotations += 1;
            }
            Op::Truncate => {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
                if size > 0 {
                    rotations += 1;
                }
                size = 0;
            }
            Op::Recreate => {
                fs::remove_file(&path).unwrap();
                follower.sink.wait_state(FollowState::Waiting).await;
                File::create(&path).unwrap();
                size = 0;
                rotations += 1;
            }
        }
        let what = format!("{} lines and {rotations} rotations", expected.len());
        follower
            .sink
            .wait_for(&what, DEADLINE, |evs| {
                let lines = evs.iter().filter(|e| matches!(e, Ev::Line(_))).count();
                let rotated = evs.iter().filter(|e| **e == Ev::Rotated).count();
                lines >= expected.len() && rotated >= rotations
            })
            .await;
        assert_eq!(follower.sink.lines(), expected);
        assert_eq!(follower.sink.rotations(), rotations);
    }
    follower.stop().await;
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

    #[test]
    fn random_writes_and_rotations_match_the_model(
        ops in proptest::collection::vec(op(), 1..12),
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_model(ops));
    }
}
