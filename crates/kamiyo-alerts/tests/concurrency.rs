//! The alert service against one PostgreSQL database, on the real clock: a `NOTIFY`
//! wakes it long before its poll interval, a lost notification costs at most that
//! interval, and several instances share the deliveries without sending one twice.
//!
//! Durations are printed (`--no-capture` shows them); the bounds asserted here are
//! generous on purpose, the figures themselves belong to the benchmarks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kamiyo_alerts::config::AlertsConfig;
use kamiyo_alerts::runner::AlertService;
use kamiyo_alerts::signing::WebhookSecret;
use kamiyo_db::{Database, DbConfig};
use kamiyo_domain::alert_filter::AlertFilterInput;
use kamiyo_domain::{Role, Tier};
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::alerts::{EventKind, NewSubscription};
use kamiyo_store::incidents::IngestAction;
use kamiyo_store::{AlertStore, IncidentStore, MIGRATIONS};
use kamiyo_testkit::webhook::WebhookReceiver;
use kamiyo_testkit::{claim, eventually, TestDatabase};

/// How long the service may take to be listening, or a delivery to arrive, before the
/// test fails: far above what either takes, far below the 60 s poll of the first test.
const LIMIT: Duration = Duration::from_secs(10);

struct Setup {
    pg: TestDatabase,
    db: Database,
    incidents: IncidentStore,
    alerts: AlertStore,
}

async fn setup() -> Setup {
    let pg = TestDatabase::create().await;
    let db = open(&pg).await;
    db.migrate(&MIGRATIONS).await.unwrap();
    Setup {
        incidents: IncidentStore::new(db.clone()),
        alerts: AlertStore::new(db.clone()),
        db,
        pg,
    }
}

/// A handle of its own on the test's database (its own pool), as another instance has.
async fn open(pg: &TestDatabase) -> Database {
    Database::open(DbConfig::for_url(pg.url())).await.unwrap()
}

fn config() -> AlertsConfig {
    AlertsConfig {
        allow_private_targets: true,
        ..AlertsConfig::default()
    }
}

impl Setup {
    /// A subscription to every event of a new Pro user (no tier delay) at `url`.
    async fn subscribe_pro(&self, n: usize, url: &str) -> i64 {
        let user = AccountStore::new(self.db.clone())
            .create_user(&format!("pro{n}@example.com"), Tier::Pro, Role::User)
            .await
            .unwrap();
        self.alerts
            .create_subscription(&NewSubscription {
                user_id: user.id,
                name: format!("hooks {n}"),
                channel: "webhook".into(),
                target: url.to_owned(),
                secret: Some(WebhookSecret::generate().as_str().to_owned()),
                filter: AlertFilterInput::default(),
                events: EventKind::ALL.to_vec(),
            })
            .await
            .unwrap()
            .id
    }

