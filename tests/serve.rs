//! `tailcast serve` over real HTTP: log streams, resume, errors, limits,
//! counters, heartbeats, settings and shutdown.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[tokio::test]
async fn sse_response_has_contract_headers_and_retry_first() {
    let server = Server::start(&["--retry", "1234", "app={dir}/app.log"]);
    append(&server.path("app.log"), "one\n");
    wait_following(&server, "log:app").await;
    let mut sse = Sse::connect(&server.url("/logs/app")).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert_eq!(sse.headers["cache-control"], "no-cache");
    assert_eq!(sse.headers["x-accel-buffering"], "no");
    let first = sse.next_frame().await.unwrap();
    assert_eq!(first.raw, "retry: 1234\n\n");
}

#[tokio::test]
async fn new_subscriber_gets_backlog_then_tail_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("app.log"), &lines("old ", 0..30));
    let server = Server::start_in(
        dir,
        &["--backlog", "10", "{dir}/app.log"],
        Stdio::null(),
        &[],
    );
    wait_following(&server, "log:app.log").await;
    let mut backlog = Sse::connect(&server.url("/logs/app.log")).await;
    let mut tail = Sse::connect(&server.url("/logs/app.log?tail=3")).await;
    let mut none = Sse::connect(&server.url("/logs/app.log?tail=0")).await;
    assert_eq!(
        data_of(&backlog.events(10).await),
        lines("old ", 20..30).lines().collect::<Vec<_>>()
    );
    assert_eq!(
        data_of(&tail.events(3).await),
        ["old 27", "old 28", "old 29"]
    );
    // A live line comes right after the backlog: nothing else was sent.
    let path = server.path("app.log");
    assert_eq!(events_until_line(&mut backlog, &path, "live").await, []);
    assert_eq!(events_until(&mut tail, "live").await, []);
    assert_eq!(events_until(&mut none, "live").await, []);
}

