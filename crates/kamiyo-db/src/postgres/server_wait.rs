//! Where an acquisition stood when its deadline passed. Waiting for a free slot means the
//! pool is exhausted: the database answers, the load is too high (`AcquireTimeout`,
//! degraded health). Waiting on the server while opening a session or checking an idle
//! one means the database does not answer (`Unavailable`, unhealthy): a hung or
//! partitioned server used to show as an exhausted pool ("0 of 16 in use"). deadpool
//! runs the manager inside the caller's `get()` and does not say where a timed-out call
//! stood, so the acquisition carries a task-local flag that the manager raises while it
//! waits on the server.

use std::cell::Cell;
use std::future::Future;

use crate::error::DbError;

tokio::task_local! {
    static WAITING_ON_SERVER: Cell<bool>;
}

/// Runs `acquisition` with the flag lowered; the caller takes it back with
/// `take_value()` once the acquisition has ended.
pub(crate) fn scope<F: Future>(
    acquisition: F,
) -> tokio::task::futures::TaskLocalFuture<Cell<bool>, F> {
    WAITING_ON_SERVER.scope(Cell::new(false), acquisition)
}

/// Runs `exchange` (connecting, a liveness check) with the flag raised; left raised when
/// the exchange is dropped unfinished, which is how a deadline ends it. Outside an
/// acquisition (the migration runner's own session) there is no flag, and nothing to do.
pub(crate) async fn on_server<F: Future>(exchange: F) -> F::Output {
    let _ = WAITING_ON_SERVER.try_with(|waiting| waiting.set(true));
    let output = exchange.await;
    let _ = WAITING_ON_SERVER.try_with(|waiting| waiting.set(false));
    output
}

/// An acquisition timeout that happened while waiting on the server becomes
/// `Unavailable`; `flag` is the scope's value taken after the acquisition ended.
pub(crate) fn classify(error: DbError, flag: Option<Cell<bool>>) -> DbError {
    match error {
        DbError::AcquireTimeout { pool, deadline, .. } if flag.is_some_and(Cell::into_inner) => {
            DbError::Unavailable {
                pool,
                reason: format!(
                    "the server did not answer while a session was opened or checked, within the acquisition deadline ({})",
                    humantime::format_duration(deadline)
                ),
                source: None,
            }
        }
        other => other,
    }
}
