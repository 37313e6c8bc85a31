//! Subscriber counts of the whole cluster.
//!
//! Every [`CENSUS_EVERY`] the supervisor writes this node's counts (channels
//! with at least one subscriber) to `P:subs:NODE`, a hash that expires after
//! [`CENSUS_TTL`] unless rewritten, lists the node in the set `P:nodes`,
//! and reads the other nodes' hashes into a cached total. Publish answers
//! and `/api/streams` then add this node's live count to the other nodes'
//! last reported ones, so a figure is at most a few seconds old for other
//! nodes' subscribers. A node that stops reporting drops out when its hash
//! expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::Node;

/// How often a node reports and reads the counts.
pub(super) const CENSUS_EVERY: Duration = Duration::from_secs(2);

/// A report not renewed for this long is dropped.
pub(super) const CENSUS_TTL: Duration = Duration::from_secs(6);

/// The other nodes' last reported subscriber counts, by channel.
#[derive(Default)]
pub(crate) struct Census {
    /// std mutex: held only to read or replace the map.
    others: Mutex<HashMap<String, usize>>,
}

impl Census {
    /// Subscribers of `channel` on the other nodes.
    pub(crate) fn others(&self, channel: &str) -> usize {
        self.others
            .lock()
            .expect("census lock")
            .get(channel)
            .copied()
            .unwrap_or(0)
    }
}

/// Writes this node's counts and reads everyone else's (one pipeline each).
pub(crate) async fn report(node: &Node, conn: &mut MultiplexedConnection) {
    let mine = node.replica.subscriber_counts();
    let key = format!("{}:subs:{}", node.keys.prefix, node.opts.node);
    let nodes_key = format!("{}:nodes", node.keys.prefix);
    let mut write = redis::pipe();
    write.atomic().del(&key).ignore();
    if !mine.is_empty() {
        write.hset_multiple(&key, &mine).ignore();
        write.pexpire(&key, CENSUS_TTL.as_millis() as i64).ignore();
    }
    write.sadd(&nodes_key, &node.opts.node).ignore();
    write.smembers(&nodes_key);
    let Ok(Ok((names,))) = tokio::time::timeout(
        super::PROBE_TIMEOUT,
        write.query_async::<(Vec<String>,)>(conn),
    )
    .await
    else {
        return;
    };
    let others: Vec<String> = names.into_iter().filter(|n| *n != node.opts.node).collect();
    let mut read = redis::pipe();
    for name in &others {
        read.hgetall(format!("{}:subs:{name}", node.keys.prefix));
    }
    let Ok(Ok(counts)) = tokio::time::timeout(
        super::PROBE_TIMEOUT,
        read.query_async::<Vec<HashMap<String, usize>>>(conn),
    )
    .await
    else {
        return;
    };
    let mut total: HashMap<String, usize> = HashMap::new();
    let mut gone = Vec::new();
    for (name, counts) in others.iter().zip(counts) {
        if counts.is_empty() {
            gone.push(name.clone());
        }
        for (channel, n) in counts {
            *total.entry(channel).or_default() += n;
        }
    }
    *node.census.others.lock().expect("census lock") = total;
    // Nodes with no report are forgotten (they re-add themselves when
    // they report again).
    if !gone.is_empty() {
        let mut forget = redis::cmd("SREM");
        forget.arg(&nodes_key).arg(&gone);
        let _ = tokio::time::timeout(super::PROBE_TIMEOUT, forget.query_async::<()>(conn)).await;
    }
}
