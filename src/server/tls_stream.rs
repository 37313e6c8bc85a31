//! A server-side TLS stream over rustls' unbuffered API, holding no buffer
//! while the connection is idle.
//!
//! Why not `tokio-rustls`: its `ServerConnection` keeps a 4 KiB read buffer
//! per connection for the connection's whole life (rustls'
//! `DeframerVecBuffer`, resized to 4 KiB on every read, with no API to
//! release it). An idle SSE connection over it cost 11.7 KiB of server RSS
//! against 2.55 KiB in plaintext (docs/performance.md, "TLS and HTTP/2,
//! measured"). Here the connection is an [`UnbufferedServerConnection`] and
//! this stream owns the bytes:
//!
//! - `incoming`: TLS bytes read from the socket and not yet processed (at
//!   most a partial record once processed). Socket reads go to a buffer on
//!   the stack and are appended here, so nothing is allocated until bytes
//!   arrive, and the buffer is freed as soon as it is empty.
//! - `plaintext`: decrypted bytes the caller has not read yet; freed when
//!   read.
//! - `outgoing`: encrypted bytes not yet taken by the socket; freed when
//!   drained. At most [`MAX_OUTGOING`] bytes are accepted before a write
//!   waits for the socket (the same 64 KiB bound as rustls' own buffer).
//!
//! Behaviour matches `tokio-rustls`: the handshake is [`accept`] (the
//! caller bounds it in time); reading returns EOF after the peer's
//! `close_notify` and `UnexpectedEof` when the socket ends without one;
//! writes may return before the socket took the bytes, which
//! `poll_flush` and `poll_shutdown` (which sends `close_notify` first)
//! push out. Key updates, session tickets and alerts are messages rustls
//! asks to send ([`ConnectionState::EncodeTlsData`]), queued in `outgoing`
//! like application data. One difference: a read also tries to push out
//! bytes still queued, so that a stream waiting for its peer (an idle SSE
//! stream watching for EOF) keeps sending, and the socket's send timeout
//! (`SendTimeoutIo`) runs while bytes wait; with nothing queued, a read
//! only watches the socket (an idle connection does not wake).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls::server::UnbufferedServerConnection;
use tokio_rustls::rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedStatus,
};
use tokio_rustls::rustls::{self, ServerConfig};

/// Encrypted bytes accepted before a write waits for the socket.
pub(super) const MAX_OUTGOING: usize = 64 * 1024;

/// Bytes read from the socket at once (on the stack).
const READ_CHUNK: usize = 8 * 1024;

/// Room per TLS record beyond its payload: header (5), content type (1)
/// and AEAD tag (16), with some slack; a guess, corrected by rustls'
/// answer when too small.
const RECORD_OVERHEAD: usize = 64;

/// Largest TLS record payload.
const MAX_FRAGMENT: usize = 16 * 1024;

/// A TLS server connection over `IO` (see the module documentation).
pub(super) struct TlsStream<IO> {
    io: IO,
    conn: UnbufferedServerConnection,
    /// TLS bytes read but not processed yet; no allocation when empty.
    incoming: Vec<u8>,
    /// Encrypted bytes for the socket; no allocation when empty.
    outgoing: Vec<u8>,
    /// Decrypted bytes not read yet, from `plaintext_at`.
    plaintext: Vec<u8>,
    plaintext_at: usize,
    /// The peer sent `close_notify`: reads return EOF once `plaintext`
    /// is read.
    read_closed: bool,
    /// The socket returned EOF.
    eof: bool,
    /// `close_notify` has been queued.
    close_queued: bool,
}

/// Where processing the TLS records stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rest {
    /// Application data may be sent.
    Traffic,
    /// The handshake needs more bytes from the peer.
    Blocked,
    /// Both sides sent `close_notify`.
    Closed,
}

/// What to do once application data may be sent.
enum Want<'a> {
    Nothing,
    Encrypt(&'a [u8]),
    CloseNotify,
}

/// Completes the TLS handshake of `io` with `config`.
///
/// # Errors
/// The handshake failed (the alert, if any, is sent first), or the socket
/// failed or closed.
pub(super) async fn accept<IO>(io: IO, config: Arc<ServerConfig>) -> io::Result<TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    let mut stream = TlsStream {
        io,
        conn,
        incoming: Vec::new(),
        outgoing: Vec::new(),
        plaintext: Vec::new(),
        plaintext_at: 0,
        read_closed: false,
        eof: false,
        close_queued: false,
    };
    std::future::poll_fn(|cx| stream.poll_handshake(cx)).await?;
    Ok(stream)
}

