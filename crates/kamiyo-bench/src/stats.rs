//! Order statistics over raw samples. Exact (nearest rank on the sorted samples), unlike
//! the monitor's bucketed histograms: a benchmark keeps every sample, so it can afford it.

use std::time::Duration;

/// The `q` quantile (0..=1) of `samples` by nearest rank; zero when there are none.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = (q * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

pub fn median(samples: &mut [Duration]) -> Duration {
    quantile(samples, 0.5)
}

/// The median of plain numbers (throughputs of several rounds); zero when there are none.
pub fn median_f64(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

pub fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        assert_eq!(quantile(&mut samples, 0.5), Duration::from_micros(50));
        assert_eq!(quantile(&mut samples, 0.99), Duration::from_micros(99));
        assert_eq!(quantile(&mut samples, 1.0), Duration::from_micros(100));
        assert_eq!(quantile(&mut [], 0.5), Duration::ZERO);
    }

    #[test]
    fn median_of_numbers() {
        assert_eq!(median_f64(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_f64(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median_f64(&[]), 0.0);
    }
}
