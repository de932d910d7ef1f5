//! The PostgreSQL pool: deadpool's FIFO semaphore (a released connection wakes the next
//! waiter directly, nothing polls) under one total acquisition deadline.

mod manager;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool::managed::{Object, Pool};
use tokio_postgres::Client;

use manager::PgManager;
pub use manager::PgSession;

use crate::acquire::{build_pool, get_within};
use crate::config::DbConfig;
use crate::error::DbError;
use crate::pool_state::PoolState;
use crate::reaper;

#[derive(Clone)]
pub struct PgPool {
    name: Arc<str>,
    pool: Pool<PgManager>,
    acquire_timeout: Duration,
}

impl PgPool {
    /// Builds the pool without connecting: the first `acquire()` opens the first session.
    pub fn new(name: &str, config: &DbConfig) -> Result<Self, DbError> {
        let manager = PgManager::new(name, config)?;
        let pool = build_pool(manager, config.pool_max_size)?;
        let idle_timeout = config.idle_timeout;
        let weak = pool.weak();
        reaper::spawn(
            weak,
            config.reaper_interval,
            move |session: &PgSession, _| {
                Instant::now() < session.expires_at && session.returned_at.elapsed() < idle_timeout
            },
        );
        Ok(PgPool {
            name: Arc::from(name),
            pool,
            acquire_timeout: config.acquire_timeout,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    /// A live connection, or a typed error no later than the acquisition deadline.
    pub async fn acquire(&self) -> Result<PgConnection, DbError> {
        self.acquire_within(self.acquire_timeout).await
    }

    /// As [`acquire`](Self::acquire) with a caller-chosen deadline.
    pub async fn acquire_within(&self, deadline: Duration) -> Result<PgConnection, DbError> {
        let object = get_within(&self.pool, &self.name, deadline).await?;
        Ok(PgConnection {
            object,
            pool: Arc::clone(&self.name),
        })
    }

    pub fn state(&self) -> PoolState {
        PoolState::from_status(self.pool.status())
    }

    /// Opens a session that does not belong to the pool, with the same settings.
    pub(crate) async fn connect_unpooled(&self) -> Result<Client, DbError> {
        self.pool.manager().connect().await
    }

    /// Wakes every waiter with an error and closes idle sessions; used at shutdown.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// A connection checked out of a [`PgPool`]; returned to the pool when dropped.
pub struct PgConnection {
    object: Object<PgManager>,
    pool: Arc<str>,
}

impl PgConnection {
    /// The name of the pool this connection came from, for error classification.
    pub fn pool_name(&self) -> &str {
        &self.pool
    }

    /// Turns a driver error on this connection into a typed [`DbError`].
    pub fn error(&self, err: tokio_postgres::Error) -> DbError {
        DbError::from_postgres(&self.pool, err)
    }
}

impl Deref for PgConnection {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.object.client
    }
}

impl DerefMut for PgConnection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.object.client
    }
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        self.object.returned_at = Instant::now();
    }
}
