//! The JSON the HTTP interface answers with, as typed structs.
//!
//! Every 2xx JSON body and every JSON payload of a server-made SSE event
//! (`reset`, the demo feed, `/metrics`) is one of these `Serialize` types,
//! so a field is named once and its type says what it may hold. Error
//! bodies are [`super::ApiError`]'s. Nothing here does I/O.

use serde::Serialize;

use crate::auth::Rights;
use crate::follow::FollowState;
use crate::hub::{ChannelKind, ResetReason};

/// `GET /health`.
#[derive(Debug, Serialize)]
pub(super) struct HealthAnswer {
    /// `ok`; with `--redis`, `degraded` (and status 503) while Redis is unreachable.
    pub status: &'static str,
    /// The server's version (`CARGO_PKG_VERSION`).
    pub version: &'static str,
    /// Seconds since the server started.
    pub uptime_s: f64,
    /// Open SSE streams (the contract's field name).
    pub connections: i64,
    /// Channels that exist in the hub.
    pub channels: usize,
    /// Events retained in all channels.
    pub history_events: usize,
    /// Bytes they hold, counted against `--history-bytes`.
    pub history_bytes: usize,
    /// With `--redis`: this node's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// With `--redis`: `ok`, or `unreachable: <why>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
}

/// What an `/api/streams` entry is: a followed file or a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum StreamKind {
    /// A log stream (`log:NAME`).
    Log,
    /// Any other channel, `broadcast` included.
    Channel,
}

impl From<ChannelKind> for StreamKind {
    fn from(kind: ChannelKind) -> Self {
        match kind {
            ChannelKind::Log => StreamKind::Log,
            ChannelKind::Broadcast | ChannelKind::Ordinary => StreamKind::Channel,
        }
    }
}

/// The `state` of an `/api/streams` entry; sent as its [`Display`] text
/// (`following`, `waiting`, `error: <why>`, `open`).
///
/// [`Display`]: std::fmt::Display
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StreamState {
    /// The log file is open and being read.
    Following,
    /// The log file does not exist (yet).
    Waiting,
    /// Reading the log file failed; the text says why.
    Error(String),
    /// A channel: always open.
    Open,
    /// A log stream another node follows: its state as that node reports
    /// it (`following`, `waiting`, `error: ...`), sent as is.
    Remote(String),
}

impl From<FollowState> for StreamState {
    fn from(state: FollowState) -> Self {
        match state {
            FollowState::Following => StreamState::Following,
            FollowState::Waiting => StreamState::Waiting,
            FollowState::Error(why) => StreamState::Error(why),
        }
    }
}

impl std::fmt::Display for StreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamState::Following => f.write_str("following"),
            StreamState::Waiting => f.write_str("waiting"),
            StreamState::Error(why) => write!(f, "error: {why}"),
            StreamState::Open => f.write_str("open"),
            StreamState::Remote(state) => f.write_str(state),
        }
    }
}

impl Serialize for StreamState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One entry of `GET /api/streams`.
#[derive(Debug, Serialize)]
pub(super) struct StreamEntry {
    /// `log:NAME` or the channel's name.
    pub name: String,
    /// Log stream or channel.
    pub kind: StreamKind,
    /// The followed path (log streams only; absent for channels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Current subscribers.
    pub subscribers: usize,
    /// Id of the newest retained event; `null` when none.
    pub last_id: Option<String>,
    /// Events retained for resume.
    pub retained: usize,
    /// Bytes those events hold.
    pub retained_bytes: usize,
    /// Following, waiting, error or open.
    pub state: StreamState,
    /// With `--redis`, for log streams: the node that follows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// `POST /channels/{c}` (one event) and `POST /api/broadcast`.
#[derive(Debug, Serialize)]
pub(super) struct PublishAnswer<'a> {
    /// The event's id.
    pub id: String,
    /// The channel it went to.
    pub channel: &'a str,
    /// Subscribers of the channel when it was published.
    pub subscribers: usize,
}

/// `POST /channels/{c}` with an NDJSON body: `count` events numbered
/// `first_id` to `last_id`, consecutive in the hub's order.
#[derive(Debug, Serialize)]
pub(super) struct BulkPublishAnswer<'a> {
    /// The channel they went to.
    pub channel: &'a str,
    /// Id of the first line's event.
    pub first_id: String,
    /// Id of the last line's event.
    pub last_id: String,
    /// Events published (non-empty lines).
    pub count: usize,
    /// Subscribers of the channel when they were published.
    pub subscribers: usize,
}

/// Data of an `event: reset`: events of `channel` were missed.
#[derive(Debug, Serialize)]
pub(super) struct ResetNotice<'a> {
    /// Why (`lagged`, `too old`, `unknown id`, `history lost`).
    pub reason: ResetReason,
    /// The channel concerned.
    pub channel: &'a str,
}

/// Data of an `event: token-expired`: the stream's token expired and the
/// stream ends; a client reconnects with a fresh token and its
/// `Last-Event-ID`.
#[derive(Debug, Serialize)]
pub(super) struct TokenExpiredNotice {
    /// Always [`TokenExpiredNotice::REASON`].
    pub reason: &'static str,
}

impl TokenExpiredNotice {
    /// The only reason there is.
    pub(super) const REASON: &'static str = "token expired";
}

