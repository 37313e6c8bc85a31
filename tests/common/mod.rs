//! Shared helpers of the integration tests: start the real `tailcast`
//! binary on 127.0.0.1 port 0, talk real HTTP, read SSE frames, poll with
//! deadlines.
#![allow(dead_code, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running `tailcast serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
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
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tailcast");
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("tailcast listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        Server { child, addr, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Sends SIGTERM and waits (up to `limit`) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
}

/// An SSE response being read.
pub struct Sse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buf: String,
    pub ended: bool,
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
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
            ended: false,
        }
    }

    /// The next frame, or `None` when the stream ended.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        self.next_frame_within(DEADLINE)
            .await
            .expect("timed out waiting for a frame")
    }

    /// The next frame; `Err` if none came within `limit`.
    pub async fn next_frame_within(&mut self, limit: Duration) -> Result<Option<Frame>, ()> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            if let Some(at) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..at + 2).collect();
                return Ok(Some(parse_frame(&raw)));
            }
            if self.ended {
                return Ok(None);
            }
            match tokio::time::timeout_at(until, self.body.next()).await {
                Err(_) => return Err(()),
                Ok(Some(Ok(chunk))) => self
                    .buf
                    .push_str(std::str::from_utf8(&chunk).expect("utf-8 from server")),
                Ok(Some(Err(_))) | Ok(None) => self.ended = true,
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

    /// Asserts that no event arrives within `limit`.
    pub async fn assert_quiet(&mut self, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame_within(left).await {
                Err(()) => return,
                Ok(None) => panic!("stream ended"),
                Ok(Some(f)) if f.data.is_some() => panic!("unexpected event {f:?}"),
                Ok(Some(_)) => {}
            }
        }
    }
}

fn parse_frame(raw: &str) -> Frame {
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
