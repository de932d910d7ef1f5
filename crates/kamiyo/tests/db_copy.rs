#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

//! `kamiyo db copy` as an operator runs it: a SQLite deployment built with the CLI,
//! copied onto PostgreSQL, then a second copy refused.

use std::path::Path;
use std::process::{Command, Output};

use kamiyo_testkit::TestDatabase;

const KAMIYO: &str = env!("CARGO_BIN_EXE_kamiyo");

/// A `kamiyo` command that sees none of the developer's own configuration.
fn kamiyo(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(KAMIYO);
    command.current_dir(dir).env("RUST_LOG", "warn").args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("KAMIYO_") || key == "DATABASE_URL" {
            command.env_remove(key);
        }
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_copy_moves_a_sqlite_deployment_onto_postgres_and_then_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("sqlite://{}", dir.path().join("kamiyo.db").display());
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kamiyo-ingest/tests/fixtures/import.jsonl")
        .display()
        .to_string();
    for args in [
        vec!["migrate"],
        vec![
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--tier",
            "team",
        ],
        vec!["key", "create", "--user", "ops@example.com"],
    ] {
        let out = kamiyo(
            dir.path(),
            &[&args[..], &["--database-url", &source]].concat(),
        );
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    // The fixture has rejected lines on purpose (exit 1); its valid lines are stored.
    kamiyo(dir.path(), &["import", &fixture, "--database-url", &source]);

    let pg = TestDatabase::create().await;
    let out = kamiyo(
        dir.path(),
        &["db", "copy", "--from", &source, "--to", pg.url(), "--json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verified"], true, "{report}");
    let table = |name: &str| {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap()
            .clone()
    };
    assert!(
        table("exploits")["copied_rows"].as_u64().unwrap() >= 5,
        "{report}"
    );
    assert_eq!(table("api_keys")["target_rows"], 1);
    let client = pg.client().await;
    let user: (i64, String) = client
        .query_one("SELECT id, email FROM users", &[])
        .await
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!(user, (1, "ops@example.com".to_owned()));

    let again = kamiyo(
        dir.path(),
        &["db", "copy", "--from", &source, "--to", pg.url()],
    );
    assert!(!again.status.success());
    let stderr = text(&again.stderr);
    assert!(
        stderr.contains("already holds data") && stderr.contains("--force"),
        "{stderr}"
    );

    let unreachable = kamiyo(
        dir.path(),
        &[
            "db",
            "copy",
            "--from",
            &source,
            "--to",
            "postgres://kamiyo:hunter2@127.0.0.1:1/kamiyo",
            "--json",
        ],
    );
    assert!(!unreachable.status.success());
    let shown = format!("{}{}", text(&unreachable.stdout), text(&unreachable.stderr));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("kamiyo:***@127.0.0.1:1"), "{shown}");
    let error: serde_json::Value = serde_json::from_slice(&unreachable.stdout).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{error}"
    );
}
