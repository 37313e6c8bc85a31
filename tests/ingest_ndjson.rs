//! Ingest core and shipper NDJSON: `POST /channels/{c}` with the records
//! Vector's and Fluent Bit's `http` outputs send (byte-exact requests as
//! their documentation describes them), compressed bodies sent by `curl`,
//! `GET /ready`, bad input refused with nothing published (checked with a
//! sentinel event published after), and the hub's multi-channel publish
//! on a real `redis-server`.
//!
//! Tools: `curl`, `gzip`, `zstd`, `python3` (deflate), `redis-server`;
//! `.ci/ingest-core.sh` installs the missing ones. A missing tool fails
//! the test that needs it, naming it.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs `program args` with `input` on stdin; its stdout. Fails naming the
/// tool when it is not installed.
fn run_tool(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} is needed by this test ({e}): run .ci/ingest-core.sh")
        });
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    out.stdout
}

/// `body` compressed as `Content-Encoding: encoding` says, by the usual
/// command-line tools.
fn compress(encoding: &str, body: &[u8]) -> Vec<u8> {
    match encoding {
        "gzip" => run_tool("gzip", &["-c", "-n"], body),
        "zstd" => run_tool("zstd", &["-q", "-c"], body),
        // RFC 9110's deflate is the zlib format; no common CLI writes it.
        "deflate" => run_tool(
            "python3",
            &[
                "-c",
                "import sys, zlib; sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read()))",
            ],
            body,
        ),
        other => panic!("no compressor for {other}"),
    }
}

/// POSTs `body` (from a file) to `url` with curl and exactly `headers`;
/// returns the status and the answer's JSON.
async fn curl_post(url: &str, headers: &[&str], body: &[u8]) -> (u16, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, body).unwrap();
    let (url, headers) = (
        url.to_string(),
        headers.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    );
    let out = tokio::task::spawn_blocking(move || curl(&url, &headers, &file))
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (answer, status) = text.rsplit_once('\n').expect("curl printed the status");
    eprintln!("curl: {status} {answer}");
    (
        status.parse().unwrap(),
        serde_json::from_str(answer).unwrap_or_else(|e| panic!("{e}: {answer:?}")),
    )
}

fn curl(url: &str, headers: &[String], body: &Path) -> Vec<u8> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--noproxy", "*", "--http1.1", "-X", "POST"]);
    for header in headers {
        cmd.arg("-H").arg(header);
    }
    cmd.arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .args(["-w", "\n%{http_code}", url]);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("curl is needed by this test ({e}): run .ci/ingest-core.sh"));
    assert!(out.status.success(), "curl failed: {out:?}");
    out.stdout
}

/// The next `n` events of `sse`, checked to carry consecutive ids.
async fn consecutive(sse: &mut Sse, n: usize) -> Vec<Frame> {
    let events = sse.events(n).await;
    for pair in events.windows(2) {
        assert_eq!(pair[1].seq(), pair[0].seq() + 1, "ids are consecutive");
    }
    events
}

/// Publishes a sentinel and checks it is the next event of `sse`: what
/// was refused before it published nothing.
async fn nothing_published_before_sentinel(server: &Server, channel: &str, sse: &mut Sse) {
    let sentinel = format!("sentinel-{}", rand_suffix());
    let (status, _) = post(
        &server.url(&format!("/channels/{channel}")),
        "text/plain",
        sentinel.clone(),
    )
    .await;
    assert_eq!(status, 200);
    let next = sse.next_event().await;
    assert_eq!(next.data(), sentinel, "nothing was published before it");
}

fn rand_suffix() -> u128 {
    Instant::now().elapsed().as_nanos()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
}

#[tokio::test]
async fn ready_answers_200() {
    let server = Server::start(&[]);
    let (status, body) = get(&server.url("/ready")).await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
}

