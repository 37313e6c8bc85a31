//! OTLP/HTTP logs (`POST /v1/logs`) against a real `tailcast serve`:
//! the OpenTelemetry Python SDK with its protobuf exporter (plain and
//! gzip) and the OpenTelemetry JS logs SDK with its JSON exporter send
//! records, and an SSE subscriber must see each as one event with the
//! right JSON data, in order, with consecutive ids. Then bad bodies
//! (truncated protobuf, wrong JSON, a gzip and a zstd bomb, mislabelled
//! content types, invalid UTF-8, too many attributes) each get their
//! status with a `google.rpc.Status` body and publish nothing, which a
//! sentinel record sent after each proves.
//!
//! The SDK tests need `bash .ci/ingest-otlp.sh` (Python venv and npm
//! modules under `target/ingest-otlp/`); built with
//! `TAILCAST_SKIP_INTEROP=1` they are ignored.

mod client_support;
mod common;

use std::io::Write as _;
use std::path::PathBuf;

use common::*;
use prost::Message as _;
use serde_json::{json, Value};
use tailcast::ingest::otlp::proto::{self, any_value::Value as Any};

/// Where `.ci/ingest-otlp.sh` installs the clients.
fn tools() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ingest-otlp")
}

/// The folder of the client scripts.
fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ingest_otlp")
}

fn python() -> PathBuf {
    tools().join("venv/bin/python")
}

fn node_modules() -> PathBuf {
    tools().join("node/node_modules")
}

/// Fails the test with a hint when the clients are not installed.
fn require_tools() {
    let ready = python().exists()
        && node_modules()
            .join("@opentelemetry/exporter-logs-otlp-http/package.json")
            .exists();
    assert!(
        ready,
        "the OpenTelemetry clients are missing: run `bash .ci/ingest-otlp.sh` first \
         (or build the tests with TAILCAST_SKIP_INTEROP=1 to ignore these)"
    );
}

/// Runs a client to its end (killed if it outlives the deadline),
/// asserting success; returns its stdout.
async fn run_client(mut cmd: tokio::process::Command, endpoint: &str) -> String {
    cmd.env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", endpoint)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION")
        .env("NO_PROXY", "127.0.0.1")
        .kill_on_drop(true);
    let out = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .expect("the client finished within the deadline")
        .expect("the client started");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("client stdout:\n{stdout}");
    if !stderr.trim().is_empty() {
        println!("client stderr:\n{stderr}");
    }
    assert!(out.status.success(), "the client failed: {}", out.status);
    stdout
}

/// The events of `sse` before the event whose `line` is `sentinel`, which
/// is sent now with [`send_sentinel`] to `channel`.
async fn events_before_sentinel(
    server: &Server,
    sse: &mut Sse,
    channel: &str,
    sentinel: &str,
) -> Vec<Frame> {
    send_sentinel(server, channel, sentinel).await;
    let mut before = Vec::new();
    loop {
        let frame = sse.next_event().await;
        if frame.json()["line"] == sentinel {
            return before;
        }
        before.push(frame);
    }
}

/// Sends one good OTLP protobuf record with body `line` to `?channel=`.
async fn send_sentinel(server: &Server, channel: &str, line: &str) {
    let body = request(vec![], vec![log(line, vec![])]).encode_to_vec();
    let resp = client()
        .post(server.url(&format!("/v1/logs?channel={channel}")))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the sentinel is taken");
}

/// Asserts the frames' ids are consecutive: the records of one request.
/// (Ids count every event of the server, the demo stream's too, so the
/// events of separate requests are only in increasing order.)
fn assert_consecutive(frames: &[Frame]) {
    for pair in frames.windows(2) {
        assert_eq!(
            pair[1].seq(),
            pair[0].seq() + 1,
            "consecutive ids: {pair:?}"
        );
    }
}

/// Asserts the frames' ids increase.
fn assert_increasing(frames: &[Frame]) {
    for pair in frames.windows(2) {
        assert!(pair[1].seq() > pair[0].seq(), "increasing ids: {pair:?}");
    }
}

