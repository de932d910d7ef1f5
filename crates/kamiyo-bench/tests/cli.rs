#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `pool`, `monitor` and `copy` subcommands run end to end through the built binary
//! and print the JSON the benchmark notes are made from. Timings are not asserted (the
//! machine's load decides them); only that every figure is there and the invariants hold.

use std::process::Command;

use kamiyo_testkit::TestDatabase;
use serde_json::Value;

fn kamiyo_bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kamiyo-bench"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("kamiyo-bench runs")
}

fn run_json(args: &[&str]) -> serde_json::Map<String, Value> {
    let output = kamiyo_bench(args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kamiyo-bench {args:?} failed: {}\nstdout: {stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    match serde_json::from_str(&stdout) {
        Ok(Value::Object(report)) => report,
        other => panic!("stdout is not one JSON object: {other:?}\n{stdout}"),
    }
}

fn assert_numeric(report: &serde_json::Map<String, Value>, keys: &[&str]) {
    for key in keys {
        assert!(
            report.get(*key).is_some_and(Value::is_number),
            "{key} missing or not a number in {report:?}"
        );
    }
}

#[tokio::test]
async fn pool_reports_every_figure_and_no_failed_query() {
    let db = TestDatabase::create().await;
    // Small stress pools: the test suite's other databases share the server's
    // connection limit.
    let report = run_json(&[
        "pool",
        "--json",
        "--quick",
        "--database-url",
        db.url(),
        "--stress-workers",
        "8",
        "--stress-pool-size",
        "4",
    ]);
    assert_numeric(
        &report,
        &[
            "uncontended_acquire_release_ns",
            "handoff_p50_us",
            "handoff_p99_us",
            "timeout_overshoot_p50_ms",
            "timeout_overshoot_p99_ms",
            "stress_workers",
            "stress_pool_size",
            "stress_queries",
            "stress_qps_monitored",
            "stress_qps_unmonitored",
            "stress_errors",
            "raw_deadpool_qps",
        ],
    );
    assert_eq!(report["stress_errors"].as_u64(), Some(0));
    assert_eq!(report["stress_workers"].as_u64(), Some(8));
    assert_eq!(report["stress_pool_size"].as_u64(), Some(4));
}

#[test]
fn monitor_reports_every_figure_and_keeps_statements_within_the_bound() {
    let report = run_json(&["monitor", "--json", "--quick"]);
    assert_numeric(
        &report,
        &[
            "record_query_ns",
            "fingerprint_new_statement_us",
            "record_acquisition_ns",
            "tracked_statements_after_flood",
            "max_statements",
        ],
    );
    assert_eq!(
        report["tracked_statements_after_flood"],
        report["max_statements"]
    );
}

/// Rows of the `copy` source for `n` incidents: each with a chain, a hash and a claim,
/// and one user.
fn copy_rows(n: u64) -> u64 {
    4 * n + 1
}

fn assert_every_run_verified(report: &serde_json::Map<String, Value>, runs: usize, n: u64) {
    assert_numeric(
        report,
        &[
            "source_rows",
            "source_bytes",
            "source_build_seconds",
            "median_seconds",
            "median_rows_per_second",
            "median_incidents_per_second",
        ],
    );
    assert_eq!(report["source_rows"].as_u64(), Some(copy_rows(n)));
    assert_eq!(report["all_verified"], Value::Bool(true));
    let list = report["runs"].as_array().expect("runs is a list");
    assert_eq!(list.len(), runs, "{report:?}");
    for (i, run) in list.iter().enumerate() {
        assert_eq!(run["run"].as_u64(), Some(i as u64 + 1));
        assert_eq!(run["rows_copied"].as_u64(), Some(copy_rows(n)), "{run}");
        assert_eq!(run["incidents_copied"].as_u64(), Some(n), "{run}");
        assert_eq!(run["verified"], Value::Bool(true), "{run}");
        assert!(run["seconds"].as_f64().is_some_and(|s| s > 0.0), "{run}");
        assert!(
            run["stages"].as_array().is_some_and(|s| !s.is_empty()),
            "{run}"
        );
    }
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn copy_into_an_empty_database_verifies_every_run_and_leaves_the_last_copy() {
    let db = TestDatabase::create().await;
    let report = run_json(&[
        "copy",
        "--json",
        "--incidents",
        "150",
        "--repeat",
        "2",
        "--database-url",
        db.url(),
    ]);
    assert_every_run_verified(&report, 2, 150);
    assert_eq!(report["target_mode"], "existing");
    // Each run found the target empty: the second did not replace the first's rows.
    let client = db.client().await;
    assert_eq!(count(&client, "exploits").await, 150);
    assert_eq!(count(&client, "exploit_sources").await, 150);
    assert_eq!(count(&client, "users").await, 1);
}

#[tokio::test]
async fn copy_with_an_admin_url_creates_and_drops_a_database_per_run() {
    let admin_url = kamiyo_testkit::admin_url();
    let report = run_json(&[
        "copy",
        "--json",
        "--incidents",
        "20",
        "--repeat",
        "2",
        "--admin-url",
        &admin_url,
    ]);
    assert_every_run_verified(&report, 2, 20);
    assert_eq!(report["target_mode"], "scratch");
    let names: Vec<String> = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["scratch_database"].as_str().unwrap().to_owned())
        .collect();
    assert_ne!(names[0], names[1]);
    // Any database will do for reading the server's catalog.
    let db = TestDatabase::create().await;
    let client = db.client().await;
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = ANY($1)",
            &[&names],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "scratch databases {names:?} were not dropped");
}

#[tokio::test]
async fn copy_refuses_a_database_that_holds_data_and_leaves_it_as_it_was() {
    let db = TestDatabase::create().await;
    run_json(&[
        "copy",
        "--json",
        "--incidents",
        "7",
        "--repeat",
        "1",
        "--database-url",
        db.url(),
    ]);

    let output = kamiyo_bench(&["copy", "--incidents", "3", "--database-url", db.url()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a target holding data was accepted"
    );
    assert!(
        stderr.contains("already holds data") && stderr.contains("exploits"),
        "{stderr}"
    );
    let client = db.client().await;
    assert_eq!(count(&client, "exploits").await, 7);
}

#[test]
fn copy_arguments_are_checked_and_passwords_never_printed() {
    for (args, expected) in [
        (
            &["copy", "--incidents", "0"][..],
            "--incidents must be at least 1",
        ),
        (
            &["copy", "--repeat", "0"][..],
            "--repeat must be at least 1",
        ),
        (
            &[
                "copy",
                "--database-url",
                "postgres://a@h/x",
                "--admin-url",
                "postgres://a@h/postgres",
            ][..],
            "cannot be used with",
        ),
        (
            &["copy", "--database-url", "sqlite://k.db"][..],
            "needs a postgres:// target",
        ),
        (
            &[
                "copy",
                "--database-url",
                "postgres://bench:s3cr3t-pw@127.0.0.1:1/nowhere",
            ][..],
            "bench:***@127.0.0.1:1",
        ),
    ] {
        let output = kamiyo_bench(args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded: {stdout}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !stdout.contains("s3cr3t") && !stderr.contains("s3cr3t"),
            "{args:?} printed a password: {stdout}{stderr}"
        );
    }
}

/// `fetch` imports the whole answer on its first fetch and is answered 304 after, with
/// next to no database work; a run is valid only when it measured that.
#[test]
fn fetch_measures_a_first_import_and_cheap_not_modified_fetches() {
    let report = run_json(&["fetch", "--records", "20", "--repeat", "3"]);
    assert_eq!(report["invalid"], Value::Null, "{report:?}");
    assert_eq!(report["records"], 20);
    assert_eq!(report["first_fetch_inserted"], 20);
    assert_eq!(report["not_modified_ms"].as_array().map(Vec::len), Some(3));
    let per_304 = report["not_modified_statements"].as_u64().unwrap();
    let first = report["first_fetch_statements"].as_u64().unwrap();
    assert!(per_304 < 20 && per_304 * 10 < first, "{report:?}");
}

/// Merge quality on the real files (when `../shared/data/raw/` is there; the labels are
/// in the repository): every hand-judged look-alike pair stays apart, and recall holds
/// at the level docs/DEDUP.md records, so that a rule change that loses pairs shows.
#[test]
fn dedup_on_the_real_files_merges_no_look_alike_and_keeps_its_recall() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let data = format!("{root}/../shared/data/raw");
    if !std::path::Path::new(&data)
        .join("defillama_hacks_export.csv")
        .exists()
    {
        eprintln!("note: {data} is absent; the decision rules have their own tests");
        return;
    }
    let labels = format!("{root}/crates/kamiyo-bench/eval/dedup_labels.txt");
    let report = run_json(&["dedup", "--data", &data, "--labels", &labels, "--json"]);
    assert_eq!(report["wrongly_merged"], 0, "{report:?}");
    assert!(report["different_pairs"].as_u64().unwrap() >= 10);
    let recall = report["recall"].as_f64().unwrap();
    assert!(recall >= 0.95, "recall {recall}: {report:?}");
}
