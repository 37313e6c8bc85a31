//! Shared helpers of the integration tests: start the real `tailcast`
//! binary on 127.0.0.1 port 0, talk real HTTP, read SSE frames, poll with
//! deadlines.
//!
//! Nothing here sleeps a fixed time to let something happen: every wait
//! polls for the condition and fails after [`DEADLINE`], which is only a
//! watchdog against a hung test.
#![allow(dead_code, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

/// How long any single wait in a test may take before it fails: a
/// watchdog, far above what a loaded machine needs.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running `tailcast serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
    /// Every line the server wrote to stderr so far (also echoed to the
    /// test's stderr, which shows on failure).
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `tailcast serve --addr 127.0.0.1:0 ARGS...` in a fresh temp
    /// dir (ARGS may use `{dir}` for that dir).
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(args, Stdio::null(), &[])
    }

    /// Like [`Server::start`], with stdin and extra environment variables.
    pub fn start_with(args: &[&str], stdin: Stdio, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, args, stdin, env)
    }

    /// Starts the server with `dir` as its temp dir.
    pub fn start_in(
        dir: tempfile::TempDir,
        args: &[&str],
        stdin: Stdio,
        env: &[(&str, &str)],
    ) -> Server {
        let d = dir.path().display().to_string();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &d)).collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tailcast"));
        cmd.arg("serve")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .args(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tailcast");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let errors = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in errors.lines() {
                let Ok(line) = line else { return };
                eprintln!("[tailcast] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let addr = listening_address(&mut child, "http");
        Server {
            child,
            addr,
            dir,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a stderr line contains `needle`.
    pub async fn wait_stderr(&self, needle: &str) {
        eventually(&format!("{needle:?} on the server's stderr"), || async {
            self.stderr_lines()
                .iter()
                .any(|l| l.contains(needle))
                .then_some(())
        })
        .await
    }

    /// Sends `SIG<name>` once the server has installed its SIGINT and
    /// SIGTERM handlers (a signal sent earlier would kill it by the default
    /// action instead of testing the handler).
    pub async fn signal(&self, name: &str) {
        wait_signal_handlers(self.pid()).await;
        send_signal(self.pid(), name);
    }

    /// Sends SIGTERM and waits (up to `limit`) for the exit status.
    pub async fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.signal("TERM").await;
        self.exit_within(limit).await
    }

    /// The exit status, if the process ends within `limit`.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if start.elapsed() >= limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The server's resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_field(self.pid(), "VmRSS:")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of `/proc/PID/status` (Linux), without its name.
pub fn proc_status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
}

/// Waits until process `pid` catches SIGINT and SIGTERM (the `SigCgt` mask
/// of `/proc/PID/status` has bits 2 and 15).
pub async fn wait_signal_handlers(pid: u32) {
    const SIGINT: u64 = 1 << (2 - 1);
    const SIGTERM: u64 = 1 << (15 - 1);
    eventually("SIGINT and SIGTERM handlers installed", || async {
        let mask = proc_status_field(pid, "SigCgt:")?;
        let mask = u64::from_str_radix(&mask, 16).ok()?;
        (mask & (SIGINT | SIGTERM) == SIGINT | SIGTERM).then_some(())
    })
    .await
}

/// `kill -<name> <pid>`.
pub fn send_signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid} failed");
}

/// Appends `text` to the file at `path` (creating it).
pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Numbered lines `prefix0\nprefix1\n...`.
pub fn lines(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{prefix}{i}\n")).collect()
}

/// Polls `check` until it returns `Some`, or panics after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One SSE frame as the server wrote it (fields collected).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<String>,
    pub comments: Vec<String>,
    pub raw: String,
}

impl Frame {
    pub fn event_type(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }

    pub fn data(&self) -> &str {
        self.data.as_deref().unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.data()).unwrap_or_else(|e| panic!("{e}: {:?}", self.data))
    }

    /// The hub sequence number at the end of the id (`epoch-seq`).
    pub fn seq(&self) -> u64 {
        seq_of(self.id.as_deref().expect("an event with an id"))
    }
}

/// The sequence number of an `epoch-seq` id.
pub fn seq_of(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an epoch-seq id: {id:?}"))
}

