//! HTTPS and HTTP/2 against the real binary with real clients: curl
//! (`--http2`, `--http1.1`, `--http2-prior-knowledge`; Debian's curl has
//! nghttp2), Python's `h2` library (20 streams on one connection, a stream
//! that stops reading), rustls (which certificate is served), reqwest.
//! Certificates come from a CA made with rcgen in each test. Also
//! `--max-connections-per-ip` over every protocol, and one route answered
//! identically over HTTP/1.1, h2c and h2.

mod client_support;
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client_support::{interop_dir, python, require_interop, Proc};
use common::{append, eventually, post, Server, DEADLINE};
use serde_json::Value;

// --- certificates ----------------------------------------------------------

/// A test CA that issues server certificates for `localhost` and
/// 127.0.0.1, and writes the pair the server reads.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    dir: tempfile::TempDir,
}

/// One issued certificate and its key, as PEM, and the certificate's DER.
struct Pair {
    cert: String,
    key: String,
    der: Vec<u8>,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tailcast test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).unwrap();
        let pki = Pki {
            ca,
            ca_key,
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(pki.ca_file(), pki.ca.pem()).unwrap();
        pki
    }

    fn issue(&self) -> Pair {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn cert_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// Installs `pair` the way certbot renews: new files renamed over the
    /// old ones, key first.
    fn install(&self, pair: &Pair) {
        for (text, path) in [(&pair.key, self.key_file()), (&pair.cert, self.cert_file())] {
            let tmp = path.with_extension("new");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
    }

    /// A rustls client configuration trusting this CA.
    fn client_config(&self) -> Arc<tokio_rustls::rustls::ClientConfig> {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// The certificate a new TLS connection to `addr` is served (DER).
async fn served_certificate(pki: &Pki, addr: &str) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(pki.client_config());
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
        .await
        .expect("TLS handshake timed out")
        .expect("TLS handshake failed");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

// --- the server over TLS ---------------------------------------------------

/// A `tailcast serve` over HTTPS, killed when dropped; its stderr lines are
/// collected (and echoed) for the reload reports.
struct TlsServer {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

impl TlsServer {
    fn start(pki: &Pki, args: &[&str]) -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tailcast"))
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--tls-cert"])
            .arg(pki.cert_file())
            .arg("--tls-key")
            .arg(pki.key_file())
            .args(args.iter().map(|a| a.replace("{dir}", &d)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                eprintln!("server: {line}");
                lines.lock().unwrap().push(line);
            }
        });
        let port = common::listening_address(&mut child, "https")
            .strip_prefix("127.0.0.1:")
            .expect("listening on 127.0.0.1")
            .parse()
            .unwrap();
        TlsServer {
            child,
            port,
            stderr,
            dir,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `https://localhost:PORT{path}` (curl is told where localhost is).
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    fn resolve(&self) -> String {
        format!("localhost:{}:127.0.0.1", self.port)
    }

    async fn wait_stderr(&self, what: &str) {
        eventually(&format!("stderr line with {what:?}"), || async {
            self.stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(what))
                .then_some(())
        })
        .await;
    }

    fn stderr_count(&self, what: &str) -> usize {
        let lines = self.stderr.lock().unwrap();
        lines.iter().filter(|l| l.contains(what)).count()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- clients ---------------------------------------------------------------

/// What curl printed: `-w` line first (status, HTTP version, content
/// type), then the body.
#[derive(Debug, PartialEq)]
struct Curled {
    status: u16,
    version: String,
    content_type: String,
    body: String,
}

/// Runs curl (not streaming) with `args`, with a watchdog.
fn curl(args: &[&str]) -> Curled {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--noproxy", "*"])
        .args(["-w", "\n%{http_code} %{http_version} %{content_type}"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, meta) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut meta = meta.splitn(3, ' ');
    let status = meta.next().unwrap_or("0").parse().unwrap_or(0);
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Curled {
        status,
        version: meta.next().unwrap_or("").to_string(),
        content_type: meta.next().unwrap_or("").to_string(),
        body: body.to_string(),
    }
}

fn tls_curl(server: &TlsServer, pki: &Pki, extra: &[&str], path: &str) -> Curled {
    let ca = pki.ca_file().display().to_string();
    let resolve = server.resolve();
    let url = server.url(path);
    let mut args = vec!["--cacert", &ca, "--resolve", &resolve];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

/// A streaming curl (`-N`) whose stdout lines are read as they come.
fn curl_stream(args: &[&str]) -> Proc {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sSN", "--noproxy", "*"]).args(args);
    Proc::spawn(cmd)
}

/// The Python `h2` client (`tests/interop/h2_client.py`).
fn h2_client(port: u16, args: &[&str]) -> Proc {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(interop_dir().join("h2_client.py"))
        .args(["127.0.0.1", &port.to_string()])
        .args(args);
    Proc::spawn(cmd)
}

/// The next JSON line of the h2 client that satisfies `pred`.
async fn h2_event(proc: &mut Proc, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let line = proc
        .line_where(what, |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| pred(&v))
        })
        .await;
    serde_json::from_str(&line).unwrap()
}

fn pki_and_server(args: &[&str]) -> (Pki, TlsServer) {
    let pki = Pki::new();
    pki.install(&pki.issue());
    let server = TlsServer::start(&pki, args);
    (pki, server)
}

// --- tests -----------------------------------------------------------------

#[tokio::test]
async fn https_negotiates_h2_by_alpn_and_serves_http11_to_clients_that_ask() {
    let (pki, server) = pki_and_server(&["app={dir}/app.log"]);
    append(&server.dir.path().join("app.log"), "one\ntwo\nthree\n");

    let h2 = tls_curl(&server, &pki, &["--http2"], "/health");
    assert_eq!((h2.status, h2.version.as_str()), (200, "2"), "{h2:?}");
    let h1 = tls_curl(&server, &pki, &["--http1.1"], "/health");
    assert_eq!((h1.status, h1.version.as_str()), (200, "1.1"), "{h1:?}");

    // SSE over both: curl's own output, read as it streams.
    let ca = pki.ca_file().display().to_string();
    let resolve = server.resolve();
    let url = server.url("/logs/app?tail=3");
    for version in ["--http2", "--http1.1"] {
        let mut stream = curl_stream(&["--cacert", &ca, "--resolve", &resolve, version, &url]);
        stream.line_where("retry", |l| l == "retry: 3000").await;
        stream
            .line_where("the backlog", |l| l == "data: three")
            .await;
        append(
            &server.dir.path().join("app.log"),
            &format!("live{version}\n"),
        );
        stream
            .line_where("the live line", |l| l == format!("data: live{version}"))
            .await;
    }
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served_on_the_plaintext_port() {
    let server = Server::start(&[]);
    let health = curl(&["--http2-prior-knowledge", &server.url("/health")]);
    assert_eq!((health.status, health.version.as_str()), (200, "2"));
    // The same port still speaks HTTP/1.1.
    let h1 = curl(&["--http1.1", &server.url("/health")]);
    assert_eq!((h1.status, h1.version.as_str()), (200, "1.1"));
    // A POST with a body, and an SSE stream, over h2c.
    let mut stream = curl_stream(&["--http2-prior-knowledge", &server.url("/realtime/h2c")]);
    stream.line_where("retry", |l| l == "retry: 3000").await;
    let published = curl(&[
        "--http2-prior-knowledge",
        "-X",
        "POST",
        "--data-binary",
        "over h2c",
        &server.url("/channels/h2c"),
    ]);
    assert_eq!(published.status, 200, "{published:?}");
    assert_eq!(published.version, "2");
    stream
        .line_where("the event", |l| l == "data: over h2c")
        .await;
}

#[tokio::test]
#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs the Python h2 client of .ci/interop.sh"
)]
async fn twenty_streams_share_one_http2_connection() {
    require_interop();
    let (pki, server) = pki_and_server(&[]);
    let ca = pki.ca_file().display().to_string();
    let paths: Vec<String> = (0..20).map(|i| format!("/realtime/c{i}")).collect();
    let mut args = vec!["--tls", &ca];
    args.extend(paths.iter().map(String::as_str));
    let mut client = h2_client(server.port, &args);
    let connected = h2_event(&mut client, "connected", |v| v["event"] == "connected").await;
    assert_eq!(connected["alpn"], "h2");
    assert_eq!(connected["streams"], 20);
    let mut opened = std::collections::BTreeSet::new();
    while opened.len() < 20 {
        let v = h2_event(&mut client, "a response", |v| v["event"] == "response").await;
        assert_eq!(v["status"], 200, "{v}");
        assert_eq!(v["headers"]["content-type"], "text/event-stream");
        opened.insert(v["path"].as_str().unwrap().to_string());
    }
    // 20 streams open at once, all on the client's one connection.
    let reqwest = reqwest_tls(&pki);
    let health = reqwest
        .get(server.url("/health"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["connections"], 20, "{health}");
    for i in 0..20 {
        let response = reqwest
            .post(server.url(&format!("/channels/c{i}")))
            .body(format!("event for c{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let mut got = std::collections::BTreeSet::new();
    while got.len() < 20 {
        let v = h2_event(&mut client, "an event", |v| {
            v["event"] == "data" && v["text"].as_str().unwrap().contains("event for")
        })
        .await;
        let path = v["path"].as_str().unwrap();
        let channel = path.trim_start_matches("/realtime/");
        assert!(
            v["text"]
                .as_str()
                .unwrap()
                .contains(&format!("data: event for {channel}\n")),
            "{v}"
        );
        got.insert(path.to_string());
    }
}

fn reqwest_tls(pki: &Pki) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(pki.ca.pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(ca)
        .resolve("localhost", "127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
#[cfg_attr(
    tailcast_skip_interop,
    ignore = "TAILCAST_SKIP_INTEROP=1: needs the Python h2 client of .ci/interop.sh"
)]
async fn a_stalled_http2_stream_is_reset_while_the_others_go_on() {
    require_interop();
    let server = Server::start(&["--send-timeout", "1s"]);
    let port: u16 = server.addr.rsplit(':').next().unwrap().parse().unwrap();
    // h2c; 4 KiB stream windows; /realtime/slow is never acknowledged.
    let mut client = h2_client(
        port,
        &[
            "--window",
            "4096",
            "--stall",
            "/realtime/slow",
            "/realtime/fast",
        ],
    );
    for _ in 0..2 {
        let v = h2_event(&mut client, "a response", |v| v["event"] == "response").await;
        assert_eq!(v["status"], 200, "{v}");
    }
    let chunk = "x".repeat(1024);
    for i in 0..8 {
        let (status, _) = post(
            &server.url("/channels/slow"),
            "text/plain",
            format!("{i} {chunk}"),
        )
        .await;
        assert_eq!(status, 200);
    }
    let started = Instant::now();
    let reset = h2_event(&mut client, "the reset of the stalled stream", |v| {
        v["event"] == "reset"
    })
    .await;
    assert_eq!(reset["path"], "/realtime/slow", "{reset}");
    assert_eq!(reset["code"], 8, "CANCEL: {reset}");
    assert!(started.elapsed() < Duration::from_secs(8));
    // The other stream of the same connection goes on.
    let (status, _) = post(&server.url("/channels/fast"), "text/plain", "still flowing").await;
    assert_eq!(status, 200);
    h2_event(&mut client, "the fast stream's event", |v| {
        v["event"] == "data" && v["text"].as_str().unwrap().contains("data: still flowing")
    })
    .await;
    // The stalled subscriber is gone from the hub and counted.
    eventually("slow unsubscribed", || async {
        common::stream_info(&server, "slow")
            .await
            .filter(|s| s["subscribers"] == 0)
    })
    .await;
    let (_, metrics) = common::get(&server.url("/metrics")).await;
    let dropped = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tailcast_slow_subscribers_dropped_total "))
        .expect("the counter");
    assert_eq!(dropped.trim(), "1", "{metrics}");
}

#[tokio::test]
async fn certificate_rotation_keeps_open_streams_and_new_connections_get_the_new_one() {
    let (pki, server) = pki_and_server(&[]);
    let first = std::fs::read_to_string(pki.cert_file()).unwrap();
    let before = served_certificate(&pki, &server.addr()).await;
    assert!(first.contains("BEGIN CERTIFICATE"));

    // Streams open over h2 (curl) and HTTP/1.1 (reqwest).
    let ca = pki.ca_file().display().to_string();
    let resolve = server.resolve();
    let url = server.url("/realtime/rotation");
    let mut h2 = curl_stream(&["--cacert", &ca, "--resolve", &resolve, "--http2", &url]);
    h2.line_where("retry", |l| l == "retry: 3000").await;
    let h1 = reqwest_tls(&pki)
        .get(server.url("/realtime/rotation"))
        .send()
        .await
        .unwrap();
    assert_eq!(h1.status(), 200);
    let mut h1 = h1.bytes_stream();

    let renewed = pki.issue();
    pki.install(&renewed);
    let addr = server.addr();
    eventually("the renewed certificate served", || async {
        (served_certificate(&pki, &addr).await == renewed.der).then_some(())
    })
    .await;
    assert_ne!(before, renewed.der);
    server.wait_stderr("TLS certificate reloaded").await;

    post_tls(&pki, &server, "/channels/rotation", "after renewal").await;
    h2.line_where("the event on h2", |l| l == "data: after renewal")
        .await;
    let mut seen = String::new();
    while !seen.contains("data: after renewal") {
        use futures_util::StreamExt;
        let chunk = tokio::time::timeout(DEADLINE, h1.next())
            .await
            .expect("h1 event")
            .expect("h1 stream open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn post_tls(pki: &Pki, server: &TlsServer, path: &str, body: &str) {
    let response = reqwest_tls(pki)
        .post(server.url(path))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_bad_new_pair_is_reported_and_the_old_one_kept() {
    let (pki, server) = pki_and_server(&[]);
    let before = served_certificate(&pki, &server.addr()).await;
    // A certificate that does not match the key, then not PEM at all.
    let other = pki.issue();
    std::fs::write(pki.cert_file(), &other.cert).unwrap();
    server.wait_stderr("TLS reload failed").await;
    assert_eq!(served_certificate(&pki, &server.addr()).await, before);
    std::fs::write(pki.cert_file(), "not a certificate").unwrap();
    eventually("the second failure reported", || async {
        (server.stderr_count("TLS reload failed") >= 2).then_some(())
    })
    .await;
    assert_eq!(served_certificate(&pki, &server.addr()).await, before);
    let health = tls_curl(&server, &pki, &["--http2"], "/health");
    assert_eq!(health.status, 200);
    // A good pair again is taken.
    pki.install(&other);
    let addr = server.addr();
    eventually("the good pair served", || async {
        (served_certificate(&pki, &addr).await == other.der).then_some(())
    })
    .await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_does_not_stop_the_server() {
    let (pki, server) = pki_and_server(&[]);
    let renewed = pki.issue();
    pki.install(&renewed);
    let status = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    server.wait_stderr("SIGHUP: reloading").await;
    let addr = server.addr();
    eventually("the renewed certificate served", || async {
        (served_certificate(&pki, &addr).await == renewed.der).then_some(())
    })
    .await;
    let health = tls_curl(&server, &pki, &["--http2"], "/health");
    assert_eq!(health.status, 200);
}

#[test]
fn a_bad_pair_at_startup_is_an_error() {
    let pki = Pki::new();
    let (a, b) = (pki.issue(), pki.issue());
    std::fs::write(pki.cert_file(), &a.cert).unwrap();
    std::fs::write(pki.key_file(), &b.key).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tailcast"))
        .args(["serve", "--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(pki.cert_file())
        .arg("--tls-key")
        .arg(pki.key_file())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: certificate "), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing listened");
    let missing = Command::new(env!("CARGO_BIN_EXE_tailcast"))
        .args(["serve", "--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(pki.cert_file())
        .arg("--tls-key")
        .arg(Path::new("/nonexistent/key.pem"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("/nonexistent/key.pem"), "{stderr}");
}

/// The access-control rules (and every other rule) live in the router's
/// handlers; these requests must get the same answer whatever the protocol.
#[tokio::test]
async fn routes_answer_identically_over_http11_h2c_and_h2() {
    let (pki, tls) = pki_and_server(&[]);
    let plain = Server::start(&[]);
    let requests: &[&[&str]] = &[
        &["/nosuch"],
        &["/realtime/bad%20name"],
        &["/events"],
        &["-X", "POST", "--data-binary", "x", "/channels/log:demo"],
        &["-X", "PUT", "/health"],
        &["-X", "POST", "/api/broadcast"],
        &[
            "-H",
            "content-type: application/json",
            "-X",
            "POST",
            "--data-binary",
            "{",
            "/api/broadcast",
        ],
        &["/assets/console.css"],
    ];
    for request in requests {
        let (path, flags) = request.split_last().unwrap();
        let mut answers = Vec::new();
        for version in ["--http1.1", "--http2-prior-knowledge"] {
            let mut args = flags.to_vec();
            args.push(version);
            let url = plain.url(path);
            args.push(&url);
            answers.push((version, curl(&args)));
        }
        for version in ["--http1.1", "--http2"] {
            let mut args = flags.to_vec();
            args.push(version);
            answers.push((version, tls_curl(&tls, &pki, &args, path)));
        }
        let (_, first) = &answers[0];
        assert!(first.status >= 200, "{request:?}: {first:?}");
        for (version, answer) in &answers[1..] {
            assert_eq!(
                (answer.status, &answer.content_type, &answer.body),
                (first.status, &first.content_type, &first.body),
                "{request:?} over {version}"
            );
        }
    }
}

#[tokio::test]
async fn max_connections_per_ip_counts_streams_over_every_protocol() {
    let server = Server::start(&["--max-connections-per-ip", "2"]);
    // One stream on the lean HTTP/1.1 path, one over h2c.
    let first = common::Sse::connect(&server.url("/realtime/a")).await;
    assert_eq!(first.status, 200);
    let mut h2c = curl_stream(&["--http2-prior-knowledge", &server.url("/realtime/b")]);
    h2c.line_where("retry", |l| l == "retry: 3000").await;

    // A third is refused on each path, unrouted: 503, Retry-After, JSON.
    let refused = common::Sse::connect(&server.url("/realtime/c")).await;
    assert_eq!(refused.status, 503);
    assert!(refused.headers.contains_key("retry-after"));
    let over_h2c = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "accept: text/event-stream",
        &server.url("/realtime/c"),
    ]);
    assert_eq!(over_h2c.status, 503, "{over_h2c:?}");
    let body: Value = serde_json::from_str(&over_h2c.body).unwrap();
    assert_eq!(body["error"], "too many streams from this address");
    assert!(body["detail"].as_str().unwrap().contains("127.0.0.1"));
    let over_http10 = curl(&["--http1.0", &server.url("/events?channel=c")]);
    assert_eq!(over_http10.status, 503, "{over_http10:?}");
    // Nothing was left behind by the refusals: channel c was never made.
    assert!(common::stream_info(&server, "c").await.is_none());
    // Other requests are not counted.
    assert_eq!(curl(&[&server.url("/health")]).status, 200);

    // A stream that ends frees its slot.
    drop(first);
    eventually("a slot freed", || async {
        let again = common::Sse::connect(&server.url("/realtime/d")).await;
        (again.status == 200).then_some(again)
    })
    .await;
}
