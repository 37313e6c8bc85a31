//! Reading a request body a client sends: counted and bounded while it
//! arrives, within a deadline, decompressed on the fly.
//!
//! Every endpoint that takes a body (publish, broadcast, and the ingest
//! endpoints to come) reads it with [`read`], after the caller has been
//! authorized from the request head. The rules, which [`read`] alone
//! applies:
//!
//! - at most `max_bytes` arrive (`--max-body`): a `Content-Length` above it
//!   is refused before a byte is read, and a body without one stops being
//!   read as soon as it passes the bound (413);
//! - a compressed body (`Content-Encoding: gzip`, `deflate`, `zstd`) is
//!   decoded frame by frame as it arrives, and the *decoded* size is
//!   bounded by `max_bytes` too: a zip bomb costs at most `max_bytes` plus
//!   the decoder's window (32 KiB for gzip and deflate; for zstd at most
//!   8 MiB, the limit RFC 9659 sets for the `zstd` content coding), never
//!   its decompressed size (413);
//! - the whole body must have arrived within `timeout` (`--body-timeout`)
//!   of the start of the read (408; the answer closes an HTTP/1.1
//!   connection, see [`ApiError`]'s response, and resets nothing but the
//!   stream over HTTP/2).
//!
//! A request refused from its head, or whose body [`read`] refused, is
//! answered at once, and the rest of its body is then read and thrown away
//! behind the answer by [`answer_then_discard`] (at most 64 MiB, within the
//! same deadline): a client still sending sees its
//! answer, then its upload end normally, rather than a reset that some
//! clients report instead of the answer (curl 7.88 over HTTP/2: `(92)
//! Stream error`) or a TCP reset that can destroy the unread answer.
//!
//! It does not parse anything: what the bytes mean is the endpoint's.

use std::future::Future as _;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt as _;

use super::ApiError;

/// The largest zstd window a body may use: 8 MiB (`2^23`), RFC 9659 §3.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// How a body is encoded on the wire (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentEncoding {
    /// No encoding (no header, or `identity`).
    Identity,
    /// `gzip` (or `x-gzip`), one or more members.
    Gzip,
    /// `deflate`: the zlib format (RFC 9110 §8.4.1.2).
    Deflate,
    /// `zstd` (RFC 8878), window at most 8 MiB.
    Zstd,
}

impl ContentEncoding {
    /// The encoding a request's `Content-Encoding` names.
    ///
    /// # Errors
    /// 415 for an encoding other than the four above, or for several
    /// (`gzip, zstd`): send the body with one of them or none.
    pub(crate) fn of(headers: &HeaderMap) -> Result<ContentEncoding, ApiError> {
        let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
        let Some(value) = values.next() else {
            return Ok(ContentEncoding::Identity);
        };
        let unsupported = |what: String| {
            Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported content encoding",
                format!("{what}: send the body with Content-Encoding gzip, deflate, zstd or none"),
            ))
        };
        let text = String::from_utf8_lossy(value.as_bytes());
        if values.next().is_some() || text.contains(',') {
            return unsupported("several content encodings".into());
        }
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(ContentEncoding::Identity),
            "gzip" | "x-gzip" => Ok(ContentEncoding::Gzip),
            "deflate" => Ok(ContentEncoding::Deflate),
            "zstd" => Ok(ContentEncoding::Zstd),
            other => unsupported(format!("content encoding {other:?}")),
        }
    }
}

/// The bounds of one body read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BodyLimits {
    /// Most bytes accepted, on the wire and decoded (`--max-body`).
    pub max_bytes: usize,
    /// Longest time the whole body may take to arrive (`--body-timeout`).
    pub timeout: Duration,
}