#[tokio::test]
async fn live_lines_arrive_in_order_with_increasing_ids() {
    let server = Server::start(&["{dir}/app.log"]);
    let path = server.path("app.log");
    append(&path, "");
    wait_following(&server, "log:app.log").await;
    let mut sse = Sse::connect(&server.url("/stream-logs")).await;
    for chunk in 0..10 {
        append(&path, &lines("line ", chunk * 50..(chunk + 1) * 50));
    }
    let events = sse.events(500).await;
    assert_eq!(
        data_of(&events),
        lines("line ", 0..500).lines().collect::<Vec<_>>()
    );
    let seqs: Vec<u64> = events.iter().map(Frame::seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ids not increasing");
}

async fn resume_gets_exactly_the_missed_lines(use_header: bool) {
    let server = Server::start(&["{dir}/app.log"]);
    let path = server.path("app.log");
    append(&path, "");
    wait_following(&server, "log:app.log").await;
    let mut sse = Sse::connect(&server.url("/logs/app.log")).await;
    append(&path, &lines("a", 0..5));
    let seen = sse.events(5).await;
    let last_id = seen[4].id.clone().unwrap();
    drop(sse);
    append_and_wait_published(&server, "app.log", "app.log", &lines("b", 0..7)).await;
    let mut resumed = if use_header {
        Sse::connect_with(&server.url("/logs/app.log"), &[("last-event-id", &last_id)]).await
    } else {
        Sse::connect(&server.url(&format!("/logs/app.log?lastEventId={last_id}"))).await
    };
    // Exactly the missed lines, then the next live one: nothing repeated,
    // nothing skipped.
    assert_eq!(
        data_of(&events_until_line(&mut resumed, &path, "c").await),
        lines("b", 0..7).lines().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn resume_with_last_event_id_header() {
    resume_gets_exactly_the_missed_lines(true).await;
}

#[tokio::test]
async fn resume_with_last_event_id_query_parameter() {
    resume_gets_exactly_the_missed_lines(false).await;
}

#[tokio::test]
async fn unknown_last_event_id_gets_reset_then_retained_lines() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("app.log"), &lines("x", 0..3));
    let server = Server::start_in(dir, &["{dir}/app.log"], Stdio::null(), &[]);
    wait_following(&server, "log:app.log").await;
    for bad in ["garbage", "00000000-5"] {
        let mut sse =
            Sse::connect_with(&server.url("/logs/app.log"), &[("last-event-id", bad)]).await;
        let reset = sse.next_event().await;
        assert_eq!(reset.event_type(), "reset");
        assert_eq!(reset.json()["channel"], "log:app.log");
        assert_eq!(reset.json()["reason"], "unknown id");
        assert_eq!(data_of(&sse.events(3).await), ["x0", "x1", "x2"]);
    }
}

#[tokio::test]
async fn resume_older_than_history_gets_reset() {
    let server = Server::start(&["--history", "5", "{dir}/app.log"]);
    let path = server.path("app.log");
    append(&path, "");
    wait_following(&server, "log:app.log").await;
    let mut sse = Sse::connect(&server.url("/logs/app.log")).await;
    append(&path, "first\n");
    let id = sse.next_event().await.id.unwrap();
    drop(sse);
    append_and_wait_published(&server, "app.log", "app.log", &lines("n", 0..10)).await;
    let mut resumed =
        Sse::connect_with(&server.url("/logs/app.log"), &[("last-event-id", &id)]).await;
    let reset = resumed.next_event().await;
    assert_eq!(reset.event_type(), "reset");
    assert_eq!(reset.json()["reason"], "too old");
    assert_eq!(
        data_of(&resumed.events(5).await),
        ["n5", "n6", "n7", "n8", "n9"]
    );
}

#[tokio::test]
async fn grep_filters_lines_on_the_server() {
    let server = Server::start(&["{dir}/app.log"]);
    let path = server.path("app.log");
    append(&path, "");
    wait_following(&server, "log:app.log").await;
    let mut sse = Sse::connect(&server.url("/logs/app.log?grep=ERROR%7CWARN")).await;
    append(&path, "INFO a\nERROR b\nDEBUG c\nWARN d\nINFO e\nERROR f\n");
    assert_eq!(
        data_of(&events_until_line(&mut sse, &path, "WARN end").await),
        ["ERROR b", "WARN d", "ERROR f"]
    );
}

#[tokio::test]
async fn unknown_stream_is_404_and_bad_regex_is_400_as_json() {
    let server = Server::start(&["{dir}/app.log"]);
    let (status, body) = get(&server.url("/logs/nope")).await;
    assert_eq!(status, 404);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "not found");
    assert!(json["detail"].as_str().unwrap().contains("nope"));

    let (status, body) = get(&server.url("/logs/app.log?grep=%28unclosed")).await;
    assert_eq!(status, 400);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "invalid regex");

    let (status, _) = get(&server.url("/logs/app.log?tail=-1")).await;
    assert_eq!(status, 400);
    let (status, _) = get(&server.url("/no/such/endpoint")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn two_concurrent_subscribers_receive_identical_sequences() {
    let server = Server::start(&["{dir}/app.log"]);
    let path = server.path("app.log");
    append(&path, "");
    wait_following(&server, "log:app.log").await;
    let mut a = Sse::connect(&server.url("/logs/app.log")).await;
    let mut b = Sse::connect(&server.url("/logs/app.log")).await;
    let writer = std::thread::spawn(move || {
        for i in 0..20 {
            append(&path, &lines(&format!("w{i}-"), 0..25));
        }
    });
    let (ea, eb) = tokio::join!(a.events(500), b.events(500));
    writer.join().unwrap();
    assert_eq!(
        ea.iter().map(|f| &f.raw).collect::<Vec<_>>(),
        eb.iter().map(|f| &f.raw).collect::<Vec<_>>()
    );
    assert_eq!(ea.len(), 500);
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_does_not_delay_another() {
    let server = Server::start(&["--send-timeout", "60s", "{dir}/app.log"]);
    let path = server.path("app.log");
    append(&path, "");
    wait_following(&server, "log:app.log").await;
    let stalled = StalledSubscriber::connect(&server, "/logs/app.log", "log:app.log").await;
    let mut reader = Sse::connect(&server.url("/logs/app.log")).await;
    // ~8 MB: far more than the socket buffers of the stalled connection.
    let big = "x".repeat(4000);
    let writer = std::thread::spawn(move || {
        for i in 0..2000 {
            append(&path, &format!("{i} {big}\n"));
        }
    });
    let events = reader.events(2000).await;
    writer.join().unwrap();
    for (i, e) in events.iter().enumerate() {
        assert!(
            e.data().starts_with(&format!("{i} ")),
            "line {i} out of order"
        );
    }
    drop(stalled);
}

#[tokio::test]
async fn a_stalled_subscriber_is_dropped_after_send_timeout() {
    let server = Server::start(&["--send-timeout", "500ms", "{dir}/app.log"]);
    let path = server.path("app.log");
    append(&path, "");
    wait_following(&server, "log:app.log").await;
    let _stalled = StalledSubscriber::connect(&server, "/logs/app.log", "log:app.log").await;
    let big = "y".repeat(8000);
    for i in 0..1500 {
        append(&path, &format!("{i} {big}\n"));
    }
    eventually("stalled subscriber dropped", || async {
        (stream_info(&server, "log:app.log").await?["subscribers"] == 0).then_some(())
    })
    .await;
    wait_metric(&server, "tailcast_slow_subscribers_dropped_total", 1.0).await;
}

/// README: a subscriber that falls more than `--history` events behind
/// gets `reset` (`lagged`) and continues from the oldest retained event;
/// the server's memory does not grow with what it missed.
#[tokio::test]
async fn a_lagging_subscriber_gets_reset_lagged_and_memory_stays_bounded() {
    const HISTORY: usize = 100;
    let history = HISTORY.to_string();
    let server = Server::start(&[
        "--history",
        &history,
        "--send-timeout",
        "1h",
        "app={dir}/app.log",
    ]);
    append(&server.path("app.log"), "");
    wait_following(&server, "log:app").await;
    let stalled = StalledSubscriber::connect(&server, "/logs/app?tail=0", "log:app").await;
    let pad = "m".repeat(10_000);
    let batch = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i} {pad}")).collect()
    };
    // Only this log publishes, so its lines take ids 1, 2, 3...: waiting
    // for an id needs no subscriber (which could lag and count resets).
    // A first round brings buffers and allocator arenas to working size.
    let warm = batch("w", 1_000);
    append(&server.path("app.log"), &(warm.join("\n") + "\n"));
    wait_last_seq(&server, "log:app", warm.len() as u64).await;
    let before = server.rss_kib();
    // 20 MB the stalled subscriber does not read.
    let main = batch("n", 2_000);
    for part in main.chunks(500) {
        append(&server.path("app.log"), &(part.join("\n") + "\n"));
    }
    wait_last_seq(&server, "log:app", (warm.len() + main.len()) as u64).await;
    let grown_kib = server.rss_kib().saturating_sub(before);
    eprintln!("server RSS {before} KiB, then {grown_kib} KiB more after 20 MB");
    assert!(
        grown_kib < 10 * 1024,
        "server RSS grew {grown_kib} KiB while a subscriber missed 20 MB"
    );

    // The subscriber reads again: runs of lines in order, a `reset` before
    // every gap (never a silent one), and last the lines still retained.
    let mut sse = stalled.resume_reading().await;
    assert_eq!(sse.status, 200);
    let position = |line: &str| -> usize {
        let label = line.split(' ').next().unwrap();
        let n: usize = label[1..].parse().unwrap();
        if label.starts_with('w') {
            n
        } else {
            warm.len() + n
        }
    };
    let last = warm.len() + main.len() - 1;
    let mut resets = 0;
    let mut after_reset = true;
    let mut previous: Option<usize> = None;
    let mut since_last_reset = Vec::new();
    loop {
        let e = sse.next_event().await;
        if e.event_type() == "reset" {
            assert_eq!(
                e.json(),
                serde_json::json!({"channel": "log:app", "reason": "lagged"})
            );
            resets += 1;
            after_reset = true;
            since_last_reset.clear();
            continue;
        }
        let at = position(e.data());
        if let Some(p) = previous {
            assert!(at > p, "line {at} after line {p}: out of order or repeated");
            assert!(
                at == p + 1 || after_reset,
                "lines {p} to {at} skipped without a reset"
            );
        }
        previous = Some(at);
        after_reset = false;
        since_last_reset.push(at);
        if at == last {
            break;
        }
    }
    assert!(resets >= 1, "a subscriber 2,000 lines behind got no reset");
    assert_eq!(
        since_last_reset,
        (last + 1 - HISTORY..=last).collect::<Vec<_>>(),
        "after the last reset: the {HISTORY} retained lines"
    );
    assert_eq!(
        events_until_line(&mut sse, &server.path("app.log"), "end").await,
        []
    );
    wait_metric(&server, "tailcast_resets_total", resets as f64).await;
}

