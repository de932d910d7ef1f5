//! Closes connections that outlived `max_lifetime` or sat idle past `idle_timeout`,
//! in the background, so that a quiet service gives its connections back to the server.

use std::time::Duration;

use deadpool::managed::{Manager, Metrics, WeakPool};

/// Runs until the pool is dropped or closed: it holds only a weak reference, so it never
/// keeps a pool alive.
pub(crate) fn spawn<M, F>(pool: WeakPool<M>, every: Duration, keep: F)
where
    M: Manager + 'static,
    F: Fn(&M::Type, &Metrics) -> bool + Send + 'static,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(pool) = pool.upgrade() else { break };
            if pool.is_closed() {
                break;
            }
            let removed = pool
                .retain(|conn, metrics| keep(conn, &metrics))
                .removed
                .len();
            if removed > 0 {
                tracing::debug!(removed, "reaper closed expired or idle connections");
            }
        }
    });
}
