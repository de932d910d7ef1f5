//! The two migrated databases every conformance test of this crate runs against: a fresh
//! PostgreSQL database of its own and a SQLite file in a temporary directory.
//! `kamiyo_testkit::per_backend!` runs each story on each of them as a test of its own,
//! through [`postgres`] and [`sqlite`].

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code, clippy::unwrap_used)]

pub mod community;

use kamiyo_db::{Database, DbConfig, Migrations, Pool};
use kamiyo_store::MIGRATIONS;
use kamiyo_testkit::TestDatabase;

/// One backend with the store under test; the database (and its directory) lives as long
/// as this value.
pub struct Backend<S> {
    pub name: &'static str,
    pub db: Database,
    pub store: S,
    _pg: Option<TestDatabase>,
    _dir: Option<tempfile::TempDir>,
}

/// PostgreSQL first, then SQLite, both migrated, each with the store `make` builds; for a
/// test that compares the two. A story about one backend goes through
/// `kamiyo_testkit::per_backend!`.
pub async fn backends<S>(make: impl Fn(Database) -> S) -> Vec<Backend<S>> {
    vec![postgres(&make).await, sqlite(&make).await]
}

/// A fresh, migrated PostgreSQL database with the store `make` builds.
pub async fn postgres<S>(make: impl Fn(Database) -> S) -> Backend<S> {
    postgres_with(&MIGRATIONS, make).await
}

/// A fresh backend of the kind named (`postgres` or `sqlite`), with `migrations` applied:
/// a second database for a test that compares two, or one at an older schema.
pub async fn same_kind<S>(
    name: &str,
    migrations: &Migrations,
    make: impl Fn(Database) -> S,
) -> Backend<S> {
    match name {
        "postgres" => postgres_with(migrations, make).await,
        _ => sqlite_with(migrations, make).await,
    }
}

async fn postgres_with<S>(migrations: &Migrations, make: impl Fn(Database) -> S) -> Backend<S> {
    let pg = TestDatabase::create().await;
    let pg_db = Database::open(DbConfig::for_url(pg.url())).await.unwrap();
    pg_db.migrate(migrations).await.unwrap();
    Backend {
        name: "postgres",
        store: make(pg_db.clone()),
        db: pg_db,
        _pg: Some(pg),
        _dir: None,
    }
}

/// A fresh, migrated SQLite file with the store `make` builds.
pub async fn sqlite<S>(make: impl Fn(Database) -> S) -> Backend<S> {
    sqlite_with(&MIGRATIONS, make).await
}

async fn sqlite_with<S>(migrations: &Migrations, make: impl Fn(Database) -> S) -> Backend<S> {
    let dir = tempfile::tempdir().unwrap();
    let lite = Database::open(DbConfig::for_url(format!(
        "sqlite://{}",
        dir.path().join("k.db").display()
    )))
    .await
    .unwrap();
    lite.migrate(migrations).await.unwrap();
    Backend {
        name: "sqlite",
        store: make(lite.clone()),
        db: lite,
        _pg: None,
        _dir: Some(dir),
    }
}

/// Runs `sql` (one or more statements, the same text on both backends) as a batch on
/// `db`'s primary: fixtures a store's API cannot write (rows of an older schema, a
/// pending task).
pub async fn execute_batch(db: &Database, sql: &str) {
    match db.primary() {
        Pool::Postgres(pool) => {
            pool.acquire()
                .await
                .unwrap()
                .batch_execute(sql)
                .await
                .unwrap();
        }
        Pool::Sqlite(pool) => {
            let sql = sql.to_owned();
            pool.acquire()
                .await
                .unwrap()
                .run(move |c| c.execute_batch(&sql))
                .await
                .unwrap();
        }
    }
}

/// The single integer `sql` answers on `db`'s primary (the same text on both backends).
pub async fn count(db: &Database, sql: &str) -> i64 {
    match db.primary() {
        Pool::Postgres(pool) => {
            let row = pool
                .acquire()
                .await
                .unwrap()
                .query_one(sql, &[])
                .await
                .unwrap();
            row.try_get::<_, i64>(0)
                .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
                .unwrap()
        }
        Pool::Sqlite(pool) => {
            let sql = sql.to_owned();
            pool.acquire()
                .await
                .unwrap()
                .run(move |c| c.query_row(&sql, [], |row| row.get::<_, i64>(0)))
                .await
                .unwrap()
        }
    }
}
