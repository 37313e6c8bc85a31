//! The server's TLS stream (rustls' unbuffered API, `server::tls_stream`:
//! no buffer held while a connection is idle) against the real binary,
//! with rustls clients speaking raw HTTP/1.1: TLS 1.2 and 1.3, ALPN,
//! `close_notify` at the end of lean-path and hyper-path answers, a key
//! update in the middle of a stream, records larger than one socket read
//! both ways, and a subscriber that stops reading over TLS (send
//! timeout). The memory itself is measured by `bench/compare.sh`
//! (`idle10k-tls`), never asserted here.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use common::{eventually, DEADLINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, SupportedProtocolVersion};

/// A self-signed certificate for `localhost`, its files, and a `tailcast
/// serve` over HTTPS with it, killed when dropped.
struct TlsServer {
    child: Child,
    port: u16,
    cert_der: rustls_pki_types::CertificateDer<'static>,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    fn start(args: &[&str]) -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (cert_file, key_file): (PathBuf, PathBuf) =
            (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let quiet = dir.path().join("quiet.log");
        std::fs::write(&quiet, "").unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tailcast"))
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert_file)
            .arg("--tls-key")
            .arg(&key_file)
            .args(args)
            .arg(format!("quiet={}", quiet.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let port = common::listening_address(&mut child, "https")
            .strip_prefix("127.0.0.1:")
            .expect("listening on 127.0.0.1")
            .parse()
            .unwrap();
        TlsServer {
            child,
            port,
            cert_der: cert.der().clone(),
            _dir: dir,
        }
    }

    /// A rustls client trusting the server's certificate, offering only
    /// `versions` and ALPN `http/1.1`.
    fn client_config(&self, versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A TLS connection with `versions`, handshake done.
    async fn connect(
        &self,
        versions: &[&'static SupportedProtocolVersion],
    ) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(self.client_config(versions));
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
            .await
            .expect("TLS handshake timed out")
            .expect("TLS handshake failed")
    }

    /// Publishes `body` to `channel` over its own TLS connection with
    /// `Connection: close` (served by hyper), reading the answer to the
    /// end: the server must end it with `close_notify` (a missing one is
    /// `UnexpectedEof` in the client).
    async fn publish(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        channel: &str,
        body: &str,
    ) {
        let mut tls = self.connect(versions).await;
        let head = format!(
            "POST /channels/{channel} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(body.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(DEADLINE, tls.read_to_end(&mut answer))
            .await
            .expect("publish answer timed out")
            .expect("the publish answer ends with close_notify");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    /// The value of the unlabelled metric `name`, over TLS.
    async fn metric(&self, name: &str) -> f64 {
        let mut tls = self.connect(TLS13).await;
        tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(DEADLINE, tls.read_to_end(&mut answer))
            .await
            .expect("metrics timed out")
            .unwrap();
        let text = String::from_utf8_lossy(&answer);
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Opens an SSE stream of `channel` on `tls` and reads its response head.
async fn subscribe(tls: &mut TlsStream<TcpStream>, channel: &str) -> Vec<u8> {
    let request = format!("GET /realtime/{channel} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let seen = read_until(tls, Vec::new(), b"\r\n\r\n").await;
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/event-stream"), "{text}");
    seen
}

/// Reads from `tls` onto `seen` until it holds `needle`.
async fn read_until(tls: &mut TlsStream<TcpStream>, mut seen: Vec<u8>, needle: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(DEADLINE, async {
        while !seen.windows(needle.len()).any(|w| w == needle) {
            let n = tls.read(&mut buf).await.expect("stream read");
            assert!(
                n > 0,
                "the stream ended before {:?}",
                String::from_utf8_lossy(needle)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no {:?} within the deadline",
            String::from_utf8_lossy(needle)
        )
    });
    seen
}

#[tokio::test]
async fn tls12_and_tls13_streams_deliver_and_end_with_close_notify() {
    for (name, versions) in [("tls12", TLS12), ("tls13", TLS13)] {
        let mut server = TlsServer::start(&[]);
        let mut tls = server.connect(versions).await;
        let negotiated = tls.get_ref().1.protocol_version().unwrap();
        eprintln!("{name}: negotiated {negotiated:?}");
        assert_eq!(negotiated, versions[0].version);
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let seen = subscribe(&mut tls, name).await;
        server
            .publish(versions, name, &format!("hello over {name}"))
            .await;
        let seen = read_until(
            &mut tls,
            seen,
            format!("data: hello over {name}").as_bytes(),
        )
        .await;
        // A non-SSE answer on the lean path (a refused channel name) ends
        // with close_notify too.
        let mut refused = server.connect(versions).await;
        refused
            .write_all(b"GET /realtime/bad%20name HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(DEADLINE, refused.read_to_end(&mut answer))
            .await
            .unwrap()
            .expect("the refusal ends with close_notify");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
        // Shutdown ends the stream: last chunk, then close_notify.
        common::send_signal(server.child.id(), "TERM");
        let mut rest = Vec::new();
        tokio::time::timeout(DEADLINE, tls.read_to_end(&mut rest))
            .await
            .expect("the stream ends on shutdown")
            .expect("the stream ends with close_notify");
        let all = [seen, rest].concat();
        assert!(
            all.ends_with(b"0\r\n\r\n"),
            "{:?}",
            String::from_utf8_lossy(&all)
        );
        let _ = server.child.wait();
    }
}

#[tokio::test]
async fn a_key_update_in_the_middle_of_a_stream_is_answered_and_the_stream_goes_on() {
    let server = TlsServer::start(&[]);
    let mut tls = server.connect(TLS13).await;
    let seen = subscribe(&mut tls, "keys").await;
    server.publish(TLS13, "keys", "before the update").await;
    let seen = read_until(&mut tls, seen, b"data: before the update").await;
    // The client's KeyUpdate asks the server to update its keys too: the
    // next event only decrypts if the server answered with its own.
    tls.get_mut().1.refresh_traffic_keys().unwrap();
    tls.flush().await.unwrap();
    for i in 0..3 {
        server
            .publish(TLS13, "keys", &format!("after the update {i}"))
            .await;
    }
    read_until(&mut tls, seen, b"data: after the update 2").await;
    // And the client can still talk to the server with its new keys: a
    // request on a new stream of the same kind works too.
    let mut again = server.connect(TLS13).await;
    subscribe(&mut again, "keys").await;
}

#[tokio::test]
async fn events_larger_than_a_record_cross_whole_both_ways() {
    let server = TlsServer::start(&[]);
    for versions in [TLS12, TLS13] {
        let mut tls = server.connect(versions).await;
        let seen = subscribe(&mut tls, "big").await;
        // 300 KiB: about 19 TLS records to the server, and an SSE chunk
        // larger than what a write queues before waiting for the socket.
        let body: String = (0..300 * 1024)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        server.publish(versions, "big", &body).await;
        let expected = format!("data: {body}\n");
        let seen = read_until(&mut tls, seen, b"\n\n").await;
        // The chunk may arrive in pieces: read until the event's end.
        let seen = if seen
            .windows(expected.len())
            .any(|w| w == expected.as_bytes())
        {
            seen
        } else {
            read_until(&mut tls, seen, expected.as_bytes()).await
        };
        assert!(seen
            .windows(expected.len())
            .any(|w| w == expected.as_bytes()));
    }
}

#[tokio::test]
async fn a_tls_subscriber_that_stops_reading_is_dropped_by_the_send_timeout() {
    let server = TlsServer::start(&["--send-timeout", "1s"]);
    let mut tls = server.connect(TLS13).await;
    subscribe(&mut tls, "slow").await;
    // 16 MiB of events the client never reads: far more than the socket
    // buffers and the stream's 64 KiB of queued records.
    let chunk = "y".repeat(256 * 1024);
    for i in 0..64 {
        server.publish(TLS13, "slow", &format!("{i} {chunk}")).await;
    }
    eventually("the stalled TLS subscriber dropped", || async {
        (server
            .metric("tailcast_slow_subscribers_dropped_total")
            .await
            >= 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(
        server
            .metric("tailcast_slow_subscribers_dropped_total")
            .await,
        1.0
    );
    drop(tls);
}
