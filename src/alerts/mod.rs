//! Alerts (`--alerts FILE`): rules that watch channels for matching
//! events and call webhooks.
//!
//! Off the publish path by construction: the hub hands every event this
//! process commits (a [`CommitTap`]) to `AlertSink`, which only tries to
//! queue the shared events (no copy) on a bounded channel and counts what
//! does not fit (`tailcast_alerts_dropped_total{reason="queue_full"}`); it
//! never waits. One task (started by [`start`]) reads that queue, matches
//! each event against the rules (channel patterns, level, regex: see
//! [`rules`] and [`level`]), applies each rule's window and hands
//! notifications to the rule's outbox, which its own task delivers
//! ([`webhook`]). Without `--alerts` there is no tap, and the hub does no
//! alert work at all.
//!
//! Windows: the first match of a rule sends at once and opens a window;
//! further matches in the window are held back and counted; when the
//! window ends with held-back matches, one `summary` notification names
//! their number and the last of them (and opens the next window). So a
//! rule sends at most one notification per window, and no count is lost.
//!
//! With `--redis` the node that publishes an event alerts on it; events
//! that reach a node through Redis from other nodes are not tapped. Each
//! event is so alerted on once in the cluster (log streams are published
//! by the one node that holds their claim).
//!
//! SIGHUP re-reads the file: a good file replaces the rules
//! (a rule that keeps its name keeps its counts, window and outbox); a bad
//! one is logged and the rules in use stay.

pub mod level;
pub mod rules;
pub mod webhook;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hub::{CommitTap, StoredEvent};
use crate::metrics::Metrics;
use rules::{Rule, RulesError};
use webhook::{Firing, Notification, Outbox, Pending, RuleStats};

/// Most batches of committed events waiting for the alert task.
pub(crate) const QUEUE_BATCHES: usize = 4096;

/// Most bytes of committed events (frames) waiting for the alert task:
/// events are shared with the hub, but one held here outlives its
/// eviction from the history, so the queue is bounded in bytes too.
pub(crate) const QUEUE_BYTES: usize = 32 << 20;

/// Events matched between two yields of the alert task.
const MATCH_SLICE: usize = 256;

/// How often the alert task takes what the hub queued. The hub never wakes
/// it: a wake-up per publish (a futex call to unpark the task's thread)
/// cost the publisher about 2 µs, twice its commit; a timer costs 50
/// wake-ups a second whatever the rate, and an alert at most 20 ms.
const DRAIN_EVERY: Duration = Duration::from_millis(20);

/// What one queued event is counted as besides its frame.
const EVENT_OVERHEAD: usize = 64;

/// Event types never alerted on: the protocol's own signals (`reset`,
/// `token-expired`; the server makes them per connection, they should
/// never reach the hub) and the demo stream's `heartbeat`. Broadcasts
/// (`broadcast`) are alerted on like any event.
fn is_internal(event_type: &str) -> bool {
    matches!(event_type, "reset" | "token-expired" | "heartbeat")
}

/// The queue between the hub and the alert task, as the hub sees it.
pub(crate) struct AlertSink {
    shared: Arc<QueueState>,
    metrics: Arc<Metrics>,
}

/// The event queue: filled by the hub, emptied by the alert task every
/// [`DRAIN_EVERY`].
#[derive(Default)]
struct QueueState {
    /// Batches of committed events, oldest first, and their bytes (std
    /// mutex: held for a push or a swap, never across an `.await`).
    pending: Mutex<Queued>,
    /// Events dropped for a full queue.
    dropped: AtomicU64,
}

/// What waits in the queue.
#[derive(Default)]
struct Queued {
    batches: Vec<Vec<Arc<StoredEvent>>>,
    bytes: usize,
}

impl QueueState {
    /// Takes everything queued.
    fn take(&self) -> Vec<Vec<Arc<StoredEvent>>> {
        let mut queued = self.pending.lock().expect("alert queue lock");
        queued.bytes = 0;
        std::mem::take(&mut queued.batches)
    }
}

