//! `tailcast listen` as a user runs it: against a third-party SSE server
//! (sse-starlette, CRLF line ends), a scripted server and `tailcast serve`;
//! output formats, resume after drops and restarts, 5xx and 204 answers,
//! errors, a closed stdout, Ctrl-C. The sse-starlette tests need
//! `bash .ci/interop.sh` (built with `TAILCAST_SKIP_INTEROP=1` they are
//! ignored).

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

#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs sse-starlette from .ci/interop.sh"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_prints_multi_line_data_and_custom_types_from_sse_starlette() {
    require_interop();
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

#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs sse-starlette from .ci/interop.sh"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_resumes_with_last_event_id_each_time_the_server_ends_the_stream() {
    require_interop();
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

#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs sse-starlette from .ci/interop.sh"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_waits_out_a_server_restart_and_resumes() {
    require_interop();
    // The server sits behind a proxy whose port stays the same, so the new
    // server never needs the old one's port back.
    let mut first = Starlette::start(0).await;
    let proxy = Proxy::start(format!("127.0.0.1:{}", first.port).parse().unwrap()).await;
    let url = proxy.url("/numbers?interval=0.02&retry=50");
    let mut proc = listen(&["--json", "--max-backoff", "300ms", &url]);
    let mut events = read_events(&mut proc, 5).await;
    assert_eq!(first.next_request().await.1, None);

    // The server goes away: the proxy closes every connection at once.
    first.proc.child.kill().await.unwrap();
    drop(first);
    proxy.cut(true);
    // While it is down, listen keeps trying (with backoff): it does not
    // give up.
    let refused_before = proxy.refused();
    poll("two reconnection attempts while down", || async {
        (proxy.refused() >= refused_before + 2).then_some(())
    })
    .await;
    assert!(
        proc.child.try_wait().unwrap().is_none(),
        "listen gave up while the server was down"
    );
    let mut server = Starlette::start(0).await;
    proxy.set_upstream(format!("127.0.0.1:{}", server.port).parse().unwrap());
    proxy.accept_again();
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

#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs sse-starlette from .ci/interop.sh"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_sends_last_event_id_and_headers_and_filters_with_grep() {
    require_interop();
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

#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs sse-starlette from .ci/interop.sh"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_exits_non_zero_on_4xx_from_sse_starlette_printing_the_json_error() {
    require_interop();
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

#[tokio::test]
async fn listen_exits_non_zero_on_4xx_from_tailcast_printing_the_json_error() {
    let tailcast = common::Server::start(&["{dir}/app.log"]);
    let (status, _, stderr) = listen_to_end(&[&tailcast.url("/logs/nope")]).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    let json = &stderr[stderr.find('{').expect("JSON error body")..];
    let body: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(body["error"], "not found");
    assert!(body["detail"].as_str().unwrap().contains("nope"));
}

/// README: 5xx answers are retried (honouring `Retry-After`), and `204 No
/// Content` ends `listen` with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_retries_5xx_after_retry_after_and_exits_zero_on_204() {
    let server = Scripted::start(vec![
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
            .into(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n\
         retry: 50\n\nid: 1\ndata: one\n\nid: 2\ndata: two\n\n"
            .into(),
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".into(),
    ])
    .await;
    // Without Retry-After the first retry would come after 100-200 ms.
    let (status, stdout, stderr) = listen_to_end(&[
        "--json",
        "--retry",
        "50ms",
        "--max-backoff",
        "10s",
        &server.url("/events"),
    ])
    .await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    let printed: Vec<Printed> = stdout.lines().filter_map(printed).collect();
    assert_eq!(
        printed
            .iter()
            .map(|e| (e.id.as_deref().unwrap(), e.data.as_str()))
            .collect::<Vec<_>>(),
        [("1", "one"), ("2", "two")]
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    let waited = requests[1].at - requests[0].answered.unwrap();
    assert!(
        waited >= Duration::from_millis(950),
        "retried {waited:?} after a 503 with Retry-After: 1"
    );
    assert_eq!(requests[0].last_event_id, None);
    assert_eq!(requests[2].last_event_id.as_deref(), Some("2"));
    assert!(stderr.contains("503"), "{stderr}");
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

#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs sse-starlette from .ci/interop.sh"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_exits_zero_when_stdout_is_closed() {
    require_interop();
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
    // While streaming: the stream would never end by itself, so only the
    // signal can end the process (the limit is a watchdog).
    let tailcast = common::Server::start(&["{dir}/app.log"]);
    let mut proc = listen(&[&tailcast.url("/realtime/quiet")]);
    poll("the subscriber", || async {
        common::stream_info(&tailcast, "quiet")
            .await
            .filter(|s| s["subscribers"] == 1)
    })
    .await;
    proc.signal("INT").await;
    assert_eq!(proc.exit_within(WAIT).await.code(), Some(0));

    // While waiting: the port refuses connections, listen reports its
    // backoff sleep of a minute, longer than the watchdog.
    let (_reserved, port) = closed_port();
    let mut proc = listen(&[
        "--retry",
        "60s",
        "--max-backoff",
        "60s",
        &format!("http://127.0.0.1:{port}/x"),
    ]);
    proc.wait_stderr("reconnecting in").await;
    proc.signal("INT").await;
    assert_eq!(proc.exit_within(WAIT).await.code(), Some(0));
}

#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs sse-starlette from .ci/interop.sh"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_reconnects_a_silent_stream_after_the_idle_timeout() {
    require_interop();
    // /mixed sends its events and then nothing (sse-starlette pings only
    // every 15 s).
    let mut server = Starlette::start(0).await;
    let mut proc = listen(&["--json", "--idle-timeout", "300ms", &server.url("/mixed")]);
    read_events(&mut proc, 5).await;
    assert_eq!(server.next_request().await.1, None);
    assert_eq!(server.next_request().await.1.as_deref(), Some("m4"));
}
