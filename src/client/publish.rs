//! `tailcast publish`: post one event, or every line of stdin, to a channel.
//!
//! One event is one `POST` (body = data, `?event=TYPE`). Lines of stdin go
//! in bulk: each request carries a batch of lines as NDJSON (one JSON
//! string per line, `Content-Type: application/x-ndjson`), which tailcast
//! publishes as one event per line with consecutive ids, all or nothing.
//! A batch is whatever stdin has ready when the previous request is
//! answered, up to `BATCH_LINES` lines or `BATCH_BYTES` bytes: a fast
//! pipe fills batches, a line typed by hand goes out alone at once. One
//! request is in flight at a time over one keep-alive connection, which
//! keeps the lines in order; stdin is read ahead meanwhile (at most
//! `READ_AHEAD` lines held).
//!
//! A batch refused with 413 (larger than the server's `--max-body`, or
//! more events than its `--history`) was published not at all, so it is
//! split in two and each half sent again, in order, and later batches are
//! kept under the size that failed; a single line refused with 413 is an
//! error. Any other answer but 2xx stops the command with the server's own
//! message (for tailcast, the JSON `{"error", "detail"}`) naming the lines
//! of that request: the lines before were published, those and the lines
//! after were not. Nothing is retried after an answer that may have
//! published, so a line is never published twice. This needs a server that
//! takes NDJSON bodies (tailcast does).

use std::collections::VecDeque;
use std::io::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{http_client, rejected, ClientError};

/// Most lines sent in one request.
pub(crate) const BATCH_LINES: usize = 1000;

/// Most bytes of NDJSON sent in one request (unless one line alone is
/// longer).
pub(crate) const BATCH_BYTES: usize = 256 * 1024;

/// Most lines read from stdin ahead of the request in flight.
pub(crate) const READ_AHEAD: usize = 4 * BATCH_LINES;

/// The media type of bulk publish bodies.
const NDJSON: &str = "application/x-ndjson";

/// What to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishInput {
    /// One event with this data.
    Data(String),
    /// One event per line of stdin, line end removed, in order.
    Stdin,
}

/// The validated settings of `tailcast publish`.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    /// The channel's publish URL (`http://HOST/channels/NAME`), with
    /// `?event=TYPE` already added when a type was given.
    pub url: Url,
    /// One event or stdin.
    pub input: PublishInput,
    /// Bearer token (`--token`, `--token-file`, `TAILCAST_TOKEN`).
    pub token: Option<super::TokenSource>,
}

impl PublishConfig {
    /// Settings for publishing `input` to `url`, with event type
    /// `event_type` when given (sent as the `event` query parameter).
    pub fn new(mut url: Url, input: PublishInput, event_type: Option<&str>) -> Self {
        if let Some(event_type) = event_type {
            url.query_pairs_mut().append_pair("event", event_type);
        }
        PublishConfig {
            url,
            input,
            token: None,
        }
    }
}

/// Publishes what `config` says. With [`PublishInput::Data`], the server's
/// answer (`{"id", "channel", "subscribers"}` for tailcast) is written to
/// `out`; with [`PublishInput::Stdin`] lines are read from `stdin` until its
/// end or until `shutdown` is cancelled and published in NDJSON batches
/// (see the module docs), and nothing is written. Returns the number of
/// events published.
///
/// # Errors
/// [`ClientError::Rejected`] when the server answers anything but 2xx,
/// [`ClientError::Http`] when it cannot be reached, wrapped in
/// [`ClientError::Line`] or [`ClientError::Lines`] when publishing stdin;
/// [`ClientError::Io`] when stdin cannot be read (after the lines read
/// before were published).
pub async fn run<R, W>(
    config: &PublishConfig,
    stdin: R,
    out: &mut W,
    shutdown: CancellationToken,
) -> Result<u64, ClientError>
where
    R: AsyncBufRead + Unpin,
    W: Write,
{
    let client = http_client()?;
    let token = match &config.token {
        Some(source) => Some(source.get().await?),
        None => None,
    };
    let token = token.as_deref();
    if let PublishInput::Data(data) = &config.input {
        let answer = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(0),
            answer = post(&client, &config.url, token, "text/plain; charset=utf-8", data.clone().into_bytes()) => answer?,
        };
        let written = out
            .write_all(answer.trim_end().as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if let Err(source) = written {
            if source.kind() != std::io::ErrorKind::BrokenPipe {
                return Err(ClientError::Io {
                    what: "cannot write to stdout",
                    source,
                });
            }
        }
        return Ok(1);
    }
    let published = AtomicU64::new(0);
    let bulk = publish_lines(&client, &config.url, token, stdin, &published);
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => Ok(published.load(Ordering::Relaxed)),
        result = bulk => result.map(|()| published.load(Ordering::Relaxed)),
    }
}

