//! Hardening round 2, the edge (issue 20): `Host`/`Origin` checks with
//! access control off (DNS rebinding, CSRF) and `--allowed-host`; the
//! `__Host-` session cookie and `--cookie-secure`; the cookie's origin
//! check over HTTP/2 (no `Host`, only `:authority`); `--cors-origin null`
//! and http:// JWKS URLs refused at start; the console's security
//! headers; `/stream-logs` naming nothing to a stranger; channel names
//! validated before rights are matched.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SECRET: &str = "0123456789abcdef0123456789abcdef-edge-secret";

/// An HS256 token for the test secret with these rights, valid for an hour.
fn token(rights: Value) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "edge", "exp": exp, "tailcast": rights}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Writes the secret file into `dir` and returns its path.
fn secret_file(dir: &Path) -> PathBuf {
    let path = dir.join("secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    path
}

/// A server with access control by the test secret, following
/// `payroll=app.log`, with `extra` arguments.
fn secured(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path()).display().to_string();
    std::fs::write(dir.path().join("app.log"), "line one\n").unwrap();
    let mut args = vec!["--jwt-secret-file", &secret, "payroll={dir}/app.log"];
    args.extend_from_slice(extra);
    Server::start_in(dir, &args, Stdio::null(), &[])
}

/// The status and whole head of one raw HTTP/1.1 request (`head` without
/// its final blank line; `Connection: close` is added). For a stream,
/// only the head is read.
async fn raw_head(server: &Server, head: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    stream
        .write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a head: {seen:?}");
            seen.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(DEADLINE, read).await.expect("no head");
    let text = String::from_utf8_lossy(&seen).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

/// An HTTP/2 (h2c, prior knowledge) connection to `server`.
async fn h2c(server: &Server) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Sends `request` (with `body`) on `client`; returns the status and the
/// whole body.
async fn h2_send(
    client: &mut h2::client::SendRequest<bytes::Bytes>,
    request: axum::http::Request<()>,
    body: &str,
) -> (u16, String, axum::http::HeaderMap) {
    let exchange = async {
        let mut ready = client.clone().ready().await.unwrap();
        let (response, mut send) = ready.send_request(request, body.is_empty()).unwrap();
        if !body.is_empty() {
            send.send_data(bytes::Bytes::from(body.to_string()), true)
                .unwrap();
        }
        let response = response.await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            text.extend_from_slice(&chunk);
        }
        (status, String::from_utf8_lossy(&text).into_owned(), headers)
    };
    let _ = client;
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("no HTTP/2 answer")
}

/// DNS rebinding: a page of `evil.example` whose name now resolves to
/// 127.0.0.1 sends `Host: evil.example`. Refused 421 on the router (the
/// stream list, with file paths) and on the lean SSE path; loopback names
/// and addresses pass.
#[tokio::test]
async fn a_foreign_host_is_refused_421_on_every_path() {
    let server = Server::start(&[]);
    for target in ["/api/streams", "/events?channel=news", "/realtime/news"] {
        let (status, head) = raw_head(
            &server,
            &format!("GET {target} HTTP/1.1\r\nHost: evil.example"),
        )
        .await;
        assert_eq!(status, 421, "GET {target} with Host evil.example: {head}");
        let (status, _) = raw_head(
            &server,
            &format!(
                "GET {target} HTTP/1.1\r\nHost: evil.example:{}",
                server.addr.rsplit(':').next().unwrap()
            ),
        )
        .await;
        assert_eq!(status, 421, "GET {target} with Host evil.example:port");
    }
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    for host in [
        "localhost".to_string(),
        format!("localhost:{port}"),
        format!("app.localhost:{port}"),
        format!("LOCALHOST.:{port}"),
        format!("127.0.0.1:{port}"),
        format!("127.8.9.10:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (status, head) = raw_head(
            &server,
            &format!("GET /api/streams HTTP/1.1\r\nHost: {host}"),
        )
        .await;
        assert_eq!(status, 200, "Host {host}: {head}");
        let (status, head) = raw_head(
            &server,
            &format!("GET /realtime/news HTTP/1.1\r\nHost: {host}"),
        )
        .await;
        assert_eq!(status, 200, "SSE with Host {host}: {head}");
    }
}