impl<IO> TlsStream<IO> {
    /// The protocol ALPN chose, if any.
    pub(super) fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Runs rustls over the bytes read until it rests (see [`Rest`]):
    /// decrypted data goes to `plaintext`, messages to send to
    /// `outgoing`, and `want` is done once application data may be sent.
    fn process(&mut self, mut want: Want<'_>) -> io::Result<Rest> {
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut self.incoming[..]);
            let outcome = match state {
                Err(e) => Err(tls_error(e)),
                Ok(ConnectionState::ReadTraffic(mut records)) => {
                    let mut outcome = Ok(None);
                    while let Some(record) = records.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                self.plaintext.extend_from_slice(record.payload);
                            }
                            Err(e) => {
                                outcome = Err(tls_error(e));
                                break;
                            }
                        }
                    }
                    outcome
                }
                // Early data is off (`max_early_data_size` 0), so this is
                // never offered; read it like any data if it were.
                Ok(ConnectionState::ReadEarlyData(mut records)) => {
                    let mut outcome = Ok(None);
                    while let Some(record) = records.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                self.plaintext.extend_from_slice(record.payload);
                            }
                            Err(e) => {
                                outcome = Err(tls_error(e));
                                break;
                            }
                        }
                    }
                    outcome
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.read_closed = true;
                    Ok(None)
                }
                Ok(ConnectionState::Closed) => {
                    self.read_closed = true;
                    Ok(Some(Rest::Closed))
                }
                Ok(ConnectionState::EncodeTlsData(mut message)) => {
                    append(&mut self.outgoing, 0, |out| {
                        message.encode(out).map_err(|e| match e {
                            EncodeError::InsufficientSize(s) => Some(s.required_size),
                            EncodeError::AlreadyEncoded => None,
                        })
                    })
                    .map(|()| None)
                }
                // The bytes are in `outgoing`: sending them is ours now.
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    Ok(None)
                }
                Ok(ConnectionState::BlockedHandshake) => Ok(Some(Rest::Blocked)),
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let done = match std::mem::replace(&mut want, Want::Nothing) {
                        Want::Nothing => Ok(()),
                        Want::Encrypt(data) => {
                            let room =
                                data.len() + (data.len() / MAX_FRAGMENT + 1) * RECORD_OVERHEAD;
                            append(&mut self.outgoing, room, |out| {
                                traffic.encrypt(data, out).map_err(|e| match e {
                                    EncryptError::InsufficientSize(s) => Some(s.required_size),
                                    _ => None,
                                })
                            })
                        }
                        Want::CloseNotify => append(&mut self.outgoing, RECORD_OVERHEAD, |out| {
                            traffic.queue_close_notify(out).map_err(|e| match e {
                                EncryptError::InsufficientSize(s) => Some(s.required_size),
                                _ => None,
                            })
                        }),
                    };
                    done.map(|()| Some(Rest::Traffic))
                }
                Ok(other) => Err(io::Error::other(format!("unexpected TLS state {other:?}"))),
            };
            if discard > 0 {
                self.incoming.drain(..discard);
            }
            if self.incoming.is_empty() {
                self.incoming = Vec::new();
            }
            match outcome {
                Ok(None) => {}
                Ok(Some(rest)) => return Ok(rest),
                Err(e) => {
                    self.queue_alert();
                    return Err(e);
                }
            }
        }
    }

    /// After an error, queues the alert rustls wants to send, if any.
    fn queue_alert(&mut self) {
        let status = self.conn.process_tls_records(&mut []);
        if let Ok(ConnectionState::EncodeTlsData(mut message)) = status.state {
            let _ = append(&mut self.outgoing, 0, |out| {
                message.encode(out).map_err(|e| match e {
                    EncodeError::InsufficientSize(s) => Some(s.required_size),
                    EncodeError::AlreadyEncoded => None,
                })
            });
        }
    }

    /// Copies decrypted bytes into `buf`; whether any were.
    fn take_plaintext(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let ready = &self.plaintext[self.plaintext_at..];
        if ready.is_empty() || buf.remaining() == 0 {
            return false;
        }
        let n = ready.len().min(buf.remaining());
        buf.put_slice(&ready[..n]);
        self.plaintext_at += n;
        if self.plaintext_at == self.plaintext.len() {
            self.plaintext = Vec::new();
            self.plaintext_at = 0;
        }
        true
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> TlsStream<IO> {
    /// Drives the handshake until it is complete.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let rest = match self.process(Want::Nothing) {
                Ok(rest) => rest,
                Err(e) => {
                    // Send the alert if the socket takes it now.
                    let _ = self.poll_drain(cx);
                    return Poll::Ready(Err(e));
                }
            };
            // The server's flight goes out before waiting for the client.
            ready!(self.poll_drain(cx))?;
            match rest {
                Rest::Traffic if !self.conn.is_handshaking() => return Poll::Ready(Ok(())),
                Rest::Closed => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Rest::Traffic | Rest::Blocked => {
                    if ready!(self.poll_fill(cx))? == 0 {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "connection closed during the TLS handshake",
                        )));
                    }
                }
            }
        }
    }

    /// Reads once from the socket into `incoming`: the number of bytes
    /// read, 0 at EOF.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.eof {
            return Poll::Ready(Ok(0));
        }
        let mut chunk = [0u8; READ_CHUNK];
        let mut read = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        if n == 0 {
            self.eof = true;
        } else {
            self.incoming.extend_from_slice(read.filled());
        }
        Poll::Ready(Ok(n))
    }

    /// Writes `outgoing` to the socket until it is empty (and freed).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outgoing.is_empty() {
            match ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.outgoing.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.outgoing = Vec::new();
        Poll::Ready(Ok(()))
    }

    /// Encrypts `data` into `outgoing` (at most [`MAX_OUTGOING`] bytes
    /// queued before waiting for the socket) and starts sending it.
    fn poll_encrypt(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.close_queued {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "TLS stream already shut down",
            )));
        }
        if self.outgoing.len() >= MAX_OUTGOING {
            ready!(self.poll_drain(cx))?;
        }
        let n = data.len().min(MAX_OUTGOING - self.outgoing.len());
        match self.process(Want::Encrypt(&data[..n]))? {
            Rest::Traffic => {}
            Rest::Blocked => {
                return Poll::Ready(Err(io::Error::other("TLS handshake not complete")))
            }
            Rest::Closed => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
        // Accepted either way; the socket takes what it can now.
        if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Bytes still queued go out as the socket takes them (a failed
        // write, such as the send timeout, fails the read too).
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        loop {
            if this.take_plaintext(buf) || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            let rest = this.process(Want::Nothing)?;
            // A key update or ticket to answer.
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
            if this.plaintext.len() > this.plaintext_at || this.read_closed || rest == Rest::Closed
            {
                continue;
            }
            if ready!(this.poll_fill(cx))? == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed connection without sending TLS close_notify",
                )));
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_encrypt(cx, buf)
    }

    /// Gathers the slices (up to [`MAX_OUTGOING`] bytes) into one staging
    /// copy, so that they make full TLS records rather than one record
    /// per slice.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let non_empty = bufs.iter().filter(|b| !b.is_empty()).count();
        if non_empty <= 1 {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return this.poll_encrypt(cx, first);
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut staged = Vec::with_capacity(total.min(MAX_OUTGOING));
        for b in bufs {
            let room = MAX_OUTGOING - staged.len();
            if room == 0 {
                break;
            }
            staged.extend_from_slice(&b[..b.len().min(room)]);
        }
        this.poll_encrypt(cx, &staged)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    /// Sends `close_notify` (once), then shuts the socket's write side.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_queued {
            this.close_queued = true;
            // A connection already failed or closed has nothing to say.
            let _ = this.process(Want::CloseNotify);
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Appends what `write` writes to `out`, giving it `room` bytes, or as
/// many as it asks for (`Err(Some(n))`); `Err(None)` is a failure.
fn append(
    out: &mut Vec<u8>,
    room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> io::Result<()> {
    let start = out.len();
    let mut room = room;
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Some(needed)) if needed > room => room = needed,
            Err(_) => {
                out.truncate(start);
                return Err(io::Error::other("cannot encode a TLS record"));
            }
        }
    }
}

