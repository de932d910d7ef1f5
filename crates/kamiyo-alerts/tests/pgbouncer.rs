//! The alert service behind PgBouncer 1.18 in transaction mode
//! (`database.transaction_pooling`, docs/DEPLOYMENT.md): with fewer server sessions than
//! the service's pool, an ingest's event is dispatched and delivered to a loopback
//! webhook, and the delivery is recorded as succeeded. The service listens over the
//! direct URL (a pooler in transaction mode cannot keep a `LISTEN`): its poll interval is
//! a minute, so only a notification heard on that session delivers within the deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use kamiyo_alerts::config::AlertsConfig;
use kamiyo_alerts::runner::AlertService;
use kamiyo_alerts::signing::WebhookSecret;
use kamiyo_db::{Database, DatabaseUrl, DbConfig};
use kamiyo_domain::alert_filter::AlertFilterInput;
use kamiyo_domain::{Role, Tier};
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::alerts::{EventKind, NewSubscription};
use kamiyo_store::{AlertStore, IncidentStore, MIGRATIONS};
use kamiyo_testkit::{claim, eventually, PgBouncer, TestDatabase, WebhookReceiver};

/// Server sessions PgBouncer may open: fewer than the service's pool.
const SERVER_SESSIONS: u32 = 3;
/// Far above what listening or a delivery takes, far below the one-minute poll.
const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_is_delivered_and_recorded_through_pgbouncer_in_transaction_mode() {
    let pg = TestDatabase::create().await;
    let bouncer = PgBouncer::start(pg.server_addr(), SERVER_SESSIONS).await;
    let db = Database::open(DbConfig {
        transaction_pooling: true,
        direct_url: Some(DatabaseUrl::new(pg.url())),
        pool_max_size: 8,
        ..DbConfig::for_url(bouncer.url_through(pg.url()))
    })
    .await
    .unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();

    let receiver = WebhookReceiver::start().await;
    let user = AccountStore::new(db.clone())
        .create_user("pro@example.com", Tier::Pro, Role::User)
        .await
        .unwrap();
    let secret = WebhookSecret::generate().as_str().to_owned();
    let alerts = AlertStore::new(db.clone());
    let subscription = alerts
        .create_subscription(&NewSubscription {
            user_id: user.id,
            name: "hooks".into(),
            channel: "webhook".into(),
            target: receiver.url("/hook"),
            secret: Some(secret.clone()),
            filter: AlertFilterInput::default(),
            events: EventKind::ALL.to_vec(),
        })
        .await
        .unwrap()
        .id;

    let service = AlertService::new(
        &db,
        AlertsConfig {
            allow_private_targets: true,
            poll_interval: Duration::from_secs(60),
            ..AlertsConfig::default()
        },
    )
    .unwrap()
    .spawn();
    // The service listens after its first round; an ingest before that would wait for
    // the poll. Whether `LISTEN` took effect shows only in `pg_stat_activity`.
    let client = pg.client().await;
    let client = &client;
    eventually("the alert service listening", LIMIT, || async move {
        let rows = client
            .query(
                "SELECT state, query FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        let sessions: Vec<(Option<String>, String)> = rows
            .iter()
            .map(|r| (r.get("state"), r.get("query")))
            .collect();
        if sessions
            .iter()
            .any(|(state, query)| state.as_deref() == Some("idle") && query.starts_with("LISTEN"))
        {
            Ok(())
        } else {
            Err(sessions)
        }
    })
    .await;

    IncidentStore::new(db.clone())
        .ingest(&claim("Euler Finance").source("rekt").build())
        .await
        .unwrap();

    let got = receiver.wait_for(1, LIMIT).await;
    got[0].verify(&secret, Duration::from_secs(300)).unwrap();
    assert_eq!(got[0].json()["type"], "incident.created");
    assert_eq!(
        got[0].json()["data"]["incident"]["protocol"],
        "Euler Finance"
    );
    let delivered = eventually("the delivery recorded as succeeded", LIMIT, || async {
        let deliveries = alerts.deliveries(subscription, 10).await.unwrap();
        match deliveries.as_slice() {
            [d] if d.status == "succeeded" => Ok(d.clone()),
            _ => Err(deliveries),
        }
    })
    .await;
    assert_eq!(delivered.event, EventKind::Created);
    assert_eq!(delivered.attempts, 1);
    assert_eq!(delivered.log[0].status_code, Some(200));
    assert_eq!(
        got[0].header("webhook-id"),
        Some(delivered.message_id.as_str())
    );

    service.abort();
    let ended = service.await.expect_err("the service loop never returns");
    assert!(ended.is_cancelled(), "the service task failed: {ended}");
}
