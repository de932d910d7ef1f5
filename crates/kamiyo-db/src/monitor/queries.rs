//! Per-statement statistics, keyed by fingerprint, bounded in memory: at most
//! `max_statements` entries (the least used is evicted, and counted) and a bounded cache
//! from SQL text to fingerprint, so a flood of distinct statements cannot grow memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;

use super::fingerprint::Fingerprint;
use super::histogram::Histogram;

/// How many distinct SQL texts map to fingerprints in the cache before it is emptied and
/// refilled, relative to `max_statements`. Emptying is cheap and rare; recomputing a
/// fingerprint costs a few microseconds.
const TEXT_CACHE_FACTOR: usize = 4;
/// Distinct statement summaries that get their own operation-duration series; the rest
/// share the `OTHER` label, which keeps Prometheus cardinality bounded.
pub(crate) const MAX_SUMMARIES: usize = 64;
pub(crate) const OTHER_SUMMARY: &str = "OTHER";

#[derive(Debug)]
struct Statement {
    fingerprint: Arc<Fingerprint>,
    calls: u64,
    errors: u64,
    rows: u64,
    latency: Histogram,
    last_at: SystemTime,
}

impl Statement {
    fn count(&mut self, elapsed: Duration, rows: u64, failed: bool, now: SystemTime) {
        self.calls += 1;
        self.errors += u64::from(failed);
        self.rows += rows;
        self.latency.record(elapsed);
        self.last_at = now;
    }
}

/// What the text cache knows of one SQL text: everything recording needs, so that a
/// known text costs one hash of the text and nothing is parsed or allocated again.
#[derive(Debug, Clone)]
struct Known {
    fingerprint: Arc<Fingerprint>,
    /// The fingerprint's id as a number: the key of `Inner::statements`.
    key: u64,
    /// Index of its summary's histogram in `Inner::summaries`.
    summary: usize,
}

#[derive(Debug, Default)]
struct Inner {
    by_text: HashMap<Box<str>, Known>,
    statements: HashMap<u64, Statement>,
    /// Operation-duration histograms by summary, at most `MAX_SUMMARIES` plus `OTHER`.
    /// Never removed, so the indexes held by `Known` stay valid.
    summaries: Vec<(String, Histogram)>,
    summary_index: HashMap<String, usize>,
}

impl Inner {
    /// The cache entry for a text just fingerprinted, made and stored.
    fn learn(&mut self, sql: &str, fingerprint: Arc<Fingerprint>, max_statements: usize) -> Known {
        // Another thread may have learnt the same text while this one fingerprinted it.
        if let Some(known) = self.by_text.get(sql) {
            return known.clone();
        }
        let summary = match self.summary_index.get(&fingerprint.summary) {
            Some(&index) => index,
            None if self.summaries.len() < MAX_SUMMARIES => {
                self.add_summary(fingerprint.summary.clone())
            }
            None => match self.summary_index.get(OTHER_SUMMARY) {
                Some(&index) => index,
                None => self.add_summary(OTHER_SUMMARY.to_owned()),
            },
        };
        let known = Known {
            key: u64::from_str_radix(&fingerprint.id, 16).unwrap_or(0),
            fingerprint,
            summary,
        };
        if self.by_text.len() >= max_statements * TEXT_CACHE_FACTOR {
            self.by_text.clear();
        }
        self.by_text.insert(sql.into(), known.clone());
        known
    }

    fn add_summary(&mut self, summary: String) -> usize {
        let index = self.summaries.len();
        self.summary_index.insert(summary.clone(), index);
        self.summaries.push((summary, Histogram::default()));
        index
    }

    /// Counts one execution; returns whether a statement had to be evicted to make room.
    fn count(
        &mut self,
        known: &Known,
        elapsed: Duration,
        rows: u64,
        failed: bool,
        now: SystemTime,
        max_statements: usize,
    ) -> bool {
        let mut evicted = false;
        if let Some(statement) = self.statements.get_mut(&known.key) {
            statement.count(elapsed, rows, failed, now);
        } else {
            if self.statements.len() >= max_statements {
                let least_used = self
                    .statements
                    .iter()
                    .min_by_key(|(_, s)| (s.calls, s.last_at))
                    .map(|(k, _)| *k);
                if let Some(victim) = least_used {
                    self.statements.remove(&victim);
                    evicted = true;
                }
            }
            let mut statement = Statement {
                fingerprint: Arc::clone(&known.fingerprint),
                calls: 0,
                errors: 0,
                rows: 0,
                latency: Histogram::default(),
                last_at: now,
            };
            statement.count(elapsed, rows, failed, now);
            self.statements.insert(known.key, statement);
        }
        if let Some((_, histogram)) = self.summaries.get_mut(known.summary) {
            histogram.record(elapsed);
        }
        evicted
    }
}

