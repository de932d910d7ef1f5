//! The curation admin API through the real router: merge, split, aliases; admins only;
//! what a request gets wrong is a 422 naming its field.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use axum::http::StatusCode;
use chrono::{TimeZone, Utc};
use common::{token, TestApp};
use kamiyo_api::ServerConfig;
use kamiyo_testkit::claim;
use serde_json::json;

const ADMIN: &str = "s3cret-token-0123456789abcdef0123";

/// The Ronin bridge hack under the bridge's name and the game's (two incidents by the
/// rules, which know no alias joining them), as incidents 1 and 2; the game's report
/// dated `axie_date`.
async fn ronin(axie_date: &str) -> TestApp {
    let t = TestApp::start(ServerConfig {
        admin_token: token(ADMIN),
        ..ServerConfig::default()
    })
    .await;
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap();
    for (source, name, date) in [
        ("defillama", "Ronin Network", "2022-03-23"),
        ("rekt", "Axie Infinity", axie_date),
    ] {
        t.incident(
            claim(name)
                .source(source)
                .date(date)
                .loss_usd("624000000")
                .now(now),
        )
        .await;
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_merges_two_incidents_and_the_merged_id_redirects() {
    let t = ronin("2022-03-29").await;
    let body = json!({"incidents": [1, 2], "reason": "Ronin is Axie Infinity's bridge"});
    assert_eq!(
        t.post("/api/admin/incidents/merge", body.clone())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let answer = t
        .post("/api/admin/incidents/merge", body)
        .bearer(ADMIN)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let done = answer.json();
    assert_eq!(done["report"]["merges"][0]["into"], 1, "{done}");
    assert_eq!(
        t.get("/api/exploits/2").await.header("location"),
        Some("/api/exploits/1")
    );
    // An admin sees every year (an anonymous caller's history is shorter).
    let incident = t.get("/api/exploits/1").bearer(ADMIN).await.json();
    let axie = &incident["sources"][1];
    assert_eq!(axie["joined_by"], "curated", "{incident}");
    assert_eq!(axie["decision"], done["decision"], "{incident}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_or_merge_the_incidents_do_not_allow_is_a_422_naming_the_field() {
    let t = ronin("2022-03-29").await;
    for (path, body, field) in [
        (
            "/api/admin/incidents/merge",
            json!({"incidents": [1, 99], "reason": "x"}),
            "incidents",
        ),
        (
            "/api/admin/incidents/merge",
            json!({"incidents": [1], "reason": "x"}),
            "incidents",
        ),
        (
            "/api/admin/incidents/merge",
            json!({"incidents": [1, 2], "reason": " "}),
            "reason",
        ),
        (
            "/api/admin/incidents/1/split",
            json!({"claims": [2], "reason": "x"}),
            "claims",
        ),
        (
            "/api/admin/incidents/1/split",
            json!({"claims": [1], "reason": "x"}),
            "claims",
        ),
    ] {
        let answer = t.post(path, body.clone()).bearer(ADMIN).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let message = answer.json()["error"]["message"].to_string();
        assert!(message.contains(field), "{body}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_added_by_an_admin_merges_the_stored_incidents_and_its_removal_splits_them() {
    let t = ronin("2022-03-24").await;
    let body = json!({"name": "Axie Infinity", "alias": "Ronin Network", "reason": "Ronin is Axie's bridge"});
    let answer = t
        .post("/api/admin/aliases", body.clone())
        .bearer(ADMIN)
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let change = answer.json();
    assert_eq!(change["alias"]["added_by"], "admin-token", "{change}");
    assert_eq!(
        change["remerge"]["merges"][0]["from"],
        json!([2]),
        "{change}"
    );
    assert_eq!(
        t.get("/api/exploits/2").await.status,
        StatusCode::PERMANENT_REDIRECT
    );

    let again = t.post("/api/admin/aliases", body).bearer(ADMIN).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    let listed = t.get("/api/admin/aliases").bearer(ADMIN).await.json();
    assert_eq!(listed["added"][0]["alias"], "Ronin Network", "{listed}");
    assert!(listed["shipped_groups"].as_u64().unwrap() > 10, "{listed}");

    let path = "/api/admin/aliases/Ronin%20Network";
    let removed = t.call(axum::http::Method::DELETE, path).bearer(ADMIN).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    let change = removed.json();
    assert_eq!(change["remerge"]["splits"][0]["from"], 1, "{change}");
    let gone = t.call(axum::http::Method::DELETE, path).bearer(ADMIN).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_queue_is_for_admins_and_lists_a_near_miss_with_its_evidence() {
    // The game's name and the bridge's five days apart: only alike in the chain and the
    // amount, so not in the queue; the bridge's name again is.
    let t = ronin("2022-03-28").await;
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap();
    t.incident(
        claim("Ronin")
            .source("rekt")
            .date("2022-03-28")
            .loss_usd("625000000")
            .now(now),
    )
    .await;
    assert_eq!(
        t.get("/api/review/candidates").await.status,
        StatusCode::UNAUTHORIZED
    );
    let answer = t.get("/api/review/candidates?limit=10").bearer(ADMIN).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let queue = answer.json();
    let pairs = queue["candidates"].as_array().unwrap();
    assert_eq!(pairs.len(), 1, "{queue}");
    assert_eq!(pairs[0]["a"]["protocol"], "Ronin Network", "{queue}");
    assert_eq!(pairs[0]["b"]["protocol"], "Ronin", "{queue}");
    assert!(pairs[0]["score"].as_u64().unwrap() >= 25, "{queue}");
    let bad = t
        .get("/api/review/candidates?window_days=99")
        .bearer(ADMIN)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