/// Vector's `http` sink, `encoding.codec = "json"`,
/// `framing.method = "newline_delimited"`, `compression = "gzip"`: one
/// JSON object per event (keys sorted, as Vector writes them), each ended
/// by LF, gzip-compressed, `Content-Type: application/x-ndjson`.
#[tokio::test]
async fn vector_http_sink_ndjson_gzip() {
    let server = Server::start(&[]);
    let mut sse = Sse::connect(&server.url("/realtime/vector")).await;
    let records = [
        r#"{"file":"/var/log/nginx/access.log","host":"web-1","message":"GET /a 200","source_type":"file","timestamp":"2026-12-07T06:00:00.123456789Z"}"#,
        r#"{"file":"/var/log/nginx/access.log","host":"web-1","message":"GET /b \"quoted\" 404","source_type":"file","timestamp":"2026-12-07T06:00:00.223456789Z"}"#,
        r#"{"host":"web-2","message":"ünïcödé ✓","source_type":"file","timestamp":"2026-12-07T06:00:01Z"}"#,
    ];
    let body: String = records.iter().map(|r| format!("{r}\n")).collect();
    let (status, answer) = curl_post(
        &server.url("/channels/vector"),
        &[
            "Content-Type: application/x-ndjson",
            "Content-Encoding: gzip",
            "User-Agent: Vector/0.43.1 (x86_64-unknown-linux-gnu)",
            "Accept-Encoding: identity",
        ],
        &compress("gzip", body.as_bytes()),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["count"], 3, "{answer}");
    let events = consecutive(&mut sse, 3).await;
    assert_eq!(data_of(&events), records, "each record published whole");
    assert!(events.iter().all(|e| e.event_type() == "message"));
    assert_eq!(events[0].id.as_deref(), answer["first_id"].as_str());
    assert_eq!(events[2].id.as_deref(), answer["last_id"].as_str());
    eprintln!("vector: {}", events[1].data());
}

/// Fluent Bit's `http` output with `format json` (a JSON array, dates as
/// doubles under `date`) and with `format json_lines` (NDJSON), both with
/// `compress gzip` and without.
#[tokio::test]
async fn fluent_bit_http_output_json_and_json_lines() {
    let server = Server::start(&[]);
    let mut sse = Sse::connect(&server.url("/realtime/fluent")).await;
    let records = [
        r#"{"date":1733550000.100000,"log":"first line","stream":"stdout"}"#,
        r#"{"date":1733550000.200000,"log":"second, with [brackets] and {braces}","stream":"stderr"}"#,
    ];
    let array = format!("[{}]", records.join(","));
    for (content_type, body, gzip) in [
        ("application/json", array.clone(), false),
        ("application/json", array, true),
        ("application/x-ndjson", records.join("\n") + "\n", false),
        ("application/x-ndjson", records.join("\n") + "\n", true),
    ] {
        let mut headers = vec![
            format!("Content-Type: {content_type}"),
            "User-Agent: Fluent-Bit".into(),
        ];
        let body = if gzip {
            headers.push("Content-Encoding: gzip".into());
            compress("gzip", body.as_bytes())
        } else {
            body.into_bytes()
        };
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let (status, answer) = curl_post(&server.url("/channels/fluent"), &headers, &body).await;
        assert_eq!(status, 200, "{content_type} gzip={gzip}: {answer}");
        assert_eq!(answer["count"], 2);
        let events = consecutive(&mut sse, 2).await;
        assert_eq!(data_of(&events), records, "{content_type} gzip={gzip}");
        let first = events[0].json();
        assert_eq!(first["log"], "first line");
    }
}

