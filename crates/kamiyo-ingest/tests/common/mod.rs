//! Both backends, migrated, for the import tests.

#![allow(clippy::unwrap_used)]

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
    fn on(db: Database) -> Self {
        Stores {
            incidents: IncidentStore::new(db.clone()),
            sources: SourceStore::new(db),
        }
    }
}

/// Stores on `pg` and on a SQLite file in `dir`, both migrated.
pub async fn open_stores(pg: &TestDatabase, dir: &Path) -> Vec<(&'static str, Stores)> {
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
        ("postgres", Stores::on(pg_db)),
        ("sqlite", Stores::on(sqlite_db)),
    ]
}