#[derive(Debug)]
pub struct QueryRegistry {
    inner: Mutex<Inner>,
    max_statements: usize,
    evictions: AtomicU64,
    slow_threshold: Duration,
    slow_capacity: usize,
    slow: Mutex<VecDeque<SlowQuery>>,
    slow_total: AtomicU64,
}

/// One slow execution. The statement is the normalised text: no parameter values.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SlowQuery {
    pub fingerprint: String,
    pub statement: String,
    pub pool: String,
    pub duration_ms: f64,
    pub failed: bool,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatementReport {
    pub fingerprint: String,
    pub statement: String,
    pub summary: String,
    pub calls: u64,
    pub errors: u64,
    pub rows: u64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    pub p95_ms: f64,
    pub last_executed_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuerySort {
    Total,
    Mean,
    Max,
    Calls,
}

impl std::str::FromStr for QuerySort {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "total" => Ok(QuerySort::Total),
            "mean" => Ok(QuerySort::Mean),
            "max" => Ok(QuerySort::Max),
            "calls" => Ok(QuerySort::Calls),
            other => Err(format!(
                "unknown sort {other:?}: expected total, mean, max or calls"
            )),
        }
    }
}

impl QueryRegistry {
    pub fn new(max_statements: usize, slow_threshold: Duration, slow_capacity: usize) -> Self {
        QueryRegistry {
            inner: Mutex::new(Inner::default()),
            max_statements: max_statements.max(1),
            evictions: AtomicU64::new(0),
            slow_threshold,
            slow_capacity,
            slow: Mutex::new(VecDeque::with_capacity(slow_capacity)),
            slow_total: AtomicU64::new(0),
        }
    }

    /// Records one execution. Failed executions count as calls and as errors.
    ///
    /// Every query of the service passes here, so a text seen before costs one lock and
    /// one hash of the text (see `Known`).
    pub fn record(&self, pool: &str, sql: &str, elapsed: Duration, rows: u64, failed: bool) {
        let now = SystemTime::now();
        let mut inner = self.inner.lock();
        let known = match inner.by_text.get(sql) {
            Some(known) => known.clone(),
            None => {
                drop(inner);
                // A new text is fingerprinted outside the lock: it is the only costly step.
                let fingerprint = Arc::new(Fingerprint::of(sql));
                inner = self.inner.lock();
                inner.learn(sql, fingerprint, self.max_statements)
            }
        };
        let evicted = inner.count(&known, elapsed, rows, failed, now, self.max_statements);
        drop(inner);
        if evicted {
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        if elapsed >= self.slow_threshold {
            self.record_slow(pool, &known.fingerprint, elapsed, failed);
        }
    }

    fn record_slow(&self, pool: &str, fingerprint: &Fingerprint, elapsed: Duration, failed: bool) {
        self.slow_total.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            pool,
            fingerprint = %fingerprint.id,
            statement = %fingerprint.normalized,
            duration_ms = elapsed.as_secs_f64() * 1e3,
            threshold_ms = self.slow_threshold.as_secs_f64() * 1e3,
            failed,
            "slow query"
        );
        if self.slow_capacity == 0 {
            return;
        }
        let mut ring = self.slow.lock();
        if ring.len() == self.slow_capacity {
            ring.pop_front();
        }
        ring.push_back(SlowQuery {
            fingerprint: fingerprint.id.clone(),
            statement: fingerprint.normalized.clone(),
            pool: pool.to_owned(),
            duration_ms: elapsed.as_secs_f64() * 1e3,
            failed,
            at: rfc3339(SystemTime::now()),
        });
    }

    pub fn tracked(&self) -> usize {
        self.inner.lock().statements.len()
    }

    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    pub fn slow_total(&self) -> u64 {
        self.slow_total.load(Ordering::Relaxed)
    }

    /// The `limit` most recent slow executions, newest first.
    pub fn slow_queries(&self, limit: usize) -> Vec<SlowQuery> {
        self.slow.lock().iter().rev().take(limit).cloned().collect()
    }

