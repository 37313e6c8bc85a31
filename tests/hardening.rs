//! Hardening of the HTTP edge against the real `tailcast serve` binary:
//! reserved channels, the `/events` channel limit, `Last-Event-ID` values
//! that are not ASCII (on the lean SSE path and on hyper), and the bulk
//! NDJSON publish with every kind of bad input. Each test is named after
//! the defect it guards against.

mod common;

use std::time::Instant;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The JSON error shape: `status`, `{"error": error, "detail": ...}`;
/// returns the detail.
fn assert_error(resp: &(u16, serde_json::Value), status: u16, error: &str) -> String {
    assert_eq!(resp.0, status, "{}", resp.1);
    assert_eq!(resp.1["error"], error, "{}", resp.1);
    resp.1["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail: {}", resp.1))
        .to_string()
}

/// A server following log stream `app` (an empty file that exists), with
/// extra `args`; returns once the stream is `following`.
async fn server_with_log(args: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.log"), "").unwrap();
    let mut all = vec!["app={dir}/app.log"];
    all.extend_from_slice(args);
    let server = Server::start_in(dir, &all, std::process::Stdio::null(), &[]);
    wait_following(&server, "log:app").await;
    server
}

/// `/api/streams` as JSON.
async fn streams(server: &Server) -> serde_json::Value {
    let (status, body) = get(&server.url("/api/streams")).await;
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

// ---------------------------------------------------------------------
// A raw HTTP/1.x client: request heads with bytes no HTTP library sends,
// HTTP/1.0 (served by hyper), and a dechunking SSE reader.
// ---------------------------------------------------------------------

/// A response read from a raw socket.
struct RawResponse {
    stream: TcpStream,
    status: u16,
    head: String,
    chunked: bool,
    /// Body bytes read but not yet decoded (chunked) or returned.
    raw: Vec<u8>,
    /// Decoded body text not yet split into frames.
    body: String,
    eof: bool,
}

impl RawResponse {
    /// Sends `request` as is and reads the response head.
    async fn send(addr: &str, request: &[u8]) -> RawResponse {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut raw = Vec::new();
        let until = Instant::now() + DEADLINE;
        let end = loop {
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let mut buf = [0u8; 4096];
            let left = until.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, stream.read(&mut buf))
                .await
                .expect("timed out waiting for a response head")
                .unwrap();
            assert!(n > 0, "connection closed before a response head");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let rest = raw.split_off(end + 4);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line: {head:?}"));
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        RawResponse {
            stream,
            status,
            head,
            chunked,
            raw: rest,
            body: String::new(),
            eof: false,
        }
    }

    /// Moves every complete chunk (or all bytes, unchunked) from `raw` to
    /// `body`.
    fn decode(&mut self) {
        if !self.chunked {
            self.body.push_str(&String::from_utf8_lossy(&self.raw));
            self.raw.clear();
            return;
        }
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
            if size == 0 {
                self.eof = true;
                self.raw.clear();
                return;
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            let data = self.raw[start..start + size].to_vec();
            self.body.push_str(&String::from_utf8_lossy(&data));
            self.raw.drain(..start + size + 2);
        }
    }

    /// The next SSE event (a block with `data:` or `event:`), skipping
    /// comments and `retry:`; `None` at the end of the body.
    async fn next_event(&mut self) -> Option<Frame> {
        let until = Instant::now() + DEADLINE;
        loop {
            self.decode();
            while let Some(at) = self.body.find("\n\n") {
                let block: String = self.body.drain(..at + 2).collect();
                let frame = parse_frame(&block);
                if frame.data.is_some() || frame.event.is_some() {
                    return Some(frame);
                }
            }
            if self.eof {
                return None;
            }
            let mut buf = [0u8; 4096];
            let left = until.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, self.stream.read(&mut buf))
                .await
                .expect("timed out waiting for an event")
                .unwrap_or(0);
            if n == 0 {
                self.eof = true;
                self.decode();
            }
            self.raw.extend_from_slice(&buf[..n]);
        }
    }

    /// The whole body (for short answers such as JSON errors).
    async fn body_text(&mut self) -> String {
        let until = Instant::now() + DEADLINE;
        while !self.eof {
            let mut buf = [0u8; 4096];
            let left = until.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, self.stream.read(&mut buf))
                .await
                .expect("timed out reading a body")
                .unwrap_or(0);
            if n == 0 {
                self.eof = true;
            }
            self.raw.extend_from_slice(&buf[..n]);
            self.decode();
            if !self.chunked && self.head_content_length() == Some(self.body.len()) {
                break;
            }
        }
        self.decode();
        self.body.clone()
    }

    fn head_content_length(&self) -> Option<usize> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
    }
}

