//! `--redis-cluster`: finding the primary of tailcast's hash slot, and
//! telling a failover that kept every write from one that lost some.
//!
//! Every key of a prefix is under the hash tag `{prefix}`, so the whole
//! deployment lives in one slot on one primary. A node therefore does not
//! need a routing client: it asks the seed nodes (`CLUSTER SLOTS`, the
//! first that answers) which node serves the slot, checks that it is a
//! primary (`INFO replication`) and opens its connections — the command
//! connection and the feed's `XREAD BLOCK` connection — to it directly,
//! with the same watched sockets, timeouts and supervisor as `--redis`.
//! A `MOVED`, `CLUSTERDOWN`, `READONLY`, `TRYAGAIN` or `MASTERDOWN` reply,
//! like a closed socket, drops the connection: the next one is found
//! anew. (The `redis` crate's cluster client would route and follow
//! redirections itself, but it also retries a command after an I/O error,
//! and a publish script run twice is an event published twice; with one
//! slot there is nothing for it to route.)
//!
//! Failover: Redis replicates asynchronously, so a replica promoted after
//! its primary died may lack the last writes — its sequence may be below
//! numbers nodes have already handed out or delivered. Nodes cannot know
//! what it lacks, so a change of primary is taken as data loss (a new
//! epoch: one `reset` with `history lost` per channel, numbering on above
//! everything known, never a reused id) unless it is proven complete: the
//! old primary, alive, now follows the new one and continued its own
//! replication history there (`master_replid2` is the old primary's
//! replication id), which Redis allows only when the new primary has every
//! write the old one had — the case of a manual `CLUSTER FAILOVER`. The
//! primary the epoch was agreed on is recorded in `P:primary`
//! (`REPLID HOST:PORT`) by the epoch check, so a node that starts after a
//! failover checks it too.

use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, Value};

use super::link::{self, timed_out, Conn};
use super::scripts::{int, items, text};
use super::{Node, COMMAND_TIMEOUT};

/// Number of hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// How long the proof that a failover kept every write is waited for (the
/// old primary reconnecting to the new one as its replica).
const PROOF_WAIT: Duration = Duration::from_secs(3);

/// The primary a connection goes to: its replication id and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Primary {
    /// `master_replid` of `INFO replication`: changes when a replica is
    /// promoted or a primary restarts.
    pub(crate) replid: String,
    /// `host:port`.
    pub(crate) addr: String,
}

/// The hash slot of every key of `prefix` (`{prefix}:...`): CRC16
/// (XMODEM) of the tag, modulo 16384, as Redis Cluster computes it.
pub(crate) fn slot(prefix: &str) -> u16 {
    let mut crc: u16 = 0;
    for &byte in prefix.as_bytes() {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % SLOTS
}

/// Whether an error means the node is no longer (or not yet) the primary
/// of the slot, or the cluster cannot serve it now: the connection is
/// dropped and the primary looked up again.
pub(crate) fn redirected(e: &redis::RedisError) -> bool {
    matches!(
        e.code(),
        Some("MOVED" | "ASK" | "CLUSTERDOWN" | "READONLY" | "TRYAGAIN" | "MASTERDOWN" | "LOADING")
    )
}

/// Whether a server's answer says it is not in cluster mode (`--redis`
/// would be right): at start this ends the node at once.
pub(crate) fn not_cluster(e: &redis::RedisError) -> bool {
    e.to_string().contains("cluster support disabled")
}

/// Runs `cmd` on `conn` within the command timeout.
async fn ask<T: redis::FromRedisValue>(conn: &Conn, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let mut multiplexed = conn.multiplexed.clone();
    match tokio::time::timeout(COMMAND_TIMEOUT, cmd.query_async::<T>(&mut multiplexed)).await {
        Ok(result) => result,
        Err(_) => Err(timed_out("cluster lookup")),
    }
}

/// Opens a connection (command timeout `response`) to the primary of the
/// node's slot, found through the first seed that answers.
pub(crate) async fn connect_primary(
    node: &Node,
    response: Option<Duration>,
) -> Result<Conn, redis::RedisError> {
    let mut last = None;
    for seed in &node.seeds {
        match via_seed(node, seed, response).await {
            Ok(conn) => return Ok(conn),
            Err(e) if not_cluster(&e) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| timed_out("no seed node")))
}

async fn via_seed(
    node: &Node,
    seed: &ConnectionInfo,
    response: Option<Duration>,
) -> Result<Conn, redis::RedisError> {
    let asking = link::open(seed, Some(COMMAND_TIMEOUT)).await?;
    let slots: Value = ask(&asking, redis::cmd("CLUSTER").arg("SLOTS")).await?;
    let seed_host = match seed.addr() {
        ConnectionAddr::Tcp(host, _) => host.clone(),
        _ => String::new(),
    };
    let (host, port) = owner(&slots, node.slot, &seed_host).ok_or_else(|| {
        redis::RedisError::from((
            redis::ErrorKind::Io,
            "slot not served",
            format!("no node of the cluster serves slot {} now", node.slot),
        ))
    })?;
    let info = seed
        .clone()
        .set_addr(ConnectionAddr::Tcp(host.clone(), port));
    let conn = link::open(&info, response).await?;
    let replication: String = ask(&conn, redis::cmd("INFO").arg("replication")).await?;
    let fields = info_fields(&replication);
    if fields.get("role").map(String::as_str) != Some("master") {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "not a primary",
            format!(
                "{host}:{port} serves slot {} but is not a primary",
                node.slot
            ),
        )));
    }
    let replid = fields.get("master_replid").cloned().unwrap_or_default();
    Ok(conn.with_primary(Primary {
        replid,
        addr: format!("{host}:{port}"),
    }))
}

