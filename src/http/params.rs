//! The parameters of an SSE request, parsed once: `?tail`, `?grep`,
//! `?channel` (with the `--max-stream-channels` limit) and the resume id
//! from the `Last-Event-ID` header or the `lastEventId` query parameter.
//!
//! Also the one rule for regular expressions from clients
//! ([`ClientRegex`]: `?grep=` here, `?q=` of `/api/history`): taken as
//! text when the query is parsed (once, at most `--max-regex` bytes),
//! compiled only when the handler asks, after the caller was authorized,
//! on the blocking pool and with bounded sizes.

use std::borrow::Cow;
use std::collections::HashSet;

use axum::http::{HeaderMap, StatusCode};
use regex::{Regex, RegexBuilder};

use super::ApiError;
use crate::hub::Start;

/// Largest compiled program of a client's regex, so a hostile pattern
/// cannot take the server's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Largest lazy-DFA cache of a client's regex (it grows while matching).
const REGEX_DFA_SIZE_LIMIT: usize = 1 << 20;

/// Deepest nesting of groups and repetitions in a client's regex (the
/// parser recurses on it).
const REGEX_NEST_LIMIT: u32 = 64;

/// A regular expression from a client (`?grep=`, `?q=`), not compiled yet.
///
/// Parsing a pattern costs memory before any size limit applies (tens of
/// KiB per case-insensitive Unicode class), so the text is only checked
/// for length when the query is parsed; [`ClientRegex::compile`] runs once
/// the caller is known to be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ClientRegex {
    source: String,
}

impl ClientRegex {
    /// Takes the value of query parameter `name` into `slot` (empty or
    /// not: `q=&q=x` is a repeat too).
    ///
    /// # Errors
    /// 400 when `name` was already given (a second regex is never
    /// compiled), or when the value is longer than `max_len` bytes
    /// (`--max-regex`).
    pub(super) fn take(
        slot: &mut Option<ClientRegex>,
        name: &str,
        value: Cow<'_, str>,
        max_len: usize,
    ) -> Result<(), ApiError> {
        if slot.is_some() {
            return Err(ApiError::bad_request(
                "repeated parameter",
                format!("give {name} at most once"),
            ));
        }
        if value.len() > max_len {
            return Err(ApiError::bad_request(
                "regex too long",
                format!(
                    "{name} is {} bytes long; the limit is {max_len} bytes (--max-regex)",
                    value.len()
                ),
            ));
        }
        *slot = Some(ClientRegex {
            source: value.into_owned(),
        });
        Ok(())
    }

    /// Compiles the pattern on the blocking pool (a large pattern takes
    /// CPU and memory that must not hold up the threads writing to
    /// sockets), within the size and nesting limits.
    ///
    /// # Errors
    /// 400 `invalid regex` for a pattern that does not parse or whose
    /// compiled form would pass the limits.
    pub(super) async fn compile(self) -> Result<Regex, ApiError> {
        tokio::task::spawn_blocking(move || self.build())
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                    format!("compiling the regex failed: {e}"),
                )
            })?
    }

    /// Compiles the pattern on this thread.
    fn build(&self) -> Result<Regex, ApiError> {
        RegexBuilder::new(&self.source)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
            .nest_limit(REGEX_NEST_LIMIT)
            .build()
            .map_err(|e| ApiError::bad_request("invalid regex", e.to_string()))
    }
}

/// Compiles `regex` if there is one and it is not empty (an empty one
/// would match everything: no filter). See [`ClientRegex::compile`].
///
/// # Errors
/// As [`ClientRegex::compile`].
pub(super) async fn compile(regex: Option<ClientRegex>) -> Result<Option<Regex>, ApiError> {
    match regex {
        Some(regex) if !regex.source.is_empty() => regex.compile().await.map(Some),
        _ => Ok(None),
    }
}

/// Query parameters and resume id shared by the SSE endpoints.
#[derive(Debug, Default)]
pub(super) struct SseParams {
    /// `?tail=N`: retained events to send first.
    pub tail: Option<usize>,
    /// `?grep=REGEX`: server-side filter, not compiled yet (see
    /// [`ClientRegex`]).
    pub grep: Option<ClientRegex>,
    /// Where the subscription starts: after the `Last-Event-ID` header or
    /// else the `?lastEventId` parameter when either is present (whatever
    /// its bytes: the hub answers anything that is not one of its ids with
    /// `reset`, `unknown id`), otherwise now.
    pub start: Start,
    /// `?channel=` values in order, each once (`/events`).
    pub channels: Vec<String>,
}

impl SseParams {
    /// Parses `query` and the `Last-Event-ID` header of a single-channel
    /// endpoint (`channel` parameters are ignored).
    ///
    /// A `grep` longer than `max_regex` bytes (`--max-regex`) is refused;
    /// a `grep` is never compiled here.
    ///
    /// # Errors
    /// 400 for a bad `tail`, a repeated `grep` or one that is too long.
    pub(super) fn parse(
        query: Option<&str>,
        headers: &HeaderMap,
        max_regex: usize,
    ) -> Result<Self, ApiError> {
        Self::parse_inner(query, headers, max_regex, None)
    }

    /// Like [`SseParams::parse`], and takes the `channel` values too (for
    /// `/events`): at most `max_channels` distinct ones, more is an error
    /// before any of them is looked up.
    ///
    /// # Errors
    /// As [`SseParams::parse`], or too many channels.
    pub(super) fn parse_with_channels(
        query: Option<&str>,
        headers: &HeaderMap,
        max_regex: usize,
        max_channels: usize,
    ) -> Result<Self, ApiError> {
        Self::parse_inner(query, headers, max_regex, Some(max_channels))
    }

