//! The SQLite pool. rusqlite is blocking, so each connection lives behind deadpool-sync's
//! wrapper and runs its work on Tokio's blocking threads; the async side only waits.

mod open;
mod trace;

use std::future::Future;
use std::panic::Location;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool::managed::{Manager, Metrics, Object, Pool, RecycleError, RecycleResult};
use deadpool_sync::SyncWrapper;
use rusqlite::types::Value;
use rusqlite::{Connection, Row};

pub(crate) use open::open_connection;
pub use open::{fold_case, UNICODE_LOWER};

use crate::acquire::{build_pool, checkout};
use crate::config::DbConfig;
use crate::error::DbError;
use crate::monitor::{CheckoutToken, CloseReason, PoolMonitor};
use crate::pool_state::PoolState;
use crate::reaper;

pub(crate) struct SqliteManager {
    pool_name: String,
    path: PathBuf,
    busy_timeout: Duration,
    monitor: Arc<PoolMonitor>,
}

impl Manager for SqliteManager {
    type Type = SyncWrapper<Connection>;
    type Error = DbError;

    async fn create(&self) -> Result<Self::Type, DbError> {
        let started = Instant::now();
        let path = self.path.clone();
        let busy_timeout = self.busy_timeout;
        let conn = SyncWrapper::new(deadpool::Runtime::Tokio1, move || {
            open_connection(&path, busy_timeout)
        })
        .await
        .map_err(|e| DbError::from_sqlite(&self.pool_name, e))?;
        self.monitor.connection_created(started.elapsed());
        Ok(conn)
    }

    async fn recycle(&self, conn: &mut Self::Type, _: &Metrics) -> RecycleResult<DbError> {
        // A closure that panicked mid-transaction poisons the wrapper; such a connection
        // may hold an open transaction and is thrown away.
        if conn.is_mutex_poisoned() {
            self.monitor.connection_closed(CloseReason::Broken);
            return Err(RecycleError::message("connection was poisoned by a panic"));
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct SqlitePool {
    name: Arc<str>,
    pool: Pool<SqliteManager>,
    monitor: Arc<PoolMonitor>,
    acquire_timeout: Duration,
    path: PathBuf,
}

impl std::fmt::Debug for SqlitePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePool")
            .field("path", &self.path)
            .field("state", &self.state())
            .finish()
    }
}

impl SqlitePool {
    pub fn new(name: &str, config: &DbConfig) -> Result<Self, DbError> {
        let path = config.url.sqlite_target()?.path;
        let monitor = PoolMonitor::start(name, "sqlite", &config.monitor, config.clock.clone());
        let manager = SqliteManager {
            pool_name: name.to_owned(),
            path: path.clone(),
            busy_timeout: config.sqlite_busy_timeout,
            monitor: Arc::clone(&monitor),
        };
        let pool = build_pool(manager, config.pool_max_size)?;
        let idle_timeout = config.idle_timeout;
        let reaper_monitor = Arc::clone(&monitor);
        reaper::spawn(
            pool.weak(),
            config.reaper_interval,
            move |_, metrics: &Metrics| {
                let keep = metrics.last_used() < idle_timeout;
                if !keep {
                    reaper_monitor.connection_closed(CloseReason::Idle);
                }
                keep
            },
        );
        Ok(SqlitePool {
            name: Arc::from(name),
            pool,
            monitor,
            acquire_timeout: config.acquire_timeout,
            path,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn monitor(&self) -> &Arc<PoolMonitor> {
        &self.monitor
    }

    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<SqliteConnection, DbError>> + Send + '_ {
        self.acquire_at(self.acquire_timeout, Location::caller())
    }

    #[track_caller]
    pub fn acquire_within(
        &self,
        deadline: Duration,
    ) -> impl Future<Output = Result<SqliteConnection, DbError>> + Send + '_ {
        self.acquire_at(deadline, Location::caller())
    }

    async fn acquire_at(
        &self,
        deadline: Duration,
        site: &'static Location<'static>,
    ) -> Result<SqliteConnection, DbError> {
        let (object, token) =
            checkout(&self.pool, &self.name, &self.monitor, deadline, site).await?;
        Ok(SqliteConnection {
            token,
            object,
            monitor: Arc::clone(&self.monitor),
        })
    }

    pub fn state(&self) -> PoolState {
        PoolState::from_status(self.pool.status())
    }

    pub fn close(&self) {
        self.pool.close();
    }
}

/// A connection checked out of a [`SqlitePool`]; returned to the pool when dropped.
pub struct SqliteConnection {
    object: Object<SqliteManager>,
    monitor: Arc<PoolMonitor>,
    token: CheckoutToken,
}

impl SqliteConnection {
    /// Runs `work` on a blocking thread with the connection; driver errors come back
    /// classified. Every statement it runs is timed and fingerprinted into the monitor
    /// (SQLite's own profile events; see `trace.rs`), transactions and multi-statement
    /// work included. When the closure fails, its last statement is counted as the one
    /// that failed. Rows are counted only by [`query`](Self::query) and
    /// [`execute`](Self::execute), which know them.
    pub async fn run<F, R>(&self, work: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.run_counted(work, |_| 0).await
    }

    /// [`run`](Self::run), with the last statement's rows given by `rows`.
    async fn run_counted<F, R>(
        &self,
        work: F,
        rows: impl FnOnce(&R) -> u64 + Send + 'static,
    ) -> Result<R, DbError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let pool = self.monitor.pool().to_owned();
        let monitor = Arc::clone(&self.monitor);
        self.object
            .interact(move |conn| {
                let (result, finished) = trace::capture(|| work(conn));
                let last = finished.len().saturating_sub(1);
                let (last_rows, failed) = match &result {
                    Ok(value) => (rows(value), false),
                    Err(_) => (0, true),
                };
                for (at, statement) in finished.iter().enumerate() {
                    let (rows, failed) = if at == last {
                        (last_rows, failed)
                    } else {
                        (0, false)
                    };
                    monitor.record_query(&statement.sql, statement.elapsed, rows, failed);
                }
                result
            })
            .await
            .map_err(|e| DbError::Other {
                message: format!("SQLite work on pool \"{pool}\" did not complete: {e}"),
                source: None,
            })?
            .map_err(|e| DbError::from_sqlite(&pool, e))
    }

    /// Rows of one statement, each mapped by `map`.
    pub async fn query<T, F>(
        &self,
        sql: &str,
        params: Vec<Value>,
        mut map: F,
    ) -> Result<Vec<T>, DbError>
    where
        T: Send + 'static,
        F: FnMut(&Row<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let text = sql.to_owned();
        self.run_counted(
            move |c| {
                let mut statement = c.prepare_cached(&text)?;
                let rows = statement.query_map(rusqlite::params_from_iter(params), &mut map)?;
                rows.collect::<rusqlite::Result<Vec<T>>>()
            },
            |rows| rows.len() as u64,
        )
        .await
    }

    /// Rows changed by one statement.
    pub async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<usize, DbError> {
        let text = sql.to_owned();
        self.run_counted(
            move |c| {
                c.prepare_cached(&text)?
                    .execute(rusqlite::params_from_iter(params))
            },
            |changed| *changed as u64,
        )
        .await
    }

    pub fn pool_name(&self) -> &str {
        self.monitor.pool()
    }
}

impl Drop for SqliteConnection {
    fn drop(&mut self) {
        self.monitor.released(&self.token);
    }
}
