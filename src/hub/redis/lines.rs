//! Publishing a log stream's lines through Redis.
//!
//! Followers hand over lines synchronously; Redis answers asynchronously.
//! Each log stream gets a [`LogQueue`] and a task that publishes its lines
//! in order, many per script call. While Redis is unreachable the queue
//! holds up to [`QUEUE_LINES`] lines or [`QUEUE_BYTES`] bytes and the task
//! retries; beyond that new lines are dropped and counted (a warning says
//! how many), so an outage cannot grow the process without bound. Nothing
//! is published before this node holds the stream's claim.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use super::link::{self, jitter};
use super::{Node, BACKOFF_MAX, BACKOFF_MIN};
use crate::hub::HubError;

/// Lines a queue holds while Redis is unreachable.
pub(super) const QUEUE_LINES: usize = 10_000;

/// Bytes a queue holds while Redis is unreachable.
pub(super) const QUEUE_BYTES: usize = 16 << 20;

/// Most lines per publish call.
const BATCH_LINES: usize = 256;

/// Most bytes per publish call.
const BATCH_BYTES: usize = 512 << 10;

/// The lines of one log stream on their way to Redis.
pub struct LogQueue {
    channel: String,
    path: String,
    /// std mutex: held only to push or take lines.
    inner: Mutex<Queued>,
    ready: Notify,
}

#[derive(Default)]
struct Queued {
    lines: VecDeque<String>,
    bytes: usize,
    dropped: u64,
}

impl LogQueue {
    /// Queues one line; false when the queue is full and the line dropped.
    pub(crate) fn push(&self, line: String) -> bool {
        let mut queued = self.inner.lock().expect("queue lock");
        if queued.lines.len() >= QUEUE_LINES || queued.bytes + line.len() > QUEUE_BYTES {
            queued.dropped += 1;
            return false;
        }
        queued.bytes += line.len();
        queued.lines.push_back(line);
        drop(queued);
        self.ready.notify_one();
        true
    }

    /// Takes the next batch (empty when nothing is queued).
    fn take(&self) -> (Vec<String>, u64) {
        let mut queued = self.inner.lock().expect("queue lock");
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(line) = queued.lines.front() {
            if batch.len() == BATCH_LINES || (!batch.is_empty() && bytes + line.len() > BATCH_BYTES)
            {
                break;
            }
            bytes += line.len();
            batch.extend(queued.lines.pop_front());
        }
        queued.bytes -= bytes;
        (batch, std::mem::take(&mut queued.dropped))
    }
}

/// Makes the queue of log channel `channel` and starts its task.
pub(crate) fn spawn(node: &Arc<Node>, channel: &str, path: &str) -> Arc<LogQueue> {
    let queue = Arc::new(LogQueue {
        channel: channel.to_string(),
        path: path.to_string(),
        inner: Mutex::new(Queued::default()),
        ready: Notify::new(),
    });
    tokio::spawn(run(node.clone(), Arc::downgrade(&queue)));
    queue
}

/// Publishes queued lines until shutdown or until the queue is dropped.
async fn run(node: Arc<Node>, queue: Weak<LogQueue>) {
    loop {
        let Some(q) = queue.upgrade() else { return };
        let (batch, dropped) = q.take();
        if dropped > 0 {
            tracing::warn!(
                "{}: {dropped} lines dropped while Redis was unreachable (queue full)",
                q.channel
            );
        }
        if batch.is_empty() {
            tokio::select! {
                _ = node.shutdown.cancelled() => return,
                _ = q.ready.notified() => {}
            }
            continue;
        }
        send_batch(&node, &q, batch).await;
        if node.shutdown.is_cancelled() {
            return;
        }
    }
}

/// Publishes one batch, retrying while Redis is unreachable. Lines of a
/// stream whose claim another node holds are dropped (the refusal was
/// logged once).
async fn send_batch(node: &Node, queue: &LogQueue, batch: Vec<String>) {
    let events: Vec<(&str, &str)> = batch
        .iter()
        .map(|line| (crate::sse::DEFAULT_EVENT_TYPE, line.as_str()))
        .collect();
    let mut backoff = BACKOFF_MIN;
    loop {
        let result = match node.claims.status(&queue.channel) {
            Some(false) => return,
            None => match super::claims::claim_log(node, &queue.channel, &queue.path).await {
                Ok(()) => continue,
                Err(e) => Err(e),
            },
            Some(true) => link::run_publish_script(node, &queue.channel, &events)
                .await
                .map(drop),
        };
        match result {
            Ok(()) => return,
            Err(HubError::Unavailable { .. }) => {
                tokio::select! {
                    _ = node.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(jitter(backoff)) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(e) => {
                tracing::warn!("{}: dropping {} lines: {e}", queue.channel, events.len());
                return;
            }
        }
    }
}
