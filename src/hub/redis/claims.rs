//! Claims: which node follows a log stream, and who does leased work.
//!
//! A node that follows log stream NAME holds `P:owner:log:NAME`, a JSON
//! value `{node, instance, path, state}` with a TTL of [`CLAIM_TTL`] that
//! the supervisor refreshes on every probe. A second node that would follow
//! the same NAME finds the claim held by another instance and refuses. When
//! the claim belongs to a previous run of the same node name (restarted
//! after a crash), the new run waits for it to expire. A claim lost while
//! Redis was unreachable and taken by another node meanwhile stays lost:
//! this node stops publishing that stream and says so in its log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value;

use super::link::{self, command_conn};
use super::scripts::text;
use super::Node;
use crate::hub::{HubError, LOG_PREFIX};

/// Lifetime of a claim that is not refreshed.
pub(super) const CLAIM_TTL: Duration = Duration::from_secs(6);

/// Who follows a log stream, as other nodes see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct LogOwner {
    /// The node's `--node` name.
    pub node: String,
    /// The followed path on that node.
    #[serde(default)]
    pub path: String,
    /// The follower's state there (`following`, `waiting`, `error: ...`).
    #[serde(default)]
    pub state: String,
}

/// The claims this process holds.
#[derive(Default)]
pub(crate) struct Claims {
    /// By channel (`log:NAME`). std mutex: never held across an await.
    held: Mutex<HashMap<String, Held>>,
}

#[derive(Clone)]
struct Held {
    path: String,
    state: String,
    /// Lost to another node; never taken back.
    lost: bool,
}

impl Claims {
    /// Stops refreshing the claim of `channel` (a forgotten log stream):
    /// it expires, and another node may take the name.
    pub(crate) fn forget(&self, channel: &str) {
        self.held.lock().expect("claims lock").remove(channel);
    }

    pub(crate) fn set_state(&self, channel: &str, state: &str) {
        if let Some(held) = self.held.lock().expect("claims lock").get_mut(channel) {
            held.state = state.to_string();
        }
    }

    /// Whether this process may publish `channel`: `Some(true)` held,
    /// `Some(false)` lost or refused, `None` not claimed yet.
    pub(crate) fn status(&self, channel: &str) -> Option<bool> {
        self.held
            .lock()
            .expect("claims lock")
            .get(channel)
            .map(|h| !h.lost)
    }

    fn mark_lost(&self, channel: &str, path: &str) {
        self.held.lock().expect("claims lock").insert(
            channel.to_string(),
            Held {
                path: path.to_string(),
                state: String::new(),
                lost: true,
            },
        );
    }
}

fn value(node: &Node, path: &str, state: &str) -> String {
    serde_json::json!({
        "instance": node.instance,
        "node": node.opts.node,
        "path": path,
        "state": state,
    })
    .to_string()
}

/// Runs the claim script: `Ok(None)` when the claim is ours now, else the
/// holder.
async fn try_claim(
    node: &Node,
    conn: &mut MultiplexedConnection,
    key: &str,
    value: &str,
    channel: &str,
) -> Result<Option<LogOwner>, HubError> {
    let mut invocation = node.scripts.claim.prepare_invoke();
    invocation
        .key(key)
        .key(&node.keys.channels)
        .arg(&node.instance)
        .arg(value)
        .arg(CLAIM_TTL.as_millis() as u64)
        .arg(channel);
    let call = invocation.invoke_async::<Value>(conn);
    let reply = link::query(node, call).await?;
    match reply {
        Value::Int(1) => Ok(None),
        other => {
            let holder = text(&other)
                .and_then(|json| serde_json::from_str::<LogOwner>(json).ok())
                .unwrap_or(LogOwner {
                    node: "an unknown node".into(),
                    path: String::new(),
                    state: String::new(),
                });
            Ok(Some(holder))
        }
    }
}

