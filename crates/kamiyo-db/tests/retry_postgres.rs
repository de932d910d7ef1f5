//! The retry helper against real failures: a terminated session is retried, a unique

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! violation is not.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kamiyo_db::{Database, DbConfig, DbError, Pool, RetryPolicy};
use kamiyo_testkit::TestDatabase;

fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    }
}

async fn pool_for(test_db: &TestDatabase) -> kamiyo_db::postgres::PgPool {
    let database = Database::open(DbConfig {
        liveness_check_after: Duration::ZERO,
        ..DbConfig::for_url(test_db.url())
    })
    .await
    .unwrap();
    match database.primary() {
        Pool::Postgres(pool) => pool.clone(),
        Pool::Sqlite(_) => panic!("expected PostgreSQL"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_session_is_retried_and_the_operation_succeeds() {
    let test_db = TestDatabase::create().await;
    let pool = pool_for(&test_db).await;
    let attempts = AtomicU32::new(0);
    let result = quick_policy()
        .run("select-after-kill", || async {
            let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
            let conn = pool.acquire().await?;
            if attempt == 1 {
                // The server ends this very session: SQLSTATE 57P01, a transient failure.
                return Err(conn
                    .simple_query("SELECT pg_terminate_backend(pg_backend_pid())")
                    .await
                    .err()
                    .unwrap_or_else(|| {
                        DbError::other("the session survived its own termination")
                    }));
            }
            let row = conn.query_one("SELECT 41 + 1", &[]).await?;
            Ok(row.get::<_, i32>(0))
        })
        .await;
    assert_eq!(result.unwrap(), 42);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_violation_is_not_retried_and_names_its_constraint() {
    let test_db = TestDatabase::create().await;
    let pool = pool_for(&test_db).await;
    {
        let conn = pool.acquire().await.unwrap();
        conn.batch_execute(
            "CREATE TABLE t (k int CONSTRAINT t_k_key UNIQUE); INSERT INTO t VALUES (1)",
        )
        .await
        .unwrap();
    }
    let attempts = AtomicU32::new(0);
    let result: Result<u64, DbError> = quick_policy()
        .run("insert-duplicate", || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            let conn = pool.acquire().await?;
            conn.execute("INSERT INTO t VALUES (1)", &[]).await
        })
        .await;
    match result {
        Err(DbError::Conflict { constraint, .. }) => assert_eq!(constraint, "t_k_key"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syntax_error_is_not_retried() {
    let test_db = TestDatabase::create().await;
    let pool = pool_for(&test_db).await;
    let attempts = AtomicU32::new(0);
    let result: Result<(), DbError> = quick_policy()
        .run("bad-sql", || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            let conn = pool.acquire().await?;
            conn.batch_execute("SELEC 1").await
        })
        .await;
    assert!(matches!(result, Err(DbError::Other { .. })), "{result:?}");
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}
