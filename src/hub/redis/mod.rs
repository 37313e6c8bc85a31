//! The Redis backend: many nodes, one set of channels.
//!
//! Every node started with the same `--redis` URL (or the same Redis
//! Cluster, `--redis-cluster`, see `cluster`) and `--redis-prefix` shares
//! channels. Redis holds what must be agreed on: the numbering, the
//! history of each channel and the feed every node reads. Each node keeps
//! a replica in memory (the same cursor-and-history design as the memory
//! hub) and fans events out to its own subscribers from it.
//!
//! Ids: `TAG-SEQ`. `SEQ` is one cluster-wide sequence (`INCRBY` inside the
//! publish script), so ids order events across channels and one
//! `Last-Event-ID` resumes any set of channels on any node. `TAG` names the
//! current *epoch*, a key in Redis; an epoch is a line of history in which
//! numbers mean something. When Redis loses its data (restarted empty, or
//! from a file that missed the last writes: its sequence is below what a
//! node has seen), the next node to notice starts a new epoch whose numbers
//! continue above everything it saw; subscribers get one `reset`
//! (`history lost`) per affected channel, and old ids are never taken as
//! valid again.
//!
//! Redis key layout (prefix `P`, `--redis-prefix`; with `--redis-cluster`
//! `P` is the hash tag `{prefix}`, so every key is in one slot, see
//! `cluster`):
//! - `P:epoch` — `TAG:BASE`, the current epoch and the number it began after.
//! - `P:seq` — the last number given out.
//! - `P:feed:TAG` — stream of every event of the epoch (fields `c` channel,
//!   `t` type, `d` data), entry id `0-SEQ`, `MAXLEN ~` the feed length.
//!   Each node reads it with `XREAD BLOCK` on one dedicated connection.
//! - `P:ch:NAME` — stream of channel NAME's events (fields `t`, `d`), entry
//!   id `0-SEQ`, `MAXLEN ~ --history`, expiring `--history-ttl` after its
//!   last publish: the history that resume and `/api/history` read.
//! - `P:channels` — sorted set of channel names scored by their newest
//!   number: the cluster's channel list (expired channels are pruned).
//! - `P:owner:log:NAME` — JSON `{node, instance, path, state}` of the node
//!   following log stream NAME, with a TTL the owner refreshes.
//! - `P:lease:WHAT` — the same for a lease (the demo feed's publisher).
//! - `P:subs:NODE`, `P:nodes` — subscriber counts per node (see `census`).
//! - `P:primary` — cluster mode: `REPLID HOST:PORT` of the primary the
//!   epoch was last checked on; a different primary without proof that it
//!   holds everything the old one had starts a new epoch (see `cluster`).
//!
//! Redis work per publish is one script call (7 commands inside it),
//! whatever the number of subscribers or nodes; each node reads the feed
//! in batches of up to `FEED_BATCH` events per `XREAD`.
//!
//! Faults: a supervisor task owns the command connection and runs the
//! epoch check as a liveness probe every `PROBE_INTERVAL` with a
//! `PROBE_TIMEOUT`, so a connection that goes silent while TCP stays up
//! is dropped within seconds (the `redis` crate's connection manager does
//! not reconnect on timeouts); a connection whose socket Redis closed is
//! dropped at once, and a publish that finds it so is sent once on a fresh
//! connection (nothing of it had reached Redis). While Redis is unreachable publishes fail at
//! once (`503`), open streams stay open, `/health` says `degraded`, and the
//! node reconnects with capped exponential backoff; the feed is then read
//! on from where the node stopped, so nothing published meanwhile is lost.
//! With `--redis-cluster`, a redirection (`MOVED`, `CLUSTERDOWN`, ...) is
//! handled like a lost connection, and a change of primary is checked
//! before the node uses it (a new epoch unless proven lossless).

mod census;
mod claims;
mod cluster;
mod feed;
mod history;
mod lines;
mod link;
mod replica;
mod scripts;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    Batch, ChannelInfo, ChannelName, ChannelRequest, Creator, EventId, Health, HistoryPage,
    HistoryUsage, HubError, HubLimits, Published, Start, Swept, Tag,
};

pub use claims::LogOwner;
pub(crate) use lines::LogQueue;
pub use replica::RedisSubscription;

use census::Census;
use claims::Claims;
use link::Link;
use replica::Replica;
use scripts::Scripts;

