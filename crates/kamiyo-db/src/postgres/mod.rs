//! The PostgreSQL pool: deadpool's FIFO semaphore (a released connection wakes the next
//! waiter directly, nothing polls) under one total acquisition deadline, with every
//! acquisition, release and statement recorded by the pool's monitor.

mod cancel;
mod listen;
mod manager;
mod queries;
mod server_wait;

use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool::managed::{Object, Pool};
use tokio_postgres::Client;

pub use cancel::CLIENT_DEADLINE_GRACE;
pub use listen::Listener;
use manager::PgManager;
pub use manager::PgSession;
pub use queries::PgTransaction;

use crate::acquire::{build_pool, checkout};
use crate::config::DbConfig;
use crate::error::DbError;
use crate::monitor::{CheckoutToken, CloseReason, PoolMonitor};
use crate::pool_state::PoolState;
use crate::reaper;

#[derive(Clone)]
pub struct PgPool {
    name: Arc<str>,
    pool: Pool<PgManager>,
    monitor: Arc<PoolMonitor>,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("name", &self.name)
            .field("state", &self.state())
            .finish()
    }
}

impl PgPool {
    /// Builds the pool without connecting: the first `acquire()` opens the first session.
    pub fn new(name: &str, config: &DbConfig) -> Result<Self, DbError> {
        Self::build(name, config, false)
    }

    /// A pool whose sessions are read-only (`default_transaction_read_only`), for a
    /// replica: a write through it fails with [`DbError::ReadOnly`].
    pub fn new_read_only(name: &str, config: &DbConfig) -> Result<Self, DbError> {
        Self::build(name, config, true)
    }

    fn build(name: &str, config: &DbConfig, read_only: bool) -> Result<Self, DbError> {
        let monitor = PoolMonitor::start(name, "postgresql", &config.monitor, config.clock.clone());
        let manager = PgManager::new(name, config, Arc::clone(&monitor), read_only)?;
        let pool = build_pool(manager, config.pool_max_size)?;
        let idle_timeout = config.idle_timeout;
        let reaper_monitor = Arc::clone(&monitor);
        reaper::spawn(
            pool.weak(),
            config.reaper_interval,
            move |session: &PgSession, _| {
                let reason = if Instant::now() >= session.expires_at {
                    CloseReason::Expired
                } else if session.returned_at.elapsed() >= idle_timeout {
                    CloseReason::Idle
                } else {
                    return true;
                };
                reaper_monitor.connection_closed(reason);
                false
            },
        );
        Ok(PgPool {
            name: Arc::from(name),
            pool,
            monitor,
            acquire_timeout: config.acquire_timeout,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    pub fn monitor(&self) -> &Arc<PoolMonitor> {
        &self.monitor
    }

    /// A live connection, or a typed error no later than the acquisition deadline. The
    /// caller's file and line are recorded for leak reports.
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<PgConnection, DbError>> + Send + '_ {
        self.acquire_at(self.acquire_timeout, Location::caller())
    }

    /// As [`acquire`](Self::acquire) with a caller-chosen deadline.
    #[track_caller]
    pub fn acquire_within(
        &self,
        deadline: Duration,
    ) -> impl Future<Output = Result<PgConnection, DbError>> + Send + '_ {
        self.acquire_at(deadline, Location::caller())
    }

    fn acquire_at(
        &self,
        deadline: Duration,
        site: &'static Location<'static>,
    ) -> impl Future<Output = Result<PgConnection, DbError>> + Send + '_ {
        server_wait::scope(move || async move {
            let (object, token) =
                checkout(&self.pool, &self.name, &self.monitor, deadline, site).await?;
            Ok(PgConnection {
                token,
                object,
                monitor: Arc::clone(&self.monitor),
            })
        })
    }

    pub fn state(&self) -> PoolState {
        PoolState::from_status(self.pool.status())
    }

    /// Opens a session that does not belong to the pool, with the same settings.
    pub(crate) async fn connect_unpooled(&self) -> Result<Client, DbError> {
        self.pool.manager().connect(true).await
    }

    /// Wakes every waiter with an error and closes idle sessions; used at shutdown.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// A connection checked out of a [`PgPool`]; returned to the pool when dropped. Its
/// query methods (in `queries.rs`) time every statement into the pool's monitor.
pub struct PgConnection {
    object: Object<PgManager>,
    monitor: Arc<PoolMonitor>,
    token: CheckoutToken,
}

impl PgConnection {
    /// The name of the pool this connection came from.
    pub fn pool_name(&self) -> &str {
        self.monitor.pool()
    }

    /// Resolves once the client-side deadline of the last statement has passed while the
    /// session sat idle, and its timer went off unused (the timer is kept between
    /// statements and re-armed by the next one). For tests of that re-arming: the
    /// deadline is a real timer on a real socket, so a test awaits it rather than
    /// sleeping for a guessed time past it.
    pub async fn idle_statement_deadline_passed(&self) {
        self.object.control.kept_timer_elapsed().await;
    }

    /// The driver client, bypassing the monitor: only for the layer's own bookkeeping.
    pub(crate) fn client(&self) -> &Client {
        &self.object.client
    }
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        self.object.returned_at = Instant::now();
        self.monitor.released(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_acquire_future_does_not_hold_the_connect_future() {
        // Nothing listens on port 1: the pool is built without connecting.
        let pool = PgPool::new("t", &DbConfig::for_url("postgres://u@127.0.0.1:1/x")).unwrap();
        let acquire = pool.acquire();
        // Every checkout copies this future; with connecting unboxed it was 7 KB, and a
        // tenth of the client's instructions per query went to memcpy (callgrind).
        let size = std::mem::size_of_val(&acquire);
        assert!(size < 4096, "acquire() future is {size} bytes");
    }
}
