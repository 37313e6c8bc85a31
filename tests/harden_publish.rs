//! Publish bodies against the real binary (issue 20, "Hardening, round
//! 2"): a caller without the right is refused from the request head before
//! its body arrives (HTTP/1.1 and HTTP/2), a body that trickles is cut by
//! `--body-timeout` (408, the HTTP/1.1 connection closed, the HTTP/2
//! connection kept), bodies are bounded while they arrive, compressed
//! bodies by their decompressed size, NDJSON lines are counted before they
//! are parsed, and reserved event types cannot be published.

mod common;

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use common::{client, post, proc_status_field, Server, Sse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for an answer in these tests (a watchdog, far above what
/// the server needs; an answer that waits for the body never comes).
const WATCHDOG: Duration = Duration::from_secs(10);

/// A server with access control on (HS256), following nothing but the
/// demo.
fn secured() -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "x".repeat(40)).unwrap();
    Server::start_in(
        dir,
        &["--jwt-secret-file", "{dir}/secret"],
        Stdio::null(),
        &[],
    )
}

async fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(&server.addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads a response head (lower-cased) from `stream`, or `None` when none
/// came within [`WATCHDOG`].
async fn read_head(stream: &mut tokio::net::tcp::OwnedReadHalf) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                return String::from_utf8_lossy(&data[..end]).to_lowercase();
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    return format!("closed after {:?}", String::from_utf8_lossy(&data))
                }
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(WATCHDOG, read).await.ok()
}

/// Reads until the server closes the connection; panics after
/// [`WATCHDOG`].
async fn wait_closed(stream: &mut tokio::net::tcp::OwnedReadHalf) {
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(WATCHDOG, read_all)
        .await
        .expect("the server did not close the connection");
}

/// Sends `head`, then `start` of the body, then one more byte every 200 ms
/// (a trickling client) until the connection fails or `total` bytes went.
fn trickle(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    head: String,
    start: usize,
    total: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if write.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        if write.write_all(&vec![b'x'; start]).await.is_err() {
            return;
        }
        for _ in start..total {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write.write_all(b"x").await.is_err() {
                return;
            }
        }
    })
}