/// Every counter of `/metrics` that a log stream and its subscribers move,
/// checked for its exact value after each step: a counter stuck at 0, or
/// counting twice, fails here.
#[tokio::test]
async fn counters_follow_lines_rotations_deliveries_resumes_and_resets() {
    const LINES: &str = "tailcast_lines_read_total";
    const ROTATIONS: &str = "tailcast_file_rotations_total";
    const DELIVERED: &str = "tailcast_events_delivered_total";
    const SENT: &str = "tailcast_sent_bytes_total";
    const RESUMES: &str = "tailcast_resumes_total";
    const RESETS: &str = "tailcast_resets_total";
    let server = Server::start(&["app={dir}/app.log"]);
    let path = server.path("app.log");
    append(&path, "");
    wait_following(&server, "log:app").await;
    for name in [LINES, ROTATIONS, DELIVERED, SENT, RESUMES, RESETS] {
        assert_eq!(metric(&server, name).await, 0.0, "{name} at start");
    }
    // What the clients received so far: the counters must match it.
    let mut delivered = 0.0;
    let mut sent = 0.0;
    let mut count = |frames: &[Frame]| {
        for f in frames {
            if f.event_type() != "reset" {
                delivered += 1.0;
            }
            sent += f.raw.len() as f64;
        }
        (delivered, sent)
    };
    let subscribers = |n: u64| {
        let server = &server;
        async move {
            eventually(&format!("{n} subscriber(s)"), || async {
                (stream_info(server, "log:app").await?["subscribers"] == n).then_some(())
            })
            .await
        }
    };

    let mut live = Sse::connect(&server.url("/logs/app?tail=0")).await;
    append(&path, "a1\na2\n");
    let first = live.events(2).await;
    wait_metric(&server, LINES, 2.0).await;
    let (d, s) = count(&first);
    assert_eq!(metric(&server, DELIVERED).await, d);
    assert_eq!(metric(&server, SENT).await, s);

    // A resume with a known id: one resume, the missed line delivered.
    let mut resumed = Sse::connect_with(
        &server.url("/logs/app"),
        &[("last-event-id", first[0].id.as_deref().unwrap())],
    )
    .await;
    let missed = resumed.events(1).await;
    assert_eq!(data_of(&missed), ["a2"]);
    let (d, s) = count(&missed);
    assert_eq!(metric(&server, RESUMES).await, 1.0);
    assert_eq!(metric(&server, RESETS).await, 0.0);
    assert_eq!(metric(&server, DELIVERED).await, d);
    assert_eq!(metric(&server, SENT).await, s);

    // A resume with an id of no run of this server: a reset, then the
    // retained lines.
    let mut reset = Sse::connect_with(&server.url("/logs/app"), &[("last-event-id", "x-1")]).await;
    let got = reset.events(3).await;
    assert_eq!(got[0].event_type(), "reset");
    assert_eq!(data_of(&got[1..]), ["a1", "a2"]);
    let (d, s) = count(&got);
    assert_eq!(metric(&server, RESUMES).await, 2.0);
    assert_eq!(metric(&server, RESETS).await, 1.0);
    assert_eq!(metric(&server, DELIVERED).await, d);
    assert_eq!(metric(&server, SENT).await, s);
    drop((resumed, reset));
    subscribers(1).await;

    // Rotation by rename, then copytruncate: two rotations, every line read.
    std::fs::rename(&path, server.path("app.log.1")).unwrap();
    append(&path, "b1\n");
    let rotated = live.events(1).await;
    assert_eq!(data_of(&rotated), ["b1"]);
    wait_metric(&server, ROTATIONS, 1.0).await;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    wait_metric(&server, ROTATIONS, 2.0).await;
    append(&path, "c1\n");
    let truncated = live.events(1).await;
    assert_eq!(data_of(&truncated), ["c1"]);
    wait_metric(&server, LINES, 4.0).await;
    count(&rotated);
    let (d, s) = count(&truncated);
    assert_eq!(metric(&server, DELIVERED).await, d);
    assert_eq!(metric(&server, SENT).await, s);
    assert_eq!(metric(&server, RESUMES).await, 2.0);
    assert_eq!(metric(&server, RESETS).await, 1.0);
}

