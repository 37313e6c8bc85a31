//! Tests of the log on real files: append, reopen, repair, retention,
//! reads, group commit.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use crate::follow::{FilePosition, Fingerprint};

use super::read::LogPage;
use super::record::RecordView;
use super::*;

fn options(retention_bytes: u64) -> WalOptions {
    WalOptions::new(FsyncPolicy::Every(Duration::from_secs(1)), retention_bytes)
}

fn open(dir: &Path) -> Wal {
    Wal::open(dir, options(1 << 30)).unwrap()
}

/// Appends one record per `(channel, data)`, numbered after the log's last.
fn append(wal: &Wal, events: &[(&str, &str)]) -> Vec<u64> {
    let first = wal.last_seq() + 1;
    let records: Vec<NewRecord<'_>> = events
        .iter()
        .enumerate()
        .map(|(i, (channel, data))| NewRecord {
            seq: first + i as u64,
            time_ms: 1_000 + i as i64,
            channel,
            event_type: "message",
            data,
            source: None,
        })
        .collect();
    wal.append(&records).unwrap();
    (first..first + events.len() as u64).collect()
}

fn append_many(wal: &Wal, channel: &str, n: usize, data_len: usize) {
    for i in 0..n {
        let data = format!("{i:0data_len$}");
        append(wal, &[(channel, &data)]);
    }
}

fn read_all(wal: &Wal, channels: &[&str], after: u64) -> Vec<Record> {
    let cursors: Vec<ChannelCursor<'_>> = channels
        .iter()
        .map(|c| ChannelCursor {
            channel: c,
            after: 0,
        })
        .collect();
    let mut out = Vec::new();
    let mut after = after;
    let through = wal.last_seq();
    while after < through {
        let batch = wal
            .read_forward(&ForwardRead {
                channels: &cursors,
                after,
                through,
                max_records: 100,
                max_bytes: 1 << 20,
            })
            .unwrap();
        assert!(batch.scanned_through > after, "no progress after {after}");
        assert!(batch.records.len() <= 100);
        out.extend(batch.records);
        after = batch.scanned_through;
    }
    out
}

fn data(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{}:{}", r.channel, r.data))
        .collect()
}

fn newest_segment(dir: &Path) -> PathBuf {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    names.sort();
    names.pop().unwrap()
}

#[test]
fn records_survive_a_reopen_with_the_same_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    assert_eq!(wal.last_seq(), 0);
    let epoch = wal.epoch();
    assert_eq!(
        append(&wal, &[("a", "1"), ("b", "2"), ("a", "3")]),
        [1, 2, 3]
    );
    drop(wal);
    let wal = open(dir.path());
    assert_eq!(wal.epoch(), epoch);
    assert_eq!(wal.last_seq(), 3);
    assert!(wal.recovery().repairs.is_empty());
    assert_eq!(wal.recovery().records, 3);
    assert_eq!(append(&wal, &[("a", "4")]), [4]);
    assert_eq!(data(&read_all(&wal, &["a"], 0)), ["a:1", "a:3", "a:4"]);
    assert_eq!(data(&read_all(&wal, &["a", "b"], 1)), ["b:2", "a:3", "a:4"]);
    assert_eq!(wal.id_status(epoch, 4), IdStatus::Known);
    assert_eq!(wal.id_status(epoch, 5), IdStatus::Unknown);
    assert_eq!(wal.id_status(epoch ^ 1, 2), IdStatus::Unknown);
    assert_eq!(wal.id_status(epoch, 0), IdStatus::Unknown);
}

