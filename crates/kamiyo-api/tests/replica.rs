//! The API with a read replica (a real primary and streaming replica from
//! kamiyo-testkit): reads are served by the replica; when it goes down they keep being
//! served, by the primary, and health says `degraded`, not `unhealthy`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::primary_acquisitions;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kamiyo_api::{router, AppState, ServerConfig};
use kamiyo_db::{Database, DatabaseUrl, DbConfig, ReplicaState};
use kamiyo_domain::{IncidentDraft, IncidentInput};
use kamiyo_store::IncidentStore;
use kamiyo_testkit::PgCluster;
use serde_json::Value;
use tower::ServiceExt;

const ADMIN: &str = "replica-test-admin-token-0123456789abcdef";

async fn get(app: &axum::Router, path: &str) -> (StatusCode, Value) {
    let response = app
        .clone()
        .oneshot(
            Request::get(path)
                // Admin: the monitor's endpoints need it, and reads take it as any key.
                .header("authorization", format!("Bearer {ADMIN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_keep_being_served_by_the_primary_when_the_replica_goes_down() {
    let primary = PgCluster::start_primary().await;
    let replica = primary.start_replica().await;
    let mut config = DbConfig::for_url(primary.url());
    config.read_url = Some(DatabaseUrl::new(replica.url()));
    config.replica_check_interval = Duration::from_millis(50);
    config.replica_acquire_timeout = Duration::from_millis(300);
    config.connect_timeout = Duration::from_millis(500);
    let db = Database::open(config).await.unwrap();
    db.migrate(&kamiyo_store::MIGRATIONS).await.unwrap();
    let draft = IncidentDraft::from_input(
        IncidentInput {
            source: Some("test".into()),
            protocol: Some("Replicafi".into()),
            chains: vec!["Ethereum".into()],
            // Within what an anonymous caller may see: older than the 24 h delay,
            // newer than the 7-day history window.
            date: Some(
                (chrono::Utc::now() - chrono::Duration::days(3))
                    .format("%Y-%m-%d")
                    .to_string(),
            ),
            loss_usd: Some("1000".into()),
            ..IncidentInput::default()
        },
        chrono::Utc::now(),
    )
    .unwrap();
    let id = IncidentStore::new(db.clone())
        .ingest(&draft)
        .await
        .unwrap()
        .exploit_id;
    replica.wait_caught_up().await;
    let mut watch = db.watch_replica().unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        watch.wait_for(|s| s.state == ReplicaState::InUse),
    )
    .await
    .unwrap()
    .unwrap();
    let app = router(AppState::new(
        db.clone(),
        ServerConfig {
            admin_token: Some(kamiyo_api::config::BearerToken(ADMIN.to_owned().into())),
            // Each health read below follows a change it must see.
            health_cache_ttl: Duration::ZERO,
            ..ServerConfig::default()
        },
    ));

    let primary_before = primary_acquisitions(&db);
    let (status, body) = get(&app, &format!("/api/exploits/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["protocol"], "Replicafi");
    assert_eq!(
        primary_acquisitions(&db),
        primary_before,
        "the read must go to the replica, not the primary"
    );

    replica.stop().await;
    let (status, body) = get(&app, &format!("/api/exploits/{id}")).await;
    assert_eq!(status, StatusCode::OK, "served by the primary: {body}");
    assert_eq!(body["protocol"], "Replicafi");

    let (status, body) = get(&app, "/api/health/database").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        body["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["check"] == "replica_down"),
        "{body}"
    );

    let (status, body) = get(&app, "/api/metrics/database").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["replica"]["state"], "down", "{body}");
    // Whether the read or the checker noticed first, the read was counted.
    let fallbacks = &body["replica"]["fallbacks"];
    let counted =
        fallbacks["replica_failed"].as_u64().unwrap() + fallbacks["replica_down"].as_u64().unwrap();
    assert!(counted >= 1, "{body}");
}
