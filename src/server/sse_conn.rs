//! The lean path for SSE connections: HTTP/1.1 served without hyper for
//! the one request shape that stays open for hours.
//!
//! Why it is hand-written: with hyper, every idle SSE connection costs
//! 12.26 KiB of server RSS (measured with `tailcast-load idle`, 10,000 and
//! 19,000 connections), and heaptrack puts most of it in hyper's two 8 KiB
//! buffers per HTTP/1 connection (read buffer and head write buffer,
//! `INIT_BUFFER_SIZE` in hyper's `proto/h1/io.rs`, not configurable). This
//! path reads the head into a 512-byte buffer, frees it once the request
//! is routed, and keeps no buffer while the stream is idle: 2.68 KiB per
//! idle connection at 10,000 and at 19,000 connections, same machine, same
//! tool. Delivery did not regress (100 subscribers at max rate and 1,000 at
//! 1,000 events/s: no loss, duplicate or reordering; see
//! docs/performance.md).
//!
//! What it does: reads the request head (512 B, growing up to
//! [`HEAD_MAX`]), looking for its end in the new bytes of each read only
//! ([`HeadScan`]), and parses it with `httparse` when its first line and
//! when the whole head have arrived (never once per read); a head not complete by the
//! `--header-timeout` deadline closes the connection. A request over
//! HTTP/1.1 with no body and no `Upgrade` that the SSE route table calls a
//! stream ([`routes::is_sse_request`]: a `GET` of `/logs/…`,
//! `/stream-logs`, `/realtime/…`, `/events`, `/stream`, `/stream-numbers`,
//! or of `/metrics` when `Accept` names `text/event-stream`) is routed
//! through the shared axum `Router` exactly as hyper would route it. A `200 text/event-stream`
//! answer is written here: the head, then per wake-up every frame the body
//! has ready (up to [`BATCH_FRAMES`] / [`BATCH_BYTES`]), after yielding
//! once so that events published meanwhile join them ([`COALESCE`]), as
//! one chunk in one vectored write, then `0\r\n\r\n` when the body ends (on shutdown too:
//! SSE bodies watch the shutdown token). While the stream is idle the read
//! side is watched: EOF or an error from the client drops the body at once,
//! which unsubscribes; bytes the client sends are discarded. Any other
//! answer from those endpoints (a JSON error) is written with
//! `Content-Length` and `Connection: close`.
//!
//! What it does not do: everything else. Other methods and paths, HTTP/1.0,
//! request bodies, upgrades, heads that do not parse or exceed
//! [`HEAD_MAX`] go to hyper with the bytes already read replayed first
//! ([`Rewind`]), so they behave exactly as before. On this path the
//! connection is never reused: the SSE response (or error) is its last.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody as _};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::Response;
use bytes::{Buf, Bytes};
use futures_util::future::Either;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::sync::CancellationToken;

use super::Connections;
use crate::http::routes;

/// First size of the request head buffer; it doubles as needed.
const HEAD_INITIAL: usize = 512;

/// Largest request head read here; a longer one goes to hyper.
pub(super) const HEAD_MAX: usize = 16 * 1024;

/// Most headers parsed here; more go to hyper (which allows 100).
const MAX_HEADERS: usize = 64;

/// Most frames written as one chunk.
pub(super) const BATCH_FRAMES: usize = 64;

/// Bytes after which no more frames are added to a chunk.
pub(super) const BATCH_BYTES: usize = 256 * 1024;

/// Whether a stream woken with events yields once before writing them
/// (see [`stream_body`]). The tokio scheduler runs a yielded task again
/// only after the other tasks already queued and after polling the sockets,
/// so a POST that arrived meanwhile is committed first and its event goes
/// out in the same write: at 1,000 subscribers and one sequential publisher
/// this turned one `writev` per delivery into one per several (see
/// docs/performance.md). Frames stay in order and are taken once; the only
/// cost is one more poll per wake-up.
pub(super) const COALESCE: bool = true;

/// Largest non-SSE answer (a JSON error) written here.
const ERROR_BODY_MAX: usize = 64 * 1024;

