//! Loki push (`POST /loki/api/v1/push`) against a real `tailcast serve`
//! on loopback: the npm `winston-loki` transport (protobuf + snappy, Basic
//! auth) and Python's `python-logging-loki` (JSON) as real clients; byte
//! for byte the requests Promtail, Vector's `loki` sink and Fluent Bit's
//! `loki` output send; and bad bodies, each answered with its status while
//! nothing is published (checked with a sentinel pushed after it).
//!
//! The node and Python clients need `bash .ci/ingest-loki.sh` (built with
//! `TAILCAST_SKIP_INTEROP=1` those two tests are ignored).

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Server, Sse};
use serde_json::{json, Value};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";
const PUSH: &str = "/loki/api/v1/push";

// --- helpers -------------------------------------------------------------

/// Where `.ci/ingest-loki.sh` installs the clients.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ingest-loki")
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ingest_loki")
}

/// Fails the test with a hint when the clients are not installed.
fn require_clients() {
    let dir = clients_dir();
    let ready = dir.join("venv/bin/python").exists()
        && dir
            .join("node/node_modules/winston-loki/package.json")
            .exists();
    assert!(
        ready,
        "the Loki clients are missing: run `bash .ci/ingest-loki.sh` first \
         (or build the tests with TAILCAST_SKIP_INTEROP=1 to ignore these)"
    );
}

/// An HS256 token with these rights, valid for an hour.
fn token(rights: Value) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "loki-test", "exp": exp, "tailcast": rights}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A server with access control by the test secret.
fn secured() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let secret = secret.display().to_string();
    Server::start_in(
        dir,
        &["--jwt-secret-file", &secret, "{dir}/app.log"],
        Stdio::null(),
        &[],
    )
}

fn basic(token: &str) -> String {
    use base64::Engine as _;
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("loki:{token}"));
    format!("Basic {credentials}")
}

/// POSTs `body` to the push path with exactly these headers (no automatic
/// compression), returning status and body text.
async fn push(server: &Server, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    push_to(server, PUSH, headers, body).await
}