#[tokio::test]
async fn heartbeat_comments_arrive_on_idle_streams() {
    let server = Server::start(&["--heartbeat", "200ms", "{dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/logs/app.log")).await;
    let mut pings = 0;
    while pings < 2 {
        let frame = sse.next_frame().await.unwrap();
        assert!(
            frame.data.is_none(),
            "no event on an idle stream: {frame:?}"
        );
        if frame.comments.iter().any(|c| c == "ping") {
            assert_eq!(frame.raw, ": ping\n\n");
            pings += 1;
        }
    }
}

/// The reader of the tests must not take a connection the server cut for
/// a stream that ended cleanly (the chunked body's last chunk), or the
/// shutdown tests would pass when the server aborts.
#[tokio::test]
async fn the_test_sse_reader_tells_an_aborted_stream_from_a_clean_end() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    for clean in [true, false] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                socket.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            let frame = "retry: 1000\n\n";
            let mut out = String::from(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                 transfer-encoding: chunked\r\n\r\n",
            );
            out.push_str(&format!("{:x}\r\n{frame}\r\n", frame.len()));
            if clean {
                out.push_str("0\r\n\r\n");
            }
            socket.write_all(out.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
        });
        let mut sse = Sse::connect(&format!("http://{addr}/")).await;
        let first = sse.next_frame().await.unwrap();
        assert_eq!(first.retry.as_deref(), Some("1000"));
        let end = sse.try_next_frame(DEADLINE).await;
        if clean {
            assert_eq!(end, Ok(None), "a terminated chunked body is a clean end");
        } else {
            assert!(
                matches!(end, Err(NoFrame::Aborted(_))),
                "a body cut short is an abort, got {end:?}"
            );
        }
        fake.await.unwrap();
    }
}

