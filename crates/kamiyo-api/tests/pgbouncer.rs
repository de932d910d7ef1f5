//! The service behind PgBouncer 1.18 in transaction mode (`database.transaction_pooling`,
//! docs/DEPLOYMENT.md): migrations over the direct URL, then the API's and the ingest
//! path's core cases through a PgBouncer with fewer server connections than the service
//! has sessions, so that consecutive statements of one session run on different server
//! sessions. Without the setting, PgBouncer refuses the service's sessions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::TestApp;
use kamiyo_api::config::BearerToken;
use kamiyo_api::request_limits::{LimiterBackend, RateLimitConfig};
use kamiyo_api::ServerConfig;
use kamiyo_db::{Database, DatabaseUrl, DbConfig};
use kamiyo_domain::{Role, Tier};
use kamiyo_store::{IncidentStore, MIGRATIONS};
use kamiyo_testkit::{claim, eventually, PgBouncer, TestDatabase};
use serde_json::json;

const ADMIN: &str = "s3cret-token-0123456789abcdef0123";
/// Server sessions PgBouncer may open: fewer than the service's pool.
const SERVER_SESSIONS: u32 = 3;

struct Bounced {
    t: TestApp,
    _bouncer: PgBouncer,
    _pg: TestDatabase,
}

fn through(bouncer: &PgBouncer, pg: &TestDatabase) -> DbConfig {
    DbConfig {
        transaction_pooling: true,
        direct_url: Some(DatabaseUrl::new(pg.url())),
        pool_max_size: 8,
        ..DbConfig::for_url(bouncer.url_through(pg.url()))
    }
}

