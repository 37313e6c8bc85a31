//! `tailcast serve` over real HTTP: log streams, resume, errors, limits,
//! heartbeats and shutdown.

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
    let mut sse = Sse::connect(&server.url("/logs/app.log")).await;
    let events = sse.events(10).await;
    assert_eq!(
        data_of(&events),
        lines("old ", 20..30).lines().collect::<Vec<_>>()
    );
    sse.assert_quiet(Duration::from_millis(300)).await;

    let mut tail = Sse::connect(&server.url("/logs/app.log?tail=3")).await;
    assert_eq!(
        data_of(&tail.events(3).await),
        ["old 27", "old 28", "old 29"]
    );
    let mut none = Sse::connect(&server.url("/logs/app.log?tail=0")).await;
    none.assert_quiet(Duration::from_millis(300)).await;
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
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| {
            e.id.as_ref()
                .unwrap()
                .rsplit('-')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
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
    append(&path, &lines("b", 0..7));
    // Wait until the server has read them all, then resume.
    let before = stream_info(&server, "log:app.log").await.unwrap();
    let _ = before;
    eventually("lines read", || async {
        let info = stream_info(&server, "log:app.log").await?;
        let last = info["last_id"]
            .as_str()?
            .rsplit('-')
            .next()?
            .parse::<u64>()
            .ok()?;
        let first: u64 = last_id.rsplit('-').next().unwrap().parse().unwrap();
        (last >= first + 7).then_some(())
    })
    .await;
    let mut resumed = if use_header {
        Sse::connect_with(&server.url("/logs/app.log"), &[("last-event-id", &last_id)]).await
    } else {
        Sse::connect(&server.url(&format!("/logs/app.log?lastEventId={last_id}"))).await
    };
    let missed = resumed.events(7).await;
    assert_eq!(
        data_of(&missed),
        lines("b", 0..7).lines().collect::<Vec<_>>()
    );
    resumed.assert_quiet(Duration::from_millis(300)).await;
    append(&path, "c\n");
    assert_eq!(resumed.next_event().await.data(), "c");
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
    append(&path, &lines("n", 0..10));
    eventually("all read", || async {
        let info = stream_info(&server, "log:app.log").await?;
        info["last_id"]
            .as_str()?
            .ends_with(&format!("-{}", 11))
            .then_some(())
    })
    .await;
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
        data_of(&sse.events(3).await),
        ["ERROR b", "WARN d", "ERROR f"]
    );
    sse.assert_quiet(Duration::from_millis(300)).await;
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

/// A raw connection that sends its request for `path` and then never reads,
/// returned once the server counts it as a subscriber of `stream`.
async fn stalled_subscriber(server: &Server, path: &str, stream: &str) -> std::net::TcpStream {
    let mut stalled = std::net::TcpStream::connect(&server.addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    std::io::Write::write_all(&mut stalled, request.as_bytes()).unwrap();
    eventually("stalled subscriber registered", || async {
        (stream_info(server, stream).await?["subscribers"] == 1).then_some(())
    })
    .await;
    stalled
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_does_not_delay_another() {
    let server = Server::start(&["--send-timeout", "60s", "{dir}/app.log"]);
    let path = server.path("app.log");
    append(&path, "");
    wait_following(&server, "log:app.log").await;
    let stalled = stalled_subscriber(&server, "/logs/app.log", "log:app.log").await;
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
    let _stalled = stalled_subscriber(&server, "/logs/app.log", "log:app.log").await;
    let big = "y".repeat(8000);
    for i in 0..1500 {
        append(&path, &format!("{i} {big}\n"));
    }
    eventually("stalled subscriber dropped", || async {
        (stream_info(&server, "log:app.log").await?["subscribers"] == 0).then_some(())
    })
    .await;
    let (_, text) = get(&server.url("/metrics")).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("tailcast_slow_subscribers_dropped_total 1")),
        "{text}"
    );
}

