//! The monitor's endpoints through the real router: JSON reports, parameter validation,
//! and a Prometheus exposition that promtool accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use axum::http::StatusCode;
use common::{token, TestApp};
use kamiyo_api::ServerConfig;
use kamiyo_db::monitor::MonitorConfig;
use kamiyo_db::{DbConfig, Pool};
use kamiyo_testkit::http::Request;
use kamiyo_testkit::{claim, eventually};

const METRICS_TOKEN: &str = "metrics-test-token-0123456789abcdef";

/// The settings of these tests: the monitor readable with the metrics token, and every
/// health request a fresh probe (each follows a change it must see).
fn monitored() -> ServerConfig {
    ServerConfig {
        metrics_token: token(METRICS_TOKEN),
        health_cache_ttl: Duration::ZERO,
        ..ServerConfig::default()
    }
}

/// The API on a fresh PostgreSQL database with the pool and monitor settings of
/// `config`, and the monitor readable with the metrics token.
async fn monitored_app(config: DbConfig) -> TestApp {
    TestApp::builder()
        .settings(monitored())
        .db_config(config)
        .start()
        .await
}

/// A GET with the metrics token.
fn scrape(t: &TestApp, path: &str) -> Request {
    t.get(path).bearer(METRICS_TOKEN)
}

