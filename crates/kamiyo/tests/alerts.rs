//! Alert delivery through `kamiyo serve` processes: a process killed with SIGKILL while a
//! delivery is in flight leaves it to the next one, which sends it once its lease has
//! run out, with the same `webhook-id` (at least once, docs/ALERTS.md).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use kamiyo_alerts::signing::WebhookSecret;
use kamiyo_db::{Database, DbConfig};
use kamiyo_domain::alert_filter::AlertFilterInput;
use kamiyo_domain::{Role, Tier};
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::alerts::{EventKind, NewSubscription};
use kamiyo_store::{AlertStore, IncidentStore, MIGRATIONS};
use kamiyo_testkit::webhook::{Answer, WebhookReceiver};
use kamiyo_testkit::{claim, eventually, TestDatabase};

const KAMIYO: &str = env!("CARGO_BIN_EXE_kamiyo");

/// `kamiyo serve` on `database_url`, delivering to loopback, with a short lease.
fn serve(dir: &Path, database_url: &str) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(KAMIYO);
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("KAMIYO_") || key == "DATABASE_URL" {
            command.env_remove(key);
        }
    }
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", database_url)
        .env("KAMIYO_SOURCES_ENABLED", "false")
        .env("KAMIYO_ALERTS_ALLOW_PRIVATE_TARGETS", "true")
        // An attempt may take 2 s; a delivery whose process died is free 3 s after
        // it was claimed.
        .env("KAMIYO_ALERTS_TIMEOUT", "2s")
        .env("KAMIYO_ALERTS_LEASE", "3s")
        .env("KAMIYO_ALERTS_POLL_INTERVAL", "1s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_in_flight_when_its_process_is_killed_is_sent_by_the_next_with_its_id() {
    let pg = TestDatabase::create().await;
    let db = Database::open(DbConfig::for_url(pg.url())).await.unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    let receiver = WebhookReceiver::start().await;
    let user = AccountStore::new(db.clone())
        .create_user("alice@example.com", Tier::Pro, Role::User)
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
        .unwrap();
    IncidentStore::new(db.clone())
        .ingest(&claim("Euler Finance").source("rekt").build())
        .await
        .unwrap();

    // The first process claims the delivery and sends it; the receiver holds the
    // request unanswered, and the process is killed mid-call.
    receiver.hold();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut first = serve(one.path(), pg.url());
    let arrived = receiver.wait_for(1, Duration::from_secs(30)).await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    receiver.set_default(Answer::ok());
    receiver.release();
    let log = alerts.deliveries(subscription.id, 10).await.unwrap();
    assert_eq!(
        (log[0].status.as_str(), log[0].attempts),
        ("pending", 0),
        "the killed attempt was never recorded"
    );

    let mut second = serve(two.path(), pg.url());
    let again = receiver.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(
        again[1].header("webhook-id"),
        arrived[0].header("webhook-id"),
        "the same event to the same subscription: the same id"
    );
    again[1].verify(&secret, Duration::from_secs(300)).unwrap();
    let done = eventually(
        "the delivery recorded as succeeded",
        Duration::from_secs(30),
        || {
            let alerts = &alerts;
            async move {
                let log = alerts
                    .deliveries(subscription.id, 10)
                    .await
                    .map_err(|e| e.to_string())?;
                (log[0].status == "succeeded")
                    .then(|| log[0].clone())
                    .ok_or_else(|| format!("{log:?}"))
            }
        },
    )
    .await;
    assert_eq!(done.attempts, 1);
    assert_eq!(
        receiver.requests().len(),
        2,
        "sent twice: at least once, as documented"
    );
    second.start_kill().unwrap();
    second.wait().await.unwrap();
}
