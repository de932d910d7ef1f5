//! Request limits shared by every instance (`rate_limit.backend`): two instances on one
//! database, an anonymous caller alternating between them, get its limit once; with the
//! `memory` backend it gets it once per instance. A shared backend that stops answering
//! mid-test refuses nobody: requests are limited per instance, health says so, and the
//! shared limits come back by themselves. Redis must run at `KAMIYO_TEST_REDIS`
//! (default 127.0.0.1:6379; `scripts/test` checks it answers).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::TestApp;
use kamiyo_api::request_limits::{LimiterBackend, RateLimitConfig};
use kamiyo_db::DatabaseUrl;
use kamiyo_testkit::http::Client;
use kamiyo_testkit::{eventually, FaultMode, FaultProxy};

/// The Redis server (`KAMIYO_TEST_REDIS`, which `scripts/test` checks answers).
fn redis_addr() -> String {
    std::env::var("KAMIYO_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".into())
}

/// The anonymous limit per minute of the default tier table.
fn anonymous_per_minute() -> usize {
    kamiyo_domain::TierTable::default().anonymous.per_minute as usize
}

/// A Redis configuration of keys no other test shares.
fn redis(url: String) -> RateLimitConfig {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    RateLimitConfig {
        backend: LimiterBackend::Redis,
        redis_url: Some(DatabaseUrl::new(url)),
        key_prefix: format!("kamiyo-test:{}:{nanos}:", std::process::id()),
        ..RateLimitConfig::default()
    }
}

fn postgres() -> RateLimitConfig {
    RateLimitConfig {
        backend: LimiterBackend::Postgres,
        ..RateLimitConfig::default()
    }
}

/// Requests from one anonymous address, alternating between `a` and `b`, until
/// `requests` were sent; how many were admitted (each must be 200 or 429).
async fn admitted_alternating(a: &Client, b: &Client, peer: &str, requests: usize) -> usize {
    let mut admitted = 0;
    for i in 0..requests {
        let client = if i % 2 == 0 { a } else { b };
        let answer = client.get("/api/exploits").from(peer).await;
        match answer.status.as_u16() {
            200 => admitted += 1,
            429 => {}
            other => panic!("request {i}: {other} {}", answer.text),
        }
    }
    admitted
}

async fn two_instances(config: RateLimitConfig) -> (TestApp, Client) {
    let t = TestApp::builder().rate_limit(config.clone()).start().await;
    let (other, _) = t.another_limited_instance(&config);
    (t, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_enforce_one_limit_through_postgres() {
    let (t, other) = two_instances(postgres()).await;
    let limit = anonymous_per_minute();
    let admitted = admitted_alternating(&t.client, &other, "192.0.2.10:4000", limit * 3).await;
    assert_eq!(admitted, limit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_enforce_one_limit_through_redis() {
    let (t, other) = two_instances(redis(format!("redis://{}", redis_addr()))).await;
    let limit = anonymous_per_minute();
    let admitted = admitted_alternating(&t.client, &other, "192.0.2.11:4000", limit * 3).await;
    assert_eq!(admitted, limit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_each_instance_has_its_own_limit() {
    let (t, other) = two_instances(RateLimitConfig::default()).await;
    let limit = anonymous_per_minute();
    let admitted = admitted_alternating(&t.client, &other, "192.0.2.12:4000", limit * 3).await;
    assert_eq!(
        admitted,
        2 * limit,
        "the contrast the shared backends remove"
    );
}

/// `config`'s backend reached through `proxy`, by two instances on `t`'s database:
/// black-holed, they serve on their own limits and say so; passed again, they share
/// them again.
async fn a_stopped_backend_refuses_nobody(
    t: &TestApp,
    config: RateLimitConfig,
    proxy: &FaultProxy,
) {
    let config = RateLimitConfig {
        timeout: Duration::from_millis(300),
        retry_interval: Duration::from_millis(500),
        ..config
    };
    let (a, a_state) = t.another_limited_instance(&config);
    let (b, _) = t.another_limited_instance(&config);
    let limit = anonymous_per_minute();
    assert_eq!(
        admitted_alternating(&a, &b, "192.0.2.20:4000", limit * 2).await,
        limit,
        "shared before the fault"
    );
    assert_eq!(
        a.get("/api/health").await.json()["rate_limit"]["shared"],
        true
    );

    proxy.set_mode(FaultMode::BlackHole).await;
    // A new caller: every request is served, on each instance's own full buckets.
    for _ in 0..4 {
        let answer = a.get("/api/exploits").from("192.0.2.21:4000").await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    let health = a.get("/api/health").await.json();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["rate_limit"]["shared"], false, "{health}");
    assert!(
        health["rate_limit"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{health}"
    );
    assert!(
        health["rate_limit"]["failing_since"].is_string(),
        "{health}"
    );

    proxy.set_mode(FaultMode::Pass).await;
    eventually(
        "the shared limits to be used again",
        Duration::from_secs(20),
        || async {
            a.get("/api/exploits").from("192.0.2.22:4000").await;
            let health = a_state.rate_limiter.health();
            if health.shared {
                Ok(())
            } else {
                Err(format!("{health:?}"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_limits_stopped_mid_test_keep_serving_and_come_back() {
    let t = TestApp::builder().start().await;
    let proxy = FaultProxy::start(t.postgres_server().expect("a PostgreSQL test app")).await;
    let config = RateLimitConfig {
        postgres_url: Some(DatabaseUrl::new(
            proxy.url_through(t.db.config().url.expose()),
        )),
        ..postgres()
    };
    a_stopped_backend_refuses_nobody(&t, config, &proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limits_stopped_mid_test_keep_serving_and_come_back() {
    let t = TestApp::builder().start().await;
    let proxy = FaultProxy::start(redis_addr().parse::<SocketAddr>().unwrap()).await;
    let config = redis(format!("redis://{}", proxy.addr()));
    a_stopped_backend_refuses_nobody(&t, config, &proxy).await;
}
