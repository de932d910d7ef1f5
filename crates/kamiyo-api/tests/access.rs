//! Access control through the real router: keys, tiers and their visibility (in SQL,
//! before paging, on every read path), rate limits, and the original's failure modes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use axum::http::StatusCode;
use axum::Router;
use chrono::Duration;
use common::TestApp;
use kamiyo_api::{router, AppState, ServerConfig};
use kamiyo_db::{Database, DbConfig, ManualClock};
use kamiyo_domain::tier::DEFAULT_TIERS;
use kamiyo_domain::{Tier, TierLimits, TierTable};
use kamiyo_store::accounts::{AccountStore, Role};
use kamiyo_store::MIGRATIONS;
use kamiyo_testkit::{claim, Client, TestDatabase};
use serde_json::Value;

// The key-cache tests below build their app with `cached_app` (on `Fixture`), which
// another change rewrites for an injected clock; the rest use `TestApp`.
struct Fixture {
    app: Router,
    accounts: AccountStore,
    _pg: TestDatabase,
}

/// The fixture's `accounts` is the app's own store: changes through it are this
/// process's changes (the key cache forgets at once).
fn fixture_with(db: Database, pg: TestDatabase, server: ServerConfig) -> Fixture {
    let state = AppState::new(db, server);
    Fixture {
        accounts: state.accounts.clone(),
        app: router(state),
        _pg: pg,
    }
}

async fn json(app: &Router, uri: &str, key: Option<&str>) -> (StatusCode, Value) {
    let answer = Client::new(app.clone()).get(uri).bearer_opt(key).await;
    (
        answer.status,
        serde_json::from_str(&answer.text).unwrap_or(Value::String(answer.text)),
    )
}

async fn key_for(f: &Fixture, email: &str, tier: Tier) -> String {
    f.accounts
        .create_user(email, tier, Role::User)
        .await
        .unwrap();
    f.accounts.create_key(email, "test").await.unwrap().1
}

/// The incidents of the visibility tests, by age, and their ids.
struct Aged {
    fresh: i64,
    two_days: i64,
    old: i64,
}

/// Four incidents: 2 hours, 2 days, 3 days and 10 days old. Anonymous and free callers
/// see the two in between (24-hour delay, 7-day history).
async fn four_incidents(t: &TestApp) -> Aged {
    let fresh = t.incident(claim("Freshfi").ago(Duration::hours(2))).await;
    let two_days = t.incident(claim("Twodayfi").ago(Duration::days(2))).await;
    t.incident(claim("Threedayfi").ago(Duration::days(3))).await;
    let old = t.incident(claim("Oldfi").ago(Duration::days(10))).await;
    Aged {
        fresh,
        two_days,
        old,
    }
}

