//! `tailcast listen`: follow an SSE stream across drops and print its events.
//!
//! One loop: connect, read the stream through the [`Parser`] and print each
//! event, and when the stream ends or cannot be opened, wait and connect
//! again with `Last-Event-ID` set to the last id received. The waits:
//!
//! - after a stream that was open and then dropped: the server's `retry:`
//!   time exactly (the `--retry` value until the server sends one);
//! - after failures in a row (refused connection, 5xx, a stream that ended
//!   before sending anything): `retry × 2^(failures)`, capped at
//!   `--max-backoff` (or at the server's `retry:` if that is longer), a
//!   random point in the upper half of that span so that many clients do
//!   not return at the same moment; a `Retry-After` header is honoured too.
//!
//! A 4xx answer is final: the server's own error body is reported and the
//! loop stops, as it does on 204 No Content (the WHATWG way for a server to
//! say "stop reconnecting"). A closed stdout (`listen | head -1`) ends the
//! loop quietly. Status messages go to stderr through `tracing`; stdout
//! carries events only.
//!
//! What a stream sends cannot drive the terminal: control characters in
//! the data (ESC, the other C0 characters but tab and newline, DEL, C1) are
//! printed escaped (`\x1b`, `\u{9b}`), wherever stdout goes, since piped
//! output usually ends on a terminal too; `--raw` prints them as they are,
//! `--json` escapes them JSON's way. What the parser buffers is bounded
//! (`--max-line`, `--max-event`): a longer line or event is skipped with a
//! warning and the stream goes on.

use std::io::{ErrorKind, Write};
use std::time::Duration;

use regex::Regex;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use tokio_util::sync::CancellationToken;

use super::parser::{Event, Limits, Parser};
use super::token::TokenSource;
use super::{http_client, rejected, ClientError};

/// Reconnection time used until the server sends `retry:` (the value
/// browsers use too).
pub(crate) const DEFAULT_RETRY: Duration = Duration::from_secs(3);

/// Longest wait between attempts while the server stays unreachable.
pub(crate) const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// 401 answers in a row after which a renewable token (file or command)
/// is given up on.
const MAX_UNAUTHORIZED: u32 = 3;

/// Event type of tailcast's notice that the stream's token expired; the
/// stream then ends and is reopened with a fresh token.
pub(crate) const TOKEN_EXPIRED: &str = "token-expired";

/// Backoff never starts below this, so that `retry: 0` cannot make a
/// client hammer a server that is down.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The validated settings of `tailcast listen`.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// The SSE stream to follow.
    pub url: Url,
    /// `Last-Event-ID` to send on the first request.
    pub last_event_id: Option<String>,
    /// Print one JSON object per event instead of the bare data.
    pub json: bool,
    /// Print only events whose data matches.
    pub grep: Option<Regex>,
    /// Extra request headers (`--header`), sent on every request.
    pub headers: HeaderMap,
    /// Reconnection time until the server sends `retry:`.
    pub retry: Duration,
    /// Cap of the exponential backoff.
    pub max_backoff: Duration,
    /// Reconnect when a stream sends no byte (not even a heartbeat) for
    /// this long; `None`: wait for ever.
    pub idle_timeout: Option<Duration>,
    /// Bearer token for every request (`--token`, `--token-file`,
    /// `--token-command`, `TAILCAST_TOKEN`).
    pub token: Option<TokenSource>,
    /// Print control characters from the stream as they are (`--raw`)
    /// instead of escaped.
    pub raw: bool,
    /// The most one line and one event may take (`--max-line`,
    /// `--max-event`).
    pub limits: Limits,
}

impl ListenConfig {
    /// Settings with the defaults for everything but the URL.
    pub fn new(url: Url) -> Self {
        ListenConfig {
            url,
            last_event_id: None,
            json: false,
            grep: None,
            headers: HeaderMap::new(),
            retry: DEFAULT_RETRY,
            max_backoff: DEFAULT_MAX_BACKOFF,
            idle_timeout: None,
            token: None,
            raw: false,
            limits: Limits::default(),
        }
    }
}