/// Serves `io`'s request itself when it is an SSE request, and returns
/// `None` once the connection is done; otherwise returns the connection,
/// with the bytes already read to be replayed, for hyper to serve.
/// Shutdown, or `head_deadline` passing (`--header-timeout`), closes a
/// connection still waiting for its request head.
pub(super) async fn serve<IO>(
    mut io: IO,
    conns: Arc<Connections>,
    peer: IpAddr,
    head_deadline: tokio::time::Instant,
) -> Option<Rewind<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    // Boxed, like the error answer below: reading the head happens once,
    // and its state (buffer, timers) must not size the task for the whole
    // life of the stream.
    let request = match Box::pin(read_head(&mut io, &conns.shutdown, head_deadline)).await {
        HeadRead::Lean(request) => request,
        HeadRead::Hyper(buf) => return Some(Rewind::new(io, buf)),
        HeadRead::Closed => return None,
    };
    let answer = {
        // Boxed (by `route`): the router's future (~4 KiB) must not size
        // the task. The response is scoped to this block so that the task
        // does not keep room for it while the stream runs.
        let response = conns.route(*request, peer).await;
        if routes::is_event_stream(&response) {
            Either::Left(stream(&mut io, response))
        } else {
            Either::Right(Box::pin(respond(&mut io, response)))
        }
    };
    let result = answer.await;
    if let Err(e) = result {
        tracing::debug!("SSE connection ended: {e}");
    }
    None
}

/// How reading a request head ended.
enum HeadRead {
    /// An SSE request, for the router.
    Lean(Box<Request<Body>>),
    /// Anything else: these bytes, read so far, go to hyper.
    Hyper(Vec<u8>),
    /// The connection closed, failed, timed out or the server is stopping.
    Closed,
}

/// Reads the request head (see [`serve`]).
async fn read_head<IO>(
    io: &mut IO,
    shutdown: &CancellationToken,
    deadline: tokio::time::Instant,
) -> HeadRead
where
    IO: AsyncRead + Unpin,
{
    let mut buf: Vec<u8> = Vec::with_capacity(HEAD_INITIAL);
    let mut scan = HeadScan::default();
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= HEAD_MAX {
                return HeadRead::Hyper(buf);
            }
            buf.reserve(buf.capacity());
        }
        let read = tokio::select! {
            _ = shutdown.cancelled() => return HeadRead::Closed,
            _ = tokio::time::sleep_until(deadline) => return HeadRead::Closed,
            read = io.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) | Err(_) => return HeadRead::Closed,
            Ok(_) => {}
        }
        if !scan.worth_parsing(&buf) {
            continue;
        }
        match parse_head(&buf) {
            // The head has ended but does not parse as a whole yet (empty
            // lines before the request line): hyper reads it as it likes.
            Head::Partial if scan.ended => return HeadRead::Hyper(buf),
            Head::Partial => {}
            Head::Hyper => return HeadRead::Hyper(buf),
            // Whatever followed the head (a pipelined request) is not served.
            Head::Lean(request) => return HeadRead::Lean(request),
        }
    }
}

/// Where the search for the end of the request head stopped, so that each
/// read looks only at its new bytes: a head trickled in byte by byte costs
/// linear time, not a parse of everything read after every read. The head
/// is parsed at most twice: once when its first line has arrived (so that
/// anything but HTTP/1.x, such as the HTTP/2 preface, goes to hyper at
/// once) and once when it has ended.
#[derive(Debug, Default)]
struct HeadScan {
    /// Bytes already looked at.
    searched: usize,
    /// A line feed has been seen: the first line is complete.
    first_line: bool,
    /// The empty line that ends a head has been seen.
    ended: bool,
}

impl HeadScan {
    /// Whether `buf` (the head read so far, grown since the last call) is
    /// worth parsing now: its first line or the whole head just arrived.
    fn worth_parsing(&mut self, buf: &[u8]) -> bool {
        // A line end may straddle two reads: look again at the last two
        // bytes already searched.
        let new = &buf[self.searched.saturating_sub(2)..];
        self.searched = buf.len();
        let first = !self.first_line && new.contains(&b'\n');
        self.first_line |= first;
        // `\n\n` or `\n\r\n`: an empty line (httparse takes bare LF too).
        self.ended = new
            .windows(2)
            .enumerate()
            .any(|(i, w)| w[0] == b'\n' && (w[1] == b'\n' || new[i + 1..].starts_with(b"\r\n")));
        first || self.ended
    }
}

