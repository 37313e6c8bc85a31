//! Micro-benchmarks of the SSE wire encoder ([`tailcast::sse`]).
//!
//! Each event is encoded once per publish, whatever the number of
//! subscribers, so this is the per-event fixed cost of the hot path.
//! Run with `cargo bench --bench sse_encode`.

use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tailcast::sse;

/// A log line shaped like the ones `tailcast generate` writes.
const LOG_LINE: &str = "2024-01-01 12:00:00,123 - log_app - INFO - log message num: 4711";

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse_encode");
    let multi_line = "first line\nsecond line\r\nthird line\rfourth line\n".repeat(4);
    let kib = "x".repeat(1024);
    let inputs: [(&str, &str, &str); 4] = [
        ("log_line", "message", LOG_LINE),
        (
            "typed_event",
            "sensor",
            "{\"temperature\":21.5,\"humidity\":40}",
        ),
        ("multi_line_16", "message", &multi_line),
        ("one_kib", "message", &kib),
    ];
    for (name, event_type, data) in inputs {
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(BenchmarkId::new("with_id", name), &data, |b, data| {
            b.iter(|| {
                sse::encode_event(
                    Some(black_box("5f3a9c01-123456")),
                    black_box(event_type),
                    black_box(data),
                )
            })
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    encode(&mut criterion);
    criterion.final_summary();
}