#[test]
fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _wal = open(dir.path());
    match Wal::open(dir.path(), options(1 << 30)) {
        Err(WalError::Locked(path)) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn out_of_order_and_oversized_records_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append(&wal, &[("a", "1")]);
    let rec = |seq, channel| NewRecord {
        seq,
        time_ms: 0,
        channel,
        event_type: "message",
        data: "x",
        source: None,
    };
    assert!(matches!(
        wal.append(&[rec(2, "a"), rec(2, "a")]),
        Err(WalError::OutOfOrder { seq: 2, last: 2 })
    ));
    assert!(matches!(
        wal.append(&[rec(1, "a")]),
        Err(WalError::OutOfOrder { seq: 1, last: 1 })
    ));
    let long = "c".repeat(300);
    assert!(matches!(
        wal.append(&[rec(2, "a"), rec(3, &long)]),
        Err(WalError::Encode(_))
    ));
    assert_eq!(wal.last_seq(), 1);
    assert_eq!(wal.append(&[]).unwrap(), 1);
    drop(wal);
    let wal = open(dir.path());
    assert_eq!(wal.recovery().records, 1);
    assert_eq!(wal.recovery().repairs, []);
}

#[test]
fn a_torn_tail_is_cut_with_a_new_epoch_and_old_ids_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let epoch = wal.epoch();
    append(&wal, &[("a", "one"), ("a", "two"), ("a", "three")]);
    drop(wal);
    let segment = newest_segment(dir.path());
    let len = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(len - 4).unwrap();
    drop(file);

    let wal = open(dir.path());
    let repairs = &wal.recovery().repairs;
    assert_eq!(repairs.len(), 1);
    assert_eq!(repairs[0].segment, segment);
    assert_eq!(repairs[0].why, "record cut short");
    assert_eq!(wal.last_seq(), 2);
    assert_ne!(wal.epoch(), epoch);
    assert_eq!(wal.id_status(epoch, 2), IdStatus::Known);
    // Seq 3 was lost: its old id must not name the next event.
    assert_eq!(append(&wal, &[("a", "new three")]), [3]);
    assert_eq!(wal.id_status(epoch, 3), IdStatus::Unknown);
    assert_eq!(wal.id_status(wal.epoch(), 3), IdStatus::Known);
    assert_eq!(
        data(&read_all(&wal, &["a"], 0)),
        ["a:one", "a:two", "a:new three"]
    );
    let new_epoch = wal.epoch();
    drop(wal);
    let wal = open(dir.path());
    assert!(wal.recovery().repairs.is_empty(), "the cut is permanent");
    assert_eq!(wal.epoch(), new_epoch);
    assert_eq!(wal.id_status(epoch, 1), IdStatus::Known);
}

#[test]
fn garbage_after_the_last_record_is_cut_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append(&wal, &[("a", "kept")]);
    drop(wal);
    let segment = newest_segment(dir.path());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    std::io::Write::write_all(&mut file, b"\x10\0\0\0garbage garbage garbage").unwrap();
    drop(file);
    let wal = open(dir.path());
    assert_eq!(wal.recovery().repairs.len(), 1);
    assert_eq!(wal.recovery().repairs[0].dropped_bytes, 27);
    assert_eq!(data(&read_all(&wal, &["a"], 0)), ["a:kept"]);
    append(&wal, &[("a", "after")]);
    drop(wal);
    let wal = open(dir.path());
    assert!(wal.recovery().repairs.is_empty());
    assert_eq!(data(&read_all(&wal, &["a"], 0)), ["a:kept", "a:after"]);
}

#[test]
fn a_log_cut_inside_its_only_record_starts_over_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append(&wal, &[("a", "lost")]);
    drop(wal);
    let segment = newest_segment(dir.path());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(segment::HEADER_LEN + 5).unwrap();
    drop(file);
    let wal = open(dir.path());
    assert_eq!(wal.last_seq(), 0);
    assert_eq!(append(&wal, &[("a", "fresh")]), [1]);
    assert_eq!(data(&read_all(&wal, &["a"], 0)), ["a:fresh"]);
}

/// What the syncer does after a roll, on this thread: seal, sync, and
/// delete the retired segments.
fn sync_now(wal: &Wal) {
    super::sync::sync_once(&wal.shared);
    wal.shared.remove_retired();
}