    /// The process id of the session listening for alert notifications, once it is.
    /// Whether `LISTEN` has taken effect is visible nowhere but `pg_stat_activity`, so
    /// this polls it: a session of this database, idle after its `LISTEN` statement.
    async fn until_listening(&self) -> i32 {
        let client = self.pg.client().await;
        let client = &client;
        eventually("the alert service listening", LIMIT, || async move {
            let rows = client
                .query(
                    "SELECT pid, state, query FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap();
            let sessions: Vec<(i32, Option<String>, String)> = rows
                .iter()
                .map(|r| (r.get("pid"), r.get("state"), r.get("query")))
                .collect();
            sessions
                .iter()
                .find(|(_, state, query)| {
                    state.as_deref() == Some("idle") && query.starts_with("LISTEN")
                })
                .map(|(pid, _, _)| *pid)
                .ok_or(sessions)
        })
        .await
    }
}

/// Ends the service and checks it was still running: a service task that panicked
/// fails the test here.
async fn stop(service: tokio::task::JoinHandle<()>) {
    service.abort();
    let ended = service.await.expect_err("the service loop never returns");
    assert!(ended.is_cancelled(), "the service task failed: {ended}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_wakes_the_service_before_its_poll_interval() {
    let s = setup().await;
    let receiver = WebhookReceiver::start().await;
    s.subscribe_pro(0, &receiver.url("/hook")).await;
    let service = AlertService::new(
        &s.db,
        AlertsConfig {
            poll_interval: Duration::from_secs(60),
            ..config()
        },
    )
    .unwrap()
    .spawn();
    // The service listens after its first round: from here on only a notification, or
    // the poll a minute away, makes it look again.
    s.until_listening().await;

    let ingested = Instant::now();
    s.incidents
        .ingest(&claim("Euler Finance").source("rekt").build())
        .await
        .unwrap();
    let got = receiver.wait_for(1, LIMIT).await;
    let latency = got[0].arrived - ingested;
    eprintln!("woken by NOTIFY: ingest to delivery {latency:?} (poll interval 60 s)");
    assert_eq!(got[0].path, "/hook");
    assert_eq!(got[0].json()["type"], "incident.created");
    stop(service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_notification_costs_at_most_the_poll_interval() {
    let s = setup().await;
    let receiver = WebhookReceiver::start().await;
    s.subscribe_pro(0, &receiver.url("/hook")).await;
    let poll = Duration::from_secs(1);
    let service = AlertService::new(
        &s.db,
        AlertsConfig {
            poll_interval: poll,
            ..config()
        },
    )
    .unwrap()
    .spawn();
    let listening = s.until_listening().await;
    let killed: bool =
        s.pg.client()
            .await
            .query_one("SELECT pg_terminate_backend($1, 5000)", &[&listening])
            .await
            .unwrap()
            .get(0);
    assert!(killed, "the listening session {listening} was not ended");

    // The service opens a new session no sooner than a second after the last one, so
    // (unless this machine took that long since `until_listening`) nobody listens now:
    // the notification of this ingest goes nowhere, and only the poll finds the event.
    let ingested = Instant::now();
    s.incidents
        .ingest(&claim("Mango Markets").source("rekt").build())
        .await
        .unwrap();
    let got = receiver.wait_for(1, LIMIT).await;
    let latency = got[0].arrived - ingested;
    eprintln!("listening session killed: ingest to delivery {latency:?} (poll interval {poll:?})");
    // The poll interval plus a margin for a loaded machine; the figure itself is the
    // benchmark's to measure.
    assert!(
        latency < Duration::from_secs(15),
        "the delivery took {latency:?}, far beyond the {poll:?} poll"
    );
    assert_eq!(
        got[0].json()["data"]["incident"]["protocol"],
        "Mango Markets"
    );
    let again = s.until_listening().await;
    assert_ne!(again, listening, "a new listening session");
    stop(service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_does_not_listen_delivers_by_polling() {
    let s = setup().await;
    let receiver = WebhookReceiver::start().await;
    s.subscribe_pro(0, &receiver.url("/hook")).await;
    let poll = Duration::from_secs(1);
    let service = AlertService::new(
        &s.db,
        AlertsConfig {
            poll_interval: poll,
            listen: false,
            ..config()
        },
    )
    .unwrap()
    .spawn();

    let ingested = Instant::now();
    s.incidents
        .ingest(&claim("Cream Finance").source("rekt").build())
        .await
        .unwrap();
    let got = receiver.wait_for(1, LIMIT).await;
    let latency = got[0].arrived - ingested;
    eprintln!("polling only: ingest to delivery {latency:?} (poll interval {poll:?})");
    assert!(
        latency < Duration::from_secs(15),
        "the delivery took {latency:?}, far beyond the {poll:?} poll"
    );
    let listening: i64 =
        s.pg.client()
            .await
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(listening, 0, "listen: false opened a listening session");
    stop(service).await;
}

const SUBSCRIPTIONS: usize = 10;
const EVENTS: usize = 1_000;
const INSTANCES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_share_the_work_without_sending_an_attempt_twice() {
    let s = setup().await;
    let receiver = WebhookReceiver::start().await;
    let mut path_of = HashMap::new();
    for n in 0..SUBSCRIPTIONS {
        let path = format!("/hook/{n}");
        let id = s.subscribe_pro(n, &receiver.url(&path)).await;
        path_of.insert(id, path);
    }
    let first_day = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let drafts: Vec<_> = (0..EVENTS)
        .map(|n| {
            let day = first_day + chrono::Duration::days(i64::try_from(n).unwrap());
            claim(&format!("Loadtest {n:04}"))
                .date(day.to_string())
                .build()
        })
        .collect();
    let started = Instant::now();
    let outcomes = s.incidents.ingest_batch(&drafts).await.unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| o.as_ref().is_ok_and(|o| o.action == IngestAction::Inserted)),
        "every claim is an incident of its own"
    );
    let ingest_took = started.elapsed();
    let events = s
        .alerts
        .pending_events(i64::try_from(EVENTS).unwrap() + 1)
        .await
        .unwrap();
    assert_eq!(events.len(), EVENTS);

    // Each instance has its own pool and HTTP client, as separate processes would, and
    // runs rounds until nothing is left for anyone: no event undispatched and no
    // delivery pending, not even one another instance holds under its lease (until
    // then an instance with nothing to claim goes round again at once).
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        instances.push(AlertService::new(&open(&s.pg).await, config()).unwrap());
    }
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for service in instances {
        running.spawn(async move {
            let mut attempts = 0;
            loop {
                let made = service.run_once().await.unwrap();
                attempts += made;
                if made == 0
                    && service.deliverer.alerts.next_due().await.unwrap().is_none()
                    && service
                        .dispatcher
                        .alerts
                        .pending_events(1)
                        .await
                        .unwrap()
                        .is_empty()
                {
                    return attempts;
                }
            }
        });
    }
    let mut shares = Vec::new();
    let all = async {
        while let Some(done) = running.join_next().await {
            shares.push(done.unwrap());
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("four instances delivered 10,000 webhooks within 2 minutes");
    let deliver_took = started.elapsed();
    eprintln!(
        "{EVENTS} incidents ingested in {ingest_took:?}; {} deliveries by {INSTANCES} instances in {deliver_took:?}, attempts per instance {shares:?}",
        EVENTS * SUBSCRIPTIONS
    );

    let total = EVENTS * SUBSCRIPTIONS;
    assert_eq!(shares.iter().sum::<usize>(), total, "attempts made");
    // Every request was received before its answer, and so before its attempt was
    // recorded: none is still on its way.
    let received = receiver.requests();
    assert_eq!(received.len(), total, "requests received");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for request in &received {
        let id = request.header("webhook-id").expect("a webhook-id");
        *seen.entry(id).or_default() += 1;
        // `msg_<event>_<subscription>`: it reached its own subscription's endpoint.
        let subscription: i64 = id.rsplit('_').next().unwrap().parse().unwrap();
        assert_eq!(
            request.path, path_of[&subscription],
            "{id} went to another subscription's endpoint"
        );
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(seen.len(), total, "distinct webhook ids");

    for &subscription in path_of.keys() {
        let deliveries = s
            .alerts
            .deliveries(subscription, i64::try_from(EVENTS).unwrap() + 1)
            .await
            .unwrap();
        assert_eq!(deliveries.len(), EVENTS, "subscription {subscription}");
        let wrong: Vec<_> = deliveries
            .iter()
            .filter(|d| d.status != "succeeded" || d.attempts != 1 || d.log.len() != 1)
            .collect();
        assert!(
            wrong.is_empty(),
            "subscription {subscription}: not succeeded at the first attempt: {wrong:#?}"
        );
    }
}

/// Transactions committed in the test's database so far (as last flushed by each
/// backend, at most a second behind).
async fn commits(pg: &TestDatabase) -> i64 {
    pg.client()
        .await
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_leased_elsewhere_does_not_make_the_service_spin() {
    let s = setup().await;
    let receiver = WebhookReceiver::start().await;
    s.subscribe_pro(0, &receiver.url("/hook")).await;
    s.incidents
        .ingest(&claim("Euler Finance").source("rekt").build())
        .await
        .unwrap();
    // Another instance dispatched the event and claimed its delivery, then went
    // silent (crashed, or waits on a slow receiver): the lease is its own for 60 s.
    let other = AlertService::new(&open(&s.pg).await, config()).unwrap();
    let now = chrono::Utc::now();
    assert_eq!(other.dispatcher.dispatch_once(now).await.unwrap(), 1);
    let claimed = other
        .deliverer
        .alerts
        .claim_due(now, Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    let service = AlertService::new(
        &s.db,
        AlertsConfig {
            poll_interval: Duration::from_secs(60),
            ..config()
        },
    )
    .unwrap()
    .spawn();
    s.until_listening().await;
    // A rate, over a window: nothing announces that a loop is idle.
    let before = commits(&s.pg).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = commits(&s.pg).await - before;
    // Nothing can be done until the lease runs out in a minute: a waiting service
    // commits nothing (a few for pool checks and this test's own reads).
    assert!(
        during < 50,
        "{during} transactions in 3 s: the service polls in a loop"
    );
    assert!(receiver.requests().is_empty());
    stop(service).await;
}
