//! The two migrated databases every conformance test of this crate runs against: a fresh
//! PostgreSQL database of its own and a SQLite file in a temporary directory, and
//! [`per_backend!`], which runs each story on each of them as a test of its own.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code, clippy::unwrap_used)]

use kamiyo_db::{Database, DbConfig};
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
/// test that compares the two. A story about one backend goes through [`per_backend!`].
pub async fn backends<S>(make: impl Fn(Database) -> S) -> Vec<Backend<S>> {
    vec![postgres(&make).await, sqlite(&make).await]
}

/// A fresh, migrated PostgreSQL database with the store `make` builds.
pub async fn postgres<S>(make: impl Fn(Database) -> S) -> Backend<S> {
    let pg = TestDatabase::create().await;
    let pg_db = Database::open(DbConfig::for_url(pg.url())).await.unwrap();
    pg_db.migrate(&MIGRATIONS).await.unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let lite = Database::open(DbConfig::for_url(format!(
        "sqlite://{}",
        dir.path().join("k.db").display()
    )))
    .await
    .unwrap();
    lite.migrate(&MIGRATIONS).await.unwrap();
    Backend {
        name: "sqlite",
        store: make(lite.clone()),
        db: lite,
        _pg: None,
        _dir: Some(dir),
    }
}

/// Makes each story (`async fn story(b: Backend<S>)` in the calling file) two tests,
/// `postgres::story` and `sqlite::story`, each on a fresh backend whose store `make` builds
/// from the migrated `Database`: a failure names its backend, and one backend failing never
/// hides the other's result. Stories whose store is built another way form a group of their
/// own:
///
/// ```ignore
/// common::per_backend! {
///     IncidentStore::new => [one_story, another_story],
///     cached_store => [a_story_about_the_cache],
/// }
/// ```
///
/// One invocation per test file: it defines the modules `postgres` and `sqlite`.
macro_rules! per_backend {
    (@backend $backend:ident $($make:expr => [$($story:ident),+]),+) => {
        mod $backend {
            // The stories, and the names `make` uses, are the calling module's.
            use super::*;
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    super::$story($crate::common::$backend($make).await).await;
                }
            )+)+
        }
    };
    ($($make:expr => [$($story:ident),+ $(,)?]),+ $(,)?) => {
        $crate::common::per_backend!(@backend postgres $($make => [$($story),+]),+);
        $crate::common::per_backend!(@backend sqlite $($make => [$($story),+]),+);
    };
}
pub(crate) use per_backend;