/// A non-loopback address that is not the server's is refused too; the
/// listening address is accepted (here 127.0.0.1, a loopback one anyway).
#[tokio::test]
async fn a_foreign_address_as_host_is_refused() {
    let server = Server::start(&[]);
    let (status, head) = raw_head(&server, "GET /api/streams HTTP/1.1\r\nHost: 10.9.8.7").await;
    assert_eq!(status, 421, "{head}");
    let body = head.to_ascii_lowercase();
    assert!(body.contains("application/json"), "{head}");
}

/// `--allowed-host` (flag or `TAILCAST_ALLOWED_HOST`) lets a name in.
#[tokio::test]
async fn allowed_host_lets_a_name_in() {
    let server = Server::start(&[
        "--allowed-host",
        "tailcast.internal",
        "--allowed-host",
        "Logs.Example",
    ]);
    for host in [
        "tailcast.internal",
        "tailcast.internal:8000",
        "logs.example",
    ] {
        let (status, head) = raw_head(
            &server,
            &format!("GET /api/streams HTTP/1.1\r\nHost: {host}"),
        )
        .await;
        assert_eq!(status, 200, "Host {host}: {head}");
    }
    let (status, _) = raw_head(&server, "GET /api/streams HTTP/1.1\r\nHost: other.example").await;
    assert_eq!(status, 421);
    let server = Server::start_with(
        &[],
        Stdio::null(),
        &[("TAILCAST_ALLOWED_HOST", "a.example,b.example")],
    );
    for host in ["a.example", "b.example"] {
        let (status, head) = raw_head(
            &server,
            &format!("GET /realtime/x HTTP/1.1\r\nHost: {host}"),
        )
        .await;
        assert_eq!(status, 200, "Host {host}: {head}");
    }
}

