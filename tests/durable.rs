//! `--data-dir`: the real binary restarted over real files. Ids and resume
//! across restarts (SIGTERM and SIGKILL), followed files checkpointed
//! through downtime, rotation and replacement, acknowledged events surviving
//! SIGTERM and `kill -9` at random points of a publishing run (a property
//! test, both `--fsync` modes), torn-tail repair, retention, and
//! `/api/history`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::*;

/// A data directory and the servers started over it, one at a time.
struct Durable {
    data: tempfile::TempDir,
    files: tempfile::TempDir,
    extra: Vec<String>,
}

impl Durable {
    fn new(extra: &[&str]) -> Durable {
        let files = tempfile::tempdir().unwrap();
        Durable {
            data: tempfile::tempdir().unwrap(),
            files,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    fn start(&self) -> Server {
        let mut args = vec![
            "--data-dir".to_string(),
            self.data.path().display().to_string(),
            "--heartbeat".into(),
            "1s".into(),
        ];
        for a in &self.extra {
            args.push(a.replace("{files}", &self.files.path().display().to_string()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start_in(tempfile::tempdir().unwrap(), &args, Stdio::null(), &[])
    }

    fn segments(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(self.data.path().join("log"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        out.sort();
        out
    }
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    std::io::Write::write_all(&mut file, bytes).unwrap();
}

async fn stop(server: &mut Server) {
    let status = server
        .terminate(DEADLINE)
        .await
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

fn kill9(server: &mut Server) {
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// The numeric part of an id (`EPOCH-SEQ`).
fn seq(id: &str) -> u64 {
    id.rsplit_once('-').unwrap().1.parse().unwrap()
}

async fn publish(server: &Server, channel: &str, data: &str) -> String {
    let (status, body) = post(
        &server.url(&format!("/channels/{channel}")),
        "text/plain",
        data.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Every retained event of `channel`, oldest first, read through
/// `/api/history` page by page: `(id, data)`.
async fn full_history(server: &Server, channel: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut before = String::new();
    loop {
        let url = server.url(&format!(
            "/api/history?channel={channel}&limit=1000&before={before}"
        ));
        let (status, body) = get(&url).await;
        assert_eq!(status, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        for e in page["events"].as_array().unwrap() {
            out.push((
                e["id"].as_str().unwrap().to_string(),
                e["data"].as_str().unwrap().to_string(),
            ));
        }
        match page["next_before"].as_str() {
            Some(next) => before = next.to_string(),
            None => break,
        }
    }
    out.reverse();
    out
}

#[tokio::test]
async fn a_restart_resumes_last_event_id_exactly_single_and_multiplexed() {
    let d = Durable::new(&[]);
    let mut server = d.start();
    let mut ids = Vec::new();
    for i in 0..6 {
        let channel = if i % 2 == 0 { "a" } else { "b" };
        ids.push(publish(&server, channel, &format!("{channel}{i}")).await);
    }
    stop(&mut server).await;

    let server = d.start();
    let mut single =
        Sse::connect_with(&server.url("/realtime/a"), &[("Last-Event-ID", &ids[0])]).await;
    let frames = single.events(2).await;
    assert_eq!(data_of(&frames), ["a2", "a4"]);
    assert_eq!(
        frames[0].id.as_deref(),
        Some(ids[2].as_str()),
        "original ids"
    );
    let mut multi = Sse::connect(&server.url(&format!(
        "/events?channel=a&channel=b&lastEventId={}",
        ids[1]
    )))
    .await;
    let frames = multi.events(4).await;
    let data: Vec<String> = frames
        .iter()
        .map(|f| f.json()["data"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(data, ["a2", "b3", "a4", "b5"]);
    let next = publish(&server, "b", "b6").await;
    assert!(seq(&next) > seq(&ids[5]), "{next} after {}", ids[5]);
    assert_eq!(multi.next_event().await.json()["data"], "b6");
    let next = publish(&server, "a", "a7").await;
    let frame = single.next_event().await;
    assert_eq!(
        (frame.data(), frame.id.as_deref()),
        ("a7", Some(next.as_str()))
    );
}

#[tokio::test]
async fn ids_keep_increasing_across_restarts_and_kills() {
    let d = Durable::new(&[]);
    let mut last = 0;
    for round in 0..4 {
        let mut server = d.start();
        for i in 0..3 {
            let id = publish(&server, "n", &format!("{round}.{i}")).await;
            assert!(seq(&id) > last, "round {round}: {id} after {last}");
            last = seq(&id);
        }
        if round % 2 == 0 {
            stop(&mut server).await;
        } else {
            kill9(&mut server);
        }
    }
    let server = d.start();
    let all = full_history(&server, "n").await;
    assert_eq!(all.len(), 12);
    assert!(all.windows(2).all(|w| seq(&w[0].0) < seq(&w[1].0)));
}

/// The data of every event of log stream `name` delivered from the start
/// of its retained history (an unknown id: reset, then everything).
async fn log_lines(server: &Server, name: &str) -> Vec<String> {
    full_history(server, &format!("log:{name}"))
        .await
        .into_iter()
        .map(|(_, data)| data)
        .collect()
}

async fn wait_lines(server: &Server, name: &str, expected: &[String]) {
    eventually(
        &format!("{name} to hold {} lines", expected.len()),
        || async { (log_lines(server, name).await == expected).then_some(()) },
    )
    .await;
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test]
async fn lines_written_while_down_are_published_exactly_once() {
    for kill in [false, true] {
        let d = Durable::new(&["app={files}/app.log", "--backlog", "0"]);
        let path = d.file("app.log");
        append(&path, "");
        let mut server = d.start();
        wait_following(&server, "log:app").await;
        append(&path, &lines("line ", 0..5));
        wait_lines(&server, "app", &numbered("line ", 0..5)).await;
        let (_, body) = get(&server.url("/api/history?channel=log:app&limit=1")).await;
        let last_id: serde_json::Value = serde_json::from_str(&body).unwrap();
        let last_id = last_id["events"][0]["id"].as_str().unwrap().to_string();
        if kill {
            kill9(&mut server);
        } else {
            stop(&mut server).await;
        }
        append(&path, &lines("line ", 5..10));

        let server = d.start();
        let mut sse =
            Sse::connect_with(&server.url("/logs/app"), &[("Last-Event-ID", &last_id)]).await;
        assert_eq!(
            data_of(&sse.events(5).await),
            numbered("line ", 5..10),
            "kill {kill}"
        );
        append(&path, "line 10\n");
        assert_eq!(sse.next_event().await.data(), "line 10");
        wait_lines(&server, "app", &numbered("line ", 0..11)).await;
    }
}

#[tokio::test]
async fn a_file_rotated_while_down_is_drained_then_the_new_one_read_from_its_start() {
    let d = Durable::new(&["app={files}/app.log", "--backlog", "0"]);
    let path = d.file("app.log");
    append(&path, "");
    let mut server = d.start();
    wait_following(&server, "log:app").await;
    append(&path, "old 1\n");
    wait_lines(&server, "app", &["old 1".into()]).await;
    stop(&mut server).await;
    append(&path, "old 2\n");
    std::fs::rename(&path, d.file("app.log.1")).unwrap();
    append(&path, "new 1\nnew 2\n");

    let server = d.start();
    wait_lines(
        &server,
        "app",
        &[
            "old 1".into(),
            "old 2".into(),
            "new 1".into(),
            "new 2".into(),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_file_replaced_while_down_is_read_from_its_start() {
    let d = Durable::new(&["app={files}/app.log", "--backlog", "0"]);
    let path = d.file("app.log");
    append(&path, "");
    let mut server = d.start();
    wait_following(&server, "log:app").await;
    append(&path, "old 1\nold 2\n");
    wait_lines(&server, "app", &numbered("old ", 1..3)).await;
    stop(&mut server).await;
    std::fs::remove_file(&path).unwrap();
    append(&path, "fresh 1\n");

    let server = d.start();
    wait_lines(
        &server,
        "app",
        &["old 1".into(), "old 2".into(), "fresh 1".into()],
    )
    .await;
}

/// How a run of publishes is ended.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// SIGTERM: a clean shutdown.
    Term,
    /// SIGKILL: a crash.
    Kill,
}

/// Publishes as fast as `publishers` concurrent clients can until
/// `stop_after` publishes are acknowledged, stops the server by `stop`
/// (while publishes are still in flight), and returns every acknowledged
/// `(id, data)`. Each event's data is padded with `pad` bytes.
async fn flood_until_stopped(
    server: &mut Server,
    round: usize,
    (publishers, pad): (usize, usize),
    stop_after: usize,
    stop: Stop,
) -> Vec<(String, String)> {
    let pad = "x".repeat(pad);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let url = server.url("/channels/flood");
    let tasks: Vec<_> = (0..publishers)
        .map(|p| {
            let acked = acked.clone();
            let url = url.clone();
            let pad = pad.clone();
            tokio::spawn(async move {
                let client = client();
                for i in 0.. {
                    let data = format!("r{round}-p{p}-{i}{pad}");
                    let sent = client
                        .post(&url)
                        .header("content-type", "text/plain")
                        .body(data.clone())
                        .timeout(DEADLINE)
                        .send()
                        .await;
                    let Ok(resp) = sent else { return };
                    if resp.status() != 200 {
                        return;
                    }
                    let Ok(text) = resp.text().await else {
                        return;
                    };
                    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
                    acked
                        .lock()
                        .unwrap()
                        .push((body["id"].as_str().unwrap().to_string(), data));
                }
            })
        })
        .collect();
    eventually("enough acknowledged publishes", || async {
        (acked.lock().unwrap().len() >= stop_after).then_some(())
    })
    .await;
    match stop {
        Stop::Term => {
            // A publisher may see its answer cut by the shutdown; only
            // what was answered 200 counts as acknowledged.
            server
                .terminate(DEADLINE)
                .await
                .expect("exits after SIGTERM");
        }
        Stop::Kill => kill9(server),
    }
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    acked
}

/// Stops a publishing run `rounds.len()` times, each by SIGTERM or SIGKILL
/// after a number of acknowledged publishes, restarting over the same
/// `--data-dir` each time; after every restart each acknowledged event is
/// there exactly once, with the id it was answered with, ids increasing.
async fn acknowledged_events_survive(fsync: &str, rounds: Vec<(Stop, usize, usize)>) {
    let d = Durable::new(&["--fsync", fsync, "--history", "1000000"]);
    acknowledged_events_survive_in(&d, 0, rounds).await;
}

/// [`acknowledged_events_survive`] on the data directory of `d`, with
/// events padded by `pad` bytes; returns what was acknowledged.
async fn acknowledged_events_survive_in(
    d: &Durable,
    pad: usize,
    rounds: Vec<(Stop, usize, usize)>,
) -> Vec<(String, String)> {
    let fsync = d.extra.iter().position(|a| a == "--fsync");
    let fsync = fsync.map_or("1s", |i| d.extra[i + 1].as_str());
    let mut acked: Vec<(String, String)> = Vec::new();
    for (round, (stop, stop_after, publishers)) in rounds.into_iter().enumerate() {
        let mut server = d.start();
        let flood = flood_until_stopped(&mut server, round, (publishers, pad), stop_after, stop);
        acked.extend(flood.await);
        let server = d.start();
        let all = full_history(&server, "flood").await;
        let mut count: HashMap<&str, usize> = HashMap::new();
        for (_, data) in &all {
            *count.entry(data.as_str()).or_default() += 1;
        }
        assert!(count.values().all(|&n| n == 1), "an event is there twice");
        let by_data: HashMap<&str, &str> = all
            .iter()
            .map(|(id, data)| (data.as_str(), id.as_str()))
            .collect();
        for (id, data) in &acked {
            assert_eq!(
                by_data.get(data.as_str()),
                Some(&id.as_str()),
                "acknowledged {data} ({id}) lost after {stop:?} with --fsync {fsync}"
            );
        }
        assert!(all.windows(2).all(|w| seq(&w[0].0) < seq(&w[1].0)));
        drop(server);
    }
    acked
}

/// The same across segment rolls: with the smallest segments, a `kill -9`
/// (or SIGTERM) while publishes under `--fsync always` roll segment after
/// segment (the roll's seal, directory sync and retention left to the
/// log's syncer thread) loses no acknowledged event and leaves no damaged
/// segment. (Retention keeps out of the way: about 2.7 MiB are written.)
#[tokio::test]
async fn acknowledged_events_survive_a_kill_while_segments_roll() {
    let d = Durable::new(&[
        "--fsync",
        "always",
        "--history",
        "1000000",
        "--retention-bytes",
        "4MiB",
    ]);
    // 512 KiB segments; about 1.1 KiB per event: a roll every ~450 events.
    let rounds = vec![
        (Stop::Kill, 1000, 8),
        (Stop::Term, 500, 3),
        (Stop::Kill, 1000, 16),
    ];
    let acked = acknowledged_events_survive_in(&d, 1024, rounds).await;
    assert!(acked.len() >= 2500, "{} acknowledged", acked.len());
    assert!(d.segments().len() >= 5, "{:?} rolled", d.segments());
    let damaged = std::fs::read_dir(d.data.path().join("log"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".damaged")
        })
        .count();
    assert_eq!(damaged, 0, "no segment set aside");
}

fn stop_strategy() -> impl proptest::strategy::Strategy<Value = Stop> {
    use proptest::prelude::*;
    prop_oneof![Just(Stop::Term), Just(Stop::Kill)]
}

proptest::proptest! {
    // Each case starts six servers: a few cases, no long shrinking.
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 6,
        max_shrink_iters: 8,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// With `--fsync always` an acknowledged event is on disk; a crash or
    /// a shutdown at any point of a publishing run loses none of them.
    #[test]
    fn stopping_a_publishing_run_at_any_point_loses_no_acknowledged_event(
        rounds in proptest::collection::vec((stop_strategy(), 1usize..400, 1usize..24), 3),
        always in proptest::bool::ANY,
    ) {
        // `--fsync 1s` keeps acknowledged events through a process crash
        // too (written before the answer; only power loss needs fsync).
        let fsync = if always { "always" } else { "1s" };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(acknowledged_events_survive(fsync, rounds));
    }
}

#[tokio::test]
async fn a_torn_or_garbage_tail_is_cut_with_a_warning_and_the_server_starts() {
    for garbage in [false, true] {
        // A followed file rather than the demo, whose generator would add
        // records at any time.
        let d = Durable::new(&["quiet={files}/quiet.log"]);
        let mut server = d.start();
        let first = publish(&server, "t", "kept 1").await;
        let kept = publish(&server, "t", "kept 2").await;
        let torn = publish(&server, "t", "TORN-RECORD").await;
        stop(&mut server).await;
        let segment = d.segments().pop().unwrap();
        let len = std::fs::metadata(&segment).unwrap().len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap();
        // Cut inside the last record, as a crash in the middle of a write.
        file.set_len(len - 3).unwrap();
        drop(file);
        if garbage {
            append_bytes(&segment, &[0xAB; 300]);
        }

        let server = d.start();
        let all = full_history(&server, "t").await;
        let data: Vec<&str> = all.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(
            data,
            ["kept 1", "kept 2"],
            "garbage {garbage}: {:?}",
            server.stderr_lines()
        );
        server.wait_stderr("dropping the torn tail").await;
        let mut sse =
            Sse::connect_with(&server.url("/realtime/t"), &[("Last-Event-ID", &first)]).await;
        assert_eq!(sse.next_event().await.data(), "kept 2");
        let new = publish(&server, "t", "after").await;
        assert_eq!(sse.next_event().await.data(), "after");
        assert!(seq(&new) > seq(&kept));
        assert_ne!(new, torn, "the lost event's id is never given again");
        // The lost event's id names nothing now: reset, then what is retained.
        let mut sse =
            Sse::connect_with(&server.url("/realtime/t"), &[("Last-Event-ID", &torn)]).await;
        let reset = sse.next_event().await;
        assert_eq!(reset.event_type(), "reset");
        assert_eq!(reset.json()["reason"], "unknown id");
        let frames = sse.events(3).await;
        assert_eq!(data_of(&frames), ["kept 1", "kept 2", "after"]);
    }
}

#[tokio::test]
async fn api_history_pages_newest_first_and_filters_by_regex() {
    for durable in [true, false] {
        let d = Durable::new(&[]);
        let server = if durable {
            d.start()
        } else {
            Server::start(&["--heartbeat", "1s"])
        };
        let mut ids = Vec::new();
        for i in 0..250 {
            let level = if i % 10 == 0 { "ERROR" } else { "INFO" };
            ids.push(publish(&server, "h", &format!("{level} event {i}")).await);
        }
        publish(&server, "other", "ERROR elsewhere").await;
        let page = |query: String| {
            let url = server.url(&format!("/api/history?{query}"));
            async move {
                let (status, body) = get(&url).await;
                (
                    status,
                    serde_json::from_str::<serde_json::Value>(&body).unwrap(),
                )
            }
        };
        let (status, first) = page("channel=h".into()).await;
        assert_eq!(status, 200);
        let events = first["events"].as_array().unwrap();
        assert_eq!(events.len(), 100, "limit 100 by default");
        assert_eq!(events[0]["data"], "INFO event 249");
        assert_eq!(events[0]["id"], ids[249]);
        assert_eq!(events[0]["channel"], "h");
        assert_eq!(events[0]["event"], "message");
        assert_eq!(first["next_before"], ids[150]);
        let (_, second) = page(format!("channel=h&limit=100&before={}", ids[150])).await;
        assert_eq!(second["events"][0]["data"], "INFO event 149");
        let (_, errors) = page("channel=h&q=%5EERROR&limit=7".into()).await;
        let data: Vec<&str> = errors["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["data"].as_str().unwrap())
            .collect();
        assert_eq!(
            data,
            [
                "ERROR event 240",
                "ERROR event 230",
                "ERROR event 220",
                "ERROR event 210",
                "ERROR event 200",
                "ERROR event 190",
                "ERROR event 180"
            ]
        );
        let (_, rest) = page(format!(
            "channel=h&q=%5EERROR&before={}",
            errors["next_before"].as_str().unwrap()
        ))
        .await;
        assert_eq!(rest["events"].as_array().unwrap().len(), 18);
        assert_eq!(rest["next_before"], serde_json::Value::Null);
        let (_, big) = page("channel=h&limit=5000".into()).await;
        assert_eq!(
            big["events"].as_array().unwrap().len(),
            250,
            "at most 1000, all 250 here"
        );
        let (_, none) = page("channel=nothing".into()).await;
        assert_eq!(none["events"].as_array().unwrap().len(), 0);
        for (query, error) in [
            ("q=x", "no channel"),
            ("channel=h&q=(", "invalid regex"),
            ("channel=h&limit=0", "invalid limit"),
            ("channel=bad%20name", "invalid channel name"),
            ("channel=h&before=nope", "unknown id"),
        ] {
            let (status, body) = page(query.into()).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some(error)),
                "{query}"
            );
        }
    }
}

#[tokio::test]
async fn retention_by_bytes_drops_the_oldest_segments_whole() {
    let d = Durable::new(&["--retention-bytes", "256KiB", "--history", "1000000"]);
    let mut server = d.start();
    let first = publish(&server, "r", "the very first").await;
    let filler = "x".repeat(2000);
    let client = client();
    for _ in 0..400 {
        let resp = client
            .post(server.url("/channels/r"))
            .header("content-type", "text/plain")
            .body(filler.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // The log's syncer deletes the segments retention took out of
    // service right after a roll: the disk is back within the figure soon
    // after the last publish.
    eventually("the log within --retention-bytes", || async {
        let total: u64 = d
            .segments()
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        (total <= 256 * 1024).then_some(())
    })
    .await;
    assert!(d.segments().len() >= 3);
    let all = full_history(&server, "r").await;
    assert!(all.len() < 401 && all.len() > 50, "{} retained", all.len());
    assert!(
        all.iter().all(|(_, data)| data == &filler),
        "the oldest went first"
    );
    // A resume from before what is retained is told so, then gets the rest.
    let mut sse = Sse::connect_with(&server.url("/realtime/r"), &[("Last-Event-ID", &first)]).await;
    let reset = sse.next_event().await;
    assert_eq!(reset.event_type(), "reset");
    assert_eq!(reset.json()["reason"], "too old");
    assert_eq!(
        sse.next_event().await.id.as_deref(),
        Some(all[0].0.as_str())
    );
    stop(&mut server).await;
    let server = d.start();
    assert_eq!(
        full_history(&server, "r").await,
        all,
        "the same after a restart"
    );
}
