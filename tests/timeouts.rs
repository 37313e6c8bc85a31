//! `--header-timeout` and `--idle-timeout` against the real binary, with raw
//! TCP clients and the `h2` crate's HTTP/2 client: half-sent heads are
//! closed on the lean SSE path and on hyper's, idle keep-alive connections
//! are closed (HTTP/2 ones with a `GOAWAY`), slow but complete heads are
//! served, and open SSE streams are never closed by either timeout.

mod common;

use std::time::{Duration, Instant};

use common::{post, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any connection may stay open in these tests (a watchdog).
const WATCHDOG: Duration = Duration::from_secs(15);

/// Scheduling slack allowed below a deadline.
const SLACK: Duration = Duration::from_millis(150);

async fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(&server.addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads until the server closes (EOF or reset) and returns when, or
/// panics after [`WATCHDOG`]; returns what was read too.
async fn wait_closed(stream: &mut TcpStream) -> (Instant, Vec<u8>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(WATCHDOG, read_all)
        .await
        .expect("the server did not close the connection");
    (closed, seen)
}

/// Reads one complete response with `Content-Length` from a kept-alive
/// connection; returns its head and body.
async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .expect("content-length")
                    .trim()
                    .parse()
                    .unwrap();
                if data.len() >= end + 4 + length {
                    return (head, data[end + 4..end + 4 + length].to_vec());
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a full response: {data:?}");
            data.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WATCHDOG, read)
        .await
        .expect("no response")
}

/// Reads until `needle` has arrived; returns everything read.
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !String::from_utf8_lossy(&data).contains(needle) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before {needle:?}: {:?}",
                String::from_utf8_lossy(&data)
            );
            data.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WATCHDOG, read)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?}"));
    String::from_utf8_lossy(&data).into_owned()
}

fn assert_between(elapsed: Duration, low: Duration, high: Duration, what: &str) {
    assert!(
        elapsed + SLACK >= low && elapsed < high,
        "{what}: closed after {elapsed:?}, expected between {low:?} and {high:?}"
    );
}

#[tokio::test]
async fn half_a_head_is_closed_after_the_header_timeout_on_the_lean_path() {
    let server = Server::start(&["--header-timeout", "1s", "--idle-timeout", "30s"]);
    let mut stream = connect(&server).await;
    let start = Instant::now();
    stream
        .write_all(b"GET /events?channel=a HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let (closed, seen) = wait_closed(&mut stream).await;
    assert!(seen.is_empty(), "answered {seen:?}");
    assert_between(
        closed - start,
        Duration::from_secs(1),
        Duration::from_secs(5),
        "half head",
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let server = Server::start(&["--header-timeout", "1s", "--idle-timeout", "30s"]);
    let mut stream = connect(&server).await;
    let start = Instant::now();
    let (closed, _) = wait_closed(&mut stream).await;
    assert_between(
        closed - start,
        Duration::from_secs(1),
        Duration::from_secs(5),
        "silent connection",
    );
}

#[tokio::test]
async fn a_long_half_head_handed_to_hyper_is_closed_after_the_header_timeout() {
    // More than the lean path reads (16 KiB): hyper goes on reading it.
    let server = Server::start(&["--header-timeout", "1s", "--idle-timeout", "30s"]);
    let mut stream = connect(&server).await;
    let start = Instant::now();
    let mut head = b"GET /health HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..40 {
        head.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "a".repeat(500)).as_bytes());
    }
    assert!(head.len() > 16 * 1024);
    stream.write_all(&head).await.unwrap();
    let (closed, seen) = wait_closed(&mut stream).await;
    assert!(
        seen.is_empty(),
        "answered {:?}",
        String::from_utf8_lossy(&seen)
    );
    assert_between(
        closed - start,
        Duration::from_secs(1),
        Duration::from_secs(5),
        "long half head",
    );
}

