//! The command-line client: `tailcast listen` reads any SSE stream,
//! `tailcast publish` posts events to a tailcast channel.
//!
//! [`parser`] turns bytes into events (the WHATWG rules, no I/O);
//! [`listen`] keeps a stream open across drops and prints its events;
//! [`publish`] sends one event or every stdin line. This module knows
//! nothing of the server's internals: it speaks HTTP to a URL like any other
//! client would, and `listen` works against any SSE server.

pub mod listen;
pub mod parser;
pub mod publish;
pub mod token;

use std::time::Duration;

use reqwest::StatusCode;

pub use listen::ListenConfig;
pub use parser::{Event, Parser};
pub use publish::{PublishConfig, PublishInput};
pub use token::TokenSource;

/// How long to wait for a TCP (and TLS) connection to be set up.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `listen` or `publish` stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request with a status that retrying cannot
    /// fix (4xx, or any failure of a publish). `body` is the server's own
    /// message, e.g. tailcast's JSON `{"error", "detail"}`.
    #[error("{url} answered {status}: {body}")]
    Rejected {
        /// The URL asked for.
        url: String,
        /// The HTTP status.
        status: StatusCode,
        /// The response body, trimmed (possibly empty).
        body: String,
    },
    /// The server answered 200 but not with an event stream.
    #[error("{url} is not an event stream (Content-Type {content_type:?}); check the URL")]
    NotAnEventStream {
        /// The URL asked for.
        url: String,
        /// The Content-Type it answered with.
        content_type: String,
    },
    /// The request could not be sent or its answer not read.
    #[error("cannot reach {url}: {message}")]
    Http {
        /// The URL asked for.
        url: String,
        /// What went wrong, with its causes.
        message: String,
    },
    /// Publishing line `line` of stdin failed (lines before it were
    /// published).
    #[error("line {line} of stdin was not published: {source}")]
    Line {
        /// 1-based line number.
        line: u64,
        /// Why.
        source: Box<ClientError>,
    },
    /// No token could be had from `--token-file` or `--token-command`.
    #[error("{message}")]
    Token {
        /// What went wrong (never the token).
        message: String,
    },
    /// Publishing lines `first` to `last` of stdin, sent as one request,
    /// failed: none of them was published (lines before them were).
    #[error("lines {first}-{last} of stdin were not published: {source}")]
    Lines {
        /// 1-based number of the first line of the request.
        first: u64,
        /// 1-based number of its last line.
        last: u64,
        /// Why.
        source: Box<ClientError>,
    },
    /// Reading stdin or writing stdout failed (other than a closed pipe,
    /// which ends `listen` quietly).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ClientError {
    /// Builds [`ClientError::Http`] from a reqwest error, with every cause in
    /// the chain (reqwest's own message alone is often just "error sending
    /// request").
    pub(crate) fn http(url: &str, error: &reqwest::Error) -> Self {
        let mut message = crate::errors::chain(error);
        // reqwest's messages quote the URL, which may carry ?access_token=.
        if let Some(raw) = error.url().map(|u| u.as_str().to_string()) {
            message = message.replace(&raw, &crate::auth::redact(&raw));
        }
        ClientError::Http {
            url: crate::auth::redact(url).into_owned(),
            message,
        }
    }
}

/// Reads an error response's body for a [`ClientError::Rejected`].
pub(crate) async fn rejected(url: &str, response: reqwest::Response) -> ClientError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    ClientError::Rejected {
        url: crate::auth::redact(url).into_owned(),
        status,
        body: body.trim().to_string(),
    }
}

/// The HTTP client shared by `listen` and `publish`: no overall timeout
/// (streams are long), a connect timeout, and a user agent naming tailcast.
///
/// # Errors
/// [`ClientError::Http`] if the TLS backend cannot be set up.
pub(crate) fn http_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("tailcast/", env!("CARGO_PKG_VERSION")))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ClientError::http("(client setup)", &e))
}
