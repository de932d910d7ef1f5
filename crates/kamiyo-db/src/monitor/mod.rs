//! The monitor: one per pool, owned by the pool and so by the `Database` value (never a
//! global). Every acquisition, release, connection and query passes it on the way; the
//! JSON endpoints and `/metrics` read it; nothing else keeps counters of its own.

mod config;
pub(crate) mod export;
pub mod fingerprint;
mod health;
pub mod histogram;
mod leaks;
pub mod prometheus;
mod queries;
mod window;

use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use config::MonitorConfig;
pub(crate) use health::{evaluate, PoolEvidence};
pub use health::{HealthReport, HealthStatus, HealthWarning};
pub use histogram::LatencySummary;
pub use leaks::LeakWarning;
pub use queries::{QuerySort, SlowQuery, StatementReport};
pub use window::WindowTotals;

use crate::clock::Clock;
use crate::error::DbError;
use crate::pool_state::PoolState;
use histogram::AtomicHistogram;
use leaks::Checkouts;
use queries::QueryRegistry;
use window::RollingWindow;

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The server or the network closed it.
    Broken,
    /// It reached its maximum lifetime.
    Expired,
    /// It sat idle past the idle timeout.
    Idle,
    /// Its liveness check before use failed.
    FailedCheck,
}

impl CloseReason {
    const ALL: [CloseReason; 4] = [
        CloseReason::Broken,
        CloseReason::Expired,
        CloseReason::Idle,
        CloseReason::FailedCheck,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Broken => "broken",
            CloseReason::Expired => "expired",
            CloseReason::Idle => "idle",
            CloseReason::FailedCheck => "failed_check",
        }
    }
}

/// What a checked-out connection carries so that its release can be recorded.
#[derive(Debug)]
pub struct CheckoutToken {
    id: Option<u64>,
    acquired: Instant,
}

#[derive(Debug)]
pub struct PoolMonitor {
    pool: String,
    system: &'static str,
    config: MonitorConfig,
    acquisitions: AtomicU64,
    timeouts: AtomicU64,
    connect_errors: AtomicU64,
    other_failures: AtomicU64,
    created: AtomicU64,
    closed: [AtomicU64; 4],
    wait: AtomicHistogram,
    use_time: AtomicHistogram,
    create_time: AtomicHistogram,
    window: RollingWindow,
    queries: QueryRegistry,
    checkouts: Checkouts,
}

impl PoolMonitor {
    /// A monitor for one pool; starts its leak watchdog when leak detection is on (and a
    /// Tokio runtime is running). Each pool creates its own; this is public so that a
    /// monitor can also be measured on its own (`kamiyo-bench monitor`).
    /// `clock` places events in the health window (see [`crate::clock`]); waits and use
    /// times are measured on the real clock, as the acquisitions really took them.
    pub fn start(
        pool: &str,
        system: &'static str,
        config: &MonitorConfig,
        clock: Clock,
    ) -> Arc<Self> {
        let monitor = Arc::new(PoolMonitor {
            pool: pool.to_owned(),
            system,
            config: config.clone(),
            acquisitions: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            other_failures: AtomicU64::new(0),
            created: AtomicU64::new(0),
            closed: std::array::from_fn(|_| AtomicU64::new(0)),
            wait: AtomicHistogram::default(),
            use_time: AtomicHistogram::default(),
            create_time: AtomicHistogram::default(),
            window: RollingWindow::new(config.health_window, clock),
            queries: QueryRegistry::new(
                config.max_statements,
                config.slow_query_threshold,
                config.slow_query_log_size,
            ),
            checkouts: Checkouts::default(),
        });
        if config.enabled && config.leak_detection {
            spawn_watchdog(
                Arc::downgrade(&monitor),
                config.leak_check_interval,
                config.leak_threshold,
            );
        }
        monitor
    }