impl BodyLimits {
    /// The limits `tailcast serve` was given (`--max-body`,
    /// `--body-timeout`).
    pub(super) fn of(config: &crate::config::ServeConfig) -> BodyLimits {
        BodyLimits {
            max_bytes: config.max_body,
            timeout: config.body_timeout,
        }
    }
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// More than the limit arrived, or would once decoded.
    #[error("the body is larger than the limit of {limit} bytes (--max-body){}", if *.decoded { " once decompressed" } else { "" })]
    TooLarge {
        /// `--max-body`.
        limit: usize,
        /// Whether it was the decoded size that passed the limit.
        decoded: bool,
    },
    /// The body had not fully arrived within the deadline.
    #[error("the body did not arrive within {} (--body-timeout)", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// The compressed data is not valid for its `Content-Encoding`.
    #[error("the body is not valid {encoding:?} data: {reason}")]
    Corrupt {
        /// The encoding named by the request.
        encoding: ContentEncoding,
        /// What the decoder said.
        reason: String,
    },
    /// The connection or stream failed while the body arrived.
    #[error("the body could not be read: {0}")]
    Unreadable(String),
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        let (status, error) = match &e {
            BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
            BodyError::TimedOut(_) => (StatusCode::REQUEST_TIMEOUT, "body timeout"),
            BodyError::Corrupt { .. } => (StatusCode::BAD_REQUEST, "invalid content encoding"),
            BodyError::Unreadable(_) => (StatusCode::BAD_REQUEST, "unreadable body"),
        };
        ApiError::new(status, error, e.to_string())
    }
}

/// Reads `body`, decoded from `encoding`, within `limits` (see the module
/// docs). The deadline starts now.
///
/// # Errors
/// [`BodyError`]: too large (wire or decoded), timed out, corrupt
/// compressed data, or a failed connection.
pub(super) async fn read(
    body: &mut Body,
    encoding: ContentEncoding,
    limits: BodyLimits,
) -> Result<Bytes, BodyError> {
    let too_large = BodyError::TooLarge {
        limit: limits.max_bytes,
        decoded: false,
    };
    if body.size_hint().lower() > limits.max_bytes as u64 {
        return Err(too_large);
    }
    tokio::time::timeout(
        limits.timeout,
        read_frames(body, encoding, limits.max_bytes),
    )
    .await
    .map_err(|_| BodyError::TimedOut(limits.timeout))?
}

/// `answer` (a refusal: decided from the request head, or a body [`read`]
/// refused, e.g. too large; an [`ApiError`] or another response such as an
/// OTLP error), whose body ends only once the unread rest of the request
/// `body` has been read and discarded: until it ends,
/// [`LINGER_MAX_BYTES`] (or `max_bytes`, if larger) more arrived, or
/// `timeout` passed. A 408 is answered alone (the client was too slow). Nothing is kept;
/// the answer itself is sent at once. Its length is then not announced
/// (HTTP/1.1: chunked): hyper stops polling a body once the announced
/// length is written, which would cut the discarding short.
///
/// Over HTTP/2, a body announced at [`DRAIN_FIRST_MAX`] bytes or less is
/// read and discarded *before* the answer (within `timeout`): some clients
/// (curl 7.88) stop sending when they see an error status before their
/// upload is done and end the stream short of its `content-length`, which
/// the `h2` crate answers with `PROTOCOL_ERROR`, so the client never shows
/// the answer. A larger or unannounced body gets the answer at once.
pub(super) async fn answer_then_discard(
    answer: impl IntoResponse,
    mut body: Body,
    limits: BodyLimits,
    version: Version,
) -> Response {
    let answer = answer.into_response();
    // A client too slow for --body-timeout gets its 408 and the connection
    // closes (HTTP/1.1); reading more of it would only extend its time.
    if body.is_end_stream() || answer.status() == StatusCode::REQUEST_TIMEOUT {
        return answer;
    }
    let announced = body.size_hint().exact();
    if version >= Version::HTTP_2 && announced.is_some_and(|n| n <= DRAIN_FIRST_MAX) {
        let drain = async {
            let mut left = DRAIN_FIRST_MAX as usize;
            while let Some(Ok(frame)) = body.frame().await {
                let len = frame.data_ref().map_or(0, Bytes::len);
                match left.checked_sub(len) {
                    Some(rest) => left = rest,
                    None => break,
                }
            }
        };
        let _ = tokio::time::timeout(limits.timeout, drain).await;
        return answer;
    }
    answer.map(|answer| {
        Body::new(ThenDiscard {
            answer,
            request: Some(body),
            left: limits.max_bytes.max(LINGER_MAX_BYTES),
            deadline: Box::pin(tokio::time::sleep(limits.timeout)),
        })
    })
}

