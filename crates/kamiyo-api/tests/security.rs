//! The findings of the outside black-box test, each reproduced through the real router
//! (they failed before their fix): docs/SECURITY.md lists them with their limits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use axum::http::StatusCode;
use chrono::Duration;
use common::{primary_acquisitions, token, TestApp};
use kamiyo_api::ServerConfig;
use kamiyo_domain::Tier;
use kamiyo_store::accounts::Role;
use kamiyo_testkit::claim;
use serde_json::json;

const ADMIN: &str = "security-test-admin-token-0123456789abcdef";
const HASH: &str = "0x5f1e2b9cd0a0a4c1b1f3f8b27c4e2e6d3a9f0c7b8e1d2a3b4c5d6e7f8091a2b3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_by_hash_hides_an_incident_the_callers_tier_may_not_see_yet() {
    let t = TestApp::start(ServerConfig::default()).await;
    t.incident(
        claim("Minuteagofi")
            .ago(Duration::minutes(1))
            .tx("ethereum", HASH),
    )
    .await;
    let path = format!("/api/exploits/tx/{HASH}");
    let free = t.key("free@example.com", Tier::Free, Role::User).await;
    let pro = t.key("pro@example.com", Tier::Pro, Role::User).await;

    let anonymous = t.get(&path).await;
    assert_eq!(
        anonymous.status,
        StatusCode::NOT_FOUND,
        "{}",
        anonymous.text
    );
    assert!(!anonymous.text.contains("Minuteagofi"));
    let free = t.get(&path).bearer(&free).await;
    assert_eq!(free.status, StatusCode::NOT_FOUND, "{}", free.text);
    let pro = t.get(&path).bearer(&pro).await;
    assert_eq!(pro.status, StatusCode::OK, "{}", pro.text);
    assert_eq!(pro.json()[0]["protocol"], "Minuteagofi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_the_client_cannot_pick_its_identity_through_x_forwarded_for() {
    let t = TestApp::start(ServerConfig {
        trusted_proxy_header: Some("x-forwarded-for".into()),
        trusted_proxy_hops: 1,
        ..ServerConfig::default()
    })
    .await;
    // The proxy at 10.1.1.1 appends the address it saw; the client varies what it writes
    // on the left. An anonymous caller has 10 requests a minute.
    let mut admitted = 0;
    for i in 0..30 {
        let answer = t
            .get("/api/chains")
            .header("x-forwarded-for", format!("198.51.100.{i}, 203.0.113.7"))
            .from("10.1.1.1:40000")
            .await;
        if answer.status == StatusCode::OK {
            admitted += 1;
        } else {
            assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        }
    }
    assert_eq!(admitted, 10, "one identity: the address the proxy appended");

    // A non-address entry is no identity: the peer is used (and limited) instead.
    let mut admitted = 0;
    for i in 0..15 {
        let answer = t
            .get("/api/chains")
            .header("x-forwarded-for", format!("client-{i}"))
            .from("10.2.2.2:40000")
            .await;
        admitted += usize::from(answer.status == StatusCode::OK);
    }
    assert_eq!(admitted, 10);
}

