//! The optional read replica: its pool (read-only sessions), a background check of its
//! replay lag, and the decision, per read, between the replica and the primary.
//!
//! A read goes to the replica while the last check found it reachable and within
//! `replica_max_lag`. A replica that is down or lagging is skipped without being tried
//! (so an outage does not cost every read a timeout), and a read that fails on it for
//! a reason of the server or the network is run again on the primary; each fallback is
//! logged at WARN and counted by reason. The replica comes back into use when a check
//! finds it reachable and caught up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::config::DbConfig;
use crate::error::DbError;
use crate::postgres::PgPool;

/// The name of the replica's pool, in metrics and health.
pub const REPLICA_POOL: &str = "replica";

/// What the last check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// Not checked yet: reads try it.
    Unknown,
    /// Reachable and within the maximum lag: reads use it.
    InUse,
    /// Reachable, but behind the primary by more than the maximum lag.
    Lagging,
    /// It did not answer, or a read on it failed for a reason of the server.
    Down,
}

impl ReplicaState {
    /// Whether reads go to the replica in this state.
    pub fn serves_reads(self) -> bool {
        matches!(self, ReplicaState::Unknown | ReplicaState::InUse)
    }
}

/// The replica as the last check (or the last failed read) saw it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReplicaStatus {
    pub state: ReplicaState,
    /// Seconds of replay lag at the last successful check; 0 when it has replayed
    /// everything it received.
    pub lag_seconds: Option<f64>,
    /// The maximum lag at which the replica is still used.
    pub max_lag_seconds: f64,
    /// Why it is down, in words safe to show (no host names).
    pub reason: Option<String>,
}

/// Why a read went to the primary instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// The replica was known to be down.
    Down,
    /// The replica was known to lag.
    Lagging,
    /// The read failed on the replica (no connection in time, connection lost).
    Failed,
}

impl FallbackReason {
    pub const ALL: [FallbackReason; 3] = [
        FallbackReason::Down,
        FallbackReason::Lagging,
        FallbackReason::Failed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            FallbackReason::Down => "replica_down",
            FallbackReason::Lagging => "replica_lagging",
            FallbackReason::Failed => "replica_failed",
        }
    }
}

pub(crate) struct Replica {
    pool: PgPool,
    max_lag: Duration,
    status: watch::Sender<ReplicaStatus>,
    fallbacks: [AtomicU64; 3],
}

/// Lag in seconds: zero when everything received has been replayed (an idle primary
/// sends nothing, and "time since the last replayed transaction" would grow forever);
/// otherwise the age of the last replayed transaction. A server that is not in
/// recovery is no replica at all: reported as NULL.
const LAG_QUERY: &str = "SELECT CASE \
       WHEN NOT pg_is_in_recovery() THEN NULL \
       WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0::float8 \
       ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, 0::float8) \
     END";

