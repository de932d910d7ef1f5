#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The kit's own helpers: a poll that gives up says what it saw, the HTTP client sends
//! what it is told, and a claim built with defaults is a valid draft.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use kamiyo_testkit::{claim, eventually, Client};
use serde_json::{json, Value};

#[tokio::test]
async fn eventually_returns_the_first_value_the_check_gives() {
    let mut calls = 0;
    let value = eventually("the third call", Duration::from_secs(5), || {
        calls += 1;
        let now = calls;
        async move { (now == 3).then_some(now * 10) }
    })
    .await;
    assert_eq!((value, calls), (30, 3));
}

#[tokio::test]
async fn eventually_gives_up_at_its_deadline_naming_what_and_the_last_observation() {
    let started = Instant::now();
    let outcome = tokio::spawn(async {
        eventually("the impossible", Duration::from_millis(100), || async {
            Err::<(), _>("still 7 rows")
        })
        .await
    })
    .await;
    let waited = started.elapsed();
    let panic = outcome.unwrap_err().into_panic();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("not the impossible within 100ms"),
        "{message}"
    );
    assert!(message.contains("still 7 rows"), "{message}");
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
}

/// Echoes what the request carried: the peer, the authorization header and the body.
fn echo() -> Router {
    async fn show(request: axum::extract::Request) -> Json<Value> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.to_string());
        let headers: HeaderMap = request.headers().clone();
        let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        Json(json!({
            "peer": peer,
            "authorization": headers.get("authorization").and_then(|v| v.to_str().ok()),
            "body": body,
        }))
    }
    Router::new()
        .route("/echo", get(show).post(show))
        .route("/text", get(|| async { "not json" }))
        .route(
            "/created",
            post(|| async { (StatusCode::CREATED, [("x-made", "yes")]) }),
        )
}

#[tokio::test]
async fn the_client_sends_the_peer_the_bearer_and_the_json_body() {
    let client = Client::new(echo());
    let answer = client
        .post("/echo", json!({"a": 1}))
        .bearer("first")
        .bearer("second")
        .from("192.0.2.7:4000")
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.json(),
        json!({"peer": "192.0.2.7:4000", "authorization": "Bearer second", "body": {"a": 1}})
    );
    let anonymous = client.get("/echo").bearer("key").anonymous().await.json();
    assert_eq!(
        (&anonymous["peer"], &anonymous["authorization"]),
        (&Value::Null, &Value::Null)
    );
}

#[tokio::test]
async fn a_response_gives_its_headers_and_its_text() {
    let client = Client::new(echo());
    let created = client.post("/created", json!({})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.header("x-made"), Some("yes"));
    assert_eq!(created.header("x-missing"), None);
    assert_eq!(client.get("/text").await.text, "not json");
}

#[tokio::test]
#[should_panic(expected = "not JSON")]
async fn json_of_a_body_that_is_not_json_panics_showing_it() {
    Client::new(echo()).get("/text").await.json();
}

#[test]
fn a_claim_with_only_a_protocol_is_a_valid_draft_with_the_defaults() {
    let input = claim("Alphafi").input();
    assert_eq!(input.source.as_deref(), Some("fixture"));
    assert_eq!(input.chains, ["ethereum"]);
    assert_eq!(input.loss_usd.as_deref(), Some("1000"));
    let draft = claim("Alphafi").build();
    assert_eq!(draft.protocol.display(), "Alphafi");
}

#[test]
fn a_claim_states_what_it_is_about() {
    let input = claim("Betaswap")
        .source("rekt")
        .chain("bsc")
        .chain("polygon")
        .date("2024-02-10")
        .unknown_loss()
        .tx("bsc", format!("0x{}", "ab".repeat(32)))
        .attack("oracle_manipulation")
        .input();
    assert_eq!(input.source.as_deref(), Some("rekt"));
    assert_eq!(input.chains, ["bsc", "polygon"]);
    assert_eq!(input.date.as_deref(), Some("2024-02-10"));
    assert_eq!(input.loss_usd, None);
    assert_eq!(input.tx_hashes[0].chain.as_deref(), Some("bsc"));
    assert_eq!(input.attack_type.as_deref(), Some("oracle_manipulation"));
}

#[test]
fn an_invalid_claim_is_refused_naming_its_field() {
    let refused = claim("Negfi").loss_usd("-1").try_build().unwrap_err();
    assert!(refused.to_string().contains("loss_usd"), "{refused}");
}