    pub fn pool(&self) -> &str {
        &self.pool
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Records an acquisition that began at `started` and succeeded now, taken at `site`;
    /// the token goes back to [`released`](Self::released) when the connection does.
    /// The pools call this for every checkout; public for measuring the monitor alone.
    pub fn acquired(&self, started: Instant, site: &'static Location<'static>) -> CheckoutToken {
        let now = Instant::now();
        if !self.config.enabled {
            return CheckoutToken {
                id: None,
                acquired: now,
            };
        }
        let wait = now.duration_since(started);
        self.acquisitions.fetch_add(1, Ordering::Relaxed);
        self.wait.record(wait);
        self.window.record_acquisition(wait);
        let id = self
            .config
            .leak_detection
            .then(|| self.checkouts.register(site, now));
        CheckoutToken { id, acquired: now }
    }

    pub(crate) fn acquire_failed(&self, error: &DbError) {
        if !self.config.enabled {
            return;
        }
        let timed_out = matches!(error, DbError::AcquireTimeout { .. });
        let counter = match error {
            DbError::AcquireTimeout { .. } => &self.timeouts,
            DbError::Unavailable { .. } => &self.connect_errors,
            _ => &self.other_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.window.record_failure(timed_out);
    }

    /// Records the release of the connection `token` was given for: its use time, and
    /// the end of its leak-detection entry.
    pub fn released(&self, token: &CheckoutToken) {
        if !self.config.enabled {
            return;
        }
        self.use_time.record(token.acquired.elapsed());
        if let Some(id) = token.id {
            self.checkouts.release(&self.pool, id);
        }
    }

    pub(crate) fn connection_created(&self, took: Duration) {
        if self.config.enabled {
            self.created.fetch_add(1, Ordering::Relaxed);
            self.create_time.record(took);
        }
    }

    pub(crate) fn connection_closed(&self, reason: CloseReason) {
        if self.config.enabled {
            let index = CloseReason::ALL
                .iter()
                .position(|r| *r == reason)
                .unwrap_or(0);
            self.closed[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one statement execution: its time, rows and whether it failed.
    pub fn record_query(&self, sql: &str, elapsed: Duration, rows: u64, failed: bool) {
        if self.config.enabled {
            self.queries.record(&self.pool, sql, elapsed, rows, failed);
        }
    }

    pub fn leaks(&self) -> Vec<LeakWarning> {
        if !(self.config.enabled && self.config.leak_detection) {
            return Vec::new();
        }
        self.checkouts.leaks(&self.pool, self.config.leak_threshold)
    }

    pub fn slow_queries(&self, limit: usize) -> Vec<SlowQuery> {
        self.queries.slow_queries(limit)
    }

    pub fn statements(&self, sort: QuerySort, limit: usize) -> Vec<StatementReport> {
        self.queries.top(sort, limit)
    }

    pub fn statements_tracked(&self) -> usize {
        self.queries.tracked()
    }

    pub fn window(&self) -> WindowTotals {
        self.window.totals()
    }

    pub fn report(&self, state: PoolState) -> PoolReport {
        let closed = |reason: CloseReason| {
            let index = CloseReason::ALL
                .iter()
                .position(|r| *r == reason)
                .unwrap_or(0);
            self.closed[index].load(Ordering::Relaxed)
        };
        PoolReport {
            name: self.pool.clone(),
            system: self.system,
            state,
            utilization_pct: health::utilization_pct(&state),
            acquisitions: AcquisitionReport {
                total: self.acquisitions.load(Ordering::Relaxed),
                timeouts: self.timeouts.load(Ordering::Relaxed),
                connect_errors: self.connect_errors.load(Ordering::Relaxed),
                other_failures: self.other_failures.load(Ordering::Relaxed),
                wait: self.wait.snapshot().summary(),
                use_time: self.use_time.snapshot().summary(),
            },
            connections: ConnectionReport {
                created: self.created.load(Ordering::Relaxed),
                create_time: self.create_time.snapshot().summary(),
                closed_broken: closed(CloseReason::Broken),
                closed_expired: closed(CloseReason::Expired),
                closed_idle: closed(CloseReason::Idle),
                closed_failed_check: closed(CloseReason::FailedCheck),
            },
            window: self.window.totals(),
            statements_tracked: self.queries.tracked(),
            statement_evictions: self.queries.evictions(),
            slow_queries_total: self.queries.slow_total(),
        }
    }
}

fn spawn_watchdog(monitor: Weak<PoolMonitor>, every: Duration, threshold: Duration) {
    // Without a runtime (a monitor built in a synchronous test) there is no watchdog;
    // the leak list is still computed on demand.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(monitor) = monitor.upgrade() else {
                break;
            };
            monitor.checkouts.report_new_leaks(&monitor.pool, threshold);
        }
    });
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PoolReport {
    pub name: String,
    /// `postgresql` or `sqlite`.
    pub system: &'static str,
    pub state: PoolState,
    pub utilization_pct: f64,
    pub acquisitions: AcquisitionReport,
    pub connections: ConnectionReport,
    pub window: WindowTotals,
    pub statements_tracked: usize,
    pub statement_evictions: u64,
    pub slow_queries_total: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AcquisitionReport {
    pub total: u64,
    pub timeouts: u64,
    pub connect_errors: u64,
    pub other_failures: u64,
    /// From the call to `acquire()` to holding a connection.
    pub wait: LatencySummary,
    /// From holding a connection to giving it back.
    pub use_time: LatencySummary,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectionReport {
    pub created: u64,
    pub create_time: LatencySummary,
    pub closed_broken: u64,
    pub closed_expired: u64,
    pub closed_idle: u64,
    pub closed_failed_check: u64,
}