#[tokio::test]
async fn sigterm_ends_streams_cleanly_and_exits_zero_within_5s() {
    let mut server = Server::start(&["{dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/logs/app.log")).await;
    assert_eq!(
        sse.next_frame().await.unwrap().retry.as_deref(),
        Some("3000")
    );
    wait_signal_handlers(server.pid()).await;
    let start = Instant::now();
    let status = server
        .terminate(Duration::from_secs(5))
        .await
        .expect("exited within 5 s");
    assert!(status.success(), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    // The stream ended with the chunked body's last chunk, not cut off
    // (`next_frame` panics on an aborted connection).
    assert_eq!(sse.next_frame().await, None);
    assert_eq!(sse.end, Some(StreamEnd::Clean));
}

/// README: "a second signal exits at once". The first signal's graceful
/// shutdown is held up by a subscriber that stopped reading (its write
/// blocks, `--send-timeout` is an hour); the second ends the process with
/// status 130 instead of waiting for the 4.5 s deadline (status 0).
#[tokio::test]
async fn a_second_signal_exits_at_once_while_shutdown_waits_for_a_stalled_client() {
    let mut server = Server::start(&["--send-timeout", "1h", "app={dir}/app.log"]);
    append(&server.path("app.log"), "");
    wait_following(&server, "log:app").await;
    let stalled = StalledSubscriber::connect(&server, "/logs/app?tail=0", "log:app").await;
    // Far more than the stalled connection's socket buffers hold.
    let big = "z".repeat(8000);
    let text: String = (0..1500).map(|i| format!("{i} {big}\n")).collect();
    append_and_wait_published(&server, "app.log", "app", &text).await;

    server.signal("INT").await;
    server.wait_stderr("shutting down").await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the first signal's shutdown must be waiting for the stalled stream"
    );
    // Repeated until one lands: a signal that arrives while the first is
    // still being handled can merge with it.
    let start = Instant::now();
    let status = loop {
        send_signal(server.pid(), "TERM");
        if let Some(status) = server.exit_within(Duration::from_millis(200)).await {
            break status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the second signal did not end it"
        );
    };
    assert_eq!(
        status.code(),
        Some(130),
        "exit by the second signal, not by the shutdown deadline"
    );
    drop(stalled);
}

