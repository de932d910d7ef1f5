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

/// `GET /api/health` is `degraded` while a fetched source is stale (no success within
/// three intervals, counted from the start for a source never fetched), naming it, and
/// `healthy` again once a fetch succeeds: time moves on the service's manual clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_health_is_degraded_while_a_source_is_stale_and_recovers_by_itself() {
    let pg = kamiyo_testkit::TestDatabase::create().await;
    let time = kamiyo_db::ManualClock::new();
    let db = kamiyo_db::Database::open(DbConfig {
        clock: time.clock(),
        ..DbConfig::for_url(pg.url())
    })
    .await
    .unwrap();
    db.migrate(&kamiyo_store::MIGRATIONS).await.unwrap();
    let schedule = kamiyo_store::sources::SourceSchedule {
        name: "mirror".into(),
        interval: Duration::from_secs(60),
        enabled: true,
    };
    let state = kamiyo_api::AppState::with_sources(
        db.clone(),
        kamiyo_api::ServerConfig {
            health_cache_ttl: Duration::ZERO,
            ..kamiyo_api::ServerConfig::default()
        },
        vec![schedule],
    );
    let client = kamiyo_testkit::Client::new(kamiyo_api::router(state));
    let health = || async { client.get("/api/health").send().await.json() };

    let fresh = health().await;
    assert_eq!(fresh["status"], "healthy", "{fresh}");
    assert_eq!(fresh["sources"][0]["stale"], false);

    time.advance(Duration::from_secs(3 * 60 + 1));
    let stale = health().await;
    assert_eq!(stale["status"], "degraded", "{stale}");
    assert_eq!(
        (
            &stale["sources"][0]["source"],
            &stale["sources"][0]["stale"]
        ),
        (&serde_json::json!("mirror"), &serde_json::json!(true))
    );
    assert_eq!(stale["database"]["status"], "healthy");

    let now = time.clock().now_utc();
    let fetch = kamiyo_store::SourceFetch::succeeded("mirror", now, now, 3).unwrap();
    kamiyo_store::SourceStore::new(db)
        .record_fetch(&fetch, kamiyo_store::DEFAULT_SOURCE_FETCH_RETENTION)
        .await
        .unwrap();
    let recovered = health().await;
    assert_eq!(recovered["status"], "healthy", "{recovered}");
    assert!(recovered["sources"][0]["last_success_at"].is_string());

    // `/api/sources` says the same of the sources this instance fetches.
    let mirror = || async {
        let sources = client.get("/api/sources").send().await.json();
        sources
            .as_array()
            .and_then(|all| all.iter().find(|s| s["source"] == "mirror").cloned())
            .unwrap_or_default()
    };
    assert_eq!(mirror().await["stale"], false);
    time.advance(Duration::from_secs(3 * 60 + 1));
    assert_eq!(mirror().await["stale"], true);
}
