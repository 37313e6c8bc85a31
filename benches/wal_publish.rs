//! The publish path with and without the write-ahead log of `--data-dir`
//! ([`tailcast::wal`]): what a publisher pays for the log, and how long a
//! segment roll (seal, create, retention) holds a publish up.
//!
//! `publish_only` and `publish_batch` time the memory backend's
//! synchronous publish (numbering, the log's append, insertion), with no
//! subscriber, on a memory hub and on one logging to a directory beside
//! the build (`target/`, a real disk rather than a tmpfs) with `--fsync 1s`.
//! Then, outside criterion, one run of publishes into a log whose segments
//! are the smallest allowed prints the latency of a publish that rolls a
//! segment against one that does not (median, p99, max). Run with
//! `cargo bench --bench wal_publish`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tailcast::hub::{ChannelName, Hub, HubLimits, MemoryHub};
use tailcast::wal::{FsyncPolicy, Wal, WalOptions, MIN_SEGMENT_BYTES};

/// Data of the published event: a typical log line.
const DATA: &str = "2024-01-01 12:00:00,123 - log_app - INFO - log message num: 4711";

fn limits() -> HubLimits {
    HubLimits {
        history: 1000,
        max_channels: 16,
        ..HubLimits::default()
    }
}

fn memory(hub: &Hub) -> &MemoryHub {
    match hub {
        Hub::Memory(memory) => memory,
        Hub::Redis(_) => unreachable!("the benchmark makes memory hubs"),
    }
}

/// A scratch directory on the build's disk.
fn scratch() -> tempfile::TempDir {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&base).expect("target directory");
    tempfile::tempdir_in(base).expect("scratch directory")
}

fn durable(dir: &std::path::Path, opts: WalOptions) -> Hub {
    let log = Arc::new(Wal::open(dir, opts).expect("open the log"));
    Hub::with_wal(limits(), log, 0).expect("durable hub")
}

fn publish(c: &mut Criterion) {
    let channel = ChannelName::parse("bench").expect("valid name");
    let events: Vec<(&str, &str)> = vec![("message", DATA); 100];
    let mut group = c.benchmark_group("wal_publish");
    let dir = scratch();
    let hubs = [
        ("memory", Hub::memory(limits())),
        (
            "wal_1s",
            durable(
                dir.path(),
                WalOptions::new(FsyncPolicy::Every(Duration::from_secs(1)), 1 << 30),
            ),
        ),
    ];
    for (name, hub) in &hubs {
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("publish_only", name), |b| {
            b.iter(|| {
                memory(hub)
                    .publish(&channel, "message", black_box(DATA))
                    .expect("publish")
            })
        });
        group.throughput(Throughput::Elements(100));
        group.bench_function(BenchmarkId::new("publish_batch", name), |b| {
            b.iter(|| {
                memory(hub)
                    .publish_batch(&channel, black_box(&events))
                    .expect("publish")
            })
        });
    }
    group.finish();
}

/// Publishes into a log of the smallest segments and prints what a publish
/// that rolled a segment cost against the others.
fn rolls() {
    let dir = scratch();
    let opts = WalOptions {
        fsync: FsyncPolicy::Every(Duration::from_secs(1)),
        retention_bytes: 16 * MIN_SEGMENT_BYTES,
        segment_bytes: MIN_SEGMENT_BYTES,
    };
    let hub = durable(dir.path(), opts);
    let log = hub.wal().expect("a log").clone();
    let channel = ChannelName::parse("bench").expect("valid name");
    let (mut plain, mut rolled) = (Vec::new(), Vec::new());
    for _ in 0..50_000 {
        let segments = log.info().segments;
        let first = log.info().first_seq;
        let start = Instant::now();
        memory(&hub)
            .publish(&channel, "message", DATA)
            .expect("publish");
        let took = start.elapsed();
        let info = log.info();
        if info.segments != segments || info.first_seq != first {
            rolled.push(took);
        } else {
            plain.push(took);
        }
    }
    for (what, mut times) in [("plain", plain), ("rolled", rolled)] {
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        println!(
            "wal_publish/roll {what}: n={} median={:?} p99={:?} max={:?}",
            times.len(),
            at(0.5),
            at(0.99),
            times.last().copied().unwrap_or_default()
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    publish(&mut criterion);
    criterion.final_summary();
    rolls();
}
