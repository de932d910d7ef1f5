//! Community submissions over HTTP: a user's report, matched at once; the reviewers'
//! queue and decisions; reputation that gates submitting; a trusted user's evidence
//! applied without review.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::TestApp;
use kamiyo_domain::{ReputationRules, Role, Tier};
use kamiyo_testkit::claim;
use serde_json::{json, Value};

const HASH: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";

fn report(protocol: &str, date: &str) -> Value {
    json!({
        "protocol": protocol,
        "chains": ["ethereum"],
        "date": date,
        "loss_usd": "2500000",
        "tx_hashes": [{"chain": "ethereum", "hash": HASH}],
        "description": "Drained through a <b>reentrancy</b> in the vault",
        "evidence_urls": ["https://twitter.example/status/1"],
        "attacker_addresses": ["0xAbCdEf0000000000000000000000000000000001"]
    })
}

/// A reviewer's key (a user granted the role).
async fn reviewer_key(t: &TestApp) -> String {
    let key = t.key("rita@example.com", Tier::Pro, Role::User).await;
    t.accounts()
        .grant_reviewer("rita@example.com")
        .await
        .unwrap();
    key
}

#[tokio::test]
async fn a_report_is_matched_stored_once_and_refused_with_the_field_named() {
    let t = TestApp::builder()
        .user(Tier::Free, Role::User)
        .start()
        .await;
    let first = t
        .post("/api/submissions", report("Vault Finance", "2023-06-01"))
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let body = first.json();
    assert_eq!(body["status"], "pending");
    assert_eq!(body["matched"], "none");
    assert_eq!(body["duplicate"], false);
    assert_eq!(body["claim"]["source"], "community");
    let again = t
        .post("/api/submissions", report("vault finance ", "2023-06-01"))
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["duplicate"], true);
    assert_eq!(again.json()["id"], body["id"]);

    for (mut bad, field) in [
        (report("X", "2023-06-01"), "evidence_urls"),
        (report("X", "2023-06-01"), "evidence_urls[0]"),
        (report("X", "2023-06-01"), "tx_hashes[0].hash"),
        (report("X", "not a date"), "date"),
    ] {
        match field {
            "evidence_urls" => bad["evidence_urls"] = json!([]),
            "evidence_urls[0]" => bad["evidence_urls"] = json!(["javascript:alert(1)"]),
            "tx_hashes[0].hash" => {
                bad["tx_hashes"] = json!([{"chain": "ethereum", "hash": "0x12"}])
            }
            _ => {}
        }
        let refused = t.post("/api/submissions", bad).await;
        assert_eq!(refused.status, 422, "{field}: {}", refused.text);
        assert!(
            refused.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{field}: {}",
            refused.text
        );
    }
    let anonymous = t
        .post("/api/submissions", report("Y", "2023-06-01"))
        .anonymous()
        .await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn a_reviewer_verifies_a_report_into_an_incident_and_the_submitter_sees_it() {
    let t = TestApp::builder().user(Tier::Pro, Role::User).start().await;
    let existing = t
        .incident(
            claim("Vault Finance")
                .chain("ethereum")
                .date("2023-06-01")
                .loss_usd("2400000"),
        )
        .await;
    let submitted = t
        .post("/api/submissions", report("Vault Finance", "2023-06-01"))
        .await
        .json();
    assert_eq!(submitted["matched"], "incident");
    assert_eq!(submitted["exploit_id"], existing);
    let id = submitted["id"].as_i64().unwrap();

    let plain = t.key("paul@example.com", Tier::Pro, Role::User).await;
    assert_eq!(
        t.get("/api/review/submissions").bearer(&plain).await.status,
        403
    );
    assert_eq!(
        t.get(&format!("/api/submissions/{id}"))
            .bearer(&plain)
            .await
            .status,
        404
    );

    let rita = reviewer_key(&t).await;
    let queue = t.get("/api/review/submissions").bearer(&rita).await;
    assert_eq!(queue.status, 200, "{}", queue.text);
    let item = &queue.json()["items"][0];
    assert_eq!(item["submission"]["id"], id);
    assert_eq!(
        item["incident"]["id"], existing,
        "the matched incident side by side"
    );
    assert!(item["incident"]["sources"]
        .as_array()
        .is_some_and(|s| !s.is_empty()));

    let bad = t
        .post(
            &format!("/api/review/submissions/{id}"),
            json!({"decision": "approve", "reason": "ok"}),
        )
        .bearer(&rita)
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("decision"), "{}", bad.text);
    let verified = t
        .post(
            &format!("/api/review/submissions/{id}"),
            json!({"decision": "verify", "reason": "tx checked"}),
        )
        .bearer(&rita)
        .await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(verified.json()["status"], "verified");
    let incident = t.get(&format!("/api/exploits/{existing}")).await.json();
    let sources: Vec<&str> = incident["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert!(sources.contains(&"community"), "{sources:?}");
    let again = t
        .post(
            &format!("/api/review/submissions/{id}"),
            json!({"decision": "reject", "reason": "no"}),
        )
        .bearer(&rita)
        .await;
    assert_eq!(again.status, 409, "reviewed once: {}", again.text);

    let mine = t.get(&format!("/api/submissions/{id}")).await.json();
    assert_eq!(mine["status"], "verified");
    let me = t.get("/api/me").await.json();
    assert_eq!(
        me["reputation"]["score"], 5,
        "evidence for a known incident: {me}"
    );
    assert_eq!(me["submissions"][0]["id"], id);
    assert_eq!(
        t.get("/api/review/submissions").bearer(&rita).await.json()["items"],
        json!([])
    );

    // Found false later: reversed, the claim leaves the incident and the points go.
    let reversed = t
        .post(
            &format!("/api/review/submissions/{id}"),
            json!({"decision": "reverse", "reason": "the hash was another protocol's"}),
        )
        .bearer(&rita)
        .await;
    assert_eq!(reversed.status, 200, "{}", reversed.text);
    assert_eq!(reversed.json()["status"], "reversed");
    assert_eq!(reversed.json()["claim_id"], Value::Null);
    let incident = t.get(&format!("/api/exploits/{existing}")).await.json();
    assert_eq!(
        incident["sources"].as_array().map(Vec::len),
        Some(1),
        "{incident}"
    );
    assert_eq!(t.get("/api/me").await.json()["reputation"]["score"], 0);
    let twice = t
        .post(
            &format!("/api/review/submissions/{id}"),
            json!({"decision": "reverse", "reason": "again"}),
        )
        .bearer(&rita)
        .await;
    assert_eq!(twice.status, 409, "reversed once: {}", twice.text);
}