    pub fn top(&self, sort: QuerySort, limit: usize) -> Vec<StatementReport> {
        let mut reports: Vec<StatementReport> = self
            .inner
            .lock()
            .statements
            .values()
            .map(|s| {
                let ms = |nanos: u64| nanos as f64 / 1e6;
                StatementReport {
                    fingerprint: s.fingerprint.id.clone(),
                    statement: s.fingerprint.normalized.clone(),
                    summary: s.fingerprint.summary.clone(),
                    calls: s.calls,
                    errors: s.errors,
                    rows: s.rows,
                    total_ms: ms(s.latency.sum_nanos),
                    mean_ms: ms(s.latency.mean_nanos()),
                    max_ms: ms(s.latency.max_nanos),
                    p95_ms: ms(s.latency.quantile_nanos(0.95)),
                    last_executed_at: rfc3339(s.last_at),
                }
            })
            .collect();
        let key = |r: &StatementReport| match sort {
            QuerySort::Total => r.total_ms,
            QuerySort::Mean => r.mean_ms,
            QuerySort::Max => r.max_ms,
            QuerySort::Calls => r.calls as f64,
        };
        reports.sort_by(|a, b| {
            key(b)
                .total_cmp(&key(a))
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        reports.truncate(limit);
        reports
    }

    /// Operation-duration histograms by statement summary, for Prometheus.
    pub(crate) fn summaries(&self) -> Vec<(String, Histogram)> {
        let mut out: Vec<(String, Histogram)> = self.inner.lock().summaries.clone();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// UTC, seconds precision with milliseconds: `2026-11-26T23:52:59.344Z`.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs();
    let millis = since_epoch.subsec_millis();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max: usize) -> QueryRegistry {
        QueryRegistry::new(max, Duration::from_millis(100), 3)
    }

    #[test]
    fn same_statement_with_other_values_is_one_entry() {
        let r = registry(10);
        r.record(
            "p",
            "SELECT * FROM t WHERE id = 1",
            Duration::from_millis(2),
            1,
            false,
        );
        r.record(
            "p",
            "SELECT * FROM t WHERE id = 2",
            Duration::from_millis(4),
            0,
            false,
        );
        r.record(
            "p",
            "SELECT * FROM t WHERE id = 3",
            Duration::from_millis(6),
            1,
            true,
        );
        let top = r.top(QuerySort::Calls, 10);
        assert_eq!(top.len(), 1);
        assert_eq!((top[0].calls, top[0].errors, top[0].rows), (3, 1, 2));
        assert!((top[0].total_ms - 12.0).abs() < 1e-9);
        assert!((top[0].mean_ms - 4.0).abs() < 1e-9);
        assert!((top[0].max_ms - 6.0).abs() < 1e-9);
        assert!(!top[0].statement.contains('1'), "values must not be stored");
    }

    #[test]
    fn a_flood_of_distinct_statements_stays_at_the_bound_and_counts_evictions() {
        let r = registry(50);
        for i in 0..10_000 {
            r.record(
                "p",
                &format!("SELECT c{i} FROM t"),
                Duration::from_micros(10),
                1,
                false,
            );
        }
        assert_eq!(r.tracked(), 50);
        assert_eq!(r.evictions(), 10_000 - 50);
        assert!(r.inner.lock().by_text.len() <= 50 * TEXT_CACHE_FACTOR);
        assert!(r.summaries().len() <= MAX_SUMMARIES + 1);
    }

    #[test]
    fn summaries_past_the_bound_share_other_also_after_the_text_cache_is_emptied() {
        let r = registry(10);
        let tables = MAX_SUMMARIES + 36;
        // Twice over: the second pass finds the texts again after the text cache (40
        // entries here) was emptied, and must count them under the same summaries.
        for _ in 0..2 {
            for i in 0..tables {
                r.record(
                    "p",
                    &format!("SELECT a FROM t{i}"),
                    Duration::from_micros(10),
                    0,
                    false,
                );
            }
        }
        let summaries = r.summaries();
        assert_eq!(summaries.len(), MAX_SUMMARIES + 1);
        let count = |name: &str| {
            summaries
                .iter()
                .find(|(summary, _)| summary == name)
                .map(|(_, h)| h.count)
        };
        assert_eq!(count(OTHER_SUMMARY), Some(2 * 36));
        assert_eq!(count("SELECT t0"), Some(2));
    }

    #[test]
    fn the_least_used_statement_is_evicted_first() {
        let r = registry(2);
        for _ in 0..5 {
            r.record("p", "SELECT a FROM t", Duration::from_micros(10), 0, false);
        }
        r.record("p", "SELECT b FROM t", Duration::from_micros(10), 0, false);
        r.record("p", "SELECT c FROM t", Duration::from_micros(10), 0, false);
        let kept: Vec<String> = r
            .top(QuerySort::Calls, 10)
            .into_iter()
            .map(|s| s.statement)
            .collect();
        assert_eq!(kept, vec!["select a from t", "select c from t"]);
    }

    #[test]
    fn slow_queries_are_kept_in_a_bounded_ring_newest_first() {
        let r = registry(10);
        for ms in [150, 200, 250, 300] {
            r.record(
                "primary",
                &format!("SELECT pg_sleep({ms})"),
                Duration::from_millis(ms),
                1,
                false,
            );
        }
        r.record("primary", "SELECT 1", Duration::from_millis(1), 1, false);
        let slow = r.slow_queries(10);
        assert_eq!(slow.len(), 3);
        assert_eq!(slow[0].duration_ms, 300.0);
        assert_eq!(slow[0].statement, "select pg_sleep(?)");
        assert_eq!(r.slow_total(), 4);
    }

    #[test]
    fn sort_parameter_parses_and_rejects() {
        assert_eq!("mean".parse::<QuerySort>(), Ok(QuerySort::Mean));
        assert!("fastest".parse::<QuerySort>().is_err());
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(at), "2023-11-14T22:13:20.123Z");
    }
}
