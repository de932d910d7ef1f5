//! `kamiyo-bench pool`: what the pool costs a caller. Acquisition on an idle pool, the
//! hand-off of a released connection to a waiting task, how late an acquisition deadline
//! fires, and throughput under many more tasks than connections, with the monitor on and
//! off and against a bare deadpool-postgres pool.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kamiyo_db::postgres::PgPool;
use kamiyo_db::{DbConfig, DbError};
use serde::Serialize;

use crate::stats::{self, median, micros, millis, nanos, quantile};
use crate::stress::{self, Kamiyo, Outcome, Raw, Setup};

/// The deadline of the overshoot measurement.
pub const TIMEOUT_DEADLINE: Duration = Duration::from_millis(200);
/// Acquire-and-release pairs per timed batch: timing a batch rather than each pair keeps
/// the clock's own cost (tens of nanoseconds) out of a figure of a few hundred.
const BATCH: u32 = 100;

pub struct Options {
    pub database_url: String,
    pub quick: bool,
    pub stress: Setup,
    pub rounds: usize,
}

/// Trial counts; `--quick` shrinks them so that the test suite can run the command.
struct Trials {
    acquire_batches: usize,
    handoffs: usize,
    timeouts: usize,
}

impl Trials {
    fn for_run(quick: bool) -> Trials {
        if quick {
            Trials {
                acquire_batches: 20,
                handoffs: 20,
                timeouts: 3,
            }
        } else {
            Trials {
                acquire_batches: 2_000,
                handoffs: 1_000,
                timeouts: 30,
            }
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// Median over batches of `BATCH` pairs, monitor on (the default configuration).
    pub uncontended_acquire_release_ns: f64,
    pub uncontended_acquire_release_unmonitored_ns: f64,
    pub raw_deadpool_acquire_release_ns: f64,
    pub handoff_p50_us: f64,
    pub handoff_p99_us: f64,
    pub handoff_trials: usize,
    pub timeout_deadline_ms: f64,
    pub timeout_overshoot_p50_ms: f64,
    pub timeout_overshoot_p99_ms: f64,
    pub timeout_trials: usize,
    pub stress_workers: usize,
    pub stress_pool_size: usize,
    pub stress_queries: u64,
    /// Rounds of the three stress runs; each figure is the median over rounds.
    pub stress_rounds: usize,
    pub stress_qps_monitored: f64,
    pub stress_qps_unmonitored: f64,
    /// Same sessions settings as Kamiyo's (see `stress::Raw::new`).
    pub raw_deadpool_qps: f64,
    /// This process's CPU time per query (client side: pool, driver, monitor), median
    /// over rounds; zero where `/proc` is unavailable.
    pub stress_cpu_us_per_query_monitored: f64,
    pub stress_cpu_us_per_query_unmonitored: f64,
    pub raw_deadpool_cpu_us_per_query: f64,
    /// CPU time of the pool's server processes per query, median over rounds; zero when
    /// the server's processes cannot be read (not on this machine).
    pub stress_server_cpu_us_per_query_monitored: f64,
    pub stress_server_cpu_us_per_query_unmonitored: f64,
    pub raw_deadpool_server_cpu_us_per_query: f64,
    /// Failed queries over every stress run (all three pools, all rounds).
    pub stress_errors: u64,
    /// `1 - on/off` in percent, from the two runs of each round, median over rounds:
    /// runs seconds apart see the same load from elsewhere, which a ratio of medians
    /// taken over minutes does not.
    pub monitoring_overhead_pct: f64,
    /// `on / bare deadpool` in percent, paired by round in the same way.
    pub monitored_vs_raw_pct: f64,
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    let setup = options.stress;
    anyhow::ensure!(setup.workers > 0, "--stress-workers must be at least 1");
    anyhow::ensure!(setup.pool_size > 0, "--stress-pool-size must be at least 1");
    anyhow::ensure!(options.rounds > 0, "--rounds must be at least 1");
    let trials = Trials::for_run(options.quick);
    let url = options.database_url.as_str();

    let single = kamiyo_pool(url, "bench-single", 1, true)?;
    let single_unmonitored = kamiyo_pool(url, "bench-single-unmonitored", 1, false)?;
    let single_raw = Raw::new(url, &DbConfig::for_url(url), 1)?;
    let uncontended = acquire_release(&single, trials.acquire_batches).await?;
    let uncontended_unmonitored =
        acquire_release(&single_unmonitored, trials.acquire_batches).await?;
    let uncontended_raw = raw_acquire_release(&single_raw, trials.acquire_batches).await?;
    single_unmonitored.close();
    single_raw.0.close();

    let mut handoffs = handoffs(&single, trials.handoffs).await?;
    let mut overshoots = overshoots(&single, trials.timeouts).await?;
    single.close();

    let stress = stress_rounds(url, setup, options.rounds).await?;
    if let Some(error) = &stress.first_error {
        eprintln!("kamiyo-bench pool: first failed stress query: {error}");
    }

    Ok(Report {
        uncontended_acquire_release_ns: nanos(uncontended),
        uncontended_acquire_release_unmonitored_ns: nanos(uncontended_unmonitored),
        raw_deadpool_acquire_release_ns: nanos(uncontended_raw),
        handoff_p50_us: micros(quantile(&mut handoffs, 0.50)),
        handoff_p99_us: micros(quantile(&mut handoffs, 0.99)),
        handoff_trials: handoffs.len(),
        timeout_deadline_ms: millis(TIMEOUT_DEADLINE),
        timeout_overshoot_p50_ms: millis(quantile(&mut overshoots, 0.50)),
        timeout_overshoot_p99_ms: millis(quantile(&mut overshoots, 0.99)),
        timeout_trials: overshoots.len(),
        stress_workers: setup.workers,
        stress_pool_size: setup.pool_size,
        stress_queries: setup.queries,
        stress_rounds: options.rounds,
        stress_qps_monitored: stress.monitored.qps,
        stress_qps_unmonitored: stress.unmonitored.qps,
        raw_deadpool_qps: stress.raw.qps,
        stress_cpu_us_per_query_monitored: stress.monitored.cpu_us_per_query,
        stress_cpu_us_per_query_unmonitored: stress.unmonitored.cpu_us_per_query,
        raw_deadpool_cpu_us_per_query: stress.raw.cpu_us_per_query,
        stress_server_cpu_us_per_query_monitored: stress.monitored.server_cpu_us_per_query,
        stress_server_cpu_us_per_query_unmonitored: stress.unmonitored.server_cpu_us_per_query,
        raw_deadpool_server_cpu_us_per_query: stress.raw.server_cpu_us_per_query,
        stress_errors: stress.errors,
        monitoring_overhead_pct: stress.overhead_pct,
        monitored_vs_raw_pct: stress.vs_raw_pct,
    })
}

fn kamiyo_pool(url: &str, name: &str, size: usize, monitored: bool) -> anyhow::Result<PgPool> {
    let mut config = DbConfig::for_url(url);
    config.pool_max_size = size;
    config.monitor.enabled = monitored;
    config.validate()?;
    Ok(PgPool::new(name, &config)?)
}

/// Median time of one acquire-and-release pair on an idle pool whose one session is open
/// (the first acquisition, which connects, is not timed).
async fn acquire_release(pool: &PgPool, batches: usize) -> anyhow::Result<Duration> {
    drop(pool.acquire().await?);
    let mut samples = Vec::with_capacity(batches);
    for _ in 0..batches {
        let started = Instant::now();
        for _ in 0..BATCH {
            drop(pool.acquire().await?);
        }
        samples.push(started.elapsed() / BATCH);
    }
    Ok(median(&mut samples))
}

async fn raw_acquire_release(pool: &Raw, batches: usize) -> anyhow::Result<Duration> {
    drop(pool.0.get().await?);
    let mut samples = Vec::with_capacity(batches);
    for _ in 0..batches {
        let started = Instant::now();
        for _ in 0..BATCH {
            drop(pool.0.get().await?);
        }
        samples.push(started.elapsed() / BATCH);
    }
    Ok(median(&mut samples))
}

/// From the drop of the only connection of a pool of one to the moment a task already
/// queued for it holds it.
async fn handoffs(pool: &PgPool, trials: usize) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(trials);
    for _ in 0..trials {
        let held = pool.acquire().await?;
        let waiter_pool = pool.clone();
        let waiter = tokio::spawn(async move {
            let conn = waiter_pool.acquire().await;
            let at = Instant::now();
            conn.map(|_| at)
        });
        // deadpool counts a waiter in the same poll that queues it on the semaphore, so
        // once the count shows it the waiter is queued (or a few instructions from it)
        // and the release below goes to it rather than to the idle list.
        while pool.state().waiting == 0 {
            if waiter.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let released = Instant::now();
        drop(held);
        let acquired = waiter.await.context("the waiting task panicked")??;
        samples.push(acquired.saturating_duration_since(released));
    }
    Ok(samples)
}

/// How long after `TIMEOUT_DEADLINE` the acquisition error arrives, the pool's only
/// connection being held throughout.
async fn overshoots(pool: &PgPool, trials: usize) -> anyhow::Result<Vec<Duration>> {
    let _held = pool.acquire().await?;
    let mut samples = Vec::with_capacity(trials);
    for _ in 0..trials {
        let started = Instant::now();
        let result = pool.acquire_within(TIMEOUT_DEADLINE).await;
        let took = started.elapsed();
        match result {
            Err(DbError::AcquireTimeout { .. }) => {
                samples.push(took.saturating_sub(TIMEOUT_DEADLINE));
            }
            Err(other) => return Err(other).context("acquiring from an exhausted pool"),
            Ok(_) => bail!("an exhausted pool of one handed out a second connection"),
        }
    }
    Ok(samples)
}

/// Medians over rounds of one pool's stress runs.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    qps: f64,
    cpu_us_per_query: f64,
    server_cpu_us_per_query: f64,
}

struct StressFigures {
    monitored: Figures,
    unmonitored: Figures,
    raw: Figures,
    overhead_pct: f64,
    vs_raw_pct: f64,
    errors: u64,
    first_error: Option<String>,
}

const VARIANTS: [&str; 3] = ["monitor on", "monitor off", "bare deadpool-postgres"];

/// One of the three pools of the stress runs.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Variant {
    MonitorOn,
    MonitorOff,
    Raw,
}

