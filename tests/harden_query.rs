//! Hardening round 2, queries: regexes from clients (`?grep=`, `?q=`) are
//! compiled only after the caller is authorized, once, at most
//! `--max-regex` bytes and with a bounded cost; `/api/history` pages stop
//! at 8 MiB on the memory hub; `?tail=N` over big events arrives whole.
//!
//! Real servers on port 0, real HTTP; memory is read from
//! `/proc/PID/status` with generous bounds, never from timings.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

/// An HS256 token with these rights, valid for an hour.
fn token(rights: Value) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "test", "exp": exp, "tailcast": rights}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn secret_file(dir: &Path) -> PathBuf {
    let path = dir.join("secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    path
}

/// A server with access control by the test secret.
fn secured() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path()).display().to_string();
    Server::start_in(dir, &["--jwt-secret-file", &secret], Stdio::null(), &[])
}

/// GETs `path` (with a bearer token if given): the status and, unless the
/// answer is an event stream (then dropped unread), the JSON body.
async fn answer(server: &Server, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = client().get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = tokio::time::timeout(DEADLINE, request.send())
        .await
        .expect("no answer")
        .unwrap();
    let status = response.status().as_u16();
    let stream = response
        .headers()
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    if stream {
        return (status, Value::Null);
    }
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The server's peak resident memory so far, in KiB.
fn hwm_kib(server: &Server) -> u64 {
    proc_status_field(server.pid(), "VmHWM:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Small enough for `--max-regex`, too big to compile.
const TOO_BIG: &str = r"(?i)\pL{1000}{1000}";

#[tokio::test]
async fn a_refused_caller_gets_its_401_or_403_without_the_regex_being_compiled() {
    let server = secured();
    let q = enc(TOO_BIG);
    let other = token(json!({"subscribe": ["other"]}));
    let news = token(json!({"subscribe": ["news"]}));
    for path in [
        format!("/api/history?channel=news&q={q}"),
        format!("/events?channel=news&grep={q}"),
        format!("/realtime/news?grep={q}"),
    ] {
        let (status, body) = answer(&server, &path, None).await;
        assert_eq!(status, 401, "{path} without a token: {body}");
        let (status, body) = answer(&server, &path, Some(&other)).await;
        assert_eq!(
            status, 403,
            "{path} with a token for another channel: {body}"
        );
        // Allowed: now it is compiled, and refused for its size.
        let (status, body) = answer(&server, &path, Some(&news)).await;
        assert_eq!(status, 400, "{path} allowed: {body}");
        assert_eq!(body["error"], "invalid regex", "{path}");
    }
}

#[tokio::test]
async fn a_repeated_regex_parameter_is_400() {
    let server = Server::start(&[]);
    for path in [
        "/api/history?channel=news&q=a&q=b",
        "/api/history?channel=news&q=&q=b",
        "/events?channel=news&grep=a&grep=b",
        "/realtime/news?grep=a&grep=a",
    ] {
        let (status, body) = answer(&server, path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "repeated parameter", "{path}");
    }
    let (status, _) = answer(&server, "/api/history?channel=news&q=a", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_regex_longer_than_max_regex_is_400() {
    let server = Server::start(&[]);
    let limit = "a".repeat(1024);
    let over = "a".repeat(1025);
    for (path, status) in [
        (format!("/api/history?channel=news&q={limit}"), 200),
        (format!("/api/history?channel=news&q={over}"), 400),
        (format!("/events?channel=news&grep={limit}"), 200),
        (format!("/events?channel=news&grep={over}"), 400),
        (format!("/realtime/news?grep={over}"), 400),
    ] {
        let (got, body) = answer(&server, &path, None).await;
        assert_eq!(got, status, "{}: {body}", &path[..40]);
        if status == 400 {
            assert_eq!(body["error"], "regex too long");
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains("--max-regex"), "{detail}");
        }
    }
    let small = Server::start(&["--max-regex", "16"]);
    let (status, _) = answer(
        &small,
        &format!("/api/history?channel=n&q={}", "a".repeat(17)),
        None,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn pathological_regexes_are_refused_with_bounded_memory() {
    let server = Server::start(&[]);
    let (status, _) = answer(&server, "/api/history?channel=news&q=warm", None).await;
    assert_eq!(status, 200);
    let before = hwm_kib(&server);
    // Each case-insensitive Unicode class costs tens of KiB to parse.
    let long = format!("(?i){}", r"\pL".repeat(4000));
    let mut answers = Vec::new();
    for (pattern, error) in [
        (long.as_str(), "regex too long"),
        (TOO_BIG, "invalid regex"),
        (&format!("(?i){}", r"\pL".repeat(300)), "invalid regex"),
    ] {
        for path in [
            format!("/api/history?channel=news&q={}", enc(pattern)),
            format!("/events?channel=news&grep={}", enc(pattern)),
        ] {
            let (status, body) = answer(&server, &path, None).await;
            answers.push((path[..30].to_string(), status, body, error));
        }
    }
    let grown = hwm_kib(&server).saturating_sub(before);
    assert!(grown < 48 * 1024, "peak memory grew by {grown} KiB");
    for (path, status, body, error) in answers {
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], error, "{path}");
    }
}

/// Publishes `count` events of about 900 KiB each to `channel`, each data
/// starting with its number.
async fn publish_big(server: &Server, channel: &str, count: usize) {
    let filler = "x".repeat(900 << 10);
    for i in 0..count {
        let (status, body) = post(
            &server.url(&format!("/channels/{channel}")),
            "text/plain",
            format!("{i} {filler}"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}

fn number(data: &str) -> usize {
    data.split(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn history_pages_stop_at_8_mib_on_the_memory_hub() {
    const BUDGET: usize = 8 << 20;
    let server = Server::start(&[]);
    publish_big(&server, "big", 40).await;
    let before = hwm_kib(&server);
    let mut seen = Vec::new();
    let mut path = "/api/history?channel=big&limit=1000".to_string();
    let mut pages = 0;
    loop {
        let (status, page) = answer(&server, &path, None).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let events = page["events"].as_array().unwrap();
        let bytes: usize = events
            .iter()
            .map(|e| e["data"].as_str().unwrap().len())
            .sum();
        assert!(
            bytes <= BUDGET + (901 << 10),
            "page {pages}: {} events, {bytes} bytes",
            events.len()
        );
        seen.extend(events.iter().map(|e| number(e["data"].as_str().unwrap())));
        if pages == 1 {
            // The first page is the one that copied every event before.
            let grown = hwm_kib(&server).saturating_sub(before);
            eprintln!("first page: peak memory grew by {grown} KiB");
            assert!(grown < 48 * 1024, "peak memory grew by {grown} KiB");
        }
        match page["next_before"].as_str() {
            Some(before) => path = format!("/api/history?channel=big&limit=1000&before={before}"),
            None => break,
        }
    }
    assert_eq!(seen, (0..40).rev().collect::<Vec<_>>());
    assert!(pages >= 4, "{pages} pages");
    // Pages are made on whichever threads are free; each may keep its
    // allocator arena, so the whole walk gets more room.
    let grown = hwm_kib(&server).saturating_sub(before);
    eprintln!("all pages: peak memory grew by {grown} KiB");
    assert!(grown < 96 * 1024, "peak memory grew by {grown} KiB");
}

#[tokio::test]
async fn a_tail_over_big_events_delivers_all_of_them() {
    let server = Server::start(&[]);
    publish_big(&server, "big", 12).await;
    publish_big(&server, "huge", 12).await;
    let mut sse = Sse::connect(&server.url("/realtime/big?tail=12")).await;
    assert_eq!(sse.status, 200);
    let numbers: Vec<usize> = sse
        .events(12)
        .await
        .iter()
        .map(|f| number(f.data()))
        .collect();
    assert_eq!(numbers, (0..12).collect::<Vec<_>>());
    let mut sse = Sse::connect(&server.url("/events?channel=big&channel=huge&tail=12")).await;
    let frames = sse.events(24).await;
    let got: Vec<(String, usize)> = frames
        .iter()
        .map(|f| {
            let envelope = f.json();
            (
                envelope["channel"].as_str().unwrap().to_string(),
                number(envelope["data"].as_str().unwrap()),
            )
        })
        .collect();
    let want: Vec<(String, usize)> = ["big", "huge"]
        .iter()
        .flat_map(|c| (0..12).map(move |i| (c.to_string(), i)))
        .collect();
    assert_eq!(got, want);
    let seqs: Vec<u64> = frames.iter().map(Frame::seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}