impl CommitTap for AlertSink {
    fn committed(&self, events: Vec<Arc<StoredEvent>>) {
        let bytes: usize = events.iter().map(|e| e.frame.len() + EVENT_OVERHEAD).sum();
        let count = events.len() as u64;
        {
            let mut queued = self.shared.pending.lock().expect("alert queue lock");
            if queued.batches.len() < QUEUE_BATCHES && queued.bytes + bytes <= QUEUE_BYTES {
                queued.bytes += bytes;
                queued.batches.push(events);
                return;
            }
        }
        self.shared.dropped.fetch_add(count, Ordering::Relaxed);
        self.metrics.alerts_dropped("queue_full", count);
    }
}

/// One loaded rule and what it keeps.
struct Active {
    rule: Rule,
    stats: Arc<RuleStats>,
    outbox: Arc<Outbox>,
    window: Window,
}

/// A rule's window (see the module docs).
#[derive(Default)]
struct Window {
    /// When the current window opened; none when no window is open.
    opened: Option<Instant>,
    /// Matches held back in it.
    held: u64,
    /// The last of them.
    latest: Option<Notification>,
}

/// The alerting state shared with `GET /api/alerts`. Cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The rules in use (std mutex: held while one batch is matched,
    /// never across an `.await`).
    rules: Mutex<Vec<Active>>,
    queue: Arc<QueueState>,
    metrics: Arc<Metrics>,
    /// The last reload: when, and the error if it was refused.
    reload: Mutex<Option<(String, Option<String>)>>,
    client: reqwest::Client,
    /// Bytes waiting in all outboxes (see [`webhook::ALL_OUTBOXES_BYTES`]).
    outbox_bytes: Arc<AtomicUsize>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