fn promtool() -> PathBuf {
    let found = std::env::var_os("KAMIYO_PROMTOOL")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("promtool"))
                    .find(|p| p.is_file())
            })
        });
    found.expect(
        "promtool not found: scripts/test installs it (Debian package `prometheus`); or set KAMIYO_PROMTOOL",
    )
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_metrics_report_pool_state_acquisitions_slow_queries_config_and_leaks() {
    let monitor = MonitorConfig {
        slow_query_threshold: Duration::from_millis(30),
        leak_threshold: Duration::from_millis(50),
        ..MonitorConfig::default()
    };
    let t = monitored_app(DbConfig {
        monitor,
        ..DbConfig::default()
    })
    .await;
    let Pool::Postgres(pool) = t.db.primary().clone() else {
        panic!("postgres")
    };
    let conn = pool.acquire().await.unwrap();
    conn.simple_query("SELECT pg_sleep(0.05)").await.unwrap();
    // The leak detector runs on its own schedule: nothing announces a report.
    eventually("a leak reported", Duration::from_secs(10), || async {
        (!pool.monitor().leaks().is_empty()).then_some(())
    })
    .await;

    let answer = scrape(&t, "/api/metrics/database").await;
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{body}");
    assert_eq!(body["monitoring_enabled"], true);
    assert_eq!(
        body["health_status"]["status"], "degraded",
        "a leak degrades: {body}"
    );
    assert!(body["health_status"]["utilization_pct"].is_number());
    let pool_report = &body["pools"][0];
    assert_eq!(pool_report["name"], "primary");
    assert_eq!(pool_report["state"]["in_use"], 1);
    assert!(pool_report["acquisitions"]["total"].as_u64().unwrap() >= 1);
    assert!(pool_report["acquisitions"]["wait"]["p99_ms"].is_number());
    assert_eq!(body["slow_queries"][0]["statement"], "select pg_sleep(?)");
    assert_eq!(body["pool_config"]["max_size"], 16);
    assert_eq!(body["pool_config"]["slow_query_threshold_ms"], 30);
    let leak = &body["leak_warnings"][0];
    assert!(
        leak["acquired_at"]
            .as_str()
            .unwrap()
            .contains("metrics.rs:"),
        "{leak}"
    );
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_metrics_sort_by_calls_and_keep_to_the_limit() {
    let t = monitored_app(DbConfig::default()).await;
    let Pool::Postgres(pool) = t.db.primary().clone() else {
        panic!("postgres")
    };
    let conn = pool.acquire().await.unwrap();
    for _ in 0..3 {
        conn.query("SELECT count(*) FROM users", &[]).await.unwrap();
    }
    conn.query("SELECT count(*) FROM exploits", &[])
        .await
        .unwrap();
    drop(conn);

    let answer = scrape(&t, "/api/metrics/queries?limit=2&sort=calls").await;
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{body}");
    let statements = body["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 2);
    assert_eq!(statements[0]["statement"], "select count(*) from users");
    assert_eq!(statements[0]["calls"], 3);
    assert!(statements[0]["calls"].as_u64() >= statements[1]["calls"].as_u64());
    for key in [
        "errors",
        "total_ms",
        "mean_ms",
        "max_ms",
        "p95_ms",
        "rows",
        "last_executed_at",
        "fingerprint",
    ] {
        assert!(!statements[0][key].is_null(), "missing {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_query_metrics_parameter_is_a_400_naming_it() {
    let t = monitored_app(DbConfig::default()).await;
    for (query, parameter) in [
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("sort=fastest", "sort"),
        ("order=asc", "order"),
    ] {
        let answer = scrape(&t, &format!("/api/metrics/queries?{query}")).await;
        let body = answer.json();
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_parameter");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(parameter),
            "{query}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_exposition_is_valid_and_uses_the_opentelemetry_names() {
    let t = monitored_app(DbConfig::default()).await;
    let Pool::Postgres(pool) = t.db.primary().clone() else {
        panic!("postgres")
    };
    pool.acquire()
        .await
        .unwrap()
        .query("SELECT count(*) FROM users", &[])
        .await
        .unwrap();
    scrape(&t, "/api/health/database").await;
    scrape(&t, "/api/metrics/queries?limit=3").await;
    scrape(&t, "/no/such/path/12345").await;
    let answer = scrape(&t, "/metrics").await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = answer.text;
    for name in [
        "db_client_connection_count{db_client_connection_pool_name=\"primary\",db_client_connection_state=\"idle\"}",
        "db_client_connection_count{db_client_connection_pool_name=\"primary\",db_client_connection_state=\"used\"}",
        "db_client_connection_max{",
        "db_client_connection_pending_requests{",
        "db_client_connection_timeouts_total{",
        "db_client_connection_wait_time_seconds_bucket{",
        "db_client_connection_use_time_seconds_bucket{",
        "db_client_connection_create_time_seconds_bucket{",
        "db_client_operation_duration_seconds_bucket{",
        "http_server_request_duration_seconds_bucket{",
        "http_server_open_connections ",
        "http_server_refused_connections_total ",
        "http_server_connection_timeouts_total ",
        "kamiyo_rate_limit_callers{limiter=\"requests\"}",
        "kamiyo_rate_limit_evictions_total{limiter=\"auth_failures\"}",
    ] {
        assert!(text.contains(name), "missing {name} in:\n{text}");
    }
    assert!(
        text.contains("http_route=\"/api/metrics/queries\""),
        "{text}"
    );
    assert!(text.contains("http_route=\"unmatched\""), "{text}");
    assert!(!text.contains("12345"), "raw paths must not become labels");

    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Exit 3 is promtool's "lint findings only". The one accepted finding is the
    // OpenTelemetry name `db_client_connection_count`, which the naming lint mistakes
    // for a summary's `_count`; anything else (or a parse error, exit 1) fails.
    let only_known_lint = out.status.code() == Some(3)
        && findings.lines().filter(|l| !l.trim().is_empty()).all(|l| {
            l.starts_with("db_client_connection_count ") && l.contains("\"_count\" suffix")
        });
    assert!(
        out.status.success() || only_known_lint,
        "promtool check metrics: {findings}"
    );
}

#[test]
fn the_alerting_rules_pass_their_unit_tests() {
    let dir = repo_root().join("deploy/prometheus");
    let out = Command::new(promtool())
        .args(["test", "rules", "alerts.test.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_health_is_degraded_with_a_warning_after_an_acquisition_timeout() {
    let t = monitored_app(DbConfig {
        pool_max_size: 1,
        ..DbConfig::default()
    })
    .await;
    let answer = scrape(&t, "/api/health/database").await;
    let body = answer.json();
    assert_eq!(
        (answer.status, body["status"].as_str()),
        (StatusCode::OK, Some("healthy")),
        "{body}"
    );
    assert!(body.get("warnings").is_none());

    let Pool::Postgres(pool) = t.db.primary().clone() else {
        panic!("postgres")
    };
    let held = pool.acquire().await.unwrap();
    assert!(pool
        .acquire_within(Duration::from_millis(20))
        .await
        .is_err());
    drop(held);
    let answer = scrape(&t, "/api/health/database").await;
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["warnings"][0]["check"], "acquire_timeouts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_health_of_an_unreachable_database_is_a_503_saying_unhealthy() {
    let t = TestApp::builder()
        .settings(monitored())
        .unreachable_database()
        .start()
        .await;
    let answer = scrape(&t, "/api/health/database").await;
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["error"]["code"], "database_unavailable");
}

/// The default deployment: on SQLite, an import's statements and an incident read's
/// statements are timed and fingerprinted like PostgreSQL's, including those run inside
/// the store's multi-statement closures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_the_ingest_and_read_statements_appear_in_the_query_metrics() {
    let t = TestApp::builder()
        .settings(monitored())
        .sqlite()
        .start()
        .await;
    // Within what an anonymous caller sees (older than its delay, younger than its
    // history: docs/TIERS.md).
    let drafts: Vec<_> = ["Alphafi", "Betaswap", "Gammalend"]
        .iter()
        .map(|name| claim(name).ago(chrono::Duration::days(3)).build())
        .collect();
    let outcomes = t.state.incidents.ingest_batch(&drafts).await.unwrap();
    for outcome in outcomes {
        let id = outcome.unwrap().exploit_id;
        // Anonymous: the metrics token is not an API key.
        let answer = t.get(&format!("/api/exploits/{id}")).await;
        assert_eq!(answer.status, StatusCode::OK);
    }

    let answer = scrape(&t, "/api/metrics/queries?limit=100&sort=calls").await;
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{body}");
    let statements = body["statements"].as_array().unwrap();
    let calls = |prefix: &str| -> u64 {
        statements
            .iter()
            .filter(|s| s["statement"].as_str().unwrap().starts_with(prefix))
            .map(|s| s["calls"].as_u64().unwrap())
            .sum()
    };
    // Written by the batch: one prepared statement per row, each execution counted.
    assert_eq!(calls("insert into exploits("), 3, "{body}");
    assert_eq!(calls("insert into exploit_sources("), 3, "{body}");
    // Read by the three GETs (the incident row, its chains, hashes and claims).
    assert!(calls("select id, protocol, protocol_key") >= 3, "{body}");
    assert!(
        calls("select chain, tx_hash from exploit_tx_hashes") >= 3,
        "{body}"
    );
    let timed = statements
        .iter()
        .find(|s| {
            s["statement"]
                .as_str()
                .unwrap()
                .starts_with("insert into exploits(")
        })
        .unwrap();
    assert!(timed["total_ms"].as_f64().unwrap() > 0.0, "{timed}");
}
