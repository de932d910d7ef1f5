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

/// Runs the acquisition `start` makes with the flag lowered, and classifies its error
/// with the flag as the acquisition left it. Classifying inside the scope lets the caller
/// await the scope where it stands, instead of pinning it to read the flag back
/// afterwards; taking a function rather than the future builds the acquisition inside
/// the scope instead of moving it in.
pub(crate) fn scope<T, F, A>(start: F) -> impl Future<Output = Result<T, DbError>>
where
    F: FnOnce() -> A,
    A: Future<Output = Result<T, DbError>>,
{
    WAITING_ON_SERVER.scope(Cell::new(false), async move {
        start().await.map_err(|error| {
            let waiting = WAITING_ON_SERVER.try_with(Cell::get).unwrap_or(false);
            classify(error, waiting)
        })
    })
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
/// `Unavailable`; `waiting` is the flag as the acquisition left it.
fn classify(error: DbError, waiting: bool) -> DbError {
    match error {
        DbError::AcquireTimeout { pool, deadline, .. } if waiting => {
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
