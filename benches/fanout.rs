//! Micro-benchmarks of hub fan-out ([`tailcast::hub`]) to 1, 100 and
//! 10,000 subscribers of one channel.
//!
//! One iteration publishes one event and lets every subscriber take its
//! batch, which is the work the server does per event before the sockets:
//! encode once, append to history, wake each subscriber, and each one
//! clones its shared frames. No tokio runtime and no sockets are involved,
//! so the figures are the hub's own cost. Also: 100 `/events` subscribers
//! taking the JSON envelope, and a batch of 100 events in one call. Run with
//! `cargo bench --bench fanout`.

use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tailcast::hub::{
    ChannelName, ChannelRequest, Delivery, Hub, HubLimits, MemoryHub, Start, Subscription,
};

/// Data of the published event: a typical log line.
const DATA: &str = "2024-01-01 12:00:00,123 - log_app - INFO - log message num: 4711";

fn channel() -> ChannelName {
    ChannelName::parse("bench").expect("valid name")
}

/// The memory backend itself: its publish is synchronous (`Hub::publish`
/// is async for the Redis backend's sake).
fn memory(hub: &Hub) -> &MemoryHub {
    match hub {
        Hub::Memory(memory) => memory,
        Hub::Redis(_) => unreachable!("the benchmark makes a memory hub"),
    }
}

fn subscribe(hub: &Hub, n: usize) -> Vec<Subscription> {
    let channel = [ChannelRequest::new(self::channel(), 0)];
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
        let hub = Hub::memory(HubLimits {
            history: 1000,
            max_channels: 16,
            ..HubLimits::default()
        });
        let channel = channel();
        let mut subs = subscribe(&hub, n);
        // Throughput in deliveries: one event to n subscribers.
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("publish_and_deliver", n), &n, |b, _| {
            b.iter(|| {
                memory(&hub)
                    .publish(&channel, "message", black_box(DATA))
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
                memory(&hub)
                    .publish(&channel, "message", black_box(DATA))
                    .expect("publish")
            })
        });
        drop(subs);
    }
    // `/events` subscribers: each takes the JSON envelope, made once per
    // event and shared.
    let hub = Hub::memory(HubLimits {
        history: 1000,
        max_channels: 16,
        ..HubLimits::default()
    });
    let channel = channel();
    let mut subs = subscribe(&hub, 100);
    group.throughput(Throughput::Elements(100));
    group.bench_function(
        BenchmarkId::new("publish_and_deliver_enveloped", 100),
        |b| {
            b.iter(|| {
                memory(&hub)
                    .publish(&channel, "message", black_box(DATA))
                    .expect("publish");
                let mut bytes = 0;
                for sub in subs.iter_mut() {
                    bytes += take_enveloped(sub);
                }
                black_box(bytes)
            })
        },
    );
    drop(subs);
    // 100 events in one call (the NDJSON bulk publish), no subscriber.
    let events: Vec<(&str, &str)> = vec![("message", DATA); 100];
    group.throughput(Throughput::Elements(100));
    group.bench_function(BenchmarkId::new("publish_batch", 100), |b| {
        b.iter(|| {
            memory(&hub)
                .publish_batch(&channel, black_box(&events))
                .expect("publish")
        })
    });
    group.finish();
}

/// Bytes of the `/events` envelopes of one batch.
fn take_enveloped(sub: &mut Subscription) -> usize {
    sub.ready_batch()
        .iter()
        .map(|d| match d {
            Delivery::Event(e) => e.envelope_frame().len(),
            Delivery::Reset { .. } => 0,
        })
        .sum()
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    fanout(&mut criterion);
    criterion.final_summary();
}
