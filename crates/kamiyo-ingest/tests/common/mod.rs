//! Both backends, migrated, for the import tests: one at a time for a story
//! (`kamiyo_testkit::per_backend!` calls [`postgres`] and [`sqlite`]), or both at once
//! for a test that compares them ([`open_stores`]).

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses its own part

use std::path::Path;

use kamiyo_db::{Database, DbConfig};
use kamiyo_store::{IncidentStore, SourceStore, MIGRATIONS};
use kamiyo_testkit::TestDatabase;

/// One backend's stores: an import writes incidents to one and its fetches to the other.
pub struct Stores {
    pub incidents: IncidentStore,
    pub sources: SourceStore,
}

impl Stores {
    pub fn on(db: Database) -> Self {
        Stores {
            incidents: IncidentStore::new(db.clone()),
            sources: SourceStore::new(db),
        }
    }
}

/// One backend with the store under test; the database (and its directory) lives as long
/// as this value. `dir` is a temporary directory for the story's own files too.
pub struct Backend<S> {
    pub name: &'static str,
    pub store: S,
    pub dir: tempfile::TempDir,
    _pg: Option<TestDatabase>,
}

/// A fresh, migrated PostgreSQL database with the store `make` builds.
pub async fn postgres<S>(make: impl Fn(Database) -> S) -> Backend<S> {
    let pg = TestDatabase::create().await;
    let db = migrated(pg.url()).await;
    Backend {
        name: "postgres",
        store: make(db),
        dir: tempfile::tempdir().unwrap(),
        _pg: Some(pg),
    }
}

/// A fresh, migrated SQLite file with the store `make` builds.
pub async fn sqlite<S>(make: impl Fn(Database) -> S) -> Backend<S> {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&format!("sqlite://{}", dir.path().join("k.db").display())).await;
    Backend {
        name: "sqlite",
        store: make(db),
        dir,
        _pg: None,
    }
}

/// Stores on `pg` and on a SQLite file in `dir`, both migrated.
pub async fn open_stores(pg: &TestDatabase, dir: &Path) -> Vec<(&'static str, Stores)> {
    let pg_db = migrated(pg.url()).await;
    let sqlite_db = migrated(&format!("sqlite://{}", dir.join("k.db").display())).await;
    vec![
        ("postgres", Stores::on(pg_db)),
        ("sqlite", Stores::on(sqlite_db)),
    ]
}

async fn migrated(url: &str) -> Database {
    let db = Database::open(DbConfig::for_url(url)).await.unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    db
}
