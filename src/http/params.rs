//! The parameters of an SSE request, parsed once: `?tail`, `?grep`,
//! `?channel` (with the `--max-stream-channels` limit) and the resume id
//! from the `Last-Event-ID` header or the `lastEventId` query parameter.

use std::collections::HashSet;

use axum::http::HeaderMap;
use regex::{Regex, RegexBuilder};

use super::ApiError;
use crate::hub::Start;

/// Largest compiled size of a `?grep=` regex, so a hostile pattern cannot
/// take the server's memory.
pub(super) const GREP_SIZE_LIMIT: usize = 1 << 20;

/// Query parameters and resume id shared by the SSE endpoints.
#[derive(Debug, Default)]
pub struct SseParams {
    /// `?tail=N`: retained events to send first.
    pub tail: Option<usize>,
    /// `?grep=REGEX`: server-side filter.
    pub grep: Option<Regex>,
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
    /// # Errors
    /// 400 for a bad `tail` or `grep`.
    pub fn parse(query: Option<&str>, headers: &HeaderMap) -> Result<Self, ApiError> {
        Self::parse_inner(query, headers, None)
    }

    /// Like [`SseParams::parse`], and takes the `channel` values too (for
    /// `/events`): at most `max_channels` distinct ones, more is an error
    /// before any of them is looked up.
    ///
    /// # Errors
    /// 400 for a bad `tail` or `grep`, or too many channels.
    pub fn parse_with_channels(
        query: Option<&str>,
        headers: &HeaderMap,
        max_channels: usize,
    ) -> Result<Self, ApiError> {
        Self::parse_inner(query, headers, Some(max_channels))
    }

    fn parse_inner(
        query: Option<&str>,
        headers: &HeaderMap,
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
                "grep" => {
                    let regex = RegexBuilder::new(&value)
                        .size_limit(GREP_SIZE_LIMIT)
                        .build()
                        .map_err(|e| ApiError::bad_request("invalid regex", e.to_string()))?;
                    params.grep = Some(regex);
                }
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
        SseParams::parse_with_channels(Some(query), &headers, 3)
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
        let single = SseParams::parse(Some("channel=a&tail=1"), &HeaderMap::new()).unwrap();
        assert!(single.channels.is_empty());
    }

    #[test]
    fn bad_tail_and_grep_are_400() {
        assert_eq!(parse("tail=-1", None).unwrap_err().error, "invalid tail");
        assert_eq!(parse("grep=(", None).unwrap_err().error, "invalid regex");
        assert_eq!(parse("tail=5", None).unwrap().tail, Some(5));
    }
}
