//! The monitor against real PostgreSQL: the numbers are the pool's own, per-statement
//! statistics count errors, leaks name their site, health follows a rolling window.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use kamiyo_db::monitor::{MonitorConfig, QuerySort};
use kamiyo_db::postgres::PgPool;
use kamiyo_db::{Database, DbConfig, DbError, HealthStatus, ManualClock, Pool};
use kamiyo_testkit::{eventually, TestDatabase};

async fn open(test_db: &TestDatabase, config: DbConfig) -> (Database, PgPool) {
    let database = Database::open(DbConfig {
        url: kamiyo_db::DatabaseUrl::new(test_db.url()),
        ..config
    })
    .await
    .unwrap();
    let Pool::Postgres(pool) = database.primary().clone() else {
        panic!("expected PostgreSQL")
    };
    (database, pool)
}

/// How long the pool's state may take to show what a test awaits: deadpool and the
/// watchdog give no event for it, so the tests poll with [`eventually`].
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_are_counted_per_statement_with_sql_errors_included() {
    let test_db = TestDatabase::create().await;
    let (_db, pool) = open(&test_db, DbConfig::default()).await;
    let n = 12;
    for i in 0..n - 1 {
        let conn = pool.acquire().await.unwrap();
        let rows = conn.query("SELECT $1::int + 1", &[&i]).await.unwrap();
        assert_eq!(rows.len(), 1);
    }
    let conn = pool.acquire().await.unwrap();
    let err = conn
        .query("SELECT * FROM no_such_table WHERE id = 7", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Other { .. }), "{err:?}");
    drop(conn);

    let report = pool.monitor().report(pool.state());
    assert!(
        report.acquisitions.total >= n as u64,
        "{:?}",
        report.acquisitions
    );
    assert_eq!(report.acquisitions.timeouts, 0);
    let statements = pool.monitor().statements(QuerySort::Calls, 10);
    let add = statements
        .iter()
        .find(|s| s.statement == "select ? :: int + ?")
        .unwrap();
    assert_eq!(
        (add.calls, add.errors, add.rows),
        (n as u64 - 1, 0, n as u64 - 1)
    );
    let failed = statements
        .iter()
        .find(|s| s.statement.contains("no_such_table"))
        .unwrap();
    assert_eq!((failed.calls, failed.errors), (1, 1));
    assert_eq!(
        failed.statement, "select * from no_such_table where id = ?",
        "no literal values stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_workers_times_five_queries_on_a_pool_of_ten_all_succeed_and_are_counted() {
    let test_db = TestDatabase::create().await;
    let (_db, pool) = open(
        &test_db,
        DbConfig {
            pool_max_size: 10,
            ..DbConfig::default()
        },
    )
    .await;
    let mut workers = Vec::new();
    for worker in 0..20 {
        let pool = pool.clone();
        workers.push(tokio::spawn(async move {
            for query in 0..5 {
                let conn = pool.acquire().await?;
                conn.query_one("SELECT $1::int * 10 + $2::int", &[&worker, &query])
                    .await?;
            }
            Ok::<(), DbError>(())
        }));
    }
    for worker in workers {
        worker.await.unwrap().unwrap();
    }
    let report = pool.monitor().report(pool.state());
    assert!(
        report.acquisitions.total >= 100,
        "{:?}",
        report.acquisitions
    );
    assert_eq!(
        report.acquisitions.timeouts
            + report.acquisitions.connect_errors
            + report.acquisitions.other_failures,
        0
    );
    assert!(report.connections.created <= 10);
    assert_eq!(report.acquisitions.wait.count, report.acquisitions.total);
    assert_eq!(
        report.acquisitions.use_time.count, report.acquisitions.total,
        "every release recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utilisation_and_waiters_are_read_from_the_pool_itself() {
    let test_db = TestDatabase::create().await;
    let (db, pool) = open(
        &test_db,
        DbConfig {
            pool_max_size: 4,
            ..DbConfig::default()
        },
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.acquire().await.unwrap());
    }
    let report = pool.monitor().report(pool.state());
    assert_eq!(report.utilization_pct, 75.0);
    assert_eq!((report.state.in_use, report.state.waiting), (3, 0));
    held.push(pool.acquire().await.unwrap());

    let mut waiters = Vec::new();
    for _ in 0..5 {
        let pool = pool.clone();
        waiters.push(tokio::spawn(async move {
            pool.acquire_within(Duration::from_secs(10)).await.map(drop)
        }));
    }
    eventually("five callers waiting", PATIENCE, || async {
        let state = pool.state();
        if state.waiting == 5 {
            Ok(())
        } else {
            Err(state)
        }
    })
    .await;
    let health = db.health_report(None);
    assert_eq!(health.utilization_pct, 100.0);
    assert_eq!(health.status, HealthStatus::Degraded);
    assert!(
        health.warnings[0].message.contains("5 waiting"),
        "{:?}",
        health.warnings
    );
    drop(held);
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    assert_eq!(pool.state().waiting, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_held_past_the_leak_threshold_is_reported_with_its_site_until_released() {
    let test_db = TestDatabase::create().await;
    let monitor = MonitorConfig {
        leak_threshold: Duration::from_millis(100),
        leak_check_interval: Duration::from_millis(20),
        ..MonitorConfig::default()
    };
    let (db, pool) = open(
        &test_db,
        DbConfig {
            monitor,
            ..DbConfig::default()
        },
    )
    .await;
    let line = line!() + 1;
    let held = pool.acquire().await.unwrap();
    assert!(
        pool.monitor().leaks().is_empty(),
        "not a leak before the threshold"
    );
    eventually("the held connection reported", PATIENCE, || async {
        (!pool.monitor().leaks().is_empty()).then_some(())
    })
    .await;
    let leaks = pool.monitor().leaks();
    let expected_site = format!("{}:{line}", file!());
    assert_eq!(leaks[0].acquired_at, expected_site);
    assert!(leaks[0].held_ms >= 100);
    let health = db.health_report(None);
    assert!(
        health.warnings.iter().any(|w| w.check == "leaks"),
        "{health:?}"
    );

    drop(held);
    assert!(
        pool.monitor().leaks().is_empty(),
        "the report clears on release"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_degrades_on_an_acquisition_timeout_and_recovers_when_the_window_has_passed() {
    let test_db = TestDatabase::create().await;
    let window = Duration::from_secs(60);
    let monitor = MonitorConfig {
        health_window: window,
        ..MonitorConfig::default()
    };
    let time = ManualClock::new();
    let (db, pool) = open(
        &test_db,
        DbConfig {
            pool_max_size: 1,
            monitor,
            clock: time.clock(),
            ..DbConfig::default()
        },
    )
    .await;
    assert_eq!(db.health().await.status, HealthStatus::Healthy);

    let held = pool.acquire().await.unwrap();
    let timed_out = pool.acquire_within(Duration::from_millis(50)).await;
    assert!(matches!(timed_out, Err(DbError::AcquireTimeout { .. })));
    drop(held);
    let degraded = db.health().await;
    assert_eq!(degraded.status, HealthStatus::Degraded, "{degraded:?}");
    let warning = degraded
        .warnings
        .iter()
        .find(|w| w.check == "acquire_timeouts")
        .unwrap();
    assert_eq!(warning.value, 1.0);
    assert!(
        warning.message.contains("1 acquisition timeout"),
        "{}",
        warning.message
    );

    time.advance(window - window / 10);
    assert_eq!(
        db.health().await.status,
        HealthStatus::Degraded,
        "still within the window"
    );
    time.advance(window / 5);
    let recovered = db.health().await;
    assert_eq!(recovered.status, HealthStatus::Healthy, "{recovered:?}");
    assert_eq!(
        pool.monitor().report(pool.state()).acquisitions.timeouts,
        1,
        "lifetime counters keep counting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_unhealthy() {
    let db = Database::open(DbConfig::for_url("postgres://u:p@127.0.0.1:1/none"))
        .await
        .unwrap();
    let report = db.health().await;
    assert_eq!(report.status, HealthStatus::Unhealthy);
    let failures = db.monitors()[0]
        .0
        .report(db.pool_state())
        .acquisitions
        .connect_errors;
    assert_eq!(failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_statement_is_kept_in_the_slow_ring_without_its_values() {
    let test_db = TestDatabase::create().await;
    let monitor = MonitorConfig {
        slow_query_threshold: Duration::from_millis(50),
        ..MonitorConfig::default()
    };
    let (_db, pool) = open(
        &test_db,
        DbConfig {
            monitor,
            ..DbConfig::default()
        },
    )
    .await;
    let conn = pool.acquire().await.unwrap();
    conn.simple_query("SELECT pg_sleep(0.08), 'secret-value'")
        .await
        .unwrap();
    conn.simple_query("SELECT 1").await.unwrap();
    let slow = pool.monitor().slow_queries(10);
    assert_eq!(slow.len(), 1);
    assert_eq!(slow[0].statement, "select pg_sleep(?), ?");
    assert!(slow[0].duration_ms >= 50.0);
    assert_eq!(slow[0].pool, "primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_by_the_server_are_counted_by_reason() {
    let test_db = TestDatabase::create().await;
    let (_db, pool) = open(
        &test_db,
        DbConfig {
            pool_max_size: 1,
            liveness_check_after: Duration::ZERO,
            ..DbConfig::default()
        },
    )
    .await;
    let pid: i32 = pool
        .acquire()
        .await
        .unwrap()
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    test_db
        .admin_client()
        .await
        .query_one("SELECT pg_terminate_backend($1, 5000)", &[&pid])
        .await
        .unwrap();
    pool.acquire()
        .await
        .unwrap()
        .query_one("SELECT 1", &[])
        .await
        .unwrap();
    let connections = pool.monitor().report(pool.state()).connections;
    assert_eq!(connections.created, 2);
    assert_eq!(
        connections.closed_broken + connections.closed_failed_check,
        1,
        "{connections:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_monitoring_off_nothing_is_recorded_but_the_pool_state_is_still_true() {
    let test_db = TestDatabase::create().await;
    let monitor = MonitorConfig {
        enabled: false,
        ..MonitorConfig::default()
    };
    let (_db, pool) = open(
        &test_db,
        DbConfig {
            monitor,
            ..DbConfig::default()
        },
    )
    .await;
    let conn = pool.acquire().await.unwrap();
    conn.query_one("SELECT 1", &[]).await.unwrap();
    let report = pool.monitor().report(pool.state());
    assert_eq!(report.acquisitions.total, 0);
    assert_eq!(report.statements_tracked, 0);
    assert_eq!(report.state.in_use, 1);
    drop(conn);
}