/// A GET request head for `path` with extra header lines (raw bytes).
fn get_head(version: &str, path: &str, extra: &[u8]) -> Vec<u8> {
    let mut head =
        format!("GET {path} {version}\r\nHost: localhost\r\nAccept: text/event-stream\r\n")
            .into_bytes();
    head.extend_from_slice(extra);
    head.extend_from_slice(b"\r\n");
    head
}

// ---------------------------------------------------------------------
// Defect 3: POST /channels/broadcast made an ordinary event appear in
// every stream.
// ---------------------------------------------------------------------

#[tokio::test]
async fn publish_to_the_broadcast_channel_is_403_and_reaches_no_stream() {
    let server = server_with_log(&[]).await;
    let mut log = Sse::connect(&server.url("/logs/app")).await;
    let mut channel = Sse::connect(&server.url("/realtime/news")).await;
    let url = server.url("/channels/broadcast");
    for (content_type, body) in [
        ("text/plain", "forged log line"),
        ("application/json", r#"{"data": "forged log line"}"#),
        ("application/x-ndjson", "\"forged log line\"\n"),
    ] {
        let resp = post(&url, content_type, body).await;
        let detail = assert_error(&resp, 403, "reserved channel");
        assert!(detail.contains("/api/broadcast"), "{detail}");
    }
    // The next thing each stream sees is the genuine broadcast sent after
    // the refused ones: the forged bodies never reached them.
    let (status, _) = post(
        &server.url("/api/broadcast"),
        "application/json",
        r#"{"message": "genuine"}"#,
    )
    .await;
    assert_eq!(status, 200);
    for sse in [&mut log, &mut channel] {
        let event = sse.next_event().await;
        assert_eq!(event.event_type(), "broadcast", "{event:?}");
        assert_eq!(event.json()["message"], "genuine");
    }
    let refused = get(&server.url("/metrics")).await.1;
    assert!(
        refused.contains("tailcast_publish_errors_total{status=\"403\"} 3"),
        "{refused}"
    );
}

// ---------------------------------------------------------------------
// Defect 5: /events accepted any number of channels.
// ---------------------------------------------------------------------

#[tokio::test]
async fn events_with_more_channels_than_the_limit_is_400_and_registers_nothing() {
    let server = server_with_log(&[]).await;
    let before = streams(&server).await;
    let query = |n: usize| {
        (0..n)
            .map(|i| format!("channel=c{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    for n in [65, 3000] {
        let resp = client()
            .get(server.url(&format!("/events?{}", query(n))))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert_eq!(status, 400, "{n} channels were served");
        let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        let detail = assert_error(&(status, body), 400, "too many stream channels");
        assert!(detail.contains("64"), "{detail}");
        assert!(detail.contains("--max-stream-channels"), "{detail}");
    }
    assert_eq!(
        streams(&server).await,
        before,
        "a refused /events left state"
    );
    // A name repeated is one channel; the limit itself is served.
    let at_limit = format!("/events?{}&channel=c0&channel=c1", query(64));
    let sse = Sse::connect(&server.url(&at_limit)).await;
    assert_eq!(sse.status, 200);

    // The limit is --max-stream-channels.
    let small = Server::start(&["--max-stream-channels", "2", "{dir}/app.log"]);
    let resp = get(&small.url("/events?channel=a&channel=b&channel=c")).await;
    let body = serde_json::from_str(&resp.1).unwrap();
    let detail = assert_error(&(resp.0, body), 400, "too many stream channels");
    assert!(detail.contains("at most 2"), "{detail}");
    let sse = Sse::connect(&small.url("/events?channel=a&channel=b")).await;
    assert_eq!(sse.status, 200);
}

// ---------------------------------------------------------------------
// Defect 6: a Last-Event-ID that is not ASCII was treated as absent.
// ---------------------------------------------------------------------

/// A server with a log stream holding `backlog0..backlog4`.
async fn server_with_backlog() -> Server {
    let server = Server::start(&["app={dir}/app.log"]);
    append(&server.path("app.log"), &lines("backlog", 0..5));
    eventually("5 lines read", || async {
        stream_info(&server, "log:app")
            .await
            .filter(|s| s["last_id"].is_string())
            .map(drop)
    })
    .await;
    server
}

/// Asserts that `first` is the `reset` of `log:app` for an unknown id.
fn assert_unknown_id_reset(first: &Frame) {
    assert_eq!(
        first.event_type(),
        "reset",
        "got {first:?} instead of reset"
    );
    assert_eq!(
        first.json(),
        serde_json::json!({"reason": "unknown id", "channel": "log:app"})
    );
}

#[tokio::test]
async fn non_ascii_last_event_id_header_is_an_unknown_id_on_the_lean_path() {
    let server = server_with_backlog().await;
    let head = get_head(
        "HTTP/1.1",
        "/logs/app",
        b"Last-Event-ID: caf\xc3\xa9-\xff\r\n",
    );
    let mut resp = RawResponse::send(&server.addr, &head).await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert!(resp.chunked, "the lean path answers chunked: {}", resp.head);
    assert_unknown_id_reset(&resp.next_event().await.unwrap());
    // Then what the server still has, from the oldest retained line.
    assert_eq!(resp.next_event().await.unwrap().data(), "backlog0");
}

#[tokio::test]
async fn non_ascii_last_event_id_header_is_an_unknown_id_on_hyper() {
    let server = server_with_backlog().await;
    // HTTP/1.0 is served by hyper, not the lean path.
    let head = get_head("HTTP/1.0", "/logs/app", b"Last-Event-ID: \xe2\x82\xac\r\n");
    let mut resp = RawResponse::send(&server.addr, &head).await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert!(resp.head.starts_with("HTTP/1.0"), "{}", resp.head);
    assert_unknown_id_reset(&resp.next_event().await.unwrap());
    assert_eq!(resp.next_event().await.unwrap().data(), "backlog0");
    // A request with a body goes to hyper too, over HTTP/1.1.
    let head = get_head(
        "HTTP/1.1",
        "/logs/app",
        b"Content-Length: 0\r\nLast-Event-ID: \x80\r\n",
    );
    let mut resp = RawResponse::send(&server.addr, &head).await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_unknown_id_reset(&resp.next_event().await.unwrap());
}

#[tokio::test]
async fn non_ascii_last_event_id_query_is_an_unknown_id() {
    let server = server_with_backlog().await;
    for query in ["lastEventId=%C3%A9", "lastEventId=%FF%FE"] {
        let mut sse = Sse::connect(&server.url(&format!("/logs/app?{query}"))).await;
        assert_eq!(sse.status, 200);
        assert_unknown_id_reset(&sse.next_event().await);
        assert_eq!(sse.next_event().await.data(), "backlog0");
    }
}

#[tokio::test]
async fn last_event_id_with_control_characters_is_400_on_both_paths() {
    let server = server_with_backlog().await;
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let head = get_head(version, "/logs/app", b"Last-Event-ID: a\x01b\r\n");
        let mut resp = RawResponse::send(&server.addr, &head).await;
        assert_eq!(resp.status, 400, "{version}: {}", resp.head);
        let body = resp.body_text().await;
        assert!(!body.contains("backlog"), "{version}: {body}");
    }
}

// ---------------------------------------------------------------------
// Bulk publish: POST /channels/{c} with application/x-ndjson.
// ---------------------------------------------------------------------

const NDJSON: &str = "application/x-ndjson";

#[tokio::test]
async fn bulk_publish_numbers_every_line_in_order_with_consecutive_ids() {
    let server = Server::start(&["app={dir}/app.log"]);
    let mut both = Sse::connect(&server.url("/events?channel=bulk&channel=noise")).await;
    let mut plain = Sse::connect(&server.url("/realtime/bulk")).await;
    // Another publisher keeps writing to `noise` during the bulk publish:
    // no event of it may land between two events of one batch.
    let noise_url = server.url("/channels/noise");
    let noise = tokio::spawn(async move {
        let mut sent = 0;
        let client = client();
        while sent < 300 {
            let resp = client.post(&noise_url).body("n").send().await.unwrap();
            assert_eq!(resp.status(), 200);
            sent += 1;
        }
        sent
    });
    let mut batches = Vec::new();
    for b in 0..5 {
        let mut body = String::new();
        for i in 0..200 {
            let n = b * 200 + i;
            match i % 3 {
                0 => body.push_str(&format!("\"line {n}\"\n")),
                1 => body.push_str(&format!(
                    "{{\"event\": \"typed\", \"data\": \"line {n}\"}}\r\n"
                )),
                _ => body.push_str(&format!("{{\"data\": {{\"n\": {n}}}}}\n")),
            }
        }
        let (status, answer) = post(&server.url("/channels/bulk"), NDJSON, body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["channel"], "bulk");
        assert_eq!(answer["count"], 200);
        assert_eq!(answer["subscribers"], 2);
        batches.push(answer);
    }
    assert_eq!(noise.await.unwrap(), 300);

    // Single-channel subscriber: every line, in order, with the right type.
    let events = plain.events(1000).await;
    for (n, e) in events.iter().enumerate() {
        let (ty, data) = match n % 200 % 3 {
            0 => ("message", format!("line {n}")),
            1 => ("typed", format!("line {n}")),
            _ => ("message", format!("{{\"n\":{n}}}")),
        };
        assert_eq!((e.event_type(), e.data()), (ty, data.as_str()), "event {n}");
    }
    for (b, answer) in batches.iter().enumerate() {
        assert_eq!(answer["first_id"], events[b * 200].id.clone().unwrap());
        assert_eq!(answer["last_id"], events[b * 200 + 199].id.clone().unwrap());
    }

    // Multiplexed subscriber: each batch is one unbroken run in id order.
    let mut seen = 0;
    let mut in_batch: Option<usize> = None;
    while seen < 1000 {
        let e = both.next_event().await;
        let id = e.id.clone().unwrap();
        if e.json()["channel"] != "bulk" {
            assert!(
                in_batch.is_none(),
                "noise event {id} inside batch {in_batch:?}"
            );
            continue;
        }
        seen += 1;
        let b = match in_batch {
            Some(b) => b,
            None => batches
                .iter()
                .position(|a| a["first_id"] == id)
                .unwrap_or_else(|| panic!("{id} starts no batch")),
        };
        in_batch = (batches[b]["last_id"] != id).then_some(b);
    }
    assert!(in_batch.is_none());
}

#[tokio::test]
async fn bulk_publish_ignores_empty_lines_and_keeps_a_last_line_without_newline() {
    let server = Server::start(&["app={dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/realtime/gaps")).await;
    let body = "\n\"a\"\n\n  \r\n\"b\\nc\"\n\"\"\n{\"data\": \"last\"}";
    let (status, answer) = post(&server.url("/channels/gaps?event=note"), NDJSON, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["count"], 4);
    let events = sse.events(4).await;
    let got: Vec<(&str, &str)> = events.iter().map(|e| (e.event_type(), e.data())).collect();
    // `?event=` is the type of lines that name none.
    assert_eq!(
        got,
        [
            ("note", "a"),
            ("note", "b\nc"),
            ("note", ""),
            ("note", "last")
        ]
    );
}

#[tokio::test]
async fn bulk_publish_with_a_bad_line_is_400_naming_it_and_publishes_nothing() {
    let server = Server::start(&["app={dir}/app.log"]);
    let url = server.url("/channels/strict");
    let good = "\"one\"\n{\"data\": \"two\"}\n";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            format!("{good}{{not json\n\"four\"\n").into_bytes(),
            "line 3",
        ),
        (format!("{good}42\n").into_bytes(), "line 3"),
        (format!("{good}[\"a\"]\n").into_bytes(), "line 3"),
        (format!("{good}null\n").into_bytes(), "line 3"),
        // (`{"event": "x"}`, an object without `data`, is a shipper's
        // record since issue 22: published whole, see tests/ingest_ndjson.rs.)
        (
            format!("{good}{{\"event\": \"reset\", \"data\": \"x\"}}\n").into_bytes(),
            "line 3",
        ),
        (
            format!("{good}{{\"event\": \"a\\nb\", \"data\": \"x\"}}\n").into_bytes(),
            "line 3",
        ),
        (
            format!("{good}{{\"event\": \"\", \"data\": \"x\"}}\n").into_bytes(),
            "line 3",
        ),
        (format!("{good}\"two\" \"values\"\n").into_bytes(), "line 3"),
        ([good.as_bytes(), b"\n\"caf\xff\"\n"].concat(), "line 4"),
        ([good.as_bytes(), b"\xc3\n"].concat(), "line 3"),
    ];
    let mut sse = Sse::connect(&server.url("/realtime/strict")).await;
    for (body, line) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let resp = post(&url, NDJSON, body).await;
        assert_eq!(resp.0, 400, "{shown:?}: {}", resp.1);
        let detail = resp.1["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(line), "{shown:?}: {detail}");
        assert!(resp.1["error"].is_string(), "{}", resp.1);
    }
    // `?event=reset` is refused for the whole batch too.
    let resp = post(&server.url("/channels/strict?event=reset"), NDJSON, good).await;
    assert_error(&resp, 400, "reserved event type");
    // A body with no event at all.
    let resp = post(&url, NDJSON, "\n\r\n  \n").await;
    assert_error(&resp, 400, "no events");
    // None of those published anything: the next event the subscriber sees
    // is the one sent now, and the channel holds only it.
    let (status, answer) = post(&url, NDJSON, "\"after\"\n").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["count"], 1);
    assert_eq!(sse.next_event().await.data(), "after");
    let info = stream_info(&server, "strict").await.unwrap();
    assert_eq!(info["last_id"], answer["last_id"]);
    assert_eq!(answer["first_id"], answer["last_id"]);
}

