//! The feed reader: one task and one dedicated connection per node that
//! read every event of the cluster, in number order, into the replica.
//!
//! `XREAD BLOCK` waits on the epoch's feed stream from the last number
//! applied, so however many subscribers a node has, it reads each event
//! once, over one connection; after a reconnect it reads on from the same
//! place and misses nothing the feed still holds (a node cut off for
//! longer than the feed keeps finds a gap in the numbers, and its
//! subscribers catch up from the channel streams instead). A read
//! unanswered for [`FEED_BLOCK`] plus [`PROBE_TIMEOUT`] means the
//! connection went silent: it is dropped and made again.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::Value;

use super::link::{self, jitter};
use super::scripts::xread_entries;
use super::{Node, BACKOFF_MAX, BACKOFF_MIN, FEED_BATCH, FEED_BLOCK, PROBE_TIMEOUT};

/// Reads the feed until shutdown.
pub(crate) async fn read(node: Arc<Node>) {
    let mut lines = node.link.line.subscribe();
    let mut conn: Option<link::Conn> = None;
    let mut backoff = BACKOFF_MIN;
    loop {
        let Some(line) = lines.borrow_and_update().clone() else {
            tokio::select! {
                _ = node.shutdown.cancelled() => return,
                _ = lines.changed() => continue,
            }
        };
        node.replica.follow(&line);
        // Cluster mode: the feed follows the primary the command connection
        // passed its epoch check on (a node that still thinks it is the
        // primary, cut off from the cluster, would block reads forever).
        if let (Some(feed), Some(commands)) = (
            conn.as_ref()
                .and_then(|c| c.primary().map(|p| p.addr.clone())),
            node.link.primary_addr(),
        ) {
            if feed != commands {
                tracing::info!("the Redis feed follows the primary to {commands}");
                conn = None;
            }
        }
        let watched = match conn.take() {
            Some(live) => live,
            None => match link::connect(&node, None).await {
                Ok(fresh) => {
                    if !node.link.feed_up.swap(true, Ordering::AcqRel) {
                        tracing::info!(
                            "reading the Redis feed after number {}",
                            node.replica.committed()
                        );
                    }
                    fresh
                }
                Err(e) => {
                    fail(&node, &e);
                    tokio::select! {
                        _ = node.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(jitter(backoff)) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        let mut live: MultiplexedConnection = watched.multiplexed.clone();
        let after = node.replica.committed();
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(FEED_BATCH)
            .arg("BLOCK")
            .arg(FEED_BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(node.keys.feed(line.tag.as_str()))
            .arg(format!("0-{after}"));
        let read = cmd.query_async::<Value>(&mut live);
        let reply = tokio::select! {
            _ = node.shutdown.cancelled() => return,
            // A new epoch: drop this read (and its connection, whose reply
            // would arrive late) and start over on the new feed.
            _ = lines.changed() => continue,
            reply = tokio::time::timeout(FEED_BLOCK + PROBE_TIMEOUT, read) => reply,
        };
        match reply {
            Ok(Ok(value)) => match xread_entries(&value) {
                Ok(entries) => {
                    backoff = BACKOFF_MIN;
                    if let Some(last) = node.replica.apply(&line, entries) {
                        node.link.saw(&line.epoch, last);
                    }
                    conn = Some(watched.clone());
                }
                Err(e) => {
                    fail(&node, &e);
                    conn = Some(watched.clone());
                    tokio::time::sleep(jitter(backoff)).await;
                }
            },
            Ok(Err(e)) => fail(&node, &e),
            Err(_) => fail(&node, &link::timed_out("feed read")),
        }
        if conn.is_none() {
            // The read failed on a connection that was made (e.g. a
            // cluster answering CLUSTERDOWN): back off before the next.
            tokio::select! {
                _ = node.shutdown.cancelled() => return,
                _ = tokio::time::sleep(jitter(backoff)) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

fn fail(node: &Node, e: &redis::RedisError) {
    if node.link.feed_up.swap(false, Ordering::AcqRel) {
        tracing::warn!("Redis feed connection lost: {e}");
    }
    node.link.set_problem("feed", e);
}
