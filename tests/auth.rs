//! Access control over real HTTP against the real binary: every endpoint ×
//! {no token, bad signature, expired, wrong right, right} on the lean SSE
//! path and on hyper; tokens minted by PyJWT (HS256, RS256, ES256, EdDSA);
//! algorithm confusion and `alg: none`; a JWKS served by a local server
//! with key rotation and a throttled refetch; the cookie session; expiry
//! during a stream with a lossless resume; no token in the server's logs;
//! the `token`, `listen` and `publish` commands.
//!
//! PyJWT lives in the interop venv (`bash .ci/interop.sh`); the tests that
//! need it are skipped with `TAILCAST_SKIP_INTEROP=1`.

mod client_support;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token over `claims` signed with `secret` (exp defaults to +1h).
fn hs256(secret: &str, mut claims: Value) -> String {
    if claims.get("exp").is_none() {
        claims["exp"] = json!(now() + 3600);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A token with these rights.
fn token(rights: Value) -> String {
    hs256(SECRET, json!({"sub": "test", "tailcast": rights}))
}

/// Writes the secret file into `dir` and returns its path.
fn secret_file(dir: &Path) -> PathBuf {
    let path = dir.join("secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    path
}

/// A server with access control by the test secret, following app.log.
fn secured(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    std::fs::write(dir.path().join("app.log"), "line one\n").unwrap();
    let secret = secret.display().to_string();
    let mut args = vec!["--jwt-secret-file", &secret, "{dir}/app.log"];
    args.extend_from_slice(extra);
    Server::start_in(dir, &args, Stdio::null(), &[])
}

/// A raw HTTP answer: status, headers (lower-case names), body. For a
/// `200 text/event-stream` only the head is read.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// Sends `request` as written (so the test picks HTTP/1.1 GET for the lean
/// path, HTTP/1.0 or a POST for hyper) and reads the answer.
fn raw(addr: &str, request: &str) -> Raw {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).expect("read answer");
        assert!(n > 0, "connection closed before the head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut raw = Raw {
        status,
        headers,
        body: String::new(),
    };
    if raw
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream"))
    {
        return raw;
    }
    let len: usize = raw.header("content-length").unwrap_or("0").parse().unwrap();
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).expect("read body");
        assert!(n > 0, "connection closed in the body");
        body.extend_from_slice(&chunk[..n]);
    }
    raw.body = String::from_utf8(body).unwrap();
    raw
}

/// The request text for one endpoint on one path, with `auth` headers.
/// A POST body is sent as `application/json`, or as `application/x-ndjson`
/// (a bulk publish) when it holds several lines.
fn request(method: &str, target: &str, version: &str, extra: &str, body: &str) -> String {
    let mut r = format!("{method} {target} {version}\r\nHost: t\r\n{extra}");
    if method == "POST" {
        let content_type = if body.contains('\n') {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        r.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        ));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}

/// One row of the table: an endpoint, the right it needs, a token claim
/// that grants it and one that does not, and what a refusal names.
struct Endpoint {
    method: &'static str,
    target: &'static str,
    accept_sse: bool,
    body: &'static str,
    right: Value,
    wrong: Value,
    forbidden_detail: &'static str,
}

