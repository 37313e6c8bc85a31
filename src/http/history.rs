//! `GET /api/history?channel=C&q=REGEX&before=ID&limit=N`: retained events
//! of one channel, newest first, from memory, from the write-ahead log
//! (with `--data-dir`) or from the channel's stream in Redis (`--redis`).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::Json;

use super::params::{self, ClientRegex};
use super::{ApiError, AppState};
use crate::auth::{Caller, Right};
use crate::hub::{ChannelKind, ChannelName, HistoryPage};

/// Events per page when `limit` is not given.
pub(super) const DEFAULT_LIMIT: usize = 100;
/// Most events per page; a larger `limit` is cut to it.
pub(super) const MAX_LIMIT: usize = 1000;

/// The parsed query.
struct HistoryParams {
    channel: ChannelName,
    /// Compiled only once the caller is authorized.
    q: Option<ClientRegex>,
    before: Option<String>,
    limit: usize,
}

impl HistoryParams {
    /// Parses the query; `q` is taken as text, at most `max_regex` bytes.
    fn parse(query: Option<&str>, max_regex: usize) -> Result<Self, ApiError> {
        let mut channel = None;
        let mut q = None;
        let mut before = None;
        let mut limit = DEFAULT_LIMIT;
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*key {
                "channel" => channel = Some(value.into_owned()),
                "q" => ClientRegex::take(&mut q, "q", value, max_regex)?,
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
pub(super) async fn history(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<HistoryPage>, ApiError> {
    let params = HistoryParams::parse(query.as_deref(), app.config.max_regex)?;
    let right = match params.channel.kind() {
        ChannelKind::Broadcast => Right::AnyStream,
        _ => Right::Subscribe(params.channel.as_str()),
    };
    app.auth.authorize(&caller, right)?;
    let q = params::compile(params.q).await?;
    let filter = move |data: &str| q.as_ref().is_none_or(|q| q.is_match(data));
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
        let p =
            HistoryParams::parse(Some("channel=a&q=ERR%7CWARN&before=x-1&limit=5000"), 64).unwrap();
        assert_eq!(p.channel.as_str(), "a");
        assert!(p.q.is_some());
        assert_eq!(p.before.as_deref(), Some("x-1"));
        assert_eq!(p.limit, MAX_LIMIT);
        assert_eq!(
            HistoryParams::parse(Some("channel=a"), 64).unwrap().limit,
            DEFAULT_LIMIT
        );
        for (bad, error) in [
            ("", "no channel"),
            ("channel=a%20b", "invalid channel name"),
            ("channel=a&q=a&q=b", "repeated parameter"),
            ("channel=a&q=aaaaaaaaa", "regex too long"),
            ("channel=a&limit=0", "invalid limit"),
            ("channel=a&limit=-1", "invalid limit"),
        ] {
            let err = HistoryParams::parse(Some(bad), 8).err().unwrap();
            assert_eq!(err.error, error, "{bad}");
        }
    }
}