/// A roll does no fsync and no retention on the appending thread (which in
/// the server holds the hub's commit lock): with the syncer held, appends
/// across many rolls return, nothing is fsynced and the watermark stays;
/// once it runs, one sync seals every rolled segment, and everything reads
/// back after a reopen.
#[tokio::test]
async fn a_roll_leaves_its_fsyncs_to_the_syncer() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        fsync: FsyncPolicy::Always,
        retention_bytes: 1 << 30,
        segment_bytes: MIN_SEGMENT_BYTES,
    };
    let wal = Wal::open(dir.path(), opts).unwrap();
    let fsyncs = wal.info().fsyncs;
    let held = wal.shared.sync.syncing.lock().unwrap();
    append_many(&wal, "busy", 2000, 250);
    let info = wal.info();
    assert!(info.segments >= 5, "rolled: {info:?}");
    assert_eq!(info.fsyncs, fsyncs, "no fsync by the appender: {info:?}");
    assert_eq!(wal.durable().seq, 0, "nothing reported durable yet");
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), wal.wait_durable(2000))
        .await
        .expect("the syncer seals and syncs")
        .unwrap();
    let info = wal.info();
    assert!(
        info.fsyncs >= fsyncs + info.segments as u64,
        "every rolled segment sealed, the newest synced: {info:?}"
    );
    drop(wal);
    let wal = Wal::open(dir.path(), opts).unwrap();
    assert!(wal.recovery().repairs.is_empty());
    let busy = read_all(&wal, &["busy"], 0);
    assert_eq!(busy.len(), 2000);
    assert!(busy.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}

#[test]
fn segments_roll_and_retention_drops_the_oldest_whole() {
    let dir = tempfile::tempdir().unwrap();
    let retention = 4 * MIN_SEGMENT_BYTES;
    let wal = Wal::open(dir.path(), options(retention)).unwrap();
    assert_eq!(wal.shared.opts.segment_bytes, MIN_SEGMENT_BYTES);
    // ~1 MiB of records in two channels; "rare" only at the start.
    append(&wal, &[("rare", "first"), ("rare", "second")]);
    append_many(&wal, "busy", 4000, 250);
    // Retention runs on the syncer after a roll; do its work now.
    sync_now(&wal);
    let info = wal.info();
    assert!(info.segments >= 4, "{info:?}");
    assert!(info.bytes <= retention, "{info:?}");
    assert!(info.first_seq > 2, "the oldest segments are gone: {info:?}");
    assert_eq!(info.last_seq, 4002);
    let files = std::fs::read_dir(dir.path().join("log")).unwrap().count();
    assert_eq!(files, info.segments + 1, "the segments and dropped.json");
    // What is left reads back in order, from the first retained record.
    let busy = read_all(&wal, &["busy"], 0);
    assert_eq!(busy.first().unwrap().seq, info.first_seq);
    assert_eq!(busy.last().unwrap().seq, 4002);
    assert!(busy.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    // The rare channel's records were dropped, and that is known.
    assert!(read_all(&wal, &["rare"], 0).is_empty());
    assert_eq!(wal.hidden_through("rare", 100).unwrap(), 2);
    assert_eq!(wal.id_status(wal.epoch(), 1), IdStatus::TooOld);
    assert_eq!(wal.id_status(wal.epoch(), info.first_seq), IdStatus::Known);
    assert!(!wal.dropped_any("never"));
    // After a restart the drop is still known, per channel: a channel that
    // never had a record lost nothing.
    let first_seq = info.first_seq;
    drop(wal);
    let wal = Wal::open(dir.path(), options(retention)).unwrap();
    assert_eq!(wal.info().first_seq, first_seq);
    assert_eq!(wal.hidden_through("rare", 100).unwrap(), 2);
    assert_eq!(wal.hidden_through("never", 100).unwrap(), 0);
    assert!(wal.dropped_any("rare") && !wal.dropped_any("never"));
    // Without the record (a log of an older version), conservatively all.
    drop(wal);
    std::fs::remove_file(dir.path().join("log/dropped.json")).unwrap();
    let wal = Wal::open(dir.path(), options(retention)).unwrap();
    assert_eq!(wal.hidden_through("rare", 100).unwrap(), first_seq - 1);
    assert_eq!(wal.hidden_through("never", 100).unwrap(), first_seq - 1);
}

#[test]
fn a_lower_retention_at_open_drops_segments_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), options(64 * MIN_SEGMENT_BYTES)).unwrap();
    append_many(&wal, "busy", 4000, 250);
    assert!(wal.info().bytes > 4 * MIN_SEGMENT_BYTES);
    drop(wal);
    let wal = Wal::open(dir.path(), options(4 * MIN_SEGMENT_BYTES)).unwrap();
    assert!(wal.info().bytes <= 4 * MIN_SEGMENT_BYTES);
    assert_eq!(wal.last_seq(), 4000);
}