/// The most bytes [`answer_then_discard`] throws away behind an answer
/// (or `--max-body`, if larger): enough for a client that sends its whole
/// over-limit upload before it reads (Python's `http.client`), as nginx's
/// lingering close allows, while a client that sends more is cut off.
pub(super) const LINGER_MAX_BYTES: usize = 64 << 20;

/// The largest announced HTTP/2 request body that [`answer_then_discard`]
/// reads before answering.
pub(super) const DRAIN_FIRST_MAX: u64 = 64 * 1024;

/// The body of [`answer_then_discard`].
struct ThenDiscard {
    answer: Body,
    /// The request body still to discard; `None` once done.
    request: Option<Body>,
    /// Bytes that may still be discarded.
    left: usize,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for ThenDiscard {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if !self.answer.is_end_stream() {
            match Pin::new(&mut self.answer).poll_frame(cx) {
                Poll::Ready(None) => {}
                other => return other,
            }
        }
        while let Some(request) = self.request.as_mut() {
            let step = Pin::new(request).poll_frame(cx);
            match step {
                Poll::Ready(Some(Ok(frame))) => {
                    let len = frame.data_ref().map_or(0, Bytes::len);
                    match self.left.checked_sub(len) {
                        Some(left) => self.left = left,
                        None => self.request = None,
                    }
                }
                Poll::Ready(_) => self.request = None,
                Poll::Pending => {
                    if self.deadline.as_mut().poll(cx).is_ready() {
                        self.request = None;
                    } else {
                        return Poll::Pending;
                    }
                }
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.answer.is_end_stream() && self.request.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Not the answer's exact length: see `answer_then_discard`.
        SizeHint::default()
    }
}

/// The frame loop of [`read`].
async fn read_frames(
    body: &mut Body,
    encoding: ContentEncoding,
    max_bytes: usize,
) -> Result<Bytes, BodyError> {
    let mut decoder = Decoder::new(encoding, max_bytes)?;
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Unreadable(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        received += data.len();
        if received > max_bytes {
            return Err(BodyError::TooLarge {
                limit: max_bytes,
                decoded: false,
            });
        }
        decoder.write(data)?;
    }
    decoder.finish()
}

/// Output of a decoder: a buffer that refuses to grow past `limit`.
struct Bounded {
    data: Vec<u8>,
    limit: usize,
    /// Set when a write was refused for the limit (so that a decoder's
    /// error can be told from corrupt input).
    overflowed: bool,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.data.len() + buf.len() > self.limit {
            self.overflowed = true;
            return Err(io::Error::other("over the size limit"));
        }
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A streaming decoder of one body into a [`Bounded`] buffer.
enum Decoder {
    /// Plain bytes: kept as they come (one frame: not even copied).
    Identity {
        frames: Vec<Bytes>,
        size: usize,
    },
    Gzip(flate2::write::MultiGzDecoder<Bounded>),
    Deflate(flate2::write::ZlibDecoder<Bounded>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Bounded>>),
}

impl Decoder {
    fn new(encoding: ContentEncoding, limit: usize) -> Result<Decoder, BodyError> {
        let out = Bounded {
            data: Vec::new(),
            limit,
            overflowed: false,
        };
        Ok(match encoding {
            ContentEncoding::Identity => Decoder::Identity {
                frames: Vec::new(),
                size: 0,
            },
            ContentEncoding::Gzip => Decoder::Gzip(flate2::write::MultiGzDecoder::new(out)),
            ContentEncoding::Deflate => Decoder::Deflate(flate2::write::ZlibDecoder::new(out)),
            ContentEncoding::Zstd => {
                let corrupt = |e: io::Error| BodyError::Corrupt {
                    encoding,
                    reason: e.to_string(),
                };
                let mut decoder = zstd::stream::write::Decoder::new(out).map_err(corrupt)?;
                decoder
                    .window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(corrupt)?;
                Decoder::Zstd(Box::new(decoder))
            }
        })
    }

    fn encoding(&self) -> ContentEncoding {
        match self {
            Decoder::Identity { .. } => ContentEncoding::Identity,
            Decoder::Gzip(_) => ContentEncoding::Gzip,
            Decoder::Deflate(_) => ContentEncoding::Deflate,
            Decoder::Zstd(_) => ContentEncoding::Zstd,
        }
    }

    fn output(&self) -> Option<&Bounded> {
        match self {
            Decoder::Identity { .. } => None,
            Decoder::Gzip(d) => Some(d.get_ref()),
            Decoder::Deflate(d) => Some(d.get_ref()),
            Decoder::Zstd(d) => Some(d.get_ref()),
        }
    }

    /// The error of a failed decoder call: too large, or corrupt.
    fn failed(&self, e: io::Error) -> BodyError {
        match self.output() {
            Some(out) if out.overflowed => BodyError::TooLarge {
                limit: out.limit,
                decoded: true,
            },
            _ => BodyError::Corrupt {
                encoding: self.encoding(),
                reason: e.to_string(),
            },
        }
    }

    /// Feeds one frame of the body (its size on the wire already counted).
    fn write(&mut self, data: Bytes) -> Result<(), BodyError> {
        let written = match self {
            Decoder::Identity { frames, size } => {
                *size += data.len();
                frames.push(data);
                return Ok(());
            }
            Decoder::Gzip(d) => d.write_all(&data),
            Decoder::Deflate(d) => d.write_all(&data),
            Decoder::Zstd(d) => d.write_all(&data),
        };
        written.map_err(|e| self.failed(e))
    }

    /// The whole decoded body, once the body has ended: a compressed body
    /// must end on a complete stream.
    fn finish(mut self) -> Result<Bytes, BodyError> {
        let finished = match &mut self {
            Decoder::Identity { frames, size } => {
                return Ok(match frames.len() {
                    0 => Bytes::new(),
                    1 => frames.pop().unwrap_or_default(),
                    _ => {
                        let mut joined = Vec::with_capacity(*size);
                        for frame in frames.iter() {
                            joined.extend_from_slice(frame);
                        }
                        Bytes::from(joined)
                    }
                });
            }
            Decoder::Gzip(d) => d.try_finish(),
            Decoder::Deflate(d) => d.try_finish(),
            Decoder::Zstd(d) => d.do_finish(),
        };
        if let Err(e) = finished {
            return Err(self.failed(e));
        }
        let out = match self {
            Decoder::Identity { .. } => unreachable!("returned above"),
            Decoder::Gzip(d) => d
                .finish()
                .map_err(|e| BodyError::Unreadable(e.to_string()))?,
            Decoder::Deflate(d) => d
                .finish()
                .map_err(|e| BodyError::Unreadable(e.to_string()))?,
            Decoder::Zstd(d) => d.into_inner(),
        };
        Ok(Bytes::from(out.data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_bytes: 1000,
        timeout: Duration::from_secs(5),
    };

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A body of `data` split into frames of `piece` bytes.
    fn body(data: Vec<u8>, piece: usize) -> Body {
        let frames: Vec<Result<Bytes, io::Error>> = data
            .chunks(piece)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures_util::stream::iter(frames))
    }

    async fn decode(encoding: ContentEncoding, data: Vec<u8>) -> Result<Bytes, BodyError> {
        read(&mut body(data, 7), encoding, LIMITS).await
    }

    #[tokio::test]
    async fn every_encoding_decodes_across_frames() {
        let text = b"hello, world ".repeat(50);
        let zstd = zstd::encode_all(&text[..], 3).unwrap();
        let mut two_members = gzip(b"one ");
        two_members.extend(gzip(b"two"));
        for (encoding, wire, want) in [
            (ContentEncoding::Identity, text.clone(), text.clone()),
            (ContentEncoding::Gzip, gzip(&text), text.clone()),
            (ContentEncoding::Gzip, two_members, b"one two".to_vec()),
            (ContentEncoding::Deflate, zlib(&text), text.clone()),
            (ContentEncoding::Zstd, zstd, text.clone()),
        ] {
            let got = decode(encoding, wire).await.unwrap();
            assert_eq!(&got[..], &want[..], "{encoding:?}");
        }
    }

    #[tokio::test]
    async fn the_decoded_size_is_bounded() {
        let bomb = vec![0u8; 10_000_000];
        for (encoding, wire) in [
            (ContentEncoding::Gzip, gzip(&bomb)),
            (ContentEncoding::Deflate, zlib(&bomb)),
            (
                ContentEncoding::Zstd,
                zstd::encode_all(&bomb[..], 1).unwrap(),
            ),
        ] {
            let limits = BodyLimits {
                max_bytes: 100_000,
                ..LIMITS
            };
            assert!(
                wire.len() < limits.max_bytes,
                "{encoding:?}: {}",
                wire.len()
            );
            let got = read(&mut body(wire, 1000), encoding, limits).await;
            assert!(
                matches!(got, Err(BodyError::TooLarge { decoded: true, .. })),
                "{encoding:?}: {got:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_wire_size_is_bounded_while_it_arrives() {
        let got = decode(ContentEncoding::Identity, vec![b'x'; 1001]).await;
        assert!(matches!(
            got,
            Err(BodyError::TooLarge { decoded: false, .. })
        ));
        let exact = decode(ContentEncoding::Identity, vec![b'x'; 1000]).await;
        assert_eq!(exact.unwrap().len(), 1000);
    }

    #[tokio::test]
    async fn corrupt_and_truncated_data_is_refused() {
        let mut truncated = gzip(b"some text that is long enough");
        truncated.truncate(truncated.len() - 4);
        let zstd = zstd::encode_all(&b"x".repeat(500)[..], 3).unwrap();
        for (encoding, wire) in [
            (ContentEncoding::Gzip, b"not gzip at all".to_vec()),
            (ContentEncoding::Gzip, truncated),
            (ContentEncoding::Zstd, zstd[..zstd.len() - 2].to_vec()),
            (ContentEncoding::Zstd, b"not zstd".to_vec()),
            (ContentEncoding::Deflate, b"not zlib".to_vec()),
        ] {
            let got = decode(encoding, wire).await;
            assert!(
                matches!(got, Err(BodyError::Corrupt { .. })),
                "{encoding:?}: {got:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_times_out() {
        let mut stalled =
            Body::from_stream(futures_util::stream::pending::<Result<Bytes, io::Error>>());
        let got = read(&mut stalled, ContentEncoding::Identity, LIMITS).await;
        assert!(matches!(got, Err(BodyError::TimedOut(_))), "{got:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_sent_first_then_the_request_is_discarded_within_the_bounds() {
        let refusal = || ApiError::new(StatusCode::FORBIDDEN, "forbidden", "no");
        // A request body that never ends: the answer comes at once, and the
        // response ends at the deadline.
        let stalled =
            Body::from_stream(futures_util::stream::pending::<Result<Bytes, io::Error>>());
        let mut answer = answer_then_discard(refusal(), stalled, LIMITS, Version::HTTP_11)
            .await
            .into_body();
        let first = answer.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(first.starts_with(b"{\"error\":\"forbidden\""), "{first:?}");
        let started = tokio::time::Instant::now();
        assert!(answer.frame().await.is_none());
        assert_eq!(started.elapsed(), LIMITS.timeout);
        // A body over the bound is discarded no further than the bound.
        let endless =
            futures_util::stream::repeat_with(|| Ok::<_, io::Error>(Bytes::from_static(&[0; 100])));
        let mut answer = answer_then_discard(
            refusal(),
            Body::from_stream(endless),
            LIMITS,
            Version::HTTP_11,
        )
        .await
        .into_body();
        assert!(answer.frame().await.unwrap().unwrap().is_data());
        assert!(answer.frame().await.is_none());
    }

    #[test]
    fn content_encodings() {
        let of = |v: &[&str]| {
            let mut h = HeaderMap::new();
            for v in v {
                h.append(header::CONTENT_ENCODING, v.parse().unwrap());
            }
            ContentEncoding::of(&h).map_err(|e| e.status)
        };
        assert_eq!(of(&[]), Ok(ContentEncoding::Identity));
        assert_eq!(of(&["identity"]), Ok(ContentEncoding::Identity));
        assert_eq!(of(&["GZIP"]), Ok(ContentEncoding::Gzip));
        assert_eq!(of(&["deflate"]), Ok(ContentEncoding::Deflate));
        assert_eq!(of(&["zstd"]), Ok(ContentEncoding::Zstd));
        for bad in [&["br"][..], &["gzip, zstd"], &["gzip", "gzip"]] {
            assert_eq!(of(bad), Err(StatusCode::UNSUPPORTED_MEDIA_TYPE), "{bad:?}");
        }
    }
}