/// How a response body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The server ended it properly (for chunked bodies: the last chunk).
    Clean,
    /// The transport failed or the server cut the connection mid-body.
    Aborted(String),
}

/// Why [`Sse::try_next_frame`] returned no frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoFrame {
    /// Nothing complete arrived within the limit.
    Timeout,
    /// The connection failed before the body ended.
    Aborted(String),
}

type Body = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, String>> + Send>>;

/// An SSE response being read.
pub struct Sse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    body: Body,
    buf: Vec<u8>,
    /// How the body ended, once it has.
    pub end: Option<StreamEnd>,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

impl Sse {
    pub async fn connect(url: &str) -> Sse {
        Self::connect_with(url, &[]).await
    }

    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Sse {
        let mut req = client().get(url).header("accept", "text/event-stream");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = tokio::time::timeout(DEADLINE, req.send())
            .await
            .expect("connect timed out")
            .unwrap();
        Sse {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: Box::pin(resp.bytes_stream().map(|r| r.map_err(|e| format!("{e:?}")))),
            buf: Vec::new(),
            end: None,
        }
    }

    /// Reads an SSE response from `body`, a stream of body bytes.
    pub fn from_body(status: u16, body: Body) -> Sse {
        Sse {
            status,
            headers: reqwest::header::HeaderMap::new(),
            body,
            buf: Vec::new(),
            end: None,
        }
    }

    /// The next frame, or `None` when the stream ended cleanly. Panics if
    /// the connection was aborted instead, or after [`DEADLINE`].
    pub async fn next_frame(&mut self) -> Option<Frame> {
        self.next_frame_within(DEADLINE)
            .await
            .expect("timed out waiting for a frame")
    }

    /// The next frame; `Err` if none came within `limit`. Panics if the
    /// connection was aborted.
    pub async fn next_frame_within(&mut self, limit: Duration) -> Result<Option<Frame>, ()> {
        match self.try_next_frame(limit).await {
            Ok(frame) => Ok(frame),
            Err(NoFrame::Timeout) => Err(()),
            Err(NoFrame::Aborted(why)) => panic!("the stream was aborted, not ended: {why}"),
        }
    }

    /// The next frame; `Ok(None)` when the stream ended cleanly.
    pub async fn try_next_frame(&mut self, limit: Duration) -> Result<Option<Frame>, NoFrame> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.buf.drain(..at + 2).collect();
                let raw = String::from_utf8(raw).expect("utf-8 from server");
                return Ok(Some(parse_frame(&raw)));
            }
            match &self.end {
                Some(StreamEnd::Clean) => return Ok(None),
                Some(StreamEnd::Aborted(why)) => return Err(NoFrame::Aborted(why.clone())),
                None => {}
            }
            match tokio::time::timeout_at(until, self.body.next()).await {
                Err(_) => return Err(NoFrame::Timeout),
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(Some(Err(e))) => self.end = Some(StreamEnd::Aborted(e)),
                Ok(None) => self.end = Some(StreamEnd::Clean),
            }
        }
    }

    /// The next frame that is an event (has data), skipping comments and
    /// `retry:`-only frames.
    pub async fn next_event(&mut self) -> Frame {
        loop {
            let frame = self.next_frame().await.expect("stream ended");
            if frame.data.is_some() {
                return frame;
            }
        }
    }

    /// The next `n` events.
    pub async fn events(&mut self, n: usize) -> Vec<Frame> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_event().await);
        }
        out
    }
}

/// Reads `tailcast listening on SCHEME://ADDR` from the server's stdout
/// (piped) and returns ADDR; the rest of stdout is drained in the
/// background so the server never blocks on it.
pub fn listening_address(child: &mut std::process::Child, scheme: &str) -> String {
    let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix(&format!("tailcast listening on {scheme}://"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    });
    addr
}

