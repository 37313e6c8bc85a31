//! HTTP/2 (over TLS by ALPN, or h2c with prior knowledge on plaintext),
//! served with the `h2` crate directly rather than through hyper, so that
//! each stream gets every SSE guarantee on its own.
//!
//! Why not hyper's HTTP/2 server: it pipes a response body into the stream
//! and, once a chunk is waiting for flow-control window, awaits window and
//! nothing else, forever: there is no way to reset one stalled stream while
//! the others of the connection go on. Here each stream's sender waits for
//! window with `--send-timeout`, and on expiry sends `RST_STREAM` (`CANCEL`)
//! and drops the body (which unsubscribes). It also sends only as much as
//! the window allows, so a stalled stream holds at most one batch.
//!
//! A connection runs in one task: the `h2` connection (which does all the
//! socket I/O) and a set of stream futures, each routed through the same
//! router as HTTP/1.1 (so every rule, access control included, is the
//! same). The connection's [`Activity`] counts open streams: the first
//! request must come within `--header-timeout` of the accept (TLS
//! handshake included), and a connection with no open stream for
//! `--idle-timeout` gets a `GOAWAY`.

use std::future::poll_fn;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::http::{header, HeaderValue, Request, Response};
use bytes::{Bytes, BytesMut};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::sse_conn::{self, poll_frames, Step, BATCH_FRAMES, COALESCE};
use super::timeouts::{Activity, RequestGuard};
use super::Connections;

/// Streams a client may open at once on one connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Largest request header block accepted.
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// Data `h2` may buffer per stream beyond what the peer's window allows.
const MAX_SEND_BUFFER: usize = 64 * 1024;

/// Longest wait for the connection to close after a `GOAWAY`.
const GOAWAY_GRACE: Duration = Duration::from_secs(5);

/// The HTTP/2 settings of every connection.
pub fn builder() -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buffer_size(MAX_SEND_BUFFER);
    builder
}

