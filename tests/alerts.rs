//! Alerts (`--alerts FILE`): the real binary, a real webhook receiver
//! started by each test on a loopback port (it records every request and
//! can answer 500 a number of times, or hang), and, for the cluster case,
//! a real `redis-server` on a free loopback port, stopped by PID.
//!
//! `redis-server` must be installed (`.ci/run` installs Debian's).

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use common::*;
use serde_json::{json, Value};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    authorization: Option<String>,
    body: Value,
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// Answer 500 to this many requests first.
    fail: AtomicUsize,
    /// Never answer.
    hang: AtomicBool,
}

/// A webhook receiver on 127.0.0.1, stopped when dropped.
struct Receiver {
    port: u16,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { port, state, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The bodies received on `path`.
    fn bodies(&self, path: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| r.body)
            .collect()
    }

    /// Waits until `path` has received `n` requests, and returns their
    /// bodies.
    async fn wait(&self, path: &str, n: usize) -> Vec<Value> {
        eventually(&format!("{n} requests on {path}"), || async {
            let bodies = self.bodies(path);
            (bodies.len() >= n).then_some(bodies)
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    state.received.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        authorization: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string()),
        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
    });
    if state.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let fail = state.fail.load(Ordering::SeqCst);
    if fail > 0 {
        state.fail.store(fail - 1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a server following a quiet `{dir}/app.log` (stream `app`) with
/// `rules` as its alerts file, and `extra` arguments.
fn server_with(rules: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alerts.toml"), rules).unwrap();
    std::fs::write(dir.path().join("app.log"), "").unwrap();
    let mut args = vec!["--alerts", "{dir}/alerts.toml", "app={dir}/app.log"];
    args.extend_from_slice(extra);
    Server::start_in(dir, &args, Stdio::null(), env)
}

async fn publish(server: &Server, channel: &str, data: &str) -> Value {
    let (status, body) = post(
        &server.url(&format!("/channels/{channel}")),
        "text/plain",
        data.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn publish_ndjson(server: &Server, channel: &str, lines: &[String]) -> Value {
    let body: String = lines
        .iter()
        .map(|l| format!("{}\n", serde_json::to_string(l).unwrap()))
        .collect();
    let (status, answer) = post(
        &server.url(&format!("/channels/{channel}")),
        "application/x-ndjson",
        body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn api_alerts(server: &Server) -> Value {
    let (status, body) = get(&server.url("/api/alerts")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn rule<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no rule {name} in {view}"))
}

#[tokio::test]
async fn rules_match_by_channel_level_and_regex_and_nothing_else_is_sent() {
    let hook = Receiver::start().await;
    let rules = format!(
        r#"
[[rule]]
name = "errors"
channels = ["web-*"]
min_level = "error"
webhook = "{errors}"
window = "0s"

[[rule]]
name = "panics"
channels = ["log:app", "broadcast"]
match = "(?i)panic"
webhook = "{panics}"
format = "slack"
window = "0s"
"#,
        errors = hook.url("/errors"),
        panics = hook.url("/panics"),
    );
    let server = server_with(&rules, &[], &[]);
    // Not matching: below the level, no level, another channel, an
    // internal-looking type is not special here (it is a user event).
    publish(&server, "web-1", "INFO all fine").await;
    publish(&server, "web-1", r#"{"level":"warn","line":"slow"}"#).await;
    publish(&server, "web-1", "an error, but no leading level").await;
    publish(&server, "news", "ERROR not watched").await;
    // Matching: a leading word, a JSON level (an ingested record's shape).
    let first = publish(&server, "web-1", "[error] disk full").await;
    let second = publish(
        &server,
        "web-2",
        r#"{"time":"2026-12-07T06:00:00Z","line":"out of memory","level":"fatal","labels":{"host":"a"}}"#,
    )
    .await;
    // An ingested record (Loki push): its level label is the record's
    // level, its line the message.
    let push = json!({"streams": [{"stream": {"channel": "web-3", "level": "error"},
        "values": [["1765087200000000000", "db down"], ["1765087200000000001", "db fine"]]}]});
    let response = client()
        .post(server.url("/loki/api/v1/push"))
        .header("content-type", "application/json")
        .body(push.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let bodies = hook.wait("/errors", 4).await;
    eprintln!("errors rule sent: {bodies:#?}");
    assert_eq!(bodies.len(), 4, "{bodies:#?}");
    assert_eq!(bodies[2]["channel"], "web-3");
    assert_eq!(bodies[2]["line"], "db down");
    assert_eq!(bodies[3]["line"], "db fine");
    assert_eq!(bodies[0]["rule"], "errors");
    assert_eq!(bodies[0]["kind"], "match");
    assert_eq!(bodies[0]["channel"], "web-1");
    assert_eq!(bodies[0]["id"], first["id"]);
    assert_eq!(bodies[0]["line"], "[error] disk full");
    assert_eq!(bodies[0]["level"], "error");
    assert_eq!(bodies[0]["count"], 1);
    assert_eq!(bodies[1]["id"], second["id"]);
    assert_eq!(bodies[1]["line"], "out of memory");
    assert_eq!(bodies[1]["level"], "fatal");
    assert_eq!(bodies[1]["time"], "2026-12-07T06:00:00Z");

    // A followed file's lines are events of log:app; the regex runs on the
    // line. A batch of lines reaches the rule too.
    append(
        &server.path("app.log"),
        "all good\nthread 'main' panicked at x\n",
    );
    let slack = hook.wait("/panics", 1).await;
    let text = slack[0]["text"].as_str().unwrap();
    eprintln!("slack body: {}", slack[0]);
    assert!(
        text.contains("panics") && text.contains("log:app") && text.contains("panicked at x"),
        "{text}"
    );
    assert!(slack[0]["blocks"].is_array());
    // A broadcast is an event like any other; its `message` is the line.
    let (status, _) = post(
        &server.url("/api/broadcast"),
        "application/json",
        r#"{"message":"PANIC drill at noon"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let slack = hook.wait("/panics", 2).await;
    let text = slack[1]["text"].as_str().unwrap();
    assert!(
        text.contains("`broadcast`") && text.contains("PANIC drill at noon"),
        "{text}"
    );
    // Nothing else arrived: the matches above were the last events.
    let view = api_alerts(&server).await;
    assert_eq!(rule(&view, "errors")["counts"]["matched"], 4);
    assert_eq!(rule(&view, "panics")["counts"]["matched"], 2);
    eventually("sent counted", || async {
        let view = api_alerts(&server).await;
        (rule(&view, "errors")["counts"]["sent"] == 4).then_some(())
    })
    .await;
    assert_eq!(hook.received().len(), 6);
    let metrics = get(&server.url("/metrics")).await.1;
    assert!(
        metrics.contains("tailcast_alerts_fired_total{rule=\"errors\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("tailcast_alerts_sent_total{rule=\"errors\"} 4"));
}

#[tokio::test]
async fn a_window_sends_the_first_match_at_once_and_a_summary_with_the_count() {
    let hook = Receiver::start().await;
    let rules = format!(
        r#"
[[rule]]
name = "burst"
channels = ["jobs"]
match = "failed"
webhook = "{}"
window = "2s"
"#,
        hook.url("/burst")
    );
    let server = server_with(&rules, &[], &[]);
    // One batch: one commit, so all in one window whatever the machine's
    // speed.
    let lines: Vec<String> = (1..=4).map(|i| format!("job {i} failed")).collect();
    let batch = publish_ndjson(&server, "jobs", &lines).await;
    let first = hook.wait("/burst", 1).await;
    assert_eq!(first[0]["kind"], "match");
    assert_eq!(first[0]["count"], 1);
    assert_eq!(first[0]["id"], batch["first_id"]);
    assert_eq!(first[0]["window"], "2s");
    let both = hook.wait("/burst", 2).await;
    eprintln!("window notifications: {both:#?}");
    assert_eq!(both[1]["kind"], "summary");
    assert_eq!(both[1]["count"], 3);
    assert_eq!(both[1]["id"], batch["last_id"]);
    assert_eq!(both[1]["line"], "job 4 failed");
    let view = api_alerts(&server).await;
    let burst = rule(&view, "burst");
    assert_eq!(burst["counts"]["matched"], 4);
    assert_eq!(burst["counts"]["fired"], 2);
    assert_eq!(burst["last_fired"]["id"], batch["last_id"]);
    assert_eq!(burst["last_fired"]["channel"], "jobs");
}

#[tokio::test]
async fn a_notification_answered_500_is_retried_until_accepted() {
    let hook = Receiver::start().await;
    hook.state.fail.store(2, Ordering::SeqCst);
    let rules = format!(
        r#"
[[rule]]
name = "retry"
channels = ["x"]
webhook = "{}"
headers = {{ Authorization = "Bearer hook-token" }}
"#,
        hook.url("/retry")
    );
    let server = server_with(&rules, &[], &[]);
    let published = publish(&server, "x", "anything").await;
    let tries = hook.wait("/retry", 3).await;
    eprintln!("tries: {}", tries.len());
    assert!(tries.iter().all(|b| b["id"] == published["id"]));
    assert!(hook
        .received()
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer hook-token")));
    eventually("sent counted", || async {
        let view = api_alerts(&server).await;
        let counts = &rule(&view, "retry")["counts"];
        (counts["sent"] == 1).then(|| assert_eq!(counts["failed"], 0))
    })
    .await;
    assert_eq!(hook.received().len(), 3);
    wait_metric(&server, "tailcast_alerts_sent_total{rule=\"retry\"}", 1.0).await;
    server
        .wait_stderr("answered 500 Internal Server Error")
        .await;
    // The header's value is shown nowhere.
    let view = get(&server.url("/api/alerts")).await.1;
    assert!(!view.contains("hook-token"), "{view}");
    assert!(view.contains("\"headers\":[\"authorization\"]"), "{view}");
}

#[tokio::test]
async fn hanging_and_unreachable_webhooks_slow_neither_publishing_nor_delivery() {
    let hanging = Receiver::start().await;
    hanging.state.hang.store(true, Ordering::SeqCst);
    let rules = format!(
        r#"
[[rule]]
name = "hangs"
channels = ["busy"]
webhook = "{}"
window = "0s"
timeout = "30s"

[[rule]]
name = "unreachable"
channels = ["busy"]
webhook = "http://127.0.0.1:{}/nobody"
window = "0s"
"#,
        hanging.url("/hang"),
        dead_port()
    );
    let server = server_with(&rules, &[], &[]);
    let mut sse = Sse::connect(&server.url("/realtime/busy")).await;
    let total = 600;
    let started = Instant::now();
    for chunk in 0..(total / 100) {
        let lines: Vec<String> = (0..100)
            .map(|i| format!("event {}", chunk * 100 + i))
            .collect();
        publish_ndjson(&server, "busy", &lines).await;
    }
    for i in 0..20 {
        publish(&server, "busy", &format!("single {i}")).await;
    }
    eprintln!(
        "{} events published in {:?} with a hanging and an unreachable webhook",
        total + 20,
        started.elapsed()
    );
    let frames = sse.events(total + 20).await;
    assert_eq!(frames[0].data(), "event 0");
    assert_eq!(frames[total + 19].data(), "single 19");
    // Each rule's outbox holds 256: the rest is dropped, and counted.
    let view = eventually("drops counted", || async {
        let view = api_alerts(&server).await;
        let hangs = rule(&view, "hangs")["counts"]["dropped"].as_u64().unwrap();
        let unreachable = rule(&view, "unreachable")["counts"]["dropped"]
            .as_u64()
            .unwrap();
        (hangs + unreachable > 0 && rule(&view, "hangs")["counts"]["matched"] == total + 20)
            .then_some(view)
    })
    .await;
    let hangs = &rule(&view, "hangs")["counts"];
    eprintln!("hanging rule counts: {hangs}");
    // 256 waiting, perhaps one in flight, the rest dropped.
    let dropped = hangs["dropped"].as_u64().unwrap();
    let all = total as u64 + 20;
    assert!((all - 1 - 256..=all - 256).contains(&dropped), "{dropped}");
    let dropped = metric(
        &server,
        "tailcast_alerts_dropped_total{reason=\"outbox_full\"}",
    )
    .await;
    eprintln!("tailcast_alerts_dropped_total{{reason=\"outbox_full\"}} = {dropped}");
    assert!(dropped >= (total + 20 - 1 - 256) as f64);
    server.wait_stderr("cannot connect").await;
}

#[tokio::test]
async fn sighup_reloads_the_rules_and_a_bad_file_keeps_them() {
    let hook = Receiver::start().await;
    let file = |name: &str, pattern: &str| {
        format!(
            "[[rule]]\nname = \"{name}\"\nchannels = [\"c\"]\nmatch = \"{pattern}\"\nwebhook = \"{}\"\nwindow = \"0s\"\n",
            hook.url(&format!("/{name}"))
        )
    };
    let server = server_with(&file("alpha", "alpha"), &[], &[]);
    publish(&server, "c", "alpha 1").await;
    hook.wait("/alpha", 1).await;

    std::fs::write(server.path("alerts.toml"), file("beta", "beta")).unwrap();
    server.signal("HUP").await;
    server.wait_stderr("rules reloaded").await;
    publish(&server, "c", "alpha 2").await;
    publish(&server, "c", "beta 1").await;
    hook.wait("/beta", 1).await;
    assert_eq!(hook.bodies("/alpha").len(), 1, "the old rule is gone");
    let view = api_alerts(&server).await;
    assert_eq!(view["rules"].as_array().unwrap().len(), 1);
    assert_eq!(view["last_reload"]["ok"], true);

    std::fs::write(
        server.path("alerts.toml"),
        "[[rule]]\nname = \"x\"\nbogus = 1\n",
    )
    .unwrap();
    server.signal("HUP").await;
    server.wait_stderr("reload refused").await;
    let line = server
        .stderr_lines()
        .into_iter()
        .find(|l| l.contains("reload refused"))
        .unwrap();
    eprintln!("the refusal: {line}");
    assert!(
        line.contains("alerts.toml") && line.contains("bogus") && line.contains("1 rules in use"),
        "{line}"
    );
    publish(&server, "c", "beta 2").await;
    hook.wait("/beta", 2).await;
    let view = api_alerts(&server).await;
    assert_eq!(view["last_reload"]["ok"], false);
    assert_eq!(rule(&view, "beta")["counts"]["matched"], 2);
}

#[test]
fn a_bad_file_at_start_exits_1_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[rule]]\nname = \"r\"\nchannels = [\"a\"]\nmatch = \"(\"\nwebhook = \"http://h/\"\n",
            "rule 1 (\"r\"): match:",
        ),
        (
            "[[rule]]\nname = \"r\"\nchannels = [\"a\"]\nwebhook = \"http://h/\"\ncolour = 1\n",
            "unknown field `colour`",
        ),
        (
            "[[rule]]\nname = \"r\"\nchannels = [\"a\"]\nwebhook = \"ftp://h/secret\"\n",
            "webhook: ftp://h/… is not an http:// or https:// URL",
        ),
    ];
    for (text, want) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let output = serve_refused(&["--alerts", path.to_str().unwrap(), "-"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprintln!("exit {:?}: {stderr}", output.status.code());
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("error: alerts file {}: ", path.display()))
                && stderr.contains(want),
            "{stderr}"
        );
        assert!(output.stdout.is_empty());
    }
    let missing = dir.path().join("missing.toml");
    let output = serve_refused(&["--alerts", missing.to_str().unwrap(), "-"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("exit {:?}: {stderr}", output.status.code());
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("missing.toml: cannot read it"), "{stderr}");
}

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

fn token(rights: Value) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "test", "exp": exp, "tailcast": rights}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn get_as(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = client().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn api_alerts_needs_the_admin_right_and_is_404_without_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let rules = "[[rule]]\nname = \"r\"\nchannels = [\"a\"]\nwebhook = \"https://hooks.example/T000/B000/XXXXsecretXXXX\"\n";
    let server = server_with(rules, &["--jwt-secret-file", secret.to_str().unwrap()], &[]);
    let url = server.url("/api/alerts");
    let (status, body) = get_as(&url, None).await;
    eprintln!("no token: {status} {body}");
    assert_eq!(status, 401);
    let reader = token(json!({"subscribe": ["*"], "publish": ["*"]}));
    let (status, body) = get_as(&url, Some(&reader)).await;
    eprintln!("without admin: {status} {body}");
    assert_eq!(status, 403);
    assert!(body.contains("\"error\""), "{body}");
    let admin = token(json!({"admin": true}));
    let (status, body) = get_as(&url, Some(&admin)).await;
    eprintln!("admin: {status} {body}");
    assert_eq!(status, 200);
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["rules"][0]["name"], "r");
    assert_eq!(view["rules"][0]["webhook"], "https://hooks.example/…");
    assert_eq!(view["rules"][0]["format"], "json");
    assert_eq!(view["rules"][0]["window"], "1m");
    assert!(view["rules"][0]["last_fired"].is_null());
    assert!(!body.contains("XXXXsecretXXXX"));

    let plain = Server::start(&["-"]);
    let (status, body) = get(&plain.url("/api/alerts")).await;
    eprintln!("without --alerts: {status} {body}");
    assert_eq!(status, 404);
    assert!(body.contains("--alerts"), "{body}");
}

#[tokio::test]
async fn webhook_secrets_are_never_logged() {
    let refusing = Receiver::start().await;
    let rules = format!(
        r#"
[[rule]]
name = "down"
channels = ["s"]
webhook = "http://user:pa55word@127.0.0.1:{dead}/services/T000/B000/SECRETPATH?token=SECRETQUERY"
window = "0s"

[[rule]]
name = "refused"
channels = ["s"]
webhook = "http://127.0.0.1:{refusing}/hooks/SECRETPATH2?key=SECRETQUERY2"
window = "0s"
"#,
        dead = dead_port(),
        refusing = refusing.port,
    );
    let refusing_state = refusing.state.clone();
    refusing_state.fail.store(100, Ordering::SeqCst);
    let server = server_with(&rules, &[], &[("TAILCAST_LOG", "debug")]);
    publish(&server, "s", "boom").await;
    server
        .wait_stderr("\"down\": webhook http://127.0.0.1")
        .await;
    server
        .wait_stderr("\"refused\": webhook http://127.0.0.1")
        .await;
    let view = get(&server.url("/api/alerts")).await.1;
    let log = server.stderr_lines();
    for line in &log {
        if line.contains("alert rule") {
            eprintln!("logged: {line}");
        }
    }
    for secret in ["SECRETPATH", "SECRETQUERY", "pa55word", "services/T000"] {
        assert!(
            !log.iter().any(|l| l.contains(secret)),
            "{secret} logged: {log:#?}"
        );
        assert!(!view.contains(secret), "{secret} shown: {view}");
    }
}

/// A `redis-server` owned by the test, stopped when dropped.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let port = dead_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let redis = Redis {
            child,
            port,
            _dir: dir,
        };
        let start = Instant::now();
        while !redis.answers() {
            assert!(start.elapsed() < DEADLINE, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn answers(&self) -> bool {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 64];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn with_redis_an_event_is_alerted_once_in_the_cluster() {
    let redis = Redis::start();
    let hook = Receiver::start().await;
    let rules = format!(
        "[[rule]]\nname = \"once\"\nchannels = [\"shared\"]\nwebhook = \"{}\"\nwindow = \"0s\"\n",
        hook.url("/once")
    );
    let url = redis.url();
    let a = server_with(&rules, &["--redis", &url, "--node", "a"], &[]);
    // Each node follows a stream of its own name: two nodes may not follow
    // the same one.
    let b = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alerts.toml"), &rules).unwrap();
        std::fs::write(dir.path().join("b.log"), "").unwrap();
        Server::start_in(
            dir,
            &[
                "--alerts",
                "{dir}/alerts.toml",
                "--redis",
                &url,
                "--node",
                "b",
                "b={dir}/b.log",
            ],
            Stdio::null(),
            &[],
        )
    };
    let mut on_b = Sse::connect(&b.url("/realtime/shared")).await;
    let x = publish(&a, "shared", "from a").await;
    // b has received x through Redis before it publishes y: had b alerted
    // on x, its notification would be queued before y's.
    assert_eq!(on_b.next_event().await.data(), "from a");
    let y = publish(&b, "shared", "from b").await;
    assert_eq!(on_b.next_event().await.data(), "from b");
    // a has delivered x and b has delivered y; b's outbox is in order, so
    // a notification of x by b would have come before y's.
    for (node, what) in [(&a, "a's notification"), (&b, "b's notification")] {
        eventually(what, || async {
            let view = api_alerts(node).await;
            (rule(&view, "once")["counts"]["sent"].as_u64() >= Some(1)).then_some(())
        })
        .await;
    }
    let bodies = hook.bodies("/once");
    let ids: Vec<&Value> = bodies.iter().map(|b| &b["id"]).collect();
    eprintln!("notified ids: {ids:?} (x = {}, y = {})", x["id"], y["id"]);
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    assert_eq!(ids.iter().filter(|i| ***i == x["id"]).count(), 1);
    assert_eq!(ids.iter().filter(|i| ***i == y["id"]).count(), 1);
    assert_eq!(rule(&api_alerts(&a).await, "once")["counts"]["matched"], 1);
    assert_eq!(rule(&api_alerts(&b).await, "once")["counts"]["matched"], 1);
}

#[tokio::test]
async fn sighup_reloads_both_the_rules_and_the_tls_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
    let rules = dir.path().join("alerts.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"r\"\nchannels = [\"a\"]\nwebhook = \"http://127.0.0.1:9/\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tailcast"))
        .args(["serve", "--addr", "127.0.0.1:0", "--alerts"])
        .arg(&rules)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("-")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = Arc::new(Mutex::new(Vec::<String>::new()));
    let errors = std::io::BufReader::new(child.stderr.take().unwrap());
    let sink = stderr.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in errors.lines().map_while(Result::ok) {
            eprintln!("[tailcast] {line}");
            sink.lock().unwrap().push(line);
        }
    });
    listening_address(&mut child, "https");
    let child = Kill(child);
    wait_signal_handlers(child.0.id()).await;
    send_signal(child.0.id(), "HUP");
    for needle in ["TLS certificate reloaded", "alerts: 1 rules reloaded"] {
        eventually(needle, || async {
            stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
                .then_some(())
        })
        .await;
    }
    let lines = stderr.lock().unwrap().clone();
    eprintln!(
        "after one SIGHUP: {:?}",
        lines
            .iter()
            .filter(|l| l.contains("reloaded"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn with_data_dir_events_restored_at_start_are_not_alerted_again() {
    let hook = Receiver::start().await;
    let rules = format!(
        "[[rule]]\nname = \"d\"\nchannels = [\"disk\"]\nwebhook = \"{}\"\nwindow = \"0s\"\n",
        hook.url("/d")
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let mut first = server_with(&rules, &["--data-dir", data], &[]);
    let one = publish(&first, "disk", "before the restart").await;
    hook.wait("/d", 1).await;
    first.terminate(DEADLINE).await.expect("stopped");
    let second = server_with(&rules, &["--data-dir", data], &[]);
    // The restored event is there for subscribers...
    let mut sse = Sse::connect(&second.url("/realtime/disk?tail=1")).await;
    assert_eq!(sse.next_event().await.data(), "before the restart");
    // ...but only the new one is notified.
    let two = publish(&second, "disk", "after the restart").await;
    let bodies = hook.wait("/d", 2).await;
    eventually("sent counted", || async {
        let view = api_alerts(&second).await;
        (rule(&view, "d")["counts"]["sent"] == 1).then_some(())
    })
    .await;
    let bodies_now = hook.bodies("/d");
    eprintln!(
        "notified after a restart: {:?}",
        bodies_now.iter().map(|b| &b["id"]).collect::<Vec<_>>()
    );
    assert_eq!(bodies_now.len(), 2);
    assert_eq!(
        (&bodies[0]["id"], &bodies[1]["id"]),
        (&one["id"], &two["id"])
    );
}
