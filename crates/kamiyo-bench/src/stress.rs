//! The stress run: `workers` tasks share a budget of `queries` executions of `SELECT 1`;
//! each execution checks a connection out, runs the statement and gives it back, as a
//! request handler does. The same loop drives a Kamiyo pool and a bare deadpool-postgres
//! pool, so the difference between them is the wrapper (deadline, monitor, statement
//! cache of our own) and nothing else.

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use kamiyo_db::postgres::{PgConnection, PgPool};
use kamiyo_db::DbConfig;

pub const SQL: &str = "SELECT 1";
const BACKEND_PID: &str = "SELECT pg_backend_pid()";

#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub workers: usize,
    pub pool_size: usize,
    pub queries: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub qps: f64,
    /// CPU time of this whole process per query (client side only), or zero where
    /// `/proc` is not available. Less sensitive than throughput to other load on the
    /// machine, which shares the cores with the server.
    pub cpu_per_query: Duration,
    /// CPU time of the pool's server processes per query, read from `/proc` when the
    /// server runs on this machine (zero otherwise). With the client's, the cost a
    /// CPU-bound machine pays per query whatever else runs on it.
    pub server_cpu_per_query: Duration,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Something that can run one `SELECT 1` on a pooled connection.
pub trait Target: Clone + Send + Sync + 'static {
    fn select_one(&self) -> impl Future<Output = anyhow::Result<()>> + Send;
}

#[derive(Clone)]
pub struct Kamiyo(pub PgPool);

impl Target for Kamiyo {
    async fn select_one(&self) -> anyhow::Result<()> {
        let conn = self.0.acquire().await?;
        conn.query(SQL, &[]).await?;
        Ok(())
    }
}

/// deadpool-postgres with `prepare_cached`, the nearest equivalent of Kamiyo's
/// per-session statement cache, and the `Fast` recycling method (no round trip on
/// checkout), as Kamiyo skips its liveness check for a session used within 500 ms.
#[derive(Clone)]
pub struct Raw(pub deadpool_postgres::Pool);

impl Raw {
    /// A bare pool whose sessions get the server settings Kamiyo's get (the `options`
    /// that `PgManager::new` in kamiyo-db's `postgres/manager.rs` builds from `config`),
    /// so that the comparison measures the client-side wrapper and nothing on the
    /// server: `statement_timeout` arms a timer per statement and
    /// `force_custom_plan` plans every execution, both server work.
    pub fn new(database_url: &str, config: &DbConfig, max_size: usize) -> anyhow::Result<Raw> {
        let mut pg_config: tokio_postgres::Config = database_url
            .parse()
            .context("parsing the database URL for the bare deadpool-postgres pool")?;
        pg_config.options(format!(
            "-c statement_timeout={} -c idle_in_transaction_session_timeout={} \
             -c max_parallel_workers_per_gather=0 -c plan_cache_mode=force_custom_plan",
            config.statement_timeout.as_millis(),
            config.idle_in_transaction_timeout.as_millis(),
        ));
        let manager = deadpool_postgres::Manager::from_config(
            pg_config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(max_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .context("building the bare deadpool-postgres pool")?;
        Ok(Raw(pool))
    }

    /// Opens every connection of the pool and prepares the statement on each, so that
    /// the timed runs measure neither connecting nor preparing; returns the server
    /// process id of each session.
    pub async fn warm_up(&self, size: usize) -> anyhow::Result<Vec<i32>> {
        let mut held = Vec::with_capacity(size);
        let mut backends = Vec::with_capacity(size);
        for _ in 0..size {
            let client = self.0.get().await?;
            let statement = client.prepare_cached(SQL).await?;
            client.query(&statement, &[]).await?;
            backends.push(client.query_one(BACKEND_PID, &[]).await?.try_get(0)?);
            held.push(client);
        }
        Ok(backends)
    }
}

impl Target for Raw {
    async fn select_one(&self) -> anyhow::Result<()> {
        let client = self.0.get().await?;
        let statement = client.prepare_cached(SQL).await?;
        client.query(&statement, &[]).await?;
        Ok(())
    }
}

impl Kamiyo {
    /// As [`Raw::warm_up`]: every session opened, `SELECT 1` prepared on each.
    pub async fn warm_up(&self, size: usize) -> anyhow::Result<Vec<i32>> {
        let mut held: Vec<PgConnection> = Vec::with_capacity(size);
        let mut backends = Vec::with_capacity(size);
        for _ in 0..size {
            let conn = self.0.acquire().await?;
            conn.query(SQL, &[]).await?;
            backends.push(conn.query_one(BACKEND_PID, &[]).await?.try_get(0)?);
            held.push(conn);
        }
        Ok(backends)
    }
}

/// Runs `setup.queries` executions over `setup.workers` tasks; throughput is counted over
/// the whole run, from the first spawn to the last worker's end.
pub async fn run<T: Target>(target: &T, setup: Setup, backends: &[i32]) -> anyhow::Result<Outcome> {
    let remaining = Arc::new(AtomicI64::new(
        i64::try_from(setup.queries).context("--stress-queries is too large")?,
    ));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let cpu_before = process_cpu_time();
    let server_before = backends_cpu_time(backends);
    let started = Instant::now();
    let mut workers = Vec::with_capacity(setup.workers);
    for _ in 0..setup.workers {
        let target = target.clone();
        let remaining = Arc::clone(&remaining);
        let errors = Arc::clone(&errors);
        let first_error = Arc::clone(&first_error);
        workers.push(tokio::spawn(async move {
            while remaining.fetch_sub(1, Ordering::Relaxed) > 0 {
                if let Err(error) = target.select_one().await {
                    errors.fetch_add(1, Ordering::Relaxed);
                    let _ = first_error.set(format!("{error:#}"));
                }
            }
        }));
    }
    for worker in workers {
        worker.await.context("a stress worker panicked")?;
    }
    let elapsed = started.elapsed();
    let cpu = match (cpu_before, process_cpu_time()) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => Duration::ZERO,
    };
    let server_cpu = match (server_before, backends_cpu_time(backends)) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => Duration::ZERO,
    };
    let first_error = first_error.get().cloned();
    Ok(Outcome {
        qps: setup.queries as f64 / elapsed.as_secs_f64(),
        cpu_per_query: cpu.div_f64(setup.queries.max(1) as f64),
        server_cpu_per_query: server_cpu.div_f64(setup.queries.max(1) as f64),
        errors: errors.load(Ordering::Relaxed),
        first_error,
    })
}

/// Time on CPU of every thread of this process, from Linux's per-thread scheduler
/// statistics (nanoseconds, unlike the 10 ms ticks of `/proc/self/stat`).
fn process_cpu_time() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread that ended since the listing has no file any more; skip it.
        let Ok(stat) = std::fs::read_to_string(path) else {
            continue;
        };
        total += on_cpu_nanos(&stat)?;
    }
    Some(Duration::from_nanos(total))
}

/// Time on CPU of the given server processes (single-threaded); `None` when one cannot
/// be read (a server on another machine or in another PID namespace).
fn backends_cpu_time(pids: &[i32]) -> Option<Duration> {
    let mut total = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
        total += on_cpu_nanos(&stat)?;
    }
    Some(Duration::from_nanos(total))
}

fn on_cpu_nanos(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}
