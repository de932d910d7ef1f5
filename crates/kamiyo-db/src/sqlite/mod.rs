//! The SQLite pool. rusqlite is blocking, so each connection lives behind deadpool-sync's
//! wrapper and runs its work on Tokio's blocking threads; the async side only waits.

mod open;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Manager, Metrics, Object, Pool, RecycleError, RecycleResult};
use deadpool_sync::SyncWrapper;
use rusqlite::Connection;

pub(crate) use open::open_connection;

use crate::acquire::{build_pool, get_within};
use crate::config::DbConfig;
use crate::error::DbError;
use crate::pool_state::PoolState;
use crate::reaper;

pub(crate) struct SqliteManager {
    pool_name: String,
    path: PathBuf,
    busy_timeout: Duration,
}

impl Manager for SqliteManager {
    type Type = SyncWrapper<Connection>;
    type Error = DbError;

    async fn create(&self) -> Result<Self::Type, DbError> {
        let path = self.path.clone();
        let busy_timeout = self.busy_timeout;
        SyncWrapper::new(deadpool::Runtime::Tokio1, move || {
            open_connection(&path, busy_timeout)
        })
        .await
        .map_err(|e| DbError::from_sqlite(&self.pool_name, e))
    }

    async fn recycle(&self, conn: &mut Self::Type, _: &Metrics) -> RecycleResult<DbError> {
        // A closure that panicked mid-transaction poisons the wrapper; such a connection
        // may hold an open transaction and is thrown away.
        if conn.is_mutex_poisoned() {
            return Err(RecycleError::message("connection was poisoned by a panic"));
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct SqlitePool {
    name: Arc<str>,
    pool: Pool<SqliteManager>,
    acquire_timeout: Duration,
    path: PathBuf,
}

impl SqlitePool {
    pub fn new(name: &str, config: &DbConfig) -> Result<Self, DbError> {
        let path = config.url.sqlite_target()?.path;
        let manager = SqliteManager {
            pool_name: name.to_owned(),
            path: path.clone(),
            busy_timeout: config.sqlite_busy_timeout,
        };
        let pool = build_pool(manager, config.pool_max_size)?;
        let idle_timeout = config.idle_timeout;
        reaper::spawn(
            pool.weak(),
            config.reaper_interval,
            move |_, metrics: &Metrics| metrics.last_used() < idle_timeout,
        );
        Ok(SqlitePool {
            name: Arc::from(name),
            pool,
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

    pub async fn acquire(&self) -> Result<SqliteConnection, DbError> {
        self.acquire_within(self.acquire_timeout).await
    }

    pub async fn acquire_within(&self, deadline: Duration) -> Result<SqliteConnection, DbError> {
        let object = get_within(&self.pool, &self.name, deadline).await?;
        Ok(SqliteConnection {
            object,
            pool: Arc::clone(&self.name),
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
    pool: Arc<str>,
}

impl SqliteConnection {
    /// Runs `work` on a blocking thread with the connection; driver errors come back
    /// classified.
    pub async fn run<F, R>(&self, work: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let pool = Arc::clone(&self.pool);
        self.object
            .interact(work)
            .await
            .map_err(|e| DbError::Other {
                message: format!("SQLite work on pool \"{pool}\" did not complete: {e}"),
                source: None,
            })?
            .map_err(|e| DbError::from_sqlite(&pool, e))
    }

    pub fn pool_name(&self) -> &str {
        &self.pool
    }
}
