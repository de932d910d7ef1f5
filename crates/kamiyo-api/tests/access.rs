//! Access control through the real router: keys, tiers and their visibility (in SQL,
//! before paging, on every read path), rate limits, and the original's failure modes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use chrono::{Duration, Utc};
use kamiyo_api::{router, AppState, ServerConfig};
use kamiyo_db::{Database, DbConfig, ManualClock};
use kamiyo_domain::{IncidentDraft, IncidentInput, Tier};
use kamiyo_store::accounts::{AccountStore, Role};
use kamiyo_store::{IncidentStore, MIGRATIONS};
use kamiyo_testkit::TestDatabase;
use serde_json::Value;
use tower::ServiceExt;

struct Fixture {
    app: Router,
    accounts: AccountStore,
    _pg: TestDatabase,
}

/// Four incidents: 2 hours, 2 days, 3 days and 10 days old.
async fn fixture() -> Fixture {
    let pg = TestDatabase::create().await;
    let db = Database::open(DbConfig::for_url(pg.url())).await.unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    let store = IncidentStore::new(db.clone());
    for (name, age) in [
        ("Freshfi", Duration::hours(2)),
        ("Twodayfi", Duration::days(2)),
        ("Threedayfi", Duration::days(3)),
        ("Oldfi", Duration::days(10)),
    ] {
        let draft = IncidentDraft::from_input(
            IncidentInput {
                source: Some("fixture".into()),
                protocol: Some(name.into()),
                chains: vec!["ethereum".into()],
                date: Some((Utc::now() - age).to_rfc3339()),
                loss_usd: Some("1000".into()),
                ..IncidentInput::default()
            },
            Utc::now(),
        )
        .unwrap();
        store.ingest(&draft).await.unwrap();
    }
    fixture_with(db, pg, ServerConfig::default())
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

async fn call(
    app: &Router,
    uri: &str,
    authorization: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::get(uri);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn json(app: &Router, uri: &str, key: Option<&str>) -> (StatusCode, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let (status, _, body) = call(app, uri, auth.as_deref()).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

async fn key_for(f: &Fixture, email: &str, tier: Tier) -> String {
    f.accounts
        .create_user(email, tier, Role::User)
        .await
        .unwrap();
    f.accounts.create_key(email, "test").await.unwrap().1
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
async fn free_callers_see_only_delayed_recent_history_everywhere_and_paid_tiers_see_everything() {
    let f = fixture().await;
    let free = key_for(&f, "free@example.com", Tier::Free).await;
    let pro = key_for(&f, "pro@example.com", Tier::Pro).await;
    for caller in [Some(free.as_str()), None] {
        let (status, page) = json(&f.app, "/api/exploits", caller).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(protocols(&page), ["Twodayfi", "Threedayfi"], "{caller:?}");
        assert_eq!(page["total"], 2);
        // Filtered in SQL before paging: pages stay full.
        let (_, first) = json(&f.app, "/api/exploits?limit=1", caller).await;
        assert_eq!(
            (protocols(&first).len(), first["total"].as_i64()),
            (1, Some(2))
        );
        for id in [1, 4] {
            let (status, _) = json(&f.app, &format!("/api/exploits/{id}"), caller).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "incident {id} is hidden from {caller:?}"
            );
        }
        assert_eq!(
            json(&f.app, "/api/exploits/2", caller).await.0,
            StatusCode::OK
        );
        let (_, stats) = json(&f.app, "/api/stats", caller).await;
        assert_eq!(stats["incidents"], 2, "{stats}");
        let (_, by_month) = json(&f.app, "/api/stats/by-chain", caller).await;
        assert_eq!(by_month["buckets"][0]["incidents"], 2);
        let auth = caller.map(|k| format!("Bearer {k}"));
        let (_, _, csv) = call(&f.app, "/api/exploits.csv", auth.as_deref()).await;
        assert_eq!(csv.lines().count(), 3, "header and two rows: {csv}");
        let (_, _, atom) = call(&f.app, "/api/feed.atom", auth.as_deref()).await;
        assert!(!atom.contains("Freshfi") && !atom.contains("Oldfi"));
    }
    let (_, page) = json(&f.app, "/api/exploits", Some(&pro)).await;
    assert_eq!(
        protocols(&page),
        ["Freshfi", "Twodayfi", "Threedayfi", "Oldfi"]
    );
    assert_eq!(
        json(&f.app, "/api/exploits/1", Some(&pro)).await.0,
        StatusCode::OK
    );
    let (_, stats) = json(&f.app, "/api/stats", Some(&pro)).await;
    assert_eq!(stats["incidents"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_work_until_revoked_or_their_user_disabled_and_bad_credentials_get_401() {
    let f = fixture().await;
    let key = key_for(&f, "analyst@example.com", Tier::Pro).await;
    let (status, me) = json(&f.app, "/api/me", Some(&key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["tier"].as_str(), me["email"].as_str()),
        (Some("pro"), Some("analyst@example.com"))
    );
    assert_eq!(me["limits"]["per_minute"], 300);
    assert!(
        me["remaining"]["minute"].as_u64().unwrap() < 300,
        "the call itself counted"
    );

    for (authorization, what) in [
        (Some("Bearer kmy_0000"), "a wrong key"),
        (Some("Token abc"), "a malformed header"),
        (Some("Bearer "), "an empty bearer"),
        (None, "a missing header (on /api/me)"),
    ] {
        let (status, _, body) = call(&f.app, "/api/me", authorization).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        let envelope: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(envelope["error"]["code"], "unauthorized", "{what}");
    }
    let prefix = &key[..12];
    f.accounts.revoke_key(prefix).await.unwrap();
    assert_eq!(
        json(&f.app, "/api/exploits", Some(&key)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let second = f
        .accounts
        .create_key("analyst@example.com", "second")
        .await
        .unwrap()
        .1;
    assert_eq!(
        json(&f.app, "/api/exploits", Some(&second)).await.0,
        StatusCode::OK
    );
    f.accounts
        .disable_user("analyst@example.com")
        .await
        .unwrap();
    assert_eq!(
        json(&f.app, "/api/exploits", Some(&second)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_request_with_any_tier_returns_200_not_500() {
    let f = fixture().await;
    for tier in Tier::ALL {
        let key = key_for(&f, &format!("{}@example.com", tier.as_str()), tier).await;
        for uri in [
            "/api/exploits",
            "/api/exploits/2",
            "/api/stats",
            "/api/chains",
            "/api/me",
            "/api/exploits.csv",
        ] {
            assert_eq!(
                json(&f.app, uri, Some(&key)).await.0,
                StatusCode::OK,
                "{tier:?} {uri}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_past_the_minute_limit_gets_429_with_retry_after_and_headers_count_down() {
    let f = fixture().await;
    let mut remaining = Vec::new();
    for _ in 0..10 {
        let (status, headers, _) = call(&f.app, "/api/chains", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-ratelimit-limit"], "10");
        remaining.push(
            headers["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert_eq!(remaining, (0..10).rev().collect::<Vec<u32>>());
    let (status, headers, body) = call(&f.app, "/api/chains", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "rate_limited"
    );
    // Probes are exempt; the monitor is not open to anonymous callers (401, not 429).
    assert_eq!(call(&f.app, "/healthz", None).await.0, StatusCode::OK);
    assert_eq!(
        call(&f.app, "/api/health/database", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&f.app, "/api/metrics/queries", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Another caller (a key) has its own buckets.
    let key = key_for(&f, "other@example.com", Tier::Free).await;
    assert_eq!(
        json(&f.app, "/api/chains", Some(&key)).await.0,
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
