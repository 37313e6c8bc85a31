//! Channels over real HTTP: publish, subscribe, multiplexing, broadcast,
//! the demo streams, `/metrics`, and every error status.

mod common;

use common::*;

#[tokio::test]
async fn publish_text_and_json_then_subscribe_with_tail() {
    let server = Server::start(&["{dir}/app.log"]);
    let (status, body) = post(&server.url("/channels/news"), "text/plain", "plain text").await;
    assert_eq!(status, 200);
    assert_eq!(body["channel"], "news");
    assert_eq!(body["subscribers"], 0);
    assert!(body["id"].is_string());
    post(
        &server.url("/channels/news?event=alert"),
        "text/plain",
        "typed",
    )
    .await;
    post(
        &server.url("/channels/news"),
        "application/json",
        r#"{"event": "sensor", "data": {"t": 21.5}}"#,
    )
    .await;
    post(
        &server.url("/channels/news"),
        "application/json",
        r#"{"data": "json string"}"#,
    )
    .await;

    let mut sse = Sse::connect(&server.url("/realtime/news?tail=4")).await;
    let events = sse.events(4).await;
    let got: Vec<(&str, &str)> = events.iter().map(|e| (e.event_type(), e.data())).collect();
    assert_eq!(
        got,
        [
            ("message", "plain text"),
            ("alert", "typed"),
            ("sensor", r#"{"t":21.5}"#),
            ("message", "json string")
        ]
    );
    assert_eq!(events[0].id.as_ref().unwrap(), body["id"].as_str().unwrap());
    // Without tail, a channel subscriber starts with new events only.
    let mut fresh = Sse::connect(&server.url("/realtime/news")).await;
    let (_, body) = post(&server.url("/channels/news"), "text/plain", "live").await;
    assert_eq!(body["subscribers"], 2);
    assert_eq!(fresh.next_event().await.data(), "live");
    assert_eq!(sse.next_event().await.data(), "live");
}

#[tokio::test]
async fn multi_line_data_and_injection_attempts_stay_one_event_on_the_wire() {
    let server = Server::start(&["{dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/realtime/wire")).await;
    post(&server.url("/channels/wire"), "text/plain", "a\r\nb\rc\nd").await;
    let (_, body) = post(
        &server.url("/channels/wire"),
        "text/plain",
        "x\n\nevent: evil\ndata: y",
    )
    .await;
    post(&server.url("/channels/wire"), "text/plain", "z\n").await;
    let multi = sse.next_event().await;
    assert_eq!(multi.data(), "a\nb\nc\nd");
    assert!(
        multi
            .raw
            .ends_with("data: a\ndata: b\ndata: c\ndata: d\n\n"),
        "{:?}",
        multi.raw
    );
    let evil = sse.next_event().await;
    assert_eq!(
        evil.raw,
        format!(
            "id: {}\ndata: x\ndata:\ndata: event: evil\ndata: data: y\n\n",
            body["id"].as_str().unwrap()
        )
    );
    assert_eq!(evil.event_type(), "message");
    assert_eq!(evil.data(), "x\n\nevent: evil\ndata: y");
    let trailing = sse.next_event().await;
    assert_eq!(trailing.data(), "z\n");
}

#[tokio::test]
async fn broadcast_reaches_log_channel_and_demo_subscribers_and_is_resumable() {
    let server = Server::start(&["x={dir}/x.log"]);
    let mut log = Sse::connect(&server.url("/logs/x")).await;
    let mut channel = Sse::connect(&server.url("/realtime/y")).await;
    let mut demo = Sse::connect(&server.url("/stream")).await;
    assert_eq!(demo.next_event().await.event_type(), "connected");
    let body = r#"{"message": "maintenance at 5", "timestamp": "2024-01-01T12:00:00Z"}"#;
    let (status, answer) = post(&server.url("/api/broadcast"), "application/json", body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["channel"], "broadcast");
    assert!(answer["subscribers"].as_u64().unwrap() >= 3);
    for sse in [&mut log, &mut channel] {
        let e = sse.next_event().await;
        assert_eq!(e.event_type(), "broadcast");
        assert_eq!(e.json()["message"], "maintenance at 5");
    }
    let e = loop {
        let e = demo.next_event().await;
        if e.event_type() == "broadcast" {
            break e;
        }
    };
    assert_eq!(e.json()["timestamp"], "2024-01-01T12:00:00Z");
    // Resume covers broadcasts: a client that saw an earlier id gets it.
    let (_, first) = post(&server.url("/channels/y"), "text/plain", "before").await;
    post(
        &server.url("/api/broadcast"),
        "application/json",
        r#"{"message": "second"}"#,
    )
    .await;
    let mut resumed = Sse::connect_with(
        &server.url("/realtime/y"),
        &[("last-event-id", first["id"].as_str().unwrap())],
    )
    .await;
    let e = resumed.next_event().await;
    assert_eq!(
        (e.event_type(), e.json()["message"].as_str().unwrap()),
        ("broadcast", "second")
    );
}

#[tokio::test]
async fn multiplexed_events_resume_across_two_channels() {
    let server = Server::start(&["app={dir}/app.log"]);
    append(&server.path("app.log"), "");
    wait_following(&server, "log:app").await;
    let url = server.url("/events?channel=a&channel=b&channel=log:app&tail=0");
    let mut sse = Sse::connect(&url).await;
    post(&server.url("/channels/a"), "text/plain", "a1").await;
    post(&server.url("/channels/b"), "text/plain", "b1").await;
    let first = sse.events(2).await;
    assert_eq!(
        first[0].json(),
        serde_json::json!({"channel": "a", "data": "a1"})
    );
    assert_eq!(
        first[1].json(),
        serde_json::json!({"channel": "b", "data": "b1"})
    );
    let last_id = first[1].id.clone().unwrap();
    drop(sse);
    post(&server.url("/channels/b"), "text/plain", "b2").await;
    post(&server.url("/channels/a?event=custom"), "text/plain", "a2").await;
    append(&server.path("app.log"), "log line\n");
    post(
        &server.url("/channels/other"),
        "text/plain",
        "not subscribed",
    )
    .await;
    eventually("log line read", || async {
        stream_info(&server, "log:app").await?["last_id"]
            .as_str()
            .map(drop)
    })
    .await;
    post(&server.url("/channels/b"), "text/plain", "b3").await;
    let mut resumed = Sse::connect_with(&url, &[("last-event-id", &last_id)]).await;
    post(&server.url("/channels/a"), "text/plain", "end").await;
    let missed = events_until(&mut resumed, r#"{"channel":"a","data":"end"}"#).await;
    let got: Vec<_> = missed
        .iter()
        .map(|e| (e.event_type().to_string(), e.json()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "message".into(),
                serde_json::json!({"channel": "b", "data": "b2"})
            ),
            (
                "custom".into(),
                serde_json::json!({"channel": "a", "data": "a2"})
            ),
            (
                "message".into(),
                serde_json::json!({"channel": "log:app", "data": "log line"})
            ),
            (
                "message".into(),
                serde_json::json!({"channel": "b", "data": "b3"})
            ),
        ]
    );
}

#[tokio::test]
async fn stream_demo_sends_connected_then_typed_events() {
    let server = Server::start(&["{dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/stream")).await;
    let connected = sse.next_event().await;
    assert_eq!(connected.event_type(), "connected");
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 4 {
        let e = sse.next_event().await;
        let json = e.json();
        match e.event_type() {
            "message" => assert!(json["message"].is_string()),
            "sensor" => assert!(json["temperature"].is_number() && json["humidity"].is_number()),
            "heartbeat" => assert_eq!(json["status"], "alive"),
            "notification" => assert!(json["title"].is_string() && json["level"].is_string()),
            other => panic!("unexpected event type {other}"),
        }
        assert!(e.id.is_some());
        seen.insert(e.event_type().to_string());
    }
}

/// `events_per_s` of the next `n` `/metrics` samples whose whole second
/// started more than a second after `after` (the margin covers a publish
/// decided just before). A sample counts the events since the one before
/// it, so it qualifies when the one before it is stamped late enough.
/// Samples may have waited in the socket while the test did something
/// else, hence the timestamps rather than the order of reading. The server
/// and the test share the machine's clock.
async fn rates_after(
    metrics: &mut Sse,
    after: chrono::DateTime<chrono::Utc>,
    n: usize,
) -> Vec<f64> {
    let start = after + chrono::Duration::seconds(1);
    let mut previous = None;
    let mut rates = Vec::new();
    while rates.len() < n {
        let e = metrics.next_event().await;
        assert_eq!(e.event_type(), "metrics");
        let json = e.json();
        let at = chrono::DateTime::parse_from_rfc3339(json["timestamp"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
        if previous.is_some_and(|p| p > start) {
            rates.push(json["events_per_s"].as_f64().unwrap());
        }
        previous = Some(at);
    }
    rates
}

/// The `/stream` feed publishes into the hub only while someone listens:
/// an idle server writes no fake events, uses up no ids, and shows
/// `events_per_s` 0. Proving that nothing happens takes time: the checks
/// span several periods of the feed (a `message` every 2 s, a `sensor`
/// every 4 s), counted in `/metrics` samples, one a second.
#[tokio::test]
async fn the_demo_feed_publishes_only_while_stream_has_subscribers() {
    let server = Server::start(&["{dir}/app.log"]);
    let mut metrics = Sse::connect(&server.url("/metrics")).await;
    let (_, first) = post(&server.url("/channels/probe"), "text/plain", "1").await;
    let idle = rates_after(&mut metrics, chrono::Utc::now(), 5).await;
    assert_eq!(idle, [0.0; 5], "an idle server published");
    let (_, second) = post(&server.url("/channels/probe"), "text/plain", "2").await;
    assert_eq!(
        seq_of(second["id"].as_str().unwrap()),
        seq_of(first["id"].as_str().unwrap()) + 1,
        "ids were used up between two publishes on an idle server"
    );
    assert_eq!(
        metric(&server, "tailcast_events_published_total").await,
        2.0
    );
    assert!(
        stream_info(&server, "stream").await.is_none(),
        "the demo channel exists with nobody listening"
    );

    // A listener gets the feed...
    let mut demo = Sse::connect(&server.url("/stream")).await;
    assert_eq!(demo.next_event().await.event_type(), "connected");
    let event = demo.next_event().await;
    assert!(
        ["message", "sensor", "heartbeat", "notification"].contains(&event.event_type()),
        "{event:?}"
    );
    // ...and once it left, the feed stops again.
    drop(demo);
    eventually("the listener gone", || async {
        (stream_info(&server, "stream").await?["subscribers"] == 0).then_some(())
    })
    .await;
    let left = chrono::Utc::now();
    let mut after = rates_after(&mut metrics, left, 5).await;
    let last_id = stream_info(&server, "stream").await.unwrap()["last_id"].clone();
    after.extend(rates_after(&mut metrics, chrono::Utc::now(), 1).await);
    assert_eq!(after, [0.0; 6], "the feed went on without listeners");
    assert_eq!(
        stream_info(&server, "stream").await.unwrap()["last_id"],
        last_id
    );
}

#[tokio::test]
async fn stream_numbers_counts_to_ten_then_closes_with_retry() {
    let server = Server::start(&["{dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/stream-numbers")).await;
    let numbers = sse.events(10).await;
    assert_eq!(
        data_of(&numbers),
        (1..=10).map(|n| n.to_string()).collect::<Vec<_>>()
    );
    let close = sse.next_event().await;
    assert_eq!(close.event_type(), "close");
    assert_eq!(close.retry.as_deref(), Some("3000"));
    assert_eq!(sse.next_frame().await, None, "the stream ends after close");
}

#[tokio::test]
async fn metrics_as_sse_carries_host_and_server_figures() {
    let server = Server::start(&["{dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/metrics")).await;
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    let e = sse.next_event().await;
    assert_eq!(e.event_type(), "metrics");
    let json = e.json();
    for key in [
        "cpu_percent",
        "memory_used_bytes",
        "memory_total_bytes",
        "net_rx_bytes_per_s",
        "net_tx_bytes_per_s",
        "connections",
        "events_per_s",
        "publish_errors_per_s",
    ] {
        assert!(json[key].is_number(), "{key} in {json}");
    }
    assert!(json["memory_total_bytes"].as_u64().unwrap() > 0);
    assert!(json["connections"].as_i64().unwrap() >= 1);
    chrono::DateTime::parse_from_rfc3339(json["timestamp"].as_str().unwrap()).unwrap();
    assert_eq!(sse.next_event().await.event_type(), "metrics");
}

#[tokio::test]
async fn metrics_as_prometheus_text_parses_with_a_real_parser() {
    let server = Server::start(&["{dir}/app.log"]);
    let _sse = Sse::connect(&server.url("/realtime/m")).await;
    post(&server.url("/channels/m"), "text/plain", "x").await;
    post(&server.url("/channels/log:x"), "text/plain", "x").await;
    let (status, text) = get(&server.url("/metrics")).await;
    assert_eq!(status, 200);
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
text = sys.stdin.read()
list(om(text))
for family in text_string_to_metric_families(text):
    for s in family.samples:
        label = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{label}}} {float(s.value)}")
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "parser failed (is prometheus_client installed? run bash .ci/run): {stderr}"
    );
    let samples = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "tailcast_open_connections{} 1.0",
        "tailcast_streams_opened_total{} 1.0",
        "tailcast_events_published_total{} 1.0",
        "tailcast_publish_errors_total{status=403} 1.0",
        "tailcast_sent_bytes_total{}",
        "tailcast_events_delivered_total{}",
        "tailcast_resumes_total{} 0.0",
        "tailcast_resets_total{} 0.0",
        "tailcast_slow_subscribers_dropped_total{} 0.0",
        "tailcast_lines_read_total{}",
        "tailcast_file_rotations_total{}",
    ] {
        assert!(
            samples.lines().any(|l| l.starts_with(expected)),
            "{expected} missing in\n{samples}"
        );
    }
}

