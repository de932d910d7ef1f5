//! Instant revocation across instances (PostgreSQL, migration 0016): two running
//! instances whose key cache would keep a verified key for five minutes refuse it once
//! `kamiyo key revoke` (another process) revokes it, and see a tier changed by
//! `kamiyo user set-tier`; a notification lost with the listening session is made up for
//! when the session is back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use kamiyo_api::{AppState, ServerConfig};
use kamiyo_db::{Database, DbConfig};
use kamiyo_domain::{Role, Tier};
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::MIGRATIONS;
use kamiyo_testkit::http::Client;
use kamiyo_testkit::{eventually, TestDatabase};

const KAMIYO: &str = env!("CARGO_BIN_EXE_kamiyo");
/// Far longer than any wait below: a refusal within it is the notification's doing.
const CACHE_TTL: Duration = Duration::from_secs(300);

struct Instance {
    client: Client,
    state: AppState,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

async fn instance(url: &str) -> Instance {
    instance_relistening_after(url, Duration::from_millis(100)).await
}

/// An instance whose follower listens again `relisten` after its session ends; returned
/// once it listens.
async fn instance_relistening_after(url: &str, relisten: Duration) -> Instance {
    let db = Database::open(DbConfig::for_url(url)).await.unwrap();
    let state = AppState::new(
        db,
        ServerConfig {
            auth_cache_ttl: CACHE_TTL,
            auth_relisten_after: relisten,
            ..ServerConfig::default()
        },
    );
    let follower = state
        .accounts
        .follow_changes(state.server.auth_relisten_after)
        .expect("PostgreSQL has notifications");
    let instance = Instance {
        client: Client::new(kamiyo_api::router(state.clone())),
        state,
        follower,
    };
    listening(&instance).await;
    instance
}

async fn listening(instance: &Instance) {
    eventually(
        "the instance to listen",
        Duration::from_secs(10),
        || async {
            if instance.state.accounts.is_following_changes() {
                Ok(())
            } else {
                Err("not yet")
            }
        },
    )
    .await;
}

async fn kamiyo(url: &str, args: &[&str]) {
    let mut command = tokio::process::Command::new(KAMIYO);
    for (key, _) in std::env::vars() {
        if key.starts_with("KAMIYO_") || key == "DATABASE_URL" {
            command.env_remove(key);
        }
    }
    let out = command
        .arg("--database-url")
        .arg(url)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "kamiyo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A migrated database with one user and their key.
async fn database_with_a_key() -> (TestDatabase, String) {
    let pg = TestDatabase::create().await;
    let db = Database::open(DbConfig::for_url(pg.url())).await.unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    let accounts = AccountStore::new(db.clone());
    accounts
        .create_user("analyst@example.com", Tier::Pro, Role::User)
        .await
        .unwrap();
    let (_, key) = accounts
        .create_key("analyst@example.com", "test")
        .await
        .unwrap();
    db.close();
    (pg, key)
}

async fn status(instance: &Instance, key: &str) -> u16 {
    instance
        .client
        .get("/api/me")
        .bearer(key)
        .await
        .status
        .as_u16()
}

/// Waits until every instance serves `key` from its cache.
async fn cached_by(instances: &[&Instance], key: &str) {
    for instance in instances {
        eventually("the key to be cached", Duration::from_secs(10), || async {
            assert_eq!(status(instance, key).await, 200);
            match instance.state.accounts.authenticate_cached(key) {
                Some(_) => Ok(()),
                None => Err("verified, not kept yet"),
            }
        })
        .await;
    }
}

/// Waits until every instance answers `expected` for `key`; how long it took.
async fn until_all(instances: &[&Instance], key: &str, expected: u16) -> Duration {
    let started = Instant::now();
    for instance in instances {
        eventually(
            "the instance to hear of the change",
            Duration::from_secs(10),
            || async {
                let seen = status(instance, key).await;
                if seen == expected {
                    Ok(())
                } else {
                    Err(seen.to_string())
                }
            },
        )
        .await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_through_the_cli_is_refused_by_every_running_instance() {
    let (pg, key) = database_with_a_key().await;
    let (a, b) = (instance(pg.url()).await, instance(pg.url()).await);
    // Verified, and so cached for five minutes, by both: from here on only a
    // notification empties their caches.
    cached_by(&[&a, &b], &key).await;

    kamiyo(pg.url(), &["key", "revoke", &key[..12]]).await;
    let took = until_all(&[&a, &b], &key, 401).await;
    eprintln!("both instances refused the revoked key {took:?} after the command ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_changed_through_the_cli_reaches_every_running_instance() {
    let (pg, key) = database_with_a_key().await;
    let (a, b) = (instance(pg.url()).await, instance(pg.url()).await);
    let tier = |i: &Instance| {
        let client = i.client.clone();
        let key = key.clone();
        async move { client.get("/api/me").bearer(&key).await.json()["tier"].clone() }
    };
    assert_eq!(tier(&a).await, "pro");
    assert_eq!(tier(&b).await, "pro");
    kamiyo(
        pg.url(),
        &["user", "set-tier", "analyst@example.com", "team"],
    )
    .await;
    for i in [&a, &b] {
        eventually("the new tier", Duration::from_secs(10), || async {
            let seen = tier(i).await;
            if seen == "team" {
                Ok(())
            } else {
                Err(seen.to_string())
            }
        })
        .await;
    }
}

/// The listening session killed: a revocation made while it is down is not heard, and
/// applies when the instance listens again (it empties its cache then), long before the
/// cache's TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_notification_is_lost_applies_once_listening_resumes() {
    let (pg, key) = database_with_a_key().await;
    let relisten = Duration::from_secs(3);
    let a = instance_relistening_after(pg.url(), relisten).await;
    let admin = tokio_postgres::connect(pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let (client, connection) = admin;
    tokio::spawn(connection);
    let killed = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN kamiyo_accounts%'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(killed, 1, "the instance's listening session");
    eventually(
        "the session's end to be noticed",
        Duration::from_secs(10),
        || async {
            if a.state.accounts.is_following_changes() {
                Err("still listening")
            } else {
                Ok(())
            }
        },
    )
    .await;
    // Verified again, and kept, while nobody listens.
    cached_by(&[&a], &key).await;
    kamiyo(pg.url(), &["key", "revoke", &key[..12]]).await;
    assert!(
        !a.state.accounts.is_following_changes(),
        "the revocation must fall in the gap (relisten after {relisten:?})"
    );
    assert!(
        a.state.accounts.authenticate_cached(&key).is_some(),
        "its notification was lost: the key is still cached"
    );
    until_all(&[&a], &key, 401).await;
    assert!(a.state.accounts.is_following_changes());
}