/// See [`super::RedisHub::claim_log`].
pub(crate) async fn claim_log(node: &Node, channel: &str, path: &str) -> Result<(), HubError> {
    if node.claims.status(channel) == Some(true) {
        return Ok(());
    }
    let key = node.keys.owner(channel);
    let deadline = tokio::time::Instant::now() + CLAIM_TTL + Duration::from_secs(1);
    let mut told = false;
    loop {
        let mut conn = command_conn(node)?;
        let state = "waiting";
        let holder = try_claim(node, &mut conn, &key, &value(node, path, state), channel).await?;
        match holder {
            None => {
                node.claims.held.lock().expect("claims lock").insert(
                    channel.to_string(),
                    Held {
                        path: path.to_string(),
                        state: state.to_string(),
                        lost: false,
                    },
                );
                return Ok(());
            }
            Some(holder)
                if holder.node == node.opts.node && tokio::time::Instant::now() < deadline =>
            {
                if !told {
                    tracing::info!(
                        "{channel} is still claimed by a previous run of node {}; waiting for the claim to expire",
                        holder.node
                    );
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Some(holder) => {
                node.claims.mark_lost(channel, path);
                return Err(HubError::Claimed {
                    channel: channel.to_string(),
                    node: holder.node,
                });
            }
        }
    }
}

/// Refreshes every claim held (called by the supervisor after each probe).
pub(crate) async fn refresh(node: &Node, conn: &mut MultiplexedConnection) {
    let held: Vec<(String, Held)> = node
        .claims
        .held
        .lock()
        .expect("claims lock")
        .iter()
        .filter(|(_, h)| !h.lost)
        .map(|(c, h)| (c.clone(), h.clone()))
        .collect();
    for (channel, h) in held {
        let key = node.keys.owner(&channel);
        match try_claim(node, conn, &key, &value(node, &h.path, &h.state), &channel).await {
            Ok(None) => {}
            Ok(Some(holder)) => {
                tracing::error!(
                    "{channel} was taken by node {} while this node could not reach Redis; this node stops publishing it",
                    holder.node
                );
                node.claims.mark_lost(&channel, &h.path);
            }
            Err(_) => return,
        }
    }
}

/// See [`super::RedisHub::lead`].
pub(crate) async fn lead(node: &Node, what: &str) -> bool {
    let Ok(mut conn) = command_conn(node) else {
        return false;
    };
    let key = node.keys.lease(what);
    matches!(
        try_claim(node, &mut conn, &key, &value(node, "", "leading"), "").await,
        Ok(None)
    )
}

/// Followers of the cluster's log streams, by channel.
pub(crate) async fn log_owners(node: &Node) -> Result<HashMap<String, LogOwner>, HubError> {
    let channels = link::cluster_channels(node).await?;
    let logs: Vec<String> = channels
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with(LOG_PREFIX))
        .collect();
    if logs.is_empty() {
        return Ok(HashMap::new());
    }
    let mut conn = command_conn(node)?;
    let keys: Vec<String> = logs.iter().map(|c| node.keys.owner(c)).collect();
    let mut cmd = redis::cmd("MGET");
    cmd.arg(&keys);
    let call = cmd.query_async::<Vec<Option<String>>>(&mut conn);
    let values = link::query(node, call).await?;
    Ok(logs
        .into_iter()
        .zip(values)
        .filter_map(|(channel, value)| {
            let owner = serde_json::from_str::<LogOwner>(&value?).ok()?;
            Some((channel, owner))
        })
        .collect())
}

/// Gives up every claim this process holds.
pub(crate) async fn release_all(node: &Node) {
    let channels: Vec<String> = node
        .claims
        .held
        .lock()
        .expect("claims lock")
        .iter()
        .filter(|(_, h)| !h.lost)
        .map(|(c, _)| c.clone())
        .collect();
    let Ok(mut conn) = command_conn(node) else {
        return;
    };
    for channel in channels {
        let mut invocation = node.scripts.release.prepare_invoke();
        invocation
            .key(node.keys.owner(&channel))
            .arg(&node.instance);
        let call = invocation.invoke_async::<Value>(&mut conn);
        let _ = link::query(node, call).await;
    }
}