#[tokio::test]
async fn a_rejection_is_explained_and_reputation_below_zero_closes_submitting() {
    let t = TestApp::builder()
        .user(Tier::Free, Role::User)
        .start()
        .await;
    let rita = reviewer_key(&t).await;
    let id = t
        .post("/api/submissions", report("Fake Protocol", "2023-06-01"))
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    let rejected = t
        .post(
            &format!("/api/review/submissions/{id}"),
            json!({"decision": "reject", "reason": "the transaction is a normal swap"}),
        )
        .bearer(&rita)
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text);
    let mine = t.get(&format!("/api/submissions/{id}")).await.json();
    assert_eq!(mine["status"], "rejected");
    assert_eq!(mine["review_note"], "the transaction is a normal swap");
    assert_eq!(t.get("/api/me").await.json()["reputation"]["score"], -10);
    let closed = t
        .post("/api/submissions", report("Another", "2023-07-01"))
        .await;
    assert_eq!(closed.status, 403, "{}", closed.text);
    assert_eq!(
        t.get("/api/exploits").await.json()["total"],
        0,
        "nothing was stored"
    );
}

#[tokio::test]
async fn submissions_per_day_follow_reputation() {
    let t = TestApp::builder()
        .user(Tier::Free, Role::User)
        .start()
        .await;
    let per_day = ReputationRules::default().per_day(0);
    for i in 0..per_day {
        let answer = t
            .post(
                "/api/submissions",
                report(&format!("Daily {i}"), "2023-06-01"),
            )
            .await;
        assert_eq!(answer.status, 201, "{i}: {}", answer.text);
    }
    let over = t
        .post("/api/submissions", report("One Too Many", "2023-06-01"))
        .await;
    assert_eq!(over.status, 429, "{}", over.text);
    assert!(over.header("retry-after").is_some());
}