/// Reads `stdin` and publishes its lines in batches to `url`, counting
/// them in `published`. Returns once every line read is published, or at
/// the first failure.
async fn publish_lines<R>(
    client: &reqwest::Client,
    url: &Url,
    token: Option<&str>,
    mut stdin: R,
    published: &AtomicU64,
) -> Result<(), ClientError>
where
    R: AsyncBufRead + Unpin,
{
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let reader = read_lines(&mut stdin, tx);
    let mut batches = Batches {
        client,
        url,
        token,
        lines: rx,
        carried: None,
        next_line: 1,
        max_bytes: BATCH_BYTES,
        published,
    };
    let sender = batches.send_all();
    tokio::pin!(reader, sender);
    let mut read_result = None;
    loop {
        tokio::select! {
            // Once the reader is done (its sender dropped), the batches
            // drain what was read and end.
            read = &mut reader, if read_result.is_none() => read_result = Some(read),
            sent = &mut sender => {
                sent?;
                return read_result.unwrap_or(Ok(()));
            }
        }
    }
}

/// Reads lines until the end of `stdin` and sends each, encoded as one
/// NDJSON line (a JSON string of the line without its end, invalid UTF-8
/// replaced by U+FFFD), to `lines`. A last line without a line end is
/// sent too. Stops early, without error, when the receiver is gone.
async fn read_lines<R>(stdin: &mut R, lines: mpsc::Sender<Vec<u8>>) -> Result<(), ClientError>
where
    R: AsyncBufRead + Unpin,
{
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let read = stdin
            .read_until(b'\n', &mut line)
            .await
            .map_err(|source| ClientError::Io {
                what: "cannot read stdin",
                source,
            })?;
        if read == 0 {
            return Ok(());
        }
        let data = String::from_utf8_lossy(strip_line_end(&line));
        let mut encoded = Vec::with_capacity(data.len() + 3);
        serde_json::to_writer(&mut encoded, &*data).expect("a string always serialises");
        encoded.push(b'\n');
        if lines.send(encoded).await.is_err() {
            return Ok(());
        }
    }
}

/// The sending half of `publish -`: takes encoded lines as they come and
/// posts them in batches, one request at a time.
struct Batches<'a> {
    client: &'a reqwest::Client,
    url: &'a Url,
    /// Bearer token sent with every batch.
    token: Option<&'a str>,
    /// Encoded NDJSON lines from [`read_lines`].
    lines: mpsc::Receiver<Vec<u8>>,
    /// A line taken that did not fit the previous batch.
    carried: Option<Vec<u8>>,
    /// Number (from 1) of the next line of stdin to send.
    next_line: u64,
    /// Bytes per batch: [`BATCH_BYTES`], less after a 413.
    max_bytes: usize,
    /// Lines published so far.
    published: &'a AtomicU64,
}