fn kv(key: &str, value: Any) -> proto::KeyValue {
    proto::KeyValue {
        key: key.into(),
        value: Some(proto::AnyValue { value: Some(value) }),
    }
}

fn log(line: &str, attributes: Vec<proto::KeyValue>) -> proto::LogRecord {
    proto::LogRecord {
        time_unix_nano: 1_796_623_200_000_000_000,
        severity_number: 9,
        body: Some(proto::AnyValue {
            value: Some(Any::StringValue(line.into())),
        }),
        attributes,
        ..Default::default()
    }
}

fn request(
    resource: Vec<proto::KeyValue>,
    logs: Vec<proto::LogRecord>,
) -> proto::ExportLogsServiceRequest {
    proto::ExportLogsServiceRequest {
        resource_logs: vec![proto::ResourceLogs {
            resource: Some(proto::Resource {
                attributes: resource,
                dropped_attributes_count: 0,
            }),
            scope_logs: vec![proto::ScopeLogs {
                scope: None,
                log_records: logs,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The labels every Python SDK record carries from its resource and the
/// test script, less the SDK's own (`telemetry.sdk.*`,
/// `service.instance.id`), which are checked to be present.
fn check_python_labels(data: &Value, service: &str, i: usize) {
    let labels = data["labels"].as_object().expect("labels");
    for key in [
        "telemetry.sdk.language",
        "telemetry.sdk.name",
        "telemetry.sdk.version",
    ] {
        assert!(labels.contains_key(key), "{key} in {labels:?}");
    }
    let mine: serde_json::Map<String, Value> = labels
        .iter()
        .filter(|(k, _)| !k.starts_with("telemetry.sdk.") && *k != "service.instance.id")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut want = json!({
        "service.name": service,
        "env": "record",
        "order.id": i.to_string(),
        "user": "ann",
    });
    if i == 0 {
        want["trace_id"] = json!("5b8efff798038103d269b633813fc60c");
        want["span_id"] = json!("eee19b7ec3c1b174");
    }
    assert_eq!(Value::Object(mine), want, "labels of record {i}");
}

/// The Python SDK's records, in order, on channel `service`.
fn check_python_events(frames: &[Frame], service: &str, count: usize, one_request: bool) {
    assert_eq!(frames.len(), count, "{frames:?}");
    if one_request {
        assert_consecutive(frames);
    } else {
        assert_increasing(frames);
    }
    let levels = ["info", "warning", "error"];
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(frame.event_type(), "message");
        let data = frame.json();
        let line = if i == count - 1 {
            format!(r#"{{"k":{i},"ok":true}}"#)
        } else {
            format!("py line {i} ✓")
        };
        assert_eq!(data["line"], line, "record {i}");
        assert_eq!(data["level"], levels[i % 3], "record {i}");
        assert_eq!(
            data["time"],
            format!("2026-12-07T06:00:00.{:09}Z", i * 1000),
            "record {i}"
        );
        check_python_labels(&data, service, i);
    }
}

#[tokio::test]
#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs the tools of .ci/ingest-otlp.sh"
)]
async fn python_sdk_protobuf_plain_and_gzip() {
    require_tools();
    let server = Server::start(&[]);
    for (service, compression, mode) in
        [("py-plain", "none", "simple"), ("py-gzip", "gzip", "batch")]
    {
        // Through a recording proxy: the request heads show what was sent.
        let proxy = client_support::Proxy::start(server.addr.parse().unwrap()).await;
        let endpoint = proxy.url("/v1/logs");
        let mut sse = Sse::connect(&server.url(&format!("/realtime/{service}"))).await;
        assert_eq!(sse.status, 200);
        let mut cmd = tokio::process::Command::new(python());
        cmd.arg(scripts().join("otel_py.py"))
            .args([service, "7", compression, mode]);
        let out = run_client(cmd, &endpoint).await;
        assert!(out.contains("done 7"), "{out}");
        let exports = out.lines().filter(|l| l.ends_with("SUCCESS")).count();
        assert_eq!(exports, if mode == "simple" { 7 } else { 1 }, "{out}");
        let frames = events_before_sentinel(&server, &mut sse, service, "end").await;
        check_python_events(&frames, service, 7, mode == "batch");
        let heads = proxy.heads();
        assert!(!heads.is_empty());
        for head in &heads {
            assert!(head.starts_with("post /v1/logs "), "{head}");
            assert!(
                head.contains("content-type: application/x-protobuf"),
                "{head}"
            );
            let gzipped = head.contains("content-encoding: gzip");
            assert_eq!(gzipped, compression == "gzip", "{head}");
        }
        println!(
            "{service}: {} connection(s), content-encoding gzip: {}",
            heads.len(),
            compression == "gzip"
        );
        println!(
            "{service}: {} events, first {}",
            frames.len(),
            frames[0].data()
        );
    }
}

#[tokio::test]
#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs the tools of .ci/ingest-otlp.sh"
)]
async fn node_sdk_otlp_json() {
    require_tools();
    let server = Server::start(&[]);
    let proxy = client_support::Proxy::start(server.addr.parse().unwrap()).await;
    let mut sse = Sse::connect(&server.url("/realtime/node-json")).await;
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(scripts().join("otel_node.cjs"))
        .args(["node-json", "5"])
        .env("NODE_PATH", node_modules());
    let out = run_client(cmd, &proxy.url("/v1/logs")).await;
    let heads = proxy.heads();
    assert!(
        heads
            .iter()
            .all(|h| h.contains("content-type: application/json"))
            && !heads.is_empty(),
        "{heads:?}"
    );
    assert!(
        out.contains("export 5 records: code 0") && out.contains("done 5"),
        "{out}"
    );
    let frames = events_before_sentinel(&server, &mut sse, "node-json", "end").await;
    assert_eq!(frames.len(), 5, "{frames:?}");
    assert_consecutive(&frames);
    let levels = ["debug", "info", "fatal"];
    for (i, frame) in frames.iter().enumerate() {
        let data = frame.json();
        let line = if i == 4 {
            r#"{"k":4,"list":[1,"two"]}"#.to_string()
        } else {
            format!("node line {i}")
        };
        assert_eq!(
            data,
            json!({
                "time": format!("2026-12-07T06:00:00.{:03}000000Z", i),
                "line": line,
                "level": levels[i % 3],
                "labels": {
                    "service.name": "node-json",
                    "order.id": i.to_string(),
                    "user": "bob",
                    "ratio": "0.5",
                    "ok": "true",
                },
            }),
            "record {i}"
        );
    }
    println!(
        "node-json: {} events, first {}",
        frames.len(),
        frames[0].data()
    );
}

/// A bad request: its body, content type and encoding, and the status
/// and words its answer must have.
struct Bad {
    name: &'static str,
    content_type: &'static str,
    encoding: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    says: &'static str,
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// The message of an error answer: a `google.rpc.Status` in the request's
/// content type (tailcast's own error JSON for an unsupported one).
fn error_message(content_type: &str, answer_type: &str, body: &[u8]) -> String {
    match content_type {
        "application/x-protobuf" => {
            assert_eq!(answer_type, "application/x-protobuf");
            let status = proto::Status::decode(body).expect("a google.rpc.Status");
            assert_ne!(status.code, 0);
            status.message
        }
        "application/json" => {
            assert_eq!(answer_type, "application/json");
            let status: Value = serde_json::from_slice(body).expect("JSON");
            assert!(status["code"].as_i64().is_some_and(|c| c > 0), "{status}");
            status["message"].as_str().expect("a message").to_string()
        }
        _ => String::from_utf8_lossy(body).to_string(),
    }
}

#[tokio::test]
async fn bad_bodies_get_their_status_and_publish_nothing() {
    let server = Server::start(&[]);
    let mut sse = Sse::connect(&server.url("/realtime/bad")).await;
    let good = request(
        vec![kv("service.name", Any::StringValue("bad".into()))],
        vec![log("hello world", vec![])],
    )
    .encode_to_vec();
    let mut bad_utf8 = good.clone();
    let at = bad_utf8.windows(5).position(|w| w == b"hello").unwrap();
    bad_utf8[at + 1] = 0xC3; // a lead byte followed by 'l': not UTF-8
    let many = request(
        vec![],
        vec![log(
            "many",
            (0..=tailcast::ingest::MAX_LABELS)
                .map(|i| kv(&format!("a{i}"), Any::IntValue(i as i64)))
                .collect(),
        )],
    )
    .encode_to_vec();
    let bomb = vec![b'{'; 8 << 20];
    let zstd_bomb = zstd::encode_all(&vec![0u8; 8 << 20][..], 19).unwrap();
    let json_good =
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"j"}}]}]}]}"#;
    let cases = vec![
        Bad { name: "truncated protobuf", content_type: "application/x-protobuf", encoding: None, body: good[..good.len() - 4].to_vec(), status: 400, says: "protobuf" },
        Bad { name: "wrong JSON type", content_type: "application/json", encoding: None, body: br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}},{"severityNumber":"high"}]}]}]}"#.to_vec(), status: 400, says: "resourceLogs[0].scopeLogs[0].logRecords[1].severityNumber" },
        Bad { name: "gzip bomb", content_type: "application/json", encoding: Some("gzip"), body: gzip(&bomb), status: 413, says: "decompressed" },
        Bad { name: "zstd bomb", content_type: "application/x-protobuf", encoding: Some("zstd"), body: zstd_bomb, status: 413, says: "decompressed" },
        Bad { name: "corrupt gzip", content_type: "application/x-protobuf", encoding: Some("gzip"), body: b"not gzip at all".to_vec(), status: 400, says: "Gzip" },
        Bad { name: "JSON labelled protobuf", content_type: "application/x-protobuf", encoding: None, body: json_good.to_vec(), status: 400, says: "protobuf" },
        Bad { name: "protobuf labelled JSON", content_type: "application/json", encoding: None, body: good.clone(), status: 400, says: "OTLP JSON" },
        Bad { name: "text/plain", content_type: "text/plain", encoding: None, body: b"hello".to_vec(), status: 415, says: "application/x-protobuf or application/json" },
        Bad { name: "brotli", content_type: "application/x-protobuf", encoding: Some("br"), body: good.clone(), status: 415, says: "content encoding" },
        Bad { name: "invalid UTF-8", content_type: "application/x-protobuf", encoding: None, body: bad_utf8, status: 400, says: "UTF-8" },
        Bad { name: "too many attributes", content_type: "application/x-protobuf", encoding: None, body: many, status: 400, says: "labels" },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let mut req = client()
            .post(server.url("/v1/logs?channel=bad"))
            .header("content-type", case.content_type);
        if let Some(encoding) = case.encoding {
            req = req.header("content-encoding", encoding);
        }
        let resp = req.body(case.body).send().await.unwrap();
        let status = resp.status().as_u16();
        let answer_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await.unwrap();
        let message = error_message(case.content_type, &answer_type, &body);
        println!("{}: {status} {message}", case.name);
        assert_eq!(status, case.status, "{}: {message}", case.name);
        assert!(
            message.contains(case.says),
            "{}: {message:?} names {:?}",
            case.name,
            case.says
        );
        let sentinel = format!("sentinel {i}");
        let before = events_before_sentinel(&server, &mut sse, "bad", &sentinel).await;
        assert!(before.is_empty(), "{}: published {before:?}", case.name);
    }
}

