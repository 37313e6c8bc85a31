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
