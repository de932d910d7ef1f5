//! The OpenAPI document matches the server: every documented operation reaches a route,
//! and the listing's documented parameters are exactly the ones it accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use axum::body::Body;
use axum::http::{Method, Request};
use kamiyo_api::{router, AppState, ServerConfig};
use kamiyo_db::{Database, DbConfig};
use serde_json::Value;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_and_parameters_match() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(DbConfig::for_url(format!(
        "sqlite://{}",
        dir.path().join("k.db").display()
    )))
    .await
    .unwrap();
    db.migrate(&kamiyo_store::MIGRATIONS).await.unwrap();
    let accounts = kamiyo_store::accounts::AccountStore::new(db.clone());
    accounts
        .create_user(
            "t@example.com",
            kamiyo_domain::Tier::Enterprise,
            kamiyo_store::accounts::Role::User,
        )
        .await
        .unwrap();
    let (_, key) = accounts.create_key("t@example.com", "t").await.unwrap();
    let value = axum::http::HeaderValue::from_str(&format!("Bearer {key}")).unwrap();
    let app = router(AppState::new(db, ServerConfig::default())).layer(
        axum::middleware::map_request(move |mut request: Request<Body>| {
            let value = value.clone();
            async move {
                request
                    .headers_mut()
                    .insert(axum::http::header::AUTHORIZATION, value);
                request
            }
        }),
    );
    let response = app
        .clone()
        .oneshot(
            Request::get("/api/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 16, "{}", paths.len());
    for (path, operations) in paths {
        for (method, _) in operations.as_object().unwrap() {
            let uri = path.replace("{id}", "1").replace("{hash}", "0xabc");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .clone()
                .oneshot(
                    Request::builder()
                        .method(method.clone())
                        .uri(&uri)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("no route for this path"),
                "{method} {path} is documented but not routed"
            );
        }
    }
    let documented: Vec<&str> = paths["/api/exploits"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in &documented {
        let probe = app
            .clone()
            .oneshot(
                Request::get(format!("/api/exploits?{name}="))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            probe.status(),
            200,
            "documented parameter {name} is refused as unknown"
        );
    }
    let undocumented = app
        .clone()
        .oneshot(
            Request::get("/api/exploits?nonsense=1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(undocumented.status(), 400);
    assert!(doc["components"]["schemas"]["Incident"].is_object());
    assert!(doc["components"]["securitySchemes"]["admin_token"].is_object());
}