/// A verified token as `POST /api/session` answers it (and as part of
/// [`SessionAnswer`]): never the token itself.
#[derive(Debug, Serialize)]
pub(super) struct TokenAnswer<'a> {
    /// `sub`; `null` when the token has none.
    pub sub: Option<&'a str>,
    /// `exp`, seconds since the epoch.
    pub exp: u64,
    /// The `tailcast` claim.
    pub rights: &'a Rights,
}

/// `GET /api/session`: whether access control is on and who the request
/// is authenticated as (the token's fields when signed in).
#[derive(Debug, Serialize)]
pub(super) struct SessionAnswer<'a> {
    /// Whether the server checks tokens at all.
    pub access_control: bool,
    /// Whether the request carried a good token.
    pub signed_in: bool,
    /// `sub`, `exp` and `rights` of that token.
    #[serde(flatten)]
    pub token: Option<TokenAnswer<'a>>,
}

/// `DELETE /api/session`: the cookie is cleared.
#[derive(Debug, Serialize)]
pub(super) struct SignedOut {
    /// Always `false`.
    pub signed_in: bool,
}

/// Data of a `/metrics` SSE event: host and server figures of the last
/// second.
#[derive(Debug, Serialize)]
pub(super) struct MetricsSample {
    /// When the sample was taken, RFC 3339.
    pub timestamp: String,
    /// CPU use of the whole host, percent.
    pub cpu_percent: f32,
    /// Host memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Host memory, bytes.
    pub memory_total_bytes: u64,
    /// Bytes received per second, all interfaces.
    pub net_rx_bytes_per_s: f64,
    /// Bytes sent per second, all interfaces.
    pub net_tx_bytes_per_s: f64,
    /// Open SSE streams (the contract's field name).
    pub connections: i64,
    /// Events published per second.
    pub events_per_s: f64,
    /// Refused publishes per second.
    pub publish_errors_per_s: f64,
}

/// Encodes `value` as compact JSON. The types of this module cannot fail
/// to serialise (no maps with non-string keys, no failing `Serialize`).
pub(super) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("protocol types always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_entries_serialise_as_the_contract_says() {
        let log = StreamEntry {
            name: "log:app".into(),
            kind: StreamKind::Log,
            path: Some("/var/log/app.log".into()),
            subscribers: 2,
            last_id: None,
            retained: 0,
            retained_bytes: 0,
            state: StreamState::Error("permission denied".into()),
            node: None,
        };
        assert_eq!(
            to_json(&log),
            r#"{"name":"log:app","kind":"log","path":"/var/log/app.log","subscribers":2,"last_id":null,"retained":0,"retained_bytes":0,"state":"error: permission denied"}"#
        );
        let channel = StreamEntry {
            name: "news".into(),
            kind: ChannelKind::Broadcast.into(),
            path: None,
            subscribers: 0,
            last_id: Some("x-1".into()),
            retained: 1,
            retained_bytes: 300,
            state: StreamState::Open,
            node: None,
        };
        assert_eq!(
            to_json(&channel),
            r#"{"name":"news","kind":"channel","subscribers":0,"last_id":"x-1","retained":1,"retained_bytes":300,"state":"open"}"#
        );
        for (state, text) in [
            (FollowState::Following, "following"),
            (FollowState::Waiting, "waiting"),
        ] {
            assert_eq!(StreamState::from(state).to_string(), text);
        }
        let remote = StreamEntry {
            name: "log:api".into(),
            kind: StreamKind::Log,
            path: None,
            subscribers: 0,
            last_id: None,
            retained: 0,
            retained_bytes: 0,
            state: StreamState::Remote("following".into()),
            node: Some("web-2".into()),
        };
        assert_eq!(
            to_json(&remote),
            r#"{"name":"log:api","kind":"log","subscribers":0,"last_id":null,"retained":0,"retained_bytes":0,"state":"following","node":"web-2"}"#
        );
    }

    #[test]
    fn token_expired_notice_is_the_contracts_shape() {
        let notice = TokenExpiredNotice {
            reason: TokenExpiredNotice::REASON,
        };
        assert_eq!(to_json(&notice), r#"{"reason":"token expired"}"#);
    }

    #[test]
    fn session_answers_carry_the_token_fields_when_signed_in() {
        let rights: Rights =
            serde_json::from_str(r#"{"subscribe": ["log:*"], "broadcast": true}"#).unwrap();
        let token = || TokenAnswer {
            sub: Some("ops"),
            exp: 1_893_456_000,
            rights: &rights,
        };
        assert_eq!(
            to_json(&token()),
            r#"{"sub":"ops","exp":1893456000,"rights":{"subscribe":["log:*"],"broadcast":true}}"#
        );
        let signed_in = SessionAnswer {
            access_control: true,
            signed_in: true,
            token: Some(token()),
        };
        assert_eq!(
            to_json(&signed_in),
            r#"{"access_control":true,"signed_in":true,"sub":"ops","exp":1893456000,"rights":{"subscribe":["log:*"],"broadcast":true}}"#
        );
        let anonymous = SessionAnswer {
            access_control: true,
            signed_in: false,
            token: None,
        };
        assert_eq!(
            to_json(&anonymous),
            r#"{"access_control":true,"signed_in":false}"#
        );
        assert_eq!(
            to_json(&SignedOut { signed_in: false }),
            r#"{"signed_in":false}"#
        );
    }

    #[test]
    fn reset_notice_carries_the_reason_text() {
        let notice = ResetNotice {
            reason: ResetReason::UnknownId,
            channel: "log:app",
        };
        assert_eq!(
            to_json(&notice),
            r#"{"reason":"unknown id","channel":"log:app"}"#
        );
    }
}
