//! `tailcast publish`: post one event, or every line of stdin, to a channel.
//!
//! The server takes one event per `POST` (body = data, `?event=TYPE`), so a
//! stream of lines is a stream of requests. They go one after another over
//! one keep-alive connection (reqwest's pool reuses it): each line is sent
//! only once the previous one was accepted, which keeps them in order, and
//! HTTP/1.1 offers no pipelining that would keep that guarantee. On
//! loopback that is well over a thousand lines a second.
//!
//! Any answer but 2xx stops the command with the server's own message (for
//! tailcast, the JSON `{"error", "detail"}`); nothing is retried, so a line
//! is never published twice.

use std::io::Write;

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::Url;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio_util::sync::CancellationToken;

use super::{http_client, rejected, ClientError};

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
/// end or until `shutdown` is cancelled, and nothing is written. Returns the
/// number of events published.
///
/// # Errors
/// [`ClientError::Rejected`] when the server answers anything but 2xx,
/// [`ClientError::Http`] when it cannot be reached, wrapped in
/// [`ClientError::Line`] when reading stdin; [`ClientError::Io`] when stdin
/// cannot be read.
pub async fn run<R, W>(
    config: &PublishConfig,
    mut stdin: R,
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
            answer = post(&client, &config.url, token, data.clone()) => answer?,
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
    let mut line = Vec::with_capacity(256);
    let mut published = 0;
    loop {
        line.clear();
        let read = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(published),
            read = stdin.read_until(b'\n', &mut line) => read,
        };
        match read {
            Ok(0) => return Ok(published),
            Ok(_) => {}
            Err(source) => {
                return Err(ClientError::Io {
                    what: "cannot read stdin",
                    source,
                })
            }
        }
        let data = String::from_utf8_lossy(strip_line_end(&line)).into_owned();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(published),
            answer = post(&client, &config.url, token, data) => {
                answer.map_err(|e| ClientError::Line {
                    line: published + 1,
                    source: Box::new(e),
                })?;
            }
        }
        published += 1;
    }
}

/// Removes one `\n` or `\r\n` from the end of `line`.
fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Posts one event and returns the server's answer; the whole body is read
/// so that the connection goes back to the pool.
async fn post(
    client: &reqwest::Client,
    url: &Url,
    token: Option<&str>,
    data: String,
) -> Result<String, ClientError> {
    let mut request = client.post(url.clone());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .header(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )
        .body(data)
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