/// How one stream ended.
enum StreamEnd {
    /// Shutdown was asked for.
    Shutdown,
    /// The reader of our stdout went away.
    OutputClosed,
    /// The connection ended or failed; `healthy` if it carried any bytes.
    Dropped {
        /// Why, for the log.
        reason: String,
        /// Whether the stream delivered anything before it ended.
        healthy: bool,
    },
}

/// Follows `config.url`, writing each event to `out`, until `shutdown` is
/// cancelled, `out` is closed, or the server answers with an error that
/// retrying cannot fix.
///
/// # Errors
/// [`ClientError::Rejected`] on a 4xx answer (with the server's body),
/// [`ClientError::NotAnEventStream`] when the URL answers something else,
/// [`ClientError::Io`] when writing `out` fails other than by a closed pipe.
pub async fn run<W: Write>(
    config: &ListenConfig,
    out: &mut W,
    shutdown: CancellationToken,
) -> Result<(), ClientError> {
    let client = http_client()?;
    // For messages only: a token in the URL is never printed.
    let shown = crate::auth::redact(config.url.as_str()).into_owned();
    let url = shown.as_str();
    let mut parser = match &config.last_event_id {
        Some(id) => Parser::with_last_event_id(id),
        None => Parser::new(),
    }
    .with_limits(config.limits);
    let mut failures: u32 = 0;
    let mut unauthorized: u32 = 0;
    loop {
        let mut request = client
            .get(config.url.clone())
            .headers(request_headers(config, parser.last_event_id()));
        let token = match &config.token {
            None => Ok(None),
            Some(source) => tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                token = source.get() => token.map(Some),
            },
        };
        let response = match token {
            // A fixed token cannot get better by waiting.
            Err(e) if config.token.as_ref().is_some_and(|t| !t.renews()) => return Err(e),
            Err(e) => Err(e),
            Ok(token) => {
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    response = request.send() => Ok(response),
                }
            }
        };
        let mut retry_after = None;
        let why = match response {
            Err(e) => {
                failures += 1;
                e.to_string()
            }
            Ok(response) => match response {
                Err(e) => {
                    failures += 1;
                    ClientError::http(url, &e).to_string()
                }
                Ok(response)
                    if response.status() == StatusCode::UNAUTHORIZED
                        && config.token.as_ref().is_some_and(TokenSource::renews)
                        && unauthorized + 1 < MAX_UNAUTHORIZED =>
                {
                    // The token may have expired since it was read: get a new one.
                    unauthorized += 1;
                    failures += 1;
                    let error = rejected(url, response).await;
                    format!("{error}; asking for a new token")
                }
                Ok(response) if response.status() == StatusCode::NO_CONTENT => {
                    tracing::info!(
                        "{url} answered 204 No Content: the server asks not to reconnect"
                    );
                    return Ok(());
                }
                Ok(response) if response.status().is_client_error() => {
                    return Err(rejected(url, response).await)
                }
                Ok(response) if !response.status().is_success() => {
                    failures += 1;
                    retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    format!("{url} answered {}", response.status())
                }
                Ok(response) => {
                    let content_type = response
                        .headers()
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    if !is_event_stream(&content_type) {
                        return Err(ClientError::NotAnEventStream {
                            url: url.to_string(),
                            content_type,
                        });
                    }
                    parser.reconnect();
                    unauthorized = 0;
                    tracing::debug!("connected to {url}");
                    match read_stream(response, &mut parser, config, out, &shutdown).await? {
                        StreamEnd::Shutdown | StreamEnd::OutputClosed => return Ok(()),
                        StreamEnd::Dropped { reason, healthy } => {
                            failures = if healthy { 0 } else { failures + 1 };
                            format!("stream {url} ended: {reason}")
                        }
                    }
                }
            },
        };
        let retry = parser.retry().unwrap_or(config.retry);
        let mut delay = backoff(retry, config.max_backoff, failures, rand::random::<f64>());
        if let Some(after) = retry_after {
            delay = delay.max(after.min(config.max_backoff.max(retry)));
        }
        match parser.last_event_id() {
            "" => tracing::warn!("{why}; reconnecting in {delay:.1?}"),
            id => tracing::warn!("{why}; reconnecting in {delay:.1?} with Last-Event-ID {id:?}"),
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// The wait before the next attempt: `retry` after a healthy stream, else
/// capped exponential backoff with jitter (`unit` is a random number in
/// `[0, 1)`, which picks a point in the upper half of the span).
pub(crate) fn backoff(
    retry: Duration,
    max_backoff: Duration,
    failures: u32,
    unit: f64,
) -> Duration {
    if failures == 0 {
        return retry;
    }
    let cap = max_backoff.max(retry);
    let base = retry.max(MIN_BACKOFF);
    let span = base.saturating_mul(1u32 << failures.min(16)).min(cap);
    span.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// `text/event-stream`, with or without parameters such as a charset.
fn is_event_stream(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("text/event-stream")
}

/// The headers of one request: SSE defaults, the user's `--header`s (which
/// replace a default of the same name), and `Last-Event-ID` when known.
fn request_headers(config: &ListenConfig, last_event_id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for name in config.headers.keys() {
        headers.remove(name);
    }
    headers.extend(config.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !last_event_id.is_empty() {
        // Ids come from the parser, which decodes UTF-8; a value that is not
        // a valid header (a control character) cannot be sent.
        match HeaderValue::from_str(last_event_id) {
            Ok(value) => {
                headers.insert("last-event-id", value);
            }
            Err(_) => tracing::warn!(
                "cannot send Last-Event-ID {last_event_id:?}: not a valid header value"
            ),
        }
    }
    headers
}

/// Reads one open stream until it ends, printing its events.
async fn read_stream<W: Write>(
    mut response: reqwest::Response,
    parser: &mut Parser,
    config: &ListenConfig,
    out: &mut W,
    shutdown: &CancellationToken,
) -> Result<StreamEnd, ClientError> {
    let mut healthy = false;
    let mut events = Vec::new();
    let mut buf = Vec::new();
    loop {
        let next = async {
            match config.idle_timeout {
                Some(limit) => tokio::time::timeout(limit, response.chunk()).await.ok(),
                None => Some(response.chunk().await),
            }
        };
        let chunk = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(StreamEnd::Shutdown),
            chunk = next => chunk,
        };
        let reason = match chunk {
            Some(Ok(Some(bytes))) => {
                healthy = true;
                parser.push(&bytes, &mut events);
                report_skipped(parser, config);
                buf.clear();
                for event in events.drain(..) {
                    if event.event_type == TOKEN_EXPIRED {
                        tracing::info!("the server says the token expired; reconnecting");
                        continue;
                    }
                    format_event(&event, config, &mut buf);
                }
                if buf.is_empty() {
                    continue;
                }
                match out.write_all(&buf).and_then(|()| out.flush()) {
                    Ok(()) => continue,
                    Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                        return Ok(StreamEnd::OutputClosed)
                    }
                    Err(source) => {
                        return Err(ClientError::Io {
                            what: "cannot write to stdout",
                            source,
                        })
                    }
                }
            }
            Some(Ok(None)) => "the server closed the connection".to_string(),
            Some(Err(e)) => crate::errors::chain(&e),
            None => format!("no data for {:?}", config.idle_timeout.unwrap_or_default()),
        };
        return Ok(StreamEnd::Dropped { reason, healthy });
    }
}

/// Warns about what the parser left out.
fn report_skipped(parser: &mut Parser, config: &ListenConfig) {
    let skipped = parser.take_skipped();
    if skipped.long_lines > 0 {
        tracing::warn!(
            "skipping {} line(s) longer than --max-line ({} bytes) and the event(s) they belong to",
            skipped.long_lines,
            config.limits.max_line
        );
    }
    if skipped.long_events > 0 {
        tracing::warn!(
            "skipped {} event(s) longer than --max-event ({} bytes)",
            skipped.long_events,
            config.limits.max_event
        );
    }
}

/// Appends `text` with every control character that could drive a
/// terminal escaped: C0 characters but tab and newline, and DEL, as
/// `\xHH`; C1 characters (U+0080 to U+009F) as `\u{HH}`. Everything else,
/// backslashes included, is copied unchanged.
pub(crate) fn escape_controls(text: &str, buf: &mut Vec<u8>) {
    let mut rest = text;
    while let Some(at) = rest.find(|c: char| is_escaped(c)) {
        buf.extend_from_slice(&rest.as_bytes()[..at]);
        let c = rest[at..].chars().next().unwrap_or_default();
        // Writing into a Vec cannot fail.
        let _ = if (c as u32) < 0x80 {
            write!(buf, "\\x{:02x}", c as u32)
        } else {
            write!(buf, "\\u{{{:x}}}", c as u32)
        };
        rest = &rest[at + c.len_utf8()..];
    }
    buf.extend_from_slice(rest.as_bytes());
}

/// Whether `escape_controls` escapes `c`.
fn is_escaped(c: char) -> bool {
    c.is_control() && c != '\t' && c != '\n'
}

/// One `--json` output line, fields in this order.
#[derive(serde::Serialize)]
struct JsonEvent<'a> {
    id: Option<&'a str>,
    #[serde(rename = "type")]
    event_type: &'a str,
    data: &'a str,
}

