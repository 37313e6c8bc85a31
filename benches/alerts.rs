//! What alerting costs the publisher ([`tailcast::alerts`]): the hub's
//! commit with no rules file, and with the alert tap of 20 rules that match
//! nothing and of one rule that matches every event. The tap only hands the
//! committed events to a bounded queue (`try_send`); the rules run on the
//! alert task, on another thread, so the publisher's cost must not grow
//! with the rules. Run with `cargo bench --bench alerts`.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tailcast::hub::{ChannelName, Hub, HubLimits, MemoryHub};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Data of the published event: a typical log line.
const DATA: &str = "2024-01-01 12:00:00,123 - log_app - INFO - log message num: 4711";

/// A rules file of `rules` rules on channel `bench`; `matching` makes them
/// match every event (their webhook, on a closed loopback port, is never
/// reached within a run: notifications queue and are dropped, bounded).
fn rules_file(dir: &std::path::Path, rules: usize, matching: bool) -> std::path::PathBuf {
    let mut text = String::new();
    for i in 0..rules {
        let pattern = if matching {
            "log".to_string()
        } else {
            format!("no such text {i}")
        };
        text.push_str(&format!(
            "[[rule]]\nname = \"r{i}\"\nchannels = [\"bench\"]\nmatch = \"{pattern}\"\n\
             webhook = \"http://127.0.0.1:9/hook\"\nwindow = \"1h\"\n\n"
        ));
    }
    let path = dir.join(format!("rules-{rules}-{matching}.toml"));
    std::fs::write(&path, text).expect("write the rules");
    path
}

fn memory(hub: &Hub) -> &MemoryHub {
    match hub {
        Hub::Memory(memory) => memory,
        Hub::Redis(_) => unreachable!("the benchmark makes a memory hub"),
    }
}

fn publish_with_alerts(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let _context = runtime.enter();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let channel = ChannelName::parse("bench").expect("valid name");
    let mut group = c.benchmark_group("alerts");
    group.throughput(Throughput::Elements(1));
    for (label, rules) in [
        ("none", None),
        ("20_rules_matching_nothing", Some((20, false))),
        ("1_rule_matching_every_event", Some((1, true))),
    ] {
        let hub = Hub::memory(HubLimits {
            history: 1000,
            max_channels: 16,
            ..HubLimits::default()
        });
        if let Some((count, matching)) = rules {
            let (_alerts, tap) = tailcast::alerts::start(
                rules_file(dir.path(), count, matching),
                Arc::new(tailcast::metrics::Metrics::new()),
                &tracker,
                shutdown.clone(),
            )
            .expect("the rules load");
            hub.set_tap(tap);
        }
        group.bench_function(BenchmarkId::new("publish_only", label), |b| {
            b.iter(|| {
                memory(&hub)
                    .publish(&channel, "message", black_box(DATA))
                    .expect("publish")
            })
        });
    }
    group.finish();
    shutdown.cancel();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    publish_with_alerts(&mut criterion);
    criterion.final_summary();
}