/// curl with NDJSON bodies in every supported `Content-Encoding`, mixing
/// the event shapes: a string, `{"event","data"}` and a shipper record.
#[tokio::test]
async fn curl_ndjson_with_gzip_zstd_deflate() {
    let server = Server::start(&[]);
    let mut sse = Sse::connect(&server.url("/realtime/curl")).await;
    for encoding in ["gzip", "zstd", "deflate"] {
        let body = format!(
            "\"plain {encoding}\"\n{{\"event\":\"deploy\",\"data\":{{\"v\":1}}}}\r\n\n{{\"msg\": \"{encoding} record\",  \"n\": [1, 2]}}"
        );
        let (status, answer) = curl_post(
            &server.url("/channels/curl"),
            &[
                "Content-Type: application/x-ndjson",
                &format!("Content-Encoding: {encoding}"),
            ],
            &compress(encoding, body.as_bytes()),
        )
        .await;
        assert_eq!(status, 200, "{encoding}: {answer}");
        let events = consecutive(&mut sse, 3).await;
        let got: Vec<(&str, &str)> = events.iter().map(|e| (e.event_type(), e.data())).collect();
        assert_eq!(
            got,
            [
                ("message", format!("plain {encoding}").as_str()),
                ("deploy", r#"{"v":1}"#),
                (
                    "message",
                    format!(r#"{{"msg":"{encoding} record","n":[1,2]}}"#).as_str()
                ),
            ],
            "{encoding}"
        );
    }
}

/// What can never be accepted gets its status and publishes nothing.
#[tokio::test]
async fn bad_shipper_bodies_publish_nothing() {
    let server = Server::start(&["--history", "5"]);
    let url = server.url("/channels/bad");
    let mut sse = Sse::connect(&server.url("/realtime/bad")).await;
    let cases: [(&str, &str, &[u8], u16, &str); 9] = [
        // A reserved type stays refused, in a record or an event object.
        (
            "application/x-ndjson",
            "",
            b"{\"message\":\"ok\"}\n{\"event\":\"reset\",\"data\":1}\n",
            400,
            "reserved event type",
        ),
        (
            "application/x-ndjson",
            "",
            b"{\"message\":\"ok\"}\n{\"event\":\"token-expired\",\"log\":\"x\"}\n",
            400,
            "reserved event type",
        ),
        (
            "application/json",
            "",
            b"[{\"log\":\"ok\"},{\"event\":\"broadcast\",\"data\":1}]",
            400,
            "reserved event type",
        ),
        // A bad element: the whole array is refused.
        (
            "application/json",
            "",
            b"[{\"log\":\"ok\"}, 42]",
            400,
            "invalid JSON",
        ),
        // NDJSON labelled as JSON.
        (
            "application/json",
            "",
            b"{\"log\":\"a\"}\n{\"log\":\"b\"}\n",
            400,
            "invalid JSON",
        ),
        (
            "application/x-ndjson",
            "",
            b"{\"log\":\"a\"}\n\"\xff\"\n",
            400,
            "invalid UTF-8",
        ),
        // More elements or lines than --history: refused before parsing.
        (
            "application/json",
            "",
            b"[1,2,3,4,5,6]",
            413,
            "batch too large",
        ),
        (
            "application/x-ndjson",
            "",
            b"{}\n{}\n{}\n{}\n{}\n{}\n",
            413,
            "batch too large",
        ),
        // An encoding the server does not speak.
        ("application/x-ndjson", "br", b"\"x\"", 415, ""),
    ];
    for (content_type, encoding, body, status, error) in cases {
        let mut headers = vec![format!("Content-Type: {content_type}")];
        if !encoding.is_empty() {
            headers.push(format!("Content-Encoding: {encoding}"));
        }
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let (got, answer) = curl_post(&url, &headers, body).await;
        assert_eq!(got, status, "{body:?}: {answer}");
        if !error.is_empty() {
            assert_eq!(answer["error"], error, "{body:?}: {answer}");
        }
        nothing_published_before_sentinel(&server, "bad", &mut sse).await;
    }
}

/// A `redis-server` owned by the test on a free loopback port, stopped by
/// its PID when dropped.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/ingest-core.sh)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < DEADLINE, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        send_signal(self.child.id(), "KILL");
        let _ = self.child.wait();
    }
}

/// Events of `sub` until `n` arrived (a deadline, not a sleep).
async fn hub_events(sub: &mut tailcast::hub::Subscription, n: usize) -> Vec<(String, u64, String)> {
    use tailcast::hub::Delivery;
    let mut got = Vec::new();
    while got.len() < n {
        let batch = tokio::time::timeout(DEADLINE, sub.next_batch())
            .await
            .expect("events within the deadline");
        for delivery in batch {
            match delivery {
                Delivery::Event(e) => {
                    got.push((e.channel.to_string(), seq_of(e.id()), e.data().into_owned()))
                }
                Delivery::Reset { channel, .. } => panic!("unexpected reset of {channel}"),
            }
        }
    }
    got
}

