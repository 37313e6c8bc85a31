//! TLS and HTTP/2 for the load tool: a subscriber's connection is plain
//! TCP or TLS (rustls, ALPN `http/1.1`), and with `--h2-streams N` the
//! subscribers are HTTP/2 streams, N per connection (TLS with ALPN `h2`, or
//! h2c with prior knowledge on an `http://` target), made with the `h2`
//! crate. The publisher speaks HTTP/1.1 over plain TCP or blocking TLS.

use std::io::{self, Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, ClientConfig};

use crate::http::Target;

/// rustls client settings for a target: trust `ca` only.
#[derive(Debug, Clone)]
pub struct Tls {
    /// ALPN `http/1.1`.
    pub http1: Arc<ClientConfig>,
    /// ALPN `h2`.
    pub http2: Arc<ClientConfig>,
}

impl Tls {
    /// Trusts the PEM certificates in `ca`.
    ///
    /// # Errors
    /// The file cannot be read or holds no certificate.
    pub fn from_ca_file(ca: &Path) -> Result<Tls> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("cannot read {}", ca.display()))?
        {
            roots.add(cert.with_context(|| format!("bad PEM in {}", ca.display()))?)?;
        }
        if roots.is_empty() {
            bail!("no certificate in {}", ca.display());
        }
        let config = |alpn: &[u8]| -> Result<Arc<ClientConfig>> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(config))
        };
        Ok(Tls {
            http1: config(b"http/1.1")?,
            http2: config(b"h2")?,
        })
    }
}

fn server_name(target: &Target) -> Result<ServerName<'static>> {
    let host = target.host.rsplit_once(':').map_or(&*target.host, |h| h.0);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| anyhow!("bad server name {host:?}: {e}"))
}

/// A subscriber's connection: plain TCP or TLS.
pub enum Conn {
    /// `http://`.
    Plain(TcpStream),
    /// `https://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    /// Connects to `target` (TLS with `alpn_h2` choosing the ALPN config).
    ///
    /// # Errors
    /// Connection or handshake failure.
    pub async fn connect(target: &Target, alpn_h2: bool) -> Result<Conn> {
        let tcp = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connect {}", target.addr))?;
        tcp.set_nodelay(true)?;
        let Some(tls) = &target.tls else {
            return Ok(Conn::Plain(tcp));
        };
        let config = if alpn_h2 { &tls.http2 } else { &tls.http1 };
        let stream = tokio_rustls::TlsConnector::from(config.clone())
            .connect(server_name(target)?, tcp)
            .await
            .context("TLS handshake")?;
        Ok(Conn::Tls(Box::new(stream)))
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The publisher's blocking connection.
pub trait BlockingIo: Read + Write + Send {}

impl<T: Read + Write + Send> BlockingIo for T {}

/// Connects the publisher (HTTP/1.1; TLS when the target is `https://`).
///
/// # Errors
/// Connection or handshake failure.
pub fn connect_blocking(target: &Target, tcp: StdTcpStream) -> Result<Box<dyn BlockingIo>> {
    let Some(tls) = &target.tls else {
        return Ok(Box::new(tcp));
    };
    let connection = rustls::ClientConnection::new(tls.http1.clone(), server_name(target)?)?;
    Ok(Box::new(rustls::StreamOwned::new(connection, tcp)))
}

/// Opens an HTTP/2 connection to `target` and `count` GET streams of
/// `path` on it; returns each stream's body once its `200` head arrived.
///
/// # Errors
/// Connection, handshake or a non-200 answer.
pub async fn open_h2_streams(
    target: &Target,
    path: &str,
    count: usize,
) -> Result<Vec<h2::RecvStream>> {
    let conn = Conn::connect(target, true).await?;
    if let Conn::Tls(tls) = &conn {
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            bail!("the server did not choose h2 by ALPN");
        }
    }
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake::<_, Bytes>(conn)
        .await
        .context("HTTP/2 handshake")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("HTTP/2 connection ended: {e}");
        }
    });
    let scheme = if target.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let uri = format!("{scheme}://{}{path}", target.host);
    let mut pending = Vec::with_capacity(count);
    let mut client = client;
    for _ in 0..count {
        client = client.ready().await.context("HTTP/2 stream slot")?;
        let request = http::Request::get(&uri)
            .header("accept", "text/event-stream")
            .body(())?;
        let (response, _) = client.send_request(request, true)?;
        pending.push(response);
    }
    let mut bodies = Vec::with_capacity(count);
    for response in pending {
        let response = response.await.context("HTTP/2 response")?;
        if response.status() != 200 {
            bail!("GET {path} answered {}", response.status());
        }
        bodies.push(response.into_body());
    }
    Ok(bodies)
}

/// Reads the next data of an HTTP/2 body into `out`, giving the window
/// back; `Ok(0)` at its end.
///
/// # Errors
/// The stream was reset or the connection failed.
pub async fn read_h2(body: &mut h2::RecvStream, out: &mut Vec<u8>) -> Result<usize> {
    match body.data().await {
        Some(Ok(data)) => {
            let _ = body.flow_control().release_capacity(data.len());
            out.extend_from_slice(&data);
            Ok(data.len())
        }
        Some(Err(e)) => Err(anyhow!("HTTP/2 stream: {e}")),
        None => Ok(0),
    }
}