#[tokio::test]
async fn a_trusted_users_evidence_for_a_known_incident_is_applied_without_review() {
    let rules = ReputationRules {
        trusted: 5,
        ..ReputationRules::default()
    };
    let t = TestApp::builder()
        .community(rules)
        .user(Tier::Pro, Role::User)
        .start()
        .await;
    let rita = reviewer_key(&t).await;
    // Earn the trust: one verified report of a new incident (10 points).
    let first = t
        .post("/api/submissions", report("First Hack", "2023-01-01"))
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    t.post(
        &format!("/api/review/submissions/{first}"),
        json!({"decision": "verify", "reason": "ok"}),
    )
    .bearer(&rita)
    .await;
    let known = t
        .incident(
            claim("Second Hack")
                .chain("ethereum")
                .date("2023-06-01")
                .loss_usd("2400000"),
        )
        .await;
    let applied = t
        .post("/api/submissions", report("Second Hack", "2023-06-01"))
        .await;
    assert_eq!(applied.status, 201, "{}", applied.text);
    assert_eq!(
        applied.json()["status"],
        "verified",
        "applied at once: {}",
        applied.text
    );
    assert_eq!(applied.json()["exploit_id"], known);
    // A report of an unknown hack still waits for a reviewer.
    let waits = t
        .post("/api/submissions", report("Third Hack", "2024-01-01"))
        .await;
    assert_eq!(waits.json()["status"], "pending");
}

#[tokio::test]
async fn an_admin_marks_a_bounty_paid_once_with_its_reference() {
    let t = TestApp::builder()
        .admin_token("an-admin-token-for-the-bounty-test-0123")
        .user(Tier::Pro, Role::User)
        .start()
        .await;
    let rita = reviewer_key(&t).await;
    let id = t
        .post("/api/submissions", report("Bounty Hack", "2023-06-01"))
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    t.post(
        &format!("/api/review/submissions/{id}"),
        json!({"decision": "verify", "reason": "ok"}),
    )
    .bearer(&rita)
    .await;
    assert_eq!(
        t.get("/api/admin/bounties").bearer(&rita).await.status,
        403,
        "reviewers pay nothing"
    );
    let admin = "an-admin-token-for-the-bounty-test-0123";
    let list = t.get("/api/admin/bounties").bearer(admin).await.json();
    let bounty = &list["items"][0];
    assert_eq!(bounty["status"], "owed");
    assert_eq!(bounty["amount_usd"], "50.00");
    let path = format!("/api/admin/bounties/{}/paid", bounty["id"]);
    let paid = t
        .post(&path, json!({"payment_reference": "wire-1"}))
        .bearer(admin)
        .await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    assert_eq!(paid.json()["status"], "paid");
    let twice = t
        .post(&path, json!({"payment_reference": "wire-2"}))
        .bearer(admin)
        .await;
    assert_eq!(twice.status, 422, "never paid twice: {}", twice.text);
}

#[tokio::test]
async fn a_report_names_only_incidents_the_submitters_tier_may_see() {
    let t = TestApp::builder()
        .user(Tier::Free, Role::User)
        .start()
        .await;
    // An hour old: the free tier sees it only after a day.
    let fresh = t
        .incident(
            claim("Fresh Vault")
                .chain("ethereum")
                .at(chrono::Utc::now() - chrono::Duration::hours(1))
                .tx("ethereum", HASH),
        )
        .await;
    let mut body = report(
        "Fresh Vault",
        &chrono::Utc::now().format("%Y-%m-%d").to_string(),
    );
    body["loss_usd"] = json!("1000");
    let answer = t.post("/api/submissions", body).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.json()["matched"], "incident");
    assert_eq!(
        answer.json()["exploit_id"],
        Value::Null,
        "hidden: {}",
        answer.text
    );
    let id = answer.json()["id"].as_i64().unwrap();
    assert_eq!(
        t.get(&format!("/api/submissions/{id}")).await.json()["exploit_id"],
        Value::Null
    );
    // A reviewer reads it whole.
    let rita = reviewer_key(&t).await;
    let whole = t
        .get(&format!("/api/submissions/{id}"))
        .bearer(&rita)
        .await
        .json();
    assert_eq!(whole["exploit_id"], fresh);
}