#[tokio::test]
async fn answers_in_the_request_content_type_and_compressed_bodies() {
    let server = Server::start(&[]);
    let mut sse = Sse::connect(&server.url("/realtime/shapes")).await;
    let records = request(
        vec![kv("service.name", Any::StringValue("shapes".into()))],
        vec![
            log("zstd 1", vec![]),
            log("zstd 2", vec![kv("k", Any::BoolValue(false))]),
        ],
    )
    .encode_to_vec();
    let resp = client()
        .post(server.url("/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "zstd")
        .body(zstd::encode_all(&records[..], 3).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let answer = resp.bytes().await.unwrap();
    assert_eq!(
        proto::ExportLogsServiceResponse::decode(&answer[..]).unwrap(),
        proto::ExportLogsServiceResponse::default()
    );
    let json_body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shapes"}}]},
        "scopeLogs":[{"logRecords":[{"observedTimeUnixNano":"1796623200000000001","severityNumber":"13","body":{"stringValue":"gzip json"},"unknownField":1}]}]}]}"#;
    let resp = client()
        .post(server.url("/v1/logs"))
        .header("content-type", "application/json; charset=utf-8")
        .header("content-encoding", "gzip")
        .body(gzip(json_body))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().await.unwrap(), "{}");
    // A request without records is taken, and publishes nothing.
    for (content_type, body) in [
        ("application/x-protobuf", &b""[..]),
        ("application/json", b"{}"),
    ] {
        let resp = client()
            .post(server.url("/v1/logs?channel=shapes"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "empty {content_type}");
    }
    let frames = events_before_sentinel(&server, &mut sse, "shapes", "end").await;
    assert_consecutive(&frames[..2]);
    assert_increasing(&frames);
    let data: Vec<Value> = frames.iter().map(Frame::json).collect();
    assert_eq!(
        data,
        vec![
            json!({"time": "2026-12-07T06:00:00.000000000Z", "line": "zstd 1", "level": "info", "labels": {"service.name": "shapes"}}),
            json!({"time": "2026-12-07T06:00:00.000000000Z", "line": "zstd 2", "level": "info", "labels": {"service.name": "shapes", "k": "false"}}),
            json!({"time": "2026-12-07T06:00:00.000000001Z", "line": "gzip json", "level": "warn", "labels": {"service.name": "shapes"}}),
        ]
    );
}

