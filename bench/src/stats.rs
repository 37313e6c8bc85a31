//! Measurement helpers: a fixed-size latency histogram, per-subscriber
//! loss/duplicate/reorder bookkeeping, and server memory from `/proc`.

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

/// Values below this are kept exactly (in microseconds).
const EXACT: u64 = 128;
/// Sub-buckets per power of two above [`EXACT`]: about 1.5 % resolution.
const SUB_BITS: u32 = 6;
/// Enough buckets for values up to 2^48 µs.
const BUCKETS: usize = EXACT as usize + (48 - 7) * (1 << SUB_BITS);

/// A latency histogram in microseconds with ~1.5 % resolution and a fixed
/// size, so recording never allocates.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let sub = (v >> (msb - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    let index = EXACT as usize + (msb as usize - 7) * (1 << SUB_BITS) + sub as usize;
    index.min(BUCKETS - 1)
}

fn value_of(bucket: usize) -> u64 {
    if bucket < EXACT as usize {
        return bucket as u64;
    }
    let rest = bucket - EXACT as usize;
    let msb = (rest >> SUB_BITS) as u32 + 7;
    let sub = (rest & ((1 << SUB_BITS) - 1)) as u64;
    // Middle of the bucket.
    let low = ((1u64 << SUB_BITS) | sub) << (msb - SUB_BITS);
    low + (1u64 << (msb - SUB_BITS)) / 2
}

impl Histogram {
    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Records one value.
    pub fn record(&mut self, micros: u64) {
        self.counts[bucket_of(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    /// The value at quantile `q` (0..=1), in microseconds.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        if q >= 1.0 {
            return self.max;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value_of(i).min(self.max);
            }
        }
        self.max
    }

    /// Percentiles in milliseconds, for reports.
    pub fn summary(&self) -> Latency {
        let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
        Latency {
            count: self.total,
            p50_ms: ms(self.quantile(0.50)),
            p90_ms: ms(self.quantile(0.90)),
            p99_ms: ms(self.quantile(0.99)),
            p999_ms: ms(self.quantile(0.999)),
            max_ms: ms(self.max),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest value.
    pub max_ms: f64,
}

/// What one subscriber saw of the numbered events `0..expected`.
#[derive(Debug)]
pub struct Tracker {
    seen: Vec<u64>,
    expected: u64,
    max_seq: Option<u64>,
    /// Distinct events received.
    pub unique: u64,
    /// Events received more than once.
    pub duplicates: u64,
    /// Events received after a higher-numbered one.
    pub reordered: u64,
    /// Events whose data was not a number of this run.
    pub foreign: u64,
    /// `reset` events received.
    pub resets: u64,
}

impl Tracker {
    /// A tracker expecting events `0..expected`.
    pub fn new(expected: u64) -> Self {
        Tracker {
            seen: vec![0; expected.div_ceil(64) as usize],
            expected,
            max_seq: None,
            unique: 0,
            duplicates: 0,
            reordered: 0,
            foreign: 0,
            resets: 0,
        }
    }

    /// Records event `seq`.
    pub fn record(&mut self, seq: u64) {
        if seq >= self.expected {
            self.foreign += 1;
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.unique += 1;
        match self.max_seq {
            Some(max) if seq < max => self.reordered += 1,
            _ => self.max_seq = Some(seq),
        }
    }

    /// Whether every expected event arrived.
    pub fn complete(&self) -> bool {
        self.unique == self.expected
    }
}

/// Resident memory of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
///
/// # Errors
/// The process does not exist or the file has no `VmRSS` line.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in {path}"))
}

/// CPU time (user + system) used so far by `pid`, in seconds, from
/// `/proc/PID/stat` (Linux's clock tick is 1/100 s for user space).
///
/// # Errors
/// The process does not exist or the file is malformed.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| anyhow!("malformed {path}"))
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// Summed resident memory of several processes (nginx master + worker).
///
/// # Errors
/// See [`rss_kib`].
pub fn total_rss_kib(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&p| rss_kib(p)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.001, 100.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(1.0), 100_000);
    }

    #[test]
    fn tracker_counts_loss_duplicates_and_reordering() {
        let mut t = Tracker::new(5);
        for seq in [0, 2, 1, 2, 4, 9] {
            t.record(seq);
        }
        assert_eq!(
            (t.unique, t.duplicates, t.reordered, t.foreign),
            (4, 1, 1, 1)
        );
        assert!(!t.complete());
        t.record(3);
        assert!(t.complete());
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
    }

    #[test]
    fn own_rss_is_readable() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