    fn parse_inner(
        query: Option<&str>,
        headers: &HeaderMap,
        max_regex: usize,
        max_channels: Option<usize>,
    ) -> Result<Self, ApiError> {
        let mut params = SseParams::default();
        let mut distinct = HashSet::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*key {
                "tail" => {
                    let n = value.parse().map_err(|_| {
                        ApiError::bad_request(
                            "invalid tail",
                            format!("tail must be a non-negative integer, got {value:?}"),
                        )
                    })?;
                    params.tail = Some(n);
                }
                "grep" => ClientRegex::take(&mut params.grep, "grep", value, max_regex)?,
                // Decoded from percent-escapes as UTF-8 (lossily): an
                // escaped non-ASCII byte stays non-ASCII, so never an id.
                "lastEventId" => params.start = Start::After(value.into_owned()),
                "channel" => {
                    let Some(max_channels) = max_channels else {
                        continue;
                    };
                    if distinct.insert(value.clone()) {
                        if distinct.len() > max_channels {
                            return Err(ApiError::bad_request(
                                "too many stream channels",
                                format!(
                                    "one stream takes at most {max_channels} channels \
                                     (--max-stream-channels); open several streams instead"
                                ),
                            ));
                        }
                        params.channels.push(value.into_owned());
                    }
                }
                _ => {}
            }
        }
        // The header wins: a browser sends it on reconnect, with a newer id
        // than the one fixed in the URL. It is taken as bytes: a value that
        // is not ASCII is an unknown id, never an absent one. Values with
        // control characters never get here: both HTTP parsers refuse them
        // with 400.
        if let Some(id) = headers.get("last-event-id") {
            params.start = Start::after_bytes(id.as_bytes());
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn parse(query: &str, header: Option<&[u8]>) -> Result<SseParams, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(value) = header {
            headers.insert("last-event-id", HeaderValue::from_bytes(value).unwrap());
        }
        SseParams::parse_with_channels(Some(query), &headers, 16, 3)
    }

    fn start(query: &str, header: Option<&[u8]>) -> Option<String> {
        match parse(query, header).unwrap().start {
            Start::Now => None,
            Start::After(id) => Some(id),
        }
    }

    #[test]
    fn a_present_last_event_id_is_never_absent() {
        assert_eq!(start("", None), None);
        assert_eq!(start("lastEventId=ab-1", None).as_deref(), Some("ab-1"));
        assert_eq!(start("", Some(b"ab-2")).as_deref(), Some("ab-2"));
        assert_eq!(start("lastEventId=x", Some(b"y")).as_deref(), Some("y"));
        // Not ASCII: present, so resumed from (and answered `unknown id`).
        assert!(start("", Some(b"caf\xc3\xa9")).is_some());
        assert!(start("", Some(b"\xff")).is_some());
        assert!(start("lastEventId=%C3%A9", None).is_some());
        assert!(start("lastEventId=%FF", None).is_some());
        assert!(start("lastEventId=", None).is_some());
        // A non-ASCII header is not overridden by a good query value.
        assert_ne!(
            start("lastEventId=ab-1", Some(b"\x80")).as_deref(),
            Some("ab-1")
        );
    }

    #[test]
    fn channels_are_taken_once_each_up_to_the_limit() {
        let p = parse("channel=a&channel=b&channel=a&channel=c&channel=b", None).unwrap();
        assert_eq!(p.channels, ["a", "b", "c"]);
        let e = parse("channel=a&channel=b&channel=c&channel=d", None).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.detail.contains("at most 3"), "{}", e.detail);
        let single = SseParams::parse(Some("channel=a&tail=1"), &HeaderMap::new(), 16).unwrap();
        assert!(single.channels.is_empty());
    }

    #[test]
    fn bad_tail_and_grep_are_400() {
        assert_eq!(parse("tail=-1", None).unwrap_err().error, "invalid tail");
        assert_eq!(parse("tail=5", None).unwrap().tail, Some(5));
        // Taken as text, compiled later.
        let p = parse("grep=(", None).unwrap();
        assert_eq!(p.grep.unwrap().build().unwrap_err().error, "invalid regex");
        let empty = parse("grep=", None).unwrap().grep;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(compile(empty)).unwrap().is_none());
    }

    #[test]
    fn a_regex_is_taken_once_and_up_to_the_limit() {
        let e = parse("grep=a&grep=b", None).unwrap_err();
        assert_eq!((e.status.as_u16(), e.error), (400, "repeated parameter"));
        let e = parse("grep=&grep=b", None).unwrap_err();
        assert_eq!(e.error, "repeated parameter");
        let sixteen = "a".repeat(16);
        assert!(parse(&format!("grep={sixteen}"), None).is_ok());
        let e = parse(&format!("grep={sixteen}a"), None).unwrap_err();
        assert_eq!((e.status.as_u16(), e.error), (400, "regex too long"));
        assert!(e.detail.contains("--max-regex"), "{}", e.detail);
    }

    #[test]
    fn compiled_size_and_nesting_are_bounded() {
        let regex = |s: &str| ClientRegex {
            source: s.to_string(),
        };
        assert!(regex("ERR|WARN").build().unwrap().is_match("WARN"));
        let e = regex(r"(?i)\pL{1000}").build().unwrap_err();
        assert_eq!(e.error, "invalid regex");
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(regex(&deep).build().unwrap_err().error, "invalid regex");
    }
}
