//! Both backends, migrated, for the import tests.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use kamiyo_db::{Database, DbConfig};
use kamiyo_store::{IncidentStore, MIGRATIONS};
use kamiyo_testkit::TestDatabase;

/// A store on `pg` and one on a SQLite file in `dir`, both migrated.
pub async fn open_stores(pg: &TestDatabase, dir: &Path) -> Vec<(&'static str, IncidentStore)> {
    let pg_db = Database::open(DbConfig::for_url(pg.url())).await.unwrap();
    pg_db.migrate(&MIGRATIONS).await.unwrap();
    let sqlite_db = Database::open(DbConfig::for_url(format!(
        "sqlite://{}",
        dir.join("k.db").display()
    )))
    .await
    .unwrap();
    sqlite_db.migrate(&MIGRATIONS).await.unwrap();
    vec![
        ("postgres", IncidentStore::new(pg_db)),
        ("sqlite", IncidentStore::new(sqlite_db)),
    ]
}