/// `waiting` is also the state a stream has before its follower ran, so
/// the check that means something is the change from `following` to
/// `waiting` when the file goes away.
#[tokio::test]
async fn missing_or_deleted_file_is_shown_waiting_then_followed_from_its_start() {
    let server = Server::start(&["late={dir}/late.log"]);
    let info = eventually("listed", || async {
        stream_info(&server, "log:late").await
    })
    .await;
    assert_eq!(info["state"], "waiting");
    assert_eq!(info["kind"], "log");
    assert!(info["path"].as_str().unwrap().ends_with("late.log"));
    let mut sse = Sse::connect(&server.url("/logs/late")).await;
    let path = server.path("late.log");
    append(&path, "first\nsecond\n");
    assert_eq!(data_of(&sse.events(2).await), ["first", "second"]);
    wait_following(&server, "log:late").await;

    std::fs::remove_file(&path).unwrap();
    eventually("waiting after the file was deleted", || async {
        (stream_info(&server, "log:late").await?["state"] == "waiting").then_some(())
    })
    .await;
    append(&path, "again\n");
    assert_eq!(sse.next_event().await.data(), "again");
    wait_following(&server, "log:late").await;
}

#[tokio::test]
async fn a_path_that_cannot_be_followed_shows_error_state_in_api_streams() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    let server = Server::start_in(dir, &["bad={dir}/adir"], Stdio::null(), &[]);
    let state = eventually("an error state", || async {
        let state = stream_info(&server, "log:bad").await?["state"]
            .as_str()?
            .to_string();
        state.starts_with("error: ").then_some(state)
    })
    .await;
    assert!(state.contains("directory"), "{state}");
}

#[tokio::test]
async fn glob_streams_are_named_by_file_and_new_matches_are_added() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("a.log"), "a\n");
    let server = Server::start_in(dir, &["{dir}/*.log"], Stdio::null(), &[]);
    wait_following(&server, "log:a.log").await;
    append(&server.path("b.log"), "");
    wait_following(&server, "log:b.log").await;
    let mut sse = Sse::connect(&server.url("/logs/b.log")).await;
    append(&server.path("b.log"), "hello b\n");
    assert_eq!(sse.next_event().await.data(), "hello b");
}

#[tokio::test]
async fn stdin_is_served_as_stream_stdin() {
    let mut server = Server::start_with(&["-"], Stdio::piped(), &[]);
    let mut stdin = server.child.stdin.take().unwrap();
    let mut sse = Sse::connect(&server.url("/logs/stdin")).await;
    std::io::Write::write_all(&mut stdin, b"from stdin\r\nsecond\n").unwrap();
    assert_eq!(data_of(&sse.events(2).await), ["from stdin", "second"]);
}

#[tokio::test]
async fn max_line_splits_long_lines_on_character_boundaries_end_to_end() {
    let server = Server::start(&["--max-line", "8", "app={dir}/app.log"]);
    let path = server.path("app.log");
    append(&path, "");
    wait_following(&server, "log:app").await;
    let mut sse = Sse::connect(&server.url("/logs/app")).await;
    // a×6 + é (2 bytes) fills 8 bytes; 漢字 (3+3) leaves no room for 😀 (4).
    append(&path, "aaaaaaé漢字😀b\n");
    assert_eq!(
        data_of(&events_until_line(&mut sse, &path, "short").await),
        ["aaaaaaé", "漢字", "😀b"]
    );
}