impl Replica {
    /// The replica's pool (read-only sessions, its own acquisition deadline) and its lag
    /// checker, which stops when the `Database` is dropped.
    pub(crate) fn start(config: &DbConfig) -> Result<Option<Arc<Replica>>, DbError> {
        let Some(url) = &config.read_url else {
            return Ok(None);
        };
        // The replica is reached directly (`database.transaction_pooling` describes
        // `database.url` alone): its sessions keep their start-up settings, read-only
        // included, and nothing of it goes to the primary's direct URL.
        let replica_config = DbConfig {
            url: url.clone(),
            acquire_timeout: config.replica_acquire_timeout,
            transaction_pooling: false,
            direct_url: None,
            ..config.clone()
        };
        let pool = PgPool::new_read_only(REPLICA_POOL, &replica_config)?;
        let (status, _) = watch::channel(ReplicaStatus {
            state: ReplicaState::Unknown,
            lag_seconds: None,
            max_lag_seconds: config.replica_max_lag.as_secs_f64(),
            reason: None,
        });
        let replica = Arc::new(Replica {
            pool,
            max_lag: config.replica_max_lag,
            status,
            fallbacks: Default::default(),
        });
        spawn_checker(
            Arc::downgrade(&replica),
            config.replica_check_interval,
            config.replica_acquire_timeout + config.connect_timeout,
        );
        Ok(Some(replica))
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn status(&self) -> ReplicaStatus {
        self.status.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<ReplicaStatus> {
        self.status.subscribe()
    }

    /// `None` when reads may use the replica, else why not.
    pub(crate) fn skip_reason(&self) -> Option<FallbackReason> {
        match self.status.borrow().state {
            ReplicaState::Lagging => Some(FallbackReason::Lagging),
            ReplicaState::Down => Some(FallbackReason::Down),
            ReplicaState::Unknown | ReplicaState::InUse => None,
        }
    }

    pub(crate) fn fallbacks(&self) -> Vec<(FallbackReason, u64)> {
        FallbackReason::ALL
            .iter()
            .zip(&self.fallbacks)
            .map(|(reason, count)| (*reason, count.load(Ordering::Relaxed)))
            .collect()
    }

    pub(crate) fn fell_back(&self, reason: FallbackReason, error: Option<&DbError>) {
        if let Some(slot) = FallbackReason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.fallbacks.get(i))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        match error {
            Some(error) => {
                tracing::warn!(%error, reason = reason.label(), "read on the replica failed; served by the primary");
                // Until a check finds it healthy again, reads skip it rather than each
                // paying the failure.
                self.record(
                    ReplicaState::Down,
                    None,
                    Some("a read on the replica failed"),
                );
            }
            // Known state: the transition was logged at WARN by `record`; per read, a
            // counter is enough.
            None => tracing::debug!(reason = reason.label(), "read served by the primary"),
        }
    }

    fn record(&self, state: ReplicaState, lag_seconds: Option<f64>, reason: Option<&str>) {
        let max_lag_seconds = self.max_lag.as_secs_f64();
        self.status.send_if_modified(|status| {
            let before = status.state;
            status.state = state;
            status.reason = reason.map(str::to_owned);
            if lag_seconds.is_some() {
                status.lag_seconds = lag_seconds;
            }
            if before != state {
                match state {
                    ReplicaState::InUse => {
                        tracing::info!(lag_seconds, "replica in use")
                    }
                    _ => tracing::warn!(
                        state = ?state,
                        lag_seconds,
                        max_lag_seconds,
                        reason,
                        "replica not used; reads go to the primary"
                    ),
                }
                return true;
            }
            // Lag changes alone do not wake watchers: they would on every check.
            false
        });
    }

    /// One check: the replica's lag, within `deadline`.
    async fn check(&self, deadline: Duration) {
        let outcome = tokio::time::timeout(deadline, async {
            let conn = self.pool.acquire().await?;
            let row = conn.query_one(LAG_QUERY, &[]).await?;
            Ok::<Option<f64>, DbError>(row.get(0))
        })
        .await;
        match outcome {
            Ok(Ok(Some(lag))) => {
                let state = if lag <= self.max_lag.as_secs_f64() {
                    ReplicaState::InUse
                } else {
                    ReplicaState::Lagging
                };
                self.record(state, Some(lag), None);
            }
            Ok(Ok(None)) => self.record(
                ReplicaState::Down,
                None,
                Some("the read URL names a server that is not a replica (not in recovery)"),
            ),
            Ok(Err(error)) => {
                tracing::debug!(%error, "replica check failed");
                self.record(
                    ReplicaState::Down,
                    None,
                    Some("the replica does not answer"),
                );
            }
            Err(_) => self.record(
                ReplicaState::Down,
                None,
                Some("the replica did not answer within its deadline"),
            ),
        }
    }
}

fn spawn_checker(replica: Weak<Replica>, interval: Duration, deadline: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(replica) = replica.upgrade() else {
                return;
            };
            replica.check(deadline).await;
        }
    });
}
