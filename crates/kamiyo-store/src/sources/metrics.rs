//! What this instance's scheduler did, for `/metrics`: fetches by source and outcome,
//! the time of each source's last successful fetch here, and each source's interval (so
//! that an alert can compare the two: `deploy/prometheus/alerts.yml`,
//! `KamiyoSourceStale`). Several instances share the fetching: Prometheus takes the
//! latest success over them (`max by (source)`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kamiyo_db::monitor::prometheus::Exposition;
use parking_lot::Mutex;

#[derive(Debug, Default)]
pub struct SourceMetrics {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    fetches: BTreeMap<(String, &'static str), u64>,
    last_success: BTreeMap<String, DateTime<Utc>>,
    intervals: BTreeMap<String, Duration>,
}

impl SourceMetrics {
    /// The sources this instance fetches, and how often.
    pub fn schedule(&self, source: &str, interval: Duration) {
        self.state
            .lock()
            .intervals
            .insert(source.to_owned(), interval);
    }

    /// One fetch ended with `outcome` (`succeeded`, `unchanged` or `failed`) at `at`.
    pub fn fetched(&self, source: &str, outcome: &'static str, at: DateTime<Utc>) {
        let mut state = self.state.lock();
        *state
            .fetches
            .entry((source.to_owned(), outcome))
            .or_insert(0) += 1;
        if outcome != "failed" {
            state.last_success.insert(source.to_owned(), at);
        }
    }

    pub fn write(&self, exposition: &mut Exposition) {
        let state = self.state.lock();
        let fetches: Vec<(Vec<(&str, &str)>, u64)> = state
            .fetches
            .iter()
            .map(|((source, outcome), n)| {
                (vec![("source", source.as_str()), ("outcome", *outcome)], *n)
            })
            .collect();
        let samples: Vec<(&[(&str, &str)], u64)> =
            fetches.iter().map(|(l, n)| (l.as_slice(), *n)).collect();
        exposition.counter(
            "kamiyo_source_fetches_total",
            "Fetches of a source by this instance, by outcome (succeeded, unchanged, failed).",
            &samples,
        );
        let last: Vec<(Vec<(&str, &str)>, f64)> = state
            .last_success
            .iter()
            .map(|(source, at)| {
                (
                    vec![("source", source.as_str())],
                    at.timestamp_millis() as f64 / 1000.0,
                )
            })
            .collect();
        let samples: Vec<(&[(&str, &str)], f64)> =
            last.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
        exposition.gauge(
            "kamiyo_source_last_success_timestamp_seconds",
            "When this instance last fetched the source successfully (Unix seconds).",
            &samples,
        );
        let intervals: Vec<(Vec<(&str, &str)>, f64)> = state
            .intervals
            .iter()
            .map(|(source, interval)| (vec![("source", source.as_str())], interval.as_secs_f64()))
            .collect();
        let samples: Vec<(&[(&str, &str)], f64)> =
            intervals.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
        exposition.gauge(
            "kamiyo_source_interval_seconds",
            "How often the source is fetched (seconds).",
            &samples,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_last_successes_and_intervals_are_exposed_by_source() {
        let metrics = SourceMetrics::default();
        metrics.schedule("defillama", Duration::from_secs(900));
        let at = DateTime::from_timestamp(1_764_756_000, 0).unwrap_or_default();
        metrics.fetched("defillama", "succeeded", at);
        metrics.fetched("defillama", "failed", at + chrono::Duration::minutes(15));
        metrics.fetched("defillama", "failed", at + chrono::Duration::minutes(30));
        let mut exposition = Exposition::new();
        metrics.write(&mut exposition);
        let text = exposition.finish();
        for line in [
            r#"kamiyo_source_fetches_total{source="defillama",outcome="failed"} 2"#,
            r#"kamiyo_source_fetches_total{source="defillama",outcome="succeeded"} 1"#,
            r#"kamiyo_source_last_success_timestamp_seconds{source="defillama"} 1764756000"#,
            r#"kamiyo_source_interval_seconds{source="defillama"} 900"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
    }
}
