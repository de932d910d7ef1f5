//! The health endpoints through the real router, on both backends and on a database
//! that cannot be reached.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::TestApp;
use kamiyo_db::DbConfig;
use kamiyo_testkit::Response;

/// The API with nothing listening at its database's address.
async fn on_an_unreachable_database() -> TestApp {
    TestApp::builder().unreachable_database().start().await
}

fn assert_database_health(backend: &str, answer: &Response) {
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{backend}: {body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["backend"], backend);
    assert_eq!(
        body["schema_version"],
        kamiyo_store::MIGRATIONS.postgres.last().unwrap().version
    );
    assert_eq!(body["pool"]["max_size"], 16);
    assert_eq!(
        body["pool"]["in_use"], 0,
        "{backend}: the health check returned its connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_answers_without_touching_the_database() {
    let t = on_an_unreachable_database().await;
    let answer = t.get("/healthz").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_health_reports_schema_version_and_pool_state_on_postgres() {
    let t = TestApp::builder().start().await;
    assert_database_health("postgres", &t.get("/api/health/database").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_health_reports_schema_version_and_pool_state_on_sqlite() {
    let t = TestApp::builder().sqlite().start().await;
    assert_database_health("sqlite", &t.get("/api/health/database").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_gives_503_with_the_envelope_and_retry_after() {
    let t = on_an_unreachable_database().await;
    let started = Instant::now();
    let answer = t.get("/api/health/database").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.header("retry-after"), Some("5"));
    let body = answer.json();
    assert_eq!(body["error"]["code"], "database_unavailable");
    let text = body.to_string();
    assert!(
        !text.contains("s3cret") && !text.contains("127.0.0.1"),
        "internals leaked: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_is_reported_degraded_within_the_acquire_deadline() {
    let t = TestApp::builder()
        .db_config(DbConfig {
            pool_max_size: 1,
            acquire_timeout: Duration::from_millis(200),
            ..DbConfig::default()
        })
        .start()
        .await;
    let kamiyo_db::Pool::Postgres(pool) = t.db.primary().clone() else {
        panic!("postgres")
    };
    let _held = pool.acquire().await.unwrap();
    let started = Instant::now();
    let answer = t.get("/api/health/database").await;
    let took = started.elapsed();
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "degraded");
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_get_404_in_the_envelope() {
    let t = TestApp::builder().sqlite().start().await;
    let answer = t.get("/api/nothing-here").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json()["error"]["code"], "not_found");
}