#[tokio::test]
async fn bulk_publish_over_max_body_is_413_and_publishes_nothing() {
    let server = Server::start(&["--max-body", "1KiB", "app={dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/realtime/big")).await;
    let url = server.url("/channels/big");
    // One line longer than --max-body, and many short lines over it.
    let long_line = format!("\"{}\"\n", "x".repeat(2000));
    let many_lines: String = (0..200).map(|i| format!("\"{i}\"\n")).collect();
    for body in [long_line, many_lines] {
        let resp = post(&url, NDJSON, body).await;
        let detail = assert_error(&resp, 413, "body too large");
        assert!(detail.contains("--max-body"), "{detail}");
    }
    let (status, answer) = post(&url, NDJSON, "\"small\"\n").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(sse.next_event().await.data(), "small");
}

#[tokio::test]
async fn bulk_publish_to_a_log_stream_is_403() {
    let server = server_with_log(&[]).await;
    let resp = post(&server.url("/channels/log:app"), NDJSON, "\"x\"\n").await;
    assert_error(&resp, 403, "read-only channel");
    let info = stream_info(&server, "log:app").await.unwrap();
    assert!(info["last_id"].is_null(), "{info}");
}

// ---------------------------------------------------------------------
// `tailcast publish URL -` sends NDJSON batches.
// ---------------------------------------------------------------------

