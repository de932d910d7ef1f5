#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `pool` and `monitor` subcommands run end to end through the built binary and
//! print the JSON the benchmark notes are made from. Timings are not asserted (the
//! machine's load decides them); only that every figure is there and the invariants hold.

use std::process::Command;

use kamiyo_testkit::TestDatabase;
use serde_json::Value;

fn run_json(args: &[&str]) -> serde_json::Map<String, Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_kamiyo-bench"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("kamiyo-bench runs");
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
