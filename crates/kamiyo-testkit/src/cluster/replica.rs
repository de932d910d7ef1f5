//! The replica side of [`PgCluster`]: pausing replay and waiting for replication.
//!
//! These waits poll the replica's positions: PostgreSQL offers a client no notification
//! of replay progress, so a short interval and a finite deadline stand in for an event.

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::Client;

use super::{connect, PgCluster, WAIT_TIMEOUT};

/// Interval at which the replica's positions are polled while waiting for them.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

impl PgCluster {
    /// Replica only: stops applying WAL (it is still received), so that writes on the
    /// primary stay invisible here. Returns once replay is paused.
    pub async fn pause_replay(&self) {
        self.expect_replica("pause_replay");
        let client = &self.client().await;
        query(client, "SELECT pg_wal_replay_pause()::text").await;
        // Pausing is a request that the startup process honours later; polled because the
        // server offers no notification of it.
        self.poll_until("replay to pause", move || async move {
            query(client, "SELECT pg_get_wal_replay_pause_state()").await == "paused"
        })
        .await;
    }

    pub async fn resume_replay(&self) {
        self.expect_replica("resume_replay");
        query(&self.client().await, "SELECT pg_wal_replay_resume()::text").await;
    }

    /// Replica only: waits until it has replayed everything the primary had written when
    /// this was called, so what was committed there is visible here. Times out (panics)
    /// while replay is paused.
    pub async fn wait_caught_up(&self) {
        let target = self.primary_lsn().await;
        let client = &self.client().await;
        let target = target.as_str();
        self.poll_until("replay to catch up with the primary", move || async move {
            replica_reached(client, "pg_last_wal_replay_lsn()", target).await
        })
        .await;
    }

    /// Replica only: waits until it has received (not necessarily replayed) everything the
    /// primary had written when this was called. With replay paused this makes lag
    /// certain: the data is here but not visible.
    pub async fn wait_received(&self) {
        let target = self.primary_lsn().await;
        let client = &self.client().await;
        let target = target.as_str();
        self.poll_until("the primary's WAL to arrive", move || async move {
            replica_reached(client, "pg_last_wal_receive_lsn()", target).await
        })
        .await;
    }

    /// Replica only: bytes of WAL written on the primary and not yet replayed here.
    pub async fn replay_lag_bytes(&self) -> i64 {
        let target = self.primary_lsn().await;
        let client = self.client().await;
        let sql = "SELECT pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn())::bigint";
        let row = tokio::time::timeout(WAIT_TIMEOUT, client.query_one(sql, &[&target]))
            .await
            .unwrap_or_else(|_| panic!("PgCluster: `{sql}` took more than {WAIT_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("PgCluster: `{sql}` failed: {e}"));
        row.get(0)
    }

    async fn primary_lsn(&self) -> String {
        let primary_url = self.expect_replica("waiting for replication");
        query(
            &connect(primary_url).await,
            "SELECT pg_current_wal_lsn()::text",
        )
        .await
    }

    fn expect_replica(&self, operation: &str) -> &str {
        self.primary_url
            .as_deref()
            .unwrap_or_else(|| panic!("PgCluster: {operation} is for replicas only"))
    }

    async fn poll_until<F, Fut>(&self, what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        while !done().await {
            if Instant::now() >= deadline {
                panic!(
                    "PgCluster: timed out after {WAIT_TIMEOUT:?} waiting for {what} (log: {})",
                    self.log_path().display()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// The one text value of `sql`.
async fn query(client: &Client, sql: &str) -> String {
    let row = tokio::time::timeout(WAIT_TIMEOUT, client.query_one(sql, &[]))
        .await
        .unwrap_or_else(|_| panic!("PgCluster: `{sql}` took more than {WAIT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("PgCluster: `{sql}` failed: {e}"));
    row.get(0)
}

async fn replica_reached(client: &Client, position: &str, target: &str) -> bool {
    let sql = format!("SELECT coalesce({position} >= $1::text::pg_lsn, false)");
    let row = tokio::time::timeout(WAIT_TIMEOUT, client.query_one(&sql, &[&target]))
        .await
        .unwrap_or_else(|_| panic!("PgCluster: `{sql}` took more than {WAIT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("PgCluster: `{sql}` failed: {e}"));
    row.get(0)
}