/// One request seen by [`FakeServer`].
#[derive(Debug, Clone)]
struct Seen {
    connection: usize,
    content_type: String,
    body: Vec<u8>,
}

/// An HTTP/1.1 server that records each request and answers every one
/// with a bulk-publish answer (or 413 for bodies over `max_body`).
async fn fake_server(max_body: usize) -> (String, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut connection = 0;
        while let Ok((mut stream, _)) = listener.accept().await {
            connection += 1;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let head_end = loop {
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        let mut chunk = [0u8; 65536];
                        let n = stream.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| l.strip_prefix(&format!("{name}:")))
                            .map(|v| v.trim().to_string())
                    };
                    let length: usize = header("content-length")
                        .expect("publish sends Content-Length")
                        .parse()
                        .unwrap();
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 65536];
                        let n = stream.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body = buf[head_end..head_end + length].to_vec();
                    buf.drain(..head_end + length);
                    let count = body
                        .split(|&b| b == b'\n')
                        .filter(|l| !l.is_empty())
                        .count();
                    let (status, answer) = if length > max_body {
                        (
                            "413 Payload Too Large",
                            r#"{"error":"body too large","detail":"x"}"#.to_string(),
                        )
                    } else {
                        let _ = tx.send(Seen {
                            connection,
                            content_type: header("content-type").unwrap_or_default(),
                            body,
                        });
                        (
                            "200 OK",
                            format!(
                                r#"{{"channel":"c","first_id":"1","last_id":"{count}","count":{count},"subscribers":0}}"#
                            ),
                        )
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Runs `tailcast publish ARGS` with `stdin` as its input, to its end.
async fn run_publish(args: &[&str], stdin: Vec<u8>) -> std::process::Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tailcast"))
        .arg("publish")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        let _ = input.write_all(&stdin).await;
    });
    let output = tokio::time::timeout(DEADLINE * 3, child.wait_with_output())
        .await
        .expect("publish did not exit")
        .unwrap();
    writer.await.unwrap();
    output
}

