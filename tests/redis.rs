//! Scale-out on Redis: several real `tailcast serve` nodes sharing one real
//! `redis-server` (started by each test on a free loopback port, stopped
//! by PID), over real HTTP. Faults are real too: Redis stopped, restarted
//! with and without its data, a node killed, and a TCP proxy that stops
//! forwarding while the connection stays up.
//!
//! `redis-server` must be installed (`.ci/run` installs Debian's).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A `redis-server` owned by the test, stopped when dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    aof: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    /// Starts Redis on a free port; with `aof`, every write is appended to
    /// a file (fsync on every write) so a restart keeps the data.
    fn start(aof: bool) -> Redis {
        let mut redis = Redis {
            child: None,
            port: free_port(),
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

    /// Sends one inline command and returns the raw reply.
    fn command(&self, cmd: &str) -> Option<String> {
        let mut s = StdTcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    fn answers(&self) -> bool {
        self.command("PING").is_some_and(|r| r.starts_with("+PONG"))
    }

    /// Stops Redis: SIGTERM (a clean shutdown, AOF flushed) or SIGKILL.
    fn stop(&mut self, signal: &str) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < DEADLINE, "redis-server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts Redis again on the same port: with its data (same folder,
    /// AOF) or empty (a fresh folder).
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

/// Stands for "no log file of interest": the node follows a file named
/// after itself (without files it would run the demo, whose stream name
/// every node would claim).
const NO_FILES: &str = "";

/// Starts a node on `redis_url` named `name` with extra arguments, and
/// waits until it is healthy.
async fn node(redis_url: &str, name: &str, args: &[&str]) -> Server {
    let own_file = format!("{name}-own={{dir}}/own.log");
    let mut all = vec!["--redis", redis_url, "--node", name, "--heartbeat", "300ms"];
    for arg in args {
        all.push(if arg.is_empty() { &own_file } else { arg });
    }
    let server = Server::start(&all);
    wait_health(&server, 200).await;
    server
}

async fn health(server: &Server) -> (u16, serde_json::Value) {
    let (status, body) = get(&server.url("/health")).await;
    (status, serde_json::from_str(&body).unwrap())
}

async fn wait_health(server: &Server, want: u16) -> serde_json::Value {
    eventually(&format!("/health {want}"), || async {
        let (status, body) = health(server).await;
        (status == want).then_some(body)
    })
    .await
}

async fn publish(server: &Server, channel: &str, data: &str) -> (u16, serde_json::Value) {
    post(
        &server.url(&format!("/channels/{channel}")),
        "text/plain",
        data.to_string(),
    )
    .await
}

async fn publish_ok(server: &Server, channel: &str, data: &str) -> String {
    let (status, body) = publish(server, channel, data).await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Id number of `TAG-SEQ`.
fn seq(id: &str) -> u64 {
    id.rsplit_once('-').unwrap().1.parse().unwrap()
}

/// Events (not resets) read until `n` have arrived; resets are collected
/// apart.
async fn collect(sse: &mut Sse, n: usize) -> (Vec<Frame>, Vec<Frame>) {
    let mut events = Vec::new();
    let mut resets = Vec::new();
    let start = Instant::now();
    while events.len() < n {
        // Heartbeats keep coming: the deadline is on the events.
        assert!(
            start.elapsed() < DEADLINE,
            "got {} of {n} events: {events:?}, resets {resets:?}",
            events.len()
        );
        let frame = sse.next_frame().await.expect("stream ended");
        if frame.data.is_none() {
            continue;
        }
        if frame.event_type() == "reset" {
            resets.push(frame);
        } else if frame.event_type() != "broadcast" {
            events.push(frame);
        }
    }
    (events, resets)
}

/// `(channel, data)` of enveloped `/events` frames.
fn enveloped(frames: &[Frame]) -> Vec<(String, String)> {
    frames
        .iter()
        .map(|f| {
            let v = f.json();
            (
                v["channel"].as_str().unwrap().to_string(),
                v["data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Reads `sse` until the event whose data (enveloped or not) is `sentinel`
/// (published by the caller after everything else) and asserts that
/// nothing came before it: no duplicate, no reset, without waiting a
/// fixed time for silence.
async fn assert_nothing_before(sse: &mut Sse, sentinel: &str) {
    let mut before = Vec::new();
    loop {
        let frame = sse.next_event().await;
        let data = serde_json::from_str::<serde_json::Value>(frame.data())
            .ok()
            .and_then(|v| v["data"].as_str().map(str::to_string))
            .unwrap_or_else(|| frame.data().to_string());
        if data == sentinel {
            break;
        }
        before.push(frame);
    }
    assert!(before.is_empty(), "unexpected events: {before:?}");
}

fn assert_increasing(frames: &[Frame]) {
    let ids: Vec<u64> = frames
        .iter()
        .map(|f| seq(f.id.as_deref().unwrap()))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids not strictly increasing: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_subscriber_on_every_node_gets_each_event_once_in_id_order_with_one_id() {
    let redis = Redis::start(false);
    let a = node(&redis.url(), "a", &[NO_FILES]).await;
    let b = node(&redis.url(), "b", &[NO_FILES]).await;
    let mut subs = Vec::new();
    for server in [&a, &b] {
        subs.push(Sse::connect(&server.url("/events?channel=c1&channel=c2")).await);
        subs.push(Sse::connect(&server.url("/realtime/c1")).await);
    }
    // Two publishers at once, one per node, on two channels.
    let per = 40;
    let publishers: Vec<_> = [(a.url("/channels/c1"), "a"), (b.url("/channels/c2"), "b")]
        .into_iter()
        .map(|(url, who)| {
            tokio::spawn(async move {
                let mut ids = HashMap::new();
                for i in 0..per {
                    let data = format!("{who}{i}");
                    let (status, body) = post(&url, "text/plain", data.clone()).await;
                    assert_eq!(status, 200, "{body}");
                    ids.insert(data, body["id"].as_str().unwrap().to_string());
                }
                ids
            })
        })
        .collect();
    let mut ids: HashMap<String, String> = HashMap::new();
    for p in publishers {
        ids.extend(p.await.unwrap());
    }
    for (i, sse) in subs.iter_mut().enumerate() {
        let multiplexed = i % 2 == 0;
        let want = if multiplexed { 2 * per } else { per };
        let (events, resets) = collect(sse, want).await;
        assert!(resets.is_empty(), "{resets:?}");
        assert_increasing(&events);
        let mut seen = std::collections::HashSet::new();
        for frame in &events {
            let data = if multiplexed {
                frame.json()["data"].as_str().unwrap().to_string()
            } else {
                frame.data().to_string()
            };
            // The same id on every node, the one the publisher was given.
            assert_eq!(frame.id.as_deref(), Some(ids[&data].as_str()), "{data}");
            assert!(seen.insert(data.clone()), "{data} twice");
        }
        // Each publisher's events in its own order.
        let datas: Vec<String> = events
            .iter()
            .map(|f| {
                if multiplexed {
                    f.json()["data"].as_str().unwrap().to_string()
                } else {
                    f.data().to_string()
                }
            })
            .collect();
        for who in ["a", "b"] {
            let mine: Vec<&String> = datas.iter().filter(|d| d.starts_with(who)).collect();
            let expected: Vec<String> = (0..per).map(|i| format!("{who}{i}")).collect();
            if multiplexed || who == "a" {
                assert_eq!(mine, expected.iter().collect::<Vec<_>>());
            }
        }
    }
    publish_ok(&a, "c1", "end").await;
    for sse in &mut subs {
        assert_nothing_before(sse, "end").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn last_event_id_from_one_node_resumes_exactly_on_another_multiplexed_included() {
    let redis = Redis::start(false);
    let a = node(&redis.url(), "a", &[NO_FILES]).await;
    let mut sse = Sse::connect(&a.url("/events?channel=x&channel=y")).await;
    for i in 0..10 {
        publish_ok(&a, if i % 2 == 0 { "x" } else { "y" }, &format!("e{i}")).await;
    }
    let (first, _) = collect(&mut sse, 4).await;
    let last = first[3].id.clone().unwrap();
    drop(sse);
    for i in 10..14 {
        publish_ok(&a, if i % 3 == 0 { "x" } else { "y" }, &format!("e{i}")).await;
    }
    // A node started after all of it: the history comes from Redis.
    let b = node(&redis.url(), "b", &[NO_FILES]).await;
    let mut resumed = Sse::connect_with(
        &b.url("/events?channel=x&channel=y"),
        &[("last-event-id", &last)],
    )
    .await;
    let (rest, resets) = collect(&mut resumed, 10).await;
    assert!(resets.is_empty(), "{resets:?}");
    assert_increasing(&rest);
    let datas: Vec<String> = enveloped(&rest).into_iter().map(|(_, d)| d).collect();
    assert_eq!(datas, (4..14).map(|i| format!("e{i}")).collect::<Vec<_>>());
    publish_ok(&b, "x", "end").await;
    assert_nothing_before(&mut resumed, "end").await;

    // Single channel, query parameter form, on the first node again.
    let id_of_e2 = enveloped(&first)
        .iter()
        .position(|(_, d)| d == "e2")
        .map(|i| first[i].id.clone().unwrap())
        .unwrap();
    let mut single = Sse::connect(&a.url(&format!("/realtime/x?lastEventId={id_of_e2}"))).await;
    let (xs, resets) = collect(&mut single, 4).await;
    assert!(resets.is_empty());
    assert_eq!(data_of(&xs), ["e4", "e6", "e8", "e12"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn broadcasts_reach_every_client_on_every_node() {
    let redis = Redis::start(false);
    let a = node(&redis.url(), "a", &[NO_FILES]).await;
    let b = node(&redis.url(), "b", &[NO_FILES]).await;
    let mut on_b = Sse::connect(&b.url("/realtime/quiet")).await;
    let mut on_a = Sse::connect(&a.url("/events?channel=other")).await;
    let (status, body) = post(
        &a.url("/api/broadcast"),
        "application/json",
        r#"{"message":"maintenance","timestamp":"now"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for sse in [&mut on_b, &mut on_a] {
        let frame = sse.next_event().await;
        assert_eq!(frame.event_type(), "broadcast");
        assert_eq!(frame.id.as_deref(), body["id"].as_str());
        assert!(frame.raw.contains("maintenance"), "{}", frame.raw);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn log_streams_followed_by_one_node_are_served_by_all() {
    let redis = Redis::start(false);
    let a = node(&redis.url(), "a", &["app={dir}/app.log"]).await;
    let b = node(&redis.url(), "b", &["other={dir}/other.log"]).await;
    append(&a.path("app.log"), "first\n");
    let info = eventually("log:app listed on b", || async {
        stream_info(&b, "log:app")
            .await
            .filter(|s| s["state"] == "following" && !s["last_id"].is_null())
    })
    .await;
    assert_eq!(info["kind"], "log");
    assert_eq!(info["node"], "a");
    assert_eq!(stream_info(&b, "log:other").await.unwrap()["node"], "b");
    let mut on_b = Sse::connect(&b.url("/logs/app?tail=5")).await;
    let mut multiplexed = Sse::connect(&b.url("/events?channel=log:app&tail=0")).await;
    assert_eq!(on_b.next_event().await.data(), "first");
    append(&a.path("app.log"), &lines("line ", 0..20));
    let (events, _) = collect(&mut on_b, 20).await;
    assert_eq!(
        data_of(&events),
        lines("line ", 0..20).lines().collect::<Vec<_>>()
    );
    let (events, _) = collect(&mut multiplexed, 20).await;
    assert_eq!(enveloped(&events)[19], ("log:app".into(), "line 19".into()));
    let (status, _) = get(&b.url("/logs/nope")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_node_claiming_a_followed_log_stream_is_refused_clearly() {
    let redis = Redis::start(false);
    let a = node(&redis.url(), "a", &["app={dir}/app.log"]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = format!("app={}/app.log", dir.path().display());
    let output = serve_refused(&["--redis", &redis.url(), "--node", "b", &app]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("log:app is already followed by node a"),
        "{stderr}"
    );
    // It never said it was listening.
    assert!(
        output.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    // The first node keeps it.
    append(&a.path("app.log"), "still mine\n");
    let mut sse = Sse::connect(&a.url("/logs/app")).await;
    assert_eq!(sse.next_event().await.data(), "still mine");
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stopped_publishes_503_streams_stay_open_health_degraded_then_no_gap() {
    let mut redis = Redis::start(true);
    let a = node(&redis.url(), "a", &[NO_FILES]).await;
    let b = node(&redis.url(), "b", &[NO_FILES]).await;
    let mut sse = Sse::connect(&b.url("/realtime/news")).await;
    for i in 0..3 {
        publish_ok(&a, "news", &format!("before {i}")).await;
    }
    let (before, _) = collect(&mut sse, 3).await;

    redis.stop("-TERM");
    let refused = eventually("publish refused", || async {
        let (status, body) = publish(&a, "news", "lost?").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(refused["error"], "unavailable");
    for server in [&a, &b] {
        let body = wait_health(server, 503).await;
        assert_eq!(body["status"], "degraded");
    }
    // The stream stays open, with heartbeats.
    let mut pings = 0;
    while pings < 2 {
        let frame = sse.next_frame().await.expect("stream stays open");
        assert!(frame.data.is_none(), "unexpected event {frame:?}");
        pings += frame.comments.iter().filter(|c| *c == "ping").count();
    }

    redis.restart(true);
    for server in [&a, &b] {
        wait_health(server, 200).await;
    }
    for i in 0..3 {
        publish_ok(&a, "news", &format!("after {i}")).await;
    }
    let (after, resets) = collect(&mut sse, 3).await;
    assert!(resets.is_empty(), "{resets:?}");
    assert_eq!(data_of(&after), ["after 0", "after 1", "after 2"]);
    // Same epoch, numbers going on: nothing 503'd was published.
    let mut all = before.clone();
    all.extend(after);
    assert_increasing(&all);
    assert_eq!(
        all[0].id.as_ref().unwrap().split('-').next(),
        all[5].id.as_ref().unwrap().split('-').next()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_with_its_data_resumes_exactly_without_reset() {
    let mut redis = Redis::start(true);
    let a = node(&redis.url(), "a", &[NO_FILES]).await;
    let b = node(&redis.url(), "b", &[NO_FILES]).await;
    let mut live = Sse::connect(&a.url("/events?channel=k1&channel=k2")).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(publish_ok(&b, if i % 2 == 0 { "k1" } else { "k2" }, &format!("v{i}")).await);
    }
    collect(&mut live, 6).await;
    redis.stop("-TERM");
    wait_health(&a, 503).await;
    wait_health(&b, 503).await;
    redis.restart(true);
    wait_health(&a, 200).await;
    wait_health(&b, 200).await;
    // A node whose probe had not yet run since the restart finds its old
    // connection closed and publishes on a fresh one; a publish that raced
    // the restart may still be a clean 503 (not accepted), then it works.
    eventually("publish after the restart", || async {
        let (status, _) = publish(&b, "k1", "v6").await;
        (status == 200).then_some(())
    })
    .await;
    let (events, resets) = collect(&mut live, 1).await;
    assert!(resets.is_empty(), "{resets:?}");
    assert_eq!(enveloped(&events), [("k1".into(), "v6".into())]);
    // An id from before the restart resumes exactly, on the other node.
    let mut resumed = Sse::connect_with(
        &b.url("/events?channel=k1&channel=k2"),
        &[("last-event-id", &ids[2])],
    )
    .await;
    let (rest, resets) = collect(&mut resumed, 4).await;
    assert!(resets.is_empty(), "{resets:?}");
    let datas: Vec<String> = enveloped(&rest).into_iter().map(|(_, d)| d).collect();
    assert_eq!(datas, ["v3", "v4", "v5", "v6"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_empty_sends_one_history_lost_reset_per_affected_channel() {
    let mut redis = Redis::start(false);
    let a = node(&redis.url(), "a", &[NO_FILES]).await;
    let b = node(&redis.url(), "b", &[NO_FILES]).await;
    let mut subs = vec![
        Sse::connect(&a.url("/events?channel=h1&channel=h2&channel=quiet")).await,
        Sse::connect(&b.url("/events?channel=h1&channel=h2&channel=quiet")).await,
    ];
    let mut old_ids = Vec::new();
    for i in 0..4 {
        old_ids
            .push(publish_ok(&a, if i % 2 == 0 { "h1" } else { "h2" }, &format!("old{i}")).await);
    }
    for sse in &mut subs {
        collect(sse, 4).await;
    }
    redis.stop("-KILL");
    redis.restart(false);
    wait_health(&a, 200).await;
    wait_health(&b, 200).await;
    let new_id = eventually("publish after the restart", || async {
        let (status, body) = publish(&a, "h1", "new0").await;
        (status == 200).then(|| body["id"].as_str().unwrap().to_string())
    })
    .await;
    assert_ne!(new_id.split('-').next(), old_ids[0].split('-').next());
    for sse in &mut subs {
        let (events, resets) = collect(sse, 1).await;
        let mut reset_channels: Vec<String> = resets
            .iter()
            .map(|r| {
                assert_eq!(r.json()["reason"], "history lost");
                r.json()["channel"].as_str().unwrap().to_string()
            })
            .collect();
        reset_channels.sort();
        assert_eq!(reset_channels, ["h1", "h2"]);
        assert_eq!(enveloped(&events), [("h1".into(), "new0".into())]);
        assert_eq!(events[0].id.as_deref(), Some(new_id.as_str()));
    }
    publish_ok(&a, "quiet", "end").await;
    for sse in &mut subs {
        assert_nothing_before(sse, "end").await;
    }
    // An id of the lost history is never taken as valid: reset, then what
    // exists now.
    let mut resumed =
        Sse::connect_with(&b.url("/realtime/h1"), &[("last-event-id", &old_ids[0])]).await;
    let reset = resumed.next_event().await;
    assert_eq!(reset.event_type(), "reset");
    assert_eq!(reset.json()["reason"], "history lost");
    assert_eq!(resumed.next_event().await.data(), "new0");
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_of_a_killed_node_resume_exactly_on_another() {
    let redis = Redis::start(false);
    let mut a = node(&redis.url(), "a", &[NO_FILES]).await;
    let b = node(&redis.url(), "b", &[NO_FILES]).await;
    let mut sse = Sse::connect(&a.url("/events?channel=m1&channel=m2")).await;
    for i in 0..5 {
        publish_ok(&b, if i % 2 == 0 { "m1" } else { "m2" }, &format!("d{i}")).await;
    }
    let (got, _) = collect(&mut sse, 5).await;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    for i in 5..9 {
        publish_ok(&b, if i % 2 == 0 { "m1" } else { "m2" }, &format!("d{i}")).await;
    }
    let last = got.last().unwrap().id.clone().unwrap();
    let mut resumed = Sse::connect_with(
        &b.url("/events?channel=m1&channel=m2"),
        &[("last-event-id", &last)],
    )
    .await;
    let (rest, resets) = collect(&mut resumed, 4).await;
    assert!(resets.is_empty(), "{resets:?}");
    let datas: Vec<String> = enveloped(&rest).into_iter().map(|(_, d)| d).collect();
    assert_eq!(datas, ["d5", "d6", "d7", "d8"]);
}

/// A TCP proxy to Redis that can stop forwarding while every connection
/// stays open (a silent network path).
struct Proxy {
    port: u16,
    forwarding: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let forwarding = Arc::new(AtomicBool::new(true));
        let flag = forwarding.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, flag.clone()));
                tokio::spawn(pump(sr, cw, flag.clone()));
            }
        });
        Proxy { port, forwarding }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Copies bytes one way, holding them while forwarding is off.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    forwarding: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while !forwarding.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_redis_connection_is_detected_by_the_liveness_probe_within_seconds() {
    let redis = Redis::start(false);
    let proxy = Proxy::start(redis.port).await;
    let a = node(&proxy.url(), "a", &[NO_FILES]).await;
    let b = node(&redis.url(), "b", &[NO_FILES]).await;
    let mut sse = Sse::connect(&a.url("/realtime/s")).await;
    publish_ok(&b, "s", "before").await;
    assert_eq!(collect(&mut sse, 1).await.0[0].data(), "before");

    proxy.forwarding.store(false, Ordering::SeqCst);
    let silent = Instant::now();
    let body = wait_health(&a, 503).await;
    let detected = silent.elapsed();
    eprintln!("silent Redis connection detected after {detected:?}");
    assert!(detected < Duration::from_secs(5), "took {detected:?}");
    assert_eq!(body["status"], "degraded");
    // `/health` is degraded as soon as either connection is found silent:
    // the probe on the command connection (within PROBE_INTERVAL +
    // PROBE_TIMEOUT of the silence) or the feed's read (FEED_BLOCK +
    // PROBE_TIMEOUT after it was sent, just before the silence). Both
    // bounds are 2 s, so either may come first. When the feed does, the
    // command connection is not yet known silent and the publish below is
    // handed to it: the proxy holds it, the node answers 503 when it does
    // not answer in time, and Redis runs it once the path forwards again
    // (a timed-out publish may have been published, see
    // `hub::redis::link::run_publish_script`). Only a publish refused at once is
    // certainly not published.
    let (status, body) = publish(&a, "s", "refused").await;
    assert_eq!(status, 503, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default().to_string();
    let refused_at_once = detail.starts_with("Redis is unreachable");
    eprintln!("the publish while degraded: {detail}");
    for i in 0..3 {
        publish_ok(&b, "s", &format!("during {i}")).await;
    }

    proxy.forwarding.store(true, Ordering::SeqCst);
    wait_health(&a, 200).await;
    publish_ok(&a, "s", "after").await;
    let mut want = vec!["during 0", "during 1", "during 2"];
    if !refused_at_once {
        // Held by the proxy, it reached Redis after the others.
        want.push("refused");
    }
    want.push("after");
    let (events, resets) = collect(&mut sse, want.len()).await;
    assert!(resets.is_empty(), "{resets:?}");
    assert_eq!(
        data_of(&events),
        want,
        "the publish while degraded: {detail}"
    );
    assert_increasing(&events);
}

#[tokio::test(flavor = "multi_thread")]
async fn channels_idle_past_history_ttl_leave_the_cluster_and_free_their_slot() {
    let redis = Redis::start(false);
    // Four channels at most: the node's own log stream and the demo feed
    // (published every 2 s while /stream has a subscriber, so never idle
    // for 3 s) take two.
    let a = node(
        &redis.url(),
        "a",
        &["--history-ttl", "3s", "--max-channels", "4", NO_FILES],
    )
    .await;
    let _demo_subscriber = Sse::connect(&a.url("/stream")).await;
    eventually("the demo feed published", || async {
        let info = stream_info(&a, "stream").await?;
        info["last_id"].is_string().then_some(())
    })
    .await;
    publish_ok(&a, "c1", "x").await;
    publish_ok(&a, "c2", "x").await;
    let (status, body) = publish(&a, "c3", "x").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "too many channels");
    assert!(stream_info(&a, "c1").await.is_some());
    // Once c1 and c2 have expired, their slots are free again.
    eventually("c3 accepted", || async {
        let (status, _) = publish(&a, "c3", "x").await;
        (status == 200).then_some(())
    })
    .await;
    assert!(stream_info(&a, "c1").await.is_none());
    assert!(stream_info(&a, "c3").await.is_some());
    assert!(stream_info(&a, "stream").await.is_some());
    assert!(redis
        .command("EXISTS tailcast:ch:c1")
        .unwrap()
        .starts_with(":0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_older_than_what_redis_retains_gets_one_too_old_reset_then_the_rest() {
    let redis = Redis::start(false);
    let a = node(&redis.url(), "a", &["--history", "3", NO_FILES]).await;
    let first = publish_ok(&a, "t", "e0").await;
    for i in 1..250 {
        publish_ok(&a, "t", &format!("e{i}")).await;
    }
    // Redis trims whole stream nodes (`MAXLEN ~`): it keeps at least 3.
    let b = node(&redis.url(), "b", &["--history", "3", NO_FILES]).await;
    let mut sse = Sse::connect_with(&b.url("/realtime/t"), &[("last-event-id", &first)]).await;
    let reset = sse.next_event().await;
    assert_eq!(reset.event_type(), "reset", "{reset:?}");
    assert_eq!(reset.json()["reason"], "too old");
    let mut last = reset;
    let mut got = Vec::new();
    while last.data() != "e249" {
        last = sse.next_event().await;
        assert_ne!(last.event_type(), "reset");
        got.push(last.clone());
    }
    assert!(got.len() >= 3 && got.len() < 249, "{}", got.len());
    assert_increasing(&got);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_that_lost_its_last_writes_starts_a_new_epoch_and_never_reuses_numbers() {
    let redis = Redis::start(false);
    let a = node(&redis.url(), "a", &[NO_FILES]).await;
    let b = node(&redis.url(), "b", &[NO_FILES]).await;
    let mut sse = Sse::connect(&b.url("/realtime/r")).await;
    let mut old = Vec::new();
    for i in 0..3 {
        old.push(publish_ok(&a, "r", &format!("old{i}")).await);
    }
    collect(&mut sse, 3).await;
    // What a restart from a file that missed the last writes looks like:
    // the sequence below what the nodes have seen.
    assert!(redis
        .command("SET tailcast:seq 1")
        .unwrap()
        .starts_with("+OK"));
    let reset = sse.next_event().await;
    assert_eq!(reset.event_type(), "reset", "{reset:?}");
    assert_eq!(reset.json()["reason"], "history lost");
    let new = publish_ok(&a, "r", "new").await;
    assert_ne!(new.split('-').next(), old[0].split('-').next());
    let highest_old = old.iter().map(|id| seq(id)).max().unwrap();
    assert!(seq(&new) > highest_old, "{new} reuses a number of {old:?}");
    let (events, resets) = collect(&mut sse, 1).await;
    assert!(resets.is_empty(), "{resets:?}");
    assert_eq!(events[0].id.as_deref(), Some(new.as_str()));
    // An id of the old epoch is not taken as valid on either node.
    for server in [&a, &b] {
        let mut resumed =
            Sse::connect_with(&server.url("/realtime/r"), &[("last-event-id", &old[1])]).await;
        let first = resumed.next_event().await;
        assert_eq!(first.event_type(), "reset");
        assert_eq!(first.json()["reason"], "history lost");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriber_counts_are_the_whole_cluster_s() {
    let redis = Redis::start(false);
    let a = node(&redis.url(), "a", &[NO_FILES]).await;
    let b = node(&redis.url(), "b", &[NO_FILES]).await;
    let _on_b = Sse::connect(&b.url("/realtime/counted")).await;
    let _on_a = Sse::connect(&a.url("/realtime/counted")).await;
    let _also_b = Sse::connect(&b.url("/events?channel=counted&channel=x")).await;
    // Other nodes' counts arrive with their next report (every 2 s).
    eventually("three subscribers counted on a", || async {
        let (status, body) = publish(&a, "counted", "x").await;
        assert_eq!(status, 200);
        (body["subscribers"] == 3).then_some(())
    })
    .await;
    let listed = stream_info(&b, "counted").await.unwrap();
    assert_eq!(listed["subscribers"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_cannot_reach_redis_at_start_says_so_and_exits() {
    let port = free_port();
    let url = format!("redis://user:secret@127.0.0.1:{port}");
    let output = serve_refused(&["--redis", &url]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ")
            && last.contains("cannot reach Redis at redis://user:REDACTED@"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_keeps_history_bytes_in_memory_and_resumes_the_rest_from_redis() {
    let redis = Redis::start(false);
    let a = node(&redis.url(), "a", &["--history-bytes", "8KiB", NO_FILES]).await;
    let pad = "x".repeat(100);
    let first = publish_ok(&a, "big", &format!("0 {pad}")).await;
    for i in 1..300 {
        publish_ok(&a, "big", &format!("{i} {pad}")).await;
    }
    let (_, health) = eventually("the replica caught up", || async {
        let (status, body) = health(&a).await;
        (body["history_events"].as_u64() > Some(0)).then_some((status, body))
    })
    .await;
    let bytes = health["history_bytes"].as_u64().unwrap();
    assert!(bytes <= 8192 + 512, "{health}");
    assert!(health["history_events"].as_u64().unwrap() < 300, "{health}");
    // Resume from the very first event: the rest comes from Redis, exactly.
    let mut sse = Sse::connect_with(&a.url("/realtime/big"), &[("last-event-id", &first)]).await;
    let (events, resets) = collect(&mut sse, 299).await;
    assert!(resets.is_empty(), "{resets:?}");
    assert_increasing(&events);
    for (i, frame) in events.iter().enumerate() {
        assert_eq!(frame.data(), format!("{} {pad}", i + 1));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn large_events_come_off_redis_in_bounded_reads_complete_and_in_order() {
    let redis = Redis::start(false);
    let a = node(&redis.url(), "a", &["--history-bytes", "8KiB", NO_FILES]).await;
    // 20 events of about 1 MB: more than one read's byte budget (8 MiB).
    let pad = "x".repeat(1_000_000);
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(publish_ok(&a, "huge", &format!("{i} {pad}")).await);
    }
    let number = |data: &str| -> usize { data.split(' ').next().unwrap().parse().unwrap() };

    // A resume from the first: every later one, in order, over several reads.
    let mut sse = Sse::connect_with(&a.url("/realtime/huge"), &[("last-event-id", &ids[0])]).await;
    let (events, resets) = collect(&mut sse, 19).await;
    assert!(resets.is_empty(), "{resets:?}");
    assert_increasing(&events);
    let got: Vec<usize> = events.iter().map(|f| number(f.data())).collect();
    assert_eq!(got, (1..20).collect::<Vec<_>>());
    drop(sse);

    // A tail is "up to N": the newest events that fit one read, in order.
    let mut sse = Sse::connect(&a.url("/realtime/huge?tail=20")).await;
    publish_ok(&a, "huge", "end").await;
    let mut tail = Vec::new();
    loop {
        let frame = sse.next_event().await;
        if frame.data() == "end" {
            break;
        }
        assert_ne!(frame.event_type(), "reset", "{frame:?}");
        tail.push(number(frame.data()));
    }
    assert!(
        (1..=9).contains(&tail.len()),
        "a tail of {} MB read at once",
        tail.len()
    );
    assert_eq!(tail, (20 - tail.len()..20).collect::<Vec<_>>());

    // History pages stop at the scan budget and page on to the oldest.
    let mut seen = Vec::new();
    let mut query = "channel=huge&limit=1000".to_string();
    for _ in 0..10 {
        let (status, page) = history(&a, &query).await;
        assert_eq!(status, 200);
        let events = page["events"].as_array().unwrap();
        let numbers: Vec<usize> = events
            .iter()
            .map(|e| e["data"].as_str().unwrap())
            .filter(|&data| data != "end")
            .map(number)
            .collect();
        assert!(numbers.len() <= 9, "{} MB in one page", numbers.len());
        seen.extend(numbers);
        match page["next_before"].as_str() {
            Some(before) => query = format!("channel=huge&limit=1000&before={before}"),
            None => break,
        }
    }
    assert_eq!(seen, (0..20).rev().collect::<Vec<_>>());
}

/// `GET /api/history` on `server`, as JSON.
async fn history(server: &Server, query: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(&server.url(&format!("/api/history?{query}"))).await;
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn history_published_on_one_node_is_read_on_another_from_redis_newest_first() {
    let redis = Redis::start(false);
    let a = node(&redis.url(), "a", &[NO_FILES]).await;
    // B's memory holds a few of these events at most: its history comes
    // from the channel's stream in Redis.
    let b = node(&redis.url(), "b", &["--history-bytes", "8KiB", NO_FILES]).await;
    let pad = "x".repeat(300);
    let mut ids = Vec::new();
    for i in 0..60 {
        let level = if i % 3 == 0 { "ERROR" } else { "INFO" };
        ids.push(publish_ok(&a, "h", &format!("{level} {i} {pad}")).await);
    }
    let number = |event: &serde_json::Value| -> usize {
        let data = event["data"].as_str().unwrap();
        data.split(' ').nth(1).unwrap().parse().unwrap()
    };

    let (status, page) = history(&b, "channel=h&limit=3").await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.iter().map(number).collect::<Vec<_>>(), [59, 58, 57]);
    assert_eq!(events[0]["id"], ids[59].as_str(), "the id given at publish");
    assert_eq!(events[0]["channel"], "h");
    assert_eq!(events[0]["event"], "message");

    // Filtered by a regex, paged with before/next_before down to the oldest.
    let mut errors = Vec::new();
    let mut query = "channel=h&q=%5EERROR&limit=8".to_string();
    let mut pages = 0;
    loop {
        let (status, page) = history(&b, &query).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for event in page["events"].as_array().unwrap() {
            assert_eq!(event["id"], ids[number(event)].as_str());
            errors.push(number(event));
        }
        match page["next_before"].as_str() {
            Some(before) => query = format!("channel=h&q=%5EERROR&limit=8&before={before}"),
            None => break,
        }
        assert!(pages < 10, "paging does not end: {page}");
    }
    assert_eq!(
        errors,
        (0..60).rev().filter(|i| i % 3 == 0).collect::<Vec<_>>()
    );

    // The same answer on the node that published.
    let (_, on_a) = history(&a, "channel=h&limit=3").await;
    let (_, on_b) = history(&b, "channel=h&limit=3").await;
    assert_eq!(on_a, on_b);

    let (status, body) = history(&b, "channel=h&before=garbage-1").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "unknown id");
    let (status, body) = history(&b, "channel=nothing-here").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], serde_json::json!([]));
    assert_eq!(body["next_before"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_and_data_dir_together_are_refused_at_start_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://127.0.0.1:{}", free_port());
    let data_dir = dir.path().display().to_string();
    let output = serve_refused(&["--redis", &url, "--data-dir", &data_dir]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: ")
            && lines[0].contains("--redis")
            && lines[0].contains("--data-dir"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written to the data dir"
    );
}

/// A channel whose events all left the node's memory (`--history-bytes`)
/// and whose last subscriber then left is dropped from the replica. Made
/// again by a resume, it must read what it lost from Redis, not start
/// empty above it and skip those events silently.
#[tokio::test(flavor = "multi_thread")]
async fn a_channel_dropped_after_its_events_left_memory_resumes_them_from_redis() {
    let redis = Redis::start(false);
    let a = node(&redis.url(), "a", &["--history-bytes", "4KiB", NO_FILES]).await;
    let mut sse = Sse::connect(&a.url("/realtime/x")).await;
    let first = publish_ok(&a, "x", "e1").await;
    publish_ok(&a, "x", "e2").await;
    publish_ok(&a, "x", "e3").await;
    collect(&mut sse, 3).await;
    // One large event of another channel pushes x's events out of memory.
    publish_ok(&a, "y", &"y".repeat(5000)).await;
    let (_, before) = eventually("x's events left the memory", || async {
        let (status, body) = health(&a).await;
        (body["history_events"].as_u64() == Some(1)).then_some((status, body))
    })
    .await;
    let channels = before["channels"].as_u64().unwrap();
    // Its last subscriber leaves: x, empty, leaves the replica.
    drop(sse);
    eventually("x left the replica", || async {
        let (_, body) = health(&a).await;
        (body["channels"].as_u64() == Some(channels - 1)).then_some(())
    })
    .await;
    let mut sse = Sse::connect_with(&a.url("/realtime/x"), &[("last-event-id", &first)]).await;
    publish_ok(&a, "x", "e4").await;
    let (events, resets) = collect(&mut sse, 3).await;
    assert!(resets.is_empty(), "{resets:?}");
    assert_eq!(
        data_of(&events),
        ["e2", "e3", "e4"],
        "the resume skipped what left memory"
    );
}