/// CSRF: a page of another origin POSTs `text/plain` (no preflight):
/// refused 403, nothing published. The server's own origin and a
/// `--cors-origin` pass.
#[tokio::test]
async fn a_foreign_origin_cannot_publish() {
    let server = Server::start(&["--cors-origin", "https://ops.example"]);
    let send = |origin: Option<&'static str>, channel: &'static str| {
        let url = server.url(&format!("/channels/{channel}"));
        async move {
            let mut request = client()
                .post(url)
                .header("content-type", "text/plain")
                .body("pwned");
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, body) = send(Some("http://evil.example"), "csrf").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (status, body) = get(&server.url("/api/history?channel=csrf")).await;
    let published: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert!(
        status == 404 || published["events"].as_array().is_some_and(|e| e.is_empty()),
        "something was published: {status} {body}"
    );
    // DELETE is refused too (the session endpoint).
    let response = client()
        .delete(server.url("/api/session"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let own: &'static str = Box::leak(format!("http://{}", server.addr).into_boxed_str());
    assert_eq!(send(Some(own), "ok1").await.0, 200);
    assert_eq!(send(Some("https://ops.example"), "ok2").await.0, 200);
    assert_eq!(send(None, "ok3").await.0, 200);
}

/// HTTP/2 has no `Host`, only `:authority`: it passes the host check, and
/// a foreign `:authority` is refused like a foreign `Host`.
#[tokio::test]
async fn http2_without_host_is_checked_by_its_authority() {
    let server = Server::start(&[]);
    let mut client = h2c(&server).await;
    let request = axum::http::Request::get(server.url("/api/streams"))
        .body(())
        .unwrap();
    assert!(request.headers().get("host").is_none());
    let (status, body, _) = h2_send(&mut client, request, "").await;
    assert_eq!(status, 200, "{body}");
    let request = axum::http::Request::get("http://evil.example/api/streams")
        .body(())
        .unwrap();
    let (status, body, _) = h2_send(&mut client, request, "").await;
    assert_eq!(status, 421, "{body}");
}

/// The console publishes with its session cookie and its `Origin`; over
/// HTTP/2 there is no `Host` to compare the origin with, only
/// `:authority`. Today that publish gets 401.
#[tokio::test]
async fn the_cookie_origin_check_works_over_http2() {
    let server = secured(&[]);
    let writer = token(json!({"publish": ["news"]}));
    let mut client = h2c(&server).await;
    for name in ["tailcast_token", "__Host-tailcast_token"] {
        let request = axum::http::Request::post(server.url("/channels/news"))
            .header("origin", format!("http://{}", server.addr))
            .header("cookie", format!("{name}={writer}"))
            .header("content-type", "text/plain")
            .body(())
            .unwrap();
        let (status, body, _) = h2_send(&mut client, request, "hello").await;
        assert_eq!(status, 200, "cookie {name} over HTTP/2: {body}");
    }
    // Another origin's cookie is still ignored.
    let request = axum::http::Request::post(server.url("/channels/news"))
        .header("origin", "http://evil.example")
        .header("cookie", format!("tailcast_token={writer}"))
        .header("content-type", "text/plain")
        .body(())
        .unwrap();
    let (status, _, _) = h2_send(&mut client, request, "hello").await;
    assert_eq!(status, 401);
}

/// `POST /api/session` sets `__Host-tailcast_token` with `Secure` behind
/// a TLS proxy (`--cookie-secure`); a plain `tailcast_token` otherwise.
/// Both names are read.
#[tokio::test]
async fn the_session_cookie_is_host_prefixed_and_secure_with_cookie_secure() {
    let reader = token(json!({"subscribe": ["*"]}));
    let sign_in = |server: &Server| {
        let url = server.url("/api/session");
        let reader = reader.clone();
        async move {
            let response = client().post(url).bearer_auth(reader).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response
                .headers()
                .get("set-cookie")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    let server = secured(&["--cookie-secure"]);
    let cookie = sign_in(&server).await;
    assert!(cookie.starts_with("__Host-tailcast_token="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    let response = client()
        .get(server.url("/api/session"))
        .header("cookie", format!("__Host-tailcast_token={reader}"))
        .send()
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(answer["signed_in"], true, "{answer}");
    let response = client()
        .delete(server.url("/api/session"))
        .send()
        .await
        .unwrap();
    let cleared = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cleared.starts_with("__Host-tailcast_token=;"), "{cleared}");
    assert!(cleared.contains("; Secure"), "{cleared}");

    let server = secured(&[]);
    let cookie = sign_in(&server).await;
    assert!(cookie.starts_with("tailcast_token="), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

/// `--cors-origin null` would let any sandboxed frame or file:// page in:
/// refused at start, in one line, exit 1.
#[test]
fn cors_origin_null_is_refused_at_start() {
    let output = serve_refused(&["--cors-origin", "null"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--cors-origin"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// A JWKS fetched over http:// can be replaced on the way: only https://,
/// or http:// to a loopback host.
#[test]
fn a_jwks_url_must_be_https_unless_loopback() {
    let output = serve_refused(&["--jwks-url", "http://keys.example/jwks.json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--jwks-url") && stderr.contains("https://"),
        "{stderr}"
    );
}

/// The console: a CSP without inline script and without framing,
/// `nosniff` and a `Referrer-Policy`, on the page and its assets; the page
/// holds no inline script.
#[tokio::test]
async fn the_console_is_served_with_security_headers() {
    let server = Server::start(&[]);
    for path in ["/", "/assets/console.js", "/assets/console.css"] {
        let response = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_else(|| panic!("{path}: no {name}"))
        };
        let csp = header("content-security-policy");
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        if path == "/" {
            let html = response.text().await.unwrap();
            for script in html.split("<script").skip(1) {
                let tag = script.split('>').next().unwrap();
                assert!(
                    tag.contains("src="),
                    "inline script in the console: <script{tag}>"
                );
            }
        }
    }
}

/// A stranger asking `/stream-logs` learns nothing: not the name of the
/// first log stream.
#[tokio::test]
async fn stream_logs_401_names_no_stream() {
    let server = secured(&[]);
    let (status, body) = get(&server.url("/stream-logs")).await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("payroll"), "{body}");
    let other = token(json!({"subscribe": ["news"]}));
    let response = client()
        .get(server.url("/stream-logs"))
        .bearer_auth(other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body = response.text().await.unwrap();
    assert!(!body.contains("payroll"), "{body}");
}

/// A bad channel name is a 400 before any right is matched against it,
/// on subscribe and publish alike.
#[tokio::test]
async fn bad_names_are_refused_before_rights_are_matched() {
    let server = secured(&["--anonymous-subscribe", "public-*"]);
    let nobody = token(json!({"subscribe": ["news"]}));
    for target in [
        "/realtime/bad%20name",
        "/events?channel=news&channel=bad%20name",
        "/logs/bad%20name",
    ] {
        let (status, body) = get(&server.url(target)).await;
        assert_eq!(status, 400, "anonymous GET {target}: {body}");
        let response = client()
            .get(server.url(target))
            .bearer_auth(&nobody)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "GET {target} with a token");
    }
    let response = client()
        .post(server.url("/channels/bad%20name"))
        .bearer_auth(&nobody)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}