/// Appends `event` as printed: its data and a newline, or with `--json`
/// one line `{"id": ..., "type": ..., "data": ...}` (`id` null when the
/// stream never set one). Skips it if `--grep` does not match its data.
/// Control characters are escaped ([`escape_controls`]; in JSON as
/// `\u00XX`, DEL and C1 included) unless `config.raw`.
pub(crate) fn format_event(event: &Event, config: &ListenConfig, buf: &mut Vec<u8>) {
    if let Some(regex) = &config.grep {
        if !regex.is_match(&event.data) {
            return;
        }
    }
    if config.json {
        let line = JsonEvent {
            id: (!event.id.is_empty()).then_some(event.id.as_str()),
            event_type: &event.event_type,
            data: &event.data,
        };
        // Serializing strings cannot fail.
        let json = serde_json::to_string(&line).unwrap_or_default();
        if config.raw {
            buf.extend_from_slice(json.as_bytes());
        } else {
            // JSON escapes C0 itself; DEL and C1 only inside strings, where
            // `\u00XX` means the same character.
            for c in json.chars() {
                if is_escaped(c) {
                    let _ = write!(buf, "\\u{:04x}", c as u32);
                } else {
                    let mut utf8 = [0; 4];
                    buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
    } else if config.raw {
        buf.extend_from_slice(event.data.as_bytes());
    } else {
        escape_controls(&event.data, buf);
    }
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ListenConfig {
        ListenConfig::new(Url::parse("http://127.0.0.1:1/x").unwrap())
    }

    #[test]
    fn backoff_honours_retry_after_a_healthy_stream() {
        let retry = Duration::from_millis(1234);
        assert_eq!(backoff(retry, DEFAULT_MAX_BACKOFF, 0, 0.7), retry);
        assert_eq!(
            backoff(Duration::ZERO, DEFAULT_MAX_BACKOFF, 0, 0.7),
            Duration::ZERO
        );
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let retry = Duration::from_secs(1);
        let cap = Duration::from_secs(30);
        assert_eq!(backoff(retry, cap, 1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(retry, cap, 1, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(retry, cap, 3, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(retry, cap, 3, 0.5), Duration::from_secs(6));
        assert_eq!(backoff(retry, cap, 10, 1.0), cap);
        assert_eq!(backoff(retry, cap, u32::MAX, 0.0), cap / 2);
        // A server's retry longer than the cap is honoured.
        assert_eq!(
            backoff(Duration::from_secs(60), cap, 5, 1.0),
            Duration::from_secs(60)
        );
        // retry: 0 does not mean a busy loop.
        assert!(backoff(Duration::ZERO, cap, 1, 0.0) >= MIN_BACKOFF);
    }

    #[test]
    fn content_type_check_allows_parameters() {
        assert!(is_event_stream("text/event-stream"));
        assert!(is_event_stream("text/event-stream; charset=utf-8"));
        assert!(is_event_stream("Text/Event-Stream"));
        assert!(!is_event_stream("application/json"));
        assert!(!is_event_stream(""));
    }

    #[test]
    fn request_headers_have_defaults_user_headers_and_last_event_id() {
        let mut c = config();
        c.headers
            .insert("authorization", HeaderValue::from_static("Bearer x"));
        c.headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        let h = request_headers(&c, "e-9");
        assert_eq!(h["accept"], "*/*");
        assert_eq!(h["authorization"], "Bearer x");
        assert_eq!(h["cache-control"], "no-cache");
        assert_eq!(h["last-event-id"], "e-9");
        assert!(request_headers(&c, "").get("last-event-id").is_none());
    }

    #[test]
    fn events_print_as_data_lines_or_json() {
        let event = Event {
            id: "7".into(),
            event_type: "sensor".into(),
            data: "a\nb".into(),
        };
        let mut c = config();
        let mut buf = Vec::new();
        format_event(&event, &c, &mut buf);
        assert_eq!(buf, b"a\nb\n");
        c.json = true;
        buf.clear();
        format_event(
            &Event {
                id: String::new(),
                ..event.clone()
            },
            &c,
            &mut buf,
        );
        assert_eq!(
            String::from_utf8(buf.clone()).unwrap(),
            "{\"id\":null,\"type\":\"sensor\",\"data\":\"a\\nb\"}\n"
        );
        c.grep = Some(Regex::new("^x").unwrap());
        buf.clear();
        format_event(&event, &c, &mut buf);
        assert!(buf.is_empty());
    }

    #[test]
    fn control_characters_are_escaped_unless_raw() {
        let escaped = |text: &str| {
            let mut buf = Vec::new();
            escape_controls(text, &mut buf);
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(escaped("plain \\ text"), "plain \\ text");
        assert_eq!(escaped("a\tb\nc"), "a\tb\nc");
        assert_eq!(escaped("\u{1b}[2J\u{7}"), "\\x1b[2J\\x07");
        assert_eq!(escaped("\0\r\u{7f}"), "\\x00\\x0d\\x7f");
        assert_eq!(escaped("\u{9b}\u{80}é\u{a0}"), "\\u{9b}\\u{80}é\u{a0}");

        let event = Event {
            id: "1".into(),
            event_type: "message".into(),
            data: "\u{1b}]0;title\u{7}\u{7f}\u{9b}".into(),
        };
        let mut c = config();
        let mut buf = Vec::new();
        format_event(&event, &c, &mut buf);
        assert_eq!(buf, b"\\x1b]0;title\\x07\\x7f\\u{9b}\n");
        c.json = true;
        buf.clear();
        format_event(&event, &c, &mut buf);
        let line = String::from_utf8(buf.clone()).unwrap();
        assert!(!line.trim_end().contains(char::is_control), "{line:?}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["data"], event.data.as_str());
        c.raw = true;
        c.json = false;
        buf.clear();
        format_event(&event, &c, &mut buf);
        assert_eq!(buf, format!("{}\n", event.data).as_bytes());
    }
}
