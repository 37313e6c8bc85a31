//! Hardening round 2, Redis and the lean path: a publish right after Redis
//! restarted (the node's old connection dead) and request heads trickled
//! in byte by byte, over real sockets against the real binary.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
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
}

/// A `redis-server` owned by the test (as in `tests/redis.rs`), with its
/// data kept in an append-only file (fsync on every write) when `aof`.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    aof: bool,
}

impl Redis {
    fn start(aof: bool) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Redis {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            aof,
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", if self.aof { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let start = Instant::now();
        while !self.answers() {
            assert!(start.elapsed() < DEADLINE, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn answers(&self) -> bool {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 64];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    /// Stops Redis by PID (SIGTERM: a clean shutdown, AOF flushed) and
    /// waits until it has exited.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < DEADLINE, "redis-server did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts Redis again on the same port, with its data or empty.
    fn restart(&mut self, keep_data: bool) {
        if !keep_data {
            self.dir = tempfile::tempdir().unwrap();
        }
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn redis_node(redis: &Redis) -> Server {
    let server = Server::start(&[
        "--redis",
        &redis.url(),
        "--node",
        "a",
        "--heartbeat",
        "300ms",
        "a-own={dir}/own.log",
    ]);
    eventually("/health 200", || async {
        (get(&server.url("/health")).await.0 == 200).then_some(())
    })
    .await;
    server
}

/// `/health`'s status and body.
async fn health(server: &Server) -> (u16, String) {
    get(&server.url("/health")).await
}

/// `POST /channels/news` with `data`: status, `Retry-After`, body.
async fn publish(server: &Server, data: &str) -> (u16, Option<String>, String) {
    let response = client()
        .post(server.url("/channels/news"))
        .header("content-type", "text/plain")
        .body(data.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry_after, response.text().await.unwrap())
}

/// Restarts Redis (with or without its data) under a node that has not
/// noticed yet, several times. Publishing as soon as `/health` says `ok`
/// again is accepted; publishing at once is accepted, or refused cleanly
/// (503 with `Retry-After`) while `/health` already said `degraded`:
/// never a `503 broken pipe` behind a `/health` of `ok`. Every accepted
/// publish arrives once.
async fn first_publish_after_restarts(keep_data: bool) {
    let mut redis = Redis::start(keep_data);
    let server = redis_node(&redis).await;
    let mut sse = Sse::connect(&server.url("/realtime/news")).await;
    let mut accepted = Vec::new();
    let (status, _, body) = publish(&server, "before").await;
    assert_eq!(status, 200, "{body}");
    accepted.push("before".to_string());
    for round in 0..4 {
        redis.stop();
        redis.restart(keep_data);
        let data = format!("after restart {round}");
        if round % 2 == 0 {
            // As a client (or a load balancer) would: wait for `ok`.
            let said = eventually("/health 200", || async {
                let (status, body) = health(&server).await;
                (status == 200).then_some(body)
            })
            .await;
            let (status, _, body) = publish(&server, &data).await;
            assert_eq!(
                status, 200,
                "round {round}: {body} right after /health said {said}"
            );
            accepted.push(data);
        } else {
            let (health_status, health_body) = health(&server).await;
            let (status, retry_after, body) = publish(&server, &data).await;
            match status {
                200 => accepted.push(data),
                503 => {
                    assert_ne!(
                        health_status, 200,
                        "round {round}: 503 ({body}) while /health said {health_body}"
                    );
                    assert!(retry_after.is_some(), "round {round}: no Retry-After");
                }
                _ => panic!("round {round}: {status} {body}"),
            }
        }
    }
    eventually("/health 200", || async {
        (health(&server).await.0 == 200).then_some(())
    })
    .await;
    let (status, _, body) = publish(&server, "last").await;
    assert_eq!(status, 200, "{body}");
    accepted.push("last".to_string());
    // Each accepted event arrives once, in order (resets aside).
    let mut got = Vec::new();
    let start = Instant::now();
    while got.last().map(String::as_str) != Some("last") {
        assert!(start.elapsed() < DEADLINE, "got {got:?}");
        let frame = sse.next_event().await;
        if frame.event_type() != "reset" {
            got.push(frame.data().to_string());
        }
    }
    assert_eq!(got, accepted);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_publish_after_redis_restarted_with_its_data_goes_through() {
    first_publish_after_restarts(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_publish_after_redis_restarted_empty_goes_through() {
    first_publish_after_restarts(false).await;
}

/// While Redis is down, `/health` says `degraded` (503) at once, without
/// waiting for the next probe, and publishes are 503 with `Retry-After`.
#[tokio::test(flavor = "multi_thread")]
async fn health_is_degraded_while_redis_is_down() {
    let mut redis = Redis::start(true);
    let server = redis_node(&redis).await;
    redis.stop();
    let (status, retry_after, body) = publish(&server, "lost?").await;
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some(), "503 without Retry-After");
    let (status, body) = health(&server).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("degraded"), "{body}");
    redis.restart(true);
    eventually("/health 200", || async {
        (health(&server).await.0 == 200).then_some(())
    })
    .await;
}