/// The `host:port` of the node serving `slot` in a `CLUSTER SLOTS` reply
/// (`[[start, end, [host, port, id, ...], replicas...], ...]`); an empty
/// host means the node we asked.
fn owner(reply: &Value, slot: u16, asked: &str) -> Option<(String, u16)> {
    for range in items(reply)? {
        let parts = items(range)?;
        let (Some(start), Some(end)) = (parts.first().and_then(int), parts.get(1).and_then(int))
        else {
            continue;
        };
        if !(start..=end).contains(&u64::from(slot)) {
            continue;
        }
        let primary = items(parts.get(2)?)?;
        let host = primary.first().and_then(text).unwrap_or_default();
        let port = primary.get(1).and_then(int)?;
        let host = if host.is_empty() || host == "?" {
            asked.to_string()
        } else {
            host.to_string()
        };
        return Some((host, u16::try_from(port).ok()?));
    }
    None
}

/// `key:value` lines of an `INFO` section.
fn info_fields(info: &str) -> std::collections::HashMap<String, String> {
    info.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the epoch check needs to know about the primary `conn` goes to:
/// its record (`REPLID HOST:PORT`) and, when `P:primary` names another
/// primary, whether the switch from that one is proven to have kept every
/// write (then the old replication id, else `''`). Without cluster mode,
/// empty strings (no check).
pub(crate) async fn primary_args(node: &Node, conn: &Conn) -> (String, String) {
    let Some(primary) = conn.primary() else {
        return (String::new(), String::new());
    };
    let record = format!("{} {}", primary.replid, primary.addr);
    let recorded: Option<String> = ask(conn, redis::cmd("GET").arg(&node.keys.primary))
        .await
        .ok()
        .flatten();
    let Some((old_replid, old_addr)) = recorded
        .as_deref()
        .and_then(|r| r.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
    else {
        return (record, String::new());
    };
    if old_replid == primary.replid {
        return (record, String::new());
    }
    let proven = if continued(node, &old_replid, &old_addr, &primary.replid).await {
        tracing::info!(
            "Redis primary changed from {old_addr} to {}; the old primary continued its history there: nothing was lost",
            primary.addr
        );
        old_replid
    } else if old_addr == primary.addr {
        tracing::warn!(
            "Redis primary {old_addr} restarted (new replication id): it may lack the last writes, a new history line starts"
        );
        String::new()
    } else {
        tracing::warn!(
            "Redis primary changed from {old_addr} to {} without proof that it holds every write: a new history line starts",
            primary.addr
        );
        String::new()
    };
    (record, proven)
}

/// Whether the old primary at `old_addr` now replicates from the primary
/// `new_replid` and continued its own history (`old_replid`) there: Redis
/// accepts that partial resynchronisation only when the new primary holds
/// every write of the old one. Waits up to [`PROOF_WAIT`]; an old primary
/// that cannot be reached proves nothing.
async fn continued(node: &Node, old_replid: &str, old_addr: &str, new_replid: &str) -> bool {
    let Some((host, port)) = old_addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
    else {
        return false;
    };
    let Some(seed) = node.seeds.first() else {
        return false;
    };
    let info = seed.clone().set_addr(ConnectionAddr::Tcp(host, port));
    let deadline = tokio::time::Instant::now() + PROOF_WAIT;
    let Ok(conn) = link::open(&info, Some(COMMAND_TIMEOUT)).await else {
        return false;
    };
    loop {
        let Ok(replication) = ask::<String>(&conn, redis::cmd("INFO").arg("replication")).await
        else {
            return false;
        };
        let fields = info_fields(&replication);
        let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
        if get("role") == "slave"
            && get("master_replid") == new_replid
            && get("master_replid2") == old_replid
        {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn slots_are_redis_cluster_slots() {
        // The reference value of the Redis Cluster specification: CRC16 of
        // "123456789" is 0x31C3 (below 16384, so also its slot). That the
        // keys of a prefix land on the primary this finds is checked on a
        // real cluster in tests/redis_cluster.rs.
        assert_eq!(slot("123456789"), 0x31C3);
        assert!(slot("tailcast") < SLOTS);
    }

    #[test]
    fn the_owner_of_a_slot_is_found() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                Value::Array(vec![bulk("10.0.0.1"), Value::Int(7000), bulk("id1")]),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                Value::Array(vec![bulk(""), Value::Int(7001), bulk("id2")]),
                Value::Array(vec![bulk("10.0.0.3"), Value::Int(7003), bulk("id3")]),
            ]),
        ]);
        assert_eq!(
            owner(&reply, 10, "seed"),
            Some(("10.0.0.1".to_string(), 7000))
        );
        assert_eq!(
            owner(&reply, 9000, "seed"),
            Some(("seed".to_string(), 7001))
        );
        assert_eq!(owner(&Value::Array(vec![]), 1, "seed"), None);
    }

    #[test]
    fn info_sections_parse() {
        let f = info_fields("# Replication\r\nrole:master\r\nmaster_replid:abc\r\n");
        assert_eq!(f.get("role").map(String::as_str), Some("master"));
        assert_eq!(f.get("master_replid").map(String::as_str), Some("abc"));
    }
}
