//! The hub's limits against the real `tailcast serve` binary over real
//! HTTP: refused subscriptions leave nothing behind, one-off channels
//! expire (`--history-ttl`) instead of filling `--max-channels`, retained
//! history is bounded in bytes (`--history-bytes`), and glob-matched log
//! streams whose file is gone are forgotten (`--forget-after`).

mod common;

use common::{append, client, eventually, get, post, stream_info, Server, Sse};

/// `/api/streams` as JSON values.
async fn streams(server: &Server) -> Vec<serde_json::Value> {
    let (status, body) = get(&server.url("/api/streams")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn health(server: &Server) -> serde_json::Value {
    let (status, body) = get(&server.url("/health")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Publishes `data` to channel `name`; returns the status and answer.
async fn publish(
    server: &Server,
    name: &str,
    data: impl Into<reqwest::Body>,
) -> (u16, serde_json::Value) {
    post(
        &server.url(&format!("/channels/{name}")),
        "text/plain",
        data,
    )
    .await
}

/// Publishes to fresh channels `{prefix}0`, `{prefix}1`, ... until the
/// server refuses with 503 (`--max-channels` reached); returns how many
/// were created.
async fn fill_channels(server: &Server, prefix: &str) -> usize {
    for i in 0..100 {
        let (status, body) = publish(server, &format!("{prefix}{i}"), "x").await;
        match status {
            200 => {}
            503 => {
                assert_eq!(body["error"], "too many channels", "{body}");
                return i;
            }
            other => panic!("publish answered {other}: {body}"),
        }
    }
    panic!("--max-channels was never reached");
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[tokio::test]
async fn refused_events_requests_leave_no_phantom_subscribers() {
    let server = Server::start(&["--max-channels", "5", "{dir}/app.log"]);
    let mut held = Sse::connect(&server.url("/realtime/c1")).await;
    assert_eq!(held.status, 200);
    fill_channels(&server, "fill").await;
    for i in 0..200 {
        let url = server.url(&format!("/events?channel=c1&channel=new{i}"));
        let resp = client()
            .get(&url)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 503, "request {i}");
    }
    let c1 = stream_info(&server, "c1").await.expect("c1 listed");
    assert_eq!(c1["subscribers"], 1, "phantom subscribers: {c1}");
    let names: Vec<String> = streams(&server)
        .await
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("new")),
        "refused requests created channels: {names:?}"
    );
    // The held stream still works, and leaving it frees c1.
    publish(&server, "c1", "still here").await;
    assert_eq!(held.next_event().await.data(), "still here");
    drop(held);
    eventually("c1 without subscribers", || async {
        match stream_info(&server, "c1").await {
            None => Some(()),
            Some(c1) => (c1["subscribers"] == 0).then_some(()),
        }
    })
    .await;
}

#[tokio::test]
async fn one_off_channels_expire_and_free_their_slots_for_new_ones() {
    let server = Server::start(&[
        "--history-ttl",
        "1s",
        "--max-channels",
        "8",
        "{dir}/app.log",
    ]);
    append(&server.path("app.log"), "an old line\n");
    common::wait_following(&server, "log:app.log").await;
    let (status, _) = post(
        &server.url("/api/broadcast"),
        "application/json",
        r#"{"m":1}"#,
    )
    .await;
    assert_eq!(status, 200);
    let created = fill_channels(&server, "once").await;
    assert!(created >= 3, "only {created} channels created");
    // Refused now; accepted again once the one-off channels have expired.
    let (status, _) = publish(&server, "newcomer", "x").await;
    assert_eq!(status, 503);
    eventually("a slot for a new channel", || async {
        (publish(&server, "newcomer", "x").await.0 == 200).then_some(())
    })
    .await;
    eventually("the one-off channels dropped", || async {
        let list = streams(&server).await;
        (!list
            .iter()
            .any(|s| s["name"].as_str().unwrap().starts_with("once")))
        .then_some(())
    })
    .await;
    // Log streams and broadcast stay, their old events gone.
    eventually("old lines and broadcasts expired", || async {
        let log = stream_info(&server, "log:app.log").await?;
        let broadcast = stream_info(&server, "broadcast").await?;
        (log["retained"] == 0 && broadcast["retained"] == 0).then_some(())
    })
    .await;
    assert_eq!(
        stream_info(&server, "log:app.log").await.unwrap()["state"],
        "following"
    );
}

#[tokio::test]
async fn retained_history_is_bounded_in_bytes_oldest_first() {
    let server = Server::start(&["--history-bytes", "1MiB", "{dir}/app.log"]);
    let body = "x".repeat(100_000);
    let before = rss_kib(server.child.id());
    let mut first_id = None;
    for i in 0..400 {
        let (status, answer) = publish(&server, &format!("big{}", i / 100), body.clone()).await;
        assert_eq!(status, 200, "{answer}");
        first_id.get_or_insert(answer["id"].as_str().unwrap().to_string());
    }
    let health = health(&server).await;
    let bytes = health["history_bytes"].as_u64().unwrap();
    assert!(bytes <= 1 << 20, "{health}");
    assert!(bytes >= 800_000, "the budget is used: {health}");
    let listed: Vec<serde_json::Value> = streams(&server).await;
    let retained_bytes: u64 = listed
        .iter()
        .map(|s| s["retained_bytes"].as_u64().unwrap())
        .sum();
    assert!(retained_bytes <= 1 << 20, "{listed:?}");
    // The newest events are the ones kept.
    let newest = listed.iter().find(|s| s["name"] == "big3").unwrap();
    assert!(newest["retained"].as_u64().unwrap() >= 8, "{newest}");
    for old in ["big0", "big1", "big2"] {
        if let Some(info) = listed.iter().find(|s| s["name"] == old) {
            assert_eq!(info["retained"], 0, "{info}");
        }
    }
    // 40 MB went through; the server kept about 1 MiB of it.
    let grown_mib = rss_kib(server.child.id()).saturating_sub(before) / 1024;
    eprintln!("40 MB published, history {bytes} bytes, RSS grew by {grown_mib} MiB");
    assert!(grown_mib < 16, "RSS grew by {grown_mib} MiB");
    // A resume from an evicted event is told so.
    let mut resumed = Sse::connect_with(
        &server.url("/realtime/big0"),
        &[("last-event-id", first_id.as_deref().unwrap())],
    )
    .await;
    let reset = resumed.next_event().await;
    assert_eq!(reset.event_type(), "reset");
    assert_eq!(reset.json()["reason"], "too old");
}

#[tokio::test]
async fn glob_matches_whose_file_is_gone_are_forgotten_once_unsubscribed() {
    let server = Server::start(&["--forget-after", "300ms", "{dir}/*.log"]);
    let path = server.path("a.log");
    append(&path, "first\n");
    // b.log: the same fate without a subscriber, the sentinel that shows
    // the forgetting has run past --forget-after.
    let sentinel = server.path("b.log");
    append(&sentinel, "second\n");
    common::wait_following(&server, "log:a.log").await;
    common::wait_following(&server, "log:b.log").await;
    let mut reader = Sse::connect(&server.url("/logs/a.log?tail=1")).await;
    assert_eq!(reader.next_event().await.data(), "first");
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&sentinel).unwrap();
    eventually("a.log waiting for its file", || async {
        let info = stream_info(&server, "log:a.log").await?;
        (info["state"] == "waiting").then_some(())
    })
    .await;
    eventually("b.log (unsubscribed) forgotten", || async {
        stream_info(&server, "log:b.log")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    // Gone as long as b.log, but subscribed: kept.
    assert!(stream_info(&server, "log:a.log").await.is_some());
    drop(reader);
    eventually("a.log forgotten", || async {
        stream_info(&server, "log:a.log")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let health = health(&server).await;
    assert_eq!(
        health["history_events"], 0,
        "its history went too: {health}"
    );
    let (status, _) = get(&server.url("/logs/a.log")).await;
    assert_eq!(status, 404);
    // The file comes back: a new stream, under the same name.
    append(&path, "second\n");
    common::wait_following(&server, "log:a.log").await;
    let mut again = Sse::connect(&server.url("/logs/a.log?tail=5")).await;
    assert_eq!(again.next_event().await.data(), "second");
}