/// `/health` answers `"ok"` whenever it answers at all, so what can fail
/// is that its figures follow the server.
#[tokio::test]
async fn health_counts_follow_connections_and_channels() {
    let server = Server::start(&["{dir}/app.log"]);
    let health = || async {
        let (status, body) = get(&server.url("/health")).await;
        assert_eq!(status, 200);
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let channels_listed = || async {
        let (_, body) = get(&server.url("/api/streams")).await;
        serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap()
            .len()
    };
    let first = health().await;
    assert_eq!(first["status"], "ok");
    assert_eq!(first["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(first["connections"], 0);
    assert_eq!(first["channels"], channels_listed().await);

    let a = Sse::connect(&server.url("/realtime/one")).await;
    let b = Sse::connect(&server.url("/realtime/two")).await;
    let open = health().await;
    assert_eq!(open["connections"], 2);
    assert_eq!(open["channels"], channels_listed().await);
    assert!(
        open["channels"].as_u64().unwrap() >= first["channels"].as_u64().unwrap() + 2,
        "{first} then {open}"
    );
    assert!(open["uptime_s"].as_f64().unwrap() > first["uptime_s"].as_f64().unwrap());

    drop(a);
    drop(b);
    eventually("connections back to 0", || async {
        (health().await["connections"] == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn max_connections_answers_503_with_retry_after() {
    let server = Server::start(&["--max-connections", "1", "{dir}/app.log"]);
    let first = Sse::connect(&server.url("/logs/app.log")).await;
    for _ in 0..3 {
        let resp = client()
            .get(server.url("/logs/app.log"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 503);
        assert!(resp.headers().contains_key("retry-after"));
        let json: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(json["error"], "too many connections");
    }
    // The refused requests left nothing behind: once the first stream is
    // closed, a new one is accepted.
    drop(first);
    let mut again = eventually("a stream accepted again", || async {
        let sse = Sse::connect(&server.url("/logs/app.log")).await;
        (sse.status == 200).then_some(sse)
    })
    .await;
    assert!(again.next_frame().await.unwrap().retry.is_some());
}

async fn allowed_origin(server: &Server, origin: &str) -> Option<String> {
    let resp = client()
        .get(server.url("/health"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    resp.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn cors_origin_is_answered_when_configured() {
    let server = Server::start(&["--cors-origin", "http://example.test", "{dir}/app.log"]);
    assert_eq!(
        allowed_origin(&server, "http://example.test")
            .await
            .as_deref(),
        Some("http://example.test")
    );
    assert_eq!(allowed_origin(&server, "http://other.test").await, None);
    let plain = Server::start(&["{dir}/app.log"]);
    assert_eq!(allowed_origin(&plain, "http://x.test").await, None);
}

#[tokio::test]
async fn cors_origins_from_the_environment_are_comma_separated() {
    let server = Server::start_with(
        &["{dir}/app.log"],
        Stdio::null(),
        &[("TAILCAST_CORS_ORIGIN", "http://a.test,http://b.test")],
    );
    for origin in ["http://a.test", "http://b.test"] {
        assert_eq!(
            allowed_origin(&server, origin).await.as_deref(),
            Some(origin)
        );
    }
    assert_eq!(allowed_origin(&server, "http://c.test").await, None);
    assert_eq!(
        allowed_origin(&server, "http://a.test,http://b.test").await,
        None
    );
}

#[tokio::test]
async fn settings_come_from_environment_and_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tailcast.toml");
    std::fs::write(
        &config,
        format!(
            "retry = 777\nheartbeat = \"150ms\"\nfiles = [\"cfg={}/c.log\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let cfg = config.display().to_string();
    let server = Server::start_in(
        dir,
        &["--config", &cfg],
        Stdio::null(),
        &[("TAILCAST_RETRY", "555")],
    );
    let mut sse = Sse::connect(&server.url("/logs/cfg")).await;
    // The environment overrides the file...
    assert_eq!(
        sse.next_frame().await.unwrap().retry.as_deref(),
        Some("555")
    );
    // ...and what only the file sets applies (a heartbeat this fast is
    // nobody's default).
    let ping = sse.next_frame().await.unwrap();
    assert_eq!(ping.raw, ": ping\n\n");
}

#[tokio::test]
async fn flags_override_the_environment() {
    let server = Server::start_with(
        &[
            "--retry",
            "999",
            "--cors-origin",
            "http://flag.test",
            "app={dir}/app.log",
        ],
        Stdio::null(),
        &[
            ("TAILCAST_RETRY", "555"),
            ("TAILCAST_CORS_ORIGIN", "http://env.test"),
        ],
    );
    let mut sse = Sse::connect(&server.url("/logs/app")).await;
    assert_eq!(
        sse.next_frame().await.unwrap().retry.as_deref(),
        Some("999")
    );
    assert_eq!(
        allowed_origin(&server, "http://flag.test").await.as_deref(),
        Some("http://flag.test")
    );
    assert_eq!(allowed_origin(&server, "http://env.test").await, None);
}

fn run_tailcast(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tailcast"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// README: startup errors print one line starting with `error:` and exit
/// with status 1.
#[test]
fn startup_errors_are_one_clear_line_and_exit_status_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    /// Arguments, environment, and what the error line must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (
            &["serve", "--addr", &addr, "/tmp/x.log"],
            &[],
            &format!("cannot listen on {addr}"),
        ),
        (
            &["serve", "--config", "/nonexistent/tailcast.toml"],
            &[],
            "cannot read config file",
        ),
        (&["serve", "--heartbeat", "soon"], &[], "--heartbeat"),
        (&["serve"], &[("TAILCAST_MAX_LINE", "huge")], "--max-line"),
        (&["serve", "--history", "0"], &[], "invalid --history"),
        (&["serve", "--no-such-flag"], &[], "--no-such-flag"),
    ];
    for (args, env, needle) in cases {
        let out = run_tailcast(args, env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert_eq!(out.stdout, b"", "{args:?}");
    }

    // No command at all: the usage, and a failure.
    let out = run_tailcast(&[], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
    // Help and version are answers, not errors.
    for flag in ["--help", "--version"] {
        let out = run_tailcast(&[flag], &[]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert!(!out.stdout.is_empty(), "{flag}");
    }
}

#[test]
fn generate_writes_count_lines_in_python_logging_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gen.log");
    let out = run_tailcast(
        &[
            "generate",
            path.to_str().unwrap(),
            "--interval",
            "1ms",
            "--count",
            "20",
        ],
        &[],
    );
    assert!(out.status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    let re = regex::Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - log_app - (DEBUG|INFO|WARNING|ERROR) - log message num: (\d+)$").unwrap();
    for (i, line) in text.lines().enumerate() {
        let caps = re
            .captures(line)
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        assert_eq!(caps[2].parse::<usize>().unwrap(), i);
    }
    assert_eq!(text.lines().count(), 20);
}

#[tokio::test]
async fn demo_mode_serves_a_generated_log_as_stream_demo() {
    let server = Server::start(&[]);
    let mut sse = Sse::connect(&server.url("/stream-logs")).await;
    let first = sse.next_event().await;
    assert!(first.data().contains(" - log_app - "), "{first:?}");
    let second = sse.next_event().await;
    assert!(second.data().contains(" - log_app - "), "{second:?}");
    assert!(second.seq() > first.seq());
    assert!(stream_info(&server, "log:demo").await.is_some());
}

/// Regression guard for the lean SSE path (`server::sse_conn`): a client
/// that closes an idle stream must be unsubscribed without waiting for the
/// next write to fail.
#[tokio::test]
async fn closing_an_idle_stream_unsubscribes_at_once() {
    use std::io::{Read as _, Write as _};
    let server = Server::start(&["--heartbeat", "1h", "{dir}/app.log"]);
    let mut raw = std::net::TcpStream::connect(&server.addr).unwrap();
    raw.write_all(b"GET /realtime/gone HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        raw.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head}"
    );
    eventually("subscribed", || async {
        (stream_info(&server, "gone").await?["subscribers"] == 1).then_some(())
    })
    .await;
    drop(raw);
    // The channel leaves `/api/streams` with its last subscriber.
    eventually("unsubscribed", || async {
        let info = stream_info(&server, "gone").await;
        info.is_none_or(|s| s["subscribers"] == 0).then_some(())
    })
    .await;
}

/// Request heads longer than the lean path's first buffer (512 B) or than
/// its limit (16 KiB, then hyper serves the request) work as before, and so
/// does a request whose body comes in a second write.
#[tokio::test]
async fn long_heads_and_split_requests_are_served() {
    let server = Server::start(&["{dir}/app.log"]);
    for len in [600, 4000, 20_000] {
        let pad = "p".repeat(len);
        let mut sse = Sse::connect_with(&server.url("/realtime/long"), &[("x-pad", &pad)]).await;
        assert_eq!(sse.status, 200, "header of {len} bytes");
        assert!(sse.next_frame().await.unwrap().raw.starts_with("retry: "));
        let resp = client()
            .get(server.url("/health"))
            .header("x-pad", &pad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "header of {len} bytes");
    }
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut raw = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    raw.set_nodelay(true).unwrap();
    raw.write_all(
        b"POST /channels/split HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
          Content-Length: 5\r\nConnection: close\r\n\r\nhe",
    )
    .await
    .unwrap();
    raw.write_all(b"llo").await.unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\"channel\":\"split\""), "{answer}");
}
