//! Syslog ingest (`--syslog-tcp`, `--syslog-udp`, `--syslog-channel`)
//! driven by real clients: util-linux `logger` (RFC 5424 and 3164; TCP
//! with LF and octet-counted framing; UDP) and Debian's `rsyslogd` run
//! unprivileged in the foreground (`imfile` tailing a file, `omfwd`
//! forwarding with both framings); `redis-server` for the back-pressure
//! test. Install them with `.ci/ingest-syslog.sh`; a missing tool fails
//! the test.
//!
//! Bad input (garbage, oversize frames, a lying octet count, a stalled
//! frame, a UDP flood of garbage) closes that connection only, is counted
//! in `tailcast_syslog_dropped_total{reason}`, and a sentinel sent after
//! it arrives as the next event.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A client program, found on PATH or in /usr/sbin; fails the test with
/// what to run when it is missing.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run .ci/ingest-syslog.sh (apt-get install rsyslog bsdutils redis-server)")
        })
}

/// A server with syslog over TCP and UDP; returns it with both addresses.
/// It follows a quiet file, so no demo stream takes ids between the
/// messages a test sends.
fn start(args: &[&str]) -> (Server, String, String) {
    let mut all = vec![
        "{dir}/quiet.log",
        "--syslog-tcp",
        "127.0.0.1:0",
        "--syslog-udp",
        "127.0.0.1:0",
    ];
    all.extend_from_slice(args);
    let (server, lines) = Server::start_reading_lines(&all, 2);
    let tcp = lines[0]
        .strip_prefix("syslog listening on tcp://")
        .unwrap_or_else(|| panic!("unexpected line {:?}", lines[0]))
        .to_string();
    let udp = lines[1]
        .strip_prefix("syslog listening on udp://")
        .unwrap_or_else(|| panic!("unexpected line {:?}", lines[1]))
        .to_string();
    (server, tcp, udp)
}

