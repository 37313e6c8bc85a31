//! `tailcast-load`: the load generator of tailcast's benchmark.
//!
//! Modes, all against a server on this machine (non-loopback targets
//! are refused), every loop bounded in count and time:
//! - `fanout`: N SSE subscribers on one channel, one publisher POSTing
//!   numbered, timestamped events at a given rate (each POST sent when the
//!   previous one was answered). Reports deliveries/s, loss, duplicates,
//!   reordering, publish→receive latency and server memory.
//! - `follow`: the same subscribers on a log stream, while this tool
//!   appends numbered, timestamped lines to the followed file.
//! - `idle`: N SSE connections that receive nothing; reports the server's
//!   resident memory per connection (`VmRSS` before and after).
//! - `ingest`: one client pushing batches of numbered log records (Loki
//!   protobuf, OTLP protobuf or syslog over TCP) as fast as answers come,
//!   while SSE subscribers on the records' channel check that each one
//!   arrives once and in order. Reports records/s committed and delivered.
//!
//! Subscribers are raw tokio `TcpStream`s with a hand-written HTTP head,
//! chunked and SSE decoder (see [`sse`]), one lightweight task each on a
//! single-threaded runtime, so one core drives 19,000 streams. An
//! `https://` target (with `--ca`) puts TLS under them; `--h2-streams N`
//! makes them HTTP/2 streams, N per connection (see [`transport`]). The
//! publisher and the file writer run on their own OS thread so that their
//! pacing does not queue behind thousands of subscriber tasks.

mod http;
mod ingest;
mod sse;
mod stats;
mod transport;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::sync::{watch, Notify, Semaphore};

use crate::http::Target;
use crate::stats::{Histogram, Latency, Tracker};

/// Longest a run may take in any phase that waits on the server.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

#[derive(Parser)]
#[command(
    name = "tailcast-load",
    version,
    about = "Loopback load generator for SSE servers (tailcast, Nchan, FastAPI)"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Subscribers on a channel, one publisher at a given rate.
    Fanout(FanoutArgs),
    /// Subscribers on a log stream, this tool appending to the file.
    Follow(FollowArgs),
    /// Idle SSE connections: server memory per connection.
    Idle(IdleArgs),
    /// Concurrent publishers, no subscriber: acknowledged publishes per
    /// second and their latency (e.g. `--data-dir` with `--fsync always`).
    Publish(PublishArgs),
    /// One log shipper pushing batches at max rate, subscribers receiving
    /// every record.
    Ingest(IngestArgs),
}

#[derive(Args, Clone)]
struct IngestArgs {
    #[command(flatten)]
    common: Common,
    /// Protocol the records are pushed with.
    #[arg(long, value_enum)]
    protocol: ingest::Protocol,
    /// Records per request (per write, for syslog).
    #[arg(long, default_value_t = 1000)]
    batch: u64,
    /// Records in all.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Bytes per log line (at least the record's number).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// The server's `--syslog-tcp` address (loopback), for syslog-tcp.
    #[arg(long)]
    syslog: Option<String>,
    /// Subscribers on `--sub-path`, each of which must receive every record.
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// Seconds to wait for the last deliveries after the last push.
    #[arg(long, default_value_t = 60.0)]
    drain_timeout: f64,
    /// Request bodies built before the first push (all of them when there
    /// are no more batches); a builder thread makes the rest during the
    /// run, this many ahead.
    #[arg(long, default_value_t = 4096)]
    prebuild: usize,
}

#[derive(Args, Clone)]
struct PublishArgs {
    /// Server base URL, loopback only, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    target: String,
    /// Path events are POSTed to.
    #[arg(long, default_value = "/channels/bench")]
    pub_path: String,
    /// Publishers, each one keep-alive connection on its own thread.
    #[arg(long, default_value_t = 64)]
    publishers: usize,
    /// Events in all.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Bytes of data per event.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Label copied into the report.
    #[arg(long, default_value = "")]
    label: String,
}

/// The JSON report of a `publish` run.
#[derive(Debug, Serialize)]
struct PublishReport {
    label: String,
    mode: &'static str,
    publishers: usize,
    events: u64,
    errors: u64,
    seconds: f64,
    /// Publishes answered 200 per second.
    acknowledged_per_s: f64,
    latency: Latency,
}

