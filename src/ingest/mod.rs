//! Ingest from log shippers: the records that Loki push, OTLP/HTTP logs,
//! syslog and shipper-shaped NDJSON carry, and the one event shape they
//! all become.
//!
//! Parsing only: bytes in, [`Record`]s out, no I/O and no HTTP status
//! codes (`http::ingest` answers, the syslog listener counts). Each
//! protocol lives in its own module and produces `Record`s; the channel
//! of a record is decided here ([`channel_for`]), once, for every
//! protocol.

pub mod loki;
pub mod otlp;
pub mod syslog;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::hub::{ChannelKind, ChannelName, MAX_CHANNEL_NAME};

/// String labels of a record (Loki stream labels, OTLP resource and record
/// attributes, syslog fields), sorted by name.
pub(crate) type Labels = BTreeMap<String, String>;

/// Most labels one record may carry; more is a request that can never be
/// accepted.
pub const MAX_LABELS: usize = 256;

/// Channel of a record that names none.
pub(crate) const DEFAULT_CHANNEL: &str = "ingest";

/// Labels that name a record's channel, in order of preference.
pub(crate) const CHANNEL_LABELS: [&str; 7] = [
    "channel",
    "service_name",
    "service.name",
    "app",
    "job",
    "host",
    "hostname",
];

/// Event type of every ingested record.
pub(crate) const EVENT_TYPE: &str = "message";

/// One log record from a shipper.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The record's own time, in nanoseconds since the Unix epoch, when the
    /// source gave one.
    pub time_ns: Option<i64>,
    /// The log line (OTLP: the body; a non-string body as JSON text).
    pub line: String,
    /// The level, when the source says it (syslog severity, OTLP severity,
    /// a `level`/`severity` label), lower-case.
    pub level: Option<String>,
    /// String labels and attributes.
    pub labels: Labels,
}

/// What is wrong with an ingest request that can never be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The body does not parse as the protocol says (named in the text).
    #[error("{0}")]
    Invalid(String),
    /// A record with more than [`MAX_LABELS`] labels.
    #[error("a record has {0} labels; at most {MAX_LABELS} are accepted")]
    TooManyLabels(usize),
}

/// The JSON data of an ingested record's event:
/// `{"time","line","level","labels"}`.
#[derive(Serialize)]
struct EventData<'a> {
    time: String,
    line: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<&'a str>,
    labels: &'a Labels,
}

impl Record {
    /// The event data of this record: one compact JSON object. `received_ns`
    /// stands in for a record without a time of its own.
    pub fn event_data(&self, received_ns: i64) -> String {
        let time = rfc3339_nanos(self.time_ns.unwrap_or(received_ns));
        serde_json::to_string(&EventData {
            time,
            line: &self.line,
            level: self.level.as_deref(),
            labels: &self.labels,
        })
        .expect("a record serializes")
    }

    /// Checks the limits every protocol shares.
    ///
    /// # Errors
    /// [`IngestError::TooManyLabels`].
    pub fn check(&self) -> Result<(), IngestError> {
        if self.labels.len() > MAX_LABELS {
            return Err(IngestError::TooManyLabels(self.labels.len()));
        }
        Ok(())
    }
}

/// `ns` nanoseconds since the Unix epoch as RFC 3339 UTC with nine
/// fraction digits, e.g. `2026-12-07T06:00:00.123456789Z`.
pub(crate) fn rfc3339_nanos(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Now, in nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// The channel of a record: `explicit` (`?channel=` on the URL, checked
/// at the request head) if given; otherwise the first present of
/// `CHANNEL_LABELS`, reduced to channel characters; otherwise
/// `DEFAULT_CHANNEL`.
pub fn channel_for(explicit: Option<&ChannelName>, labels: &Labels) -> ChannelName {
    if let Some(channel) = explicit {
        return channel.clone();
    }
    CHANNEL_LABELS
        .iter()
        .filter_map(|key| labels.get(*key))
        .find_map(|value| reduce_to_channel(value))
        .unwrap_or_else(|| ChannelName::parse(DEFAULT_CHANNEL).expect("a valid name"))
}

/// `text` as an ordinary channel name: characters a name may not hold
/// (and `:`, which would make a `log:` name) become `_`, a name must start
/// with a letter or digit, and at most 128 characters are kept. `None`
/// for text with nothing usable. A name that would be a reserved channel
/// (`broadcast`) gets a trailing `_`.
pub(crate) fn reduce_to_channel(text: &str) -> Option<ChannelName> {
    let mut name: String = text
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(MAX_CHANNEL_NAME - 1)
        .collect();
    if name.is_empty() {
        return None;
    }
    let mut channel = ChannelName::parse(&name).ok()?;
    if channel.kind() != ChannelKind::Ordinary {
        name.push('_');
        channel = ChannelName::parse(&name).ok()?;
    }
    Some(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_event_data_is_one_json_object() {
        let record = Record {
            time_ns: Some(1_796_623_200_123_456_789),
            line: "GET /a 200".into(),
            level: Some("info".into()),
            labels: labels(&[("job", "nginx"), ("host", "web-1")]),
        };
        assert_eq!(
            record.event_data(0),
            r#"{"time":"2026-12-07T06:00:00.123456789Z","line":"GET /a 200","level":"info","labels":{"host":"web-1","job":"nginx"}}"#
        );
        let bare = Record {
            line: "x".into(),
            ..Record::default()
        };
        assert_eq!(
            bare.event_data(0),
            r#"{"time":"1970-01-01T00:00:00.000000000Z","line":"x","labels":{}}"#
        );
    }

    #[test]
    fn channels_come_from_the_first_naming_label() {
        let name = |pairs: &[(&str, &str)]| channel_for(None, &labels(pairs)).to_string();
        assert_eq!(name(&[]), "ingest");
        assert_eq!(name(&[("host", "web-1"), ("job", "nginx")]), "nginx");
        assert_eq!(name(&[("service.name", "checkout api")]), "checkout_api");
        assert_eq!(name(&[("app", "log:etc"), ("host", "h")]), "log_etc");
        assert_eq!(name(&[("app", "broadcast")]), "broadcast_");
        assert_eq!(name(&[("app", "///"), ("host", "h1")]), "h1");
        assert_eq!(name(&[("channel", &"x".repeat(300))]).len(), 127);
        let explicit = ChannelName::parse("mine").unwrap();
        assert_eq!(
            channel_for(Some(&explicit), &labels(&[("app", "a")])).to_string(),
            "mine"
        );
    }

    #[test]
    fn too_many_labels_are_refused() {
        let many: Labels = (0..=MAX_LABELS)
            .map(|i| (i.to_string(), String::new()))
            .collect();
        let record = Record {
            labels: many,
            ..Record::default()
        };
        assert_eq!(
            record.check(),
            Err(IngestError::TooManyLabels(MAX_LABELS + 1))
        );
    }
}
