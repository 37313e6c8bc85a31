//! Server counters and gauges, exposed in the Prometheus text format.
//!
//! One [`Metrics`] is shared by the whole server. Hot paths count per batch,
//! not per event and subscriber, to keep shared cache lines quiet.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label of `tailcast_publish_errors_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The HTTP status of the refused publish.
    pub status: u16,
}

/// Label of `tailcast_syslog_dropped_total`: why syslog input was dropped.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `oversize`, `bad_frame`, `unparsable`, `stalled`, `truncated`,
    /// `refused`, `unavailable` or `connection_limit`.
    pub reason: String,
}

/// Label of the `tailcast_alerts_*` counters of one rule.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    /// The rule's name (rules come from the `--alerts` file: bounded).
    pub rule: String,
}

/// All of the server's metrics. Cloning the handles is cheap; they share
/// their values.
pub struct Metrics {
    /// Open SSE streams: what `--max-connections` limits (exposed as
    /// `tailcast_open_connections`, the name users already scrape).
    pub open_sse_streams: Gauge,
    /// SSE streams opened since start.
    pub streams_opened: Counter,
    /// Events accepted by the hub.
    pub events_published: Counter,
    /// Events written to subscribers (one per subscriber).
    pub events_delivered: Counter,
    /// Bytes of SSE written to subscribers.
    pub bytes_sent: Counter,
    /// Streams that resumed with a `Last-Event-ID`.
    pub resumes: Counter,
    /// `reset` events sent.
    pub resets: Counter,
    /// Subscribers dropped for not reading past `--send-timeout`.
    pub slow_dropped: Counter,
    /// Refused publishes, by HTTP status.
    pub publish_errors: Family<StatusLabel, Counter>,
    /// Lines read from followed files and stdin.
    pub lines_read: Counter,
    /// Rotations and truncations of followed files.
    pub rotations: Counter,
    /// Syslog messages published.
    pub syslog_messages: Counter,
    /// Syslog input dropped (TCP: the connection closed; UDP: the
    /// datagram), by reason.
    pub syslog_dropped: Family<ReasonLabel, Counter>,
    /// Alert notifications made, by rule.
    pub alerts_fired: Family<RuleLabel, Counter>,
    /// Alert notifications a webhook accepted, by rule.
    pub alerts_sent: Family<RuleLabel, Counter>,
    /// Alert notifications given up on, by rule.
    pub alerts_failed: Family<RuleLabel, Counter>,
    /// What alerting dropped, by reason: `queue_full` (events not
    /// matched: the alert task's queue was full), `outbox_full`
    /// (notifications: a rule's outbox was full).
    pub alerts_dropped: Family<ReasonLabel, Counter>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tailcast");
        let m = Metrics {
            open_sse_streams: Gauge::default(),
            streams_opened: Counter::default(),
            events_published: Counter::default(),
            events_delivered: Counter::default(),
            bytes_sent: Counter::default(),
            resumes: Counter::default(),
            resets: Counter::default(),
            slow_dropped: Counter::default(),
            publish_errors: Family::default(),
            lines_read: Counter::default(),
            rotations: Counter::default(),
            syslog_messages: Counter::default(),
            syslog_dropped: Family::default(),
            alerts_fired: Family::default(),
            alerts_sent: Family::default(),
            alerts_failed: Family::default(),
            alerts_dropped: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "open_connections",
            "Open SSE streams",
            m.open_sse_streams.clone(),
        );
        registry.register(
            "streams_opened",
            "SSE streams opened",
            m.streams_opened.clone(),
        );
        registry.register(
            "events_published",
            "Events accepted by the hub",
            m.events_published.clone(),
        );
        registry.register(
            "events_delivered",
            "Events written to subscribers",
            m.events_delivered.clone(),
        );
        registry.register(
            "sent_bytes",
            "Bytes of SSE written to subscribers",
            m.bytes_sent.clone(),
        );
        registry.register(
            "resumes",
            "Streams resumed with Last-Event-ID",
            m.resumes.clone(),
        );
        registry.register("resets", "reset events sent", m.resets.clone());
        registry.register(
            "slow_subscribers_dropped",
            "Subscribers dropped after --send-timeout without progress",
            m.slow_dropped.clone(),
        );
        registry.register(
            "publish_errors",
            "Refused publishes by status",
            m.publish_errors.clone(),
        );
        registry.register(
            "lines_read",
            "Lines read from followed files",
            m.lines_read.clone(),
        );
        registry.register(
            "file_rotations",
            "Rotations and truncations seen",
            m.rotations.clone(),
        );
        registry.register(
            "syslog_messages",
            "Syslog messages published",
            m.syslog_messages.clone(),
        );
        registry.register(
            "syslog_dropped",
            "Syslog input dropped by reason (TCP: the connection closed)",
            m.syslog_dropped.clone(),
        );
        registry.register(
            "alerts_fired",
            "Alert notifications made, by rule",
            m.alerts_fired.clone(),
        );
        registry.register(
            "alerts_sent",
            "Alert notifications accepted by their webhook, by rule",
            m.alerts_sent.clone(),
        );
        registry.register(
            "alerts_failed",
            "Alert notifications given up on after their retries, by rule",
            m.alerts_failed.clone(),
        );
        registry.register(
            "alerts_dropped",
            "Alerting input dropped by reason (queue_full: events; outbox_full: notifications)",
            m.alerts_dropped.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Refused publishes, all statuses together.
    pub fn publish_errors_total(&self) -> u64 {
        [400u16, 403, 404, 405, 413, 415, 503]
            .iter()
            .map(|&status| {
                self.publish_errors
                    .get_or_create(&StatusLabel { status })
                    .get()
            })
            .sum()
    }

    /// Counts syslog input dropped for `reason` (see [`ReasonLabel`]).
    pub fn syslog_dropped(&self, reason: &str) {
        self.syslog_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a notification of `rule` made.
    pub fn alert_fired(&self, rule: &str) {
        self.alerts_fired.get_or_create(&rule_label(rule)).inc();
    }

    /// Counts a notification of `rule` accepted by its webhook.
    pub fn alert_sent(&self, rule: &str) {
        self.alerts_sent.get_or_create(&rule_label(rule)).inc();
    }

    /// Counts a notification of `rule` given up on.
    pub fn alert_failed(&self, rule: &str) {
        self.alerts_failed.get_or_create(&rule_label(rule)).inc();
    }

    /// Counts `n` things alerting dropped for `reason` (see
    /// [`Metrics::alerts_dropped`]).
    pub fn alerts_dropped(&self, reason: &str, n: u64) {
        self.alerts_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc_by(n);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

fn rule_label(rule: &str) -> RuleLabel {
    RuleLabel {
        rule: rule.to_string(),
    }
}