/// Runs `publish` mode: every publisher thread posts its share of the
/// events as fast as answers come.
fn publish_run(a: &PublishArgs) -> Result<PublishReport> {
    if a.publishers == 0 || a.events == 0 {
        bail!("--publishers and --events must be at least 1");
    }
    let target = Target::parse(&a.target, None)?;
    let started = Instant::now();
    let threads: Vec<_> = (0..a.publishers)
        .map(|p| {
            let target = target.clone();
            let path = a.pub_path.clone();
            let share = a.events / a.publishers as u64
                + u64::from((p as u64) < a.events % a.publishers as u64);
            let size = a.size;
            std::thread::spawn(move || -> Result<(Histogram, u64)> {
                let mut publisher = http::Publisher::connect(&target)?;
                let mut histogram = Histogram::default();
                let mut errors = 0;
                for i in 0..share {
                    let mut data = format!("{p} {i} ");
                    let pad = size.saturating_sub(data.len());
                    data.push_str(&"x".repeat(pad));
                    let sent = Instant::now();
                    if publisher.post(&path, data.as_bytes())? != 200 {
                        errors += 1;
                    }
                    histogram.record(sent.elapsed().as_micros() as u64);
                }
                Ok((histogram, errors))
            })
        })
        .collect();
    let mut all = Histogram::default();
    let mut errors = 0;
    for t in threads {
        let (h, e) = t.join().map_err(|_| anyhow!("a publisher panicked"))??;
        all.merge(&h);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(PublishReport {
        label: a.label.clone(),
        mode: "publish",
        publishers: a.publishers,
        events: a.events,
        errors,
        seconds,
        acknowledged_per_s: (a.events - errors) as f64 / seconds,
        latency: all.summary(),
    })
}

#[derive(Args, Clone)]
struct Common {
    /// Server base URL, loopback only, e.g. http://127.0.0.1:8000 (or
    /// https://localhost:8443 with --ca).
    #[arg(long)]
    target: String,
    /// PEM CA certificate that signed an https:// target's certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Subscribe over HTTP/2 with this many streams per connection (TLS by
    /// ALPN, or h2c with prior knowledge on http://); 0: HTTP/1.1.
    #[arg(long, default_value_t = 0)]
    h2_streams: usize,
    /// SSE path to subscribe to.
    #[arg(long, default_value = "/realtime/bench")]
    sub_path: String,
    /// Server process ids whose VmRSS is summed (repeatable).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Label copied into the report (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
    /// Connections opened at the same time.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Read buffer per subscriber, bytes.
    #[arg(long, default_value_t = 8192)]
    buf_size: usize,
    /// Also write the JSON report to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Exit non-zero on any loss, duplicate, reordering or error.
    #[arg(long)]
    check: bool,
}

#[derive(Args, Clone)]
struct LoadArgs {
    /// Number of subscribers.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Number of events.
    #[arg(long, default_value_t = 1000)]
    events: u64,
    /// Events per second asked; 0 means as fast as answers come.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Bytes of data per event (at least the number and timestamp).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Seconds to wait for the last deliveries after the last event.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,
    /// Sample the server's RSS every this many seconds (0: off).
    #[arg(long, default_value_t = 0.0)]
    rss_every: f64,
}

#[derive(Args, Clone)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    load: LoadArgs,
    /// Path events are POSTed to.
    #[arg(long, default_value = "/channels/bench")]
    pub_path: String,
    /// Server the events are POSTed to, when not `--target` (another node
    /// of a Redis cluster: publish on one, subscribe on the other).
    #[arg(long)]
    pub_target: Option<String>,
}

#[derive(Args, Clone)]
struct FollowArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    load: LoadArgs,
    /// The file the server follows; lines are appended to it.
    #[arg(long)]
    file: PathBuf,
}

#[derive(Args, Clone)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Number of idle connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Seconds to wait after connecting before reading the server's RSS.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
}

fn main() {
    let cli = Cli::parse();
    if let Mode::Publish(a) = &cli.mode {
        // Plain threads: no runtime needed.
        match publish_run(a).and_then(|r| Ok((serde_json::to_string_pretty(&r)?, r.errors))) {
            Ok((text, errors)) => {
                println!("{text}");
                std::process::exit(i32::from(errors > 0));
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = runtime
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(cli.mode)));
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Raises the soft open-files limit to the hard limit; returns the new
/// soft limit.
fn raise_nofile() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("warning: cannot raise the open files limit: {e}");
            rlimit::Resource::NOFILE
                .get()
                .map(|(soft, _)| soft)
                .unwrap_or(0)
        }
    }
}

