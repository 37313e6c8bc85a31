//! `tailcast publish` against a real `tailcast serve`: one event, every
//! stdin line in order, and failures reported with the server's message.

mod client_support;
mod common;

use std::process::Stdio;
use std::time::Instant;

use client_support::*;
use tailcast::client::Parser;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs `tailcast publish ARGS` with `stdin` as its input, to its end.
async fn publish(args: &[&str], stdin: &[u8]) -> (std::process::ExitStatus, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tailcast"))
        .arg("publish")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // Write concurrently: publish reads as it sends.
    let writer = tokio::spawn(async move {
        let _ = input.write_all(&stdin).await;
    });
    let output = tokio::time::timeout(WAIT * 4, child.wait_with_output())
        .await
        .expect("publish did not exit")
        .unwrap();
    writer.await.unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Reads `n` events from a live `/realtime` response with the library's
/// parser.
async fn collect_events(
    response: &mut reqwest::Response,
    n: usize,
) -> Vec<tailcast::client::Event> {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    while events.len() < n {
        let chunk = tokio::time::timeout(WAIT, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events arrived", events.len()))
            .unwrap()
            .expect("stream ended");
        parser.push(&chunk, &mut events);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_stdin_delivers_10000_lines_in_order() {
    let server = common::Server::start(&["{dir}/app.log"]);
    let mut live = common::client()
        .get(server.url("/realtime/bulk"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let input: String = (0..10_000).map(|i| format!("line {i} ünïcode\n")).collect();
    let url = server.url("/channels/bulk");
    let start = Instant::now();
    let (status, stdout, stderr) = publish(&[&url, "-"], input.as_bytes()).await;
    let took = start.elapsed();
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "", "stdin mode prints nothing on success");
    eprintln!(
        "publish - of 10,000 lines took {took:?} ({:.0} lines/s)",
        10_000.0 / took.as_secs_f64()
    );
    let events = collect_events(&mut live, 10_000).await;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.data, format!("line {i} ünïcode"), "event {i}");
        assert_eq!(event.event_type, "message");
    }
    assert_eq!(events.len(), 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_stdin_keeps_empty_lines_crlf_and_a_last_line_without_newline() {
    let server = common::Server::start(&["{dir}/app.log"]);
    let mut live = common::client()
        .get(server.url("/realtime/edge"))
        .send()
        .await
        .unwrap();
    let url = server.url("/channels/edge");
    let (status, _, stderr) = publish(&["--event", "log", &url, "-"], b"a\r\n\nb\xFFc\nlast").await;
    assert!(status.success(), "{stderr}");
    let events = collect_events(&mut live, 4).await;
    let got: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.event_type.as_str(), e.data.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("log", "a"),
            ("log", ""),
            ("log", "b\u{fffd}c"),
            ("log", "last")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_one_event_prints_the_servers_answer() {
    let server = common::Server::start(&["{dir}/app.log"]);
    let mut live = common::client()
        .get(server.url("/realtime/news"))
        .send()
        .await
        .unwrap();
    let url = server.url("/channels/news");
    let (status, stdout, stderr) = publish(&["--event", "alert", &url, "two\nlines"], b"").await;
    assert!(status.success(), "{stderr}");
    let answer: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(answer["channel"], "news");
    assert_eq!(answer["subscribers"], 1);
    let event = collect_events(&mut live, 1).await.remove(0);
    assert_eq!(
        (event.event_type.as_str(), event.data.as_str()),
        ("alert", "two\nlines")
    );
    assert_eq!(answer["id"].as_str(), Some(event.id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_failure_exits_non_zero_with_the_servers_message() {
    let server = common::Server::start(&["--max-body", "64", "app={dir}/app.log"]);
    // A log stream is read-only: 403 with tailcast's JSON error.
    let (status, stdout, stderr) = publish(&[&server.url("/channels/log:app"), "x"], b"").await;
    assert_eq!(status.code(), Some(1));
    assert_eq!(stdout, "");
    assert!(stderr.contains("403"), "{stderr}");
    let json = &stderr[stderr.find('{').expect("JSON error body")..];
    let body: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert!(
        body["error"].is_string() && body["detail"].is_string(),
        "{body}"
    );

    // A bad channel name: 400.
    let (status, _, stderr) = publish(&[&server.url("/channels/-bad"), "x"], b"").await;
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("400") && stderr.contains("invalid channel name"),
        "{stderr}"
    );

    // In stdin mode the lines before the failing one are published, the
    // failing one is named, and nothing after it is sent.
    let mut live = common::client()
        .get(server.url("/realtime/partial"))
        .send()
        .await
        .unwrap();
    let input = format!("one\ntwo\n{}\nfour\n", "x".repeat(100));
    let (status, _, stderr) =
        publish(&[&server.url("/channels/partial"), "-"], input.as_bytes()).await;
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("line 3 of stdin") && stderr.contains("413"),
        "{stderr}"
    );
    let events = collect_events(&mut live, 2).await;
    assert_eq!(
        common::stream_info(&server, "partial").await.unwrap()["last_id"].as_str(),
        Some(events[1].id.as_str())
    );

    // Nobody listening at all.
    let (_reserved, port) = closed_port();
    let (status, _, stderr) =
        publish(&[&format!("http://127.0.0.1:{port}/channels/x"), "x"], b"").await;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("cannot reach"), "{stderr}");
}
