//! Just enough HTTP/1.1 for the load tool: a loopback-only target, opening
//! an SSE stream on a raw tokio `TcpStream` (or TLS on it, see
//! [`crate::transport`]), and a blocking keep-alive publisher. No HTTP
//! client library per connection, so 19,000 streams cost little more than
//! their sockets and read buffers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::transport::{BlockingIo, Conn, Tls};

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Largest publish response body read.
const MAX_RESPONSE_BODY: usize = 1 << 20;

/// A server on this machine.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resolved address, always a loopback one.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// `https://`: how to verify the server.
    pub tls: Option<Tls>,
}

impl Target {
    /// Parses `http://HOST:PORT` or, with `ca` (the CA that signed the
    /// server's certificate), `https://HOST:PORT` (a trailing path is
    /// ignored).
    ///
    /// # Errors
    /// Another scheme, `https://` without `ca`, unresolvable, or not a
    /// loopback address: this tool never sends traffic off the machine.
    pub fn parse(url: &str, ca: Option<&Path>) -> Result<Target> {
        let (rest, tls, default_port) = if let Some(rest) = url.strip_prefix("http://") {
            (rest, None, 80)
        } else if let Some(rest) = url.strip_prefix("https://") {
            let ca = ca.ok_or_else(|| anyhow!("an https:// target needs --ca FILE"))?;
            (rest, Some(Tls::from_ca_file(ca)?), 443)
        } else {
            bail!("target {url:?} must start with http:// or https://");
        };
        let host = rest.split('/').next().unwrap_or(rest).to_string();
        let with_port = if host.contains(':') && !host.ends_with(']') {
            host.clone()
        } else {
            format!("{host}:{default_port}")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {host:?}"))?
            .next()
            .ok_or_else(|| anyhow!("{host:?} resolves to nothing"))?;
        if !addr.ip().is_loopback() {
            bail!(
                "target {addr} is not a loopback address; the load tool only talks to this machine"
            );
        }
        Ok(Target { addr, host, tls })
    }
}

/// Where a response head ended and what it said.
#[derive(Debug)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Content-Length`, if given.
    pub content_length: Option<usize>,
    /// Bytes of the head, including the blank line.
    pub len: usize,
}

/// Parses a response head at the start of `buf`; `None` while incomplete.
///
/// # Errors
/// Malformed status line.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            bail!("response head longer than {MAX_HEAD} bytes");
        }
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let mut head = Head {
        status,
        chunked: false,
        content_length: None,
        len: end + 4,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().ok();
        }
    }
    Ok(Some(head))
}

/// Connects and sends `GET path`, then reads the response head. Returns
/// the stream, the head and body bytes that came with it.
///
/// # Errors
/// Connection failure, a non-200 answer, or a malformed head.
pub async fn open_sse(
    target: &Target,
    path: &str,
    buf_size: usize,
) -> Result<(Conn, Head, Vec<u8>)> {
    let mut stream = Conn::connect(target, false).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
        target.host
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(buf_size);
    loop {
        if let Some(head) = parse_head(&buf)? {
            if head.status != 200 {
                bail!("GET {path} answered {}", head.status);
            }
            let rest = buf[head.len..].to_vec();
            return Ok((stream, head, rest));
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("GET {path}: connection closed before the response head");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A blocking publisher on one keep-alive connection: each POST is sent
/// when the previous one was answered, like the peers' measurements.
pub struct Publisher {
    target: Target,
    stream: Box<dyn BlockingIo>,
    buf: Vec<u8>,
}

impl Publisher {
    /// Connects to `target`.
    ///
    /// # Errors
    /// Connection failure.
    pub fn connect(target: &Target) -> Result<Publisher> {
        let stream = StdTcpStream::connect_timeout(&target.addr, Duration::from_secs(5))
            .with_context(|| format!("publisher cannot connect to {}", target.addr))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(Publisher {
            target: target.clone(),
            stream: crate::transport::connect_blocking(target, stream)?,
            buf: Vec::with_capacity(4096),
        })
    }

    /// POSTs `body` as `text/plain` to `path` and waits for the answer.
    /// Returns the status code.
    ///
    /// # Errors
    /// IO failure, time-out (30 s) or a malformed answer.
    pub fn post(&mut self, path: &str, body: &[u8]) -> Result<u16> {
        self.post_as(path, "text/plain", body)
    }

    /// POSTs `body` with `content_type` to `path` and waits for the
    /// answer. Returns the status code.
    ///
    /// # Errors
    /// IO failure, time-out (30 s) or a malformed answer.
    pub fn post_as(&mut self, path: &str, content_type: &str, body: &[u8]) -> Result<u16> {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.target.host,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.stream.write_all(&request)?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let head = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                bail!("publish connection closed by the server");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let mut rest = self.buf[head.len..].to_vec();
        if head.chunked {
            let mut dechunker = crate::sse::Dechunker::default();
            let mut body = Vec::new();
            let mut done = dechunker
                .feed(&rest, &mut |b| body.extend_from_slice(b))
                .map_err(|e| anyhow!(e))?;
            while !done {
                let n = self.stream.read(&mut chunk)?;
                if n == 0 {
                    bail!("publish connection closed mid-body");
                }
                done = dechunker
                    .feed(&chunk[..n], &mut |b| body.extend_from_slice(b))
                    .map_err(|e| anyhow!(e))?;
                if body.len() > MAX_RESPONSE_BODY {
                    bail!("publish response body too large");
                }
            }
        } else {
            let want = head.content_length.unwrap_or(0).min(MAX_RESPONSE_BODY);
            while rest.len() < want {
                let n = self.stream.read(&mut chunk)?;
                if n == 0 {
                    bail!("publish connection closed mid-body");
                }
                rest.extend_from_slice(&chunk[..n]);
            }
        }
        Ok(head.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert!(Target::parse("http://127.0.0.1:8000", None).is_ok());
        assert!(Target::parse("http://127.0.0.1:8000/realtime/x", None).is_ok());
        assert!(Target::parse("http://10.0.0.1:8000", None).is_err());
        assert!(Target::parse("https://127.0.0.1:8000", None).is_err());
        assert!(Target::parse("ftp://127.0.0.1:8000", None).is_err());
    }

    #[test]
    fn head_parsing() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nabc";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(
            (head.status, head.chunked, head.len),
            (200, true, raw.len() - 3)
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap().is_none());
    }
}