impl Batches<'_> {
    /// Sends every line until the reader is done.
    async fn send_all(&mut self) -> Result<(), ClientError> {
        while let Some(batch) = self.next_batch().await {
            self.send(batch).await?;
        }
        Ok(())
    }

    /// Waits for one line, then takes every line ready now, up to
    /// [`BATCH_LINES`] and `max_bytes`. `None` once the reader is done and
    /// every line was taken.
    async fn next_batch(&mut self) -> Option<Vec<Vec<u8>>> {
        let first = match self.carried.take() {
            Some(line) => line,
            None => self.lines.recv().await?,
        };
        let mut bytes = first.len();
        let mut batch = vec![first];
        while batch.len() < BATCH_LINES {
            let Ok(line) = self.lines.try_recv() else {
                break;
            };
            if bytes + line.len() > self.max_bytes {
                self.carried = Some(line);
                break;
            }
            bytes += line.len();
            batch.push(line);
        }
        Some(batch)
    }

    /// Posts `batch` (lines `next_line..`), split in halves while the
    /// server answers 413.
    async fn send(&mut self, batch: Vec<Vec<u8>>) -> Result<(), ClientError> {
        let first_line = self.next_line;
        let mut parts: VecDeque<Range<usize>> = VecDeque::new();
        parts.push_back(0..batch.len());
        while let Some(part) = parts.pop_front() {
            let body = batch[part.clone()].concat();
            let size = body.len();
            match post(self.client, self.url, self.token, NDJSON, body).await {
                Ok(_) => {
                    self.published
                        .fetch_add(part.len() as u64, Ordering::Relaxed);
                }
                Err(ClientError::Rejected { status, .. })
                    if status == StatusCode::PAYLOAD_TOO_LARGE && part.len() > 1 =>
                {
                    self.max_bytes = self.max_bytes.min(size / 2).max(1);
                    let middle = part.start + part.len() / 2;
                    parts.push_front(middle..part.end);
                    parts.push_front(part.start..middle);
                }
                Err(source) => {
                    let first = first_line + part.start as u64;
                    let last = first_line + part.end as u64 - 1;
                    let source = Box::new(source);
                    return Err(if first == last {
                        ClientError::Line {
                            line: first,
                            source,
                        }
                    } else {
                        ClientError::Lines {
                            first,
                            last,
                            source,
                        }
                    });
                }
            }
        }
        self.next_line += batch.len() as u64;
        Ok(())
    }
}

/// Removes one `\n` or `\r\n` from the end of `line`.
fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Posts `body` as `content_type` and returns the server's answer; the
/// whole answer is read so that the connection goes back to the pool.
async fn post(
    client: &reqwest::Client,
    url: &Url,
    token: Option<&str>,
    content_type: &'static str,
    body: Vec<u8>,
) -> Result<String, ClientError> {
    let mut request = client.post(url.clone());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
        .body(body)
        .send()
        .await
        .map_err(|e| ClientError::http(url.as_str(), &e))?;
    if !response.status().is_success() {
        return Err(rejected(url.as_str(), response).await);
    }
    response
        .text()
        .await
        .map_err(|e| ClientError::http(url.as_str(), &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_are_removed_once() {
        assert_eq!(strip_line_end(b"a\n"), b"a");
        assert_eq!(strip_line_end(b"a\r\n"), b"a");
        assert_eq!(strip_line_end(b"a"), b"a");
        assert_eq!(strip_line_end(b"a\n\n"), b"a\n");
        assert_eq!(strip_line_end(b"\n"), b"");
    }

    #[test]
    fn event_type_becomes_a_query_parameter() {
        let url = Url::parse("http://127.0.0.1:8000/channels/app?x=1").unwrap();
        let c = PublishConfig::new(url.clone(), PublishInput::Stdin, Some("a b&c"));
        assert_eq!(
            c.url.as_str(),
            "http://127.0.0.1:8000/channels/app?x=1&event=a+b%26c"
        );
        assert_eq!(
            PublishConfig::new(url.clone(), PublishInput::Stdin, None).url,
            url
        );
    }
}