async fn bounced(rate_limit: RateLimitConfig) -> Bounced {
    let pg = TestDatabase::create().await;
    let bouncer = PgBouncer::start(pg.server_addr(), SERVER_SESSIONS).await;
    let db = Database::open(through(&bouncer, &pg)).await.unwrap();
    let report = db.migrate(&MIGRATIONS).await.unwrap();
    assert!(!report.applied.is_empty(), "migrated over the direct URL");
    assert!(db.migrate(&MIGRATIONS).await.unwrap().applied.is_empty());
    // What `kamiyo serve --no-migrate` and the health probe read through the pooler.
    assert!(db.pending_migrations(&MIGRATIONS).await.unwrap().is_empty());
    assert_eq!(
        db.schema_version().await.unwrap(),
        MIGRATIONS.postgres.last().map(|m| m.version)
    );
    let t = TestApp::builder()
        .database(db)
        .settings(ServerConfig {
            admin_token: Some(BearerToken(ADMIN.to_owned().into())),
            auth_cache_ttl: Duration::from_secs(300),
            ..ServerConfig::default()
        })
        .rate_limit(rate_limit)
        .user(Tier::Enterprise, Role::User)
        .start()
        .await;
    Bounced {
        t,
        _bouncer: bouncer,
        _pg: pg,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_transaction_pooling_pgbouncer_refuses_the_session_and_says_why() {
    let pg = TestDatabase::create().await;
    let bouncer = PgBouncer::start(pg.server_addr(), SERVER_SESSIONS).await;
    let db = Database::open(DbConfig {
        acquire_timeout: Duration::from_secs(5),
        ..DbConfig::for_url(bouncer.url_through(pg.url()))
    })
    .await
    .unwrap();
    let kamiyo_db::Pool::Postgres(pool) = db.primary() else {
        unreachable!("a postgres:// URL")
    };
    let Err(error) = pool.acquire().await else {
        panic!("PgBouncer 1.18 accepted the `options` start-up parameter");
    };
    assert!(error.to_string().contains("options"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_the_api_work_through_pgbouncer_in_transaction_mode() {
    let b = bounced(RateLimitConfig::default()).await;
    let t = &b.t;
    let store = IncidentStore::new(t.db.clone());
    // Batches from several writers at once: the advisory locks are per transaction.
    let writers = (0..4).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let drafts: Vec<_> = (0..25)
                .map(|i| {
                    claim(&format!("Protocol {w}-{i}"))
                        .source(if i % 2 == 0 { "rekt" } else { "defillama" })
                        .chain("ethereum")
                        .date(format!("2023-0{}-{:02}", 1 + w, 1 + i))
                        .loss_usd(format!("{}", 1000 * (i + 1)))
                        .build()
                })
                .collect();
            store.ingest_batch(&drafts).await.unwrap()
        })
    });
    for writer in writers {
        assert!(writer.await.unwrap().iter().all(Result::is_ok));
    }
    // The same claims again (another source) merge into the incidents: 100, not 200.
    let again: Vec<_> = (0..25)
        .map(|i| {
            claim(&format!("Protocol 0-{i}"))
                .source("slowmist")
                .chain("ethereum")
                .date(format!("2023-01-{:02}", 1 + i))
                .build()
        })
        .collect();
    store.ingest_batch(&again).await.unwrap();

    let page = t.get("/api/exploits?limit=30&chain=ethereum").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let page = page.json();
    assert_eq!(page["total"], 100, "{page}");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let next = t
        .get(&format!(
            "/api/exploits?limit=30&chain=ethereum&cursor={cursor}"
        ))
        .await;
    assert_eq!(next.status, 200, "{}", next.text);
    assert_eq!(next.json()["items"].as_array().unwrap().len(), 30);
    let merged = t.get("/api/exploits?protocol=Protocol%200-3").await.json();
    let id = merged["items"][0]["id"].as_i64().unwrap();
    let incident = t.get(&format!("/api/exploits/{id}")).await.json();
    assert_eq!(
        incident["sources"].as_array().unwrap().len(),
        2,
        "{incident}"
    );
    for path in [
        "/api/stats",
        "/api/sources",
        "/api/me",
        "/api/exploits.csv?limit=5",
    ] {
        let answer = t.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    }

    // A curator's merge: a remerge in one long transaction, its timeouts set per
    // transaction (a session-level SET would stay behind in PgBouncer's server session).
    let other = t.get("/api/exploits?protocol=Protocol%201-3").await.json()["items"][0]["id"]
        .as_i64()
        .unwrap();
    let merged = t
        .post(
            "/api/admin/incidents/merge",
            json!({"incidents": [id, other], "reason": "the same hack"}),
        )
        .bearer(ADMIN)
        .await;
    assert_eq!(merged.status, 200, "{}", merged.text);
    // The remerge's lengthened timeouts stayed in its transaction: no server session
    // PgBouncer hands out carries them.
    let kamiyo_db::Pool::Postgres(pool) = t.db.primary() else {
        unreachable!("a postgres:// URL")
    };
    for _ in 0..2 * SERVER_SESSIONS {
        let shown = pool
            .acquire()
            .await
            .unwrap()
            .query_one("SELECT current_setting('statement_timeout') AS t", &[])
            .await
            .unwrap()
            .get::<_, String>("t");
        assert_ne!(shown, "30min", "a maintenance timeout leaked");
    }

    // The health probe, the monitor and the listing all still answer.
    assert_eq!(t.get("/api/health").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_limits_and_revocation_work_through_pgbouncer() {
    let b = bounced(RateLimitConfig {
        backend: LimiterBackend::Postgres,
        ..RateLimitConfig::default()
    })
    .await;
    let t = &b.t;
    // Shared limits beside PgBouncer (the limiter's own sessions go to the direct URL).
    let limit = kamiyo_domain::TierTable::default().anonymous.per_minute as usize;
    let mut admitted = 0;
    for _ in 0..limit + 3 {
        let answer = t
            .get("/api/exploits")
            .anonymous()
            .from("192.0.2.40:1")
            .await;
        if answer.status == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, limit);
    assert_eq!(
        t.get("/api/health").await.json()["rate_limit"]["shared"],
        true
    );

    // LISTEN on the direct URL: a key revoked by another process is refused at once,
    // although this instance keeps verified keys for five minutes.
    let follower = t
        .state
        .accounts
        .follow_changes(Duration::from_millis(100))
        .expect("PostgreSQL");
    let key = t.key("analyst@example.com", Tier::Pro, Role::User).await;
    eventually(
        "the instance to listen",
        Duration::from_secs(10),
        || async {
            if t.state.accounts.is_following_changes() {
                Ok(())
            } else {
                Err("not yet")
            }
        },
    )
    .await;
    eventually("the key to be cached", Duration::from_secs(10), || async {
        assert_eq!(t.get("/api/me").bearer(&key).await.status, 200);
        match t.state.accounts.authenticate_cached(&key) {
            Some(_) => Ok(()),
            None => Err("not kept yet"),
        }
    })
    .await;
    kamiyo_store::accounts::AccountStore::new(t.db.clone())
        .revoke_key(&key[..12])
        .await
        .unwrap();
    eventually(
        "the revocation to be heard",
        Duration::from_secs(10),
        || async {
            let status = t.get("/api/me").bearer(&key).await.status;
            if status == 401 {
                Ok(())
            } else {
                Err(status.to_string())
            }
        },
    )
    .await;
    follower.abort();
}