#[test]
fn history_honours_the_per_channel_limit() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    for i in 0..10 {
        append(&wal, &[("a", &format!("a{i}")), ("b", &format!("b{i}"))]);
    }
    // a's records are the odd seqs 1..=19; keeping 3 hides through seq 13.
    assert_eq!(wal.hidden_through("a", 3).unwrap(), 13);
    assert_eq!(wal.hidden_through("a", 10).unwrap(), 0);
    assert_eq!(wal.hidden_through("a", usize::MAX).unwrap(), 0);
    assert_eq!(wal.hidden_through("b", 1).unwrap(), 18);
    assert_eq!(wal.hidden_through("none", 1).unwrap(), 0);
}

#[test]
fn per_channel_limit_is_found_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(1 << 30);
    opts.segment_bytes = MIN_SEGMENT_BYTES;
    let wal = Wal::open(dir.path(), opts).unwrap();
    append_many(&wal, "a", 3000, 200);
    assert!(wal.info().segments > 5);
    for keep in [1, 999, 1000, 2999] {
        assert_eq!(
            wal.hidden_through("a", keep).unwrap(),
            3000 - keep as u64,
            "keep {keep}"
        );
    }
    assert_eq!(wal.hidden_through("a", 3000).unwrap(), 0);
}

#[test]
fn forward_reads_respect_limits_cursors_and_the_upper_bound() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    for i in 0..50 {
        append(
            &wal,
            &[("a", &format!("a{i}")), ("b", &format!("b{i}")), ("c", "x")],
        );
    }
    let cursors = [
        ChannelCursor {
            channel: "a",
            after: 0,
        },
        ChannelCursor {
            channel: "b",
            after: 140,
        },
    ];
    let read = |after, through, max_records| {
        wal.read_forward(&ForwardRead {
            channels: &cursors,
            after,
            through,
            max_records,
            max_bytes: 1 << 20,
        })
        .unwrap()
    };
    let batch = read(0, 150, 3);
    assert_eq!(data(&batch.records), ["a:a0", "a:a1", "a:a2"]);
    assert_eq!(batch.scanned_through, 7);
    let batch = read(135, 150, 100);
    assert_eq!(
        data(&batch.records),
        ["a:a45", "a:a46", "a:a47", "b:b47", "a:a48", "b:b48", "a:a49", "b:b49"]
    );
    assert_eq!(batch.scanned_through, 150);
    let batch = read(10, 10, 100);
    assert!(batch.records.is_empty());
    assert_eq!(batch.scanned_through, 10);
    let bytes = wal
        .read_forward(&ForwardRead {
            channels: &cursors,
            after: 0,
            through: 150,
            max_records: 100,
            max_bytes: 1,
        })
        .unwrap();
    assert_eq!(
        bytes.records.len(),
        1,
        "stops once the byte limit is reached"
    );
}