/// One warmed-up stress run on one pool alone: what a profiler (perf, callgrind) should
/// look at, without the other pools' runs mixed in.
pub async fn stress_one(url: &str, setup: Setup, variant: Variant) -> anyhow::Result<Outcome> {
    anyhow::ensure!(setup.workers > 0, "--stress-workers must be at least 1");
    anyhow::ensure!(setup.pool_size > 0, "--stress-pool-size must be at least 1");
    let outcome = match variant {
        Variant::MonitorOn | Variant::MonitorOff => {
            let monitored = matches!(variant, Variant::MonitorOn);
            let pool = Kamiyo(kamiyo_pool(url, "bench", setup.pool_size, monitored)?);
            let backends = pool.warm_up(setup.pool_size).await?;
            let outcome = stress::run(&pool, setup, &backends).await?;
            pool.0.close();
            outcome
        }
        Variant::Raw => {
            let pool = Raw::new(url, &DbConfig::for_url(url), setup.pool_size)?;
            let backends = pool.warm_up(setup.pool_size).await?;
            let outcome = stress::run(&pool, setup, &backends).await?;
            pool.0.close();
            outcome
        }
    };
    Ok(outcome)
}

/// Alternates the three pools round by round, rotating which goes first, so that a
/// burst of load from elsewhere on the machine hits all three alike; each figure is the
/// median of its rounds.
async fn stress_rounds(url: &str, setup: Setup, rounds: usize) -> anyhow::Result<StressFigures> {
    let monitored = Kamiyo(kamiyo_pool(url, "bench-monitored", setup.pool_size, true)?);
    let unmonitored = Kamiyo(kamiyo_pool(
        url,
        "bench-unmonitored",
        setup.pool_size,
        false,
    )?);
    let raw = Raw::new(url, &DbConfig::for_url(url), setup.pool_size)?;
    let backends = [
        monitored.warm_up(setup.pool_size).await?,
        unmonitored.warm_up(setup.pool_size).await?,
        raw.warm_up(setup.pool_size).await?,
    ];

    let mut outcomes: [Vec<Outcome>; 3] = Default::default();
    for round in 0..rounds {
        for step in 0..3 {
            let which = (round + step) % 3;
            let outcome = match which {
                0 => stress::run(&monitored, setup, &backends[0]).await?,
                1 => stress::run(&unmonitored, setup, &backends[1]).await?,
                _ => stress::run(&raw, setup, &backends[2]).await?,
            };
            // Per-run figures go to stderr: stdout stays one JSON object with --json.
            eprintln!(
                "round {}: {:<24} {:>8.0} q/s, CPU per query {:>6.2} us client {:>6.2} us server",
                round + 1,
                VARIANTS[which],
                outcome.qps,
                micros(outcome.cpu_per_query),
                micros(outcome.server_cpu_per_query),
            );
            outcomes[which].push(outcome);
        }
    }
    monitored.0.close();
    unmonitored.0.close();
    raw.0.close();
    let figures = |runs: &[Outcome]| Figures {
        qps: stats::median_f64(&runs.iter().map(|o| o.qps).collect::<Vec<_>>()),
        cpu_us_per_query: stats::median_f64(
            &runs
                .iter()
                .map(|o| micros(o.cpu_per_query))
                .collect::<Vec<_>>(),
        ),
        server_cpu_us_per_query: stats::median_f64(
            &runs
                .iter()
                .map(|o| micros(o.server_cpu_per_query))
                .collect::<Vec<_>>(),
        ),
    };
    let paired = |f: fn(f64, f64, f64) -> f64| {
        let per_round: Vec<f64> = (0..rounds)
            .map(|r| f(outcomes[0][r].qps, outcomes[1][r].qps, outcomes[2][r].qps))
            .collect();
        stats::median_f64(&per_round)
    };
    let overhead_pct = paired(|on, off, _| (1.0 - on / off) * 100.0);
    let vs_raw_pct = paired(|on, _, raw| on / raw * 100.0);
    let all = outcomes.iter().flatten();
    Ok(StressFigures {
        monitored: figures(&outcomes[0]),
        unmonitored: figures(&outcomes[1]),
        raw: figures(&outcomes[2]),
        overhead_pct,
        vs_raw_pct,
        errors: all.clone().map(|o| o.errors).sum(),
        first_error: all.filter_map(|o| o.first_error.clone()).next(),
    })
}