/// Interval of the liveness probe (the epoch check) on the command connection.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// A probe or command unanswered for this long marks the connection dead.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest wait for a command (publish, history read) before it fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest wait for a TCP connection and handshake to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a node waits for Redis at start before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// `XREAD BLOCK` time on the feed; no answer within this plus
/// [`PROBE_TIMEOUT`] means the feed connection went silent.
const FEED_BLOCK: Duration = Duration::from_millis(1000);

/// Most feed entries read per `XREAD`.
pub(crate) const FEED_BATCH: usize = 1024;

/// The feed keeps at least this many events (or `--history`, if larger): a
/// node cut off for longer than that catches up from the channel streams.
const FEED_MIN_LEN: usize = 10_000;

/// First and last delay between reconnection attempts (doubling, jittered).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// See [`BACKOFF_MIN`].
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Settings of the Redis backend.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:pass@]host:port[/db]`; with `cluster`, the seed
    /// nodes' URLs separated by commas.
    pub url: String,
    /// `--redis-cluster`: `url` lists seed nodes of a Redis Cluster, and
    /// every key lives under the hash tag `{prefix}` (one slot).
    pub cluster: bool,
    /// Namespace of every key.
    pub prefix: String,
    /// This node's name.
    pub node: String,
    /// `history`: events kept per channel (locally and in Redis);
    /// `max_channels`: channels in the cluster; `history_ttl`: a channel's
    /// stream expires this long after its last publish, and events older
    /// than it leave the replicas (zero: never); `history_bytes`: the
    /// replica's retained events in all (the oldest leave first; Redis
    /// keeps them).
    pub limits: HubLimits,
}

/// Key names under the prefix (see the module docs). With
/// `--redis-cluster` the prefix is written as the hash tag `{prefix}`, so
/// every key of a deployment is in one hash slot and every script runs on
/// one shard; with `--redis` the names are unchanged (`prefix:...`).
pub(crate) struct Keys {
    /// `prefix`, or `{prefix}` in cluster mode: what every key starts with.
    prefix: String,
    epoch: String,
    seq: String,
    channels: String,
    /// Cluster mode: `replid host:port` of the primary the epoch was last
    /// agreed on (see `cluster`).
    primary: String,
}

impl Keys {
    fn new(prefix: &str, cluster: bool) -> Self {
        let prefix = if cluster {
            format!("{{{prefix}}}")
        } else {
            prefix.to_string()
        };
        Keys {
            epoch: format!("{prefix}:epoch"),
            seq: format!("{prefix}:seq"),
            channels: format!("{prefix}:channels"),
            primary: format!("{prefix}:primary"),
            prefix,
        }
    }

    fn feed(&self, tag: &str) -> String {
        format!("{}:feed:{tag}", self.prefix)
    }

    fn channel(&self, name: &str) -> String {
        format!("{}:ch:{name}", self.prefix)
    }

    fn owner(&self, channel: &str) -> String {
        format!("{}:owner:{channel}", self.prefix)
    }

    fn lease(&self, what: &str) -> String {
        format!("{}:lease:{what}", self.prefix)
    }
}

/// A line of history: the epoch's tag (the first part of every id) and the
/// number it began after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// `TAG:BASE` as stored in Redis.
    epoch: Arc<str>,
    /// The tag of every id of the line.
    tag: Tag,
    /// Events of this epoch are numbered above it.
    base: u64,
}

impl Line {
    fn parse(epoch: &str) -> Option<Line> {
        let (tag, base) = epoch.split_once(':')?;
        Some(Line {
            epoch: epoch.into(),
            tag: Tag::new(tag)?,
            base: base.parse().ok()?,
        })
    }

    fn id(&self, seq: u64) -> EventId {
        EventId::new(self.tag, seq)
    }
}

/// Everything one node shares between its tasks.
pub(crate) struct Node {
    opts: RedisOptions,
    keys: Keys,
    client: redis::Client,
    /// Cluster mode: the seed nodes (the first is also `client`'s); empty
    /// with `--redis`.
    seeds: Vec<redis::ConnectionInfo>,
    /// Cluster mode: the hash slot of every key.
    slot: u16,
    /// Random per process: tells this process's claims from a previous
    /// run's of the same node name.
    instance: String,
    scripts: Scripts,
    link: Link,
    replica: Replica,
    claims: Claims,
    census: Census,
    shutdown: CancellationToken,
    /// Told of every event this node publishes (alerting), if set.
    tap: std::sync::OnceLock<Arc<dyn super::CommitTap>>,
}

impl Node {
    /// Tells the tap, if any, of events this node just published:
    /// `events` (channel index, type, data) numbered from `first` on
    /// `line`. Events from other nodes never come here.
    pub(crate) fn tap_published(
        &self,
        channels: &[&str],
        events: &[(usize, &str, &str)],
        first: u64,
        line: &Line,
    ) {
        let Some(tap) = self.tap.get() else { return };
        let names: Vec<Option<ChannelName>> = channels
            .iter()
            .map(|c| ChannelName::parse(c).ok())
            .collect();
        let stored = events
            .iter()
            .zip(first..)
            .filter_map(|((c, event_type, data), seq)| {
                let name = names.get(*c)?.clone()?;
                let pending = crate::sse::PendingEvent::encode(event_type, data);
                let allocated = pending.allocated();
                let frame = pending.with_id(line.id(seq).text().as_str());
                Some(Arc::new(super::StoredEvent::new(
                    seq,
                    name,
                    frame,
                    allocated,
                    Arc::default(),
                )))
            })
            .collect();
        tap.committed(stored);
    }
}

/// Why a node could not start on Redis.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The URL does not parse.
    #[error("invalid --redis URL: {0}")]
    Url(String),
    /// `--redis-cluster` names a server that is not in cluster mode.
    #[error("{url} is not a Redis Cluster node ({why}); use --redis for a single server")]
    NotCluster {
        /// The URL, password hidden.
        url: String,
        /// What the server answered.
        why: String,
    },
    /// Redis did not answer in time.
    #[error("cannot reach Redis at {url}: {why}")]
    Unreachable {
        /// The URL, password hidden.
        url: String,
        /// The last error.
        why: String,
    },
}

/// The Redis hub of one node. Cheap to clone.
#[derive(Clone)]
pub struct RedisHub {
    node: Arc<Node>,
}

impl RedisHub {
    /// Connects to Redis (waiting up to a few seconds for it), agrees on
    /// the epoch and starts the supervisor and the feed reader, tracked by
    /// `tracker` and stopped by `shutdown`.
    ///
    /// # Errors
    /// A bad URL, or Redis unreachable at start.
    pub async fn connect(
        opts: RedisOptions,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<RedisHub, StartError> {
        let urls: Vec<&str> = if opts.cluster {
            opts.url.split(',').map(str::trim).collect()
        } else {
            vec![opts.url.as_str()]
        };
        let mut seeds = Vec::new();
        for url in &urls {
            let client = redis::Client::open(*url).map_err(|e| StartError::Url(e.to_string()))?;
            seeds.push(client.get_connection_info().clone());
        }
        let client = redis::Client::open(urls[0]).map_err(|e| StartError::Url(e.to_string()))?;
        if !opts.cluster {
            seeds.clear();
        }
        let node = Arc::new(Node {
            keys: Keys::new(&opts.prefix, opts.cluster),
            seeds,
            slot: cluster::slot(&opts.prefix),
            replica: Replica::new(&opts.limits),
            client,
            instance: format!("{:016x}", rand::random::<u64>()),
            scripts: Scripts::new(),
            link: Link::new(),
            claims: Claims::default(),
            census: Census::default(),
            shutdown,
            tap: std::sync::OnceLock::new(),
            opts,
        });
        let (conn, line, seq) = link::first_connect(&node).await.map_err(|(why, fatal)| {
            if fatal {
                StartError::NotCluster {
                    url: redact(&node.opts.url),
                    why,
                }
            } else {
                StartError::Unreachable {
                    url: redact(&node.opts.url),
                    why,
                }
            }
        })?;
        node.replica.start(line.clone(), seq);
        node.link.start(conn, line, seq);
        tracker.spawn(link::supervise(node.clone()));
        tracker.spawn(feed::read(node.clone()));
        tracing::info!(
            node = %node.opts.node,
            prefix = %node.opts.prefix,
            cluster = node.opts.cluster,
            "sharing channels through Redis at {}",
            redact(&node.opts.url)
        );
        Ok(RedisHub { node })
    }

    /// See [`super::Hub::publish`]. Answered only once Redis has the event.
    ///
    /// # Errors
    /// Bad name, too many channels, or Redis unavailable.
    pub(crate) async fn publish(
        &self,
        channel: &ChannelName,
        event_type: &str,
        data: &str,
    ) -> Result<Published, HubError> {
        let data = normalize(data);
        let (first, _, line) =
            link::run_publish_script(&self.node, channel, &[(event_type, data.as_ref())]).await?;
        Ok(Published {
            id: line.id(first).to_string(),
            subscribers: self.subscribers(channel),
        })
    }

    /// See [`super::Hub::publish_batch`]: one script call, consecutive ids.
    ///
    /// # Errors
    /// Empty batch, more events than `--history`, too many channels, or
    /// Redis unavailable.
    pub(crate) async fn publish_batch<T: AsRef<str>, D: AsRef<str>>(
        &self,
        channel: &ChannelName,
        events: &[(T, D)],
    ) -> Result<Batch, HubError> {
        if events.is_empty() {
            return Err(HubError::EmptyBatch);
        }
        let limits = &self.node.opts.limits;
        let bytes: usize = events
            .iter()
            .map(|(t, d)| t.as_ref().len() + d.as_ref().len())
            .sum();
        if events.len() > limits.history || bytes > limits.history_bytes {
            return Err(HubError::BatchTooLarge {
                events: events.len(),
                bytes,
                max_events: limits.history,
                max_bytes: limits.history_bytes,
            });
        }
        let normalized: Vec<(&str, std::borrow::Cow<'_, str>)> = events
            .iter()
            .map(|(t, d)| (t.as_ref(), normalize(d.as_ref())))
            .collect();
        let pairs: Vec<(&str, &str)> = normalized.iter().map(|(t, d)| (*t, d.as_ref())).collect();
        let (first, last, line) = link::run_publish_script(&self.node, channel, &pairs).await?;
        Ok(Batch {
            first_id: line.id(first).to_string(),
            last_id: line.id(last).to_string(),
            count: events.len(),
            subscribers: self.subscribers(channel),
        })
    }

    /// See [`super::Hub::publish_multi`]: one script call, consecutive ids
    /// in the given order, all or nothing.
    ///
    /// # Errors
    /// Empty batch, more events of one channel than `--history`, too many
    /// channels, or Redis unavailable.
    pub(crate) async fn publish_multi(
        &self,
        events: &[(&ChannelName, &str, &str)],
        creator: Creator,
    ) -> Result<Batch, HubError> {
        if events.is_empty() {
            return Err(HubError::EmptyBatch);
        }
        let limits = &self.node.opts.limits;
        let (names, of) = super::group_channels(events);
        let mut per_channel = vec![0usize; names.len()];
        for c in &of {
            per_channel[*c] += 1;
        }
        let bytes: usize = events.iter().map(|(_, t, d)| t.len() + d.len()).sum();
        if per_channel.iter().any(|n| *n > limits.history) || bytes > limits.history_bytes {
            return Err(HubError::BatchTooLarge {
                events: events.len(),
                bytes,
                max_events: limits.history,
                max_bytes: limits.history_bytes,
            });
        }
        let normalized: Vec<(usize, &str, std::borrow::Cow<'_, str>)> = events
            .iter()
            .zip(&of)
            .map(|((_, t, d), c)| (*c, *t, normalize(d)))
            .collect();
        let triples: Vec<(usize, &str, &str)> = normalized
            .iter()
            .map(|(c, t, d)| (*c, *t, d.as_ref()))
            .collect();
        let channels: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        let (first, last, line) =
            link::run_publish_multi_script(&self.node, &channels, &triples, creator).await?;
        Ok(Batch {
            first_id: line.id(first).to_string(),
            last_id: line.id(last).to_string(),
            count: events.len(),
            subscribers: channels.iter().map(|c| self.subscribers(c)).sum(),
        })
    }

    /// See [`super::Hub::set_tap`]: told of what this node publishes.
    pub(crate) fn set_tap(&self, tap: Arc<dyn super::CommitTap>) {
        let _ = self.node.tap.set(tap);
    }

    /// Subscribers of `channel` in the cluster: this node's now, the
    /// others' as last reported (see `census`).
    fn subscribers(&self, channel: &str) -> usize {
        self.node.replica.subscribers(channel) + self.node.census.others(channel)
    }

    /// See [`super::Hub::subscribe`].
    ///
    /// # Errors
    /// Bad channel name, or too many channels on this node.
    pub(crate) fn subscribe(
        &self,
        requests: &[ChannelRequest],
        start: Start,
    ) -> Result<RedisSubscription, HubError> {
        replica::subscribe(&self.node, requests, start)
    }

    /// The channels of the whole cluster, plus channels subscribed to here
    /// that were never published, sorted by name (this node's replica when
    /// Redis is unreachable), with the cluster's subscriber counts.
    pub(crate) async fn channels(&self) -> Vec<ChannelInfo> {
        let local = self.node.replica.channels();
        let Ok(cluster) = link::cluster_channels(&self.node).await else {
            return local;
        };
        let line = self.node.replica.line();
        let mut local: HashMap<ChannelName, ChannelInfo> =
            local.into_iter().map(|c| (c.name.clone(), c)).collect();
        let mut infos: Vec<ChannelInfo> = cluster
            .into_iter()
            .filter_map(|(name, last)| {
                let name = ChannelName::parse(&name).ok()?;
                let here = local.remove(&name);
                Some(ChannelInfo {
                    subscribers: here.as_ref().map_or(0, |c| c.subscribers)
                        + self.node.census.others(&name),
                    retained: here.as_ref().map_or(0, |c| c.retained),
                    retained_bytes: here.as_ref().map_or(0, |c| c.retained_bytes),
                    last_id: (last > 0).then(|| line.id(last).to_string()),
                    kind: name.kind(),
                    name,
                })
            })
            .collect();
        infos.extend(local.into_values().filter(|c| c.subscribers > 0));
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    /// See [`super::Hub::history`]: read from the channel's stream in Redis
    /// (the current epoch's events), newest first, at most
    /// `crate::wal::SCAN_BUDGET` bytes of event data looked at per call.
    ///
    /// # Errors
    /// A `before` that is not an id of the current epoch; Redis unavailable.
    pub(crate) async fn history(
        &self,
        channel: &ChannelName,
        before: Option<&str>,
        limit: usize,
        filter: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<HistoryPage, HubError> {
        history::read(&self.node, channel, before, limit, filter).await
    }

    /// See [`super::Hub::ensure_channel`]: a local entry only.
    ///
    /// # Errors
    /// Too many channels on this node.
    pub(crate) fn ensure_channel(&self, name: &ChannelName) -> Result<(), HubError> {
        self.node.replica.ensure(name)
    }

    /// This node's history figures.
    pub(crate) fn usage(&self) -> HistoryUsage {
        self.node.replica.usage()
    }

    /// The limits this hub was made with.
    pub(crate) fn limits(&self) -> &HubLimits {
        &self.node.opts.limits
    }

    /// See [`super::Hub::remove_unsubscribed`]: this node's copy; its claim
    /// (if any) is no longer refreshed and expires.
    pub(crate) fn remove_unsubscribed(&self, channel: &ChannelName) -> bool {
        let removed = self.node.replica.remove_unsubscribed(channel);
        if removed {
            self.node.claims.forget(channel);
        }
        removed
    }

    /// See [`super::Hub::sweep`]: this node's replica.
    pub(crate) fn sweep(&self, now: std::time::Instant) -> Swept {
        self.node
            .replica
            .sweep(self.node.opts.limits.history_ttl, now)
    }

    /// Whether `channel` is known here or in the cluster's channel set.
    ///
    /// # Errors
    /// Redis unavailable and the channel unknown here.
    pub(crate) async fn has_channel(&self, channel: &ChannelName) -> Result<bool, HubError> {
        if self.node.replica.knows(channel) {
            return Ok(true);
        }
        link::has_channel(&self.node, channel).await
    }

    /// Whether this node reaches Redis now.
    pub(crate) fn health(&self) -> Health {
        self.node.link.health()
    }

    /// This node's name.
    pub(crate) fn node_name(&self) -> &str {
        &self.node.opts.node
    }

    /// Claims log stream `channel` (`log:NAME`) for this node, so that no
    /// other node follows the same name. A claim held by a previous run of
    /// this node name (a restart after a crash) is waited for until it
    /// expires.
    ///
    /// # Errors
    /// [`HubError::Claimed`] naming the node that follows it, or Redis
    /// unavailable.
    pub(crate) async fn claim_log(
        &self,
        channel: &ChannelName,
        path: &str,
    ) -> Result<(), HubError> {
        claims::claim_log(&self.node, channel, path).await
    }

    /// Updates the follower state shown to other nodes for a claimed stream.
    pub(crate) fn set_log_state(&self, channel: &ChannelName, state: &str) {
        self.node.claims.set_state(channel, state);
    }

    /// The followers of every log stream of the cluster, by channel.
    pub(crate) async fn log_owners(&self) -> HashMap<String, LogOwner> {
        claims::log_owners(&self.node).await.unwrap_or_default()
    }

    /// Takes or keeps the lease `what` (e.g. the demo feed): true while this
    /// node holds it; only the holder should do the leased work.
    pub(crate) async fn lead(&self, what: &str) -> bool {
        claims::lead(&self.node, what).await
    }

    /// A queue that publishes the lines of a log stream in order, buffering
    /// them (boundedly) while Redis is unreachable.
    pub(crate) fn log_queue(&self, channel: &ChannelName, path: &str) -> Arc<LogQueue> {
        lines::spawn(&self.node, channel, path)
    }

    /// Gives up this process's claims (at shutdown, so another node can take
    /// over at once).
    pub(crate) async fn release_claims(&self) {
        claims::release_all(&self.node).await;
    }
}

/// Line breaks normalised to LF (as the memory hub does).
fn normalize(data: &str) -> std::borrow::Cow<'_, str> {
    if data.contains('\r') {
        data.replace("\r\n", "\n").replace('\r', "\n").into()
    } else {
        data.into()
    }
}

/// The URL with any password replaced by `REDACTED`, for logs and errors
/// (each of a comma-separated list).
pub(crate) fn redact(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(redact).collect::<Vec<_>>().join(",");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:REDACTED@{host}")
            } else {
                format!("{scheme}://REDACTED@{host}")
            }
        }
        None => url.to_string(),
    }
}

/// Parses `--redis`: a `redis://` URL the client library accepts.
///
/// # Errors
/// A message saying what is expected.
pub(crate) fn parse_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.starts_with("rediss://") {
        return Err(
            "rediss:// (TLS to Redis) is not supported yet; reach Redis over a private network or a TLS tunnel (stunnel) and use redis://".into(),
        );
    }
    if !text.starts_with("redis://") && !text.starts_with("redis+unix://") {
        return Err(format!(
            "{} is not a redis:// URL (expected redis://[user:pass@]host:port[/db])",
            redact(text)
        ));
    }
    redis::Client::open(text).map_err(|e| format!("{}: {e}", redact(text)))?;
    Ok(text.to_string())
}

