//! Scale-out on a Redis Cluster (`--redis-cluster`): real `tailcast serve`
//! nodes sharing a real local cluster of 3 primaries and 3 replicas
//! (`redis-server --cluster-enabled yes` on free loopback ports, joined
//! with `redis-cli --cluster create`, stopped by PID), over real HTTP.
//! Faults are real: the primary of tailcast's slot SIGKILLed while a
//! publisher runs, a manual `CLUSTER FAILOVER`, the whole cluster stopped
//! and started again, a seed list whose first seed is down.
//!
//! `redis-server` and `redis-cli` (7.x) must be installed (`.ci/run`
//! installs Debian's). The tests that start a cluster run one at a time
//! (a lock): a failover is timed by the cluster's node timeout, which a
//! machine busy with four clusters would stretch.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// One cluster test at a time (an async lock: held across awaits, and a
/// failed test does not poison it).
static CLUSTERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `redis-cli -p PORT ARGS` and returns its output (empty when the
/// server does not answer).
fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli must be installed (apt-get install redis-server)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A local Redis Cluster: 3 primaries, 3 replicas, killed when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    /// The cluster bus port of each node.
    bus: HashMap<u16, u16>,
    children: HashMap<u16, Child>,
}

impl Cluster {
    fn start() -> Cluster {
        let mut cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
            ports: (0..6).map(|_| free_port()).collect(),
            bus: HashMap::new(),
            children: HashMap::new(),
        };
        for port in cluster.ports.clone() {
            cluster.spawn(port);
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(nodes.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = cli(cluster.ports[0], &args);
        assert!(out.contains("[OK]"), "cluster create failed: {out}");
        cluster.wait_ok();
        cluster
    }

    fn spawn(&mut self, port: u16) {
        let dir = self.dir.path().join(port.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        // The bus port is given (by default it is the port + 10000, which
        // may be taken, or above 65535 for a high free port).
        let bus = *self.bus.entry(port).or_insert_with(free_port);
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-port", &bus.to_string()])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", "1000"])
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "everysec"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.children.insert(port, child);
        let start = Instant::now();
        while !cli(port, &["PING"]).contains("PONG") {
            assert!(start.elapsed() < DEADLINE, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every running node says `cluster_state:ok` and agrees
    /// that every slot has a live primary.
    fn wait_ok(&self) {
        let start = Instant::now();
        loop {
            let ok = self
                .children
                .keys()
                .all(|p| cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if ok {
                return;
            }
            assert!(start.elapsed() < DEADLINE, "cluster never became ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Seed URLs of every node.
    fn seeds(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The (primary, replica) ports of the shard that holds `{prefix}`, as
    /// a live node sees it: polled until that node lists both (its view of
    /// a replica can lag behind `cluster_state:ok` by a gossip round).
    fn shard_of(&self, prefix: &str) -> (u16, u16) {
        let start = Instant::now();
        loop {
            if let Some(shard) = self.shard_now(prefix) {
                return shard;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no primary with a replica serves {{{prefix}}} after 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Cluster::shard_of`] as the first node sees it now, if it lists a
    /// live primary for the slot and a replica of it.
    fn shard_now(&self, prefix: &str) -> Option<(u16, u16)> {
        let asked = *self.children.keys().next().unwrap();
        let slot: u32 = cli(asked, &["CLUSTER", "KEYSLOT", &format!("{{{prefix}}}")])
            .trim()
            .parse()
            .unwrap();
        let nodes = cli(asked, &["CLUSTER", "NODES"]);
        let mut primary = None;
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let serves = f[8..].iter().any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                match (a.parse::<u32>(), b.parse::<u32>()) {
                    (Ok(a), Ok(b)) => (a..=b).contains(&slot),
                    _ => false,
                }
            });
            if serves {
                primary = Some((f[0].to_string(), port_of(f[1])));
            }
        }
        let (id, port) = primary?;
        let replica = nodes
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[3] == id && f[2].contains("slave") && !f[2].contains("fail"))
            .map(|f| port_of(f[1]))?;
        Some((port, replica))
    }

    /// Waits until `port` is a primary.
    fn wait_primary(&self, port: u16) {
        let start = Instant::now();
        while !cli(port, &["ROLE"]).starts_with("master") {
            assert!(start.elapsed() < DEADLINE, "{port} never became primary");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops one node: `-KILL` or `-TERM`.
    fn stop(&mut self, port: u16, signal: &str) {
        let Some(mut child) = self.children.remove(&port) else {
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
}

fn port_of(addr: &str) -> u16 {
    // ip:port@cport
    addr.split('@')
        .next()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut child) in self.children.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts a node on the cluster's `seeds` with `prefix`, named `name`,
/// following a quiet file of its own (no demo stream), and waits until it
/// is healthy.
async fn node(seeds: &str, prefix: &str, name: &str, args: &[&str]) -> Server {
    let own = format!("{name}-own={{dir}}/own.log");
    let mut all = vec![
        "--redis-cluster",
        seeds,
        "--redis-prefix",
        prefix,
        "--node",
        name,
        "--heartbeat",
        "300ms",
        &own,
    ];
    all.extend(args);
    let server = Server::start(&all);
    wait_health(&server, 200).await;
    server
}

async fn wait_health(server: &Server, want: u16) -> serde_json::Value {
    eventually(&format!("/health {want}"), || async {
        let (status, body) = get(&server.url("/health")).await;
        (status == want).then(|| serde_json::from_str(&body).unwrap())
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

fn tag(id: &str) -> &str {
    id.rsplit_once('-').unwrap().0
}

/// The data of a frame, enveloped (`/events`) or not.
fn data(frame: &Frame) -> String {
    serde_json::from_str::<serde_json::Value>(frame.data())
        .ok()
        .and_then(|v| v["data"].as_str().map(str::to_string))
        .unwrap_or_else(|| frame.data().to_string())
}

/// Events and resets read until the event whose data is `sentinel`.
async fn read_until(sse: &mut Sse, sentinel: &str) -> (Vec<Frame>, Vec<Frame>) {
    let mut events = Vec::new();
    let mut resets = Vec::new();
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < DEADLINE * 2,
            "no {sentinel:?} after {} events, resets {resets:?}",
            events.len()
        );
        let frame = sse.next_frame().await.expect("stream ended");
        if frame.data.is_none() {
            continue;
        }
        match frame.event_type() {
            "reset" => resets.push(frame),
            "broadcast" => {}
            _ if data(&frame) == sentinel => return (events, resets),
            _ => events.push(frame),
        }
    }
}

fn assert_increasing(frames: &[Frame]) {
    let ids: Vec<u64> = frames.iter().map(Frame::seq).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids not strictly increasing: {ids:?}"
    );
}

/// Every event read carries the id its publisher was given, none twice;
/// returns the datas read.
fn check_ids(events: &[Frame], ids: &HashMap<String, String>) -> HashSet<String> {
    let mut seen = HashSet::new();
    for frame in events {
        let d = data(frame);
        if let Some(id) = ids.get(&d) {
            assert_eq!(frame.id.as_deref(), Some(id.as_str()), "{d}");
        }
        assert!(seen.insert(d.clone()), "{d} delivered twice");
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_on_a_cluster_share_channels_resume_broadcast_and_logs() {
    let _one = CLUSTERS.lock().await;
    let cluster = Cluster::start();
    let seeds = cluster.seeds();
    let a = node(&seeds, "basic", "a", &["app={dir}/app.log"]).await;
    let b = node(&seeds, "basic", "b", &[]).await;

    // Every key of the prefix is in the slot of `{basic}`, on one primary.
    let (primary, _) = cluster.shard_of("basic");
    let keys = cli(primary, &["KEYS", "*"]);
    assert!(
        keys.contains("{basic}:seq") && keys.contains("{basic}:epoch"),
        "{keys}"
    );

    // Two publishers at once, one per node; subscribers on both.
    let mut subs = Vec::new();
    for server in [&a, &b] {
        subs.push(Sse::connect(&server.url("/events?channel=c1&channel=c2")).await);
        subs.push(Sse::connect(&server.url("/realtime/c1")).await);
    }
    let per = 30;
    let publishers: Vec<_> = [(a.url("/channels/c1"), "a"), (b.url("/channels/c2"), "b")]
        .into_iter()
        .map(|(url, who)| {
            tokio::spawn(async move {
                let mut ids = HashMap::new();
                for i in 0..per {
                    let d = format!("{who}{i}");
                    let (status, body) = post(&url, "text/plain", d.clone()).await;
                    assert_eq!(status, 200, "{body}");
                    ids.insert(d, body["id"].as_str().unwrap().to_string());
                }
                ids
            })
        })
        .collect();
    let mut ids = HashMap::new();
    for p in publishers {
        ids.extend(p.await.unwrap());
    }
    let all: HashSet<&String> = ids.values().collect();
    assert_eq!(all.len(), 2 * per, "one id per event");
    publish_ok(&a, "c1", "end").await;
    for (i, sse) in subs.iter_mut().enumerate() {
        let (events, resets) = read_until(sse, "end").await;
        assert!(resets.is_empty(), "{resets:?}");
        assert_increasing(&events);
        let seen = check_ids(&events, &ids);
        let want = if i % 2 == 0 { 2 * per } else { per };
        assert_eq!(seen.len(), want, "every event exactly once");
    }
    println!(
        "two nodes: {} events, one id each, exactly once in order on 4 subscribers",
        2 * per
    );

    // Cross-node resume, multiplexed: from an id read on a to b.
    let mut sse = Sse::connect(&a.url("/events?channel=x&channel=y")).await;
    for i in 0..6 {
        publish_ok(&a, if i % 2 == 0 { "x" } else { "y" }, &format!("e{i}")).await;
    }
    let mut first = Vec::new();
    while first.len() < 3 {
        let f = sse.next_event().await;
        first.push(f);
    }
    let last = first[2].id.clone().unwrap();
    drop(sse);
    for i in 6..9 {
        publish_ok(&b, if i % 2 == 0 { "x" } else { "y" }, &format!("e{i}")).await;
    }
    publish_ok(&b, "x", "end2").await;
    let mut resumed = Sse::connect_with(
        &b.url("/events?channel=x&channel=y"),
        &[("last-event-id", &last)],
    )
    .await;
    let (rest, resets) = read_until(&mut resumed, "end2").await;
    assert!(resets.is_empty(), "{resets:?}");
    assert_increasing(&rest);
    let datas: Vec<String> = rest.iter().map(data).collect();
    assert_eq!(datas, (3..9).map(|i| format!("e{i}")).collect::<Vec<_>>());
    println!("cross-node multiplexed resume from {last}: {datas:?}");

    // History published on one node is read on the other from the
    // channel's stream in the cluster, newest first.
    let (status, body) = get(&a.url("/api/history?channel=x&limit=2")).await;
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let newest: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(newest, ["end2", "e8"]);

    // Broadcasts reach clients on both nodes.
    let mut on_a = Sse::connect(&a.url("/realtime/quiet")).await;
    let mut on_b = Sse::connect(&b.url("/events?channel=other")).await;
    let (status, body) = post(
        &b.url("/api/broadcast"),
        "application/json",
        r#"{"message":"maintenance","timestamp":"now"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for sse in [&mut on_a, &mut on_b] {
        let frame = sse.next_event().await;
        assert_eq!(frame.event_type(), "broadcast");
        assert_eq!(frame.id.as_deref(), body["id"].as_str());
    }

    // A log stream followed on a, read on b.
    let mut log = Sse::connect(&b.url("/logs/app?tail=0")).await;
    append(&a.path("app.log"), &lines("line ", 0..10));
    let mut got = Vec::new();
    while got.len() < 10 {
        got.push(log.next_event().await.data().to_string());
    }
    assert_eq!(got, lines("line ", 0..10).lines().collect::<Vec<_>>());
    let info = stream_info(&b, "log:app").await.unwrap();
    assert_eq!(info["node"], "a");

    // A seed list whose first seed is down still starts.
    let dead = format!("redis://127.0.0.1:{},{seeds}", free_port());
    let c = node(&dead, "basic", "c", &[]).await;
    let id = publish_ok(&c, "c1", "from c").await;
    assert_eq!(tag(&id), tag(&ids["a0"]), "same history line");
    println!("a node whose first seed is down started and published {id}");
}

/// Publishes alternately on `servers` to channels k1/k2 until `stop`;
/// returns (data → id) of every `200` and the number of refusals.
fn spawn_publisher(
    servers: Vec<String>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<(HashMap<String, String>, usize)> {
    tokio::spawn(async move {
        let mut ids = HashMap::new();
        let mut refused = 0;
        let mut i = 0usize;
        while !stop.load(Ordering::SeqCst) {
            let url = format!(
                "{}/channels/{}",
                servers[i % servers.len()],
                if i % 2 == 0 { "k1" } else { "k2" }
            );
            let d = format!("p{i}");
            let (status, body) = post(&url, "text/plain", d.clone()).await;
            match status {
                200 => {
                    ids.insert(d, body["id"].as_str().unwrap().to_string());
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
                503 => {
                    assert_eq!(body["error"], "unavailable", "{body}");
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => panic!("publish answered {other}: {body}"),
            }
            i += 1;
        }
        (ids, refused)
    })
}

async fn wait_accepted(accepted: &AtomicUsize, n: usize) {
    eventually(&format!("{n} publishes accepted"), || async {
        (accepted.load(Ordering::SeqCst) >= n).then_some(())
    })
    .await
}

/// Runs a failover (`fail` does it) under a running publisher with
/// subscribers on both nodes; checks that every `200` event is delivered
/// exactly once with its id, ids are never reused, and either nothing was
/// lost (no reset) or each subscriber got at most one `history lost`
/// reset per channel. Returns whether resets were seen.
async fn failover_under_load(prefix: &str, fail: impl FnOnce(&mut Cluster)) -> bool {
    let mut cluster = Cluster::start();
    let seeds = cluster.seeds();
    let a = node(&seeds, prefix, "a", &[]).await;
    let b = node(&seeds, prefix, "b", &[]).await;
    let mut subs = [
        Sse::connect(&a.url("/events?channel=k1&channel=k2")).await,
        Sse::connect(&b.url("/events?channel=k1&channel=k2")).await,
        Sse::connect(&b.url("/realtime/k1")).await,
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let publisher = spawn_publisher(vec![a.url(""), b.url("")], stop.clone(), accepted.clone());
    wait_accepted(&accepted, 30).await;
    let before = accepted.load(Ordering::SeqCst);
    let started = Instant::now();
    fail(&mut cluster);
    // The nodes notice: publishes fail (or not, if the switch was quick)
    // and then go through again.
    wait_accepted(&accepted, before + 30).await;
    println!(
        "publishes accepted again {:?} after the failover started",
        started.elapsed()
    );
    stop.store(true, Ordering::SeqCst);
    let (ids, refused) = publisher.await.unwrap();
    // Both nodes are back (the publisher's successes may all have gone
    // through one of them).
    for server in [&a, &b] {
        wait_health(server, 200).await;
    }
    publish_ok(&a, "k1", "end").await;
    publish_ok(&a, "k2", "end").await;
    let distinct: HashSet<&String> = ids.values().collect();
    assert_eq!(distinct.len(), ids.len(), "an id was handed out twice");
    let last_tag = tag(&publish_ok(&b, "k1", "probe").await).to_string();
    let mut any_reset = false;
    for (i, sse) in subs.iter_mut().enumerate() {
        let (events, resets) = read_until(sse, "end").await;
        for r in &resets {
            assert_eq!(r.json()["reason"], "history lost", "{r:?}");
        }
        let per_channel: HashSet<String> = resets
            .iter()
            .map(|r| r.json()["channel"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            per_channel.len(),
            resets.len(),
            "one reset per channel: {resets:?}"
        );
        any_reset |= !resets.is_empty();
        // Ids increase within each history line.
        let mut by_tag: HashMap<String, Vec<Frame>> = HashMap::new();
        for f in &events {
            by_tag
                .entry(tag(f.id.as_deref().unwrap()).to_string())
                .or_default()
                .push(f.clone());
        }
        for frames in by_tag.values() {
            assert_increasing(frames);
        }
        let seen = check_ids(&events, &ids);
        let mine = |d: &String| i < 2 || d[1..].parse::<usize>().unwrap() % 2 == 0;
        let missing: Vec<&String> = ids
            .iter()
            .filter(|(d, _)| mine(d) && !seen.contains(*d))
            .map(|(d, _)| d)
            .collect();
        // Without a reset nothing may be missing; with one, only events of
        // the lost line can be.
        if resets.is_empty() {
            assert!(missing.is_empty(), "subscriber {i} lost {missing:?}");
        } else {
            for d in &missing {
                assert_ne!(tag(&ids[*d]), last_tag, "subscriber {i} lost {d}");
            }
        }
        println!(
            "subscriber {i}: {} events, {} missing of the lost line, resets {:?}",
            events.len(),
            missing.len(),
            resets.iter().map(|r| r.data()).collect::<Vec<_>>()
        );
    }
    println!(
        "{} publishes accepted (one id each, none reused), {refused} refused with 503",
        ids.len()
    );
    any_reset
}

#[tokio::test(flavor = "multi_thread")]
async fn the_primary_of_the_slot_killed_under_load_loses_no_accepted_event_silently() {
    let _one = CLUSTERS.lock().await;
    let reset = failover_under_load("killed", |cluster| {
        let (primary, replica) = cluster.shard_of("killed");
        cluster.stop(primary, "-KILL");
        cluster.wait_primary(replica);
    })
    .await;
    println!("SIGKILL of the primary: history lost reset seen: {reset}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_cluster_failover_resumes_exactly_without_reset() {
    let _one = CLUSTERS.lock().await;
    let reset = failover_under_load("manual", |cluster| {
        let (_, replica) = cluster.shard_of("manual");
        let out = cli(replica, &["CLUSTER", "FAILOVER"]);
        assert!(out.contains("OK"), "{out}");
        cluster.wait_primary(replica);
    })
    .await;
    assert!(!reset, "a manual failover loses nothing: no reset");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_unreachable_gives_503_and_degraded_then_recovers() {
    let _one = CLUSTERS.lock().await;
    let mut cluster = Cluster::start();
    let seeds = cluster.seeds();
    let a = node(&seeds, "down", "a", &[]).await;
    let mut sse = Sse::connect(&a.url("/realtime/news")).await;
    publish_ok(&a, "news", "before").await;
    assert_eq!(sse.next_event().await.data(), "before");
    let ports = cluster.ports.clone();
    for port in &ports {
        cluster.stop(*port, "-TERM");
    }
    let refused = eventually("publish refused", || async {
        let (status, body) = publish(&a, "news", "lost?").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(refused["error"], "unavailable");
    let body = wait_health(&a, 503).await;
    assert_eq!(body["status"], "degraded");
    println!("cluster down: publish 503 {refused}, /health {body}");
    // The stream stays open, with heartbeats.
    let mut pings = 0;
    while pings < 2 {
        let frame = sse.next_frame().await.expect("stream stays open");
        assert!(frame.data.is_none(), "unexpected event {frame:?}");
        pings += frame.comments.iter().filter(|c| *c == "ping").count();
    }
    for port in &ports {
        cluster.spawn(*port);
    }
    cluster.wait_ok();
    wait_health(&a, 200).await;
    let id = publish_ok(&a, "news", "after").await;
    let (events, resets) = read_until(&mut sse, "after").await;
    assert!(
        events.is_empty(),
        "nothing refused was published: {events:?}"
    );
    assert!(resets.len() <= 1, "{resets:?}");
    println!("cluster back: published {id}, resets {resets:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_not_in_cluster_mode_is_refused_with_one_line() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut plain = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server must be installed");
    let start = Instant::now();
    while !cli(port, &["PING"]).contains("PONG") {
        assert!(start.elapsed() < DEADLINE, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("redis://127.0.0.1:{port}");
    let started = Instant::now();
    let output = serve_refused(&["--redis-cluster", &url]);
    let _ = plain.kill();
    let _ = plain.wait();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("is not a Redis Cluster node"),
        "{stderr}"
    );
    println!(
        "not a cluster: {} (after {:?})",
        errors[0],
        started.elapsed()
    );

    // Unreachable: exits 1 with one line too.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let output = serve_refused(&["--redis-cluster", &url]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("cannot reach Redis"),
        "{stderr}"
    );
    println!("unreachable: {last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_and_redis_cluster_together_are_refused() {
    let output = serve_refused(&[
        "--redis",
        "redis://127.0.0.1:1",
        "--redis-cluster",
        "redis://127.0.0.1:2",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("--redis") && lines[0].contains("--redis-cluster"),
        "{stderr}"
    );
    println!("{}", lines[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promoted_replica_that_missed_writes_never_reuses_an_id() {
    let _one = CLUSTERS.lock().await;
    let mut cluster = Cluster::start();
    let seeds = cluster.seeds();
    let (primary, replica) = cluster.shard_of("stale");
    let mut a = node(&seeds, "stale", "a", &[]).await;
    let mut given = HashSet::new();
    for i in 0..5 {
        given.insert(publish_ok(&a, "k1", &format!("r{i}")).await);
    }
    // The replica has the first events: it is online and acknowledged the
    // primary's whole replication stream.
    eventually("the replica caught up", || async {
        let info = cli(primary, &["INFO", "replication"]);
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        let offset = field("master_repl_offset:")?;
        let replica = field("slave0:")?;
        (replica.contains("state=online") && replica.contains(&format!("offset={offset},")))
            .then_some(())
    })
    .await;
    // The replica stops receiving: the next events exist on the primary
    // only, and their ids are handed out.
    send_signal(cluster.children[&replica].id(), "STOP");
    // Bytes already sent would still reach it from its socket buffer: cut
    // its link, which it cannot remake while stopped.
    let killed = cli(primary, &["CLIENT", "KILL", "TYPE", "replica"]);
    assert_eq!(killed.trim(), "1", "{killed}");
    for i in 5..10 {
        given.insert(publish_ok(&a, "k1", &format!("r{i}")).await);
    }
    // The node that handed them out dies with the primary; the replica,
    // five events behind, is promoted.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    cluster.stop(primary, "-KILL");
    send_signal(cluster.children[&replica].id(), "CONT");
    cluster.wait_primary(replica);
    cluster.wait_ok();
    // A node that knows nothing of those ids starts on it and publishes.
    let c = node(&seeds, "stale", "c", &[]).await;
    let mut sse = Sse::connect(&c.url("/realtime/k1")).await;
    let id = publish_ok(&c, "k1", "after").await;
    let mut before: Vec<&String> = given.iter().collect();
    before.sort_by_key(|i| seq_of(i));
    println!("ids handed out before the failover: {before:?}; after: {id}");
    assert!(!given.contains(&id), "id {id} handed out twice");
    assert_eq!(sse.next_event().await.data(), "after");
    // The lost history line is not taken as valid: a resume from an id
    // the replica never had gets one `history lost`, not events.
    let lost = given.iter().max_by_key(|i| seq_of(i)).unwrap().clone();
    let mut resumed = Sse::connect_with(&c.url("/realtime/k1"), &[("last-event-id", &lost)]).await;
    let first = resumed.next_frame().await.unwrap();
    let first = if first.data.is_none() {
        resumed.next_event().await
    } else {
        first
    };
    assert_eq!(first.event_type(), "reset", "{first:?}");
    // "unknown id" from a node that never was on the lost line.
    let reason = first.json()["reason"].clone();
    assert!(
        reason == "history lost" || reason == "unknown id",
        "{first:?}"
    );
    println!("resume from {lost}: {}", first.data());
}
