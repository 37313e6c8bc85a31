//! Delivery of notifications to webhooks: one bounded outbox and one
//! delivery task per rule, retries with exponential backoff.
//!
//! Each rule has its own `Outbox` (at most `OUTBOX_CAPACITY`
//! notifications; when full the oldest is dropped and counted), so a
//! webhook that hangs or is down delays only its own rule's notifications.
//! Its task sends them in order, one at a time, each with the rule's
//! timeout, and retries a connect error, a timeout, a `5xx` or a `429` up
//! to `MAX_ATTEMPTS` times with exponential backoff (honouring a
//! `Retry-After` of at most a minute); any other answer that is not `2xx`
//! is final. Delivery is so at least once: a request that timed out may
//! have arrived, and is sent again. What is pending when the server stops
//! is lost.
//!
//! Webhook URLs hold secrets (Slack's path, tokens in queries): only
//! [`super::rules::Target::redacted`] is ever logged, and `reqwest` errors
//! are logged without their URL.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::rules::{Format, Target};
use crate::metrics::Metrics;

/// Most notifications waiting per rule; when full, the oldest is dropped
/// (and counted in `tailcast_alerts_dropped_total{reason="outbox_full"}`).
pub(crate) const OUTBOX_CAPACITY: usize = 256;

/// Most bytes of notification bodies waiting per rule (oldest dropped
/// first, as for [`OUTBOX_CAPACITY`]). A body carries at most 4 KiB of
/// line, escaped.
pub(crate) const OUTBOX_BYTES: usize = 1 << 20;

/// Most bytes of notification bodies waiting in all outboxes together;
/// past it a rule drops its own oldest, or, with none, the new one.
pub(crate) const ALL_OUTBOXES_BYTES: usize = 64 << 20;

/// Tries per notification, the first included.
pub(crate) const MAX_ATTEMPTS: u32 = 6;

/// Backoff before the first retry; doubled per retry up to
/// [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(250);

/// Longest backoff between two tries (a `Retry-After` may ask for up to a
/// minute).
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Longest line carried by a notification, in bytes (cut at a character
/// boundary, `…` appended).
const MAX_LINE: usize = 4096;

/// One notification, before it is rendered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Notification {
    /// The rule's name.
    pub rule: String,
    /// `match`: the first match of a window, sent at once; `summary`: the
    /// matches held back during a window, sent when it ends.
    pub kind: &'static str,
    /// Channel of the event named.
    pub channel: String,
    /// Id of the event named (for a summary: the last one held back).
    pub id: String,
    /// The event's `time` field, or when it matched (RFC 3339, UTC).
    pub time: String,
    /// The event's line (see [`super::level`]), at most 4 KiB.
    pub line: String,
    /// The event's level, as it gave it, if any.
    pub level: Option<String>,
    /// Matches this notification stands for: 1 for a `match`, the number
    /// held back for a `summary`.
    pub count: u64,
    /// The rule's window, e.g. `1m`.
    pub window: String,
}

impl Notification {
    /// Cuts `line` to 4 KiB (at a character boundary, `…` appended).
    pub(crate) fn cut(line: &str) -> String {
        if line.len() <= MAX_LINE {
            return line.to_string();
        }
        let mut end = MAX_LINE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &line[..end])
    }

    /// The request body in `format`.
    pub(crate) fn render(&self, format: Format) -> Bytes {
        match format {
            Format::Json => serde_json::to_vec(self).expect("plain data").into(),
            Format::Slack => {
                let headline = match self.kind {
                    "summary" => format!(
                        "tailcast alert *{}*: {} more {} in the last {}; the latest on `{}` (id {}){}:",
                        slack_escape(&self.rule),
                        self.count,
                        if self.count == 1 { "match" } else { "matches" },
                        self.window,
                        slack_escape(&self.channel),
                        slack_escape(&self.id),
                        self.level_text(),
                    ),
                    _ => format!(
                        "tailcast alert *{}* on `{}` (id {}){}:",
                        slack_escape(&self.rule),
                        slack_escape(&self.channel),
                        slack_escape(&self.id),
                        self.level_text(),
                    ),
                };
                let quoted = format!("```{}```", slack_escape(&self.line).replace("```", "'''"));
                let text = format!("{headline}\n{quoted}");
                let body = serde_json::json!({
                    "text": text,
                    "blocks": [
                        {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
                        {"type": "section", "text": {"type": "mrkdwn", "text": quoted}},
                        {"type": "context", "elements": [
                            {"type": "mrkdwn", "text": format!("{} · window {}", slack_escape(&self.time), self.window)}
                        ]}
                    ]
                });
                serde_json::to_vec(&body).expect("plain data").into()
            }
        }
    }

    fn level_text(&self) -> String {
        self.level
            .as_deref()
            .map(|l| format!(", level {}", slack_escape(l)))
            .unwrap_or_default()
    }
}

/// Slack's three control characters in text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// When a rule last fired.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Firing {
    /// When (RFC 3339, UTC).
    pub time: String,
    /// The event's channel.
    pub channel: String,
    /// The event's id.
    pub id: String,
}

