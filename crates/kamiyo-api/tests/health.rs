//! The health endpoints through the real router, on both backends and on a database
//! that cannot be reached.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use kamiyo_api::{router, AppState, ServerConfig};
use kamiyo_db::{Database, DbConfig};
use kamiyo_testkit::TestDatabase;
use serde_json::Value;
use tower::ServiceExt;

async fn get(app: axum::Router, path: &str) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap())
}

async fn migrated_app(config: DbConfig) -> axum::Router {
    let db = Database::open(config).await.unwrap();
    db.migrate(&kamiyo_store::MIGRATIONS).await.unwrap();
    router(AppState::new(db, ServerConfig::default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_answers_without_touching_the_database() {
    let db = Database::open(DbConfig::for_url("postgres://u:p@127.0.0.1:1/none"))
        .await
        .unwrap();
    let app = router(AppState::new(db, ServerConfig::default()));
    let (status, _, body) = get(app, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_health_reports_schema_version_and_pool_state_on_both_backends() {
    let pg = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("k.db").display());
    for (backend, config) in [
        ("postgres", DbConfig::for_url(pg.url())),
        ("sqlite", DbConfig::for_url(sqlite_url)),
    ] {
        let app = migrated_app(config).await;
        let (status, _, body) = get(app, "/api/health/database").await;
        assert_eq!(status, StatusCode::OK, "{backend}: {body}");
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_gives_503_with_the_envelope_and_retry_after() {
    let db = Database::open(DbConfig::for_url(
        "postgres://kamiyo:s3cret@127.0.0.1:1/none",
    ))
    .await
    .unwrap();
    let app = router(AppState::new(db, ServerConfig::default()));
    let started = Instant::now();
    let (status, headers, body) = get(app, "/api/health/database").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "5");
    assert_eq!(body["error"]["code"], "database_unavailable");
    let text = body.to_string();
    assert!(
        !text.contains("s3cret") && !text.contains("127.0.0.1"),
        "internals leaked: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_is_reported_degraded_within_the_acquire_deadline() {
    let pg = TestDatabase::create().await;
    let config = DbConfig {
        pool_max_size: 1,
        acquire_timeout: Duration::from_millis(200),
        ..DbConfig::for_url(pg.url())
    };
    let db = Database::open(config).await.unwrap();
    db.migrate(&kamiyo_store::MIGRATIONS).await.unwrap();
    let kamiyo_db::Pool::Postgres(pool) = db.primary().clone() else {
        panic!("postgres")
    };
    let _held = pool.acquire().await.unwrap();
    let app = router(AppState::new(db, ServerConfig::default()));
    let started = Instant::now();
    let (status, _, body) = get(app, "/api/health/database").await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "degraded");
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_get_404_in_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let app = migrated_app(DbConfig::for_url(format!(
        "sqlite://{}",
        dir.path().join("k.db").display()
    )))
    .await;
    let (status, _, body) = get(app, "/api/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}