async fn push_to(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    let mut request = common::client().post(server.url(path)).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(bytes).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

// Protobuf written by hand from Loki's push.proto (not with tailcast's own
// declarations): PushRequest.streams = 1; StreamAdapter.labels = 1,
// entries = 2; EntryAdapter.timestamp = 1 (seconds = 1, nanos = 2), line
// = 2, structuredMetadata = 3 (name = 1, value = 2).

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn field(tag: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(tag << 3 | 2, &mut out);
    varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

fn pb_entry(ns: i64, line: &[u8], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut ts = Vec::new();
    varint(1 << 3, &mut ts);
    varint((ns / 1_000_000_000) as u64, &mut ts);
    varint(2 << 3, &mut ts);
    varint((ns % 1_000_000_000) as u64, &mut ts);
    let mut entry = field(1, &ts);
    entry.extend(field(2, line));
    for (name, value) in metadata {
        let mut pair = field(1, name.as_bytes());
        pair.extend(field(2, value.as_bytes()));
        entry.extend(field(3, &pair));
    }
    entry
}

fn pb_stream(labels: &str, entries: &[Vec<u8>]) -> Vec<u8> {
    let mut stream = field(1, labels.as_bytes());
    for entry in entries {
        stream.extend(field(2, entry));
    }
    field(1, &stream)
}

/// Pushes a one-line JSON stream to `channel` and returns nothing: the
/// sentinel that must be the next event after a refused push.
async fn push_sentinel(server: &Server, channel: &str, line: &str, auth: &[(&str, &str)]) {
    let body = json!({"streams": [{"stream": {"channel": channel},
        "values": [["1", line]]}]});
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(auth);
    let (status, text) = push(server, &headers, body.to_string().into_bytes()).await;
    assert_eq!(status, 204, "sentinel push: {text}");
}

/// The next event on `sse` and its JSON data, checking the event type.
async fn next_record(sse: &mut Sse) -> (u64, Value) {
    let frame = sse.next_event().await;
    assert_eq!(frame.event_type(), "message", "{frame:?}");
    (frame.seq(), frame.json())
}

/// Reads `n` records and checks their ids are consecutive.
async fn records(sse: &mut Sse, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut last = None;
    for _ in 0..n {
        let (seq, data) = next_record(sse).await;
        if let Some(last) = last {
            assert_eq!(seq, last + 1, "ids are consecutive: {data}");
        }
        last = Some(seq);
        out.push(data);
    }
    out
}

async fn run(mut command: tokio::process::Command, what: &str) -> String {
    let output = tokio::time::timeout(common::DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish"))
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("[{what}] stdout:\n{stdout}[{what}] stderr:\n{stderr}");
    assert!(output.status.success(), "{what} failed: {stderr}");
    stdout
}

// --- real clients ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs the tools of .ci/ingest-loki.sh"
)]
async fn winston_loki_pushes_protobuf_with_snappy_and_basic_auth() {
    require_clients();
    let server = secured();
    let pusher = token(json!({"publish": ["winston-*"]}));
    let reader = token(json!({"subscribe": ["*"]}));
    let mut sse = Sse::connect_with(
        &server.url("/realtime/winston-demo"),
        &[("authorization", &format!("Bearer {reader}"))],
    )
    .await;
    assert_eq!(sse.status, 200);

    let mut node = tokio::process::Command::new("node");
    node.arg(scripts_dir().join("winston_loki.js"))
        .arg(format!("http://{}", server.addr))
        .arg(&pusher)
        .env("NODE_PATH", clients_dir().join("node/node_modules"))
        .kill_on_drop(true);
    let printed = run(node, "winston-loki").await;
    assert!(
        printed.contains("content-type application/x-protobuf"),
        "winston-loki fell back from protobuf: {printed}"
    );
    assert!(printed.contains("sent 4"), "{printed}");

    let got = records(&mut sse, 4).await;
    let lines: Vec<&str> = got.iter().map(|r| r["line"].as_str().unwrap()).collect();
    // One stream per label set, in the order first logged: the info stream
    // (three lines, in order), then the warn stream. winston-loki appends
    // the rest of winston's info object as JSON to the line.
    assert_eq!(
        lines,
        [
            r#"winston line 0 {"level":"info"}"#,
            r#"winston line 1 {"level":"info"}"#,
            r#"winston line 2 {"level":"info"}"#,
            r#"winston warning {"level":"warn"}"#
        ]
    );
    for (record, level) in got.iter().zip(["info", "info", "info", "warn"]) {
        assert_eq!(record["level"], level, "{record}");
        assert_eq!(
            record["labels"],
            json!({"app": "winston-demo", "level": level, "note": "say \"hi\", C:\\tmp\\"}),
            "the unescaped label string is read leniently: {record}"
        );
        assert!(record["time"].as_str().unwrap().ends_with('Z'), "{record}");
    }
    eprintln!("winston-loki records: {got:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs the tools of .ci/ingest-loki.sh"
)]
async fn python_logging_loki_pushes_json() {
    require_clients();
    let server = secured();
    let pusher = token(json!({"publish": ["py-*"]}));
    let reader = token(json!({"subscribe": ["*"]}));
    let mut sse = Sse::connect_with(
        &server.url("/realtime/py-demo"),
        &[("authorization", &format!("Bearer {reader}"))],
    )
    .await;
    assert_eq!(sse.status, 200);

    let mut python = tokio::process::Command::new(clients_dir().join("venv/bin/python"));
    python
        .arg(scripts_dir().join("python_logging_loki.py"))
        .arg(format!("http://{}", server.addr))
        .arg(&pusher)
        .kill_on_drop(true);
    let printed = run(python, "python-logging-loki").await;
    assert!(printed.contains("sent 4"), "{printed}");

    let got = records(&mut sse, 4).await;
    let expected = [
        ("python line 0", "info", json!({})),
        ("python line 1", "warning", json!({"request_id": "r-1"})),
        ("python line 2 ünïcode", "error", json!({})),
        ("python legacy line", "info", json!({})),
    ];
    for (record, (line, level, extra)) in got.iter().zip(expected) {
        assert_eq!(record["line"], line, "{record}");
        assert_eq!(record["level"], level, "{record}");
        let mut labels = json!({"app": "py-demo", "logger": "py-demo", "severity": level});
        for (k, v) in extra.as_object().unwrap() {
            labels[k] = v.clone();
        }
        assert_eq!(record["labels"], labels, "{record}");
    }
    eprintln!("python-logging-loki records: {got:#?}");
}

// --- shipper-shaped requests ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtail_vector_and_fluent_bit_requests_become_events() {
    let server = Server::start(&["{dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/realtime/shippers")).await;
    assert_eq!(sse.status, 200);
    let at = 1_796_623_200_123_456_789_i64;

    // Promtail: protobuf, snappy block, no Content-Encoding; labels as Go's
    // LabelSet.String() writes them (sorted, `, `, escaped); Promtail 3
    // sends structured metadata.
    let body = snappy(&pb_stream(
        r#"{channel="shippers", filename="/var/log/nginx/access.log", job="nginx"}"#,
        &[
            pb_entry(at, b"GET /a 200", &[("trace_id", "abc")]),
            pb_entry(at + 1, b"GET /b \"quoted\" 404", &[]),
        ],
    ));
    let (status, text) = push(
        &server,
        &[
            ("content-type", "application/x-protobuf"),
            ("user-agent", "promtail/2.9.4"),
        ],
        body,
    )
    .await;
    assert_eq!((status, text.as_str()), (204, ""));

    // Vector `loki` sink, encoding protobuf: Content-Encoding: snappy.
    let body = snappy(&pb_stream(
        r#"{channel="shippers", level="ERROR", source_type="file"}"#,
        &[pb_entry(at + 2, b"vector says boom", &[])],
    ));
    let (status, text) = push(
        &server,
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "snappy"),
            ("user-agent", "Vector/0.43.0 (x86_64-unknown-linux-gnu)"),
        ],
        body,
    )
    .await;
    assert_eq!((status, text.as_str()), (204, ""));

    // Vector `loki` sink, encoding json with gzip compression.
    let body = json!({"streams": [{"stream": {"channel": "shippers", "host": "web-2"},
        "values": [[(at + 3).to_string(), "vector json line"]]}]});
    let (status, _) = push(
        &server,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        gzip(body.to_string().as_bytes()),
    )
    .await;
    assert_eq!(status, 204);

    // Vector `loki` sink, encoding json with its default snappy compression.
    let body = json!({"streams": [{"stream": {"channel": "shippers"},
        "values": [[(at + 4).to_string(), "vector snappy json"]]}]});
    let (status, _) = push(
        &server,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "snappy"),
        ],
        snappy(body.to_string().as_bytes()),
    )
    .await;
    assert_eq!(status, 204);

    // Fluent Bit `loki` output: JSON, line_format json (the record's other
    // keys as the line), structured metadata as the third element.
    let body = format!(
        r#"{{"streams":[{{"stream":{{"job":"fluent-bit","channel":"shippers"}},"values":[["{}","{{\"log\":\"fb line\",\"stream\":\"stdout\"}}",{{"pod":"p-1"}}]]}}]}}"#,
        at + 5
    );
    let (status, _) = push(
        &server,
        &[
            ("content-type", "application/json"),
            ("user-agent", "Fluent-Bit"),
        ],
        body.into_bytes(),
    )
    .await;
    assert_eq!(status, 204);

    let got = records(&mut sse, 6).await;
    let nginx =
        json!({"channel": "shippers", "filename": "/var/log/nginx/access.log", "job": "nginx"});
    let expected = [
        json!({"time": "2026-12-07T06:00:00.123456789Z", "line": "GET /a 200",
            "labels": {"channel": "shippers", "filename": "/var/log/nginx/access.log",
                "job": "nginx", "trace_id": "abc"}}),
        json!({"time": "2026-12-07T06:00:00.123456790Z", "line": "GET /b \"quoted\" 404",
            "labels": nginx}),
        json!({"time": "2026-12-07T06:00:00.123456791Z", "line": "vector says boom",
            "level": "error",
            "labels": {"channel": "shippers", "level": "ERROR", "source_type": "file"}}),
        json!({"time": "2026-12-07T06:00:00.123456792Z", "line": "vector json line",
            "labels": {"channel": "shippers", "host": "web-2"}}),
        json!({"time": "2026-12-07T06:00:00.123456793Z", "line": "vector snappy json",
            "labels": {"channel": "shippers"}}),
        json!({"time": "2026-12-07T06:00:00.123456794Z",
            "line": "{\"log\":\"fb line\",\"stream\":\"stdout\"}",
            "labels": {"channel": "shippers", "job": "fluent-bit", "pod": "p-1"}}),
    ];
    for (record, expected) in got.iter().zip(expected) {
        assert_eq!(record, &expected);
    }
    eprintln!("shipper-shaped records: {got:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_go_to_their_channels_or_to_the_one_named() {
    let server = Server::start(&["{dir}/app.log"]);
    let mut by_job = Sse::connect(&server.url("/realtime/nginx")).await;
    let mut named = Sse::connect(&server.url("/realtime/all-in-one")).await;
    let body = snappy(&pb_stream(
        r#"{job="nginx"}"#,
        &[pb_entry(1, b"to nginx", &[])],
    ));
    let headers = [("content-type", "application/x-protobuf")];
    assert_eq!(push(&server, &headers, body.clone()).await.0, 204);
    let (status, _) = push_to(
        &server,
        &format!("{PUSH}?channel=all-in-one"),
        &headers,
        body,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(next_record(&mut by_job).await.1["line"], "to nginx");
    assert_eq!(next_record(&mut named).await.1["line"], "to nginx");
}

// --- bad input ------------------------------------------------------------

/// What is sent, its headers and body, and the status and text expected.
type BadCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);

