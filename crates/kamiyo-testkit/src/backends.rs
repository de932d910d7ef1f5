//! [`per_backend!`](crate::per_backend): one story, one test per database backend.
//!
//! The backends themselves (a migrated PostgreSQL database of the test's own, a SQLite
//! file in a temporary directory, and the store a story needs on them) are built by the
//! calling crate's `tests/common/`, which knows the service's types: this crate cannot
//! (see the crate's documentation).

/// Makes each story (`async fn story(b: Backend)` in the calling file) two tests,
/// `postgres::story` and `sqlite::story`, each on a fresh backend built by the calling
/// crate's `common::postgres(make)` and `common::sqlite(make)`, where `make` builds the
/// store under test from the migrated database. A failure names its backend, and one
/// backend failing never hides the other's result. Stories whose store is built another
/// way form a group of their own:
///
/// ```ignore
/// mod common;
/// kamiyo_testkit::per_backend! {
///     IncidentStore::new => [one_story, another_story],
///     cached_store => [a_story_about_the_cache],
/// }
/// ```
///
/// One invocation per test file, next to `mod common;`: it defines the modules
/// `postgres` and `sqlite`.
#[macro_export]
macro_rules! per_backend {
    (@backend $backend:ident $($make:expr => [$($story:ident),+]),+) => {
        mod $backend {
            // The stories, `common` and the names `make` uses are the calling module's.
            use super::*;
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    super::$story(common::$backend($make).await).await;
                }
            )+)+
        }
    };
    ($($make:expr => [$($story:ident),+ $(,)?]),+ $(,)?) => {
        $crate::per_backend!(@backend postgres $($make => [$($story),+]),+);
        $crate::per_backend!(@backend sqlite $($make => [$($story),+]),+);
    };
}
