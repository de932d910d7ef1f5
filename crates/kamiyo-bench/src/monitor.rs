//! `kamiyo-bench monitor`: what the monitor costs per event, measured on a `PoolMonitor`
//! of its own (no pool, no database), and whether a flood of distinct statements stays
//! within `max_statements`.

use std::panic::Location;
use std::time::{Duration, Instant};

use kamiyo_db::monitor::fingerprint::Fingerprint;
use kamiyo_db::{Clock, MonitorConfig, PoolMonitor};
use serde::Serialize;

use crate::stats::{median, micros, nanos};

/// A statement of the service's shape and length (the listing), so that hashing its text
/// costs what it costs in production.
const LISTING: &str = "SELECT e.id, e.protocol, e.chain, e.amount_usd, e.occurred_at \
     FROM exploits e WHERE e.chain = $1 AND e.occurred_at >= $2::text::timestamptz \
     ORDER BY e.occurred_at DESC, e.id DESC LIMIT $3";
/// An execution time under the slow-query threshold: the common path.
const ELAPSED: Duration = Duration::from_micros(250);
/// Events per timed batch, so that the clock's own cost stays out of the figure.
const BATCH: u32 = 1_000;

pub struct Options {
    pub quick: bool,
}

struct Trials {
    batches: usize,
    fingerprints: usize,
    flood: usize,
}

impl Trials {
    fn for_run(quick: bool) -> Trials {
        if quick {
            Trials {
                batches: 20,
                fingerprints: 200,
                flood: 5_000,
            }
        } else {
            Trials {
                batches: 1_000,
                fingerprints: 20_000,
                flood: 100_000,
            }
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// One execution of an already-seen statement, median over batches.
    pub record_query_ns: f64,
    /// `Fingerprint::of` on a statement never seen before, median.
    pub fingerprint_new_statement_us: f64,
    /// One acquisition and its release (leak detection on, as by default).
    pub record_acquisition_ns: f64,
    /// Mean cost of recording a never-seen statement once the registry is full:
    /// fingerprint, text cache, eviction of the least used entry.
    pub record_new_statement_at_bound_us: f64,
    pub flood_statements: usize,
    pub tracked_statements_after_flood: usize,
    pub statement_evictions: u64,
    pub max_statements: usize,
}

pub fn run(options: &Options) -> Report {
    let trials = Trials::for_run(options.quick);
    let config = MonitorConfig::default();

    let monitor = PoolMonitor::start("bench", "postgresql", &config, Clock::system());
    monitor.record_query(LISTING, ELAPSED, 20, false);
    let record_query = per_event(trials.batches, || {
        monitor.record_query(LISTING, ELAPSED, 20, false);
    });
    let site = Location::caller();
    let record_acquisition = per_event(trials.batches, || {
        let token = monitor.acquired(Instant::now(), site);
        monitor.released(&token);
    });

    let texts: Vec<String> = (0..trials.fingerprints).map(distinct_statement).collect();
    let mut fingerprints: Vec<Duration> = texts
        .iter()
        .map(|sql| {
            let started = Instant::now();
            std::hint::black_box(Fingerprint::of(std::hint::black_box(sql)));
            started.elapsed()
        })
        .collect();

    let flood_monitor = PoolMonitor::start("bench-flood", "postgresql", &config, Clock::system());
    let texts: Vec<String> = (0..trials.flood).map(distinct_statement).collect();
    let flood_started = Instant::now();
    for sql in &texts {
        flood_monitor.record_query(sql, ELAPSED, 1, false);
    }
    let flood_elapsed = flood_started.elapsed();
    let report = flood_monitor.report(kamiyo_db::PoolState {
        max_size: 0,
        open: 0,
        idle: 0,
        in_use: 0,
        waiting: 0,
    });

    Report {
        record_query_ns: nanos(record_query),
        fingerprint_new_statement_us: micros(median(&mut fingerprints)),
        record_acquisition_ns: nanos(record_acquisition),
        record_new_statement_at_bound_us: micros(flood_elapsed) / texts.len().max(1) as f64,
        flood_statements: texts.len(),
        tracked_statements_after_flood: flood_monitor.statements_tracked(),
        statement_evictions: report.statement_evictions,
        max_statements: config.max_statements,
    }
}

/// Median over `batches` of the mean time of one `event` in a batch of `BATCH`.
fn per_event(batches: usize, mut event: impl FnMut()) -> Duration {
    let mut samples = Vec::with_capacity(batches);
    for _ in 0..batches {
        let started = Instant::now();
        for _ in 0..BATCH {
            event();
        }
        samples.push(started.elapsed() / BATCH);
    }
    median(&mut samples)
}

/// A listing-shaped statement that no other `i` produces: literals would normalise away,
/// so the distinct part is an identifier.
fn distinct_statement(i: usize) -> String {
    format!(
        "SELECT e.id, e.protocol, e.amount_usd AS amount_{i} FROM exploits e \
         WHERE e.chain = $1 AND e.occurred_at >= $2 ORDER BY e.occurred_at DESC LIMIT 50"
    )
}
