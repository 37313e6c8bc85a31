//! Helpers of the client and interoperability tests: child processes whose
//! output lines are read with deadlines, a TCP proxy that can cut
//! connections and be pointed at another server, a scripted HTTP server,
//! the sse-starlette test server, and the third-party tools installed by
//! `.ci/interop.sh`.
//!
//! Tests that need those tools carry
//! `#[cfg_attr(tailcast_skip_interop, ignore = "...")]`: built with
//! `TAILCAST_SKIP_INTEROP=1` (see `build.rs`) they show as ignored.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::AbortHandle;

/// How long any single wait may take before the test fails: a watchdog,
/// far above what a loaded machine needs.
pub const WAIT: Duration = Duration::from_secs(30);

/// The folder with the interop scripts, package.json and the venv.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// The venv's Python, with httpx, httpx-sse, sse-starlette and uvicorn.
pub fn python() -> PathBuf {
    interop_dir().join(".venv/bin/python")
}

/// Checks that the third-party tools are installed, failing the test with
/// a hint if not. (Built with `TAILCAST_SKIP_INTEROP=1`, the tests that
/// call this are ignored instead of run.)
pub fn require_interop() {
    let ready = python().exists()
        && interop_dir()
            .join("node_modules/eventsource/package.json")
            .exists();
    assert!(
        ready,
        "interop tools are missing: run `bash .ci/interop.sh` first \
         (or build the tests with TAILCAST_SKIP_INTEROP=1 to ignore these)"
    );
}

/// A child process, killed when dropped, whose stdout is read line by line
/// and whose stderr is collected (and echoed, so it shows on failure).
pub struct Proc {
    pub child: Child,
    lines: Option<Lines<BufReader<ChildStdout>>>,
    /// Every stdout line read so far.
    pub seen: Vec<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr piped.
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = errors.next_line().await {
                eprintln!("[child] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Proc {
            child,
            lines: Some(BufReader::new(stdout).lines()),
            seen: Vec::new(),
            stderr,
        }
    }

    /// The stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a stderr line contains `needle`.
    pub async fn wait_stderr(&self, needle: &str) {
        poll(&format!("{needle:?} on stderr"), || async {
            self.stderr_lines()
                .iter()
                .any(|l| l.contains(needle))
                .then_some(())
        })
        .await
    }

    /// The next stdout line; `None` at end of output. Panics after [`WAIT`].
    pub async fn next_line(&mut self) -> Option<String> {
        let lines = self.lines.as_mut().expect("stdout was closed");
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no output line within {WAIT:?}; so far: {:?}", self.seen))
            .unwrap();
        if let Some(line) = &line {
            self.seen.push(line.clone());
        }
        line
    }

    /// Reads lines until one satisfies `pred`, returning it.
    pub async fn line_where(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        loop {
            match self.next_line().await {
                Some(line) if pred(&line) => return line,
                Some(_) => {}
                None => panic!("output ended before {what}; so far: {:?}", self.seen),
            }
        }
    }

    /// Closes our end of the child's stdout (a reader that went away).
    pub fn close_stdout(&mut self) {
        self.lines = None;
    }

    /// Waits for the exit status, panicking after `limit`.
    pub async fn exit_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("process still running after {limit:?}"))
            .unwrap()
    }

    /// Sends a signal (`INT`, `TERM`) with kill(1), once the process has
    /// installed its SIGINT and SIGTERM handlers (earlier, the default
    /// action would kill it and the test would check nothing).
    pub async fn signal(&self, name: &str) {
        let pid = self.child.id().expect("process already reaped");
        let caught = |pid: u32| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
            const BOTH: u64 = (1 << (2 - 1)) | (1 << (15 - 1));
            (mask & BOTH == BOTH).then_some(())
        };
        poll("SIGINT and SIGTERM handlers installed", || async {
            caught(pid)
        })
        .await;
        let ok = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} {pid} failed");
    }
}

/// A port on 127.0.0.1 where nothing listens, and stays so while the
/// returned socket lives: it is bound (no other process can take the port)
/// but not listening, so connections are refused.
pub fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// The sse-starlette test server (`tests/interop/sse_server.py`).
pub struct Starlette {
    pub proc: Proc,
    pub port: u16,
}