#[test]
fn forward_reads_skip_segments_without_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(1 << 30);
    opts.segment_bytes = MIN_SEGMENT_BYTES;
    let wal = Wal::open(dir.path(), opts).unwrap();
    append(&wal, &[("rare", "early")]);
    append_many(&wal, "busy", 2000, 200);
    append(&wal, &[("rare", "late")]);
    let cursors = [ChannelCursor {
        channel: "rare",
        after: 0,
    }];
    let batch = wal
        .read_forward(&ForwardRead {
            channels: &cursors,
            after: 1,
            through: wal.last_seq(),
            max_records: 10,
            max_bytes: 1 << 20,
        })
        .unwrap();
    assert_eq!(data(&batch.records), ["rare:late"]);
    assert_eq!(batch.scanned_through, wal.last_seq());
}

fn history(
    wal: &Wal,
    channel: &str,
    before: u64,
    limit: usize,
    filter: &dyn Fn(&RecordView<'_>) -> bool,
) -> LogPage {
    wal.history(&HistoryQuery {
        channel,
        after: 0,
        before,
        limit,
        filter,
    })
    .unwrap()
}

#[test]
fn history_pages_newest_first_with_a_filter() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(1 << 30);
    opts.segment_bytes = MIN_SEGMENT_BYTES;
    let wal = Wal::open(dir.path(), opts).unwrap();
    for i in 0..3000 {
        let level = if i % 10 == 0 { "ERROR" } else { "INFO" };
        append(
            &wal,
            &[
                ("log", &format!("{level} line {i:0200}")),
                ("other", "ERROR x"),
            ],
        );
    }
    assert!(wal.info().segments > 5);
    let errors = |v: &RecordView<'_>| v.data.starts_with("ERROR");
    let mut before = u64::MAX;
    let mut seen = Vec::new();
    loop {
        let page = history(&wal, "log", before, 70, &errors);
        assert!(page.records.len() <= 70);
        assert!(page.records.windows(2).all(|w| w[0].seq > w[1].seq));
        seen.extend(page.records.iter().map(|r| r.seq));
        match page.next_before {
            Some(b) => {
                assert!(b < before);
                before = b;
            }
            None => break,
        }
    }
    let expected: Vec<u64> = (0..3000u64)
        .rev()
        .filter(|i| i % 10 == 0)
        .map(|i| 2 * i + 1)
        .collect();
    assert_eq!(seen, expected);
    let all = |_: &RecordView<'_>| true;
    let page = history(&wal, "log", 11, 100, &all);
    assert_eq!(
        page.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [9, 7, 5, 3, 1]
    );
    assert_eq!(page.next_before, None);
    let page = history(&wal, "log", 11, 2, &all);
    assert_eq!(page.next_before, Some(7));
    let page = wal
        .history(&HistoryQuery {
            channel: "log",
            after: 5,
            before: u64::MAX,
            limit: 100_000,
            filter: &all,
        })
        .unwrap();
    assert_eq!(page.records.last().unwrap().seq, 7);
    assert_eq!(page.records.len(), 2997);
    assert_eq!(
        history(&wal, "nothing", u64::MAX, 10, &all),
        LogPage::default()
    );
}

#[test]
fn a_rare_match_is_paged_by_the_scan_budget_not_read_in_one_go() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append(&wal, &[("log", "needle")]);
    append_many(&wal, "log", 20_000, 1000);
    let needle = |v: &RecordView<'_>| v.data == "needle";
    let mut before = u64::MAX;
    let mut pages = 0;
    let found = loop {
        let page = history(&wal, "log", before, 10, &needle);
        pages += 1;
        if !page.records.is_empty() {
            break page.records;
        }
        before = page.next_before.expect("more to scan");
    };
    assert_eq!(found[0].seq, 1);
    assert!(pages >= 2, "20 MB of log is more than one scan budget");
}