/// The peak resident memory of the server so far, in KiB.
fn peak_kib(server: &Server) -> u64 {
    proc_status_field(server.pid(), "VmHWM:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// An HTTP/2 (h2c) connection to `server`, driven in the background.
async fn h2c(server: &Server) -> h2::client::SendRequest<bytes::Bytes> {
    let (client, connection) = h2::client::handshake(connect(server).await).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A POST to `path` over HTTP/2 announcing a `length`-byte body.
fn h2_post(server: &Server, path: &str, length: usize) -> axum::http::Request<()> {
    axum::http::Request::post(server.url(path))
        .header("content-type", "text/plain")
        .header("content-length", length)
        .body(())
        .unwrap()
}

#[tokio::test]
async fn a_publisher_without_the_right_is_refused_before_its_body_arrives_over_http1() {
    let server = secured();
    for path in ["/channels/news", "/api/broadcast"] {
        let (mut read, write) = connect(&server).await.into_split();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
             Content-Length: 1048576\r\n\r\n"
        );
        let sender = trickle(write, head, 10, 1000);
        let answer = read_head(&mut read)
            .await
            .unwrap_or_else(|| panic!("{path}: no answer while the body trickles"));
        assert!(answer.starts_with("http/1.1 401"), "{path}: {answer}");
        sender.abort();
    }
}

/// Reads from `stream` into `data` until `needle` is in it; panics when
/// the connection closes first or after [`WATCHDOG`].
async fn read_until(stream: &mut tokio::net::tcp::OwnedReadHalf, data: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    let read = async {
        while !String::from_utf8_lossy(data).contains(needle) {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            assert!(
                n > 0,
                "closed before {needle:?}: {:?}",
                String::from_utf8_lossy(data)
            );
            data.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WATCHDOG, read)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?}"));
}

#[tokio::test]
async fn a_refused_publisher_sees_its_answer_first_and_keeps_its_connection() {
    let server = secured();
    let (mut read, mut write) = connect(&server).await.into_split();
    write
        .write_all(
            b"POST /channels/news HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
              Content-Length: 20\r\n\r\n",
        )
        .await
        .unwrap();
    let mut data = Vec::new();
    read_until(&mut read, &mut data, "\"error\":\"unauthorized\"").await;
    let answer = String::from_utf8_lossy(&data).into_owned();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // The rest of the body, sent after the answer, is read and discarded:
    // then the answer ends and the connection carries the next request.
    write.write_all(b"twenty bytes of body").await.unwrap();
    write
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut read, &mut data, "\"status\":\"ok\"").await;
    let both = String::from_utf8_lossy(&data).into_owned();
    let second = both.find("HTTP/1.1 200").expect("a second response");
    assert!(both[..second].ends_with("\r\n0\r\n\r\n"), "{both}");
}

#[tokio::test]
async fn a_publisher_without_the_right_is_refused_before_its_body_arrives_over_http2() {
    let server = secured();
    let mut h2 = h2c(&server).await;
    for path in ["/channels/news", "/api/broadcast"] {
        let (response, mut body) = h2
            .send_request(h2_post(&server, path, 1 << 20), false)
            .unwrap();
        body.send_data(bytes::Bytes::from_static(b"a little"), false)
            .unwrap();
        let response = tokio::time::timeout(WATCHDOG, response)
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer while the body is unsent"))
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
}

#[tokio::test]
async fn a_trickling_body_gets_408_and_the_http1_connection_is_closed() {
    let server = Server::start_with(&[], Stdio::null(), &[("TAILCAST_BODY_TIMEOUT", "1s")]);
    let (mut read, write) = connect(&server).await.into_split();
    let head = "POST /channels/news HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
                Content-Length: 100\r\n\r\n"
        .to_string();
    let sender = trickle(write, head, 10, 100);
    let answer = read_head(&mut read)
        .await
        .expect("no answer while the body trickles");
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(answer.contains("\r\nconnection: close"), "{answer}");
    wait_closed(&mut read).await;
    sender.abort();
}

#[tokio::test]
async fn a_trickling_body_gets_408_on_its_http2_stream_and_the_connection_lives() {
    let server = Server::start_with(&[], Stdio::null(), &[("TAILCAST_BODY_TIMEOUT", "1s")]);
    let mut h2 = h2c(&server).await;
    let (response, mut body) = h2
        .send_request(h2_post(&server, "/channels/news", 100), false)
        .unwrap();
    body.send_data(bytes::Bytes::from_static(b"ten bytes."), false)
        .unwrap();
    let response = tokio::time::timeout(WATCHDOG, response)
        .await
        .expect("no answer while the body is unsent")
        .unwrap();
    assert_eq!(response.status(), 408);
    let health = axum::http::Request::get(server.url("/health"))
        .body(())
        .unwrap();
    let (again, _) = h2.send_request(health, true).unwrap();
    let again = tokio::time::timeout(WATCHDOG, again)
        .await
        .expect("the connection did not serve another request")
        .unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn a_body_over_max_body_is_refused_while_it_arrives() {
    let server = Server::start(&["--max-body", "64KiB"]);
    // Announced too large: refused before a byte of body is read.
    let (mut read, mut write) = connect(&server).await.into_split();
    write
        .write_all(
            b"POST /channels/news HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
              Content-Length: 2000000\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_head(&mut read)
        .await
        .expect("no answer to a Content-Length over --max-body");
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    // Chunked: refused once past the bound, while the client goes on.
    let (mut read, mut write) = connect(&server).await.into_split();
    let sender = tokio::spawn(async move {
        let head =
            "POST /channels/news HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        write.write_all(head.as_bytes()).await?;
        let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
        for _ in 0..256 {
            write.write_all(chunk.as_bytes()).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let answer = read_head(&mut read)
        .await
        .expect("no answer to a chunked body over --max-body");
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    wait_closed(&mut read).await;
    sender.abort();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// POSTs `body` to `path` with `Content-Encoding: encoding`.
async fn post_encoded(
    server: &Server,
    path: &str,
    content_type: &str,
    encoding: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let resp = client()
        .post(server.url(path))
        .header("content-type", content_type)
        .header("content-encoding", encoding)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}")),
    )
}

#[tokio::test]
async fn compressed_bodies_are_published_decompressed() {
    let server = Server::start(&[]);
    let mut sse = Sse::connect(&server.url("/realtime/news")).await;
    let ndjson = b"\"one\"\n{\"event\": \"t\", \"data\": \"two\"}\n";
    for (encoding, content_type, body) in [
        ("gzip", "text/plain", gzip(b"gzipped")),
        ("deflate", "text/plain", zlib(b"deflated")),
        (
            "zstd",
            "text/plain",
            zstd::encode_all(&b"zstded"[..], 3).unwrap(),
        ),
        (
            "zstd",
            "application/x-ndjson",
            zstd::encode_all(&ndjson[..], 3).unwrap(),
        ),
        ("identity", "text/plain", b"plain".to_vec()),
    ] {
        let (status, answer) =
            post_encoded(&server, "/channels/news", content_type, encoding, body).await;
        assert_eq!(status, 200, "{encoding}: {answer}");
    }
    let data: Vec<String> = sse
        .events(6)
        .await
        .iter()
        .map(|f| format!("{}:{}", f.event_type(), f.data()))
        .collect();
    assert_eq!(
        data,
        [
            "message:gzipped",
            "message:deflated",
            "message:zstded",
            "message:one",
            "t:two",
            "message:plain"
        ]
    );
    let (status, answer) =
        post_encoded(&server, "/channels/news", "text/plain", "br", b"x".to_vec()).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (415, Some("unsupported content encoding")),
        "{answer}"
    );
    let (status, answer) = post_encoded(
        &server,
        "/channels/news",
        "text/plain",
        "gzip",
        b"not gzip".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test]
async fn a_zip_bomb_gets_413_with_the_memory_bounded() {
    let server = Server::start(&[]);
    let zeros = vec![b'a'; 64 << 20];
    let bombs = [
        ("gzip", gzip(&zeros)),
        ("zstd", zstd::encode_all(&zeros[..], 1).unwrap()),
    ];
    drop(zeros);
    let before = peak_kib(&server);
    for (encoding, bomb) in bombs {
        assert!(bomb.len() < 1 << 20, "{encoding}: {} bytes", bomb.len());
        let (status, answer) =
            post_encoded(&server, "/channels/news", "text/plain", encoding, bomb).await;
        assert_eq!(status, 413, "{encoding}: {answer}");
    }
    let grown = peak_kib(&server).saturating_sub(before);
    eprintln!("VmHWM grew by {grown} KiB");
    assert!(
        grown < 32 * 1024,
        "two 64 MiB bombs raised the peak RSS by {grown} KiB"
    );
}

#[tokio::test]
async fn ndjson_lines_are_counted_before_they_are_parsed() {
    let server = Server::start(&["--history", "3"]);
    let body = "\"a\"\n\"b\"\n\n\"c\"\nnot json at all\n";
    let (status, answer) = post(&server.url("/channels/news"), "application/x-ndjson", body).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (413, Some("batch too large")),
        "{answer}"
    );
    let (status, answer) = post(
        &server.url("/channels/news"),
        "application/x-ndjson",
        "\"a\"\n  \n\"b\"\r\n\"c\"",
    )
    .await;
    assert_eq!(
        (status, answer["count"].as_u64()),
        (200, Some(3)),
        "{answer}"
    );
}

#[tokio::test]
async fn a_megabyte_of_tiny_ndjson_lines_is_refused_before_it_costs_memory() {
    let server = Server::start(&[]);
    let body = "\"\"\n".repeat((1 << 20) / 3);
    let before = peak_kib(&server);
    let (status, answer) = post(&server.url("/channels/news"), "application/x-ndjson", body).await;
    assert_eq!(status, 413, "{answer}");
    let grown = peak_kib(&server).saturating_sub(before);
    eprintln!("VmHWM grew by {grown} KiB");
    assert!(
        grown < 16 * 1024,
        "1 MiB of NDJSON raised the peak RSS by {grown} KiB"
    );
}

#[tokio::test]
async fn reserved_event_types_cannot_be_published() {
    let server = Server::start(&[]);
    for (query, content_type, body) in [
        ("?event=token-expired", "text/plain", "x"),
        ("?event=broadcast", "text/plain", "x"),
        ("?event=reset", "text/plain", "x"),
        (
            "",
            "application/json",
            r#"{"event": "token-expired", "data": 1}"#,
        ),
        (
            "",
            "application/json",
            r#"{"event": "broadcast", "data": 1}"#,
        ),
        (
            "",
            "application/x-ndjson",
            "\"ok\"\n{\"event\": \"reset\", \"data\": 1}\n",
        ),
        (
            "",
            "application/x-ndjson",
            "{\"event\": \"token-expired\", \"data\": 1}",
        ),
    ] {
        let url = server.url(&format!("/channels/news{query}"));
        let (status, answer) = post(&url, content_type, body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("reserved event type")),
            "{query} {body}: {answer}"
        );
    }
    let (status, answer) = post(
        &server.url("/channels/news?event=token-expiring"),
        "text/plain",
        "x",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

/// A client that sends its whole body before it reads (Python's
/// `http.client` and `requests` do) must still see the 413 of a body over
/// `--max-body`, not a broken pipe or a reset: the server reads and throws
/// away what follows the answer (up to 64 MiB, within `--body-timeout`)
/// before it closes, as nginx's lingering close does.
#[tokio::test]
async fn a_client_that_sends_its_whole_oversized_body_first_still_reads_its_413() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(
        dir,
        &["--max-body", "64KiB", "{dir}/quiet.log"],
        Stdio::null(),
        &[],
    );
    let body = vec![b'x'; 20 << 20];
    for (what, head) in [
        (
            "announced",
            "POST /channels/news HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
             Content-Length: 20971520\r\n\r\n"
                .to_string(),
        ),
        (
            "gzip, announced",
            "POST /channels/news HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
             Content-Encoding: gzip\r\nContent-Length: 20971520\r\n\r\n"
                .to_string(),
        ),
    ] {
        let mut stream = connect(&server).await;
        let send = async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await? {
                    0 => break,
                    n => answer.extend_from_slice(&buf[..n]),
                }
            }
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
        };
        let answer = tokio::time::timeout(WATCHDOG, send)
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer"))
            .unwrap_or_else(|e| panic!("{what}: the upload failed instead of reading a 413: {e}"));
        assert!(answer.starts_with("HTTP/1.1 413"), "{what}: {answer:?}");
    }
    // Nothing of either body was published.
    let (status, answer) = post(&server.url("/channels/news"), "text/plain", "sentinel").await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["id"].as_str().unwrap();
    assert!(
        id.ends_with("-1"),
        "the sentinel is the first event: {answer}"
    );
}