/// Loads `path` and starts alerting: the alert task and one delivery task
/// per rule on `tracker`, until `shutdown`; SIGHUP reloads the file.
/// Returns the state for `/api/alerts` and the tap to give the hub.
///
/// # Errors
/// The file is missing or wrong ([`RulesError`], one line).
pub fn start(
    path: PathBuf,
    metrics: Arc<Metrics>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<(Alerts, Arc<dyn CommitTap>), RulesError> {
    let loaded = rules::load(&path)?;
    let queue = Arc::new(QueueState::default());
    let inner = Arc::new(Inner {
        path,
        rules: Mutex::new(Vec::new()),
        queue: queue.clone(),
        metrics: metrics.clone(),
        reload: Mutex::new(None),
        client: webhook::client(),
        outbox_bytes: Arc::default(),
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
    });
    let alerts = Alerts { inner };
    alerts.install(loaded);
    tracing::info!(
        "alerts: {} rules loaded from {}",
        alerts.rule_count(),
        alerts.inner.path.display()
    );
    // Both drop reasons are exported from the start, at zero.
    metrics.alerts_dropped("queue_full", 0);
    metrics.alerts_dropped("outbox_full", 0);
    let hangup = hangup_listener();
    tracker.spawn(alerts.clone().run(hangup));
    let sink = AlertSink {
        shared: queue,
        metrics,
    };
    Ok((alerts, Arc::new(sink)))
}

#[cfg(unix)]
type Hangup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangup = ();

/// A SIGHUP listener of its own (tokio lets several listen: the TLS
/// reloader has another).
#[cfg(unix)]
fn hangup_listener() -> Option<Hangup> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("alerts: cannot handle SIGHUP, the rules file will not be re-read: {e}");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_listener() -> Option<Hangup> {
    None
}

#[cfg(unix)]
async fn hung_up(hangup: &mut Option<Hangup>) {
    match hangup {
        Some(s) => {
            if s.recv().await.is_none() {
                *hangup = None;
            }
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn hung_up(_: &mut Option<Hangup>) {
    std::future::pending().await
}

impl Alerts {
    fn rule_count(&self) -> usize {
        self.inner.rules.lock().expect("rules lock").len()
    }

    /// The alert task: matches queued events, ends windows, reloads on
    /// SIGHUP, until shutdown.
    async fn run(self, mut hangup: Option<Hangup>) {
        let shutdown = self.inner.shutdown.clone();
        let mut drain = tokio::time::interval(DRAIN_EVERY);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = drain.tick() => {
                    // A large batch (an ingest request) is matched in
                    // slices, letting the runtime's other tasks run between
                    // them.
                    for batch in self.inner.queue.take() {
                        for slice in batch.chunks(MATCH_SLICE) {
                            self.process(slice);
                            tokio::task::yield_now().await;
                        }
                    }
                }
                _ = sleep_until(deadline) => self.end_windows(Instant::now()),
                _ = hung_up(&mut hangup) => self.reload(),
            }
        }
    }

    /// Matches one batch of events against every rule.
    fn process(&self, batch: &[Arc<StoredEvent>]) {
        let now = Instant::now();
        let mut rules = self.inner.rules.lock().expect("rules lock");
        for event in batch {
            let event_type = event.event_type();
            if is_internal(event_type) {
                continue;
            }
            let channel: &str = &event.channel;
            if !rules.iter().any(|a| a.rule.watches(channel)) {
                continue;
            }
            let data = event.data();
            let reading = level::detect(&data);
            for active in rules.iter_mut() {
                if !active.rule.watches(channel)
                    || !active.rule.matches(&reading.line, reading.level)
                {
                    continue;
                }
                active.stats.matched.fetch_add(1, Ordering::Relaxed);
                let note = Notification {
                    rule: active.rule.name.clone(),
                    kind: "match",
                    channel: channel.to_string(),
                    id: event.id().to_string(),
                    time: reading.time.clone().unwrap_or_else(now_text),
                    line: Notification::cut(&reading.line),
                    level: reading.level_text.clone(),
                    count: 1,
                    window: window_text(active.rule.window),
                };
                self.matched(active, note, now);
            }
        }
    }

    /// Applies the window to one match.
    fn matched(&self, active: &mut Active, note: Notification, now: Instant) {
        let window = active.rule.window;
        match active.window.opened {
            Some(opened) if !window.is_zero() && now < opened + window => {
                active.window.held += 1;
                active.window.latest = Some(note);
            }
            _ => {
                // A window that ended unnoticed (the task was busy) still
                // reports what it held.
                self.flush(active);
                if !window.is_zero() {
                    active.window.opened = Some(now);
                }
                self.fire(active, note);
            }
        }
    }

    /// Sends the summary of what the rule's window held back, if anything.
    fn flush(&self, active: &mut Active) {
        let held = std::mem::take(&mut active.window.held);
        if let Some(mut latest) = active.window.latest.take() {
            if held > 0 {
                latest.kind = "summary";
                latest.count = held;
                self.fire(active, latest);
            }
        }
        active.window.opened = None;
    }

    /// Ends the windows due by `now`: a summary where matches were held
    /// back (which opens the next window), else the window closes.
    fn end_windows(&self, now: Instant) {
        let mut rules = self.inner.rules.lock().expect("rules lock");
        for active in rules.iter_mut() {
            let Some(opened) = active.window.opened else {
                continue;
            };
            if now < opened + active.rule.window {
                continue;
            }
            let held = active.window.held;
            self.flush(active);
            if held > 0 {
                active.window.opened = Some(now);
            }
        }
    }

    /// When the next window ends.
    fn next_deadline(&self) -> Option<Instant> {
        let rules = self.inner.rules.lock().expect("rules lock");
        rules
            .iter()
            .filter_map(|a| a.window.opened.map(|o| o + a.rule.window))
            .min()
    }

    /// Queues a notification for the rule's webhook.
    fn fire(&self, active: &Active, note: Notification) {
        active.stats.fired.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.alert_fired(&active.rule.name);
        *active.stats.last.lock().expect("stats lock") = Some(Firing {
            time: now_text(),
            channel: note.channel.clone(),
            id: note.id.clone(),
        });
        let pending = Pending {
            body: note.render(active.rule.format),
            target: active.rule.target.clone(),
        };
        let dropped = active.outbox.push(pending);
        if dropped > 0 {
            active.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
            self.inner.metrics.alerts_dropped("outbox_full", dropped);
        }
    }

    /// Replaces the rules by `loaded`: a rule that keeps its name keeps its
    /// counts, window and outbox; a rule that goes reports what its window
    /// held, and its outbox is delivered, then closed.
    fn install(&self, loaded: Vec<Rule>) {
        let mut rules = self.inner.rules.lock().expect("rules lock");
        let mut old: Vec<Active> = std::mem::take(&mut *rules);
        for rule in loaded {
            let active = match old.iter().position(|a| a.rule.name == rule.name) {
                Some(i) => {
                    let mut kept = old.swap_remove(i);
                    kept.rule = rule;
                    kept
                }
                None => {
                    let active = Active {
                        stats: Arc::default(),
                        outbox: Arc::new(Outbox::new(self.inner.outbox_bytes.clone())),
                        window: Window::default(),
                        rule,
                    };
                    self.inner.tracker.spawn(webhook::run(
                        active.rule.name.as_str().into(),
                        active.outbox.clone(),
                        active.stats.clone(),
                        self.inner.client.clone(),
                        self.inner.metrics.clone(),
                        self.inner.shutdown.clone(),
                    ));
                    active
                }
            };
            rules.push(active);
        }
        for mut gone in old {
            self.flush(&mut gone);
            gone.outbox.close();
        }
    }

    /// Re-reads the file (SIGHUP).
    fn reload(&self) {
        let path = &self.inner.path;
        let outcome = match rules::load(path) {
            Ok(loaded) => {
                let n = loaded.len();
                self.install(loaded);
                tracing::info!("alerts: {n} rules reloaded from {}", path.display());
                None
            }
            Err(e) => {
                tracing::error!(
                    "alerts: reload refused, keeping the {} rules in use: {e}",
                    self.rule_count()
                );
                Some(e.to_string())
            }
        };
        *self.inner.reload.lock().expect("reload lock") = Some((now_text(), outcome));
    }

    /// What `GET /api/alerts` shows: the rules (webhooks redacted, header
    /// values hidden), their last firing and counts, and the queues.
    pub fn view(&self) -> serde_json::Value {
        let rules = self.inner.rules.lock().expect("rules lock");
        let list: Vec<serde_json::Value> = rules
            .iter()
            .map(|a| {
                let r = &a.rule;
                let s = &a.stats;
                serde_json::json!({
                    "name": r.name,
                    "channels": r.channels,
                    "match": r.regex.as_ref().map(|x| x.as_str()),
                    "min_level": r.min_level.map(level::Level::as_str),
                    "webhook": r.target.redacted(),
                    "headers": r.target.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
                    "format": r.format,
                    "window": window_text(r.window),
                    "timeout": window_text(r.target.timeout),
                    "last_fired": *s.last.lock().expect("stats lock"),
                    "counts": {
                        "matched": s.matched.load(Ordering::Relaxed),
                        "fired": s.fired.load(Ordering::Relaxed),
                        "sent": s.sent.load(Ordering::Relaxed),
                        "failed": s.failed.load(Ordering::Relaxed),
                        "dropped": s.dropped.load(Ordering::Relaxed),
                    },
                    "pending": a.outbox.len(),
                    "held_in_window": a.window.held,
                })
            })
            .collect();
        let reload = self.inner.reload.lock().expect("reload lock").clone();
        let (queued_batches, queued_bytes) = {
            let queued = self.inner.queue.pending.lock().expect("alert queue lock");
            (queued.batches.len(), queued.bytes)
        };
        serde_json::json!({
            "file": self.inner.path.display().to_string(),
            "rules": list,
            "queue": {
                "batches": queued_batches,
                "max_batches": QUEUE_BATCHES,
                "bytes": queued_bytes,
                "max_bytes": QUEUE_BYTES,
                "dropped_events": self.inner.queue.dropped.load(Ordering::Relaxed),
                "outbox_bytes": self.inner.outbox_bytes.load(Ordering::Relaxed),
                "max_outbox_bytes": webhook::ALL_OUTBOXES_BYTES,
            },
            "last_reload": reload.map(|(time, error)| serde_json::json!({
                "time": time, "ok": error.is_none(), "error": error,
            })),
        })
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Now, RFC 3339 in UTC with milliseconds.
fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A duration as `1m`, `30s`, `1s 500ms`.
fn window_text(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine with `file` as its rules, no tasks started (the outboxes
    /// just fill up).
    fn engine(file: &str) -> (Alerts, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.toml");
        std::fs::write(&path, file).unwrap();
        let tracker = TaskTracker::new();
        let inner = Arc::new(Inner {
            path: path.clone(),
            rules: Mutex::new(Vec::new()),
            queue: Arc::default(),
            metrics: Arc::new(Metrics::new()),
            reload: Mutex::new(None),
            client: webhook::client(),
            outbox_bytes: Arc::default(),
            tracker,
            shutdown: CancellationToken::new(),
        });
        let alerts = Alerts { inner };
        alerts.install(rules::load(&path).unwrap());
        (alerts, dir)
    }

    fn event(seq: u64, channel: &str, data: &str) -> Arc<StoredEvent> {
        crate::hub::test_event(seq, channel, "message", data)
    }

    fn bodies(alerts: &Alerts, rule: &str) -> Vec<serde_json::Value> {
        let rules = alerts.inner.rules.lock().unwrap();
        let a = rules.iter().find(|a| a.rule.name == rule).unwrap();
        let mut out = Vec::new();
        while let Some(p) = a.outbox.pop() {
            out.push(serde_json::from_slice(&p.body).unwrap());
        }
        out
    }

    const RULES: &str = r#"
[[rule]]
name = "errors"
channels = ["log:*"]
min_level = "error"
webhook = "http://127.0.0.1:9/hook"
window = "10s"

[[rule]]
name = "panics"
channels = ["app-?"]
match = "(?i)panic"
webhook = "http://127.0.0.1:9/hook"
window = "0s"
"#;

    #[tokio::test(start_paused = true)]
    async fn the_window_sends_the_first_then_one_summary_with_the_count() {
        let (alerts, _dir) = engine(RULES);
        let e = |n, data| event(n, "log:app", data);
        alerts.process(&[e(1, "ERROR one"), e(2, "INFO fine"), e(3, "ERROR two")]);
        alerts.process(&[e(4, r#"{"level":"fatal","line":"three"}"#)]);
        let sent = bodies(&alerts, "errors");
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0]["kind"].as_str(), sent[0]["count"].as_u64()),
            (Some("match"), Some(1))
        );
        assert_eq!(sent[0]["line"], "ERROR one");
        // Nothing more until the window ends; then one summary of 2.
        tokio::time::advance(Duration::from_secs(9)).await;
        alerts.end_windows(Instant::now());
        assert!(bodies(&alerts, "errors").is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        alerts.end_windows(Instant::now());
        let sent = bodies(&alerts, "errors");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["kind"], "summary");
        assert_eq!(sent[0]["count"], 2);
        assert_eq!(sent[0]["line"], "three");
        assert_eq!(sent[0]["level"], "fatal");
        // The summary opened a window: a match in it is held.
        alerts.process(&[e(5, "ERROR four")]);
        assert!(bodies(&alerts, "errors").is_empty());
        tokio::time::advance(Duration::from_secs(10)).await;
        alerts.end_windows(Instant::now());
        assert_eq!(bodies(&alerts, "errors")[0]["count"], 1);
        // A window that held nothing just closes; the next match sends.
        tokio::time::advance(Duration::from_secs(10)).await;
        alerts.end_windows(Instant::now());
        assert_eq!(alerts.next_deadline(), None);
        alerts.process(&[e(6, "ERROR five")]);
        assert_eq!(bodies(&alerts, "errors")[0]["kind"], "match");
        let view = alerts.view();
        let counts = &view["rules"][0]["counts"];
        assert_eq!(
            (counts["matched"].as_u64(), counts["fired"].as_u64()),
            (Some(5), Some(4))
        );
    }

    #[test]
    fn the_sink_never_waits_and_counts_what_does_not_fit() {
        let metrics = Arc::new(Metrics::new());
        let sink = AlertSink {
            shared: Arc::default(),
            metrics: metrics.clone(),
        };
        // Bounded in batches: QUEUE_BATCHES fit, the rest are dropped and
        // counted, events not batches.
        for n in 0..QUEUE_BATCHES as u64 + 3 {
            sink.committed(vec![event(n, "a", "x"), event(n, "a", "y")]);
        }
        assert_eq!(sink.shared.dropped.load(Ordering::Relaxed), 6);
        assert!(metrics
            .render()
            .contains("tailcast_alerts_dropped_total{reason=\"queue_full\"} 6"));
        let kept: usize = (0..QUEUE_BATCHES as u64)
            .flat_map(|n| [event(n, "a", "x"), event(n, "a", "y")])
            .map(|e| e.frame.len() + EVENT_OVERHEAD)
            .sum();
        assert_eq!(sink.shared.pending.lock().unwrap().bytes, kept);
        // Taking empties the queue; the events are the hub's own, shared,
        // not copies.
        assert_eq!(sink.shared.take().len(), QUEUE_BATCHES);
        assert_eq!(sink.shared.pending.lock().unwrap().bytes, 0);
        let stored = event(9, "a", "big");
        sink.committed(vec![stored.clone()]);
        let got = sink.shared.take();
        assert!(Arc::ptr_eq(&got[0][0], &stored));
        // Bounded in bytes as well as in batches.
        let huge = event(10, "a", &"z".repeat(QUEUE_BYTES));
        sink.committed(vec![huge]);
        assert_eq!(sink.shared.dropped.load(Ordering::Relaxed), 7);
        assert!(sink.shared.take().is_empty());
    }

    #[tokio::test]
    async fn channels_types_and_zero_windows() {
        let (alerts, _dir) = engine(RULES);
        alerts.process(&[
            event(1, "app-1", "PANIC a"),
            event(2, "app-1", "panic b"),
            event(3, "app-12", "panic c"),
            event(4, "news", "ERROR x"),
            crate::hub::test_event(5, "app-2", "heartbeat", "panic"),
        ]);
        let sent = bodies(&alerts, "panics");
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1]["id"], event(2, "app-1", "").id());
        assert!(bodies(&alerts, "errors").is_empty());
    }

    #[tokio::test]
    async fn a_reload_keeps_surviving_rules_counts_and_refuses_a_bad_file() {
        let (alerts, dir) = engine(RULES);
        alerts.process(&[event(1, "log:a", "ERROR x")]);
        let path = dir.path().join("alerts.toml");
        std::fs::write(&path, RULES.replace("\"panics\"", "\"other\"")).unwrap();
        alerts.reload();
        let view = alerts.view();
        let names: Vec<_> = view["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].clone())
            .collect();
        assert_eq!(names, ["errors", "other"]);
        assert_eq!(view["rules"][0]["counts"]["matched"], 1);
        std::fs::write(&path, "[[rule]]\nname = 1\n").unwrap();
        alerts.reload();
        let view = alerts.view();
        assert_eq!(view["rules"].as_array().unwrap().len(), 2);
        assert_eq!(view["last_reload"]["ok"], false);
        assert!(view["last_reload"]["error"]
            .as_str()
            .unwrap()
            .contains("alerts.toml"));
    }
}