#[test]
fn single_records_and_the_last_of_a_channel() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let source = FilePosition {
        dev: 1,
        ino: 2,
        offset: 30,
        fingerprint: Fingerprint::of(b"abc"),
    };
    append(&wal, &[("x", "1"), ("y", "2")]);
    wal.append(&[NewRecord {
        seq: 3,
        time_ms: 5,
        channel: "log:app",
        event_type: "message",
        data: "line",
        source: Some(source),
    }])
    .unwrap();
    append(&wal, &[("x", "4")]);
    assert_eq!(wal.read_seq(2).unwrap().unwrap().data.as_ref(), "2");
    assert_eq!(wal.read_seq(9).unwrap(), None);
    assert_eq!(wal.read_seq(0).unwrap(), None);
    let last = wal.last_record_of("log:app").unwrap().unwrap();
    assert_eq!((last.seq, last.source), (3, Some(source)));
    assert_eq!(wal.last_record_of("x").unwrap().unwrap().seq, 4);
    assert_eq!(wal.last_record_of("nope").unwrap(), None);
}

#[test]
fn the_newest_bytes_start_where_expected() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    assert_eq!(wal.seq_before_newest_bytes(1000), 0);
    append_many(&wal, "a", 10_000, 100);
    assert_eq!(wal.seq_before_newest_bytes(u64::MAX), 0);
    let after = wal.seq_before_newest_bytes(300_000);
    let record = 8 + 20 + 1 + 7 + 100;
    let count = 10_000 - after;
    assert!(
        (count as usize * record) <= 300_000 && (count as usize * record) > 300_000 - 70_000,
        "{count} records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_answers_many_waiters_with_few_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let wal =
        Arc::new(Wal::open(dir.path(), WalOptions::new(FsyncPolicy::Always, 1 << 30)).unwrap());
    let numbering = Arc::new(std::sync::Mutex::new(()));
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let wal = wal.clone();
            let numbering = numbering.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let seq = {
                        let _n = numbering.lock().unwrap();
                        let data = format!("{t}-{i}");
                        append(&wal, &[("a", &data)])[0]
                    };
                    wal.wait_durable(seq).await.unwrap();
                    assert!(wal.durable().seq >= seq);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let info = wal.info();
    assert_eq!(info.durable_seq, 1280);
    assert!(info.fsyncs >= 1);
    assert!(
        info.fsyncs < 1280,
        "{} fsyncs for 1280 acknowledged appends",
        info.fsyncs
    );
}

#[tokio::test]
async fn the_timer_policy_makes_appends_durable_within_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions::new(FsyncPolicy::Every(Duration::from_millis(50)), 1 << 30);
    let wal = Wal::open(dir.path(), opts).unwrap();
    append(&wal, &[("a", "1")]);
    let started = std::time::Instant::now();
    let mut rx = wal.shared.sync.durable.subscribe();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|d| d.seq >= 1))
        .await
        .expect("synced by the timer")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(wal.info().fsyncs >= 1);
    // An explicit wait does not have to sit out the interval either.
    append(&wal, &[("a", "2")]);
    wal.wait_durable(2).await.unwrap();
}

#[tokio::test]
async fn under_fsync_always_records_nobody_waits_for_are_synced_too() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::new(FsyncPolicy::Always, 1 << 30)).unwrap();
    // A log line: appended, never waited for.
    append(&wal, &[("log:app", "line")]);
    let mut rx = wal.shared.sync.durable.subscribe();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|d| d.seq >= 1))
        .await
        .expect("synced by the backstop")
        .unwrap();
}

#[test]
fn close_makes_everything_durable() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(
        dir.path(),
        WalOptions::new(FsyncPolicy::Every(Duration::from_secs(3600)), 1 << 30),
    )
    .unwrap();
    append(&wal, &[("a", "1"), ("a", "2")]);
    assert_eq!(wal.durable().seq, 0);
    wal.close();
    assert_eq!(wal.durable().seq, 2);
}