const SECRET: &str = "0123456789abcdef0123456789abcdef-otlp-secret";

/// An HS256 token with these tailcast rights.
fn token(rights: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "otlp-test", "exp": 4_102_444_800u64, "tailcast": rights}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// POSTs a protobuf request for `service` with `bearer` (if any).
async fn post_as(
    server: &Server,
    bearer: Option<&str>,
    service: &str,
    line: &str,
) -> reqwest::Response {
    let body = request(
        vec![kv("service.name", Any::StringValue(service.into()))],
        vec![log(line, vec![])],
    )
    .encode_to_vec();
    let mut req = client()
        .post(server.url("/v1/logs"))
        .header("content-type", "application/x-protobuf");
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    req.body(body).send().await.unwrap()
}

#[tokio::test]
async fn rights_come_from_the_head_and_the_record_channels() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let secret = secret.display().to_string();
    let server = Server::start_in(
        dir,
        &["--jwt-secret-file", &secret],
        std::process::Stdio::null(),
        &[],
    );
    let admin = token(json!({"subscribe": ["*"], "publish": ["*"], "admin": true}));
    let team = token(json!({"publish": ["team-*"]}));
    let bearer = format!("Bearer {admin}");
    let mut other = Sse::connect_with(
        &server.url("/realtime/other"),
        &[("authorization", &bearer)],
    )
    .await;
    let mut team_a = Sse::connect_with(
        &server.url("/realtime/team-a"),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!((other.status, team_a.status), (200, 200));

    let resp = post_as(&server, None, "other", "anonymous").await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let status = proto::Status::decode(resp.bytes().await.unwrap()).unwrap();
    println!("no token: 401 {status:?}");
    assert_eq!(status.code, 16);

    let resp = post_as(&server, Some(&team), "other", "not yours").await;
    assert_eq!(resp.status(), 403);
    let status = proto::Status::decode(resp.bytes().await.unwrap()).unwrap();
    println!("publish [team-*] to other: 403 {status:?}");
    assert_eq!(status.code, 7);

    let resp = post_as(&server, Some(&team), "team-a", "yours").await;
    assert_eq!(resp.status(), 200);
    let frame = team_a.next_event().await;
    assert_eq!(frame.json()["line"], "yours");

    let resp = post_as(&server, Some(&admin), "other", "admin sentinel").await;
    assert_eq!(resp.status(), 200);
    let frame = other.next_event().await;
    assert_eq!(
        frame.json()["line"],
        "admin sentinel",
        "nothing refused was published"
    );
}