/// Serves one HTTP/2 connection until it closes, its head or idle deadline
/// passes, or shutdown (which sends `GOAWAY` and lets the streams, which
/// end on shutdown, finish).
pub(super) async fn serve<IO>(io: IO, conns: Arc<Connections>, peer: IpAddr, accepted: Instant)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new(conns.timeouts, accepted);
    let mut connection = tokio::select! {
        handshake = conns.http2.handshake::<_, Bytes>(io) => match handshake {
            Ok(connection) => connection,
            Err(e) => {
                tracing::debug!("HTTP/2 handshake failed: {e}");
                return;
            }
        },
        _ = activity.expired() => return,
        _ = conns.shutdown.cancelled() => return,
    };
    let mut streams = FuturesUnordered::new();
    let mut closing: Option<Instant> = None;
    loop {
        let give_up = closing.map(|since| since + GOAWAY_GRACE);
        tokio::select! {
            accepted = connection.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    let guard = activity.begin();
                    streams.push(serve_stream(request, respond, conns.clone(), peer, guard));
                }
                Some(Err(e)) => {
                    tracing::debug!("HTTP/2 connection ended: {e}");
                    break;
                }
                None => break,
            },
            Some(()) = streams.next(), if !streams.is_empty() => {}
            _ = activity.expired(), if closing.is_none() => {
                connection.graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = conns.shutdown.cancelled(), if closing.is_none() => {
                connection.graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = sleep_until(give_up), if give_up.is_some() => break,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Routes one stream's request and sends the answer.
///
/// Not an `async fn`: the request is handed to the router before the
/// future is made, so the future (which lives as long as the stream)
/// does not keep room for the request's head.
fn serve_stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    conns: Arc<Connections>,
    peer: IpAddr,
    guard: RequestGuard,
) -> impl std::future::Future<Output = ()> + Send {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let request = request.map(|stream| {
        Body::new(RequestBody {
            stream,
            left: announced,
        })
    });
    let routed = conns.route(request, peer);
    async move {
        let _guard = guard;
        let sent = {
            let response = tokio::select! {
                response = routed => response,
                // The client gave up (RST_STREAM) before the answer was ready.
                _ = poll_fn(|cx| respond.poll_reset(cx)) => return,
            };
            send_head(&mut respond, response)
        };
        if let SentHead::Body(body, send) = sent {
            send_body(body, send, &conns).await;
        }
    }
}

/// What became of a response head.
enum SentHead {
    /// Sent, with the end of the stream: there was no body.
    Complete,
    /// Sent; this body goes on this stream.
    Body(Body, SendStream<Bytes>),
    /// Not sent: the stream or the connection is gone.
    Gone,
}

/// Sends the head of `response` (less what HTTP/2 forbids; with `date`
/// and, when the body's size is known, `content-length`).
fn send_head(respond: &mut SendResponse<Bytes>, response: axum::response::Response) -> SentHead {
    let (mut parts, body) = response.into_parts();
    strip_connection_headers(&mut parts.headers);
    if !parts.headers.contains_key(header::DATE) {
        if let Ok(date) =
            HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
        {
            parts.headers.insert(header::DATE, date);
        }
    }
    if let Some(length) = body.size_hint().exact() {
        if !parts.headers.contains_key(header::CONTENT_LENGTH) {
            parts.headers.insert(header::CONTENT_LENGTH, length.into());
        }
    }
    let end = body.is_end_stream();
    match respond.send_response(Response::from_parts(parts, ()), end) {
        Ok(_) if end => SentHead::Complete,
        Ok(send) => SentHead::Body(body, send),
        Err(e) => {
            tracing::debug!("HTTP/2 response not sent: {e}");
            SentHead::Gone
        }
    }
}

/// Headers HTTP/2 forbids in a response (RFC 9113 §8.2.2).
fn strip_connection_headers(headers: &mut axum::http::HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

/// Why a body stopped being sent before its end.
#[derive(Debug)]
enum Stop {
    /// The peer granted no window for `--send-timeout`.
    Stalled,
    /// The stream or connection is gone (reset by the peer, closed).
    Gone,
}

/// Sends `body` on `send`: every frame the body has ready as one batch,
/// never more than the window allows, until the body ends, the peer resets
/// the stream, or the stream stalls for `--send-timeout` (then
/// `RST_STREAM CANCEL`).
async fn send_body(mut body: Body, mut send: SendStream<Bytes>, conns: &Connections) {
    loop {
        let step = tokio::select! {
            step = poll_fn(|cx| poll_batch(cx, &mut body)) => step,
            _ = poll_fn(|cx| send.poll_reset(cx)) => return,
        };
        // Woken with room in the batch: let the other ready tasks run
        // first (the publisher's next POST among them), then take what
        // they published too, as the HTTP/1.1 lean path does (see
        // `sse_conn::COALESCE`): one DATA frame for several events.
        let step = match step {
            Batch::Frames(mut frames) if COALESCE && frames.len() < BATCH_FRAMES => {
                tokio::task::yield_now().await;
                poll_fn(|cx| Poll::Ready(top_up(cx, &mut body, &mut frames))).await
            }
            step => step,
        };
        let step = joined(step);
        let (data, last) = match step {
            Batch::Data { data, last } => (data, last),
            Batch::Frames(_) => unreachable!("joined above"),
            Batch::End => {
                let _ = send.send_data(Bytes::new(), true);
                return;
            }
            Batch::Error => {
                send.send_reset(Reason::INTERNAL_ERROR);
                return;
            }
        };
        let (mut data, last) = (data, last);
        let sent = match send_now(&mut send, &mut data, last) {
            Ok(true) => Ok(()),
            // Boxed: waiting for window is rare, and its state (the rest
            // of the data, the timer) must not size every open stream.
            Ok(false) => {
                Box::pin(send_within_window(
                    &mut send,
                    data,
                    last,
                    conns.send_timeout,
                ))
                .await
            }
            Err(stop) => Err(stop),
        };
        match sent {
            Ok(()) if last => return,
            Ok(()) => {}
            Err(Stop::Stalled) => {
                conns.metrics.slow_dropped.inc();
                tracing::debug!(
                    stream = send.stream_id().as_u32(),
                    "HTTP/2 stream stalled for --send-timeout, reset"
                );
                send.send_reset(Reason::CANCEL);
                return;
            }
            Err(Stop::Gone) => return,
        }
    }
}

/// What the body has ready.
enum Batch {
    /// Data frames, the body still open.
    Frames(Vec<Bytes>),
    /// Frames joined into one buffer; `last`: the body ended after them.
    Data { data: Bytes, last: bool },
    /// The body ended with nothing more.
    End,
    /// The body failed.
    Error,
}

impl From<Step> for Batch {
    fn from(step: Step) -> Batch {
        match step {
            Step::Frames {
                frames,
                last: false,
            } => Batch::Frames(frames),
            Step::Frames { frames, last: true } => Batch::Data {
                data: join(frames),
                last: true,
            },
            Step::End => Batch::End,
            Step::Abort => Batch::Error,
        }
    }
}

/// Takes every data frame `body` has ready (see [`poll_frames`]).
fn poll_batch(cx: &mut Context<'_>, body: &mut Body) -> Poll<Batch> {
    poll_frames(cx, body).map(Batch::from)
}

/// Adds what `body` has ready now to `frames` (see [`sse_conn::top_up`]).
fn top_up(cx: &mut Context<'_>, body: &mut Body, frames: &mut Vec<Bytes>) -> Batch {
    match sse_conn::top_up(cx, body, frames) {
        // Still open: sent as data, without a second wait.
        Step::Frames { frames, last } => Batch::Data {
            data: join(frames),
            last,
        },
        step => Batch::from(step),
    }
}

/// Open frames as one buffer to send.
fn joined(batch: Batch) -> Batch {
    match batch {
        Batch::Frames(frames) => Batch::Data {
            data: join(frames),
            last: false,
        },
        batch => batch,
    }
}

/// `frames` as one buffer, copied only when there are several.
fn join(mut frames: Vec<Bytes>) -> Bytes {
    match frames.len() {
        1 => frames.pop().unwrap_or_default(),
        _ => {
            let mut joined = BytesMut::with_capacity(frames.iter().map(Bytes::len).sum());
            for frame in &frames {
                joined.extend_from_slice(frame);
            }
            joined.freeze()
        }
    }
}

/// Sends as much of `data` as the window allows now, without waiting:
/// `true` when all of it went.
fn send_now(send: &mut SendStream<Bytes>, data: &mut Bytes, last: bool) -> Result<bool, Stop> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let room = send.capacity();
        if room == 0 {
            return Ok(false);
        }
        let piece = data.split_to(room.min(data.len()));
        send.send_data(piece, last && data.is_empty())
            .map_err(|_| Stop::Gone)?;
    }
    Ok(true)
}