/// Parses `--redis-cluster`: one or more `redis://host:port` seed URLs
/// separated by commas (any node of the cluster; the first reachable one
/// is asked where the primary of tailcast's slot is).
///
/// # Errors
/// A message saying what is expected.
pub(crate) fn parse_cluster_urls(text: &str) -> Result<String, String> {
    let mut urls = Vec::new();
    for url in text.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        if url.starts_with("redis+unix://") {
            return Err("a Redis Cluster is reached over TCP: use redis://host:port".into());
        }
        let url = parse_url(url)?;
        let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
        if client.get_connection_info().redis_settings().db() != 0 {
            return Err(format!(
                "{}: a Redis Cluster has only database 0",
                redact(&url)
            ));
        }
        urls.push(url);
    }
    if urls.is_empty() {
        return Err("expected redis://host:port[,redis://host:port...]".into());
    }
    Ok(urls.join(","))
}

/// Parses `--redis-prefix`: 1–64 characters of `A-Z a-z 0-9 _ . : -`.
///
/// # Errors
/// A message saying what is allowed.
pub(crate) fn parse_prefix(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if ok {
        Ok(text.to_string())
    } else {
        Err("use 1 to 64 characters of A-Z a-z 0-9 _ . : -".into())
    }
}

/// Parses `--node`: 1–64 printable ASCII characters without spaces.
///
/// # Errors
/// A message saying what is allowed.
pub(crate) fn parse_node(text: &str) -> Result<String, String> {
    let ok = !text.is_empty() && text.len() <= 64 && text.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(text.to_string())
    } else {
        Err("use 1 to 64 printable characters without spaces".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_parse() {
        let line = Line::parse("0a1b2c3d:42").unwrap();
        assert_eq!(line.tag.as_str(), "0a1b2c3d");
        assert_eq!(line.base, 42);
        assert_eq!(line.id(43).to_string(), "0a1b2c3d-43");
        for bad in ["", "x", ":1", "a-b:1", "abc:x", "a b:1"] {
            assert_eq!(Line::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn urls_are_checked_and_passwords_hidden() {
        assert!(parse_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("rediss://h:1")
            .unwrap_err()
            .contains("not supported"));
        assert!(parse_url("redis://:secret@[bad")
            .unwrap_err()
            .contains("REDACTED"));
        assert_eq!(
            redact("redis://user:secret@host:1/0"),
            "redis://user:REDACTED@host:1/0"
        );
        assert_eq!(redact("redis://host:1"), "redis://host:1");
    }

    #[test]
    fn prefixes_and_node_names() {
        assert!(parse_prefix("tailcast").is_ok());
        assert!(parse_prefix("a b").is_err());
        assert!(parse_prefix("").is_err());
        assert!(parse_node("web-1").is_ok());
        assert!(parse_node("a b").is_err());
    }

    #[test]
    fn options_come_from_flags_and_the_config_file() {
        use crate::config::ServeConfig;
        let c = ServeConfig::from_args::<_, &str>([]).unwrap();
        assert_eq!(
            (c.redis, c.redis_prefix.as_str(), c.node),
            (None, "tailcast", None)
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "redis = \"redis://10.0.0.5:6379/2\"\nredis-prefix = \"tc\"\nnode = \"web-1\"\n",
        )
        .unwrap();
        let c = ServeConfig::from_args(["--config", path.to_str().unwrap(), "--node", "web-2"])
            .unwrap();
        assert_eq!(c.redis.as_deref(), Some("redis://10.0.0.5:6379/2"));
        assert_eq!(c.redis_prefix, "tc");
        assert_eq!(c.node.as_deref(), Some("web-2"));
        for bad in [
            &["--redis", "http://x"][..],
            &["--redis-prefix", "a b"],
            &["--node", ""],
        ] {
            assert!(ServeConfig::from_args(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let keys = Keys::new("tc", false);
        assert_eq!(keys.epoch, "tc:epoch");
        assert_eq!(keys.feed("ab"), "tc:feed:ab");
        assert_eq!(keys.channel("log:app"), "tc:ch:log:app");
        assert_eq!(keys.owner("log:app"), "tc:owner:log:app");
        // Cluster mode: one hash tag, so one slot for every key.
        let keys = Keys::new("tc", true);
        assert_eq!(keys.epoch, "{tc}:epoch");
        assert_eq!(keys.seq, "{tc}:seq");
        assert_eq!(keys.feed("ab"), "{tc}:feed:ab");
        assert_eq!(keys.channel("log:app"), "{tc}:ch:log:app");
        assert_eq!(keys.owner("log:app"), "{tc}:owner:log:app");
        assert_eq!(keys.lease("stream"), "{tc}:lease:stream");
        assert_eq!(keys.primary, "{tc}:primary");
    }

    #[test]
    fn redis_cluster_comes_from_flags_and_the_config_file_and_excludes_redis() {
        use crate::config::ServeConfig;
        let c = ServeConfig::from_args(["--redis-cluster", "redis://a:1,redis://b:2"]).unwrap();
        assert_eq!(c.redis_cluster.as_deref(), Some("redis://a:1,redis://b:2"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "redis-cluster = \"redis://10.0.0.5:6379\"\n").unwrap();
        let c = ServeConfig::from_args(["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(c.redis_cluster.as_deref(), Some("redis://10.0.0.5:6379"));
        for bad in [
            &["--redis-cluster", "redis://a:1", "--redis", "redis://b:1"][..],
            &["--redis-cluster", "redis://a:1", "--data-dir", "/d"],
            &["--redis-cluster", "http://a:1"],
        ] {
            assert!(ServeConfig::from_args(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cluster_seed_lists_are_checked() {
        assert_eq!(
            parse_cluster_urls("redis://a:1, redis://b:2").unwrap(),
            "redis://a:1,redis://b:2"
        );
        assert!(parse_cluster_urls("").is_err());
        assert!(parse_cluster_urls("redis://a:1,http://b").is_err());
        assert!(parse_cluster_urls("redis://a:1/3").is_err());
        assert!(parse_cluster_urls("redis://a:1/0").is_ok());
        assert_eq!(
            redact("redis://:pw@a:1,redis://:pw@b:2"),
            "redis://:REDACTED@a:1,redis://:REDACTED@b:2"
        );
    }
}