fn port(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

/// Runs `logger ARGS` sending to `addr`, with `lines` on stdin (one
/// message each, over one connection).
fn logger(addr: &str, args: &[&str], lines: &[&str]) {
    let mut child = Command::new(tool("logger"))
        .args(["-n", "127.0.0.1", "-P", port(addr)])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run logger");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "logger {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The next `n` events, each checked to be a `message` whose ids follow
/// `after` consecutively; returns their JSON data.
async fn next_messages(sse: &mut Sse, n: usize, after: &mut Option<u64>) -> Vec<Value> {
    next_in_order(sse, n, after, true).await
}

/// The next `n` events, each checked to be a `message` whose ids follow
/// `after` (`consecutive`: with no gap; else only increasing, when other
/// channels publish in between); returns their JSON data.
async fn next_in_order(
    sse: &mut Sse,
    n: usize,
    after: &mut Option<u64>,
    consecutive: bool,
) -> Vec<Value> {
    let mut out = Vec::new();
    for frame in sse.events(n).await {
        assert_eq!(frame.event_type(), "message", "{frame:?}");
        if let Some(prev) = *after {
            if consecutive {
                assert_eq!(frame.seq(), prev + 1, "ids are consecutive: {frame:?}");
            } else {
                assert!(frame.seq() > prev, "ids increase: {frame:?}");
            }
        }
        *after = Some(frame.seq());
        out.push(frame.json());
    }
    out
}

fn line(v: &Value) -> &str {
    v["line"]
        .as_str()
        .unwrap_or_else(|| panic!("no line in {v}"))
}

fn label<'a>(v: &'a Value, key: &str) -> &'a str {
    v["labels"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no label {key} in {v}"))
}

/// The `tailcast_syslog_dropped_total` sample for `reason` (0 before the
/// first).
async fn dropped(server: &Server, reason: &str) -> f64 {
    let (status, text) = get(&server.url("/metrics")).await;
    assert_eq!(status, 200);
    let name = format!("tailcast_syslog_dropped_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&name))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

async fn wait_dropped(server: &Server, reason: &str, value: f64) {
    let seen = eventually(&format!("dropped{{reason={reason}}} = {value}"), || async {
        let now = dropped(server, reason).await;
        (now >= value).then_some(now)
    })
    .await;
    assert_eq!(seen, value, "dropped{{reason={reason}}}");
}

/// Waits until the server closes `stream` (EOF or reset), reading and
/// discarding anything it might send.
async fn wait_closed(stream: &mut tokio::net::TcpStream) {
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server did not close the connection");
}

/// Sends one RFC 5424 sentinel over a fresh TCP connection and returns
/// the events that arrived before it (the sentinel's line is `text`).
async fn sentinel(sse: &mut Sse, tcp: &str, text: &str) -> Vec<Frame> {
    let mut stream = tokio::net::TcpStream::connect(tcp).await.unwrap();
    let msg = format!("<14>1 - probe sentinel - - - {text}\n");
    stream.write_all(msg.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut before = Vec::new();
    loop {
        let frame = sse.next_event().await;
        if line(&frame.json()) == text {
            return before;
        }
        before.push(frame);
    }
}

#[tokio::test]
async fn logger_messages_arrive_as_events_in_order() {
    let (server, tcp, udp) = start(&[]);
    let mut sse = Sse::connect(&server.url("/realtime/syslog")).await;
    assert_eq!(sse.status, 200);
    let mut last = None;

    // RFC 5424 over TCP, LF framing (logger's default on TCP), with
    // structured data and a severity.
    logger(
        &tcp,
        &[
            "--tcp",
            "--rfc5424",
            "-t",
            "web",
            "-p",
            "local3.warning",
            "--msgid",
            "REQ",
            "--sd-id",
            "req@32473",
            "--sd-param",
            "path=\"/a\"",
        ],
        &["first line", "second line", "third line"],
    );
    let got = next_messages(&mut sse, 3, &mut last).await;
    eprintln!("logger --tcp --rfc5424: {}", got[0]);
    let lines: Vec<&str> = got.iter().map(line).collect();
    assert_eq!(lines, ["first line", "second line", "third line"]);
    for v in &got {
        assert_eq!(v["level"], "warn");
        assert_eq!(label(v, "app"), "web");
        assert_eq!(label(v, "facility"), "local3");
        assert_eq!(label(v, "msgid"), "REQ");
        assert_eq!(label(v, "req@32473.path"), "/a");
        assert!(!label(v, "host").is_empty());
        assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
    }

    // RFC 5424 over TCP, octet counting.
    logger(
        &tcp,
        &[
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-t",
            "api",
            "-p",
            "user.err",
        ],
        &["counted one", "counted two"],
    );
    let got = next_messages(&mut sse, 2, &mut last).await;
    eprintln!("logger --tcp --octet-count: {}", got[0]);
    assert_eq!(
        got.iter().map(line).collect::<Vec<_>>(),
        ["counted one", "counted two"]
    );
    assert_eq!(got[0]["level"], "error");
    assert_eq!(label(&got[0], "app"), "api");

    // RFC 3164 over TCP, octet counting and LF.
    logger(
        &tcp,
        &[
            "--tcp",
            "--octet-count",
            "--rfc3164",
            "-t",
            "old",
            "-p",
            "daemon.info",
        ],
        &["bsd counted"],
    );
    // Two connections are two independent streams: nothing orders one
    // against the other, so the second is sent once the first has arrived.
    let mut got = next_messages(&mut sse, 1, &mut last).await;
    logger(
        &tcp,
        &["--tcp", "--rfc3164", "-t", "old", "-p", "daemon.debug"],
        &["bsd lf"],
    );
    got.extend(next_messages(&mut sse, 1, &mut last).await);
    eprintln!("logger --tcp --rfc3164: {}", got[0]);
    assert_eq!(
        got.iter().map(line).collect::<Vec<_>>(),
        ["bsd counted", "bsd lf"]
    );
    assert_eq!(got[0]["level"], "info");
    assert_eq!(got[1]["level"], "debug");
    assert_eq!(label(&got[0], "app"), "old");
    assert_eq!(label(&got[0], "facility"), "daemon");

    // UDP, both formats: one datagram, one message.
    logger(
        &udp,
        &["--udp", "--rfc5424", "-t", "dgram", "-p", "local0.notice"],
        &["over udp"],
    );
    let got = next_messages(&mut sse, 1, &mut last).await;
    eprintln!("logger --udp --rfc5424: {}", got[0]);
    assert_eq!(line(&got[0]), "over udp");
    assert_eq!(got[0]["level"], "notice");
    logger(
        &udp,
        &["--udp", "--rfc3164", "-t", "dgram", "-p", "local0.crit"],
        &["udp bsd"],
    );
    let got = next_messages(&mut sse, 1, &mut last).await;
    eprintln!("logger --udp --rfc3164: {}", got[0]);
    assert_eq!(line(&got[0]), "udp bsd");
    assert_eq!(got[0]["level"], "crit");
    assert_eq!(label(&got[0], "app"), "dgram");

    assert_eq!(metric(&server, "tailcast_syslog_messages_total").await, 9.0);
}

#[tokio::test]
async fn the_channel_template_names_channels_by_host_and_app() {
    let (server, tcp, _udp) = start(&["--syslog-channel", "sys-{app}"]);
    let mut sse = Sse::connect(&server.url("/realtime/sys-web_edge.v2")).await;
    logger(
        &tcp,
        &["--tcp", "--rfc5424", "-t", "web@edge.v2"],
        &["templated"],
    );
    let got = next_messages(&mut sse, 1, &mut None).await;
    assert_eq!(line(&got[0]), "templated");
    assert_eq!(label(&got[0], "app"), "web@edge.v2");

    // A template that can never give an ordinary channel: refused at start.
    for bad in ["broadcast", "log:{host}", "a b {app}"] {
        let out = Command::new(env!("CARGO_BIN_EXE_tailcast"))
            .args(["serve", "--addr", "127.0.0.1:0", "--syslog-channel", bad])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("--syslog-channel"), "{stderr}");
        assert!(out.stdout.is_empty(), "no listening line for {bad}");
    }

    // An address that cannot be bound: refused at start, no listening line.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_tailcast"))
        .args(["serve", "--addr", "127.0.0.1:0", "--syslog-tcp", &addr])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--syslog-tcp: cannot listen on"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no listening line");
}

/// An rsyslogd configuration: two files tailed by imfile, one forwarded
/// octet-counted in RFC 5424, the other LF-framed in the traditional
/// (RFC 3164) format.
fn rsyslog_conf(dir: &Path, port: &str) -> String {
    let d = dir.display();
    format!(
        r#"global(workDirectory="{d}/work")
module(load="imfile" mode="polling" PollingInterval="1")
ruleset(name="counted") {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
}}
ruleset(name="lf") {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
         TCP_Framing="traditional" template="RSYSLOG_TraditionalForwardFormat")
}}
input(type="imfile" File="{d}/counted.log" Tag="shipped" Severity="warning"
      Facility="local1" ruleset="counted")
input(type="imfile" File="{d}/lf.log" Tag="legacy" Severity="info"
      Facility="local2" ruleset="lf")
"#
    )
}

