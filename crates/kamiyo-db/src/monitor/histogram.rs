//! Latency histograms with fixed log-scale buckets: four buckets per power of two from
//! 1 µs to about 137 s (so any percentile is within 25 % above the true value), plus an
//! exact count, sum and maximum. The atomic variant records without a lock; the plain one
//! lives under the statement registry's lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

const MIN_EXPONENT: u32 = 10; // 2^10 ns = 1.024 µs
const MAX_EXPONENT: u32 = 37; // 2^37 ns = 137 s
pub(crate) const BUCKETS: usize = 1 + ((MAX_EXPONENT - MIN_EXPONENT) as usize + 1) * 4;

fn bucket_of(nanos: u64) -> usize {
    if nanos < (1 << MIN_EXPONENT) {
        return 0;
    }
    let exponent = 63 - nanos.leading_zeros();
    if exponent > MAX_EXPONENT {
        return BUCKETS - 1;
    }
    let sub = (nanos >> (exponent - 2)) & 3;
    1 + (exponent - MIN_EXPONENT) as usize * 4 + sub as usize
}

/// Exclusive upper bound of a bucket, in nanoseconds.
fn upper_bound(bucket: usize) -> u64 {
    if bucket == 0 {
        return 1 << MIN_EXPONENT;
    }
    let exponent = MIN_EXPONENT + ((bucket - 1) / 4) as u32;
    let sub = ((bucket - 1) % 4) as u64;
    (1u64 << exponent) + (sub + 1) * (1u64 << (exponent - 2))
}

/// Bounds exported to Prometheus: every second power of two from 1 µs, which are exact
/// bucket edges, so cumulative counts are exact.
pub(crate) fn prometheus_bounds() -> impl Iterator<Item = (f64, usize)> {
    (MIN_EXPONENT..=MAX_EXPONENT).step_by(2).map(|exponent| {
        let last_bucket = (exponent - MIN_EXPONENT) as usize * 4;
        ((1u64 << exponent) as f64 / 1e9, last_bucket)
    })
}

#[derive(Debug)]
pub struct AtomicHistogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
        }
    }
}

impl AtomicHistogram {
    pub fn record(&self, value: Duration) {
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.max_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            count: self.count.load(Ordering::Relaxed),
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
            max_nanos: self.max_nanos.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's values at one moment (or a single-threaded histogram).
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: [u64; BUCKETS],
    pub count: u64,
    pub sum_nanos: u64,
    pub max_nanos: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: [0; BUCKETS],
            count: 0,
            sum_nanos: 0,
            max_nanos: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, value: Duration) {
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(nanos)] += 1;
        self.count += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
        self.max_nanos = self.max_nanos.max(nanos);
    }

    /// The upper edge of the bucket holding the `q` quantile, never above the maximum.
    pub fn quantile_nanos(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (bucket, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_bound(bucket).min(self.max_nanos);
            }
        }
        self.max_nanos
    }

    pub fn mean_nanos(&self) -> u64 {
        self.sum_nanos.checked_div(self.count).unwrap_or(0)
    }

    pub fn summary(&self) -> LatencySummary {
        let ms = |nanos: u64| nanos as f64 / 1e6;
        LatencySummary {
            count: self.count,
            mean_ms: ms(self.mean_nanos()),
            p50_ms: ms(self.quantile_nanos(0.50)),
            p95_ms: ms(self.quantile_nanos(0.95)),
            p99_ms: ms(self.quantile_nanos(0.99)),
            max_ms: ms(self.max_nanos),
        }
    }

    /// Cumulative counts at the exported bounds, for Prometheus.
    pub(crate) fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut running = 0;
        let mut next_bucket = 0;
        let mut out = Vec::new();
        for (bound, last_bucket) in prometheus_bounds() {
            while next_bucket <= last_bucket {
                running += self.buckets[next_bucket];
                next_bucket += 1;
            }
            out.push((bound, running));
        }
        out.push((f64::INFINITY, self.count));
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounds_increase() {
        for bucket in 1..BUCKETS {
            assert!(upper_bound(bucket) > upper_bound(bucket - 1));
            let lower = upper_bound(bucket - 1);
            assert_eq!(
                bucket_of(lower),
                bucket,
                "value {lower} belongs to bucket {bucket}"
            );
            assert_eq!(bucket_of(upper_bound(bucket) - 1), bucket.min(BUCKETS - 1));
        }
    }

    #[test]
    fn quantiles_are_within_a_quarter_above_the_truth() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile_nanos(0.5) as f64 / 1e6;
        let p99 = h.quantile_nanos(0.99) as f64 / 1e6;
        assert!((50.0..=62.5).contains(&p50), "p50 {p50}");
        assert!((99.0..=100.0).contains(&p99), "p99 {p99}");
        assert_eq!(h.max_nanos, 100_000_000);
        assert_eq!(h.count, 100);
    }

    #[test]
    fn atomic_and_plain_agree_and_cumulative_ends_with_count() {
        let atomic = AtomicHistogram::default();
        let mut plain = Histogram::default();
        for us in [3, 30, 300, 3_000, 30_000, 300_000_000] {
            atomic.record(Duration::from_micros(us));
            plain.record(Duration::from_micros(us));
        }
        let snapshot = atomic.snapshot();
        assert_eq!(snapshot.cumulative(), plain.cumulative());
        let cumulative = plain.cumulative();
        assert_eq!(cumulative.last(), Some(&(f64::INFINITY, 6)));
        assert!(cumulative.windows(2).all(|w| w[0].1 <= w[1].1));
        // 3 µs, 30 µs and 300 µs are all under the 1.048576 ms bound.
        let at_1ms = cumulative
            .iter()
            .find(|(b, _)| (*b - 0.001048576).abs() < 1e-12)
            .unwrap();
        assert_eq!(at_1ms.1, 3);
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let summary = Histogram::default().summary();
        assert_eq!(summary.count, 0);
        assert_eq!(summary.p99_ms, 0.0);
    }
}
