//! `GET /api/history?channel=C&q=REGEX&before=ID&limit=N`: retained events
//! of one channel, newest first, from memory, from the write-ahead log
//! (with `--data-dir`) or from the channel's stream in Redis (`--redis`).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::Json;
use regex::RegexBuilder;

use super::{ApiError, AppState};
use crate::auth::{Caller, Right};
use crate::hub::{ChannelKind, ChannelName, HistoryPage};

/// Largest compiled size of a `q` regex, so a hostile pattern cannot take
/// the server's memory (as `?grep=`).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Events per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// Most events per page; a larger `limit` is cut to it.
pub const MAX_LIMIT: usize = 1000;

/// The parsed query.
struct HistoryParams {
    channel: ChannelName,
    q: Option<regex::Regex>,
    before: Option<String>,
    limit: usize,
}

impl HistoryParams {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut channel = None;
        let mut q = None;
        let mut before = None;
        let mut limit = DEFAULT_LIMIT;
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*key {
                "channel" => channel = Some(value.into_owned()),
                "q" if !value.is_empty() => {
                    let regex = RegexBuilder::new(&value)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| ApiError::bad_request("invalid regex", e.to_string()))?;
                    q = Some(regex);
                }
                "before" if !value.is_empty() => before = Some(value.into_owned()),
                "limit" => {
                    limit = match value.parse::<usize>() {
                        Ok(n) if n > 0 => n.min(MAX_LIMIT),
                        _ => {
                            return Err(ApiError::bad_request(
                                "invalid limit",
                                format!(
                                    "limit must be an integer from 1 to {MAX_LIMIT}, got {value:?}"
                                ),
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        let channel = channel.ok_or_else(|| {
            ApiError::bad_request("no channel", "name the channel: /api/history?channel=NAME")
        })?;
        let channel = ChannelName::parse(&channel)?;
        Ok(HistoryParams {
            channel,
            q,
            before,
            limit,
        })
    }
}

/// `GET /api/history`: needs the right to subscribe to the channel; the
/// `broadcast` channel, part of every stream, to any channel.
pub async fn history(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<HistoryPage>, ApiError> {
    let params = HistoryParams::parse(query.as_deref())?;
    let right = match params.channel.kind() {
        ChannelKind::Broadcast => Right::AnyStream,
        _ => Right::Subscribe(params.channel.as_str()),
    };
    app.auth.authorize(&caller, right)?;
    let filter = move |data: &str| params.q.as_ref().is_none_or(|q| q.is_match(data));
    let page = app
        .hub
        .history(
            &params.channel,
            params.before.as_deref(),
            params.limit,
            filter,
        )
        .await?;
    Ok(Json(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked() {
        let p = HistoryParams::parse(Some("channel=a&q=ERR%7CWARN&before=x-1&limit=5000")).unwrap();
        assert_eq!(p.channel.as_str(), "a");
        assert!(p.q.unwrap().is_match("WARN"));
        assert_eq!(p.before.as_deref(), Some("x-1"));
        assert_eq!(p.limit, MAX_LIMIT);
        assert_eq!(
            HistoryParams::parse(Some("channel=a")).unwrap().limit,
            DEFAULT_LIMIT
        );
        for (bad, error) in [
            ("", "no channel"),
            ("channel=a%20b", "invalid channel name"),
            ("channel=a&q=(", "invalid regex"),
            ("channel=a&limit=0", "invalid limit"),
            ("channel=a&limit=-1", "invalid limit"),
        ] {
            let err = HistoryParams::parse(Some(bad)).err().unwrap();
            assert_eq!(err.error, error, "{bad}");
        }
    }
}
