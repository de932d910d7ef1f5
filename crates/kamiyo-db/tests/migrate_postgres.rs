//! The migration runner on real PostgreSQL: idempotent, concurrent start-ups, failures

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! that leave nothing behind, edited migrations refused.

use std::time::Duration;

use kamiyo_db::{Database, DbConfig, DbError, Migration, MigrationError, Migrations};
use kamiyo_testkit::TestDatabase;

const CREATE_A: Migration =
    Migration::new(1, "create_a", "CREATE TABLE a (id BIGINT PRIMARY KEY);");
const CREATE_B: Migration = Migration::new(
    2,
    "create_b",
    "CREATE TABLE b (id BIGINT PRIMARY KEY REFERENCES a (id));",
);
const BROKEN: Migration = Migration::new(
    3,
    "broken",
    "CREATE TABLE half_done (id INT); INSERT INTO table_that_does_not_exist VALUES (1);",
);

fn set(postgres: &'static [Migration]) -> Migrations {
    Migrations {
        postgres,
        sqlite: &[],
    }
}

async fn open(test_db: &TestDatabase) -> Database {
    Database::open(DbConfig::for_url(test_db.url()))
        .await
        .unwrap()
}

async fn recorded_versions(test_db: &TestDatabase) -> Vec<i64> {
    let client = test_db.client().await;
    client
        .query(
            "SELECT version FROM kamiyo_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_twice_applies_once_and_changes_nothing_the_second_time() {
    let test_db = TestDatabase::create().await;
    let database = open(&test_db).await;
    static BOTH: [Migration; 2] = [CREATE_A, CREATE_B];
    let first = database.migrate(&set(&BOTH)).await.unwrap();
    assert_eq!(first.applied, vec![1, 2]);
    let second = database.migrate(&set(&BOTH)).await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.already_applied, vec![1, 2]);
    assert_eq!(recorded_versions(&test_db).await, vec![1, 2]);
    assert_eq!(database.schema_version().await.unwrap(), Some(2));
    assert_eq!(test_db.advisory_locks_held().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_databases_migrating_one_empty_database_at_once_apply_each_migration_once() {
    let test_db = TestDatabase::create().await;
    static BOTH: [Migration; 2] = [CREATE_A, CREATE_B];
    let mut starts = Vec::new();
    for _ in 0..8 {
        let url = test_db.url().to_owned();
        starts.push(tokio::spawn(async move {
            let database = Database::open(DbConfig::for_url(url)).await?;
            database.migrate(&set(&BOTH)).await
        }));
    }
    let mut applied_in_all = Vec::new();
    for start in starts {
        let report = start.await.unwrap().unwrap();
        applied_in_all.extend(report.applied);
    }
    applied_in_all.sort_unstable();
    assert_eq!(
        applied_in_all,
        vec![1, 2],
        "each migration applied by exactly one start-up"
    );
    assert_eq!(recorded_versions(&test_db).await, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_leaves_no_lock_nothing_half_applied_and_fails_again_the_same_way() {
    let test_db = TestDatabase::create().await;
    let database = open(&test_db).await;
    static WITH_BROKEN: [Migration; 3] = [CREATE_A, CREATE_B, BROKEN];

    let err = database.migrate(&set(&WITH_BROKEN)).await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, DbError::Migration(MigrationError::Failed { .. })),
        "{err:?}"
    );
    assert!(message.contains("0003_broken"), "{message}");
    assert!(message.contains("table_that_does_not_exist"), "{message}");
    assert_eq!(test_db.advisory_locks_held().await, 0);
    assert_eq!(recorded_versions(&test_db).await, vec![1, 2]);
    let half_done: bool = test_db
        .client()
        .await
        .query_one("SELECT to_regclass('half_done') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        !half_done,
        "the failed migration's first statement must be rolled back"
    );

    let again = open(&test_db)
        .await
        .migrate(&set(&WITH_BROKEN))
        .await
        .unwrap_err();
    assert_eq!(again.to_string(), message);
    assert_eq!(test_db.advisory_locks_held().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_migration_whose_text_changed_is_refused() {
    let test_db = TestDatabase::create().await;
    let database = open(&test_db).await;
    static ORIGINAL: [Migration; 1] = [CREATE_A];
    database.migrate(&set(&ORIGINAL)).await.unwrap();
    static EDITED: [Migration; 1] = [Migration::new(
        1,
        "create_a",
        "CREATE TABLE a (id BIGINT PRIMARY KEY, extra TEXT);",
    )];
    let err = database.migrate(&set(&EDITED)).await.unwrap_err();
    assert!(
        matches!(
            err,
            DbError::Migration(MigrationError::ChecksumMismatch { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("0001_create_a"));
    assert_eq!(test_db.advisory_locks_held().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_migration_lock_makes_start_up_give_up_at_its_deadline() {
    let test_db = TestDatabase::create().await;
    let holder = test_db.client().await;
    holder
        .batch_execute("SELECT pg_advisory_lock(7737585934575562089)")
        .await
        .unwrap();
    let database = Database::open(DbConfig {
        migration_lock_timeout: Duration::from_millis(300),
        ..DbConfig::for_url(test_db.url())
    })
    .await
    .unwrap();
    static ONE: [Migration; 1] = [CREATE_A];
    let started = std::time::Instant::now();
    let err = database.migrate(&set(&ONE)).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, DbError::Migration(MigrationError::LockTimeout { .. })),
        "{err:?}"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_applied_and_pending_with_checksums() {
    let test_db = TestDatabase::create().await;
    let database = open(&test_db).await;
    static ONE: [Migration; 1] = [CREATE_A];
    static BOTH: [Migration; 2] = [CREATE_A, CREATE_B];
    database.migrate(&set(&ONE)).await.unwrap();
    let status = database.migration_status(&set(&BOTH)).await.unwrap();
    assert_eq!(status.len(), 2);
    assert!(status[0].applied_at.is_some());
    assert_eq!(status[0].checksum, CREATE_A.checksum());
    assert!(status[1].applied_at.is_none());
}

const CONCURRENT_INDEXES: Migration = Migration::new(
    2,
    "concurrent_indexes",
    "-- kamiyo:no-transaction\n\
     DROP INDEX CONCURRENTLY IF EXISTS a_id_idx;\n\
     CREATE INDEX CONCURRENTLY a_id_idx ON a (id);\n",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_statement_migration_outside_a_transaction_runs_during_concurrent_start_ups() {
    let test_db = TestDatabase::create().await;
    static WITH_CONCURRENT: [Migration; 2] = [CREATE_A, CONCURRENT_INDEXES];
    let mut starts = Vec::new();
    for _ in 0..4 {
        let url = test_db.url().to_owned();
        starts.push(tokio::spawn(async move {
            let database = Database::open(DbConfig::for_url(url)).await?;
            database.migrate(&set(&WITH_CONCURRENT)).await
        }));
    }
    let mut applied = Vec::new();
    for start in starts {
        applied.extend(start.await.unwrap().unwrap().applied);
    }
    applied.sort_unstable();
    assert_eq!(applied, vec![1, 2]);
    let index: bool = test_db
        .client()
        .await
        .query_one("SELECT to_regclass('a_id_idx') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(index);
    assert_eq!(test_db.advisory_locks_held().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_marks_an_edited_applied_migration_as_changed_and_pending_check_refuses_it() {
    let test_db = TestDatabase::create().await;
    let database = open(&test_db).await;
    static ORIGINAL: [Migration; 1] = [CREATE_A];
    database.migrate(&set(&ORIGINAL)).await.unwrap();
    static EDITED: [Migration; 1] = [Migration::new(1, "create_a", "CREATE TABLE a (id INT);")];
    let status = database.migration_status(&set(&EDITED)).await.unwrap();
    assert_eq!(status[0].state, "changed");
    let err = database
        .pending_migrations(&set(&EDITED))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DbError::Migration(MigrationError::ChecksumMismatch { .. })
        ),
        "{err:?}"
    );
}
