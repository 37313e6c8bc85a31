//! `--header-timeout` and `--idle-timeout` for the connections hyper serves.
//!
//! A connection is *busy* while at least one of its requests has not
//! finished (its response body not yet dropped): an open SSE stream is
//! busy for as long as it is open, so neither timeout ever ends one. When
//! it is not busy, it is waiting, and the deadline depends on what for:
//!
//! - its first request head: `header` from the accept (the lean path, which
//!   reads first, hands over the same deadline);
//! - the next request on a kept-alive connection: `idle` from the end of
//!   the previous response; once a byte of a new head arrives (HTTP/1.1
//!   only), `header` from that byte.
//!
//! A connection whose deadline passes is closed (no request is in flight,
//! so nothing is cut short). hyper's own `header_read_timeout` is not used:
//! it starts as soon as the previous response is written, so it cannot tell
//! an idle connection from a slow head.
//!
//! One [`Activity`] per connection holds the state; a [`RequestGuard`]
//! held by the response body (see `guarded`) marks a request finished when
//! the body is dropped; [`WatchReads`]
//! notices the first byte of a head; [`Activity::expired`] is the watchdog
//! the connection task selects on.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The two waiting limits of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest time to send a complete request head.
    pub header: Duration,
    /// Longest time a kept-alive connection may wait for its next request.
    pub idle: Duration,
}

/// What a connection that is not busy is waiting for, and since when.
#[derive(Debug, Clone, Copy)]
enum Waiting {
    /// A request head (the first, or one whose first byte has arrived).
    Head(Instant),
    /// The first byte of the next request.
    Idle(Instant),
}

#[derive(Debug)]
struct State {
    /// Requests whose response has not finished.
    open: usize,
    waiting: Waiting,
}

/// The request/idle state of one connection (see the module docs).
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
    changed: Notify,
    timeouts: Timeouts,
}

impl Activity {
    /// A connection waiting for its first request head since `accepted`.
    pub fn new(timeouts: Timeouts, accepted: Instant) -> Arc<Self> {
        Arc::new(Activity {
            state: Mutex::new(State {
                open: 0,
                waiting: Waiting::Head(accepted),
            }),
            changed: Notify::new(),
            timeouts,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request head has been read: the connection is busy until the
    /// returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.lock().open += 1;
        RequestGuard {
            activity: self.clone(),
        }
    }

    /// Bytes arrived: on an idle connection they start a new head.
    fn on_read(&self) {
        let mut state = self.lock();
        if state.open == 0 && matches!(state.waiting, Waiting::Idle(_)) {
            state.waiting = Waiting::Head(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// When the connection must be closed if nothing changes; `None`: busy.
    fn deadline(&self) -> Option<Instant> {
        let state = self.lock();
        if state.open > 0 {
            return None;
        }
        Some(match state.waiting {
            Waiting::Head(since) => since + self.timeouts.header,
            Waiting::Idle(since) => since + self.timeouts.idle,
        })
    }

    /// Completes when the connection has waited past its deadline; never
    /// while a request is in flight.
    pub async fn expired(&self) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            match self.deadline() {
                None => changed.await,
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = changed => {}
                    }
                }
            }
        }
    }
}

/// One request in flight; dropping it ends the request (see
/// [`Activity::begin`]).
#[derive(Debug)]
pub struct RequestGuard {
    activity: Arc<Activity>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut state = self.activity.lock();
        state.open -= 1;
        if state.open == 0 {
            state.waiting = Waiting::Idle(Instant::now());
            drop(state);
            self.activity.changed.notify_one();
        }
    }
}

/// A connection that tells its [`Activity`] when bytes arrive (HTTP/1.1:
/// the first byte of a head ends the idle wait).
pub struct WatchReads<IO> {
    inner: IO,
    activity: Arc<Activity>,
}

impl<IO> WatchReads<IO> {
    /// Wraps `inner`.
    pub fn new(inner: IO, activity: Arc<Activity>) -> Self {
        WatchReads { inner, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WatchReads<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        result
    }
}

forward_async_write!(WatchReads);

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn first_head_has_the_header_timeout_from_accept() {
        let start = Instant::now();
        let activity = Activity::new(T, start);
        activity.expired().await;
        assert_eq!(Instant::now() - start, T.header);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_never_expires_then_idles() {
        let start = Instant::now();
        let activity = Activity::new(T, start);
        let guard = activity.begin();
        let waited = tokio::time::timeout(Duration::from_secs(3600), activity.expired()).await;
        assert!(waited.is_err(), "expired while busy");
        drop(guard);
        let ended = Instant::now();
        activity.expired().await;
        assert_eq!(Instant::now() - ended, T.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_byte_after_idle_starts_the_header_timeout() {
        let activity = Activity::new(T, Instant::now());
        drop(activity.begin());
        tokio::time::advance(Duration::from_secs(30)).await;
        activity.on_read();
        let read = Instant::now();
        activity.expired().await;
        assert_eq!(Instant::now() - read, T.header);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_follows_changes_while_it_waits() {
        let activity = Activity::new(T, Instant::now());
        let guard = activity.begin();
        let watchdog = tokio::spawn({
            let activity = activity.clone();
            async move { activity.expired().await }
        });
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(guard);
        let idle = Instant::now();
        watchdog.await.unwrap();
        assert_eq!(Instant::now() - idle, T.idle);
    }
}