/// Parses one SSE block (its lines, without the blank line ending it).
pub fn parse_frame(raw: &str) -> Frame {
    let mut frame = Frame {
        raw: raw.to_string(),
        ..Frame::default()
    };
    for line in raw.trim_end_matches('\n').split('\n') {
        if let Some(comment) = line.strip_prefix(':') {
            frame.comments.push(comment.trim_start().to_string());
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" => frame.id = Some(value.to_string()),
            "event" => frame.event = Some(value.to_string()),
            "retry" => frame.retry = Some(value.to_string()),
            "data" => {
                frame.data = Some(match frame.data.take() {
                    Some(d) => format!("{d}\n{value}"),
                    None => value.to_string(),
                })
            }
            other => panic!("unknown field {other:?} in {raw:?}"),
        }
    }
    frame
}

pub fn data_of(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(|f| f.data().to_string()).collect()
}

/// A raw HTTP/1.1 connection to an SSE endpoint that sends its request and
/// then reads nothing, with a small receive buffer, so the server's writes
/// block after a few KiB: a subscriber that stopped reading.
pub struct StalledSubscriber {
    pub stream: tokio::net::TcpStream,
}

impl StalledSubscriber {
    /// Connects and sends `GET path`; returns once the server counts it as
    /// a subscriber of channel `channel`.
    pub async fn connect(server: &Server, path: &str, channel: &str) -> StalledSubscriber {
        use tokio::io::AsyncWriteExt as _;
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(server.addr.parse().unwrap()).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        eventually("stalled subscriber registered", || async {
            (stream_info(server, channel).await?["subscribers"] == 1).then_some(())
        })
        .await;
        StalledSubscriber { stream }
    }

    /// Starts reading: the response (head checked, chunked body decoded)
    /// as an [`Sse`].
    pub async fn resume_reading(self) -> Sse {
        let mut raw = RawChunked {
            stream: self.stream,
            buf: Vec::new(),
        };
        let status = raw.read_head().await;
        let body = futures_util::stream::unfold(Some(raw), |raw| async move {
            let mut raw = raw?;
            match raw.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(raw))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        });
        Sse::from_body(status, Box::pin(body))
    }
}

/// A minimal reader of an HTTP/1.1 response with a chunked body.
struct RawChunked {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawChunked {
    /// Reads more bytes; `false` at end of file.
    async fn fill(&mut self) -> Result<bool, String> {
        use tokio::io::AsyncReadExt as _;
        let mut chunk = [0u8; 64 * 1024];
        let n = self
            .stream
            .read(&mut chunk)
            .await
            .map_err(|e| e.to_string())?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Reads up to and including the next CRLF.
    async fn line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..at + 2).collect();
                return Ok(line[..at].to_vec());
            }
            if !self.fill().await? {
                return Err("connection closed mid-line".into());
            }
        }
    }

    /// Reads the response head; returns the status and checks the body is
    /// chunked.
    async fn read_head(&mut self) -> u16 {
        let status_line = String::from_utf8(self.line().await.unwrap()).unwrap();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut chunked = false;
        loop {
            let line = String::from_utf8(self.line().await.unwrap()).unwrap();
            if line.is_empty() {
                break;
            }
            if line.eq_ignore_ascii_case("transfer-encoding: chunked") {
                chunked = true;
            }
        }
        assert!(chunked, "expected a chunked body");
        status
    }

    /// The next chunk's data; `None` after the last chunk.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        let size_line = String::from_utf8(self.line().await?).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size_line.trim(), 16)
            .map_err(|e| format!("bad chunk size {size_line:?}: {e}"))?;
        while self.buf.len() < size + 2 {
            if !self.fill().await? {
                return Err("connection closed mid-chunk".into());
            }
        }
        let data: Vec<u8> = self.buf.drain(..size).collect();
        if self.buf.drain(..2).as_slice() != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        Ok((size > 0).then(|| Bytes::from(data)))
    }
}

/// GET `url`, returning status and body text.
pub async fn get(url: &str) -> (u16, String) {
    let resp = client().get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// POST `body` to `url` with `content_type`, returning status and JSON body.
pub async fn post(
    url: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, serde_json::Value) {
    let resp = client()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}")),
    )
}