#[tokio::test]
async fn a_half_head_after_a_kept_alive_request_gets_the_header_timeout_not_the_idle_one() {
    let server = Server::start(&["--header-timeout", "1s", "--idle-timeout", "20s"]);
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let start = Instant::now();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let (closed, seen) = wait_closed(&mut stream).await;
    assert!(seen.is_empty(), "answered {seen:?}");
    assert_between(
        closed - start,
        Duration::from_secs(1),
        Duration::from_secs(10),
        "second half head",
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start(&["--header-timeout", "1s", "--idle-timeout", "3s"]);
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    let answered = Instant::now();
    let (closed, seen) = wait_closed(&mut stream).await;
    assert!(seen.is_empty(), "answered {seen:?}");
    // Not the header timeout (1 s): the idle one (3 s).
    assert_between(
        closed - answered,
        Duration::from_secs(3),
        Duration::from_secs(10),
        "idle keep-alive",
    );
}

#[tokio::test]
async fn a_kept_alive_connection_is_reused_after_a_pause_longer_than_the_header_timeout() {
    let server = Server::start(&["--header-timeout", "1s", "--idle-timeout", "20s"]);
    let mut stream = connect(&server).await;
    for _ in 0..2 {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = read_response(&mut stream).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("\"ok\""));
        // Idle for longer than the header timeout, shorter than the idle one.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

/// Sends `head` in pieces with pauses, `total` long in all.
async fn send_slowly(stream: &mut TcpStream, head: &[u8], total: Duration) {
    let pieces: Vec<&[u8]> = head.chunks(head.len().div_ceil(5)).collect();
    let pause = total / pieces.len() as u32;
    for piece in pieces {
        stream.write_all(piece).await.unwrap();
        tokio::time::sleep(pause).await;
    }
}

#[tokio::test]
async fn a_slow_but_complete_head_within_the_timeout_is_served_on_both_paths() {
    let server = Server::start(&["--header-timeout", "3s", "--idle-timeout", "30s"]);
    // hyper's path.
    let mut stream = connect(&server).await;
    send_slowly(
        &mut stream,
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\n\r\n",
        Duration::from_millis(1500),
    )
    .await;
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // The lean SSE path.
    let mut stream = connect(&server).await;
    send_slowly(
        &mut stream,
        b"GET /realtime/slow HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n",
        Duration::from_millis(1500),
    )
    .await;
    let seen = read_until(&mut stream, "retry:").await;
    assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen}");
    assert!(seen.contains("text/event-stream"), "{seen}");
}

#[tokio::test]
async fn open_sse_streams_outlive_both_timeouts() {
    let server = Server::start(&["--header-timeout", "1s", "--idle-timeout", "1s"]);
    // On the lean path (HTTP/1.1) and on hyper's (HTTP/1.0).
    let mut lean = connect(&server).await;
    lean.write_all(b"GET /realtime/news HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut lean, "retry:").await;
    let mut hyper = connect(&server).await;
    hyper
        .write_all(b"GET /realtime/news HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let head = read_until(&mut hyper, "retry:").await;
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let opened = Instant::now();

    // Connections opened after the streams, closed by each timeout: once
    // both are gone, both deadlines have passed for the streams too.
    let mut half = connect(&server).await;
    half.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut idle).await;
    wait_closed(&mut half).await;
    wait_closed(&mut idle).await;
    assert!(opened.elapsed() >= Duration::from_secs(1));

    let (status, _) = post(&server.url("/channels/news"), "text/plain", "still here").await;
    assert_eq!(status, 200);
    for (name, stream) in [("lean", &mut lean), ("hyper", &mut hyper)] {
        let seen = read_until(stream, "data: still here").await;
        assert!(seen.contains("id: "), "{name}: {seen}");
    }
}

/// An HTTP/2 (h2c) connection to `server`: the client handle, and the
/// task driving the connection, which ends when the server closes it.
async fn h2c(
    server: &Server,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<Instant>,
) {
    let tcp = connect(server).await;
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
        Instant::now()
    });
    (client, driver)
}

fn h2_get(server: &Server, path: &str) -> axum::http::Request<()> {
    axum::http::Request::get(server.url(path)).body(()).unwrap()
}

/// Reads the body of `response` until it contains `needle`.
async fn h2_read_until(body: &mut h2::RecvStream, needle: &str) -> String {
    let mut seen = String::new();
    let read = async {
        while !seen.contains(needle) {
            let chunk = body
                .data()
                .await
                .unwrap_or_else(|| panic!("stream ended before {needle:?}: {seen}"))
                .unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(WATCHDOG, read)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?}"));
    seen
}

async fn connection_end(driver: tokio::task::JoinHandle<Instant>) -> Instant {
    tokio::time::timeout(WATCHDOG, driver)
        .await
        .expect("the server did not close the HTTP/2 connection")
        .unwrap()
}

#[tokio::test]
async fn an_http2_connection_without_a_request_is_closed_after_the_header_timeout() {
    let server = Server::start(&["--header-timeout", "1s", "--idle-timeout", "30s"]);
    let start = Instant::now();
    let (_client, driver) = h2c(&server).await;
    let closed = connection_end(driver).await;
    assert_between(
        closed - start,
        Duration::from_secs(1),
        Duration::from_secs(5),
        "HTTP/2 without a request",
    );
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start(&["--header-timeout", "1s", "--idle-timeout", "3s"]);
    let (client, driver) = h2c(&server).await;
    let mut client = client.ready().await.unwrap();
    let (response, _) = client
        .send_request(h2_get(&server, "/health"), true)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    h2_read_until(&mut response.into_body(), "\"ok\"").await;
    let answered = Instant::now();
    let closed = connection_end(driver).await;
    assert_between(
        closed - answered,
        Duration::from_secs(3),
        Duration::from_secs(10),
        "idle HTTP/2",
    );
}

#[tokio::test]
async fn an_open_http2_stream_outlives_both_timeouts() {
    let server = Server::start(&["--header-timeout", "1s", "--idle-timeout", "1s"]);
    let (client, driver) = h2c(&server).await;
    let mut client = client.ready().await.unwrap();
    let (response, _) = client
        .send_request(h2_get(&server, "/realtime/h2news"), true)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    h2_read_until(&mut body, "retry:").await;
    let opened = Instant::now();
    // A second HTTP/2 connection that stays idle: when the server has
    // closed it, both deadlines have passed for the first one too.
    let (_idle, idle_driver) = h2c(&server).await;
    connection_end(idle_driver).await;
    assert!(opened.elapsed() >= Duration::from_secs(1));
    let (status, _) = post(&server.url("/channels/h2news"), "text/plain", "still here").await;
    assert_eq!(status, 200);
    h2_read_until(&mut body, "data: still here").await;
    assert!(!driver.is_finished());
}