/// Sends `data` in pieces no larger than the window the peer grants,
/// waiting at most `timeout` for each grant.
async fn send_within_window(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    last: bool,
    timeout: Duration,
) -> Result<(), Stop> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        if send.capacity() == 0 {
            // Boxed: the timer exists only while the window is closed, and
            // must not size the future of every open stream.
            let stalled = Box::pin(tokio::time::sleep(timeout));
            tokio::select! {
                _ = stalled => return Err(Stop::Stalled),
                granted = poll_fn(|cx| send.poll_capacity(cx)) => match granted {
                    None | Some(Err(_)) => return Err(Stop::Gone),
                    Some(Ok(_)) => continue,
                },
            }
        }
        let piece = data.split_to(send.capacity().min(data.len()));
        send.send_data(piece, last && data.is_empty())
            .map_err(|_| Stop::Gone)?;
    }
    Ok(())
}

/// A request body read from an HTTP/2 stream, giving window back as it is
/// consumed.
struct RequestBody {
    stream: RecvStream,
    /// What is left of the announced `content-length` (the `h2` crate
    /// refuses a stream whose data does not match it).
    left: Option<u64>,
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, h2::Error>>> {
        match self.stream.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                let _ = self.stream.flow_control().release_capacity(data.len());
                self.left = self.left.map(|left| left.saturating_sub(data.len() as u64));
                Poll::Ready(Some(Ok(http_body::Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => match self.stream.poll_trailers(cx) {
                Poll::Ready(Ok(Some(trailers))) => {
                    Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
                }
                Poll::Ready(Ok(None)) => Poll::Ready(None),
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.left {
            Some(left) => http_body::SizeHint::with_exact(left),
            None => http_body::SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an open HTTP/2 stream costs in its connection's task: the
    /// future of [`serve_stream`] lives as long as the stream.
    #[tokio::test]
    async fn a_stream_future_stays_small() {
        let tracker = tokio_util::task::TaskTracker::new();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let config =
            crate::config::ServeConfig::from_args(["/nonexistent/tailcast-h2.log"]).unwrap();
        let conns = Connections::start(config, &tracker, &shutdown)
            .await
            .unwrap();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let client = tokio::spawn(async move {
            let (mut client, connection) = h2::client::handshake(client_io).await.unwrap();
            tokio::spawn(connection);
            let request = Request::get("http://x/realtime/a").body(()).unwrap();
            let _ = client.send_request(request, true).unwrap();
            client
        });
        let mut server = builder().handshake::<_, Bytes>(server_io).await.unwrap();
        let (request, respond) = server.accept().await.unwrap().unwrap();
        let activity = Activity::new(conns.timeouts, Instant::now());
        let future = serve_stream(
            request,
            respond,
            conns.clone(),
            "127.0.0.1".parse().unwrap(),
            activity.begin(),
        );
        let size = std::mem::size_of_val(&future);
        eprintln!("serve_stream future: {size} bytes");
        assert!(size <= 400, "the per-stream future grew to {size} bytes");
        drop(future);
        drop(client.await.unwrap());
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