/// The value of the unlabelled sample `name` (e.g. `tailcast_resets_total`)
/// in the server's Prometheus text.
pub async fn metric(server: &Server, name: &str) -> f64 {
    let (status, text) = get(&server.url("/metrics")).await;
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

/// Waits until metric `name` equals `value`, and fails if it goes past
/// it.
pub async fn wait_metric(server: &Server, name: &str, value: f64) {
    let seen = eventually(&format!("{name} = {value}"), || async {
        let now = metric(server, name).await;
        (now >= value).then_some(now)
    })
    .await;
    assert_eq!(seen, value, "{name}");
}

/// The `/api/streams` entry called `name`.
pub async fn stream_info(server: &Server, name: &str) -> Option<serde_json::Value> {
    let (_, body) = get(&server.url("/api/streams")).await;
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    list.into_iter().find(|s| s["name"] == name)
}

/// Waits until log stream `name` is `following` in `/api/streams`.
pub async fn wait_following(server: &Server, name: &str) {
    eventually(&format!("{name} following"), || async {
        stream_info(server, name)
            .await
            .filter(|s| s["state"] == "following")
            .map(drop)
    })
    .await
}

/// Waits until the newest event of channel `name` has sequence number
/// `seq` or later (the server has read and published that far).
pub async fn wait_last_seq(server: &Server, name: &str, seq: u64) {
    eventually(&format!("{name} at seq {seq}"), || async {
        let info = stream_info(server, name).await?;
        (seq_of(info["last_id"].as_str()?) >= seq).then_some(())
    })
    .await
}

/// The newest line of log stream `stream` the server has published, as a
/// fresh subscriber with `?tail=1` sees it (`None` while there is none).
pub async fn newest_line(server: &Server, stream: &str) -> Option<String> {
    let mut sse = Sse::connect(&server.url(&format!("/logs/{stream}?tail=1"))).await;
    loop {
        match sse.next_frame_within(Duration::from_millis(300)).await {
            Ok(Some(f)) if f.data.is_some() => return Some(f.data().to_string()),
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

/// Waits until the server has published `last` as the newest line of log
/// stream `stream`.
pub async fn wait_published(server: &Server, stream: &str, last: &str) {
    eventually(&format!("{last:?} published on {stream}"), || async {
        (newest_line(server, stream).await.as_deref() == Some(last)).then_some(())
    })
    .await
}

/// Appends `text` to `file` in the server's dir and waits until the server
/// has published its last line on log stream `stream`.
pub async fn append_and_wait_published(server: &Server, file: &str, stream: &str, text: &str) {
    append(&server.path(file), text);
    let last = text.lines().last().expect("at least one line");
    wait_published(server, stream, last).await
}

/// Appends `sentinel` as a line to `path` and reads events from `sse`
/// until it arrives, returning the events before it: proves that nothing
/// else was sent in between, without waiting a fixed time for silence.
pub async fn events_until_line(sse: &mut Sse, path: &Path, sentinel: &str) -> Vec<Frame> {
    append(path, &format!("{sentinel}\n"));
    events_until(sse, sentinel).await
}

/// Reads events from `sse` until one with data `sentinel`, returning the
/// events before it.
pub async fn events_until(sse: &mut Sse, sentinel: &str) -> Vec<Frame> {
    let mut before = Vec::new();
    loop {
        let e = sse.next_event().await;
        if e.data() == sentinel {
            return before;
        }
        before.push(e);
    }
}

impl Server {
    /// Like [`Server::start`], and also returns the `extra` stdout lines
    /// that follow the listening line (e.g. `syslog listening on
    /// tcp://ADDR`).
    pub fn start_reading_lines(args: &[&str], extra: usize) -> (Server, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &d)).collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tailcast"))
            .arg("serve")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tailcast");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let errors = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in errors.lines() {
                let Ok(line) = line else { return };
                eprintln!("[tailcast] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut lines = Vec::new();
        for _ in 0..=extra {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            lines.push(line.trim().to_string());
        }
        let addr = lines[0]
            .strip_prefix("tailcast listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {:?}", lines[0]))
            .to_string();
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        let server = Server {
            child,
            addr,
            dir,
            stderr,
        };
        (server, lines.split_off(1))
    }
}

/// Runs `tailcast serve --addr 127.0.0.1:0 ARGS`, expected to refuse to
/// start, and returns its output (stdout and stderr captured) once it has
/// exited; a process still running after [`DEADLINE`] is killed and fails
/// the test.
pub fn serve_refused(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tailcast"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the process did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
