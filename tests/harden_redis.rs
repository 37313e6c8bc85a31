//! Hardening round 2, Redis and the lean path: a publish right after Redis
//! restarted (the node's old connection dead) and request heads trickled
//! in byte by byte, over real sockets against the real binary.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request head sent one byte per write is still served on the lean path
/// (its answer is the lean path's: chunked, `connection: close`).
#[tokio::test(flavor = "multi_thread")]
async fn a_head_trickled_byte_by_byte_is_served() {
    let server = Server::start(&["--heartbeat", "300ms", "app={dir}/app.log"]);
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut head = b"GET /realtime/trickle HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..20 {
        head.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(100)).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    for byte in &head {
        stream.write_all(std::slice::from_ref(byte)).await.unwrap();
    }
    let mut answer = Vec::new();
    let start = Instant::now();
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(start.elapsed() < DEADLINE, "no answer: {answer:?}");
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 200 ok\r\n"), "{answer}");
    assert!(
        answer.contains("content-type: text/event-stream"),
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");
    let _ = Duration::ZERO;
}