/// What a request head read so far calls for.
#[derive(Debug)]
enum Head {
    /// The head is not complete yet.
    Partial,
    /// An SSE request for this path, ready for the router.
    Lean(Box<Request<Body>>),
    /// Anything else: hyper serves it.
    Hyper,
}

/// Parses the head in `buf` (see [`Head`]).
fn parse_head(buf: &[u8]) -> Head {
    #[cfg(test)]
    tests::PARSES.with(|n| n.set(n.get() + 1));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(buf) {
        Ok(httparse::Status::Partial) => Head::Partial,
        Ok(httparse::Status::Complete(_)) => {
            lean_request(&parsed).map_or(Head::Hyper, |r| Head::Lean(Box::new(r)))
        }
        Err(_) => Head::Hyper,
    }
}

/// The request to route here, or `None` when hyper must serve it.
fn lean_request(parsed: &httparse::Request<'_, '_>) -> Option<Request<Body>> {
    if parsed.method? != "GET" || parsed.version? != 1 {
        return None;
    }
    let target = parsed.path?;
    if !target.starts_with('/') {
        return None;
    }
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(target)
        .body(Body::empty())
        .ok()?;
    let headers = request.headers_mut();
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::UPGRADE
        {
            return None;
        }
        let value = HeaderValue::from_bytes(h.value).ok()?;
        headers.append(name, value);
    }
    routes::is_sse_request(request.method(), request.uri().path(), request.headers())
        .then_some(request)
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy)]
enum BodyFraming {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length` of this many bytes.
    Length(usize),
}

/// The response head: status line, `headers` (less any framing or
/// connection header), `Date`, the framing header and `Connection: close`.
fn response_head(status: StatusCode, headers: &HeaderMap, framing: BodyFraming) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(header::DATE) {
        head.extend_from_slice(b"date: ");
        head.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match framing {
        BodyFraming::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyFraming::Length(n) => {
            head.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
        }
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

/// Writes a non-SSE `response` (a small JSON error) and closes.
async fn respond<IO>(io: &mut IO, response: Response) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    let (parts, body) = response.into_parts();
    let body = http_body_util::Limited::new(body, ERROR_BODY_MAX)
        .collect()
        .await
        .map_err(|e| io::Error::other(format!("response body: {e}")))?
        .to_bytes();
    let head = response_head(
        parts.status,
        &parts.headers,
        BodyFraming::Length(body.len()),
    );
    write_all_vectored(io, &mut [IoSlice::new(&head), IoSlice::new(&body)]).await?;
    io.shutdown().await
}

/// What the stream loop does next.
pub(super) enum Step {
    /// Write these frames as one chunk; `last`: the body has ended.
    Frames { frames: Vec<Bytes>, last: bool },
    /// The body ended with nothing more to write.
    End,
    /// The client closed or failed, or the body failed: drop everything.
    Abort,
}

/// Writes the SSE `response` chunk by chunk until its body ends or the
/// client goes away.
///
/// Not an `async fn`: the response head is encoded before the future is
/// made, so the future (which lives as long as the stream, inside the
/// connection's task) keeps only the body and the encoded head, not the
/// response's header map.
fn stream<'a, IO>(
    io: &'a mut IO,
    response: Response,
) -> impl std::future::Future<Output = io::Result<()>> + 'a
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let (parts, body) = response.into_parts();
    let head = response_head(parts.status, &parts.headers, BodyFraming::Chunked);
    drop(parts);
    stream_body(io, head, body)
}

/// Writes `head`, then `body` chunk by chunk (see [`stream`]).
async fn stream_body<IO>(io: &mut IO, head: Vec<u8>, mut body: Body) -> io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(&head).await?;
    drop(head);
    loop {
        let step = match poll_fn(|cx| poll_step(cx, io, &mut body)).await {
            // Woken with room in the batch: let every other ready task run
            // first (the publisher's next POST among them), then take what
            // they published too, so that one write carries several events
            // (see [`COALESCE`]).
            Step::Frames {
                mut frames,
                last: false,
            } if COALESCE && frames.len() < BATCH_FRAMES => {
                tokio::task::yield_now().await;
                poll_fn(|cx| Poll::Ready(top_up(cx, &mut body, &mut frames))).await
            }
            step => step,
        };
        match step {
            Step::Frames { frames, last } => {
                write_chunk(io, &frames, last).await?;
                if last {
                    break;
                }
            }
            Step::End => {
                write_all_vectored(io, &mut [IoSlice::new(b"0\r\n\r\n")]).await?;
                break;
            }
            Step::Abort => return Ok(()),
        }
    }
    io.shutdown().await
}

/// Watches the client's side for EOF, then takes every frame `body` has
/// ready, up to [`BATCH_FRAMES`] and [`BATCH_BYTES`].
fn poll_step<IO>(cx: &mut Context<'_>, io: &mut IO, body: &mut Body) -> Poll<Step>
where
    IO: AsyncRead + Unpin,
{
    let mut discard = [0u8; 256];
    loop {
        let mut read = ReadBuf::new(&mut discard);
        match Pin::new(&mut *io).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Step::Abort),
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Poll::Ready(Step::Abort),
            Poll::Pending => break,
        }
    }
    poll_frames(cx, body)
}

/// Takes every data frame `body` has ready, up to [`BATCH_FRAMES`] and
/// [`BATCH_BYTES`]: the one batching rule of HTTP/1.1 and HTTP/2 streams.
/// `Abort` when the body failed; `Pending` when nothing is ready.
pub(super) fn poll_frames(cx: &mut Context<'_>, body: &mut Body) -> Poll<Step> {
    let mut frames = Vec::new();
    match fill(cx, body, &mut frames) {
        Fill::Failed => Poll::Ready(Step::Abort),
        Fill::Ended if frames.is_empty() => Poll::Ready(Step::End),
        Fill::Ended => Poll::Ready(Step::Frames { frames, last: true }),
        Fill::Open if frames.is_empty() => Poll::Pending,
        Fill::Open => Poll::Ready(Step::Frames {
            frames,
            last: false,
        }),
    }
}

/// Adds to `frames` (not empty) what `body` has ready now, within the
/// batch limits (see [`poll_frames`]), and says what to write.
pub(super) fn top_up(cx: &mut Context<'_>, body: &mut Body, frames: &mut Vec<Bytes>) -> Step {
    let mut frames = std::mem::take(frames);
    match fill(cx, body, &mut frames) {
        Fill::Failed => Step::Abort,
        Fill::Ended => Step::Frames { frames, last: true },
        Fill::Open => Step::Frames {
            frames,
            last: false,
        },
    }
}

/// How taking a body's ready frames stopped.
enum Fill {
    /// The body is still open (nothing more ready, or the batch is full).
    Open,
    /// The body has ended.
    Ended,
    /// The body failed.
    Failed,
}

/// Appends to `frames` every data frame `body` has ready until the batch
/// holds [`BATCH_FRAMES`] frames or [`BATCH_BYTES`] bytes.
fn fill(cx: &mut Context<'_>, body: &mut Body, frames: &mut Vec<Bytes>) -> Fill {
    let mut bytes: usize = frames.iter().map(Bytes::len).sum();
    while frames.len() < BATCH_FRAMES && bytes < BATCH_BYTES {
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() {
                        bytes += data.len();
                        frames.push(data);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => return Fill::Failed,
            Poll::Ready(None) => return Fill::Ended,
            Poll::Pending => break,
        }
    }
    Fill::Open
}

/// Writes `frames` as one HTTP chunk (followed by the last, empty chunk
/// when `last`) in one vectored write loop.
async fn write_chunk<W>(io: &mut W, frames: &[Bytes], last: bool) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let len: usize = frames.iter().map(Bytes::len).sum();
    let size = format!("{len:x}\r\n");
    let tail: &[u8] = if last { b"\r\n0\r\n\r\n" } else { b"\r\n" };
    let mut slices = Vec::with_capacity(frames.len() + 2);
    slices.push(IoSlice::new(size.as_bytes()));
    slices.extend(frames.iter().map(|f| IoSlice::new(f)));
    slices.push(IoSlice::new(tail));
    write_all_vectored(io, &mut slices).await
}

/// Writes every byte of `bufs`, however the writer splits them.
async fn write_all_vectored<W>(io: &mut W, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match io.write_vectored(bufs).await {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A connection whose first reads return bytes already read from it, so
/// hyper sees the request from its first byte.
pub(super) struct Rewind<IO> {
    prefix: Bytes,
    inner: IO,
}

impl<IO> Rewind<IO> {
    fn new(inner: IO, prefix: Vec<u8>) -> Self {
        Rewind {
            prefix: Bytes::from(prefix),
            inner,
        }
    }

    /// Whether the bytes read so far begin with `start`.
    pub(super) fn starts_with(&self, start: &[u8]) -> bool {
        self.prefix.starts_with(start)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

forward_async_write!(Rewind);

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Calls of [`parse_head`] on this thread.
        pub(super) static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// A client that sends its bytes one per read.
    struct OneByte {
        bytes: Vec<u8>,
        at: usize,
    }

    impl AsyncRead for OneByte {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(&b) = self.bytes.get(self.at) {
                buf.put_slice(&[b]);
                self.at += 1;
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Reads `head` one byte per read; returns how it ended and how many
    /// times the head was parsed.
    async fn trickled(head: &[u8]) -> (HeadRead, usize) {
        let mut io = OneByte {
            bytes: head.to_vec(),
            at: 0,
        };
        PARSES.with(|n| n.set(0));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let read = read_head(&mut io, &CancellationToken::new(), deadline).await;
        (read, PARSES.with(|n| n.get()))
    }

    #[tokio::test]
    async fn a_head_read_byte_by_byte_is_parsed_a_bounded_number_of_times() {
        let mut head = b"GET /realtime/news HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..50 {
            head.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(200)).as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert!(head.len() < HEAD_MAX);
        let (read, parses) = trickled(&head).await;
        assert!(matches!(read, HeadRead::Lean(_)), "not served here");
        assert!(parses <= 2, "{} bytes parsed {parses} times", head.len());
        // Bare LF line ends too.
        let (read, parses) = trickled(b"GET /events?channel=a HTTP/1.1\nHost: x\n\n").await;
        assert!(matches!(read, HeadRead::Lean(_)), "not served here");
        assert!(parses <= 2, "parsed {parses} times");
        // Something that is not HTTP/1.1 goes to hyper as soon as its first
        // line says so, whole.
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let (read, parses) = trickled(preface).await;
        match read {
            HeadRead::Hyper(bytes) => assert_eq!(bytes, b"PRI * HTTP/2.0\r\n"),
            _ => panic!("the preface is not for the lean path"),
        }
        assert_eq!(parses, 1);
        // A head over the limit goes to hyper, unparsed past its first line.
        let mut long = b"GET /events HTTP/1.1\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'a', HEAD_MAX));
        let (read, parses) = trickled(&long).await;
        assert!(matches!(read, HeadRead::Hyper(b) if b.len() >= HEAD_MAX));
        assert!(parses <= 2, "parsed {parses} times");
    }

    /// A writer that takes at most `max` bytes per call and records them.
    struct Trickle {
        max: usize,
        out: Vec<u8>,
        calls: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.max);
            self.out.extend_from_slice(&buf[..n]);
            self.calls += 1;
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.max;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(left);
                self.out.extend_from_slice(&b[..take]);
                left -= take;
                n += take;
                if left == 0 {
                    break;
                }
            }
            self.calls += 1;
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn trickle(max: usize) -> Trickle {
        Trickle {
            max,
            out: Vec::new(),
            calls: 0,
        }
    }

    fn frames() -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"retry: 3000\n\n"),
            Bytes::new(),
            Bytes::from_static(b"id: 1\ndata: a\n\n"),
            Bytes::from_static(b"id: 2\ndata: bb\n\n"),
        ]
    }

    const CHUNK: &[u8] = b"2c\r\nretry: 3000\n\nid: 1\ndata: a\n\nid: 2\ndata: bb\n\n\r\n";

    #[tokio::test]
    async fn chunk_is_one_write_when_the_socket_takes_it() {
        let mut w = trickle(usize::MAX);
        write_chunk(&mut w, &frames(), false).await.unwrap();
        assert_eq!(w.out, CHUNK);
        assert_eq!(w.calls, 1);
    }

    #[tokio::test]
    async fn chunk_survives_every_partial_write_size() {
        for max in 1..CHUNK.len() + 8 {
            let mut w = trickle(max);
            write_chunk(&mut w, &frames(), false).await.unwrap();
            assert_eq!(w.out, CHUNK, "max {max}");
        }
    }

    #[tokio::test]
    async fn last_chunk_carries_the_terminator() {
        let mut w = trickle(7);
        write_chunk(&mut w, &[Bytes::from_static(b"data: x\n\n")], true)
            .await
            .unwrap();
        assert_eq!(w.out, b"9\r\ndata: x\n\n\r\n0\r\n\r\n");
    }

    #[tokio::test]
    async fn a_writer_that_takes_nothing_is_an_error() {
        let mut w = trickle(0);
        let e = write_chunk(&mut w, &frames(), false).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
    }

    /// What the lean path writes for a body fed by hand: `send` is called
    /// with the sender once the response head is out.
    async fn streamed<F, Fut>(send: F) -> String
    where
        F: FnOnce(tokio::sync::mpsc::UnboundedSender<Bytes>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
        });
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(async move {
            stream_body(
                &mut server,
                b"H\r\n\r\n".to_vec(),
                Body::from_stream(frames),
            )
            .await
        });
        let (mut reader, _writer) = tokio::io::split(client);
        let mut head = [0u8; 5];
        reader.read_exact(&mut head).await.unwrap();
        send(tx).await;
        let mut out = String::new();
        reader.read_to_string(&mut out).await.unwrap();
        task.await.unwrap().unwrap();
        out
    }

    /// The coalescing of [`COALESCE`]: an event published while a woken
    /// stream yields goes out in the same chunk as the one that woke it,
    /// in order, each once.
    #[tokio::test]
    async fn frames_ready_while_a_woken_stream_yields_share_its_write() {
        let out = streamed(|tx| async move {
            tx.send(Bytes::from_static(b"data: 1\n\n")).unwrap();
            // The stream takes frame 1 and yields; this task runs first.
            tokio::task::yield_now().await;
            tx.send(Bytes::from_static(b"data: 2\n\n")).unwrap();
        })
        .await;
        assert_eq!(out, "12\r\ndata: 1\n\ndata: 2\n\n\r\n0\r\n\r\n");
        // Frames apart in time are still written, in order.
        let out = streamed(|tx| async move {
            for i in 0..3 {
                tx.send(Bytes::from(format!("data: {i}\n\n"))).unwrap();
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            }
        })
        .await;
        assert_eq!(
            out,
            "9\r\ndata: 0\n\n\r\n9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"
        );
    }

    fn lean(head: &str) -> Option<Request<Body>> {
        match parse_head(head.as_bytes()) {
            Head::Lean(r) => Some(*r),
            Head::Hyper => None,
            Head::Partial => panic!("partial: {head:?}"),
        }
    }

    #[test]
    fn sse_gets_are_served_here() {
        let r = lean(
            "GET /realtime/news?tail=5 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\n\
             X-Two: a\r\nX-Two: b\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.method(), Method::GET);
        assert_eq!(r.uri(), "/realtime/news?tail=5");
        assert_eq!(r.headers()["last-event-id"], "7");
        assert_eq!(r.headers().get_all("x-two").iter().count(), 2);
        for path in [
            "/logs/app.log",
            "/stream-logs",
            "/events?channel=a",
            "/stream",
            "/stream-numbers",
        ] {
            assert!(
                lean(&format!("GET {path} HTTP/1.1\r\n\r\n")).is_some(),
                "{path}"
            );
        }
        assert!(lean("GET /metrics HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n").is_some());
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for head in [
            "GET /metrics HTTP/1.1\r\n\r\n",
            "GET /health HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET /realtime/ HTTP/1.1\r\n\r\n",
            "GET /events HTTP/1.0\r\n\r\n",
            "HEAD /events HTTP/1.1\r\n\r\n",
            "POST /channels/a HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
            "GET /events HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "GET /events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /events HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "GET http://x/events HTTP/1.1\r\n\r\n",
            "GET /events HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            assert!(lean(head).is_none(), "{head:?}");
        }
    }

    #[test]
    fn the_http2_preface_goes_to_hyper_whole_or_in_part() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        for end in b"PRI * HTTP/2.0\r\n".len()..=preface.len() {
            assert!(
                matches!(parse_head(&preface[..end]), Head::Hyper),
                "{end} bytes"
            );
        }
    }

    #[test]
    fn an_incomplete_head_waits_for_more() {
        assert!(matches!(
            parse_head(b"GET /events HTTP/1.1\r\nHost: x\r\n"),
            Head::Partial
        ));
    }

    #[test]
    fn response_head_is_http11_with_framing_and_close() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
        headers.insert(
            header::DATE,
            "Sat, 01 Jan 2000 00:00:00 GMT".parse().unwrap(),
        );
        headers.insert(header::CONTENT_LENGTH, "12".parse().unwrap());
        let head = response_head(StatusCode::OK, &headers, BodyFraming::Chunked);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
             date: Sat, 01 Jan 2000 00:00:00 GMT\r\ntransfer-encoding: chunked\r\n\
             connection: close\r\n\r\n"
        );
        let head = response_head(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            BodyFraming::Length(5),
        );
        let head = String::from_utf8(head).unwrap();
        assert!(
            head.starts_with("HTTP/1.1 404 Not Found\r\ndate: "),
            "{head}"
        );
        assert!(
            head.ends_with("\r\ncontent-length: 5\r\nconnection: close\r\n\r\n"),
            "{head}"
        );
    }

    /// Every route of the router (a sample path each; `{…}` is `app`),
    /// near misses, every method and `Accept` variant: the lean path takes
    /// the request exactly when the router answers it with an event stream
    /// (a `HEAD` is answered without one).
    #[tokio::test]
    async fn the_lean_path_and_the_router_agree_on_every_route() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "one\n").unwrap();
        let config =
            crate::config::ServeConfig::from_args([format!("app={}", log.display())]).unwrap();
        let tracker = tokio_util::task::TaskTracker::new();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (state, _demo) = crate::server::start_app(config, &tracker, &shutdown)
            .await
            .unwrap();
        let router = crate::http::router(state);

        let sample = |pattern: &str| pattern.replace("{name}", "app").replace("{channel}", "app");
        let mut paths: Vec<String> = routes::SSE_ROUTES
            .iter()
            .map(|r| sample(r.pattern))
            .collect();
        paths.extend(
            [
                "/",
                "/health",
                "/api/streams",
                "/channels/app",
                "/api/broadcast",
                "/assets/console.js",
                "/assets/nosuch",
                "/logs/",
                "/logs/app/x",
                "/logs",
                "/realtime/",
                "/realtime/a/b",
                "/events/",
                "/eventsx",
                "//events",
                "/metrics/",
                "/stream-logs/x",
                "/streams",
                "/nosuch",
            ]
            .map(String::from),
        );
        let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];
        let accepts = [
            None,
            Some("text/event-stream"),
            Some("application/json"),
            Some("*/*"),
            Some("text/html, text/event-stream;q=0.5"),
        ];
        let mut streamed = std::collections::BTreeSet::new();
        for path in &paths {
            let target = format!("{path}?channel=app");
            for method in methods {
                for accept in accepts {
                    let accept_line = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
                    let head =
                        format!("{method} {target} HTTP/1.1\r\nHost: x\r\n{accept_line}\r\n");
                    let lean = match parse_head(head.as_bytes()) {
                        Head::Lean(_) => true,
                        Head::Hyper => false,
                        Head::Partial => panic!("partial: {head:?}"),
                    };
                    let mut request = Request::builder().method(method).uri(&target);
                    if let Some(a) = accept {
                        request = request.header(header::ACCEPT, a);
                    }
                    let request = request.body(Body::empty()).unwrap();
                    let Ok(response) = tower::ServiceExt::oneshot(router.clone(), request).await;
                    let routed_stream = method != "HEAD" && routes::is_event_stream(&response);
                    assert_eq!(
                        lean,
                        routed_stream,
                        "{head:?}: router answered {}",
                        response.status()
                    );
                    if lean {
                        streamed.insert(path.clone());
                    }
                }
            }
        }
        let every_sse_route: std::collections::BTreeSet<String> = routes::SSE_ROUTES
            .iter()
            .map(|r| sample(r.pattern))
            .collect();
        assert_eq!(streamed, every_sse_route);
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test]
    async fn rewind_replays_the_bytes_read_before() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut io = Rewind::new(server, b"hello".to_vec());
        let mut out = String::new();
        io.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }
}
