//! Hardening, round 2 — the hub's part, against the real binary: `/metrics`
//! as SSE carries no broadcasts (and `/api/history?channel=broadcast` is
//! open to whoever may open a stream), client channels and log streams have
//! separate budgets (`--max-channels`), and a `reset` is sent only for a
//! channel that lost events (memory hub, `--data-dir` with retention, and
//! across a restart).

mod common;

use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};

const SECRET: &str = "0123456789abcdef0123456789abcdef-harden-hub";

/// An HS256 token for the test secret with these `tailcast` rights.
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

/// A server with access control by the test secret.
fn secured(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let secret = secret.display().to_string();
    let mut args = vec!["--jwt-secret-file", &secret];
    args.extend_from_slice(extra);
    Server::start_in(dir, &args, Stdio::null(), &[])
}

/// GET with an optional bearer token: status and body.
async fn get_as(url: &str, bearer: Option<&str>) -> (u16, String) {
    let mut req = client().get(url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

// ------------------------------------------------------------ broadcasts

#[tokio::test]
async fn public_metrics_stream_carries_samples_only_never_broadcasts() {
    let server = secured(&["--metrics-public"]);
    let admin = token(json!({"broadcast": true, "admin": true}));
    let mut sse = Sse::connect(&server.url("/metrics")).await;
    assert_eq!(sse.status, 200);
    let resp = client()
        .post(server.url("/api/broadcast"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"secret":"for subscribers only"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A broadcast goes out at once; three samples take about three seconds.
    let mut samples = 0;
    while samples < 3 {
        let frame = sse.next_event().await;
        assert_eq!(
            frame.event_type(),
            "metrics",
            "an anonymous /metrics stream got {frame:?}"
        );
        samples += 1;
    }
    // Streams the caller may open still get broadcasts.
    let reader = token(json!({"subscribe": ["news"]}));
    let mut news = Sse::connect_with(
        &server.url("/realtime/news"),
        &[("authorization", &format!("Bearer {reader}"))],
    )
    .await;
    assert_eq!(news.status, 200);
    let resp = client()
        .post(server.url("/api/broadcast"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"n":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let frame = news.next_event().await;
    assert_eq!(frame.event_type(), "broadcast");
    assert_eq!(frame.json(), json!({"n": 2}));
}

#[tokio::test]
async fn broadcast_history_is_open_to_every_caller_who_may_open_a_stream() {
    let server = secured(&["--anonymous-subscribe", "public"]);
    let url = server.url("/api/history?channel=broadcast");
    let reader = token(json!({"subscribe": ["news"]}));
    let (status, body) = get_as(&url, Some(&reader)).await;
    assert_eq!(status, 200, "a subscriber of news: {body}");
    let (status, body) = get_as(&url, None).await;
    assert_eq!(status, 200, "anonymous with --anonymous-subscribe: {body}");
    // Who may open no stream may not read it.
    let admin_only = token(json!({"admin": true}));
    assert_eq!(get_as(&url, Some(&admin_only)).await.0, 403);
    // Other channels are unchanged.
    let (status, _) = get_as(&server.url("/api/history?channel=other"), Some(&reader)).await;
    assert_eq!(status, 403);

    let closed = secured(&[]);
    let (status, _) = get_as(&closed.url("/api/history?channel=broadcast"), None).await;
    assert_eq!(status, 401, "no anonymous rights: still 401");
}

// ------------------------------------------------------------ channel budgets

/// POSTs a text event to `channel` (no token): status and JSON body.
async fn publish(server: &Server, channel: &str, data: &str) -> (u16, Value) {
    post(
        &server.url(&format!("/channels/{channel}")),
        "text/plain",
        data.to_string(),
    )
    .await
}

/// Publishes and expects success; returns the id.
async fn published(server: &Server, channel: &str, data: &str) -> String {
    let (status, body) = publish(server, channel, data).await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn client_channels_cannot_crowd_out_log_streams_or_broadcast() {
    let server = Server::start(&["--max-channels", "2", "{dir}/*.log"]);
    let sub = Sse::connect(&server.url("/realtime/one")).await;
    assert_eq!(sub.status, 200);
    published(&server, "two", "x").await;
    // A third client channel is refused, by publish and by subscribe.
    let (status, body) = publish(&server, "three", "x").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "too many channels");
    let (status, _) = get(&server.url("/events?channel=four")).await;
    assert_eq!(status, 503);
    // A log file matched later still streams its lines.
    append(&server.path("late.log"), "first line\nsecond line\n");
    wait_published(&server, "late.log", "second line").await;
    append_and_wait_published(&server, "late.log", "late.log", "third line\n").await;
    // Broadcasts still work.
    let (status, body) = post(
        &server.url("/api/broadcast"),
        "application/json",
        r#"{"still":"here"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    drop(sub);
}

// ------------------------------------------------------------ resets

use std::collections::BTreeMap;

/// Reads `/events` frames until the event whose data is `sentinel`;
/// returns the resets seen per channel and the data of the events before.
async fn resets_until(sse: &mut Sse, sentinel: &str) -> (BTreeMap<String, Vec<String>>, usize) {
    let mut resets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut events = 0;
    loop {
        let frame = sse.next_event().await;
        let body = frame.json();
        if frame.event_type() == "reset" {
            resets
                .entry(body["channel"].as_str().unwrap().to_string())
                .or_default()
                .push(body["reason"].as_str().unwrap().to_string());
            continue;
        }
        if body["data"] == sentinel {
            return (resets, events);
        }
        events += 1;
    }
}

fn reasons(list: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (c, r) in list {
        out.entry(c.to_string()).or_default().push(r.to_string());
    }
    out
}

#[tokio::test]
async fn memory_hub_resets_only_channels_that_lost_events() {
    let server = Server::start(&["--history", "3"]);
    let first = published(&server, "a", "a0").await;
    for i in 1..6 {
        published(&server, "a", &format!("a{i}")).await;
    }
    published(&server, "c", "end").await;
    let mut sse = Sse::connect_with(
        &server.url("/events?channel=a&channel=c&channel=broadcast"),
        &[("last-event-id", &first)],
    )
    .await;
    let (resets, events) = resets_until(&mut sse, "end").await;
    assert_eq!(resets, reasons(&[("a", "too old")]));
    assert_eq!(events, 3);
    // An id of another run (as after a restart): only channels holding
    // events are reset.
    let mut sse = Sse::connect_with(
        &server.url("/events?channel=a&channel=broadcast&channel=c"),
        &[("last-event-id", "0badf00d-1")],
    )
    .await;
    let (resets, _) = resets_until(&mut sse, "end").await;
    assert_eq!(resets, reasons(&[("a", "unknown id"), ("c", "unknown id")]));
}

/// A data directory and the servers started over it, one at a time.
struct DataDir {
    data: tempfile::TempDir,
}

impl DataDir {
    fn start(&self) -> Server {
        let data = self.data.path().display().to_string();
        Server::start(&[
            "--data-dir",
            &data,
            "--retention-bytes",
            "256KiB",
            "--history",
            "1000000",
        ])
    }
}

#[tokio::test]
async fn data_dir_resets_only_channels_that_lost_events_before_and_after_a_restart() {
    let d = DataDir {
        data: tempfile::tempdir().unwrap(),
    };
    let mut server = d.start();
    let first = published(&server, "a", "the very first").await;
    published(&server, "b", "only early").await;
    let filler = "x".repeat(2000);
    for _ in 0..400 {
        published(&server, "a", &filler).await;
    }
    published(&server, "c", "end").await;
    let url = server.url("/events?channel=a&channel=b&channel=c&channel=broadcast");
    let expected = reasons(&[("a", "too old"), ("b", "too old")]);
    let mut sse = Sse::connect_with(&url, &[("last-event-id", &first)]).await;
    let (resets, events) = resets_until(&mut sse, "end").await;
    assert_eq!(resets, expected, "while running");
    assert!(events > 50 && events < 400, "{events} events retained");
    drop(sse);

    server
        .terminate(DEADLINE)
        .await
        .expect("exits after SIGTERM");
    let server = d.start();
    let url = server.url("/events?channel=a&channel=b&channel=c&channel=broadcast");
    let mut sse = Sse::connect_with(&url, &[("last-event-id", &first)]).await;
    let (resets, again) = resets_until(&mut sse, "end").await;
    assert_eq!(resets, expected, "after a restart");
    assert_eq!(again, events);
    // A resume from within what is retained gets no reset at all.
    let (status, body) = get(&server.url("/api/history?channel=a&limit=2")).await;
    assert_eq!(status, 200);
    let page: Value = serde_json::from_str(&body).unwrap();
    let recent = page["events"][1]["id"].as_str().unwrap().to_string();
    let mut sse = Sse::connect_with(&url, &[("last-event-id", &recent)]).await;
    let (resets, _) = resets_until(&mut sse, "end").await;
    assert_eq!(resets, BTreeMap::new());
}
