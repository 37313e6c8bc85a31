//! Third-party SSE clients against a real `tailcast serve`: the npm
//! `eventsource` package, Python's httpx-sse, and `tailcast listen` itself
//! consume `/realtime/{channel}`; a proxy between them and the server cuts
//! the connection and refuses reconnection while more events are
//! published; each client must come back with `Last-Event-ID` and end with
//! every event exactly once, in order, and nothing else. The npm and
//! Python clients need `bash .ci/interop.sh` (built with
//! `TAILCAST_SKIP_INTEROP=1` those tests are ignored).

mod client_support;
mod common;

use std::net::SocketAddr;

use client_support::*;
use tokio::process::Command;

/// The data of event `i`: some multi-line, some with a custom type.
fn event(i: usize) -> (Option<&'static str>, String) {
    let event_type = (i % 5 == 0).then_some("tick");
    let data = if i % 7 == 0 {
        format!("{i}\nline two of {i}")
    } else {
        i.to_string()
    };
    (event_type, data)
}

/// Publishes events `range` to `channel`, returning their ids.
async fn publish(
    server: &common::Server,
    channel: &str,
    range: std::ops::RangeInclusive<usize>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in range {
        let (event_type, data) = event(i);
        let url = match event_type {
            Some(t) => server.url(&format!("/channels/{channel}?event={t}")),
            None => server.url(&format!("/channels/{channel}")),
        };
        let (status, body) = common::post(&url, "text/plain", data).await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Waits until `channel` has `n` subscribers.
async fn wait_subscribers(server: &common::Server, channel: &str, n: u64) {
    poll(&format!("{n} subscriber(s) on {channel}"), || async {
        common::stream_info(server, channel)
            .await
            .filter(|s| s["subscribers"].as_u64() == Some(n))
            .map(drop)
    })
    .await
}

/// The scenario shared by every client: 1–50 live, connection cut and
/// reconnection refused while 51–100 are published, then 101–150 live.
async fn resumes_without_gap_or_duplicate(channel: &str, client: impl FnOnce(String) -> Command) {
    let server = common::Server::start(&["--retry", "100", "{dir}/app.log"]);
    let upstream: SocketAddr = server.addr.parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let mut proc = Proc::spawn(client(proxy.url(&format!("/realtime/{channel}"))));
    wait_subscribers(&server, channel, 1).await;

    let mut ids = publish(&server, channel, 1..=50).await;
    let mut got = read_events(&mut proc, 50).await;

    // While the client cannot reconnect, 51–100 are published: it can only
    // get them by resuming. 101–150 follow once it may connect again (live
    // or from history, depending on how fast it is back).
    proxy.cut(true);
    ids.extend(publish(&server, channel, 51..=100).await);
    proxy.accept_again();
    ids.extend(publish(&server, channel, 101..=150).await);
    got.extend(read_events(&mut proc, 100).await);

    let expected: Vec<Printed> = (1..=150)
        .map(|i| {
            let (event_type, data) = event(i);
            Printed {
                id: Some(ids[i - 1].clone()),
                event_type: event_type.unwrap_or("message").to_string(),
                data,
            }
        })
        .collect();
    for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(
            got,
            want,
            "event {} differs; all output: {:#?}",
            i + 1,
            proc.seen
        );
    }
    assert_eq!(got.len(), expected.len());
    // Nothing extra or repeated after the 150th: the next event the client
    // prints is one published now.
    let end = publish(&server, channel, 151..=151).await;
    let next = read_events(&mut proc, 1).await.remove(0);
    assert_eq!(
        (next.id.as_deref(), next.data.as_str()),
        (Some(end[0].as_str()), "151"),
        "an event after the 150th that was not published; all output: {:#?}",
        proc.seen
    );

    let heads = proxy.heads();
    let header = format!("last-event-id: {}", ids[49].to_ascii_lowercase());
    assert!(
        !heads[0].contains("last-event-id"),
        "first request must not resume: {:?}",
        heads[0]
    );
    let resumed = heads.last().unwrap();
    assert!(
        resumed.contains(&header),
        "the last reconnection must send {header:?}: {resumed:?}"
    );
}

#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs the tools of .ci/interop.sh"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_eventsource_resumes_from_tailcast_without_gap_or_duplicate() {
    require_interop();
    resumes_without_gap_or_duplicate("interop-node", |url| {
        let mut cmd = Command::new("node");
        cmd.arg(interop_dir().join("eventsource_client.mjs"))
            .arg(url)
            .arg("message,tick");
        cmd
    })
    .await;
}

#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs the tools of .ci/interop.sh"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpx_sse_resumes_from_tailcast_without_gap_or_duplicate() {
    require_interop();
    resumes_without_gap_or_duplicate("interop-httpx", |url| {
        let mut cmd = Command::new(python());
        cmd.arg(interop_dir().join("httpx_sse_client.py")).arg(url);
        cmd
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailcast_listen_resumes_from_tailcast_without_gap_or_duplicate() {
    resumes_without_gap_or_duplicate("interop-listen", |url| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tailcast"));
        cmd.args([
            "listen",
            "--json",
            "--retry",
            "100ms",
            "--max-backoff",
            "400ms",
            &url,
        ]);
        cmd
    })
    .await;
}
