//! The read replica, on a real primary and a real streaming replica (kamiyo-testkit's
//! `PgCluster`): reads go to it on read-only sessions; when it is down or lagging they
//! go to the primary, counted, and health says `degraded`; when it comes back it is used
//! again, without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use kamiyo_db::{
    Database, DbConfig, DbError, FallbackReason, HealthStatus, Pool, ReplicaState, ReplicaStatus,
};
use kamiyo_testkit::PgCluster;
use tokio::sync::watch;

/// Whether the server behind `pool` is a replica (`pg_is_in_recovery()`).
async fn in_recovery(pool: Pool) -> Result<bool, DbError> {
    match pool {
        Pool::Postgres(pool) => {
            let conn = pool.acquire().await?;
            Ok(conn
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await?
                .get(0))
        }
        Pool::Sqlite(_) => Ok(false),
    }
}

fn config(primary: &PgCluster, replica_url: String) -> DbConfig {
    let mut config = DbConfig::for_url(primary.url());
    config.read_url = Some(kamiyo_db::DatabaseUrl::new(replica_url));
    config.replica_check_interval = Duration::from_millis(50);
    config.replica_acquire_timeout = Duration::from_millis(300);
    config.connect_timeout = Duration::from_millis(500);
    config.replica_max_lag = Duration::from_millis(500);
    config
}

/// Waits (event-driven, bounded) until the replica reaches `state`.
async fn wait_for(mut watch: watch::Receiver<ReplicaStatus>, state: ReplicaState) {
    tokio::time::timeout(
        Duration::from_secs(20),
        watch.wait_for(|status| status.state == state),
    )
    .await
    .unwrap_or_else(|_| panic!("the replica never became {state:?}"))
    .unwrap();
}

fn fallbacks(db: &Database, reason: FallbackReason) -> u64 {
    db.replica_fallbacks()
        .into_iter()
        .find(|(r, _)| *r == reason)
        .map(|(_, n)| n)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_use_the_read_only_replica_and_fall_back_to_the_primary_while_it_is_down() {
    let primary = PgCluster::start_primary().await;
    let replica = primary.start_replica().await;
    let db = Database::open(config(&primary, replica.url()))
        .await
        .unwrap();
    wait_for(db.watch_replica().unwrap(), ReplicaState::InUse).await;

    // Reads go to the replica, writes to the primary.
    assert!(
        db.read(in_recovery).await.unwrap(),
        "a read went to the primary"
    );
    assert!(!in_recovery(db.primary().clone()).await.unwrap());
    assert_eq!(db.health_report(None).status, HealthStatus::Healthy);

    // A write attempted through a read fails clearly instead of reaching the primary.
    let write = db
        .read(|pool| async move {
            match pool {
                Pool::Postgres(pool) => {
                    let conn = pool.acquire().await?;
                    conn.execute("CREATE TABLE not_here (id int)", &[]).await
                }
                Pool::Sqlite(_) => unreachable!(),
            }
        })
        .await;
    assert!(
        matches!(write, Err(DbError::ReadOnly { .. })),
        "a write on the replica must be refused as read-only: {write:?}"
    );

    // The replica goes down: reads keep being served, by the primary, counted.
    replica.stop().await;
    for _ in 0..5 {
        assert!(!db.read(in_recovery).await.unwrap());
    }
    wait_for(db.watch_replica().unwrap(), ReplicaState::Down).await;
    assert!(!db.read(in_recovery).await.unwrap());
    let down = fallbacks(&db, FallbackReason::Down) + fallbacks(&db, FallbackReason::Failed);
    assert!(
        down >= 6,
        "fallbacks must be counted: {:?}",
        db.replica_fallbacks()
    );
    let health = db.health_report(None);
    assert_eq!(health.status, HealthStatus::Degraded, "{health:?}");
    assert!(health.warnings.iter().any(|w| w.check == "replica_down"));
    let metrics = {
        let mut exposition = kamiyo_db::monitor::prometheus::Exposition::new();
        db.write_metrics(&mut exposition);
        exposition.finish()
    };
    assert!(
        metrics.contains("db_client_fallback_total{db_client_connection_pool_name=\"replica\",reason=\"replica_down\"}"),
        "{metrics}"
    );

    // It comes back: used again, without a restart.
    replica.start().await;
    wait_for(db.watch_replica().unwrap(), ReplicaState::InUse).await;
    assert!(db.read(in_recovery).await.unwrap());
    assert_eq!(db.health_report(None).status, HealthStatus::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_lagging_past_the_maximum_is_not_used_until_it_catches_up() {
    let primary = PgCluster::start_primary().await;
    let replica = primary.start_replica().await;
    let writer = primary.client().await;
    writer
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    replica.wait_caught_up().await;
    let db = Database::open(config(&primary, replica.url()))
        .await
        .unwrap();
    wait_for(db.watch_replica().unwrap(), ReplicaState::InUse).await;

    // Replay stops while the primary goes on: the lag (the age of the last replayed
    // transaction) passes the maximum.
    replica.pause_replay().await;
    writer
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    replica.wait_received().await;
    wait_for(db.watch_replica().unwrap(), ReplicaState::Lagging).await;
    assert!(
        !db.read(in_recovery).await.unwrap(),
        "a lagging replica was used"
    );
    assert!(fallbacks(&db, FallbackReason::Lagging) >= 1);
    let status = db.replica_status().unwrap();
    assert!(status.lag_seconds.unwrap() > 0.5, "{status:?}");
    let health = db.health_report(None);
    assert_eq!(health.status, HealthStatus::Degraded);
    assert!(health.warnings.iter().any(|w| w.check == "replica_lag"));

    replica.resume_replay().await;
    wait_for(db.watch_replica().unwrap(), ReplicaState::InUse).await;
    assert!(db.read(in_recovery).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_url_that_is_not_a_replica_is_not_used() {
    let primary = PgCluster::start_primary().await;
    let other = PgCluster::start_primary().await;
    let db = Database::open(config(&primary, other.url())).await.unwrap();
    wait_for(db.watch_replica().unwrap(), ReplicaState::Down).await;
    let status = db.replica_status().unwrap();
    assert!(status.reason.unwrap().contains("not a replica"));
    // Served by the primary (the other server is not in recovery either, so check by
    // port that the read did not go there).
    let port: i32 = db
        .read(|pool| async move {
            match pool {
                Pool::Postgres(pool) => {
                    let conn = pool.acquire().await?;
                    Ok::<i32, DbError>(
                        conn.query_one("SELECT current_setting('port')::int", &[])
                            .await?
                            .get(0),
                    )
                }
                Pool::Sqlite(_) => unreachable!(),
            }
        })
        .await
        .unwrap();
    assert_eq!(port, i32::from(primary.port()));
}

#[test]
fn a_read_url_with_a_sqlite_primary_is_refused_naming_the_field() {
    let mut config = DbConfig::for_url("sqlite://k.db");
    config.read_url = Some(kamiyo_db::DatabaseUrl::new("postgres://x@127.0.0.1/y"));
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("read_url"), "{error}");
}
