//! Alert subscriptions through the real router: a user's own, validated field by field,
//! limited by tier, never another user's; the signing secret shown once; a test send
//! signed like any delivery; the delivery log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::TestApp;
use kamiyo_alerts::config::AlertsConfig;
use kamiyo_domain::{Role, Tier};
use kamiyo_testkit::webhook::WebhookReceiver;
use serde_json::json;

async fn app() -> TestApp {
    TestApp::builder()
        .user(Tier::Pro, Role::User)
        .alerts(AlertsConfig {
            allow_private_targets: true,
            ..AlertsConfig::default()
        })
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_subscription_is_created_with_its_secret_shown_once_and_tested_signed() {
    let t = app().await;
    let receiver = WebhookReceiver::start().await;
    let created = t
        .post(
            "/api/subscriptions",
            json!({
                "name": "big hacks",
                "channel": {"kind": "webhook", "url": receiver.url("/in")},
                "filter": {"chains": ["ETH"], "min_loss_usd": "1000000"},
                "events": ["incident.created"]
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let body = created.json();
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        body["filter"]["chains"],
        json!(["ethereum"]),
        "stored resolved"
    );
    let id = body["id"].as_i64().unwrap();

    let shown = t.get(&format!("/api/subscriptions/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(!shown.text.contains("whsec_"), "shown once: {}", shown.text);
    let listed = t.get("/api/subscriptions").await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    let tested = t
        .post(&format!("/api/subscriptions/{id}/test"), json!({}))
        .await;
    assert_eq!(tested.status, StatusCode::OK, "{}", tested.text);
    assert_eq!(tested.json()["delivered"], true, "{}", tested.text);
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    got[0].verify(&secret, Duration::from_secs(300)).unwrap();
    assert_eq!(got[0].json()["type"], "test");

    let rotated = t
        .post(&format!("/api/subscriptions/{id}/rotate-secret"), json!({}))
        .await
        .json();
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    t.post(&format!("/api/subscriptions/{id}/test"), json!({}))
        .await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    got[1].verify(new_secret, Duration::from_secs(300)).unwrap();
    got[1].verify(&secret, Duration::from_secs(300)).unwrap();

    let log = t.get(&format!("/api/subscriptions/{id}/deliveries")).await;
    assert_eq!(log.status, StatusCode::OK);
    assert_eq!(log.json()["items"], json!([]), "test sends are not logged");
    let deleted = t
        .call(Method::DELETE, &format!("/api/subscriptions/{id}"))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get(&format!("/api/subscriptions/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_value_is_a_422_naming_its_field_and_nothing_is_stored() {
    let t = TestApp::builder().user(Tier::Pro, Role::User).start().await;
    for (body, field) in [
        (
            json!({"name": "x", "channel": {"kind": "webhook", "url": "http://127.0.0.1:9/in"}}),
            "channel.url",
        ),
        (
            json!({"name": "x", "channel": {"kind": "webhook", "url": "http://169.254.169.254/"}}),
            "channel.url",
        ),
        (
            json!({"name": "x", "channel": {"kind": "slack", "url": "https://hooks.example/s"}, "filter": {"attack_types": ["teleport"]}}),
            "filter.attack_types[0]",
        ),
        (
            json!({"name": "x", "channel": {"kind": "slack", "url": "https://hooks.example/s"}, "events": ["incident.deleted"]}),
            "events[0]",
        ),
        (
            json!({"name": " ", "channel": {"kind": "slack", "url": "https://hooks.example/s"}}),
            "name",
        ),
        (
            json!({"name": "x", "channel": {"kind": "telegram", "chat_id": "me", "bot_token": "1:x"}}),
            "channel.chat_id",
        ),
        (
            json!({"name": "x", "channel": {"kind": "email", "to": "a@example.com"}}),
            "channel.kind",
        ),
    ] {
        let answer = t.post("/api/subscriptions", body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            answer.text
        );
        assert!(answer.text.contains(field), "{field}: {}", answer.text);
    }
    let unknown = t
        .post(
            "/api/subscriptions",
            json!({"name": "x", "channel": {"kind": "pager"}}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(t.get("/api/subscriptions").await.json()["items"], json!([]));
    assert_eq!(
        t.get("/api/subscriptions").anonymous().await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_holds_its_number_of_subscriptions_and_nobody_sees_anothers() {
    let t = TestApp::builder()
        .user(Tier::Free, Role::User)
        .start()
        .await;
    let body = json!({"name": "one", "channel": {"kind": "discord", "url": "https://discord.example/api/webhooks/1/x"}});
    let first = t.post("/api/subscriptions", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let second = t.post("/api/subscriptions", body).await;
    assert_eq!(second.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        second.text.contains("free tier holds at most 1"),
        "{}",
        second.text
    );

    assert_eq!(
        first.json()["target"],
        "https://discord.example/…/1/x",
        "a webhook URL is a secret: shown masked"
    );
    let id = first.json()["id"].as_i64().unwrap();
    let other = t.key("other@example.com", Tier::Team, Role::User).await;
    for (method, path) in [
        (Method::GET, format!("/api/subscriptions/{id}")),
        (Method::DELETE, format!("/api/subscriptions/{id}")),
        (Method::GET, format!("/api/subscriptions/{id}/deliveries")),
    ] {
        let answer = t.call(method.clone(), &path).bearer(&other).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    assert_eq!(
        t.get("/api/subscriptions").bearer(&other).await.json()["items"],
        json!([])
    );
    let disabled = t
        .call(Method::PATCH, &format!("/api/subscriptions/{id}"))
        .json(json!({"enabled": false, "filter": {"min_sources": 2}}))
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);
    assert_eq!(disabled.json()["enabled"], false);
    assert_eq!(disabled.json()["filter"]["min_sources"], 2);
}