#[tokio::test]
async fn heartbeat_comments_arrive_on_idle_streams() {
    let server = Server::start(&["--heartbeat", "200ms", "{dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/logs/app.log")).await;
    let mut pings = 0;
    while pings < 2 {
        let frame = sse.next_frame().await.unwrap();
        if frame.comments.iter().any(|c| c == "ping") {
            assert_eq!(frame.raw, ": ping\n\n");
            pings += 1;
        }
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
    let start = Instant::now();
    let status = server
        .terminate(Duration::from_secs(5))
        .expect("exited within 5 s");
    assert!(status.success(), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    // The stream ended (chunked body terminated), not hung.
    assert_eq!(sse.next_frame().await, None);
}

#[tokio::test]
async fn missing_file_is_shown_waiting_then_followed_from_its_start() {
    let server = Server::start(&["late={dir}/late.log"]);
    let info = eventually("listed", || async {
        stream_info(&server, "log:late").await
    })
    .await;
    assert_eq!(info["state"], "waiting");
    assert_eq!(info["kind"], "log");
    assert!(info["path"].as_str().unwrap().ends_with("late.log"));
    let mut sse = Sse::connect(&server.url("/logs/late")).await;
    append(&server.path("late.log"), "first\nsecond\n");
    assert_eq!(data_of(&sse.events(2).await), ["first", "second"]);
    assert_eq!(
        stream_info(&server, "log:late").await.unwrap()["state"],
        "following"
    );
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
async fn health_reports_status_and_counts() {
    let server = Server::start(&["{dir}/app.log"]);
    let _sse = Sse::connect(&server.url("/logs/app.log")).await;
    let (status, body) = get(&server.url("/health")).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert!(json["uptime_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(json["connections"], 1);
    assert!(json["channels"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn max_connections_answers_503_with_retry_after() {
    let server = Server::start(&["--max-connections", "1", "{dir}/app.log"]);
    let _first = Sse::connect(&server.url("/logs/app.log")).await;
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

#[tokio::test]
async fn cors_origin_is_answered_when_configured() {
    let server = Server::start(&["--cors-origin", "http://example.test", "{dir}/app.log"]);
    let resp = client()
        .get(server.url("/health"))
        .header("origin", "http://example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://example.test"
    );
    let plain = Server::start(&["{dir}/app.log"]);
    let resp = client()
        .get(plain.url("/health"))
        .header("origin", "http://x.test")
        .send()
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn settings_come_from_environment_and_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tailcast.toml");
    std::fs::write(
        &config,
        format!(
            "retry = 777\nfiles = [\"cfg={}/c.log\"]\n",
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
    // The environment overrides the file.
    assert_eq!(
        sse.next_frame().await.unwrap().retry.as_deref(),
        Some("555")
    );
}

fn run_tailcast(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tailcast"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn startup_errors_are_one_clear_line_and_non_zero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_tailcast(&["serve", "--addr", &addr, "/tmp/x.log"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("error: cannot listen on {addr}")),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = run_tailcast(&["serve", "--config", "/nonexistent/tailcast.toml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));

    let out = run_tailcast(&["serve", "--heartbeat", "soon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--heartbeat"));

    let out = run_tailcast(&["serve", "--history", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --history"));

    let out = run_tailcast(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}

#[test]
fn generate_writes_count_lines_in_python_logging_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gen.log");
    let out = run_tailcast(&[
        "generate",
        path.to_str().unwrap(),
        "--interval",
        "1ms",
        "--count",
        "20",
    ]);
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
    raw.write_all(b"GET /realtime/gone HTTP/1.1\r\nHost: x\r\n\r\n")
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
/// does a request whose body arrives in a later packet.
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
    raw.write_all(
        b"POST /channels/split HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n\
          Content-Length: 5\r\nConnection: close\r\n\r\nhe",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    raw.write_all(b"llo").await.unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\"channel\":\"split\""), "{answer}");
}
