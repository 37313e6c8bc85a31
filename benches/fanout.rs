//! Micro-benchmarks of hub fan-out ([`tailcast::hub`]) to 1, 100 and
//! 10,000 subscribers of one channel.
//!
//! One iteration publishes one event and lets every subscriber take its
//! batch, which is the work the server does per event before the sockets:
//! encode once, append to history, wake each subscriber, and each one
//! clones its shared frames. No tokio runtime and no sockets are involved,
//! so the figures are the hub's own cost. Run with `cargo bench --bench fanout`.

use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use tailcast::hub::{ChannelRequest, Delivery, Hub, MemoryHub, Start, Subscription};

/// Data of the published event: a typical log line.
const DATA: &str = "2024-01-01 12:00:00,123 - log_app - INFO - log message num: 4711";

fn subscribe(hub: &Hub, n: usize) -> Vec<Subscription> {
    let channel = [ChannelRequest::new("bench", 0)];
    (0..n)
        .map(|_| hub.subscribe(&channel, Start::Now).expect("subscribe"))
        .collect()
}

/// Bytes handed to the sockets for one batch, as the SSE body would.
fn take(sub: &mut Subscription) -> usize {
    sub.ready_batch()
        .iter()
        .map(|d| match d {
            Delivery::Event(e) => e.frame.len(),
            Delivery::Reset { .. } => 0,
        })
        .sum()
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("hub_fanout");
    for n in [1usize, 100, 10_000] {
        // Published through the backend itself: `Hub::publish` is async.
        let memory = Arc::new(MemoryHub::new(1000, 16));
        let hub = Hub::Memory(memory.clone());
        let mut subs = subscribe(&hub, n);
        // Throughput in deliveries: one event to n subscribers.
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("publish_and_deliver", n), &n, |b, _| {
            b.iter(|| {
                memory
                    .publish("bench", "message", black_box(DATA))
                    .expect("publish");
                let mut bytes = 0;
                for sub in subs.iter_mut() {
                    bytes += take(sub);
                }
                black_box(bytes)
            })
        });
        // The publisher's side alone: what a POST waits for.
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("publish_only", n), &n, |b, _| {
            b.iter(|| {
                memory
                    .publish("bench", "message", black_box(DATA))
                    .expect("publish")
            })
        });
        drop(subs);
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    fanout(&mut criterion);
    criterion.final_summary();
}