impl Starlette {
    /// Starts it on `port` (0: any free port).
    pub async fn start(port: u16) -> Starlette {
        let mut cmd = Command::new(python());
        cmd.arg(interop_dir().join("sse_server.py"))
            .arg(port.to_string());
        let mut proc = Proc::spawn(cmd);
        let line = proc
            .line_where("the listening line", |l| l.starts_with("listening "))
            .await;
        let port = line["listening ".len()..].trim().parse().unwrap();
        Starlette { proc, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The next request the server logged: (path, Last-Event-ID).
    pub async fn next_request(&mut self) -> (String, Option<String>) {
        let line = self
            .proc
            .line_where("a request line", |l| l.starts_with('{'))
            .await;
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        (
            v["path"].as_str().unwrap().to_string(),
            v["last_event_id"].as_str().map(str::to_string),
        )
    }
}

/// `tailcast listen ARGS...`, stdout piped.
pub fn listen(args: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tailcast"));
    cmd.arg("listen").args(args).stdin(Stdio::null());
    Proc::spawn(cmd)
}

/// One `--json` line of `tailcast listen` (or of the interop clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    pub id: Option<String>,
    pub event_type: String,
    pub data: String,
}

/// Parses an event line `{"id", "type", "data"}`; `None` for the clients'
/// other lines (`{"open": true}`, `{"error": ...}`).
pub fn printed(line: &str) -> Option<Printed> {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let data = v.get("data")?.as_str()?.to_string();
    Some(Printed {
        id: v["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        event_type: v["type"].as_str().unwrap_or("message").to_string(),
        data,
    })
}

/// Reads JSON event lines until `n` events were seen.
pub async fn read_events(proc: &mut Proc, n: usize) -> Vec<Printed> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let line = proc
            .next_line()
            .await
            .unwrap_or_else(|| panic!("output ended after {} events: {:?}", out.len(), proc.seen));
        if let Some(event) = printed(&line) {
            out.push(event);
        }
    }
    out
}

/// A TCP proxy on 127.0.0.1 in front of `upstream` that records the first
/// bytes (the request head) of each connection and can cut every open
/// connection and refuse new ones for a while, as a network failure or a
/// server restart would. Its address stays the same when the server behind
/// it changes ([`Proxy::set_upstream`]), so a restarted server never has to
/// get its old port back.
pub struct Proxy {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    open: Arc<Mutex<Vec<AbortHandle>>>,
    refusing: Arc<Mutex<bool>>,
    refused: Arc<Mutex<usize>>,
    upstream: Arc<Mutex<SocketAddr>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(Mutex::new(Vec::new()));
        let refusing = Arc::new(Mutex::new(false));
        let refused = Arc::new(Mutex::new(0));
        let upstream = Arc::new(Mutex::new(upstream));
        let (h, o, r, n, u) = (
            heads.clone(),
            open.clone(),
            refusing.clone(),
            refused.clone(),
            upstream.clone(),
        );
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if *r.lock().unwrap() {
                    *n.lock().unwrap() += 1;
                    drop(client);
                    continue;
                }
                let heads = h.clone();
                let upstream = *u.lock().unwrap();
                let task = tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut buf = vec![0u8; 16 * 1024];
                    let Ok(n) = client.read(&mut buf).await else {
                        return;
                    };
                    heads
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    if server.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                o.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            addr,
            heads,
            open,
            refusing,
            refused,
            upstream,
            accept,
        }
    }

    /// Sends new connections to `upstream` from now on.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
    }

    /// Connections closed at once because the proxy was refusing.
    pub fn refused(&self) -> usize {
        *self.refused.lock().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Closes every open connection; with `refuse`, new ones are closed at
    /// once until [`Proxy::accept_again`].
    pub fn cut(&self, refuse: bool) {
        *self.refusing.lock().unwrap() = refuse;
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn accept_again(&self) {
        *self.refusing.lock().unwrap() = false;
    }

    /// The request heads seen so far, lower-cased, in order.
    pub fn heads(&self) -> Vec<String> {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut(true);
    }
}

/// Polls `check` every 20 ms until it returns `Some`, panicking after
/// [`WAIT`].
pub async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A one-request-per-connection HTTP server on 127.0.0.1 that answers the
/// n-th request with the n-th of its canned responses (the last one again
/// once they run out) and then closes the connection, recording when each
/// request came and its `Last-Event-ID`.
pub struct Scripted {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<ScriptedRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

/// A request [`Scripted`] received.
#[derive(Debug, Clone)]
pub struct ScriptedRequest {
    /// When its head had arrived.
    pub at: tokio::time::Instant,
    /// When the answer to it had been written.
    pub answered: Option<tokio::time::Instant>,
    pub last_event_id: Option<String>,
}

impl Scripted {
    pub async fn start(responses: Vec<String>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::<ScriptedRequest>::new()));
        let log = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match socket.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let last_event_id = head
                    .lines()
                    .find_map(|l| l.strip_prefix("last-event-id:"))
                    .map(|v| v.trim().to_string());
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(ScriptedRequest {
                        at: tokio::time::Instant::now(),
                        answered: None,
                        last_event_id,
                    });
                    log.len() - 1
                };
                let response = &responses[n.min(responses.len() - 1)];
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
                log.lock().unwrap()[n].answered = Some(tokio::time::Instant::now());
            }
        });
        Scripted {
            addr,
            requests,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The requests so far, in order.
    pub fn requests(&self) -> Vec<ScriptedRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}