/// A foreground rsyslogd, killed by its PID when dropped.
struct Rsyslogd(std::process::Child);

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn rsyslog_ships_a_tailed_file_with_both_framings() {
    let (server, tcp, _udp) = start(&["--syslog-channel", "rs-{app}"]);
    let mut counted = Sse::connect(&server.url("/realtime/rs-shipped")).await;
    let mut lf = Sse::connect(&server.url("/realtime/rs-legacy")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(&conf, rsyslog_conf(dir.path(), port(&tcp))).unwrap();
    append(
        &dir.path().join("counted.log"),
        "before start 1\nbefore start 2\n",
    );
    append(&dir.path().join("lf.log"), "legacy before start\n");
    let log = std::fs::File::create(dir.path().join("rsyslogd.out")).unwrap();
    let child = Command::new(tool("rsyslogd"))
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("run rsyslogd");
    let _rsyslogd = Rsyslogd(child);

    let mut last = None;
    let got = next_in_order(&mut counted, 2, &mut last, false).await;
    eprintln!("rsyslog octet-counted RFC 5424: {}", got[0]);
    assert_eq!(
        got.iter().map(line).collect::<Vec<_>>(),
        ["before start 1", "before start 2"]
    );
    assert_eq!(got[0]["level"], "warn");
    assert_eq!(label(&got[0], "facility"), "local1");
    assert_eq!(label(&got[0], "app"), "shipped");
    for i in 0..5 {
        append(&dir.path().join("counted.log"), &format!("appended {i}\n"));
    }
    let got = next_in_order(&mut counted, 5, &mut last, false).await;
    let lines: Vec<&str> = got.iter().map(line).collect();
    assert_eq!(
        lines,
        [
            "appended 0",
            "appended 1",
            "appended 2",
            "appended 3",
            "appended 4"
        ]
    );

    let mut last = None;
    let got = next_in_order(&mut lf, 1, &mut last, false).await;
    eprintln!("rsyslog LF-framed traditional: {}", got[0]);
    assert_eq!(line(&got[0]), "legacy before start");
    assert_eq!(got[0]["level"], "info");
    assert_eq!(label(&got[0], "facility"), "local2");
    append(&dir.path().join("lf.log"), "legacy appended\n");
    let got = next_in_order(&mut lf, 1, &mut last, false).await;
    assert_eq!(line(&got[0]), "legacy appended");
    let out = std::fs::read_to_string(dir.path().join("rsyslogd.out")).unwrap_or_default();
    eprintln!("rsyslogd said: {out}");
}

#[tokio::test]
async fn bad_tcp_input_closes_only_its_connection() {
    let (server, tcp, _udp) = start(&["--max-line", "1KiB", "--idle-timeout", "1s"]);
    let mut sse = Sse::connect(&server.url("/realtime/syslog")).await;

    // A sender idle between frames keeps its connection.
    let mut idle = tokio::net::TcpStream::connect(&tcp).await.unwrap();
    idle.write_all(b"<14>1 - idle app - - - idle first\n")
        .await
        .unwrap();
    assert_eq!(line(&sse.next_event().await.json()), "idle first");

    // Garbage: an HTTP request on the syslog port.
    let mut garbage = tokio::net::TcpStream::connect(&tcp).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    wait_closed(&mut garbage).await;
    wait_dropped(&server, "unparsable", 1.0).await;
    assert!(sentinel(&mut sse, &tcp, "s1").await.is_empty());

    // Oversize: an LF-framed line and an octet count over --max-line.
    let mut long = tokio::net::TcpStream::connect(&tcp).await.unwrap();
    let text = format!("<14>1 - h a - - - {}", "x".repeat(2000));
    long.write_all(text.as_bytes()).await.unwrap();
    wait_closed(&mut long).await;
    let mut counted = tokio::net::TcpStream::connect(&tcp).await.unwrap();
    counted
        .write_all(b"5000 <14>1 - h a - - - x")
        .await
        .unwrap();
    wait_closed(&mut counted).await;
    wait_dropped(&server, "oversize", 2.0).await;
    assert!(sentinel(&mut sse, &tcp, "s2").await.is_empty());

    // An octet count that lies (shorter than the message): the counted
    // bytes are a frame, what follows is no frame start.
    let mut liar = tokio::net::TcpStream::connect(&tcp).await.unwrap();
    liar.write_all(b"20 <14>1 - h a - - - ok and then more\n")
        .await
        .unwrap();
    wait_closed(&mut liar).await;
    wait_dropped(&server, "bad_frame", 1.0).await;
    let before = sentinel(&mut sse, &tcp, "s3").await;
    let lines: Vec<String> = before.iter().map(|f| line(&f.json()).to_string()).collect();
    assert_eq!(lines, ["ok"], "only the counted bytes are published");

    // A frame that stalls mid-way past --idle-timeout.
    let mut stalled = tokio::net::TcpStream::connect(&tcp).await.unwrap();
    stalled
        .write_all(b"60 <14>1 - h a - - - never")
        .await
        .unwrap();
    wait_closed(&mut stalled).await;
    wait_dropped(&server, "stalled", 1.0).await;
    assert!(sentinel(&mut sse, &tcp, "s4").await.is_empty());

    // The idle sender, idle for longer than --idle-timeout, still sends.
    idle.write_all(b"<14>1 - idle app - - - idle again\n")
        .await
        .unwrap();
    assert_eq!(line(&sse.next_event().await.json()), "idle again");
    assert_eq!(metric(&server, "tailcast_syslog_messages_total").await, 7.0);
}

#[tokio::test]
async fn a_udp_flood_of_garbage_is_counted_and_dropped() {
    let (server, tcp, udp) = start(&["--max-line", "1KiB"]);
    let mut sse = Sse::connect(&server.url("/realtime/syslog")).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..200 {
        let junk = format!("\u{1}\u{2}garbage {i} \u{ff}");
        socket.send_to(junk.as_bytes(), &udp).await.unwrap();
    }
    let big = format!("<14>1 - h a - - - {}", "y".repeat(2000));
    socket.send_to(big.as_bytes(), &udp).await.unwrap();
    socket
        .send_to(b"<14>1 - h a - - - udp sentinel", &udp)
        .await
        .unwrap();
    let first = sse.next_event().await;
    assert_eq!(line(&first.json()), "udp sentinel", "no garbage published");
    wait_dropped(&server, "unparsable", 200.0).await;
    wait_dropped(&server, "oversize", 1.0).await;
    // The server is unaffected: TCP still works.
    assert!(sentinel(&mut sse, &tcp, "after flood").await.is_empty());
}

/// A `redis-server` owned by the test (with an append-only file, so a
/// restart keeps the data), stopped by its PID.
struct Redis {
    child: Option<std::process::Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Redis {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = Command::new(tool("redis-server"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("run redis-server");
        self.child = Some(child);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn wait_answers(&self) {
        eventually("redis-server answers", || async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .ok()?;
            s.write_all(b"PING\r\n").await.ok()?;
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf).await.ok()?;
            buf[..n].starts_with(b"+PONG").then_some(())
        })
        .await;
    }

    /// Stops Redis cleanly (SIGTERM to its PID: the append-only file is
    /// complete) and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "TERM");
            let _ = child.wait();
        }
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

async fn wait_health(server: &Server, want: u16) {
    eventually(&format!("/health {want}"), || async {
        let (status, _) = get(&server.url("/health")).await;
        (status == want).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn while_the_hub_refuses_tcp_waits_and_udp_drops() {
    let mut redis = Redis::start();
    redis.wait_answers().await;
    let url = redis.url();
    let (server, tcp, udp) = start(&["--redis", &url, "own={dir}/own.log"]);
    let mut sse = Sse::connect(&server.url("/realtime/syslog")).await;
    let mut conn = tokio::net::TcpStream::connect(&tcp).await.unwrap();
    conn.write_all(b"<14>1 - h a - - - before\n").await.unwrap();
    let mut last = None;
    let got = next_messages(&mut sse, 1, &mut last).await;
    assert_eq!(line(&got[0]), "before");

    redis.stop();
    wait_health(&server, 503).await;
    for i in 0..5 {
        let msg = format!("<14>1 - h a - - - during {i}\n");
        conn.write_all(msg.as_bytes()).await.unwrap();
    }
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(b"<14>1 - h a - - - udp during", &udp)
        .await
        .unwrap();
    wait_dropped(&server, "unavailable", 1.0).await;

    redis.spawn();
    redis.wait_answers().await;
    wait_health(&server, 200).await;
    // Nothing the TCP sender wrote was lost: it is published once the hub
    // takes it again, in order.
    let got = next_in_order(&mut sse, 5, &mut last, false).await;
    eprintln!("after the restart: {got:?}");
    let lines: Vec<&str> = got.iter().map(line).collect();
    assert_eq!(
        lines,
        ["during 0", "during 1", "during 2", "during 3", "during 4"]
    );
    let before = sentinel(&mut sse, &tcp, "after redis").await;
    assert!(
        before.is_empty(),
        "the UDP datagram was dropped: {before:?}"
    );
    assert_eq!(dropped(&server, "unavailable").await, 1.0);
}

#[tokio::test]
async fn a_read_of_more_messages_than_the_history_holds_is_published_in_pieces() {
    let (server, tcp, _udp) = start(&["--history", "3"]);
    let wire: String = (0..10)
        .map(|i| format!("<14>1 - h a - - - many {i}\n"))
        .collect();
    let mut conn = tokio::net::TcpStream::connect(&tcp).await.unwrap();
    conn.write_all(wire.as_bytes()).await.unwrap();
    conn.shutdown().await.unwrap();
    eventually("10 messages published", || async {
        let n = metric(&server, "tailcast_syslog_messages_total").await;
        (n >= 10.0).then_some(())
    })
    .await;
    assert_eq!(
        metric(&server, "tailcast_syslog_messages_total").await,
        10.0
    );
    assert_eq!(dropped(&server, "refused").await, 0.0);
    let mut sse = Sse::connect(&server.url("/realtime/syslog?tail=3")).await;
    let got = next_messages(&mut sse, 3, &mut None).await;
    let lines: Vec<&str> = got.iter().map(line).collect();
    assert_eq!(lines, ["many 7", "many 8", "many 9"]);
}
