//! What only a hub shared with other nodes can do: [`ScaleOut`], the
//! optional capability of [`Hub::scale_out`](super::Hub::scale_out).

use std::collections::HashMap;

use super::{ChannelName, HubError, LogOwner, RedisHub};

/// The operations of a hub shared with other nodes (`--redis`,
/// `--redis-cluster`): this node's name, the claims on log streams and
/// their follower state, who follows each log stream of the cluster,
/// leases, and giving the claims up at shutdown. A hub of one process has
/// none of them: [`Hub::scale_out`](super::Hub::scale_out) is `None`, so
/// a caller says "if scaled out" where it uses them.
#[derive(Clone, Copy)]
pub struct ScaleOut<'a> {
    hub: &'a RedisHub,
}

impl<'a> ScaleOut<'a> {
    pub(super) fn new(hub: &'a RedisHub) -> Self {
        ScaleOut { hub }
    }

    /// This node's name (`--node`).
    pub fn node(&self) -> &'a str {
        self.hub.node_name()
    }

    /// Claims log stream `channel` (`log:NAME`, following `path`) for this
    /// node, so that no other node follows the same name.
    ///
    /// # Errors
    /// [`HubError::Claimed`] when another node follows it; Redis
    /// unavailable.
    pub async fn claim_log(&self, channel: &ChannelName, path: &str) -> Result<(), HubError> {
        self.hub.claim_log(channel, path).await
    }

    /// Tells other nodes the follower state of a log stream this node
    /// follows.
    pub fn set_log_state(&self, channel: &ChannelName, state: &str) {
        self.hub.set_log_state(channel, state);
    }

    /// Who follows each log stream of the cluster, by channel.
    pub async fn log_owners(&self) -> HashMap<String, LogOwner> {
        self.hub.log_owners().await
    }

    /// Whether this node should do the work leased as `what` (e.g. the
    /// demo feed): only one node of a cluster does.
    pub async fn lead(&self, what: &str) -> bool {
        self.hub.lead(what).await
    }

    /// Gives up this node's claims (at shutdown, so that another node can
    /// take over at once).
    pub async fn release_claims(&self) {
        self.hub.release_claims().await;
    }
}