#[test]
fn fsync_policy_parses() {
    assert_eq!("always".parse(), Ok(FsyncPolicy::Always));
    assert_eq!("1s".parse(), Ok(FsyncPolicy::Every(Duration::from_secs(1))));
    assert_eq!(
        "250ms".parse(),
        Ok(FsyncPolicy::Every(Duration::from_millis(250)))
    );
    assert!("0s".parse::<FsyncPolicy>().is_err());
    assert!("sometimes".parse::<FsyncPolicy>().is_err());
    assert_eq!(FsyncPolicy::Always.to_string(), "always");
    assert_eq!(FsyncPolicy::Every(Duration::from_secs(1)).to_string(), "1s");
}

#[test]
fn leftover_temporary_and_damaged_segments_are_handled_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append(&wal, &[("a", "1")]);
    drop(wal);
    let log = dir.path().join("log");
    std::fs::write(log.join("00000000000000000099.wal.tmp"), b"half").unwrap();
    std::fs::write(log.join("00000000000000000100.wal"), b"no header").unwrap();
    let wal = open(dir.path());
    assert!(!log.join("00000000000000000099.wal.tmp").exists());
    assert!(log.join("00000000000000000100.damaged").exists());
    assert_eq!(data(&read_all(&wal, &["a"], 0)), ["a:1"]);
    // The newest segment was unusable: a new epoch guards its ids.
    assert_eq!(append(&wal, &[("a", "2")]), [2]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Appends in random batches, then cuts the newest segment at a random
    /// point (a crash in the middle of a write) or appends junk, reopens,
    /// and appends more: the log holds exactly the records that were whole
    /// before the cut, then the new ones, each once, in order.
    #[test]
    fn any_cut_keeps_exactly_the_whole_records_before_it(
        batches in proptest::collection::vec(1usize..20, 1..30),
        cut_fraction in 0.0f64..1.0,
        junk in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..100)),
        small_segments in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(1 << 30);
        if small_segments {
            opts.segment_bytes = MIN_SEGMENT_BYTES;
        }
        let wal = Wal::open(dir.path(), opts).unwrap();
        let mut ends = Vec::new();
        for (b, n) in batches.iter().enumerate() {
            let events: Vec<String> = (0..*n).map(|i| format!("{b}.{i} {}", "x".repeat(b * 400))).collect();
            let pairs: Vec<(&str, &str)> = events.iter().map(|d| ("a", d.as_str())).collect();
            append(&wal, &pairs);
            ends.push((wal.last_seq(), std::fs::metadata(newest_segment(dir.path())).unwrap().len()));
        }
        let total = wal.last_seq();
        drop(wal);
        let segment = newest_segment(dir.path());
        let len = std::fs::metadata(&segment).unwrap().len();
        let cut = segment::HEADER_LEN + ((len - segment::HEADER_LEN) as f64 * cut_fraction) as u64;
        let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
        file.set_len(cut).unwrap();
        if let Some(junk) = &junk {
            std::io::Write::write_all(&mut &file, junk).unwrap();
        }
        drop(file);
        let wal = Wal::open(dir.path(), opts).unwrap();
        let kept = wal.last_seq();
        prop_assert!(kept <= total);
        let records = read_all(&wal, &["a"], 0);
        prop_assert_eq!(records.len() as u64, kept);
        prop_assert!(records.iter().enumerate().all(|(i, r)| r.seq == i as u64 + 1));
        append(&wal, &[("a", "after")]);
        drop(wal);
        let wal = Wal::open(dir.path(), opts).unwrap();
        prop_assert!(wal.recovery().repairs.is_empty());
        let records = read_all(&wal, &["a"], 0);
        prop_assert_eq!(records.len() as u64, kept + 1);
        prop_assert_eq!(records.last().unwrap().data.as_ref(), "after");
    }
}
