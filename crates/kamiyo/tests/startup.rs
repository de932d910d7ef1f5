//! Start-up against a database whose migrations fail: the service must not come up, must
//! say why, and must say the same thing on the next attempt.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use kamiyo::startup::prepare_database;
use kamiyo_db::{DbConfig, Migration, Migrations};
use kamiyo_testkit::TestDatabase;

static BROKEN: [Migration; 2] = [
    Migration::new(1, "ok", "CREATE TABLE ok (id INT);"),
    Migration::new(
        2,
        "broken",
        "CREATE TABLE partial (id INT); SELECT no_such_function();",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_stops_start_up_with_its_error_every_time_and_holds_no_lock() {
    let pg = TestDatabase::create().await;
    let migrations = Migrations {
        postgres: &BROKEN,
        sqlite: &[],
    };
    let config = DbConfig::for_url(pg.url());
    let first = format!(
        "{:#}",
        prepare_database(&config, &migrations).await.err().unwrap()
    );
    assert!(
        first.contains("0002_broken") && first.contains("no_such_function"),
        "{first}"
    );
    let second = format!(
        "{:#}",
        prepare_database(&config, &migrations).await.err().unwrap()
    );
    assert_eq!(first, second);
    assert_eq!(pg.advisory_locks_held().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_automatic_migration_off_a_pending_schema_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = DbConfig {
        migrate_on_start: false,
        ..DbConfig::for_url(format!("sqlite://{}", dir.path().join("k.db").display()))
    };
    let err = format!(
        "{:#}",
        prepare_database(&config, &kamiyo_store::MIGRATIONS)
            .await
            .err()
            .unwrap()
    );
    assert!(
        err.contains("pending migrations") && err.contains("kamiyo migrate"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_automatic_migration_off_an_edited_applied_migration_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    static ORIGINAL: [Migration; 1] = [Migration::new(1, "one", "CREATE TABLE one (id INTEGER);")];
    static EDITED: [Migration; 1] = [Migration::new(
        1,
        "one",
        "CREATE TABLE one (id INTEGER, x TEXT);",
    )];
    prepare_database(
        &DbConfig::for_url(url.clone()),
        &Migrations {
            postgres: &[],
            sqlite: &ORIGINAL,
        },
    )
    .await
    .unwrap();
    let config = DbConfig {
        migrate_on_start: false,
        ..DbConfig::for_url(url)
    };
    let err = format!(
        "{:#}",
        prepare_database(
            &config,
            &Migrations {
                postgres: &[],
                sqlite: &EDITED
            }
        )
        .await
        .err()
        .unwrap()
    );
    assert!(
        err.contains("0001_one") && err.contains("checksum"),
        "{err}"
    );
}