async fn run(mode: Mode) -> Result<bool> {
    let nofile = raise_nofile();

    let (report, check, json_out) = match mode {
        Mode::Fanout(a) => {
            let source = Source::Publish(a.pub_path.clone(), a.pub_target.clone());
            let r = load(&a.common, &a.load, source, nofile).await?;
            (r, a.common.check, a.common.json_out)
        }
        Mode::Follow(a) => {
            let r = load(&a.common, &a.load, Source::File(a.file.clone()), nofile).await?;
            (r, a.common.check, a.common.json_out)
        }
        Mode::Idle(a) => {
            let r = idle(&a, nofile).await?;
            (r, a.common.check, a.common.json_out)
        }
        Mode::Ingest(a) => {
            let r = ingest_run(&a, nofile).await?;
            let text = serde_json::to_string_pretty(&r)?;
            println!("{text}");
            if let Some(path) = &a.common.json_out {
                std::fs::write(path, format!("{text}\n"))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if !r.problems.is_empty() {
                eprintln!("problems: {}", r.problems.join("; "));
            }
            return Ok(r.problems.is_empty() || !a.common.check);
        }
        Mode::Publish(_) => unreachable!("publish runs without the runtime"),
    };
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(path) = json_out {
        std::fs::write(&path, format!("{text}\n"))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let ok = report.problems.is_empty();
    if !ok {
        eprintln!("problems: {}", report.problems.join("; "));
    }
    Ok(ok || !check)
}

/// Where events come from.
enum Source {
    /// POSTed to this path (of this other server, if given).
    Publish(String, Option<String>),
    /// Appended to this file.
    File(PathBuf),
}

/// The JSON report of one run.
#[derive(Debug, Default, Serialize)]
struct Report {
    label: String,
    mode: &'static str,
    target: String,
    sub_path: String,
    subscribers: usize,
    events: u64,
    rate_asked: f64,
    event_bytes: usize,
    /// Soft open-files limit after raising it.
    nofile_limit: u64,
    connect_s: f64,
    /// Events the source produced (POSTs answered 2xx, lines written).
    published: u64,
    publish_errors: u64,
    /// Events per second the source reached.
    rate_achieved: f64,
    /// Round trip of one POST (the publisher's view).
    publish_latency: Option<Latency>,
    expected_deliveries: u64,
    deliveries: u64,
    /// Deliveries over the time from the first publish to the last delivery.
    deliveries_per_s: f64,
    lost: u64,
    duplicates: u64,
    reordered: u64,
    foreign: u64,
    resets: u64,
    /// Subscribers whose stream failed or ended early.
    subscriber_errors: u64,
    /// Publish (or write) to receive latency.
    latency: Option<Latency>,
    rss_before_kib: Option<u64>,
    rss_connected_kib: Option<u64>,
    rss_end_kib: Option<u64>,
    /// (rss_connected - rss_before) / connections.
    rss_per_connection_kib: Option<f64>,
    /// CPU seconds the server processes used from the first event to the
    /// end of the drain (both cores' worth: compare with `load_s`).
    server_cpu_s: Option<f64>,
    /// CPU seconds this load tool used over the same time.
    load_cpu_s: Option<f64>,
    /// Wall-clock seconds from the first event to the end of the drain.
    load_s: f64,
    /// (seconds since start, KiB) samples taken during the load.
    rss_samples: Vec<(f64, u64)>,
    /// (max - min) / min of the samples after the first 10 %, in percent.
    rss_drift_pct: Option<f64>,
    /// Why the run is not clean (empty when it is).
    problems: Vec<String>,
}

/// State shared by all subscriber tasks of a run.
struct Shared {
    base: Instant,
    latencies: Mutex<Histogram>,
    connected: AtomicUsize,
    complete: AtomicUsize,
    progress: Notify,
    deliveries: AtomicU64,
    /// Microseconds since `base` of the newest delivery.
    last_delivery_us: AtomicU64,
    connect_slots: Semaphore,
    /// `ingest` mode: when each batch was sent.
    clock: Option<IngestClock>,
}

/// When each batch of an `ingest` run was sent, so that a subscriber can
/// tell a record's latency from its number alone.
struct IngestClock {
    batch: u64,
    /// Microseconds since `base`, per batch.
    sent_us: Vec<AtomicU64>,
}

/// The sequence number and send time of an event's data: `"<seq> <micros>
/// ..."` (fanout, follow), or in `ingest` mode the JSON object of an
/// ingested record whose `line` starts with `"<seq> "`.
fn parse_event(shared: &Shared, data: &[u8]) -> Option<(u64, u64)> {
    let Some(clock) = &shared.clock else {
        return parse_data(data);
    };
    const KEY: &[u8] = b"\"line\":\"";
    let at = data.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let line = &data[at..];
    let end = line.iter().position(|b| !b.is_ascii_digit())?;
    let seq: u64 = std::str::from_utf8(&line[..end]).ok()?.parse().ok()?;
    let sent = clock
        .sent_us
        .get(usize::try_from(seq / clock.batch).ok()?)?
        .load(Ordering::Acquire);
    Some((seq, sent))
}

/// Parses `"<seq> <micros> ..."`.
fn parse_data(data: &[u8]) -> Option<(u64, u64)> {
    let mut parts = data.split(|&b| b == b' ');
    let num = |p: Option<&[u8]>| std::str::from_utf8(p?).ok()?.parse().ok();
    Some((num(parts.next())?, num(parts.next())?))
}

/// How a subscriber gets its stream.
enum Open {
    /// Its own HTTP/1.1 connection.
    Http1 { target: Target, path: String },
    /// A stream of an HTTP/2 connection opened by its group.
    Http2(tokio::sync::oneshot::Receiver<Result<h2::RecvStream>>),
}

/// Where a subscriber reads from.
enum Reader {
    Http1(transport::Conn),
    Http2(h2::RecvStream),
}

/// One subscriber: connects, then reads until it has every expected event
/// or `stop` is set.
async fn subscriber(
    shared: Arc<Shared>,
    open: Open,
    expected: u64,
    buf_size: usize,
    mut stop: watch::Receiver<bool>,
) -> Result<Tracker> {
    let (mut reader, chunked, rest) = match open {
        Open::Http1 { target, path } => {
            let permit = shared.connect_slots.acquire().await?;
            let opened = tokio::time::timeout(
                Duration::from_secs(60),
                http::open_sse(&target, &path, 1024),
            )
            .await;
            drop(permit);
            let (stream, head, rest) = match opened {
                Ok(r) => r?,
                Err(_) => bail!("no response head within 60 s"),
            };
            (Reader::Http1(stream), head.chunked, rest)
        }
        Open::Http2(opened) => {
            let body = opened.await.map_err(|_| anyhow!("HTTP/2 group failed"))??;
            (Reader::Http2(body), false, Vec::new())
        }
    };
    shared.connected.fetch_add(1, Ordering::AcqRel);
    shared.progress.notify_one();
    let mut tracker = Tracker::new(expected);
    let mut dechunker = chunked.then(sse::Dechunker::default);
    let mut parser = sse::SseParser::default();
    let mut local: Vec<u64> = Vec::with_capacity(64);
    let mut buf = vec![0u8; buf_size.max(512)];
    let mut pending = rest;
    let mut ended = false;
    loop {
        if !pending.is_empty() {
            let mut on_event = |ty: &[u8], data: &[u8]| {
                if ty.is_empty() || ty == b"message" {
                    match parse_event(&shared, data) {
                        Some((seq, sent_us)) => {
                            let now = shared.base.elapsed().as_micros() as u64;
                            local.push(now.saturating_sub(sent_us));
                            tracker.record(seq);
                        }
                        None => tracker.foreign += 1,
                    }
                } else if ty == b"reset" {
                    tracker.resets += 1;
                }
            };
            let mut feed_sse = |bytes: &[u8]| parser.feed(bytes, &mut on_event);
            let mut result = Ok(());
            match dechunker.as_mut() {
                Some(d) => {
                    ended = d
                        .feed(&pending, &mut |b| {
                            if result.is_ok() {
                                result = feed_sse(b);
                            }
                        })
                        .map_err(|e| anyhow!(e))?;
                }
                None => result = feed_sse(&pending),
            }
            result.map_err(|e| anyhow!(e))?;
            pending.clear();
            if !local.is_empty() {
                let now = shared.base.elapsed().as_micros() as u64;
                shared
                    .deliveries
                    .fetch_add(local.len() as u64, Ordering::Relaxed);
                shared.last_delivery_us.fetch_max(now, Ordering::Relaxed);
                let mut hist = shared.latencies.lock().expect("histogram lock");
                for &l in &local {
                    hist.record(l);
                }
                drop(hist);
                local.clear();
            }
            if expected > 0 && tracker.complete() {
                shared.complete.fetch_add(1, Ordering::AcqRel);
                shared.progress.notify_one();
                return Ok(tracker);
            }
        }
        if ended {
            bail!("the server ended the stream");
        }
        let read = async {
            match &mut reader {
                Reader::Http1(stream) => {
                    let n = stream.read(&mut buf).await?;
                    pending.extend_from_slice(&buf[..n]);
                    Ok::<usize, anyhow::Error>(n)
                }
                Reader::Http2(body) => transport::read_h2(body, &mut pending).await,
            }
        };
        tokio::select! {
            _ = stop.changed() => return Ok(tracker),
            read = read => {
                if read? == 0 {
                    bail!("the server closed the stream");
                }
            }
        }
    }
}

/// Opens `n` subscribers and waits until all have their response head.
async fn connect_all(
    shared: &Arc<Shared>,
    common: &Common,
    n: usize,
    expected: u64,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<Result<Tracker>>>> {
    let target = Target::parse(&common.target, common.ca.as_deref())?;
    let mut opens = Vec::with_capacity(n);
    if common.h2_streams == 0 {
        for _ in 0..n {
            opens.push(Open::Http1 {
                target: target.clone(),
                path: common.sub_path.clone(),
            });
        }
    } else {
        // One task per HTTP/2 connection opens its streams and hands each
        // body to its subscriber.
        let mut left = n;
        while left > 0 {
            let count = left.min(common.h2_streams);
            left -= count;
            let mut senders = Vec::with_capacity(count);
            for _ in 0..count {
                let (tx, rx) = tokio::sync::oneshot::channel();
                senders.push(tx);
                opens.push(Open::Http2(rx));
            }
            let (shared, target, path) = (shared.clone(), target.clone(), common.sub_path.clone());
            tokio::spawn(async move {
                let permit = shared.connect_slots.acquire().await;
                let opened = tokio::time::timeout(
                    Duration::from_secs(60),
                    transport::open_h2_streams(&target, &path, count),
                )
                .await
                .unwrap_or_else(|_| Err(anyhow!("HTTP/2 streams not open within 60 s")));
                drop(permit);
                match opened {
                    Ok(bodies) => {
                        for (tx, body) in senders.into_iter().zip(bodies) {
                            let _ = tx.send(Ok(body));
                        }
                    }
                    Err(e) => {
                        let e = format!("{e:#}");
                        for tx in senders {
                            let _ = tx.send(Err(anyhow!("{e}")));
                        }
                    }
                }
            });
        }
    }
    let handles: Vec<_> = opens
        .into_iter()
        .map(|open| {
            tokio::spawn(subscriber(
                shared.clone(),
                open,
                expected,
                common.buf_size,
                stop.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + PHASE_LIMIT.min(Duration::from_secs(30 + n as u64 / 100));
    while shared.connected.load(Ordering::Acquire) < n {
        if let Some(i) = handles.iter().position(|h| h.is_finished()) {
            // A subscriber ended before everyone connected: report why.
            let _ = i;
            let failed = handles
                .into_iter()
                .find(|h| h.is_finished())
                .expect("finished handle");
            let err = match failed.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => anyhow!("a subscriber stopped early"),
                Err(e) => anyhow!(e),
            };
            return Err(err.context(format!(
                "connecting subscribers ({} of {n} connected)",
                shared.connected.load(Ordering::Acquire)
            )));
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} subscribers connected in time",
                shared.connected.load(Ordering::Acquire)
            );
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), shared.progress.notified()).await;
    }
    Ok(handles)
}

fn new_shared(concurrency: usize, clock: Option<IngestClock>) -> Arc<Shared> {
    Arc::new(Shared {
        base: Instant::now(),
        latencies: Mutex::new(Histogram::default()),
        connected: AtomicUsize::new(0),
        complete: AtomicUsize::new(0),
        progress: Notify::new(),
        deliveries: AtomicU64::new(0),
        last_delivery_us: AtomicU64::new(0),
        connect_slots: Semaphore::new(concurrency.max(1)),
        clock,
    })
}

fn rss(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    match stats::total_rss_kib(pids) {
        Ok(k) => Some(k),
        Err(e) => {
            eprintln!("warning: {e:#}");
            None
        }
    }
}

/// Summed CPU seconds of `pids`; `None` when there are none or on error.
fn cpu(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| stats::cpu_seconds(p).ok()).sum()
}

/// What the source thread reports.
struct SourceResult {
    sent: u64,
    errors: u64,
    start_us: u64,
    end_us: u64,
    rtt: Histogram,
    error: Option<String>,
}

/// Builds the data of event `seq`: `"<seq> <micros since base> xxx…"`.
fn event_data(base: Instant, seq: u64, size: usize) -> Vec<u8> {
    let mut data = format!("{seq} {}", base.elapsed().as_micros()).into_bytes();
    if data.len() + 1 < size {
        data.push(b' ');
        data.resize(size, b'x');
    }
    data
}

/// Runs the publisher or file writer on the calling (dedicated) thread.
fn produce(source: &Source, target: &Target, base: Instant, load: &LoadArgs) -> SourceResult {
    let mut result = SourceResult {
        sent: 0,
        errors: 0,
        start_us: base.elapsed().as_micros() as u64,
        end_us: 0,
        rtt: Histogram::default(),
        error: None,
    };
    let start = Instant::now();
    let interval = (load.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / load.rate));
    let outcome = (|| -> Result<()> {
        enum Sink {
            Post(http::Publisher, String),
            File(std::fs::File),
        }
        let mut sink = match source {
            Source::Publish(path, other) => {
                let target = match other {
                    // Another node (bench/redis.sh): plain HTTP on loopback.
                    Some(url) => Target::parse(url, None)?,
                    None => target.clone(),
                };
                Sink::Post(http::Publisher::connect(&target)?, path.clone())
            }
            Source::File(path) => Sink::File(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open {} for appending", path.display()))?,
            ),
        };
        for seq in 0..load.events {
            if let Some(interval) = interval {
                let due = start + interval.mul_f64(seq as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            let t = Instant::now();
            match &mut sink {
                Sink::Post(publisher, path) => {
                    let data = event_data(base, seq, load.size);
                    let status = publisher.post(path, &data)?;
                    if !(200..300).contains(&status) {
                        result.errors += 1;
                        if result.errors > 10 {
                            bail!("publish answered {status} (more than 10 errors)");
                        }
                        continue;
                    }
                }
                Sink::File(file) => {
                    let mut line = event_data(base, seq, load.size);
                    line.push(b'\n');
                    file.write_all(&line)?;
                }
            }
            result.rtt.record(t.elapsed().as_micros() as u64);
            result.sent += 1;
        }
        Ok(())
    })();
    result.end_us = base.elapsed().as_micros() as u64;
    if let Err(e) = outcome {
        result.error = Some(format!("{e:#}"));
    }
    result
}

async fn load(common: &Common, load: &LoadArgs, source: Source, nofile: u64) -> Result<Report> {
    if load.events == 0 || load.subscribers == 0 {
        bail!("--events and --subscribers must be at least 1");
    }
    let target = Target::parse(&common.target, common.ca.as_deref())?;
    let shared = new_shared(common.connect_concurrency, None);
    let (stop_tx, stop) = watch::channel(false);
    let mut report = Report {
        label: common.label.clone(),
        mode: match source {
            Source::Publish(..) => "fanout",
            Source::File(_) => "follow",
        },
        target: common.target.clone(),
        sub_path: common.sub_path.clone(),
        subscribers: load.subscribers,
        events: load.events,
        rate_asked: load.rate,
        event_bytes: load.size,
        nofile_limit: nofile,
        expected_deliveries: load.events * load.subscribers as u64,
        ..Report::default()
    };
    report.rss_before_kib = rss(&common.server_pids);
    let t = Instant::now();
    let handles = connect_all(&shared, common, load.subscribers, load.events, &stop).await?;
    report.connect_s = t.elapsed().as_secs_f64();
    // Let the server settle its per-connection state before measuring.
    tokio::time::sleep(Duration::from_millis(300)).await;
    report.rss_connected_kib = rss(&common.server_pids);

    let cpu_start = (
        cpu(&common.server_pids),
        cpu(&[std::process::id()]),
        Instant::now(),
    );
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let base = shared.base;
    let load_copy = load.clone();
    let target_copy = target.clone();
    let producer = std::thread::Builder::new()
        .name("source".into())
        .spawn(move || {
            let r = produce(&source, &target_copy, base, &load_copy);
            let _ = done_tx.send(r);
        })
        .context("cannot start the source thread")?;

    // Wait for the source, sampling memory if asked.
    let every = (load.rss_every > 0.0).then(|| Duration::from_secs_f64(load.rss_every));
    let expected_s = if load.rate > 0.0 {
        load.events as f64 / load.rate
    } else {
        0.0
    };
    // A peer whose publish waits for its fan-out can take far longer than
    // the asked rate implies; allow that, within the drain time.
    let source_deadline = Instant::now()
        + Duration::from_secs_f64(expected_s * 2.0 + 120.0 + load.drain_timeout.clamp(0.0, 600.0))
            .min(PHASE_LIMIT * 2);
    let mut next_sample = every.map(|e| Instant::now() + e);
    let produced = loop {
        let wait = next_sample.map_or(Duration::from_millis(200), |t| {
            t.saturating_duration_since(Instant::now())
        });
        match tokio::time::timeout(wait.min(Duration::from_millis(200)), &mut done_rx).await {
            Ok(r) => break r.map_err(|_| anyhow!("the source thread died"))?,
            Err(_) => {
                if let (Some(at), Some(every)) = (next_sample, every) {
                    if Instant::now() >= at {
                        if let Some(k) = rss(&common.server_pids) {
                            report
                                .rss_samples
                                .push((shared.base.elapsed().as_secs_f64(), k));
                        }
                        next_sample = Some(at + every);
                    }
                }
                if Instant::now() > source_deadline {
                    let _ = stop_tx.send(true);
                    bail!("the source did not finish in time");
                }
            }
        }
    };
    let _ = producer.join();

    // Drain: until every subscriber is complete, or no time is left.
    let drain_deadline = Instant::now() + Duration::from_secs_f64(load.drain_timeout);
    while shared.complete.load(Ordering::Acquire) < load.subscribers
        && handles.iter().any(|h| !h.is_finished())
        && Instant::now() < drain_deadline
    {
        let _ = tokio::time::timeout(Duration::from_millis(50), shared.progress.notified()).await;
    }
    report.rss_end_kib = rss(&common.server_pids);
    report.load_s = round2(cpu_start.2.elapsed().as_secs_f64());
    if let (Some(a), Some(b)) = (cpu_start.0, cpu(&common.server_pids)) {
        report.server_cpu_s = Some(round2(b - a));
    }
    if let (Some(a), Some(b)) = (cpu_start.1, cpu(&[std::process::id()])) {
        report.load_cpu_s = Some(round2(b - a));
    }
    let _ = stop_tx.send(true);

    let mut subscriber_errors = Vec::new();
    for h in handles {
        match h.await {
            Ok(Ok(t)) => {
                report.lost += load.events - t.unique;
                report.duplicates += t.duplicates;
                report.reordered += t.reordered;
                report.foreign += t.foreign;
                report.resets += t.resets;
            }
            Ok(Err(e)) => {
                report.lost += load.events;
                subscriber_errors.push(format!("{e:#}"));
            }
            Err(e) => {
                report.lost += load.events;
                subscriber_errors.push(e.to_string());
            }
        }
    }
    report.subscriber_errors = subscriber_errors.len() as u64;
    report.published = produced.sent;
    report.publish_errors = produced.errors;
    let source_s = (produced.end_us.saturating_sub(produced.start_us)) as f64 / 1e6;
    report.rate_achieved = round2(produced.sent as f64 / source_s.max(1e-9));
    report.publish_latency = Some(produced.rtt.summary());
    report.deliveries = shared.deliveries.load(Ordering::Relaxed);
    let span_s = shared
        .last_delivery_us
        .load(Ordering::Relaxed)
        .saturating_sub(produced.start_us) as f64
        / 1e6;
    report.deliveries_per_s = round2(report.deliveries as f64 / span_s.max(1e-9));
    report.latency = Some(shared.latencies.lock().expect("histogram lock").summary());
    if let (Some(before), Some(after)) = (report.rss_before_kib, report.rss_connected_kib) {
        report.rss_per_connection_kib = Some(round2(
            (after as f64 - before as f64) / load.subscribers as f64,
        ));
    }
    report.rss_drift_pct = drift(&report.rss_samples);

    if let Some(e) = produced.error {
        report.problems.push(format!("source: {e}"));
    }
    if report.publish_errors > 0 {
        report
            .problems
            .push(format!("{} publish errors", report.publish_errors));
    }
    for (what, n) in [
        ("lost", report.lost),
        ("duplicated", report.duplicates),
        ("reordered", report.reordered),
        ("foreign", report.foreign),
        ("reset", report.resets),
    ] {
        if n > 0 {
            report.problems.push(format!("{n} deliveries {what}"));
        }
    }
    if let Some(first) = subscriber_errors.first() {
        report.problems.push(format!(
            "{} subscriber errors, first: {first}",
            subscriber_errors.len()
        ));
    }
    eprintln!(
        "{} {}: {} subs x {} events @ {} (reached {}/s): {:.0} deliveries/s, lost {}, dup {}, reorder {}, latency p50 {} ms p99 {} ms, CPU server {:?} s load {:?} s of {} s",
        report.label,
        report.mode,
        report.subscribers,
        report.events,
        if load.rate > 0.0 { format!("{}/s", load.rate) } else { "max".into() },
        report.rate_achieved,
        report.deliveries_per_s,
        report.lost,
        report.duplicates,
        report.reordered,
        report.latency.as_ref().map_or(0.0, |l| l.p50_ms),
        report.latency.as_ref().map_or(0.0, |l| l.p99_ms),
        report.server_cpu_s,
        report.load_cpu_s,
        report.load_s,
    );
    Ok(report)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// (max - min) / min in percent of the samples after the first 10 %.
fn drift(samples: &[(f64, u64)]) -> Option<f64> {
    let steady = &samples[samples.len() / 10..];
    let min = steady.iter().map(|s| s.1).min()?;
    let max = steady.iter().map(|s| s.1).max()?;
    Some(round2((max - min) as f64 * 100.0 / min.max(1) as f64))
}

async fn idle(args: &IdleArgs, nofile: u64) -> Result<Report> {
    let common = &args.common;
    let n = args.connections;
    if n == 0 {
        bail!("--connections must be at least 1");
    }
    let shared = new_shared(common.connect_concurrency, None);
    let (stop_tx, stop) = watch::channel(false);
    let mut report = Report {
        label: common.label.clone(),
        mode: "idle",
        target: common.target.clone(),
        sub_path: common.sub_path.clone(),
        subscribers: n,
        nofile_limit: nofile,
        ..Report::default()
    };
    report.rss_before_kib = rss(&common.server_pids);
    let t = Instant::now();
    let handles = connect_all(&shared, common, n, 0, &stop).await?;
    report.connect_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(args.settle.clamp(0.0, 600.0))).await;
    report.rss_connected_kib = rss(&common.server_pids);
    report.rss_end_kib = report.rss_connected_kib;
    let alive = handles.iter().filter(|h| !h.is_finished()).count();
    if alive < n {
        report
            .problems
            .push(format!("{} of {n} connections ended while idle", n - alive));
    }
    report.subscriber_errors = (n - alive) as u64;
    let _ = stop_tx.send(true);
    for h in handles {
        let _ = h.await;
    }
    if let (Some(before), Some(after)) = (report.rss_before_kib, report.rss_connected_kib) {
        report.rss_per_connection_kib = Some(round2((after as f64 - before as f64) / n as f64));
    }
    eprintln!(
        "{} idle: {n} connections, server RSS {:?} -> {:?} KiB, {:?} KiB per connection",
        report.label,
        report.rss_before_kib,
        report.rss_connected_kib,
        report.rss_per_connection_kib
    );
    Ok(report)
}

/// The JSON report of an `ingest` run.
#[derive(Debug, Default, Serialize)]
struct IngestReport {
    label: String,
    mode: &'static str,
    protocol: &'static str,
    target: String,
    sub_path: String,
    subscribers: usize,
    records: u64,
    batch: u64,
    line_bytes: usize,
    /// Seconds spent building the request bodies before the run.
    build_s: f64,
    /// Mean request body size, bytes (as sent: compressed for Loki).
    body_bytes: u64,
    /// Records the server answered 2xx for (syslog: written to the socket).
    committed: u64,
    /// Requests answered 429 or 503 and sent again.
    retries: u64,
    /// Other non-2xx answers.
    push_errors: u64,
    /// Records answered per second, first request to last answer (syslog:
    /// written into the socket per second, which is no commit).
    committed_per_s: f64,
    /// Round trip of one request (HTTP) or one write (syslog).
    push_latency: Option<Latency>,
    /// Records each subscriber received per second, first push to last
    /// delivery: the end-to-end rate (for syslog the rate to compare with
    /// its target, as syslog has no answers).
    delivered_per_s: f64,
    deliveries: u64,
    lost: u64,
    duplicates: u64,
    reordered: u64,
    foreign: u64,
    resets: u64,
    subscriber_errors: u64,
    /// From the send of a record's batch to its delivery.
    latency: Option<Latency>,
    rss_before_kib: Option<u64>,
    rss_connected_kib: Option<u64>,
    rss_end_kib: Option<u64>,
    /// CPU seconds the server used from the first push to the end of the
    /// drain.
    server_cpu_s: Option<f64>,
    /// CPU seconds this tool used over the same time.
    load_cpu_s: Option<f64>,
    /// Wall-clock seconds from the first push to the end of the drain.
    load_s: f64,
    /// Server CPU microseconds per record.
    server_cpu_us_per_record: Option<f64>,
    problems: Vec<String>,
}

/// What the pushing thread reports.
struct PushResult {
    committed: u64,
    retries: u64,
    errors: u64,
    start_us: u64,
    end_us: u64,
    rtt: Histogram,
    error: Option<String>,
}

/// Pushes every batch, each request sent when the previous one was
/// answered; runs on its own thread.
fn push_all(
    a: &IngestArgs,
    target: &Target,
    bodies: &std::sync::mpsc::Receiver<Vec<u8>>,
    shared: &Shared,
) -> PushResult {
    let clock = shared.clock.as_ref().expect("ingest clock");
    let mut result = PushResult {
        committed: 0,
        retries: 0,
        errors: 0,
        start_us: shared.base.elapsed().as_micros() as u64,
        end_us: 0,
        rtt: Histogram::default(),
        error: None,
    };
    let batches = a.records.div_ceil(a.batch);
    let deadline = Instant::now() + PHASE_LIMIT;
    let outcome = (|| -> Result<()> {
        match a.protocol.http() {
            Some((path, content_type)) => {
                let mut publisher = http::Publisher::connect(target)?;
                for b in 0..batches as usize {
                    let body = bodies.recv().context("the body builder stopped")?;
                    let count = a.batch.min(a.records - b as u64 * a.batch);
                    loop {
                        if Instant::now() > deadline {
                            bail!("pushing took longer than {PHASE_LIMIT:?}");
                        }
                        let t = Instant::now();
                        clock.sent_us[b]
                            .store(shared.base.elapsed().as_micros() as u64, Ordering::Release);
                        let status = publisher.post_as(path, content_type, &body)?;
                        result.rtt.record(t.elapsed().as_micros() as u64);
                        match status {
                            200..=299 => {
                                result.committed += count;
                                break;
                            }
                            429 | 503 => {
                                // The hub cannot take them now: retry, as a shipper does.
                                result.retries += 1;
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            _ => {
                                result.errors += 1;
                                bail!("{path} answered {status}");
                            }
                        }
                    }
                }
            }
            None => {
                let addr = a
                    .syslog
                    .as_deref()
                    .ok_or_else(|| anyhow!("syslog-tcp needs --syslog ADDR"))?;
                let addr: std::net::SocketAddr = addr
                    .parse()
                    .with_context(|| format!("--syslog {addr:?} is not IP:PORT"))?;
                if !addr.ip().is_loopback() {
                    bail!("--syslog {addr} is not a loopback address");
                }
                let mut stream =
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                        .with_context(|| format!("cannot connect to syslog {addr}"))?;
                stream.set_write_timeout(Some(Duration::from_secs(30)))?;
                for b in 0..batches {
                    if Instant::now() > deadline {
                        bail!("pushing took longer than {PHASE_LIMIT:?}");
                    }
                    let count = a.batch.min(a.records - b * a.batch);
                    let buf = bodies.recv().context("the body builder stopped")?;
                    let t = Instant::now();
                    clock.sent_us[b as usize]
                        .store(shared.base.elapsed().as_micros() as u64, Ordering::Release);
                    stream.write_all(&buf)?;
                    result.rtt.record(t.elapsed().as_micros() as u64);
                    result.committed += count;
                }
                stream.flush()?;
                // Closed when dropped; the server publishes what it read.
            }
        }
        Ok(())
    })();
    result.end_us = shared.base.elapsed().as_micros() as u64;
    if let Err(e) = outcome {
        result.error = Some(format!("{e:#}"));
    }
    result
}

/// Runs `ingest` mode.
async fn ingest_run(a: &IngestArgs, nofile: u64) -> Result<IngestReport> {
    let common = &a.common;
    if a.records == 0 || a.batch == 0 || a.subscribers == 0 {
        bail!("--records, --batch and --subscribers must be at least 1");
    }
    let _ = nofile;
    let target = Target::parse(&common.target, common.ca.as_deref())?;
    let batches = a.records.div_ceil(a.batch);
    let clock = IngestClock {
        batch: a.batch,
        sent_us: (0..batches).map(|_| AtomicU64::new(0)).collect(),
    };
    let mut report = IngestReport {
        label: common.label.clone(),
        mode: "ingest",
        protocol: a.protocol.name(),
        target: common.target.clone(),
        sub_path: common.sub_path.clone(),
        subscribers: a.subscribers,
        records: a.records,
        batch: a.batch,
        line_bytes: a.size,
        ..IngestReport::default()
    };

    // Bodies are built ahead by their own thread: all of them before the
    // first push when there are at most --prebuild, so that the pushing
    // thread only sends.
    let t = Instant::now();
    let ahead = a.prebuild.max(1);
    let (body_tx, bodies) = std::sync::mpsc::sync_channel::<Vec<u8>>(ahead);
    let built = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let builder = {
        let (a, built) = (a.clone(), built.clone());
        std::thread::Builder::new()
            .name("build".into())
            .spawn(move || {
                for b in 0..batches {
                    let first = b * a.batch;
                    let body = ingest::http_body(
                        a.protocol,
                        first,
                        a.batch.min(a.records - first),
                        a.size,
                    );
                    built.1.fetch_add(body.len() as u64, Ordering::Relaxed);
                    built.0.fetch_add(1, Ordering::Release);
                    if body_tx.send(body).is_err() {
                        return;
                    }
                }
            })
            .context("cannot start the body builder")?
    };
    let prefill = batches.min(ahead as u64);
    let build_deadline = Instant::now() + PHASE_LIMIT;
    while built.0.load(Ordering::Acquire) < prefill {
        if builder.is_finished() || Instant::now() > build_deadline {
            bail!("the body builder stopped early");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    report.build_s = round2(t.elapsed().as_secs_f64());

    let shared = new_shared(common.connect_concurrency, Some(clock));
    let (stop_tx, stop) = watch::channel(false);
    report.rss_before_kib = rss(&common.server_pids);
    let handles = connect_all(&shared, common, a.subscribers, a.records, &stop).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    report.rss_connected_kib = rss(&common.server_pids);

    let cpu_start = (
        cpu(&common.server_pids),
        cpu(&[std::process::id()]),
        Instant::now(),
    );
    eprintln!(
        "ingest: sending {} records ({} bodies, {prefill} built ahead in {} s)",
        a.records,
        a.protocol.name(),
        report.build_s
    );
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let pusher = {
        let (a, target, shared) = (a.clone(), target.clone(), shared.clone());
        std::thread::Builder::new()
            .name("push".into())
            .spawn(move || {
                let r = push_all(&a, &target, &bodies, &shared);
                let _ = done_tx.send(r);
            })
            .context("cannot start the pushing thread")?
    };
    let push_deadline = Instant::now() + PHASE_LIMIT + Duration::from_secs(30);
    let pushed = loop {
        match tokio::time::timeout(Duration::from_millis(200), &mut done_rx).await {
            Ok(r) => break r.map_err(|_| anyhow!("the pushing thread died"))?,
            Err(_) if Instant::now() > push_deadline => {
                let _ = stop_tx.send(true);
                bail!("pushing did not finish in time");
            }
            Err(_) => {}
        }
    };
    let _ = pusher.join();
    let _ = builder.join();
    report.body_bytes = built.1.load(Ordering::Relaxed) / built.0.load(Ordering::Relaxed).max(1);

    let drain_deadline =
        Instant::now() + Duration::from_secs_f64(a.drain_timeout.clamp(0.0, 600.0));
    while shared.complete.load(Ordering::Acquire) < a.subscribers
        && handles.iter().any(|h| !h.is_finished())
        && Instant::now() < drain_deadline
    {
        let _ = tokio::time::timeout(Duration::from_millis(50), shared.progress.notified()).await;
    }
    report.rss_end_kib = rss(&common.server_pids);
    report.load_s = round2(cpu_start.2.elapsed().as_secs_f64());
    if let (Some(x), Some(y)) = (cpu_start.0, cpu(&common.server_pids)) {
        report.server_cpu_s = Some(round2(y - x));
        report.server_cpu_us_per_record = Some(round2((y - x) * 1e6 / a.records as f64));
    }
    if let (Some(x), Some(y)) = (cpu_start.1, cpu(&[std::process::id()])) {
        report.load_cpu_s = Some(round2(y - x));
    }
    let _ = stop_tx.send(true);

    let mut subscriber_errors = Vec::new();
    for h in handles {
        match h.await {
            Ok(Ok(t)) => {
                report.lost += a.records - t.unique;
                report.duplicates += t.duplicates;
                report.reordered += t.reordered;
                report.foreign += t.foreign;
                report.resets += t.resets;
            }
            Ok(Err(e)) => {
                report.lost += a.records;
                subscriber_errors.push(format!("{e:#}"));
            }
            Err(e) => {
                report.lost += a.records;
                subscriber_errors.push(e.to_string());
            }
        }
    }
    report.subscriber_errors = subscriber_errors.len() as u64;
    report.committed = pushed.committed;
    report.retries = pushed.retries;
    report.push_errors = pushed.errors;
    let push_s = pushed.end_us.saturating_sub(pushed.start_us) as f64 / 1e6;
    report.committed_per_s = round2(pushed.committed as f64 / push_s.max(1e-9));
    report.push_latency = Some(pushed.rtt.summary());
    report.deliveries = shared.deliveries.load(Ordering::Relaxed);
    let span_s = shared
        .last_delivery_us
        .load(Ordering::Relaxed)
        .saturating_sub(pushed.start_us) as f64
        / 1e6;
    report.delivered_per_s =
        round2(report.deliveries as f64 / a.subscribers as f64 / span_s.max(1e-9));
    report.latency = Some(shared.latencies.lock().expect("histogram lock").summary());

    if let Some(e) = pushed.error {
        report.problems.push(format!("push: {e}"));
    }
    if pushed.committed < a.records {
        report.problems.push(format!(
            "{} of {} records committed",
            pushed.committed, a.records
        ));
    }
    for (what, n) in [
        ("lost", report.lost),
        ("duplicated", report.duplicates),
        ("reordered", report.reordered),
        ("foreign", report.foreign),
        ("reset", report.resets),
    ] {
        if n > 0 {
            report.problems.push(format!("{n} deliveries {what}"));
        }
    }
    if let Some(first) = subscriber_errors.first() {
        report.problems.push(format!(
            "{} subscriber errors, first: {first}",
            subscriber_errors.len()
        ));
    }
    eprintln!(
        "{} ingest {}: {} records in batches of {} to {} subs: committed {:.0}/s, delivered {:.0}/s, lost {}, dup {}, reorder {}, latency p50 {} ms p99 {} ms, CPU server {:?} s load {:?} s of {} s",
        report.label,
        report.protocol,
        a.records,
        a.batch,
        a.subscribers,
        report.committed_per_s,
        report.delivered_per_s,
        report.lost,
        report.duplicates,
        report.reordered,
        report.latency.as_ref().map_or(0.0, |l| l.p50_ms),
        report.latency.as_ref().map_or(0.0, |l| l.p99_ms),
        report.server_cpu_s,
        report.load_cpu_s,
        report.load_s,
    );
    Ok(report)
}
