//! The one acquisition path both backends share: deadpool's FIFO semaphore (a release
//! hands the slot to the longest waiter and wakes it, nothing polls) under one total
//! deadline that covers waiting, connecting and the liveness check.

use std::time::Duration;

use deadpool::managed::{Manager, Object, Pool, PoolError};

use std::panic::Location;
use std::time::Instant;

use crate::error::DbError;
use crate::monitor::{CheckoutToken, PoolMonitor};
use crate::pool_state::PoolState;

pub(crate) async fn get_within<M>(
    pool: &Pool<M>,
    name: &str,
    deadline: Duration,
) -> Result<Object<M>, DbError>
where
    M: Manager<Error = DbError>,
{
    // deadpool's own timeouts are left unset: three separate budgets would add up to
    // more than the caller was promised. Dropping the future on expiry is safe: deadpool
    // gives back the semaphore permit and discards a half-made connection.
    match tokio::time::timeout(deadline, pool.get()).await {
        Ok(Ok(object)) => Ok(object),
        Ok(Err(PoolError::Backend(e))) => Err(e),
        Ok(Err(PoolError::PostCreateHook(e))) => Err(DbError::other(e.to_string())),
        Ok(Err(PoolError::Closed | PoolError::NoRuntimeSpecified)) => Err(DbError::Unavailable {
            pool: name.to_owned(),
            reason: "the pool is closed".into(),
            source: None,
        }),
        Ok(Err(PoolError::Timeout(_))) | Err(_) => Err(DbError::AcquireTimeout {
            pool: name.to_owned(),
            deadline,
            state: PoolState::from_status(pool.status()),
        }),
    }
}

/// [`get_within`] with the monitor told either way: the wait and the call site on
/// success (the token the connection guard gives back on release), the failure's kind
/// otherwise. Both pools acquire through here.
pub(crate) async fn checkout<M>(
    pool: &Pool<M>,
    name: &str,
    monitor: &PoolMonitor,
    deadline: Duration,
    site: &'static Location<'static>,
) -> Result<(Object<M>, CheckoutToken), DbError>
where
    M: Manager<Error = DbError>,
{
    let started = Instant::now();
    match get_within(pool, name, deadline).await {
        Ok(object) => Ok((object, monitor.acquired(started, site))),
        Err(error) => {
            monitor.acquire_failed(&error);
            Err(error)
        }
    }
}

pub(crate) fn build_pool<M: Manager>(manager: M, max_size: usize) -> Result<Pool<M>, DbError> {
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Config {
            field: "database.pool_max_size".into(),
            message: e.to_string(),
        })
}
