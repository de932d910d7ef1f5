//! The API with a read replica (a real primary and streaming replica from
//! kamiyo-testkit): reads are served by the replica; when it goes down they keep being
//! served, by the primary, and health says `degraded`, not `unhealthy`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::{primary_acquisitions, token, TestApp};

use std::time::Duration;

use axum::http::StatusCode;
use kamiyo_api::ServerConfig;
use kamiyo_db::{Database, DatabaseUrl, DbConfig, ReplicaState};
use kamiyo_testkit::{claim, PgCluster};

const ADMIN: &str = "replica-test-admin-token-0123456789abcdef";

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
    let t = TestApp::builder()
        .database(db.clone())
        .settings(ServerConfig {
            admin_token: token(ADMIN),
            // Each health read below follows a change it must see.
            health_cache_ttl: Duration::ZERO,
            ..ServerConfig::default()
        })
        .start()
        .await;
    // Within what an anonymous caller may see: older than the 24 h delay, newer than
    // the 7-day history window.
    let id = t
        .incident(
            claim("Replicafi")
                .source("test")
                .ago(chrono::Duration::days(3)),
        )
        .await;
    replica.wait_caught_up().await;
    let mut watch = db.watch_replica().unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        watch.wait_for(|s| s.state == ReplicaState::InUse),
    )
    .await
    .unwrap()
    .unwrap();
    // As the admin: the monitor's endpoints need it, and reads take it as any key.
    let get = |path: &str| {
        let request = t.get(path).bearer(ADMIN);
        async move {
            let answer = request.await;
            (answer.status, answer.json())
        }
    };

    let primary_before = primary_acquisitions(&db);
    let (status, body) = get(&format!("/api/exploits/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["protocol"], "Replicafi");
    assert_eq!(
        primary_acquisitions(&db),
        primary_before,
        "the read must go to the replica, not the primary"
    );

    replica.stop().await;
    let (status, body) = get(&format!("/api/exploits/{id}")).await;
    assert_eq!(status, StatusCode::OK, "served by the primary: {body}");
    assert_eq!(body["protocol"], "Replicafi");

    let (status, body) = get("/api/health/database").await;
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

    let (status, body) = get("/api/metrics/database").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["replica"]["state"], "down", "{body}");
    // Whether the read or the checker noticed first, the read was counted.
    let fallbacks = &body["replica"]["fallbacks"];
    let counted =
        fallbacks["replica_failed"].as_u64().unwrap() + fallbacks["replica_down"].as_u64().unwrap();
    assert!(counted >= 1, "{body}");
}