/// `claim` posted as the admin is a 422 whose message names `field`.
async fn refused_naming(t: &TestApp, field: &str, claim: serde_json::Value) {
    let answer = t.post("/api/exploits", claim).bearer(ADMIN).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{field}: {}",
        answer.text
    );
    assert!(answer.text.contains(field), "{field}: {}", answer.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_hash_or_in_a_text_field_is_a_client_error_not_a_500() {
    let t = TestApp::start(ServerConfig {
        admin_token: token(ADMIN),
        ..ServerConfig::default()
    })
    .await;
    let answer = t.get("/api/exploits/tx/%00").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(answer.json()["error"]["code"], "bad_parameter");

    for (field, claim) in [
        (
            "protocol",
            json!({"source": "s", "protocol": "Nul\u{0}fi", "chains": ["ethereum"], "date": "2024-01-02"}),
        ),
        (
            "description",
            json!({"source": "s", "protocol": "Nulfi", "chains": ["ethereum"], "date": "2024-01-02", "description": "a\u{0}b"}),
        ),
        (
            "source",
            json!({"source": "s\u{0}", "protocol": "Nulfi", "chains": ["ethereum"], "date": "2024-01-02"}),
        ),
    ] {
        refused_naming(&t, field, claim).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_past_the_documented_maximums_or_with_a_script_url_is_refused_by_field() {
    let t = TestApp::start(ServerConfig {
        admin_token: token(ADMIN),
        ..ServerConfig::default()
    })
    .await;
    let chains: Vec<String> = (0..1000).map(|i| format!("chain{i}")).collect();
    for (field, claim) in [
        (
            "chains",
            json!({"source": "s", "protocol": "Manyfi", "chains": chains, "date": "2024-01-02"}),
        ),
        (
            "source_url",
            json!({"source": "s", "protocol": "Scriptfi", "chains": ["ethereum"], "date": "2024-01-02", "source_url": "javascript:alert(1)"}),
        ),
        (
            "description",
            json!({"source": "s", "protocol": "Longfi", "chains": ["ethereum"], "date": "2024-01-02", "description": "x".repeat(100_000)}),
        ),
    ] {
        refused_naming(&t, field, claim).await;
    }
}

const ATTACKER: &str = "192.0.2.10:5000";

/// An app allowing 5 failed authentications a minute per address, and the key of a Pro
/// user, used once from [`ATTACKER`] before any guessing.
async fn guarded() -> (TestApp, String) {
    let t = TestApp::start(ServerConfig {
        auth_failures_per_minute: 5,
        admin_token: token(ADMIN),
        // No key cache: what lets a valid key through below is the set of keys the
        // database has verified, not a cache entry that happens to be fresh.
        auth_cache_ttl: std::time::Duration::ZERO,
        ..ServerConfig::default()
    })
    .await;
    let valid = t.key("user@example.com", Tier::Pro, Role::User).await;
    let ok = t.get("/api/chains").bearer(&valid).from(ATTACKER).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    (t, valid)
}

/// Five wrong keys from [`ATTACKER`]: each a 401 with a bearer challenge, the budget spent.
async fn guess_five_wrong_keys(t: &TestApp) {
    for i in 0..5 {
        let wrong = format!("kmy_{:064x}", i);
        let answer = t.get("/api/chains").bearer(&wrong).from(ATTACKER).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
        let challenge = answer.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer") && challenge.contains("invalid_token"),
            "{challenge:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_or_none_is_answered_with_a_bearer_challenge() {
    let (t, _) = guarded().await;
    guess_five_wrong_keys(&t).await;
    let anonymous = t.get("/api/me").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous
        .header("www-authenticate")
        .is_some_and(|c| c.starts_with("Bearer")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_wrong_key_budget_an_address_gets_429_for_any_credential_without_a_key_lookup() {
    let (t, _) = guarded().await;
    guess_five_wrong_keys(&t).await;
    let before = primary_acquisitions(&t.db);
    for i in 5..50 {
        let wrong = format!("kmy_{:064x}", i);
        let answer = t.get("/api/chains").bearer(&wrong).from(ATTACKER).await;
        assert_eq!(
            answer.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            answer.text
        );
        assert!(answer.header("retry-after").is_some());
    }
    let malformed = t
        .get("/api/chains")
        .header("authorization", "Basic abc")
        .from(ATTACKER)
        .await;
    assert_eq!(malformed.status, StatusCode::TOO_MANY_REQUESTS);
    // A throttled address learns nothing from guessing the configured tokens either.
    let admin = t.get("/api/chains").bearer(ADMIN).from(ATTACKER).await;
    assert_eq!(admin.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        primary_acquisitions(&t.db),
        before,
        "a throttled address costs no key lookup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_database_verified_before_still_works_from_a_throttled_address() {
    let (t, valid) = guarded().await;
    guess_five_wrong_keys(&t).await;
    let throttled = t.get("/api/chains").bearer("kmy_more").from(ATTACKER).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    let known = t.get("/api/chains").bearer(&valid).from(ATTACKER).await;
    assert_eq!(
        known.status,
        StatusCode::OK,
        "a key the database verified before still works from the throttled address: {}",
        known.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_address_has_its_own_wrong_key_budget() {
    let (t, _) = guarded().await;
    guess_five_wrong_keys(&t).await;
    let elsewhere = t
        .get("/api/chains")
        .bearer("kmy_nope")
        .from("192.0.2.99:5000")
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::UNAUTHORIZED,
        "another address has its own budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_callers_on_a_dual_stack_listener_are_limited_one_address_at_a_time() {
    let t = TestApp::start(ServerConfig::default()).await;
    // Anonymous: 10 a minute each. As seen by a `[::]` listener.
    for peer in ["[::ffff:198.51.100.1]:1000", "[::ffff:198.51.100.2]:1000"] {
        let admitted = {
            let mut admitted = 0;
            for _ in 0..12 {
                let answer = t.get("/api/chains").from(peer).await;
                admitted += usize::from(answer.status == StatusCode::OK);
            }
            admitted
        };
        assert_eq!(admitted, 10, "{peer} has a bucket of its own");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_whatever_authorization_header_they_carry() {
    let t = TestApp::start(ServerConfig::default()).await;
    for header in ["garbage", "Bearer kmy_stale", "Bearer "] {
        for path in ["/healthz", "/api/health/database"] {
            let answer = t.get(path).header("authorization", header).await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{path} {header:?}: {}",
                answer.text
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_is_for_admins_and_the_metrics_token_only() {
    let t = TestApp::start(ServerConfig {
        metrics_token: token("metrics-scrape-token-0123456789abcdef"),
        ..ServerConfig::default()
    })
    .await;
    let free = t.key("free@example.com", Tier::Free, Role::User).await;
    let admin = t.key("admin@example.com", Tier::Free, Role::Admin).await;
    for path in ["/api/metrics/database", "/api/metrics/queries", "/metrics"] {
        let anonymous = t.get(path).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            !anonymous.text.contains("exploits"),
            "{path}: {}",
            anonymous.text
        );
        let user = t.get(path).bearer(&free).await;
        assert_eq!(user.status, StatusCode::FORBIDDEN, "{path}");
        for credential in ["metrics-scrape-token-0123456789abcdef", admin.as_str()] {
            let allowed = t.get(path).bearer(credential).await;
            assert_eq!(allowed.status, StatusCode::OK, "{path}: {}", allowed.text);
        }
    }
    let elsewhere = t
        .get("/api/chains")
        .bearer("metrics-scrape-token-0123456789abcdef")
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::UNAUTHORIZED,
        "the metrics token is no key outside the monitor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_private_metrics_listener_the_public_one_has_no_metrics_route() {
    let t = TestApp::start(ServerConfig {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    })
    .await;
    assert_eq!(t.get("/metrics").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_probes_within_the_cache_ttl_reach_the_database_once() {
    let t = TestApp::start(ServerConfig {
        // The longest accepted: the test must not depend on how fast the machine is.
        health_cache_ttl: kamiyo_api::config::MAX_HEALTH_CACHE_TTL,
        ..ServerConfig::default()
    })
    .await;
    let first = t.get("/api/health/database").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let after_first = primary_acquisitions(&t.db);
    for _ in 0..20 {
        let again = t.get("/api/health/database").await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.text, first.text);
    }
    assert_eq!(primary_acquisitions(&t.db), after_first);
}