/// A rule's counts, kept across reloads that keep the rule's name.
#[derive(Debug, Default)]
pub(crate) struct RuleStats {
    /// Events that matched.
    pub matched: AtomicU64,
    /// Notifications made (a `match` or a `summary`).
    pub fired: AtomicU64,
    /// Notifications the webhook accepted.
    pub sent: AtomicU64,
    /// Notifications given up on (a final refusal, or every try failed).
    pub failed: AtomicU64,
    /// Notifications dropped from a full outbox.
    pub dropped: AtomicU64,
    /// The last notification made (std mutex: never held across an
    /// `.await`).
    pub last: Mutex<Option<Firing>>,
}

/// A rendered notification waiting for delivery.
pub(crate) struct Pending {
    /// The request body.
    pub body: Bytes,
    /// Where it goes (the rule's target when it was made).
    pub target: Arc<Target>,
}

/// One rule's queue of notifications (see the module docs), bounded in
/// count and bytes, its own and all outboxes' together.
pub(crate) struct Outbox {
    /// Oldest first, and the bytes of their bodies (std mutex: never held
    /// across an `.await`).
    queue: Mutex<(VecDeque<Pending>, usize)>,
    /// Bytes waiting in all outboxes (shared by every rule's).
    all: Arc<AtomicUsize>,
    /// Woken on push and close.
    ready: tokio::sync::Notify,
    /// No more pushes: the task ends once the queue is empty.
    closed: AtomicBool,
}

impl Outbox {
    /// An empty outbox counting its bytes in `all`, the figure every
    /// outbox shares.
    pub(crate) fn new(all: Arc<AtomicUsize>) -> Outbox {
        Outbox {
            queue: Mutex::default(),
            all,
            ready: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Queues `pending`, dropping the oldest to make room (see
    /// [`OUTBOX_CAPACITY`], [`OUTBOX_BYTES`], [`ALL_OUTBOXES_BYTES`]);
    /// returns how many were dropped (the new one included, when even an
    /// empty outbox has no room for it).
    pub(crate) fn push(&self, pending: Pending) -> u64 {
        let size = pending.body.len();
        let mut dropped = 0;
        {
            let mut guard = self.queue.lock().expect("outbox lock");
            let (queue, bytes) = &mut *guard;
            let full = |queue: &VecDeque<Pending>, bytes: usize| {
                queue.len() >= OUTBOX_CAPACITY
                    || bytes + size > OUTBOX_BYTES
                    || self.all.load(Ordering::Acquire) + size > ALL_OUTBOXES_BYTES
            };
            while full(queue, *bytes) {
                let Some(old) = queue.pop_front() else { break };
                *bytes -= old.body.len();
                self.all.fetch_sub(old.body.len(), Ordering::AcqRel);
                dropped += 1;
            }
            if full(queue, *bytes) {
                return dropped + 1;
            }
            *bytes += size;
            self.all.fetch_add(size, Ordering::AcqRel);
            queue.push_back(pending);
        }
        self.ready.notify_one();
        dropped
    }

    /// Notifications waiting.
    pub(crate) fn len(&self) -> usize {
        self.queue.lock().expect("outbox lock").0.len()
    }

    /// Ends the outbox: its task delivers what is queued, then stops.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    pub(super) fn pop(&self) -> Option<Pending> {
        let mut guard = self.queue.lock().expect("outbox lock");
        let pending = guard.0.pop_front()?;
        guard.1 -= pending.body.len();
        self.all.fetch_sub(pending.body.len(), Ordering::AcqRel);
        Some(pending)
    }
}

/// The HTTP client every delivery uses: no redirects (a webhook that
/// redirects is answered as refused: following it could send the body,
/// and headers, elsewhere).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tailcast/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Delivers `outbox` of rule `rule` until it is closed and empty, or until
/// shutdown.
pub(crate) async fn run(
    rule: Arc<str>,
    outbox: Arc<Outbox>,
    stats: Arc<RuleStats>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let Some(pending) = outbox.pop() else {
            if outbox.closed.load(Ordering::Acquire) {
                return;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = outbox.ready.notified() => {}
            }
            continue;
        };
        let delivered = tokio::select! {
            _ = shutdown.cancelled() => return,
            ok = deliver(&rule, &client, &pending) => ok,
        };
        if delivered {
            stats.sent.fetch_add(1, Ordering::Relaxed);
            metrics.alert_sent(&rule);
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            metrics.alert_failed(&rule);
        }
    }
}

/// What one try ended with.
enum Outcome {
    Sent,
    /// Worth another try, after at least this long (a `Retry-After`).
    Retry(String, Option<Duration>),
    Final(String),
}

/// Sends one notification with its retries; whether it was accepted.
async fn deliver(rule: &str, client: &reqwest::Client, pending: &Pending) -> bool {
    let target = &pending.target;
    let mut backoff = BACKOFF_MIN;
    let mut attempt = 1;
    loop {
        let (why, after) = match attempt_once(client, pending).await {
            Outcome::Sent => return true,
            Outcome::Final(why) => {
                tracing::error!(
                    "alert rule {rule:?}: webhook {} refused the notification: {why}; not retried",
                    target.redacted()
                );
                return false;
            }
            Outcome::Retry(why, after) => (why, after),
        };
        if attempt == MAX_ATTEMPTS {
            tracing::error!(
                "alert rule {rule:?}: webhook {} failed {MAX_ATTEMPTS} times, giving up: {why}",
                target.redacted()
            );
            return false;
        }
        // Up to half off the backoff, so that rules sharing a webhook do
        // not retry in step; a Retry-After is a floor.
        let jittered = backoff.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        let wait = after
            .map_or(jittered, |a| a.max(jittered))
            .min(Duration::from_secs(60));
        tracing::warn!(
            "alert rule {rule:?}: webhook {} failed (try {attempt} of {MAX_ATTEMPTS}): {why}; \
             retrying in {}",
            target.redacted(),
            humantime::format_duration(Duration::from_millis(wait.as_millis() as u64))
        );
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        attempt += 1;
    }
}

async fn attempt_once(client: &reqwest::Client, pending: &Pending) -> Outcome {
    let target = &pending.target;
    let mut request = client
        .post(target.url.clone())
        .timeout(target.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(pending.body.clone());
    for (name, value) in &target.headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                return Outcome::Sent;
            }
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                Outcome::Retry(format!("answered {status}"), after)
            } else {
                Outcome::Final(format!("answered {status}"))
            }
        }
        Err(e) => Outcome::Retry(describe(&e, target.timeout), None),
    }
}