/// Decodes NDJSON lines of JSON strings.
fn ndjson_strings(body: &[u8]) -> Vec<String> {
    body.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_stdin_sends_ndjson_batches_in_order_over_one_connection() {
    let (addr, mut seen) = fake_server(usize::MAX).await;
    let input: String = (0..5000)
        .map(|i| format!("line {i} \"q\" \\ é\n"))
        .collect();
    let mut input = input.into_bytes();
    input.extend_from_slice(b"bad \xff utf-8\r\nno newline at end");
    let url = format!("http://{addr}/channels/c");
    let output = run_publish(&[&url, "-"], input).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut requests = Vec::new();
    while let Ok(r) = seen.try_recv() {
        requests.push(r);
    }
    assert!(
        requests.len() >= 5 && requests.len() < 100,
        "{} requests for 5,002 lines",
        requests.len()
    );
    let mut lines = Vec::new();
    for r in &requests {
        assert_eq!(r.content_type, NDJSON);
        assert_eq!(r.connection, 1, "publish opened a second connection");
        let batch = ndjson_strings(&r.body);
        assert!(batch.len() <= 1000, "{} lines in one request", batch.len());
        assert!(r.body.len() <= 256 * 1024 + 1024, "{} bytes", r.body.len());
        lines.extend(batch);
    }
    let mut expected: Vec<String> = (0..5000).map(|i| format!("line {i} \"q\" \\ é")).collect();
    expected.push("bad \u{fffd} utf-8".into());
    expected.push("no newline at end".into());
    assert_eq!(lines, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_stdin_splits_a_batch_the_server_finds_too_large() {
    // A server whose --max-body is far below the client's batch size:
    // batches are split until they fit, in order, nothing sent twice.
    let (addr, mut seen) = fake_server(300).await;
    let input: String = (0..400).map(|i| format!("l{i:03}\n")).collect();
    let url = format!("http://{addr}/channels/c");
    let output = run_publish(&[&url, "-"], input.into_bytes()).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = Vec::new();
    while let Ok(r) = seen.try_recv() {
        assert!(r.body.len() <= 300);
        lines.extend(ndjson_strings(&r.body));
    }
    let expected: Vec<String> = (0..400).map(|i| format!("l{i:03}")).collect();
    assert_eq!(lines, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_stdin_to_tailcast_delivers_every_line_once_in_order() {
    let server = Server::start(&["--history", "30000", "app={dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/realtime/bulk")).await;
    let input: String = (0..20_000).map(|i| format!("{i}\n")).collect();
    let started = Instant::now();
    let output = run_publish(&[&server.url("/channels/bulk"), "-"], input.into_bytes()).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "publish - of 20,000 lines (debug build): {:?}",
        started.elapsed()
    );
    for i in 0..20_000 {
        let e = sse.next_event().await;
        assert_eq!(e.data(), i.to_string());
    }
    // Nothing was sent twice: the next event is the one published now.
    let (status, _) = post(&server.url("/channels/bulk"), "text/plain", "end").await;
    assert_eq!(status, 200);
    assert_eq!(sse.next_event().await.data(), "end");
}

/// The value of counter `name` in the Prometheus text of `/metrics`.
async fn counter(server: &Server, name: &str) -> f64 {
    let (_, text) = get(&server.url("/metrics")).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_the_history_is_413_and_publish_splits_it() {
    let server = server_with_log(&["--history", "8"]).await;
    let url = server.url("/channels/small");
    let body: String = (0..10).map(|i| format!("\"{i}\"\n")).collect();
    let resp = post(&url, NDJSON, body).await;
    let detail = assert_error(&resp, 413, "batch too large");
    assert!(detail.contains("10 events"), "{detail}");
    assert!(
        stream_info(&server, "small").await.is_none(),
        "a refused batch created its channel"
    );
    assert_eq!(
        counter(&server, "tailcast_events_published_total").await,
        0.0
    );

    // `publish -` splits what the server refuses: every line is published
    // once, in batches of at most 8.
    let input: String = (0..50).map(|i| format!("{i}\n")).collect();
    let output = run_publish(&[&url, "-"], input.into_bytes()).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        counter(&server, "tailcast_events_published_total").await,
        50.0
    );
    let mut sse = Sse::connect(&server.url("/realtime/small?tail=8")).await;
    let last: Vec<String> = sse
        .events(8)
        .await
        .iter()
        .map(|e| e.data().to_string())
        .collect();
    let expected: Vec<String> = (42..50).map(|i| i.to_string()).collect();
    assert_eq!(last, expected);
}