fn endpoints() -> Vec<Endpoint> {
    let sub = |p: &[&str]| json!({"subscribe": p});
    vec![
        Endpoint {
            method: "GET",
            target: "/logs/app.log",
            accept_sse: false,
            body: "",
            right: sub(&["log:*"]),
            wrong: sub(&["news"]),
            forbidden_detail: "may not subscribe to log:app.log",
        },
        Endpoint {
            method: "GET",
            target: "/stream-logs",
            accept_sse: false,
            body: "",
            right: sub(&["log:app.log"]),
            wrong: sub(&["log:other"]),
            // The refusal does not name the stream (issue 20).
            forbidden_detail: "may not open the first log stream",
        },
        Endpoint {
            method: "GET",
            target: "/realtime/news",
            accept_sse: false,
            body: "",
            right: sub(&["ne*"]),
            wrong: sub(&["log:*", "sports"]),
            forbidden_detail: "may not subscribe to news",
        },
        Endpoint {
            method: "GET",
            target: "/events?channel=news&channel=log:app.log",
            accept_sse: false,
            body: "",
            right: sub(&["news", "log:*"]),
            wrong: sub(&["news"]),
            forbidden_detail: "may not subscribe to log:app.log",
        },
        Endpoint {
            method: "GET",
            target: "/stream",
            accept_sse: false,
            body: "",
            right: sub(&["stream"]),
            wrong: sub(&["stream-numbers"]),
            forbidden_detail: "may not subscribe to stream",
        },
        Endpoint {
            method: "GET",
            target: "/stream-numbers",
            accept_sse: false,
            body: "",
            right: sub(&["stream-*"]),
            wrong: sub(&["stream"]),
            forbidden_detail: "may not subscribe to stream-numbers",
        },
        Endpoint {
            method: "GET",
            target: "/metrics",
            accept_sse: true,
            body: "",
            right: json!({"admin": true}),
            wrong: sub(&["*"]),
            forbidden_detail: "may not use admin endpoints",
        },
        Endpoint {
            method: "POST",
            target: "/channels/news",
            accept_sse: false,
            body: r#"{"data": "hello"}"#,
            right: json!({"publish": ["news"]}),
            wrong: json!({"subscribe": ["*"], "publish": ["sports"]}),
            forbidden_detail: "may not publish to news",
        },
        Endpoint {
            method: "POST",
            target: "/channels/news",
            accept_sse: false,
            body: "\"bulk one\"\n{\"event\": \"t\", \"data\": \"bulk two\"}\n",
            right: json!({"publish": ["n*"]}),
            wrong: json!({"subscribe": ["news"], "publish": ["sports"]}),
            forbidden_detail: "may not publish to news",
        },
        Endpoint {
            method: "POST",
            target: "/api/broadcast",
            accept_sse: false,
            body: r#"{"message": "hi"}"#,
            right: json!({"broadcast": true}),
            wrong: json!({"publish": ["*"], "broadcast": false}),
            forbidden_detail: "may not broadcast",
        },
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    NoToken,
    BadSignature,
    Expired,
    WrongRight,
    Right,
}

/// The table: every endpoint × every case, over the lean path (HTTP/1.1
/// GET) and hyper (HTTP/1.0 GET, POST, `/metrics` without SSE), checking
/// status, `WWW-Authenticate` and the JSON body. Prints the table.
#[tokio::test]
async fn every_endpoint_times_every_case_on_both_paths() {
    let server = secured(&[]);
    wait_following_as(&server, &token(json!({"subscribe": ["*"], "admin": true}))).await;
    let mut table = Vec::new();
    let mut rows: Vec<(String, &str, Endpoint)> = Vec::new();
    for e in endpoints() {
        if e.method == "GET" {
            rows.push((format!("{} {} (lean)", e.method, e.target), "HTTP/1.1", e));
        } else {
            let bulk = if e.body.contains('\n') { " NDJSON" } else { "" };
            rows.push((
                format!("{} {}{bulk} (hyper)", e.method, e.target),
                "HTTP/1.1",
                e,
            ));
        }
    }
    for e in endpoints().into_iter().filter(|e| e.method == "GET") {
        rows.push((
            format!("{} {} (hyper, HTTP/1.0)", e.method, e.target),
            "HTTP/1.0",
            e,
        ));
    }
    rows.push((
        "GET /metrics prometheus (hyper)".into(),
        "HTTP/1.1",
        Endpoint {
            method: "GET",
            target: "/metrics",
            accept_sse: false,
            body: "",
            right: json!({"admin": true}),
            wrong: json!({"subscribe": ["*"]}),
            forbidden_detail: "may not use admin endpoints",
        },
    ));
    let cases = [
        Case::NoToken,
        Case::BadSignature,
        Case::Expired,
        Case::WrongRight,
        Case::Right,
    ];
    // Refusals first: they must leave nothing behind (no channel, no
    // subscriber), which is checked before the allowed requests run.
    for pass in [false, true] {
        for (name, version, e) in &rows {
            for case in cases {
                if (case == Case::Right) != pass {
                    continue;
                }
                let auth = match case {
                    Case::NoToken => String::new(),
                    Case::BadSignature => format!(
                        "Authorization: Bearer {}\r\n",
                        hs256(
                            "another-secret-another-secret-0000",
                            json!({"tailcast": e.right})
                        )
                    ),
                    Case::Expired => format!(
                        "Authorization: Bearer {}\r\n",
                        hs256(SECRET, json!({"exp": now() - 60, "tailcast": e.right}))
                    ),
                    Case::WrongRight => {
                        format!("Authorization: Bearer {}\r\n", token(e.wrong.clone()))
                    }
                    Case::Right => format!("Authorization: Bearer {}\r\n", token(e.right.clone())),
                };
                let accept = if e.accept_sse {
                    "Accept: text/event-stream\r\n"
                } else {
                    ""
                };
                let r = raw(
                    &server.addr,
                    &request(
                        e.method,
                        e.target,
                        version,
                        &format!("{auth}{accept}"),
                        e.body,
                    ),
                );
                let challenge = r.header("www-authenticate").map(str::to_string);
                let detail = if r.status == 200 {
                    String::new()
                } else {
                    let body = r.json();
                    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
                    assert_eq!(keys, ["detail", "error"], "{name} {case:?}: {body}");
                    body["detail"].as_str().unwrap().to_string()
                };
                let error = if r.status == 200 {
                    String::new()
                } else {
                    r.json()["error"].as_str().unwrap().to_string()
                };
                match case {
                    Case::NoToken => {
                        assert_eq!(r.status, 401, "{name} {case:?}");
                        assert_eq!(
                            challenge.as_deref(),
                            Some("Bearer realm=\"tailcast\""),
                            "{name}"
                        );
                        assert_eq!(error, "unauthorized");
                        assert!(detail.contains("token is needed"), "{name}: {detail}");
                    }
                    Case::BadSignature | Case::Expired => {
                        assert_eq!(r.status, 401, "{name} {case:?}");
                        assert_eq!(
                            challenge.as_deref(),
                            Some("Bearer realm=\"tailcast\", error=\"invalid_token\""),
                            "{name}"
                        );
                        assert_eq!(error, "unauthorized");
                        let expected = if case == Case::Expired {
                            "expired"
                        } else {
                            "bad signature"
                        };
                        assert!(detail.contains(expected), "{name} {case:?}: {detail}");
                    }
                    Case::WrongRight => {
                        assert_eq!(r.status, 403, "{name} {case:?}: {detail}");
                        assert_eq!(challenge, None, "{name}");
                        assert_eq!(error, "forbidden");
                        assert!(detail.contains(e.forbidden_detail), "{name}: {detail}");
                    }
                    Case::Right => {
                        assert_eq!(r.status, 200, "{name} {case:?}: {}", r.body);
                        assert_eq!(challenge, None, "{name}");
                    }
                }
                table.push(format!("{name:<58} {case:<13?} {} {detail}", r.status));
            }
        }
        if !pass {
            let admin = token(json!({"subscribe": ["*"], "admin": true}));
            let list = streams_as(&server, &admin).await;
            assert!(
                !list.iter().any(|s| s["name"] == "news"),
                "a refused request created a channel: {list:?}"
            );
            let (_, health) = get(&server.url("/health")).await;
            let health: Value = serde_json::from_str(&health).unwrap();
            assert_eq!(health["connections"], 0, "a refused request left a stream");
        }
    }
    println!("endpoint × case → status detail");
    for line in &table {
        println!("{line}");
    }
    assert_eq!(table.len(), rows.len() * cases.len());
}

/// `/api/streams` with a token: only what it may subscribe to, `path` only
/// for admin; anonymous callers get 401 unless some channel is open to them.
#[tokio::test]
async fn api_streams_lists_only_what_the_caller_may_subscribe_to() {
    let server = secured(&["--anonymous-subscribe", "public-*"]);
    let admin = token(json!({"subscribe": ["*"], "publish": ["*"], "admin": true}));
    wait_following_as(&server, &admin).await;
    for channel in ["news", "public-a", "sports"] {
        let r = client()
            .post(server.url(&format!("/channels/{channel}")))
            .bearer_auth(&admin)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let names = |list: &[Value]| -> Vec<String> {
        let mut n: Vec<String> = list
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let all = streams_as(&server, &admin).await;
    assert_eq!(names(&all), ["log:app.log", "news", "public-a", "sports"]);
    assert!(all[0]["path"].is_string(), "{all:?}");
    let reader = token(json!({"subscribe": ["log:*", "news"]}));
    let some = streams_as(&server, &reader).await;
    assert_eq!(names(&some), ["log:app.log", "news"]);
    assert!(some.iter().all(|s| s.get("path").is_none()), "{some:?}");
    let (status, body) = get(&server.url("/api/streams")).await;
    assert_eq!(status, 200);
    let anonymous: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(names(&anonymous), ["public-a"]);

    let closed = secured(&[]);
    let r = raw(
        &closed.addr,
        "GET /api/streams HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"tailcast\"")
    );
}

/// Anonymous subscribe works for matching channels only, and a bad token
/// (header, cookie or query) is a 401 even there: never a downgrade.
#[tokio::test]
async fn a_bad_token_is_never_downgraded_to_anonymous() {
    let server = secured(&["--anonymous-subscribe", "public-*"]);
    let open = raw(
        &server.addr,
        "GET /realtime/public-news HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(open.status, 200);
    let closed = raw(
        &server.addr,
        "GET /realtime/news HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(closed.status, 401);
    let publish = raw(
        &server.addr,
        &request(
            "POST",
            "/channels/public-news",
            "HTTP/1.1",
            "",
            "{\"data\": \"x\"}",
        ),
    );
    assert_eq!(publish.status, 401, "anonymous callers may not publish");
    let expired = hs256(
        SECRET,
        json!({"exp": now() - 60, "tailcast": {"subscribe": ["*"]}}),
    );
    for how in [
        format!("GET /realtime/public-news HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {expired}\r\n\r\n"),
        format!("GET /realtime/public-news HTTP/1.1\r\nHost: t\r\nCookie: tailcast_token={expired}\r\n\r\n"),
        format!("GET /realtime/public-news?access_token={expired} HTTP/1.1\r\nHost: t\r\n\r\n"),
        "GET /realtime/public-news?access_token=garbage HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
        "GET /realtime/public-news HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \r\n\r\n".to_string(),
    ] {
        let r = raw(&server.addr, &how);
        assert_eq!(r.status, 401, "{how}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"tailcast\", error=\"invalid_token\""),
            "{how}"
        );
    }
}

/// Tokens in the query string work on the lean path, and `--no-query-token`
/// refuses them (the header still works).
#[tokio::test]
async fn query_tokens_and_no_query_token() {
    let reader = token(json!({"subscribe": ["news"]}));
    let server = secured(&[]);
    let r = raw(
        &server.addr,
        &format!("GET /realtime/news?tail=1&access_token={reader} HTTP/1.1\r\nHost: t\r\n\r\n"),
    );
    assert_eq!(r.status, 200);
    let strict = secured(&["--no-query-token"]);
    let r = raw(
        &strict.addr,
        &format!("GET /realtime/news?access_token={reader} HTTP/1.1\r\nHost: t\r\n\r\n"),
    );
    assert_eq!(r.status, 401);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("--no-query-token"));
    let r = raw(
        &strict.addr,
        &format!(
            "GET /realtime/news HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {reader}\r\n\r\n"
        ),
    );
    assert_eq!(r.status, 200);
}

/// `--metrics-public` opens `/metrics` (both forms) without a token.
#[tokio::test]
async fn metrics_public_needs_no_token() {
    let server = secured(&["--metrics-public"]);
    let r = raw(
        &server.addr,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let r = raw(
        &server.addr,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    // Other endpoints stay closed.
    assert_eq!(
        raw(&server.addr, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n").status,
        401
    );
    // Public endpoints need nothing.
    for path in ["/health", "/", "/assets/console.js"] {
        let r = raw(
            &server.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(r.status, 200, "{path}");
    }
}

// ------------------------------------------------------------ PyJWT interop

fn pyjwt(args: &[&str]) -> String {
    let out = Command::new(client_support::python())
        .arg(client_support::interop_dir().join("jwt_tool.py"))
        .args(args)
        .output()
        .expect("run jwt_tool.py");
    assert!(
        out.status.success(),
        "jwt_tool.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn pyjwt_ready() -> bool {
    let ready = client_support::python().exists();
    if !ready && std::env::var("TAILCAST_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("skipped: interop venv missing (TAILCAST_SKIP_INTEROP=1)");
        return false;
    }
    assert!(
        ready,
        "the interop venv is missing: run `bash .ci/interop.sh` first"
    );
    true
}

/// Whether `token` opens `/realtime/news` (200) on `server`; else the status
/// and detail.
fn try_token(server: &Server, token: &str) -> Result<(), (u16, String)> {
    let r = raw(
        &server.addr,
        &format!("GET /realtime/news HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n"),
    );
    if r.status == 200 {
        return Ok(());
    }
    Err((
        r.status,
        r.json()["detail"].as_str().unwrap_or("").to_string(),
    ))
}

const CLAIMS: &str = r#"{"exp": "+600", "sub": "pyjwt", "tailcast": {"subscribe": ["news"]}}"#;

/// PyJWT tokens for HS256, RS256, ES256 and EdDSA are accepted by a server
/// with the matching key; each key refuses the others' algorithms, the
/// HS256-with-the-public-key confusion and `alg: none`.
#[tokio::test]
async fn pyjwt_tokens_for_every_key_type_and_the_classic_attacks() {
    if !pyjwt_ready() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    pyjwt(&["keygen", &keys.path().display().to_string()]);
    let k = |name: &str| keys.path().join(name).display().to_string();
    let secret = secret_file(keys.path()).display().to_string();
    let servers = [
        ("HS256", "--jwt-secret-file", secret.clone(), secret.clone()),
        ("RS256", "--jwt-public-key", k("rsa.pub"), k("rsa.pem")),
        ("ES256", "--jwt-public-key", k("ec.pub"), k("ec.pem")),
        ("EdDSA", "--jwt-public-key", k("ed.pub"), k("ed.pem")),
    ];
    let tokens: Vec<(&str, String)> = servers
        .iter()
        .map(|(alg, _, _, signing)| (*alg, pyjwt(&["sign", alg, signing, CLAIMS])))
        .collect();
    for (alg, flag, key, _) in &servers {
        let server = Server::start(&[flag, key]);
        for (other, token) in &tokens {
            let result = try_token(&server, token);
            if other == alg {
                assert_eq!(result, Ok(()), "{alg} server, {other} token");
                println!("{alg}: PyJWT token accepted");
            } else {
                let (status, detail) = result.expect_err("another key's token");
                assert_eq!(status, 401, "{alg} server, {other} token: {detail}");
                println!("{alg} server refuses a PyJWT {other} token: {detail}");
            }
        }
        let none = pyjwt(&["none", CLAIMS]);
        let (status, detail) = try_token(&server, &none).expect_err("alg none");
        assert_eq!(status, 401);
        assert!(detail.contains("alg none is never accepted"), "{detail}");
        println!("{alg} server refuses alg none: {detail}");
        if *alg == "RS256" {
            let confused = pyjwt(&["confused", &k("rsa.pub"), CLAIMS]);
            let (status, detail) = try_token(&server, &confused).expect_err("confusion");
            assert_eq!(status, 401);
            assert!(detail.contains("HS256"), "{detail}");
            println!("RS256 server refuses HS256 signed with its public key: {detail}");
        }
    }
    // Claims checks with a third-party token: exp required, nbf, aud, iss.
    let server = Server::start(&[
        "--jwt-public-key",
        &k("ed.pub"),
        "--jwt-audience",
        "tailcast-test",
        "--jwt-issuer",
        "https://issuer.test",
    ]);
    let sign = |claims: &str| pyjwt(&["sign", "EdDSA", &k("ed.pem"), claims]);
    let good = r#"{"exp": "+600", "aud": "tailcast-test", "iss": "https://issuer.test", "tailcast": {"subscribe": ["news"]}}"#;
    assert_eq!(try_token(&server, &sign(good)), Ok(()));
    for (claims, expected) in [
        (
            r#"{"aud": "tailcast-test", "iss": "https://issuer.test", "tailcast": {"subscribe": ["news"]}}"#,
            "no exp",
        ),
        (
            r#"{"exp": "+600", "nbf": "+300", "aud": "tailcast-test", "iss": "https://issuer.test"}"#,
            "not valid yet",
        ),
        (
            r#"{"exp": "+600", "aud": "other", "iss": "https://issuer.test"}"#,
            "audience",
        ),
        (r#"{"exp": "+600", "iss": "https://issuer.test"}"#, "no aud"),
        (
            r#"{"exp": "+600", "aud": "tailcast-test", "iss": "https://evil.test"}"#,
            "issuer",
        ),
        (
            r#"{"exp": "-60", "aud": "tailcast-test", "iss": "https://issuer.test"}"#,
            "expired",
        ),
    ] {
        let (status, detail) = try_token(&server, &sign(claims)).expect_err(claims);
        assert_eq!(status, 401, "{claims}");
        assert!(detail.contains(expected), "{claims}: {detail}");
    }
    // A few seconds of clock leeway.
    let leeway = r#"{"exp": "-2", "aud": "tailcast-test", "iss": "https://issuer.test", "tailcast": {"subscribe": ["news"]}}"#;
    assert_eq!(try_token(&server, &sign(leeway)), Ok(()));
}

// --------------------------------------------------------------------- JWKS

/// A JWKS document server on 127.0.0.1 whose document can be changed, and
/// which counts the fetches.
struct JwksServer {
    url: String,
    document: Arc<Mutex<(u16, String)>>,
    fetches: Arc<AtomicU64>,
}

impl JwksServer {
    async fn start(keys: &[Value]) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let document = Arc::new(Mutex::new((200, json!({"keys": keys}).to_string())));
        let fetches = Arc::new(AtomicU64::new(0));
        let (doc, count) = (document.clone(), fetches.clone());
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (doc, count) = (doc.clone(), count.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut read = 0;
                    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = doc.lock().unwrap().clone();
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        JwksServer {
            url,
            document,
            fetches,
        }
    }

    fn set(&self, status: u16, keys: &[Value]) {
        *self.document.lock().unwrap() = (status, json!({"keys": keys}).to_string());
    }

    fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn jwk(dir: &Path, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(format!("jwks-{name}.json"))).unwrap())
        .unwrap()
}

/// The server fetches the JWKS at start; a token with a new `kid` makes it
/// fetch again once and is accepted; unknown `kid`s right after that do not
/// fetch again (at most once per 30 s), however many arrive.
// Multi-threaded: the JWKS server runs on the test's runtime while the
// test blocks on raw sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_and_throttled_refetch() {
    if !pyjwt_ready() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    pyjwt(&["keygen", &keys.path().display().to_string()]);
    let k = |name: &str| keys.path().join(name).display().to_string();
    let jwks = JwksServer::start(&[jwk(keys.path(), "rsa")]).await;
    let server = Server::start(&["--jwks-url", &jwks.url]);
    // The first request is served once the start fetch is done.
    assert_eq!(
        try_token(&server, &pyjwt_free_token_with_kid("rsa"))
            .unwrap_err()
            .0,
        401
    );
    assert_eq!(jwks.fetches(), 1, "fetched once at start");
    let rsa = pyjwt(&["sign", "RS256", &k("rsa.pem"), CLAIMS, "rsa"]);
    assert_eq!(try_token(&server, &rsa), Ok(()));
    assert_eq!(jwks.fetches(), 1, "a known kid needs no fetch");

    // Rotation: the provider publishes the Ed25519 key, then a token uses it.
    jwks.set(200, &[jwk(keys.path(), "rsa"), jwk(keys.path(), "ed")]);
    let ed = pyjwt(&["sign", "EdDSA", &k("ed.pem"), CLAIMS, "ed"]);
    assert_eq!(try_token(&server, &ed), Ok(()));
    assert_eq!(jwks.fetches(), 2, "the unknown kid fetched the set again");
    println!(
        "JWKS: new kid accepted after one refetch (fetches: {})",
        jwks.fetches()
    );

    // Within 30 s, unknown kids do not fetch again, even once the key exists.
    jwks.set(
        200,
        &[
            jwk(keys.path(), "rsa"),
            jwk(keys.path(), "ed"),
            jwk(keys.path(), "ec"),
        ],
    );
    let ec = pyjwt(&["sign", "ES256", &k("ec.pem"), CLAIMS, "ec"]);
    let (status, detail) = try_token(&server, &ec).expect_err("throttled");
    assert_eq!(status, 401);
    assert!(detail.contains("no key with kid \"ec\""), "{detail}");
    for i in 0..20 {
        let made_up = pyjwt_free_token_with_kid(&format!("made-up-{i}"));
        assert_eq!(try_token(&server, &made_up).unwrap_err().0, 401);
    }
    assert_eq!(
        jwks.fetches(),
        2,
        "unknown kids within 30 s caused no fetch"
    );
    println!(
        "JWKS: 21 unknown kids within 30 s, fetches still {}",
        jwks.fetches()
    );
    // Known keys keep working meanwhile.
    assert_eq!(try_token(&server, &rsa), Ok(()));
}

/// A token with header `kid` (HS256, so not verifiable by any JWKS key).
fn pyjwt_free_token_with_kid(kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(
        &header,
        &json!({"exp": now() + 60}),
        &jsonwebtoken::EncodingKey::from_secret(b"x"),
    )
    .unwrap()
}

/// In process: a failed or garbage refresh keeps the last good key set.
#[tokio::test]
async fn jwks_keeps_the_last_good_set() {
    use tailcast::auth::jwks::{Jwks, Lookup};
    let ed = json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed",
        "x": "w2m6RsSt42bJart21ZXJ12d3IP6qF1yu5evXGVg4fXs"});
    let server = JwksServer::start(&[ed]).await;
    let jwks = Jwks::new(server.url.parse().unwrap()).unwrap();
    assert_eq!(jwks.refresh().await, Ok(1));
    server.set(500, &[]);
    assert!(jwks.refresh().await.unwrap_err().contains("500"));
    assert!(matches!(jwks.lookup(Some("ed")).await, Lookup::Found(k) if k.len() == 1));
    *server.document.lock().unwrap() = (
        200,
        "{\"keys\": [{\"kty\": \"oct\", \"k\": \"AA\"}]}".into(),
    );
    assert!(jwks.refresh().await.unwrap_err().contains("no usable"));
    *server.document.lock().unwrap() = (200, "not json".into());
    assert!(jwks.refresh().await.is_err());
    assert!(matches!(jwks.lookup(Some("ed")).await, Lookup::Found(_)));
    assert_eq!(server.fetches(), 4);
}

// ------------------------------------------------------------------ cookies

/// `POST /api/session` sets the cookie (HttpOnly, SameSite=Strict, Path=/,
/// expiring with the token), the cookie opens streams from the server's own
/// origin, and `DELETE /api/session` clears it. A bad token sets nothing.
#[tokio::test]
async fn cookie_session_flow() {
    let server = secured(&["--cors-origin", "http://app.test"]);
    let reader = token(json!({"subscribe": ["news"]}));
    let r = raw(
        &server.addr,
        &request(
            "POST",
            "/api/session",
            "HTTP/1.1",
            &format!("Authorization: Bearer {reader}\r\n"),
            "",
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sub"], "test");
    assert_eq!(r.json()["rights"], json!({"subscribe": ["news"]}));
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.starts_with(&format!("tailcast_token={reader};")),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            cookie.split("; ").any(|a| a == attribute),
            "{attribute}: {cookie}"
        );
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: no Secure: {cookie}"
    );
    let max_age: u64 = cookie
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    // The token's hour plus the 5 s of leeway the server allows (+1 s).
    assert!(
        (3596..=3606).contains(&max_age),
        "expires when the server stops accepting the token: {max_age}"
    );

    let with_cookie = |origin: &str| {
        raw(
            &server.addr,
            &format!(
                "GET /realtime/news HTTP/1.1\r\nHost: {}\r\n{origin}Cookie: theme=dark; tailcast_token={reader}\r\n\r\n",
                server.addr
            ),
        )
    };
    assert_eq!(
        with_cookie("").status,
        200,
        "same-origin GET without Origin"
    );
    let own = format!("Origin: http://{}\r\n", server.addr);
    assert_eq!(with_cookie(&own).status, 200, "own origin");
    let listed = with_cookie("Origin: http://app.test\r\n");
    assert_eq!(listed.status, 200, "explicit --cors-origin");
    assert_eq!(
        listed.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        listed.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    let foreign = with_cookie("Origin: http://evil.test\r\n");
    assert_eq!(
        foreign.status, 401,
        "a foreign origin's cookie is not accepted"
    );

    let session = raw(
        &server.addr,
        &format!("GET /api/session HTTP/1.1\r\nHost: t\r\nConnection: close\r\nCookie: tailcast_token={reader}\r\n\r\n"),
    );
    assert_eq!(session.json()["signed_in"], true);

    let out = raw(
        &server.addr,
        &request(
            "DELETE",
            "/api/session",
            "HTTP/1.1",
            "Connection: close\r\n",
            "",
        ),
    );
    assert_eq!(out.status, 200);
    let cleared = out.header("set-cookie").unwrap();
    assert!(
        cleared.starts_with("tailcast_token=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    let bad = raw(
        &server.addr,
        &request(
            "POST",
            "/api/session",
            "HTTP/1.1",
            "Authorization: Bearer not.a.jwt\r\n",
            "",
        ),
    );
    assert_eq!(bad.status, 401);
    assert_eq!(bad.header("set-cookie"), None);
    let no_header = raw(
        &server.addr,
        &request("POST", "/api/session", "HTTP/1.1", "", ""),
    );
    assert_eq!(no_header.status, 401);
}

/// With `--cors-origin '*'` no origin but the server's own may use the
/// cookie; header and query tokens still work cross-origin.
#[tokio::test]
async fn cors_star_never_accepts_cookies_cross_origin() {
    let server = secured(&["--cors-origin", "*"]);
    let reader = token(json!({"subscribe": ["news"]}));
    let cookie = raw(
        &server.addr,
        &format!("GET /realtime/news HTTP/1.1\r\nHost: t\r\nOrigin: http://any.test\r\nCookie: tailcast_token={reader}\r\n\r\n"),
    );
    assert_eq!(cookie.status, 401);
    assert_eq!(cookie.header("access-control-allow-credentials"), None);
    let header = raw(
        &server.addr,
        &format!("GET /realtime/news HTTP/1.1\r\nHost: t\r\nOrigin: http://any.test\r\nAuthorization: Bearer {reader}\r\n\r\n"),
    );
    assert_eq!(header.status, 200);
    assert_eq!(header.header("access-control-allow-origin"), Some("*"));
    let query = raw(
        &server.addr,
        &format!("GET /realtime/news?access_token={reader} HTTP/1.1\r\nHost: t\r\nOrigin: http://any.test\r\n\r\n"),
    );
    assert_eq!(query.status, 200);
}

// ------------------------------------------------------------------- expiry

/// When the token's `exp` (plus the leeway) passes, the stream gets
/// `event: token-expired` and ends; reconnecting with a fresh token and
/// `Last-Event-ID` delivers every event published meanwhile: none missed,
/// none twice, while a publisher keeps publishing throughout.
#[tokio::test]
async fn token_expiry_ends_the_stream_and_a_fresh_token_resumes_losslessly() {
    let server = secured(&[]);
    let publisher = token(json!({"publish": ["feed"]}));
    // Accepted thanks to the 5 s leeway, and refused 3 s from now.
    let short = hs256(
        SECRET,
        json!({"exp": now() - 3, "tailcast": {"subscribe": ["feed"]}}),
    );
    let mut sse = Sse::connect_with(
        &server.url("/realtime/feed"),
        &[("authorization", &format!("Bearer {short}"))],
    )
    .await;
    assert_eq!(sse.status, 200);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let published = Arc::new(Mutex::new(Vec::<String>::new()));
    let task = {
        let (url, stop, published, publisher) = (
            server.url("/channels/feed"),
            stop.clone(),
            published.clone(),
            publisher.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let r = client()
                    .post(&url)
                    .bearer_auth(&publisher)
                    .body(format!("e{i}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                published.lock().unwrap().push(format!("e{i}"));
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let mut received = Vec::new();
    let mut last_id = None;
    let expired = loop {
        let frame = sse
            .next_frame()
            .await
            .expect("the stream ended without token-expired");
        if frame.event.as_deref() == Some("token-expired") {
            break frame;
        }
        if frame.data.is_some() {
            received.push(frame.data().to_string());
            last_id = frame.id.clone();
        }
    };
    let took = started.elapsed();
    assert_eq!(expired.id, None);
    assert_eq!(expired.json(), json!({"reason": "token expired"}));
    assert_eq!(
        sse.next_frame().await,
        None,
        "the stream ends after token-expired"
    );
    assert!(!received.is_empty());
    // The old token is refused now.
    let again = Sse::connect_with(
        &server.url("/realtime/feed"),
        &[("authorization", &format!("Bearer {short}"))],
    )
    .await;
    assert_eq!(again.status, 401);

    tokio::time::sleep(Duration::from_millis(200)).await; // let a few more be published
    let fresh = token(json!({"subscribe": ["feed"]}));
    let mut resumed = Sse::connect_with(
        &server.url("/realtime/feed"),
        &[
            ("authorization", &format!("Bearer {fresh}")),
            ("last-event-id", last_id.as_deref().unwrap()),
        ],
    )
    .await;
    assert_eq!(resumed.status, 200);
    stop.store(true, Ordering::SeqCst);
    task.await.unwrap();
    let total = published.lock().unwrap().clone();
    while received.len() < total.len() {
        let frame = resumed.next_event().await;
        received.push(frame.data().to_string());
    }
    assert_eq!(received, total, "every event exactly once, in order");
    println!(
        "token-expired after {took:.1?}; {} events before and after the resume, none missed or repeated",
        total.len()
    );
}

// ------------------------------------------------------------------ logging

/// At `TAILCAST_LOG=debug`, no token value (valid or not; from the header,
/// the cookie or the query) appears in the server's stderr; the URI is
/// logged with `access_token=REDACTED`.
#[tokio::test]
async fn no_token_in_the_server_log_at_debug() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path()).display().to_string();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tailcast"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--jwt-secret-file",
            &secret,
        ])
        .env("TAILCAST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("tailcast listening on http://")
        .unwrap()
        .to_string();

    let good = token(json!({"subscribe": ["news"], "publish": ["news"]}));
    let bad = format!("{}x", token(json!({"subscribe": ["news"]})));
    let expired = hs256(SECRET, json!({"exp": now() - 60}));
    let mut secrets = vec![good.clone(), bad.clone(), expired.clone()];
    for t in [&good, &bad, &expired] {
        for how in [
            format!("GET /realtime/news HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {t}\r\n\r\n"),
            format!("GET /realtime/news HTTP/1.1\r\nHost: t\r\nCookie: tailcast_token={t}\r\n\r\n"),
            format!("GET /realtime/news?channel=x&access_token={t} HTTP/1.1\r\nHost: t\r\n\r\n"),
            format!("GET /events?access_token={t}&channel=news HTTP/1.0\r\nHost: t\r\n\r\n"),
            request(
                "POST",
                "/api/session",
                "HTTP/1.1",
                &format!("Authorization: Bearer {t}\r\n"),
                "",
            ),
            request(
                "POST",
                &format!("/channels/news?access_token={t}"),
                "HTTP/1.1",
                "",
                "{\"data\": \"x\"}",
            ),
        ] {
            raw(&addr, &how);
        }
    }
    secrets.push("garbage-token-value".into());
    raw(
        &addr,
        "GET /realtime/news?access_token=garbage-token-value HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    // stderr goes straight to the file: nothing is lost by a kill.
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("access_token=REDACTED"),
        "the URIs are logged, redacted:\n{text}"
    );
    for secret in &secrets {
        // The whole token, and its signature alone.
        let signature = secret.rsplit('.').next().unwrap();
        assert!(
            !text.contains(secret.as_str()),
            "a token is in the log:\n{text}"
        );
        assert!(
            !text.contains(signature),
            "a token signature is in the log:\n{text}"
        );
    }
    println!(
        "{} lines of debug log, no token in them",
        text.lines().count()
    );
}

// --------------------------------------------------------------------- CLI

fn tailcast(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tailcast"));
    cmd.args(args).env_remove("TAILCAST_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `tailcast token` mints what the server accepts; `publish --token-file`
/// and `listen` with `TAILCAST_TOKEN` use it; a refusal is one error line.
#[tokio::test]
async fn token_publish_and_listen_commands() {
    let server = secured(&[]);
    let secret = server.path("secret").display().to_string();
    let out = tailcast(
        &[
            "token",
            "--secret-file",
            &secret,
            "--subscribe",
            "news",
            "--publish",
            "news",
            "--sub",
            "cli",
            "--ttl",
            "10m",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let minted = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&minted)
        .unwrap()
        .claims;
    assert_eq!(
        claims["tailcast"],
        json!({"subscribe": ["news"], "publish": ["news"]})
    );
    assert_eq!(claims["sub"], "cli");
    let exp = claims["exp"].as_u64().unwrap();
    assert!((now() + 590..=now() + 600).contains(&exp), "{exp}");

    let token_file = server.path("token");
    std::fs::write(&token_file, format!("{minted}\n")).unwrap();
    let url = server.url("/channels/news");
    let out = tailcast(
        &[
            "publish",
            &url,
            "from-cli",
            "--token-file",
            &token_file.display().to_string(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tailcast(&["publish", &url, "no-token"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("error: ") && stderr.contains("401"),
        "{stderr}"
    );
    // A token in the URL is not echoed in the client's error either.
    let out = tailcast(
        &[
            "publish",
            &format!("{url}?access_token=bad-secret-value"),
            "x",
        ],
        &[],
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("access_token=REDACTED") && !stderr.contains("bad-secret-value"),
        "{stderr}"
    );
    let out = tailcast(
        &["publish", &url, "x", "--token", "a", "--token-file", "b"],
        &[],
    );
    // A command-line mistake is a startup error: one line, status 1.
    assert_eq!(out.status.code(), Some(1), "clap refuses both");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("error: ") && stderr.contains("cannot be used with"),
        "{stderr}"
    );

    // listen with TAILCAST_TOKEN reads what was published.
    let mut listen = tokio::process::Command::new(env!("CARGO_BIN_EXE_tailcast"));
    listen
        .args(["listen", &server.url("/realtime/news?tail=1")])
        .env("TAILCAST_TOKEN", &minted);
    let mut proc = client_support::Proc::spawn(listen);
    assert_eq!(proc.next_line().await.as_deref(), Some("from-cli"));

    let bad = tailcast(
        &["token", "--secret-file", &secret, "--subscribe", "bad name"],
        &[],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid channel pattern"));
}

/// `publish -` sends its lines as several NDJSON batches and the token goes
/// with every one of them: 3,500 lines (at most 1,000 per batch) are all
/// published with a token that may publish; with one that may not, the
/// first batch is refused (403) and nothing is published.
#[tokio::test]
async fn publish_stdin_sends_the_token_with_every_batch() {
    const LINES: usize = 3_500;
    let server = secured(&["--history", "10000"]);
    let url = server.url("/channels/bulk");
    let lines: String = (0..LINES).map(|i| format!("line {i}\n")).collect();
    let run = |token: String| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tailcast"));
        cmd.args(["publish", &url, "-"])
            .env("TAILCAST_TOKEN", token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let admin = token(json!({"subscribe": ["*"], "admin": true}));
    let retained = |list: Vec<Value>| {
        list.iter()
            .find(|s| s["name"] == "bulk")
            .map_or(0, |s| s["retained"].as_u64().unwrap())
    };

    let refused = run(token(json!({"subscribe": ["bulk"], "publish": ["other"]})));
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert!(
        stderr.starts_with("error: lines 1-") && stderr.contains("403"),
        "{stderr}"
    );
    assert_eq!(retained(streams_as(&server, &admin).await), 0);

    let out = run(token(json!({"publish": ["bulk"]})));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        retained(streams_as(&server, &admin).await),
        LINES as u64,
        "every batch was accepted"
    );
}

/// `listen --token-command` runs the command before each connection: after
/// `token-expired` it reconnects with a new token and misses nothing.
#[tokio::test]
async fn listen_token_command_survives_expiry() {
    let server = secured(&["--retry", "100"]);
    let secret = server.path("secret").display().to_string();
    let publisher = token(json!({"publish": ["news"]}));
    // Each run mints a token valid for 1 s (plus the server's 5 s leeway).
    let command = format!(
        "{} token --secret-file {secret} --subscribe news --ttl 1s",
        env!("CARGO_BIN_EXE_tailcast")
    );
    let mut listen = tokio::process::Command::new(env!("CARGO_BIN_EXE_tailcast"));
    listen.args([
        "listen",
        &server.url("/realtime/news"),
        "--token-command",
        &command,
    ]);
    let mut proc = client_support::Proc::spawn(listen);
    poll_subscribers(&server, &publisher, "news", 1).await;
    let started = Instant::now();
    let mut i = 0;
    // Publish across at least one expiry (about 6 s) and check every line.
    while started.elapsed() < Duration::from_secs(8) {
        let r = client()
            .post(server.url("/channels/news"))
            .bearer_auth(&publisher)
            .body(format!("n{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in 0..i {
        assert_eq!(proc.next_line().await, Some(format!("n{n}")));
    }
    println!("listen --token-command: {i} events across token expiry, none missed");
}

// ------------------------------------------------------------------ startup

/// Bad key settings stop the server with one error line; serving a
/// non-loopback address without access control prints a warning.
#[tokio::test]
async fn startup_errors_and_the_public_address_warning() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "tiny").unwrap();
    let private = dir.path().join("private.pem");
    std::fs::write(
        &private,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let s = |p: &Path| p.display().to_string();
    for (args, expected) in [
        (vec!["--jwt-secret-file", &s(&short)], "at least 32"),
        (
            vec!["--jwt-secret-file", "/nonexistent/secret"],
            "cannot read",
        ),
        (vec!["--jwt-public-key", &s(&private)], "private key"),
        (
            vec![
                "--jwt-secret-file",
                &s(&short),
                "--jwks-url",
                "http://127.0.0.1:1/",
            ],
            "give one of",
        ),
        (vec!["--jwks-url", "file:///etc/passwd"], "--jwks-url"),
        (vec!["--anonymous-subscribe", "news"], "access control on"),
    ] {
        let mut all = vec!["serve", "--addr", "127.0.0.1:0"];
        all.extend(args.iter().copied());
        let out = tailcast(&all, &[]);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    // 0.0.0.0 is only listened on; the test talks to nothing but loopback.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tailcast"))
        .args(["serve", "--addr", "0.0.0.0:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut warned = String::new();
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap() == 0 {
            break;
        }
        if line.contains("access control off") {
            warned = line;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned.contains("WARN"), "{warned}");
}

// ------------------------------------------------------------------ helpers

async fn streams_as(server: &Server, token: &str) -> Vec<Value> {
    let r = client()
        .get(server.url("/api/streams"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

async fn wait_following_as(server: &Server, token: &str) {
    eventually("app.log following", || async {
        streams_as(server, token)
            .await
            .into_iter()
            .find(|s| s["name"] == "log:app.log" && s["state"] == "following")
            .map(drop)
    })
    .await
}

async fn poll_subscribers(server: &Server, token: &str, channel: &str, n: u64) {
    let admin = token_admin(token);
    eventually(&format!("{n} subscriber(s) on {channel}"), || async {
        streams_as(server, &admin)
            .await
            .into_iter()
            .find(|s| s["name"] == channel && s["subscribers"].as_u64() == Some(n))
            .map(drop)
    })
    .await
}

fn token_admin(_: &str) -> String {
    token(json!({"subscribe": ["*"], "admin": true}))
}