/// A `reqwest` error without its URL (which may hold a secret).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", humantime::format_duration(timeout));
    }
    let mut text = if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut last = String::new();
    while let Some(s) = source {
        let s_text = s.to_string();
        if s_text != last && !s_text.contains("://") {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        last = s_text;
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(kind: &'static str, count: u64) -> Notification {
        Notification {
            rule: "errors".into(),
            kind,
            channel: "log:app".into(),
            id: "abc-7".into(),
            time: "2026-12-07T06:00:00Z".into(),
            line: "ERROR <boom> & more".into(),
            level: Some("ERROR".into()),
            count,
            window: "1m".into(),
        }
    }

    #[test]
    fn json_body_names_everything() {
        let body: serde_json::Value =
            serde_json::from_slice(&note("match", 1).render(Format::Json)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"rule":"errors","kind":"match","channel":"log:app","id":"abc-7",
                "time":"2026-12-07T06:00:00Z","line":"ERROR <boom> & more","level":"ERROR",
                "count":1,"window":"1m"})
        );
    }

    #[test]
    fn slack_body_has_text_and_blocks_escaped() {
        let body: serde_json::Value =
            serde_json::from_slice(&note("summary", 5).render(Format::Slack)).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("5 more matches in the last 1m"), "{text}");
        assert!(text.contains("&lt;boom&gt; &amp; more"), "{text}");
        assert_eq!(body["blocks"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn long_lines_are_cut_at_a_character() {
        let line = "é".repeat(MAX_LINE);
        let cut = Notification::cut(&line);
        assert!(cut.len() <= MAX_LINE + "…".len() && cut.ends_with('…'));
    }

    fn pending(body: Vec<u8>) -> Pending {
        Pending {
            body: body.into(),
            target: Arc::new(Target {
                url: "http://h/".parse().unwrap(),
                headers: vec![],
                timeout: Duration::from_secs(1),
            }),
        }
    }

    #[test]
    fn a_full_outbox_drops_the_oldest() {
        let all = Arc::new(AtomicUsize::new(0));
        let outbox = Outbox::new(all.clone());
        for i in 0..OUTBOX_CAPACITY {
            assert_eq!(outbox.push(pending(i.to_string().into_bytes())), 0);
        }
        assert_eq!(outbox.push(pending(b"new".to_vec())), 1);
        assert_eq!(outbox.len(), OUTBOX_CAPACITY);
        assert_eq!(&outbox.pop().unwrap().body[..], b"1");
        while outbox.pop().is_some() {}
        assert_eq!(all.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn outboxes_are_bounded_in_bytes_each_and_together() {
        let all = Arc::new(AtomicUsize::new(0));
        let one = Outbox::new(all.clone());
        let body = || vec![b'x'; 300 * 1024];
        assert_eq!(one.push(pending(body())), 0);
        assert_eq!(one.push(pending(body())), 0);
        assert_eq!(one.push(pending(body())), 0);
        // A fourth would pass 1 MiB: the oldest goes.
        assert_eq!(one.push(pending(body())), 1);
        assert_eq!((one.len(), all.load(Ordering::Relaxed)), (3, 900 * 1024));
        // All outboxes together: another rule's push finds no room left
        // and, having nothing of its own to drop, drops the new one.
        all.store(ALL_OUTBOXES_BYTES, Ordering::Relaxed);
        let other = Outbox::new(all.clone());
        assert_eq!(other.push(pending(b"x".to_vec())), 1);
        assert_eq!(other.len(), 0);
    }
}