async fn assert_error(resp: (u16, serde_json::Value), status: u16, error: &str) {
    assert_eq!(resp.0, status, "{}", resp.1);
    assert_eq!(resp.1["error"], error, "{}", resp.1);
    assert!(resp.1["detail"].is_string());
}

#[tokio::test]
async fn bad_publishes_get_clear_json_errors() {
    let server = Server::start(&[
        "--max-body",
        "1KiB",
        "--max-channels",
        "4",
        "app={dir}/app.log",
    ]);
    let url = |p: &str| server.url(p);
    assert_error(
        post(&url("/channels/-bad"), "text/plain", "x").await,
        400,
        "invalid channel name",
    )
    .await;
    assert_error(
        post(
            &url(&format!("/channels/{}", "a".repeat(129))),
            "text/plain",
            "x",
        )
        .await,
        400,
        "invalid channel name",
    )
    .await;
    assert_error(
        post(&url("/channels/a%20b"), "text/plain", "x").await,
        400,
        "invalid channel name",
    )
    .await;
    assert_error(
        post(&url("/channels/ok?event=a%0Ab"), "text/plain", "x").await,
        400,
        "invalid event type",
    )
    .await;
    assert_error(
        post(&url("/channels/ok?event=a%00b"), "text/plain", "x").await,
        400,
        "invalid event type",
    )
    .await;
    let long = "e".repeat(65);
    assert_error(
        post(
            &url(&format!("/channels/ok?event={long}")),
            "text/plain",
            "x",
        )
        .await,
        400,
        "invalid event type",
    )
    .await;
    assert_error(
        post(
            &url("/channels/ok"),
            "application/json",
            r#"{"event": "a\rb", "data": "x"}"#,
        )
        .await,
        400,
        "invalid event type",
    )
    .await;
    assert_error(
        post(&url("/channels/ok"), "application/json", "{not json").await,
        400,
        "invalid JSON",
    )
    .await;
    assert_error(
        post(
            &url("/channels/ok"),
            "application/json",
            r#"{"event": "x"}"#,
        )
        .await,
        400,
        "invalid JSON",
    )
    .await;
    assert_error(
        post(&url("/channels/ok"), "text/plain", vec![0x66u8, 0xff, 0xfe]).await,
        400,
        "invalid UTF-8",
    )
    .await;
    assert_error(
        post(&url("/channels/ok"), "text/plain", "x".repeat(2048)).await,
        413,
        "body too large",
    )
    .await;
    assert_error(
        post(&url("/channels/log:app"), "text/plain", "x").await,
        403,
        "read-only channel",
    )
    .await;
    assert_error(
        post(&url("/api/broadcast"), "application/json", "[1, 2]").await,
        400,
        "invalid JSON",
    )
    .await;
    assert_error(
        post(&url("/api/broadcast"), "application/json", "nope").await,
        400,
        "invalid JSON",
    )
    .await;
    // Wrong methods.
    let resp = client().get(url("/channels/ok")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let json: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(json["error"], "method not allowed");
    assert_error(
        post(&url("/health"), "text/plain", "x").await,
        405,
        "method not allowed",
    )
    .await;
    // Subscribing with bad names.
    let (status, _) = get(&url("/realtime/bad%20name")).await;
    assert_eq!(status, 400);
    let (status, _) = get(&url("/events")).await;
    assert_eq!(status, 400);
    let (status, _) = get(&url("/events?channel=log:nope")).await;
    assert_eq!(status, 404);
    // Nothing of the refused input reached the channel: the first event it
    // holds is the one accepted now.
    let mut sse = Sse::connect(&url("/realtime/ok?tail=100")).await;
    post(&url("/channels/ok"), "text/plain", "accepted").await;
    assert_eq!(events_until(&mut sse, "accepted").await, []);
    // --max-channels bounds how many exist (log:app, broadcast, ok and one more).
    let mut status = 200;
    for i in 0..5 {
        let (s, body) = post(&url(&format!("/channels/c{i}")), "text/plain", "x").await;
        if s != 200 {
            assert_eq!(body["error"], "too many channels");
            status = s;
            break;
        }
    }
    assert_eq!(status, 503);
}

#[tokio::test]
async fn channels_with_no_subscribers_and_no_history_are_dropped() {
    let server = Server::start(&["{dir}/app.log"]);
    let sse = Sse::connect(&server.url("/realtime/passing")).await;
    assert!(stream_info(&server, "passing").await.is_some());
    drop(sse);
    eventually("channel dropped", || async {
        stream_info(&server, "passing")
            .await
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn grep_on_multiplexed_events_filters_every_channel_but_broadcast() {
    let server = Server::start(&["{dir}/app.log"]);
    let mut sse = Sse::connect(&server.url("/events?channel=a&channel=b&grep=keep")).await;
    post(&server.url("/channels/a"), "text/plain", "drop me").await;
    post(&server.url("/channels/b"), "text/plain", "keep b").await;
    post(
        &server.url("/api/broadcast"),
        "application/json",
        r#"{"message": "to all"}"#,
    )
    .await;
    post(&server.url("/channels/a"), "text/plain", "keep a").await;
    let events = sse.events(3).await;
    assert_eq!(events[0].json()["data"], "keep b");
    assert_eq!(events[1].event_type(), "broadcast");
    assert_eq!(events[2].json()["data"], "keep a");
}