fn protocols(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["protocol"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_and_anonymous_callers_see_only_the_delayed_recent_history_on_every_read_path() {
    let t = TestApp::start(ServerConfig::default()).await;
    let aged = four_incidents(&t).await;
    let free = t.key("free@example.com", Tier::Free, Role::User).await;
    for caller in [Some(free.as_str()), None] {
        let get = |uri: &str| t.get(uri).bearer_opt(caller);
        let page = get("/api/exploits").await;
        assert_eq!(page.status, StatusCode::OK);
        let page = page.json();
        assert_eq!(protocols(&page), ["Twodayfi", "Threedayfi"], "{caller:?}");
        assert_eq!(page["total"], 2);
        // Filtered in SQL before paging: pages stay full.
        let first = get("/api/exploits?limit=1").await.json();
        assert_eq!(
            (protocols(&first).len(), first["total"].as_i64()),
            (1, Some(2))
        );
        for id in [aged.fresh, aged.old] {
            assert_eq!(
                get(&format!("/api/exploits/{id}")).await.status,
                StatusCode::NOT_FOUND,
                "incident {id} is hidden from {caller:?}"
            );
        }
        assert_eq!(
            get(&format!("/api/exploits/{}", aged.two_days))
                .await
                .status,
            StatusCode::OK
        );
        let stats = get("/api/stats").await.json();
        assert_eq!(stats["incidents"], 2, "{stats}");
        let by_chain = get("/api/stats/by-chain").await.json();
        assert_eq!(by_chain["buckets"][0]["incidents"], 2);
        let csv = get("/api/exploits.csv").await.text;
        assert_eq!(csv.lines().count(), 3, "header and two rows: {csv}");
        let atom = get("/api/feed.atom").await.text;
        assert!(!atom.contains("Freshfi") && !atom.contains("Oldfi"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_tier_sees_every_incident_at_once_and_all_its_history() {
    let t = TestApp::builder().user(Tier::Pro, Role::User).start().await;
    let aged = four_incidents(&t).await;
    let page = t.get("/api/exploits").await.json();
    assert_eq!(
        protocols(&page),
        ["Freshfi", "Twodayfi", "Threedayfi", "Oldfi"]
    );
    assert_eq!(
        t.get(&format!("/api/exploits/{}", aged.fresh)).await.status,
        StatusCode::OK
    );
    assert_eq!(t.get("/api/stats").await.json()["incidents"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_tier_configured_without_delay_or_history_sees_what_the_default_hides() {
    // A private deployment's table: its own anonymous visitors see everything at once.
    let open = TierTable {
        anonymous: TierLimits {
            delay: std::time::Duration::ZERO,
            history: None,
            ..DEFAULT_TIERS.anonymous
        },
        ..DEFAULT_TIERS
    };
    let t = TestApp::builder().tiers(open).start().await;
    let aged = four_incidents(&t).await;
    let page = t.get("/api/exploits").anonymous().await;
    assert_eq!(page.status, StatusCode::OK);
    let page = page.json();
    assert_eq!(
        protocols(&page),
        ["Freshfi", "Twodayfi", "Threedayfi", "Oldfi"]
    );
    assert_eq!(page["total"], 4);
    assert_eq!(
        t.get(&format!("/api/exploits/{}", aged.fresh))
            .anonymous()
            .await
            .status,
        StatusCode::OK
    );
    // The same database under the default table: the fresh and the old one are hidden.
    let shipped = t.another_instance(ServerConfig::default());
    let page = shipped.get("/api/exploits").await.json();
    assert_eq!(protocols(&page), ["Twodayfi", "Threedayfi"]);
    assert_eq!(
        shipped
            .get(&format!("/api/exploits/{}", aged.fresh))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_table_sets_each_callers_rate_limit_and_me_shows_it() {
    let tuned = TierTable {
        anonymous: TierLimits {
            per_minute: 2,
            ..DEFAULT_TIERS.anonymous
        },
        pro: TierLimits {
            per_minute: 5,
            subscriptions: 3,
            ..DEFAULT_TIERS.pro
        },
        ..DEFAULT_TIERS
    };
    let t = TestApp::builder()
        .tiers(tuned)
        .user(Tier::Pro, Role::User)
        .start()
        .await;
    for _ in 0..2 {
        let answer = t.get("/api/chains").anonymous().await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header("x-ratelimit-limit"), Some("2"));
    }
    assert_eq!(
        t.get("/api/chains").anonymous().await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let me = t.get("/api/me").await;
    assert_eq!(me.header("x-ratelimit-limit"), Some("5"));
    let me = me.json();
    assert_eq!(me["tier"], "pro");
    assert_eq!(me["limits"]["per_minute"], 5);
    assert_eq!(me["limits"]["subscriptions"], 3);
    // The shape /api/me always had: durations in seconds, no window as null.
    assert_eq!(me["limits"]["delay"], 0);
    assert_eq!(me["limits"]["history"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_names_the_keys_user_tier_and_limits_and_counts_the_call_itself() {
    let t = TestApp::builder().user(Tier::Pro, Role::User).start().await;
    let answer = t.get("/api/me").await;
    assert_eq!(answer.status, StatusCode::OK);
    let me = answer.json();
    assert_eq!(
        (me["tier"].as_str(), me["email"].as_str()),
        (Some("pro"), Some(common::USER_EMAIL))
    );
    assert_eq!(me["limits"]["per_minute"], 300);
    assert!(
        me["remaining"]["minute"].as_u64().unwrap() < 300,
        "the call itself counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_malformed_empty_or_missing_credential_gets_401_in_the_envelope() {
    let t = TestApp::start(ServerConfig::default()).await;
    for (authorization, what) in [
        (Some("Bearer kmy_0000"), "a wrong key"),
        (Some("Token abc"), "a malformed header"),
        (Some("Bearer "), "an empty bearer"),
        (None, "a missing header (on /api/me)"),
    ] {
        let request = t.get("/api/me");
        let request = match authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        };
        let answer = request.await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(answer.json()["error"]["code"], "unauthorized", "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_gets_401_while_another_key_of_its_user_works() {
    let t = TestApp::start(ServerConfig::default()).await;
    let key = t.key("analyst@example.com", Tier::Pro, Role::User).await;
    assert_eq!(
        t.get("/api/exploits").bearer(&key).await.status,
        StatusCode::OK
    );
    t.accounts().revoke_key(&key[..12]).await.unwrap();
    assert_eq!(
        t.get("/api/exploits").bearer(&key).await.status,
        StatusCode::UNAUTHORIZED
    );
    let second = t.another_key("analyst@example.com").await;
    assert_eq!(
        t.get("/api/exploits").bearer(&second).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_of_a_disabled_user_gets_401() {
    let t = TestApp::start(ServerConfig::default()).await;
    let first = t.key("analyst@example.com", Tier::Pro, Role::User).await;
    let second = t.another_key("analyst@example.com").await;
    for key in [&first, &second] {
        assert_eq!(
            t.get("/api/exploits").bearer(key).await.status,
            StatusCode::OK
        );
    }
    t.accounts()
        .disable_user("analyst@example.com")
        .await
        .unwrap();
    for key in [&first, &second] {
        assert_eq!(
            t.get("/api/exploits").bearer(key).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_request_with_any_tier_returns_200_not_500() {
    let t = TestApp::start(ServerConfig::default()).await;
    let aged = four_incidents(&t).await;
    for tier in Tier::ALL {
        let key = t
            .key(&format!("{}@example.com", tier.as_str()), tier, Role::User)
            .await;
        for uri in [
            "/api/exploits".to_owned(),
            format!("/api/exploits/{}", aged.two_days),
            "/api/stats".to_owned(),
            "/api/chains".to_owned(),
            "/api/me".to_owned(),
            "/api/exploits.csv".to_owned(),
        ] {
            assert_eq!(
                t.get(&uri).bearer(&key).await.status,
                StatusCode::OK,
                "{tier:?} {uri}"
            );
        }
    }
}

/// Spends the anonymous callers' ten requests of this minute.
async fn spend_the_anonymous_minute(t: &TestApp) {
    for _ in 0..10 {
        assert_eq!(t.get("/api/chains").await.status, StatusCode::OK);
    }
    assert_eq!(
        t.get("/api/chains").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_past_the_minute_limit_gets_429_with_retry_after_and_headers_count_down() {
    let t = TestApp::start(ServerConfig::default()).await;
    let mut remaining = Vec::new();
    for _ in 0..10 {
        let answer = t.get("/api/chains").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header("x-ratelimit-limit"), Some("10"));
        remaining.push(
            answer
                .header("x-ratelimit-remaining")
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert_eq!(remaining, (0..10).rev().collect::<Vec<u32>>());
    let refused = t.get("/api/chains").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused
            .header("retry-after")
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    assert_eq!(refused.json()["error"]["code"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_a_caller_past_its_limit_and_the_monitor_still_asks_it_for_credentials() {
    let t = TestApp::start(ServerConfig::default()).await;
    spend_the_anonymous_minute(&t).await;
    assert_eq!(t.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(t.get("/api/health/database").await.status, StatusCode::OK);
    // The monitor is not open to anonymous callers: 401, not 429.
    assert_eq!(
        t.get("/api/metrics/queries").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_has_a_rate_limit_of_its_own_apart_from_anonymous_callers() {
    let t = TestApp::start(ServerConfig::default()).await;
    spend_the_anonymous_minute(&t).await;
    let key = t.key("other@example.com", Tier::Free, Role::User).await;
    assert_eq!(
        t.get("/api/chains").bearer(&key).await.status,
        StatusCode::OK
    );
}

/// An app whose key cache keeps verified keys for `ttl` (zero: none), a key it has
/// verified once, a store of "another process" (as `kamiyo key revoke` is) on the
/// same database, and the app's clock, which moves only when the test advances it.
async fn cached_app(ttl: std::time::Duration) -> (Fixture, String, AccountStore, ManualClock) {
    let pg = TestDatabase::create().await;
    let time = ManualClock::new();
    let db = Database::open(DbConfig {
        clock: time.clock(),
        ..DbConfig::for_url(pg.url())
    })
    .await
    .unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    let f = fixture_with(
        db.clone(),
        pg,
        ServerConfig {
            auth_cache_ttl: ttl,
            ..ServerConfig::default()
        },
    );
    let key = key_for(&f, "analyst@example.com", Tier::Pro).await;
    assert_eq!(json(&f.app, "/api/me", Some(&key)).await.0, StatusCode::OK);
    (f, key, AccountStore::new(db), time)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_key_is_served_from_the_cache_after_another_process_revokes_it() {
    let ttl = std::time::Duration::from_secs(60);
    let (f, key, other, time) = cached_app(ttl).await;
    other.revoke_key(&key[..12]).await.unwrap();
    time.advance(ttl - std::time::Duration::from_millis(1));
    assert_eq!(
        json(&f.app, "/api/me", Some(&key)).await.0,
        StatusCode::OK,
        "the cache answered without asking the database"
    );
    assert_eq!(
        json(&f.app, "/api/me", Some("kmy_0000")).await.0,
        StatusCode::UNAUTHORIZED,
        "unknown keys are never cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_by_another_process_is_refused_once_the_cache_entry_expires() {
    let ttl = std::time::Duration::from_secs(60);
    let (f, key, other, time) = cached_app(ttl).await;
    other.revoke_key(&key[..12]).await.unwrap();
    time.advance(ttl);
    assert_eq!(
        json(&f.app, "/api/me", Some(&key)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_auth_cache_off_a_revocation_by_another_process_applies_at_once() {
    let (f, key, other, _time) = cached_app(std::time::Duration::ZERO).await;
    other.disable_user("analyst@example.com").await.unwrap();
    assert_eq!(
        json(&f.app, "/api/me", Some(&key)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// The tier's delay is measured on the service's clock: an incident too recent for an
/// anonymous caller shows once the clock has moved past the delay, with no wall-clock
/// wait (and not a minute before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delay_of_a_tier_runs_on_the_service_clock() {
    let time = ManualClock::new();
    let t = TestApp::builder()
        .db_config(DbConfig {
            clock: time.clock(),
            ..DbConfig::default()
        })
        .start()
        .await;
    let id = t
        .incident(claim("Freshfi").at(time.clock().now_utc() - Duration::hours(1)))
        .await;
    let path = format!("/api/exploits/{id}");
    assert_eq!(t.get(&path).await.status, StatusCode::NOT_FOUND);
    // Visible once it occurred 24 h ago: 23 h and a few minutes from now.
    time.advance(std::time::Duration::from_secs(22 * 3600));
    assert_eq!(
        t.get(&path).await.status,
        StatusCode::NOT_FOUND,
        "still within the delay"
    );
    time.advance(std::time::Duration::from_secs(3600 + 120));
    assert_eq!(t.get(&path).await.status, StatusCode::OK);
}
