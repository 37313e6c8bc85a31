//! `tailcast listen` as a user runs it: against a third-party SSE server
//! (sse-starlette, CRLF line ends) and against `tailcast serve`; output
//! formats, resume after drops and restarts, errors, a closed stdout,
//! Ctrl-C. The sse-starlette tests need `bash .ci/interop.sh`.

mod client_support;
mod common;

use std::process::Stdio;
use std::time::Duration;

use client_support::*;
use tokio::process::Command;

/// Runs `tailcast listen ARGS` to its end (within [`WAIT`]): status,
/// stdout, stderr.
async fn listen_to_end(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tailcast"))
        .arg("listen")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT, output)
        .await
        .expect("listen did not exit")
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn numbers(events: &[Printed]) -> Vec<u64> {
    events.iter().map(|e| e.data.parse().unwrap()).collect()
}

fn assert_consecutive(values: &[u64], first: u64) {
    let expected: Vec<u64> = (first..first + values.len() as u64).collect();
    assert_eq!(
        values, expected,
        "events must be consecutive, without gap or duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_prints_multi_line_data_and_custom_types_from_sse_starlette() {
    if !interop_ready() {
        return;
    }
    let mut server = Starlette::start(0).await;
    let mut json = listen(&["--json", &server.url("/mixed")]);
    let events = read_events(&mut json, 5).await;
    let got: Vec<(Option<&str>, &str, &str)> = events
        .iter()
        .map(|e| (e.id.as_deref(), e.event_type.as_str(), e.data.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Some("m1"), "greeting", "hello\nworld"),
            (Some("m2"), "message", "plain message"),
            (Some("m3"), "sensor", r#"{"temp": 21.5, "unit": "C"}"#),
            (Some("m3"), "gap", "first\n\nthird"),
            (Some("m4"), "unicode", "héllo wörld — 日本語 🎉"),
        ]
    );
    assert_eq!(server.next_request().await, ("/mixed".to_string(), None));

    // Without --json: each event's data, then a newline.
    let mut plain = listen(&[&server.url("/mixed")]);
    let mut lines = Vec::new();
    for _ in 0..7 {
        lines.push(plain.next_line().await.unwrap());
    }
    assert_eq!(
        lines,
        [
            "hello",
            "world",
            "plain message",
            r#"{"temp": 21.5, "unit": "C"}"#,
            "first",
            "",
            "third"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_resumes_with_last_event_id_each_time_the_server_ends_the_stream() {
    if !interop_ready() {
        return;
    }
    let mut server = Starlette::start(0).await;
    // The server ends every response after 4 events and asks for 50 ms.
    let mut proc = listen(&["--json", &server.url("/numbers?count=4&retry=50")]);
    let events = read_events(&mut proc, 14).await;
    assert_consecutive(&numbers(&events), 1);
    for (event, n) in events.iter().zip(1..) {
        assert_eq!(event.id.as_deref(), Some(n.to_string().as_str()));
    }
    for expected in [None, Some("4"), Some("8"), Some("12")] {
        let (path, last_event_id) = server.next_request().await;
        assert_eq!(path, "/numbers");
        assert_eq!(last_event_id.as_deref(), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_waits_out_a_server_restart_and_resumes() {
    if !interop_ready() {
        return;
    }
    let mut server = Starlette::start(0).await;
    let port = server.port;
    let url = server.url("/numbers?interval=0.02&retry=50");
    let mut proc = listen(&["--json", "--max-backoff", "300ms", &url]);
    let mut events = read_events(&mut proc, 5).await;
    assert_eq!(server.next_request().await.1, None);

    server.proc.child.kill().await.unwrap();
    drop(server);
    // While the server is down, listen retries with backoff; it must still
    // be running (not give up) and print nothing new.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        proc.child.try_wait().unwrap().is_none(),
        "listen gave up while the server was down"
    );
    let mut server = Starlette::start(port).await;
    let (_, resumed_from) = server.next_request().await;
    events.extend(read_events(&mut proc, 40).await);
    let values = numbers(&events);
    assert_consecutive(&values, 1);
    // The events the first server sent before dying were all printed, and
    // the new one was asked for what came after the last of them.
    let resumed_from: u64 = resumed_from
        .expect("reconnection without Last-Event-ID")
        .parse()
        .unwrap();
    assert!(
        resumed_from >= 5 && values.contains(&(resumed_from + 1)),
        "{resumed_from}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_sends_last_event_id_and_headers_and_filters_with_grep() {
    if !interop_ready() {
        return;
    }
    let mut server = Starlette::start(0).await;
    let mut proc = listen(&[
        "--json",
        "--last-event-id",
        "100",
        "--header",
        "X-Token: s3cret",
        "--grep",
        "5$",
        &server.url("/numbers"),
    ]);
    let events = read_events(&mut proc, 3).await;
    assert_eq!(numbers(&events), [105, 115, 125]);
    let request = server
        .proc
        .line_where("request", |l| l.starts_with('{'))
        .await;
    let request: serde_json::Value = serde_json::from_str(&request).unwrap();
    assert_eq!(request["last_event_id"], "100");
    assert_eq!(request["token"], "s3cret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_exits_non_zero_on_4xx_printing_the_json_error() {
    if interop_ready() {
        let mut server = Starlette::start(0).await;
        let (status, stdout, stderr) = listen_to_end(&[&server.url("/forbidden")]).await;
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert_eq!(stdout, "");
        assert!(
            stderr.contains(r#"{"error":"forbidden","detail":"this stream needs a token"}"#),
            "{stderr}"
        );
        assert!(stderr.contains("403"), "{stderr}");
        assert_eq!(server.next_request().await.0, "/forbidden");
    }
    let tailcast = common::Server::start(&["{dir}/app.log"]);
    let (status, _, stderr) = listen_to_end(&[&tailcast.url("/logs/nope")]).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    let json = &stderr[stderr.find('{').expect("JSON error body")..];
    let body: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(body["error"], "not found");
    assert!(body["detail"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn listen_refuses_a_url_that_is_not_an_event_stream() {
    let tailcast = common::Server::start(&["{dir}/app.log"]);
    let (status, _, stderr) = listen_to_end(&[&tailcast.url("/health")]).await;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("not an event stream"), "{stderr}");
    let (status, _, stderr) = listen_to_end(&["ftp://127.0.0.1/x"]).await;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("only http and https"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_exits_zero_when_stdout_is_closed() {
    if !interop_ready() {
        return;
    }
    // `tailcast listen URL | head -1`: the reader goes away after one line.
    let server = Starlette::start(0).await;
    let mut proc = listen(&[&server.url("/numbers?interval=0.01")]);
    assert_eq!(proc.next_line().await.as_deref(), Some("1"));
    proc.close_stdout();
    let status = proc.exit_within(WAIT).await;
    assert_eq!(status.code(), Some(0), "a closed pipe is a normal end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_exits_at_once_and_cleanly_while_streaming_and_while_waiting() {
    let tailcast = common::Server::start(&["{dir}/app.log"]);
    let mut proc = listen(&[&tailcast.url("/realtime/quiet")]);
    poll("the subscriber", || async {
        common::stream_info(&tailcast, "quiet")
            .await
            .filter(|s| s["subscribers"] == 1)
    })
    .await;
    proc.signal("INT");
    assert_eq!(
        proc.exit_within(Duration::from_secs(2)).await.code(),
        Some(0)
    );

    // Nothing listens on this port: listen is in its backoff sleep.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut proc = listen(&["--retry", "10s", &format!("http://127.0.0.1:{port}/x")]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    proc.signal("INT");
    assert_eq!(
        proc.exit_within(Duration::from_secs(2)).await.code(),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_reconnects_a_silent_stream_after_the_idle_timeout() {
    if !interop_ready() {
        return;
    }
    // /mixed sends its events and then nothing (sse-starlette pings only
    // every 15 s).
    let mut server = Starlette::start(0).await;
    let mut proc = listen(&["--json", "--idle-timeout", "300ms", &server.url("/mixed")]);
    read_events(&mut proc, 5).await;
    assert_eq!(server.next_request().await.1, None);
    assert_eq!(server.next_request().await.1.as_deref(), Some("m4"));
}