/// `Hub::publish_multi` on a real Redis: records of two channels get
/// consecutive ids in record order; one refused because its second
/// channel would pass the limit publishes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_multi_channel_publish_is_one_unit() {
    use tailcast::hub::{ChannelName, ChannelRequest, Creator, HubError, HubLimits, Start};
    let redis = Redis::start();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    let limits = HubLimits {
        max_channels: 2,
        max_ingest_channels: 1,
        ..HubLimits::default()
    };
    let hub = redis_hub(&redis, "ingest-test", limits, &shutdown, &tracker).await;
    let name = |n: &str| ChannelName::parse(n).unwrap();
    let (a, b, c, d) = (name("a"), name("b"), name("c"), name("d"));
    let mut sub = hub
        .subscribe(
            &[
                ChannelRequest::new(a.clone(), 0),
                ChannelRequest::new(b.clone(), 0),
            ],
            Start::Now,
        )
        .unwrap();
    let batch = hub
        .publish_multi(
            &[
                (&a, "message", "1"),
                (&b, "message", "2"),
                (&a, "message", "3"),
            ],
            Creator::Ingest,
        )
        .await
        .unwrap();
    assert_eq!(batch.count, 3);
    let got = hub_events(&mut sub, 3).await;
    eprintln!("redis: {got:?}");
    let first = seq_of(&batch.first_id);
    assert_eq!(
        got,
        [
            ("a".to_string(), first, "1".to_string()),
            ("b".to_string(), first + 1, "2".to_string()),
            ("a".to_string(), first + 2, "3".to_string()),
        ]
    );
    // Redis counts every channel: a client's is refused from
    // --max-channels (2) on, an ingest one from --max-channels +
    // --max-ingest-channels (3) on, so clients cannot crowd ingest out.
    hub.publish_multi(
        &[(&a, "message", "4"), (&c, "message", "5")],
        Creator::Ingest,
    )
    .await
    .unwrap();
    assert_eq!(
        hub_events(&mut sub, 1).await,
        [("a".to_string(), first + 3, "4".to_string())]
    );
    assert_eq!(
        hub.publish_multi(
            &[(&a, "message", "x"), (&d, "message", "y")],
            Creator::Ingest
        )
        .await,
        Err(HubError::TooManyIngestChannels { limit: 1 })
    );
    assert_eq!(
        hub.publish_multi(
            &[(&b, "message", "x"), (&d, "message", "y")],
            Creator::Client
        )
        .await,
        Err(HubError::TooManyChannels { limit: 2 })
    );
    hub.publish(&a, "message", "sentinel").await.unwrap();
    let next = hub_events(&mut sub, 1).await;
    assert_eq!(
        next[0].2, "sentinel",
        "the refused batches published nothing"
    );
    assert_eq!(next[0].1, first + 5, "and took no ids");
    shutdown.cancel();
    tracker.close();
}

/// On Redis, channels an ingest publish made count on this node against
/// `--max-ingest-channels`, as in the memory hub, not against
/// `--max-channels`: the feed entries carry their origin, so ingest does
/// not crowd out the channels clients subscribe to here (before, the node
/// counted every ordinary channel it had seen as a client's and refused
/// the subscription).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ingest_channels_do_not_take_the_client_budget_of_a_node() {
    use tailcast::hub::{ChannelName, ChannelRequest, Creator, HubLimits, Start};
    let redis = Redis::start();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    let limits = HubLimits {
        max_channels: 1,
        max_ingest_channels: 2,
        ..HubLimits::default()
    };
    let hub = redis_hub(&redis, "ingest-budget", limits, &shutdown, &tracker).await;
    let name = |n: &str| ChannelName::parse(n).unwrap();
    let (i1, i2, a) = (name("i1"), name("i2"), name("a"));
    hub.publish_multi(
        &[(&i1, "message", "1"), (&i2, "message", "2")],
        Creator::Ingest,
    )
    .await
    .unwrap();
    // The feed brought both ingest channels to this node's replica.
    eventually("the feed brought i1 and i2", || async {
        (hub.usage().events == 2).then_some(())
    })
    .await;
    let subscribed = hub
        .subscribe(&[ChannelRequest::new(a.clone(), 0)], Start::Now)
        .map(drop);
    eprintln!("subscribe to a new client channel: {subscribed:?}");
    assert_eq!(subscribed, Ok(()));
    shutdown.cancel();
    tracker.close();
}

/// A Redis hub of one node (`n1`) on `redis`, keys under `prefix`.
async fn redis_hub(
    redis: &Redis,
    prefix: &str,
    limits: tailcast::hub::HubLimits,
    shutdown: &tokio_util::sync::CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
) -> tailcast::hub::Hub {
    use tailcast::hub::redis::RedisOptions;
    use tailcast::hub::{Hub, RedisHub};
    Hub::Redis(
        RedisHub::connect(
            RedisOptions {
                url: format!("redis://127.0.0.1:{}", redis.port),
                cluster: false,
                prefix: prefix.into(),
                node: "n1".into(),
                limits,
            },
            shutdown.clone(),
            tracker,
        )
        .await
        .expect("connected to redis"),
    )
}