/// What is sent, its credentials, and the status expected.
type AuthCase<'a> = (&'a str, Vec<(&'a str, String)>, u16);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_their_status_and_publish_nothing() {
    let server = Server::start(&["{dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/realtime/bad")).await;
    assert_eq!(sse.status, 200);
    let good = pb_stream(r#"{channel="bad"}"#, &[pb_entry(1, b"never", &[])]);
    let protobuf = ("content-type", "application/x-protobuf");
    let json_type = ("content-type", "application/json");

    // A snappy block whose header claims 1 GiB, then nothing.
    let bomb_header = vec![0x80, 0x80, 0x80, 0x80, 0x04];
    // 64 MiB of zeros, gzip-compressed to about 64 KiB.
    let gzip_bomb = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        encoder.finish().unwrap()
    };
    let many_labels = format!(
        "{{channel=\"bad\", {}}}",
        (0..300)
            .map(|i| format!("l{i}=\"v\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let many_metadata: Vec<(String, String)> =
        (0..300).map(|i| (format!("m{i}"), "v".into())).collect();
    let many_metadata: Vec<(&str, &str)> = many_metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let json_body = json!({"streams": [{"stream": {"channel": "bad"},
        "values": [["1", "never"]]}]})
    .to_string();

    let cases: Vec<BadCase> = vec![
        (
            "truncated protobuf",
            vec![protobuf],
            snappy(&good[..good.len() - 4]),
            400,
            "not a Loki protobuf PushRequest",
        ),
        (
            "wrong snappy",
            vec![protobuf],
            {
                let mut packed = snappy(&good);
                packed.truncate(packed.len() - 3);
                packed
            },
            400,
            "not snappy block-compressed",
        ),
        (
            "protobuf without snappy",
            vec![protobuf],
            good.clone(),
            400,
            "not snappy",
        ),
        (
            "a snappy header claiming 1 GiB",
            vec![protobuf],
            bomb_header,
            413,
            "would decompress to 1073741824 bytes",
        ),
        (
            "gzip bomb",
            vec![json_type, ("content-encoding", "gzip")],
            gzip_bomb,
            413,
            "once decompressed",
        ),
        (
            "JSON sent as protobuf",
            vec![protobuf],
            json_body.clone().into_bytes(),
            400,
            "looks like JSON",
        ),
        (
            "protobuf sent as JSON",
            vec![json_type],
            snappy(&good),
            400,
            "not a Loki JSON push",
        ),
        (
            "a stream with 301 labels",
            vec![protobuf],
            snappy(&pb_stream(&many_labels, &[pb_entry(1, b"never", &[])])),
            400,
            "labels",
        ),
        (
            "an entry with 300 metadata pairs",
            vec![protobuf],
            snappy(&pb_stream(
                r#"{channel="bad"}"#,
                &[pb_entry(1, b"never", &many_metadata)],
            )),
            400,
            "labels",
        ),
        (
            "a label string without braces",
            vec![protobuf],
            snappy(&pb_stream(
                r#"channel="bad""#,
                &[pb_entry(1, b"never", &[])],
            )),
            400,
            "stream 0: the label string",
        ),
        (
            "a time that is not a number",
            vec![json_type],
            br#"{"streams":[{"stream":{"channel":"bad"},"values":[["yesterday","never"]]}]}"#
                .to_vec(),
            400,
            "stream 0, entry 0",
        ),
        (
            "an unsupported content type",
            vec![("content-type", "text/plain")],
            b"never".to_vec(),
            415,
            "application/x-protobuf",
        ),
        (
            "an unsupported content encoding",
            vec![json_type, ("content-encoding", "br")],
            json_body.clone().into_bytes(),
            415,
            "snappy, gzip, deflate, zstd",
        ),
    ];
    for (n, (what, headers, body, status, needle)) in cases.into_iter().enumerate() {
        let (got, text) = push(&server, &headers, body).await;
        eprintln!("{what}: {got} {text}");
        assert_eq!(got, status, "{what}: {text}");
        assert!(text.contains(needle), "{what}: {text:?} lacks {needle:?}");
        let sentinel = format!("sentinel {n}");
        push_sentinel(&server, "bad", &sentinel, &[]).await;
        let (_, data) = next_record(&mut sse).await;
        assert_eq!(
            data["line"],
            sentinel.as_str(),
            "{what} published something"
        );
    }

    // Invalid UTF-8 in a line is not refused: it is replaced (Loki stores
    // such lines, and a 400 would make the shipper drop the whole batch).
    let latin1 = snappy(&pb_stream(
        r#"{channel="bad"}"#,
        &[pb_entry(1, b"caf\xe9 cr\xe8me", &[])],
    ));
    assert_eq!(push(&server, &[protobuf], latin1).await.0, 204);
    let (_, data) = next_record(&mut sse).await;
    assert_eq!(data["line"], "caf\u{fffd} cr\u{fffd}me");
    let latin1_json =
        b"{\"streams\":[{\"stream\":{\"channel\":\"bad\"},\"values\":[[\"1\",\"caf\xe9\"]]}]}";
    assert_eq!(
        push(&server, &[json_type], latin1_json.to_vec()).await.0,
        204
    );
    let (_, data) = next_record(&mut sse).await;
    assert_eq!(data["line"], "caf\u{fffd}");

    // The server is unaffected, and its peak memory shows that neither
    // the 1 GiB snappy claim nor the 64 MiB gzip bomb was decompressed.
    let (status, _) = common::get(&server.url("/health")).await;
    assert_eq!(status, 200);
    let peak_kib: u64 = common::proc_status_field(server.pid(), "VmHWM:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/PID/status");
    eprintln!("server peak RSS after the bad bodies: {peak_kib} KiB");
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_label_stream_is_refused() {
    // About 14 MiB of label string, about 4.6 MiB snappy-compressed.
    let labels = format!(
        "{{channel=\"bad\", {}}}",
        (0..1_000_000)
            .map(|i| format!("l{i}=\"v\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let body = snappy(&pb_stream(&labels, &[pb_entry(1, b"never", &[])]));
    let protobuf = [("content-type", "application/x-protobuf")];

    // Within --max-body once decompressed: 400, naming the count.
    let server = Server::start(&["--max-body", "32MiB", "{dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/realtime/bad")).await;
    let (status, text) = push(&server, &protobuf, body.clone()).await;
    eprintln!(
        "a million labels ({} bytes on the wire): {status} {text}",
        body.len()
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("1000001 labels"), "{text}");
    push_sentinel(&server, "bad", "after a million labels", &[]).await;
    assert_eq!(
        next_record(&mut sse).await.1["line"],
        "after a million labels"
    );

    // With --max-body 8MiB the body arrives whole, and the size its snappy
    // header claims is refused before anything is decompressed: 413.
    let server = Server::start(&["--max-body", "8MiB", "{dir}/app.log"]);
    let (status, text) = push(&server, &protobuf, body).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("would decompress to"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_carry_a_token_on_the_loki_path_only() {
    let server = secured();
    let reader = token(json!({"subscribe": ["*"]}));
    let mut sse = Sse::connect_with(
        &server.url("/realtime/secure"),
        &[("authorization", &format!("Bearer {reader}"))],
    )
    .await;
    assert_eq!(sse.status, 200);
    let body = || {
        snappy(&pb_stream(
            r#"{channel="secure"}"#,
            &[pb_entry(1, b"never", &[])],
        ))
    };
    let protobuf = ("content-type", "application/x-protobuf");
    let pusher = token(json!({"publish": ["secure"]}));
    let elsewhere = token(json!({"publish": ["other"]}));

    let refused: Vec<AuthCase> = vec![
        ("no credentials", vec![], 401),
        (
            "a garbage token",
            vec![("authorization", basic("garbage"))],
            401,
        ),
        (
            "an empty password",
            vec![("authorization", "Basic bG9raTo=".into())],
            401,
        ),
        (
            "a token without the right",
            vec![("authorization", basic(&elsewhere))],
            403,
        ),
        (
            "a tampered token",
            vec![("authorization", basic(&pusher.replace('.', ".x")))],
            401,
        ),
    ];
    let good_auth = basic(&pusher);
    for (n, (what, auth, status)) in refused.into_iter().enumerate() {
        let mut headers: Vec<(&str, &str)> = vec![protobuf];
        headers.extend(auth.iter().map(|(k, v)| (*k, v.as_str())));
        let (got, text) = push(&server, &headers, body()).await;
        eprintln!("{what}: {got} {text}");
        assert_eq!(got, status, "{what}: {text}");
        assert!(!text.contains(&pusher), "the token is never echoed");
        let sentinel = format!("sentinel {n}");
        push_sentinel(
            &server,
            "secure",
            &sentinel,
            &[("authorization", &good_auth)],
        )
        .await;
        assert_eq!(next_record(&mut sse).await.1["line"], sentinel.as_str());
    }

    // The same credentials publish nothing elsewhere: Basic is read only
    // on the Loki path.
    let (status, text) = push_to(
        &server,
        "/channels/secure",
        &[
            ("authorization", &good_auth),
            ("content-type", "text/plain"),
        ],
        b"never".to_vec(),
    )
    .await;
    assert_eq!(status, 401, "{text}");
    // A bearer token works on the Loki path too.
    let (status, _) = push(
        &server,
        &[protobuf, ("authorization", &format!("Bearer {pusher}"))],
        snappy(&pb_stream(
            r#"{channel="secure"}"#,
            &[pb_entry(1, b"bearer", &[])],
        )),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(next_record(&mut sse).await.1["line"], "bearer");
    assert!(server
        .stderr_lines()
        .iter()
        .all(|line| !line.contains(&pusher)));
}

/// Ingest channels have their own budget: clients at `--max-channels`
/// do not stop ingest, and ingest over `--max-ingest-channels` is a 503
/// with `Retry-After` that publishes nothing, not even the records of
/// channels that exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_has_its_own_channel_budget() {
    let server = Server::start(&[
        "{dir}/app.log",
        "--max-channels",
        "1",
        "--max-ingest-channels",
        "2",
    ]);
    let client = common::client();
    let publish = |channel: &str| {
        client
            .post(server.url(&format!("/channels/{channel}")))
            .body("x")
            .send()
    };
    assert_eq!(publish("c1").await.unwrap().status(), 200);
    assert_eq!(
        publish("c2").await.unwrap().status(),
        503,
        "clients at their limit"
    );
    let streams = |jobs: &[&str]| {
        let streams: Vec<Value> = jobs
            .iter()
            .map(|job| json!({"stream": {"job": job}, "values": [["1", format!("to {job}")]]}))
            .collect();
        json!({ "streams": streams }).to_string().into_bytes()
    };
    let headers = [("content-type", "application/json")];
    let (status, text) = push(&server, &headers, streams(&["a", "b"])).await;
    assert_eq!(
        status, 204,
        "ingest is not refused for the clients' channels: {text}"
    );
    let response = common::client()
        .post(server.url(PUSH))
        .header("content-type", "application/json")
        .body(streams(&["a", "c"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "a third ingest channel");
    assert_eq!(response.headers()["retry-after"], "5");
    let history = common::client()
        .get(server.url("/api/history?channel=a"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let history: Value = serde_json::from_str(&history).unwrap();
    let lines: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "the refused request published nothing on a: {lines:?}"
    );
}
