//! The SQLite backend on real files: pool deadline, migrations under BEGIN IMMEDIATE,

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! two start-ups on one file, foreign keys on every connection.

use std::time::{Duration, Instant};

use kamiyo_db::{Database, DbConfig, DbError, Migration, MigrationError, Migrations, Pool};

const PARENT: Migration =
    Migration::new(1, "parent", "CREATE TABLE parent (id INTEGER PRIMARY KEY);");
const CHILD: Migration = Migration::new(
    2,
    "child",
    "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent (id));",
);
const BROKEN: Migration = Migration::new(
    3,
    "broken",
    "CREATE TABLE half_done (id INTEGER); INSERT INTO missing VALUES (1);",
);

fn set(sqlite: &'static [Migration]) -> Migrations {
    Migrations {
        postgres: &[],
        sqlite,
    }
}

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("kamiyo.db").display())
}

async fn open(dir: &tempfile::TempDir, config: DbConfig) -> Database {
    Database::open(DbConfig {
        url: kamiyo_db::DatabaseUrl::new(url(dir)),
        ..config
    })
    .await
    .unwrap()
}

fn sqlite_pool(database: &Database) -> kamiyo_db::sqlite::SqlitePool {
    match database.primary() {
        Pool::Sqlite(pool) => pool.clone(),
        Pool::Postgres(_) => panic!("expected SQLite"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_sqlite_pool_times_out_naming_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let database = open(
        &dir,
        DbConfig {
            pool_max_size: 2,
            ..DbConfig::default()
        },
    )
    .await;
    let pool = sqlite_pool(&database);
    let _a = pool.acquire().await.unwrap();
    let _b = pool.acquire().await.unwrap();
    let started = Instant::now();
    let err = pool
        .acquire_within(Duration::from_millis(300))
        .await
        .err()
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(
        err.to_string(),
        "timed out after 300ms waiting for a connection from pool \"primary\" (2 of 2 in use, 0 waiting)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_are_enforced_on_every_pooled_connection() {
    let dir = tempfile::tempdir().unwrap();
    let database = open(
        &dir,
        DbConfig {
            pool_max_size: 3,
            ..DbConfig::default()
        },
    )
    .await;
    static BOTH: [Migration; 2] = [PARENT, CHILD];
    database.migrate(&set(&BOTH)).await.unwrap();
    let pool = sqlite_pool(&database);
    // Three connections at once, so the check is not only about the first one.
    let conns = [
        pool.acquire().await.unwrap(),
        pool.acquire().await.unwrap(),
        pool.acquire().await.unwrap(),
    ];
    for conn in &conns {
        let err = conn
            .run(|c| c.execute("INSERT INTO child (parent_id) VALUES (999)", []))
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::Conflict { .. }), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrations_applied_twice_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let database = open(&dir, DbConfig::default()).await;
    static BOTH: [Migration; 2] = [PARENT, CHILD];
    assert_eq!(
        database.migrate(&set(&BOTH)).await.unwrap().applied,
        vec![1, 2]
    );
    let again = database.migrate(&set(&BOTH)).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(database.schema_version().await.unwrap(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_sqlite_migration_whose_text_changed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let database = open(&dir, DbConfig::default()).await;
    static BOTH: [Migration; 2] = [PARENT, CHILD];
    database.migrate(&set(&BOTH)).await.unwrap();
    static EDITED: [Migration; 2] = [
        PARENT,
        Migration::new(2, "child", "CREATE TABLE child (id INTEGER);"),
    ];
    let err = database.migrate(&set(&EDITED)).await.unwrap_err();
    assert!(
        matches!(
            err,
            DbError::Migration(MigrationError::ChecksumMismatch { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sqlite_migration_leaves_nothing_half_applied() {
    let dir = tempfile::tempdir().unwrap();
    let database = open(&dir, DbConfig::default()).await;
    static WITH_BROKEN: [Migration; 3] = [PARENT, CHILD, BROKEN];
    let err = database.migrate(&set(&WITH_BROKEN)).await.unwrap_err();
    assert!(err.to_string().contains("0003_broken"), "{err}");
    let pool = sqlite_pool(&database);
    let conn = pool.acquire().await.unwrap();
    let (half_done, versions): (i64, i64) = conn
        .run(|c| {
            let half: i64 = c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'half_done'",
                [],
                |r| r.get(0),
            )?;
            let versions: i64 =
                c.query_row("SELECT count(*) FROM kamiyo_schema_migrations", [], |r| {
                    r.get(0)
                })?;
            Ok((half, versions))
        })
        .await
        .unwrap();
    assert_eq!((half_done, versions), (0, 2));
    // The write lock was released: another writer gets in at once.
    conn.run(|c| c.execute("INSERT INTO parent (id) VALUES (1)", []))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_start_ups_on_one_sqlite_file_apply_each_migration_once() {
    let dir = tempfile::tempdir().unwrap();
    static BOTH: [Migration; 2] = [PARENT, CHILD];
    let mut starts = Vec::new();
    for _ in 0..2 {
        let url = url(&dir);
        starts.push(tokio::spawn(async move {
            let database = Database::open(DbConfig::for_url(url)).await?;
            database.migrate(&set(&BOTH)).await
        }));
    }
    let mut applied = Vec::new();
    for start in starts {
        applied.extend(start.await.unwrap().unwrap().applied);
    }
    applied.sort_unstable();
    assert_eq!(applied, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_migration_outside_a_transaction_runs_each_statement_and_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    static WITH_VACUUM: [Migration; 2] = [
        PARENT,
        Migration::new(2, "vacuum", "-- kamiyo:no-transaction\nCREATE INDEX IF NOT EXISTS parent_id_idx ON parent (id);\nVACUUM;\n"),
    ];
    let database = open(&dir, DbConfig::default()).await;
    assert_eq!(
        database.migrate(&set(&WITH_VACUUM)).await.unwrap().applied,
        vec![1, 2]
    );
    assert!(database
        .migrate(&set(&WITH_VACUUM))
        .await
        .unwrap()
        .applied
        .is_empty());
    let status = database.migration_status(&set(&WITH_VACUUM)).await.unwrap();
    assert!(status.iter().all(|m| m.state == "applied"), "{status:?}");
}