/// A rustls error as an I/O error, as `tokio-rustls` reports it.
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::{PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};

    /// A server configuration with a self-signed certificate for
    /// `localhost`, and a client trusting it that offers `versions`.
    fn configs(
        versions: &[&'static SupportedProtocolVersion],
    ) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    fn buffers<IO>(stream: &TlsStream<IO>) -> [usize; 3] {
        [
            stream.incoming.capacity(),
            stream.outgoing.capacity(),
            stream.plaintext.capacity(),
        ]
    }

    /// The point of this stream: between exchanges it holds no buffer,
    /// over TLS 1.2 and 1.3, after reads, large writes and a key update;
    /// and both directions' `close_notify` work.
    #[tokio::test]
    async fn an_idle_stream_holds_no_buffer() {
        let versions: [&[&'static SupportedProtocolVersion]; 2] =
            [&[&rustls::version::TLS12], &[&rustls::version::TLS13]];
        for versions in versions {
            let (server_config, client_config) = configs(versions);
            let (server_io, client_io) = tokio::io::duplex(1024 * 1024);
            let connector = tokio_rustls::TlsConnector::from(client_config);
            let name = ServerName::try_from("localhost").unwrap();
            let (server, client) = tokio::join!(
                accept(server_io, server_config),
                connector.connect(name, client_io)
            );
            let (mut server, mut client) = (server.unwrap(), client.unwrap());
            assert_eq!(
                client.get_ref().1.protocol_version(),
                Some(versions[0].version)
            );
            assert_eq!(buffers(&server), [0, 0, 0], "after the handshake");

            client.write_all(b"ping").await.unwrap();
            client.flush().await.unwrap();
            let mut four = [0u8; 4];
            server.read_exact(&mut four).await.unwrap();
            assert_eq!(&four, b"ping");
            assert_eq!(buffers(&server), [0, 0, 0], "after a read");

            let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
            let slices = [
                io::IoSlice::new(&big[..1000]),
                io::IoSlice::new(&big[1000..]),
            ];
            let mut sent = 0;
            while sent < big.len() {
                let n = if sent == 0 {
                    server.write_vectored(&slices).await.unwrap()
                } else {
                    server.write(&big[sent..]).await.unwrap()
                };
                sent += n;
            }
            server.flush().await.unwrap();
            let mut got = vec![0u8; big.len()];
            client.read_exact(&mut got).await.unwrap();
            assert!(got == big);
            assert_eq!(buffers(&server), [0, 0, 0], "after a large write");

            if versions[0] == &rustls::version::TLS13 {
                // The client's KeyUpdate asks for the server's: the
                // server's next bytes only decrypt if it answered.
                client.get_mut().1.refresh_traffic_keys().unwrap();
                client.write_all(b"pong").await.unwrap();
                client.flush().await.unwrap();
                server.read_exact(&mut four).await.unwrap();
                assert_eq!(&four, b"pong");
                server.write_all(b"after").await.unwrap();
                server.flush().await.unwrap();
                let mut five = [0u8; 5];
                client.read_exact(&mut five).await.unwrap();
                assert_eq!(&five, b"after");
                assert_eq!(buffers(&server), [0, 0, 0], "after a key update");
            }

            // The client closes its side: the server reads EOF, and can
            // still answer (half-closed), then closes with close_notify.
            client.get_mut().1.send_close_notify();
            client.flush().await.unwrap();
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
            server.write_all(b"bye").await.unwrap();
            server.shutdown().await.unwrap();
            let mut tail = Vec::new();
            client
                .read_to_end(&mut tail)
                .await
                .expect("close_notify from the server");
            assert_eq!(tail, b"bye");
        }
    }

    /// A socket that ends without `close_notify` is `UnexpectedEof`, not
    /// a clean end (a truncation is not mistaken for the end of a body).
    #[tokio::test]
    async fn eof_without_close_notify_is_an_error() {
        let (server_config, client_config) = configs(&[&rustls::version::TLS13]);
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let connector = tokio_rustls::TlsConnector::from(client_config);
        let name = ServerName::try_from("localhost").unwrap();
        let (server, client) = tokio::join!(
            accept(server_io, server_config),
            connector.connect(name, client_io)
        );
        let mut server = server.unwrap();
        let (io, _) = client.unwrap().into_inner();
        drop(io);
        let mut rest = Vec::new();
        let e = server.read_to_end(&mut rest).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// A client that is not speaking TLS fails the handshake at once.
    #[tokio::test]
    async fn a_non_tls_client_fails_the_handshake() {
        let (server_config, _) = configs(&[&rustls::version::TLS13]);
        let (server_io, mut client_io) = tokio::io::duplex(64 * 1024);
        client_io
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let e = accept(server_io, server_config).await.err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // The alert went out before the failure.
        let mut alert = [0u8; 5];
        client_io.read_exact(&mut alert).await.unwrap();
        assert_eq!(alert[0], 21, "an alert record: {alert:?}");
    }
}
