//! Alerts end to end on both backends: an ingest writes an event, the service matches it
//! and delivers it to a loopback receiver, signed; retries, `410`, tier delays and the
//! address guard as documented (docs/ALERTS.md). Time is a manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use kamiyo_alerts::config::AlertsConfig;
use kamiyo_alerts::runner::AlertService;
use kamiyo_alerts::signing::WebhookSecret;
use kamiyo_db::{Database, DbConfig, ManualClock};
use kamiyo_domain::alert_filter::AlertFilterInput;
use kamiyo_domain::{Role, Tier};
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::alerts::{EventKind, NewSubscription};
use kamiyo_store::{AlertStore, IncidentStore, MIGRATIONS};
use kamiyo_testkit::webhook::{Answer, WebhookReceiver};
use kamiyo_testkit::{claim, TestDatabase};

struct Setup {
    db: Database,
    clock: ManualClock,
    incidents: IncidentStore,
    alerts: AlertStore,
    _pg: Option<TestDatabase>,
    _dir: Option<tempfile::TempDir>,
}

async fn setup(backend: &str) -> Setup {
    let clock = ManualClock::new();
    let (url, pg, dir) = if backend == "postgres" {
        let pg = TestDatabase::create().await;
        (pg.url().to_owned(), Some(pg), None)
    } else {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        (url, None, Some(dir))
    };
    let db = Database::open(DbConfig {
        clock: clock.clock(),
        ..DbConfig::for_url(url)
    })
    .await
    .unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    Setup {
        incidents: IncidentStore::new(db.clone()),
        alerts: AlertStore::new(db.clone()),
        db,
        clock,
        _pg: pg,
        _dir: dir,
    }
}

fn config() -> AlertsConfig {
    AlertsConfig {
        allow_private_targets: true,
        ..AlertsConfig::default()
    }
}

impl Setup {
    fn service(&self, config: AlertsConfig) -> AlertService {
        AlertService::new(&self.db, config).unwrap()
    }

    async fn subscribe(&self, tier: Tier, url: &str, filter: AlertFilterInput) -> (i64, String) {
        let email = format!("{}@example.com", tier.as_str());
        let user = AccountStore::new(self.db.clone())
            .create_user(&email, tier, Role::User)
            .await
            .unwrap();
        let secret = WebhookSecret::generate().as_str().to_owned();
        let s = self
            .alerts
            .create_subscription(&NewSubscription {
                user_id: user.id,
                name: "hooks".into(),
                channel: "webhook".into(),
                target: url.to_owned(),
                secret: Some(secret.clone()),
                filter,
                events: EventKind::ALL.to_vec(),
            })
            .await
            .unwrap();
        (s.id, secret)
    }
}

macro_rules! both {
    ($($story:ident),+ $(,)?) => {
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $story() { super::$story(super::setup("postgres").await).await; } )+ }
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $story() { super::$story(super::setup("sqlite").await).await; } )+ }
    };
}

both!(
    a_new_incident_and_a_correction_arrive_signed_with_the_merged_incident,
    a_failed_delivery_is_retried_with_the_same_webhook_id_and_gone_disables,
    a_delayed_tier_gets_the_alert_when_its_tier_may_see_the_incident,
    a_filter_on_the_merged_incident_decides_who_is_alerted,
    a_private_target_is_refused_unless_allowed,
    an_email_alert_goes_through_the_mail_server,
    a_receiver_that_is_down_or_too_slow_gets_the_delivery_again_later,
    the_audit_lists_a_change_without_its_delivery_and_what_is_unfinished,
);

async fn a_new_incident_and_a_correction_arrive_signed_with_the_merged_incident(s: Setup) {
    let receiver = WebhookReceiver::start().await;
    let (_, secret) = s
        .subscribe(
            Tier::Pro,
            &receiver.url("/hook"),
            AlertFilterInput::default(),
        )
        .await;
    let service = s.service(config());
    s.incidents
        .ingest(
            &claim("Euler Finance")
                .source("rekt")
                .loss_usd("195000000")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(service.run_once().await.unwrap(), 1);
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    got[0].verify(&secret, Duration::from_secs(300)).unwrap();
    let body = got[0].json();
    assert_eq!(body["type"], "incident.created");
    assert_eq!(body["data"]["incident"]["protocol"], "Euler Finance");
    assert_eq!(
        body["data"]["incident"]["sources"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    s.incidents
        .ingest(
            &claim("Euler")
                .source("defillama")
                .loss_usd("197000000")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(service.run_once().await.unwrap(), 1);
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    let body = got[1].json();
    assert_eq!(body["type"], "incident.updated");
    assert_eq!(
        body["data"]["incident"]["sources"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let joined = body["data"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "sources")
        .expect("a new source is a change");
    assert_eq!(joined["new"], serde_json::json!(["defillama", "rekt"]));

    // The first source corrects its amount: the same claim, updated.
    s.incidents
        .ingest(
            &claim("Euler Finance")
                .source("rekt")
                .loss_usd("200000000")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(service.run_once().await.unwrap(), 1);
    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    got[2].verify(&secret, Duration::from_secs(300)).unwrap();
    let body = got[2].json();
    assert_eq!(body["type"], "incident.updated");
    let loss = body["data"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "loss_usd")
        .expect("the amount changed");
    // The merged amount, as the incident now has it (the canonical rule weighs both).
    assert_eq!(loss["old"], "195000000.00");
    assert_eq!(loss["new"], body["data"]["incident"]["loss_usd"]);
    assert_ne!(loss["new"], loss["old"]);
    assert_ne!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    let mut exposition = kamiyo_db::monitor::prometheus::Exposition::new();
    service.deliverer.metrics.write(&mut exposition, Some(0));
    let text = exposition.finish();
    assert!(
        text.contains(r#"kamiyo_alert_deliveries_total{channel="webhook",outcome="delivered"} 3"#),
        "{text}"
    );
    assert!(
        text.contains("kamiyo_alert_delivery_latency_seconds_count 3"),
        "{text}"
    );
    assert!(text.contains("kamiyo_alert_outbox_pending 0"), "{text}");
    assert_eq!(service.run_once().await.unwrap(), 0, "nothing sent twice");
}

async fn a_failed_delivery_is_retried_with_the_same_webhook_id_and_gone_disables(s: Setup) {
    let receiver = WebhookReceiver::start().await;
    receiver.respond_with(vec![
        Answer::status(500),
        Answer::status(429).with_header("retry-after", "120"),
        Answer::ok(),
    ]);
    let (subscription, secret) = s
        .subscribe(
            Tier::Pro,
            &receiver.url("/hook"),
            AlertFilterInput::default(),
        )
        .await;
    let service = s.service(config());
    s.incidents
        .ingest(&claim("Mango Markets").source("rekt").build())
        .await
        .unwrap();
    assert_eq!(service.run_once().await.unwrap(), 1);
    assert_eq!(service.run_once().await.unwrap(), 0, "not due yet");
    let first = s.alerts.deliveries(subscription, 10).await.unwrap();
    assert_eq!(first[0].status, "pending");
    let retry_at = first[0].next_attempt_at.unwrap();
    assert!(retry_at > s.clock.clock().now_utc());
    assert!(
        retry_at <= s.clock.clock().now_utc() + chrono::Duration::seconds(6),
        "the first retry comes within the first backoff ceiling: {retry_at}"
    );

    s.clock.advance(Duration::from_secs(6));
    assert_eq!(service.run_once().await.unwrap(), 1, "the 429");
    let second = s.alerts.deliveries(subscription, 10).await.unwrap();
    let honoured = second[0].next_attempt_at.unwrap() - second[0].log[1].attempted_at;
    assert_eq!(honoured.num_seconds(), 120, "Retry-After honoured");
    s.clock.advance(Duration::from_secs(120));
    assert_eq!(service.run_once().await.unwrap(), 1);
    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one id per event: {ids:?}"
    );
    for request in &got {
        request.verify(&secret, Duration::from_secs(600)).unwrap();
    }
    let done = s.alerts.deliveries(subscription, 10).await.unwrap();
    assert_eq!(
        (done[0].status.as_str(), done[0].attempts),
        ("succeeded", 3)
    );
    assert_eq!(done[0].log.len(), 3);
    assert_eq!(done[0].log[0].status_code, Some(500));

    receiver.set_default(Answer::status(410));
    s.incidents
        .ingest(&claim("Cream Finance").source("rekt").build())
        .await
        .unwrap();
    assert_eq!(service.run_once().await.unwrap(), 1);
    let gone = s.alerts.subscription(subscription).await.unwrap().unwrap();
    assert!(!gone.enabled);
    assert_eq!(
        gone.disabled_reason.as_deref(),
        Some("the endpoint answered 410 Gone")
    );
}

async fn a_delayed_tier_gets_the_alert_when_its_tier_may_see_the_incident(s: Setup) {
    let receiver = WebhookReceiver::start().await;
    s.subscribe(
        Tier::Free,
        &receiver.url("/free"),
        AlertFilterInput::default(),
    )
    .await;
    let service = s.service(config());
    let today = s.clock.clock().now_utc().date_naive().to_string();
    s.incidents
        .ingest(&claim("Radiant").source("rekt").date(&today).build())
        .await
        .unwrap();
    assert_eq!(
        service.run_once().await.unwrap(),
        0,
        "the free tier waits a day"
    );
    // The claim gives a day: the incident occurred at midnight, visible a day later.
    let now = s.clock.clock().now_utc();
    let visible =
        now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc() + chrono::Duration::hours(24);
    s.clock.advance(
        (visible - now - chrono::Duration::minutes(1))
            .to_std()
            .unwrap(),
    );
    assert_eq!(service.run_once().await.unwrap(), 0);
    s.clock.advance(Duration::from_secs(120));
    assert_eq!(service.run_once().await.unwrap(), 1, "visible to it now");
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].path, "/free");
}

async fn a_filter_on_the_merged_incident_decides_who_is_alerted(s: Setup) {
    let big = WebhookReceiver::start().await;
    let ronin = WebhookReceiver::start().await;
    s.subscribe(
        Tier::Pro,
        &big.url("/big"),
        AlertFilterInput {
            min_loss_usd: Some("100000000".into()),
            min_sources: Some(2),
            ..AlertFilterInput::default()
        },
    )
    .await;
    s.subscribe(
        Tier::Team,
        &ronin.url("/ronin"),
        AlertFilterInput {
            protocols: vec!["RONIN".into()],
            chains: vec!["ETH".into()],
            ..AlertFilterInput::default()
        },
    )
    .await;
    let service = s.service(config());
    s.incidents
        .ingest(
            &claim("Ronin Network")
                .source("defillama")
                .chain("ethereum")
                .loss_usd("624000000")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(
        service.run_once().await.unwrap(),
        1,
        "one source: only Ronin's subscriber"
    );
    assert_eq!(ronin.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    s.incidents
        .ingest(
            &claim("Ronin Bridge")
                .source("rekt")
                .chain("ethereum")
                .loss_usd("625000000")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(
        service.run_once().await.unwrap(),
        2,
        "two sources now: both"
    );
    let got = big.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json()["type"], "incident.updated");
    assert_eq!(ronin.wait_for(2, Duration::from_secs(10)).await.len(), 2);
}

async fn a_private_target_is_refused_unless_allowed(s: Setup) {
    let receiver = WebhookReceiver::start().await;
    let (subscription, _) = s
        .subscribe(
            Tier::Pro,
            &receiver.url("/hook"),
            AlertFilterInput::default(),
        )
        .await;
    let guarded = s.service(AlertsConfig::default());
    s.incidents
        .ingest(&claim("Wintermute").source("rekt").build())
        .await
        .unwrap();
    assert_eq!(guarded.run_once().await.unwrap(), 1);
    let log = s.alerts.deliveries(subscription, 10).await.unwrap();
    assert_eq!(log[0].status, "failed", "retrying cannot help: {log:#?}");
    let error = log[0].log[0].error.clone().unwrap();
    assert!(error.contains("127.0.0.1"), "{error}");
    assert!(
        receiver.requests().is_empty(),
        "nothing reached the receiver"
    );
}

async fn an_email_alert_goes_through_the_mail_server(s: Setup) {
    let sink = kamiyo_testkit::smtp::SmtpSink::start().await;
    let user = AccountStore::new(s.db.clone())
        .create_user("mail@example.com", Tier::Pro, Role::User)
        .await
        .unwrap();
    let subscription = s
        .alerts
        .create_subscription(&NewSubscription {
            user_id: user.id,
            name: "inbox".into(),
            channel: "email".into(),
            target: "secops@example.com".into(),
            secret: None,
            filter: AlertFilterInput::default(),
            events: EventKind::ALL.to_vec(),
        })
        .await
        .unwrap();
    let service = s.service(AlertsConfig {
        smtp: kamiyo_alerts::config::SmtpConfig {
            host: Some("127.0.0.1".into()),
            port: sink.port(),
            security: kamiyo_alerts::config::SmtpSecurity::None,
            from: "Kamiyo <alerts@kamiyo.example>".into(),
            ..kamiyo_alerts::config::SmtpConfig::default()
        },
        ..config()
    });
    s.incidents
        .ingest(
            &claim("Euler Finance")
                .source("rekt")
                .loss_usd("197000000")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(service.run_once().await.unwrap(), 1);
    let mail = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail[0].to, ["secops@example.com"]);
    let subject = mail[0].header("subject").unwrap();
    assert!(subject.contains("Euler Finance"), "{subject}");
    assert!(mail[0].body().contains("$197"), "{}", mail[0].body());
    let log = s.alerts.deliveries(subscription.id, 10).await.unwrap();
    assert_eq!(log[0].status, "succeeded", "{log:#?}");
}

async fn a_receiver_that_is_down_or_too_slow_gets_the_delivery_again_later(s: Setup) {
    // Down: a port nothing listens on (bound, then closed).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let (down, _) = s
        .subscribe(Tier::Pro, &down_url, AlertFilterInput::default())
        .await;
    // Slow: answers after longer than an attempt may take.
    let slow_receiver = WebhookReceiver::start().await;
    slow_receiver.set_default(Answer::ok().with_delay(Duration::from_secs(5)));
    let (slow, _) = s
        .subscribe(
            Tier::Team,
            &slow_receiver.url("/slow"),
            AlertFilterInput::default(),
        )
        .await;
    let service = s.service(AlertsConfig {
        timeout: Duration::from_millis(500),
        lease: Duration::from_secs(2),
        ..config()
    });
    s.incidents
        .ingest(&claim("Poly Network").source("rekt").build())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(service.run_once().await.unwrap(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the slow receiver is cut off at the attempt's deadline: {:?}",
        started.elapsed()
    );
    for (subscription, expected) in [(down, "could not connect"), (slow, "timed out")] {
        let log = s.alerts.deliveries(subscription, 10).await.unwrap();
        assert_eq!(log[0].status, "pending", "{log:#?}");
        let attempt = &log[0].log[0];
        assert_eq!(attempt.status_code, None);
        let error = attempt.error.clone().unwrap();
        assert!(error.starts_with(expected), "{error}");
        assert!(attempt.next_attempt_at.is_some(), "a retry is scheduled");
        let sub = s.alerts.subscription(subscription).await.unwrap().unwrap();
        assert!(sub.failing_since.is_some() && sub.enabled);
    }
    assert_eq!(slow_receiver.requests().len(), 1);
}

async fn the_audit_lists_a_change_without_its_delivery_and_what_is_unfinished(s: Setup) {
    let receiver = WebhookReceiver::start().await;
    let (subscription, _) = s
        .subscribe(
            Tier::Pro,
            &receiver.url("/hook"),
            AlertFilterInput::default(),
        )
        .await;
    let service = s.service(config());
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    let audit = |now: chrono::DateTime<chrono::Utc>| {
        kamiyo_alerts::audit::audit(
            &s.alerts,
            &s.incidents,
            since,
            now,
            Duration::from_secs(10),
            &kamiyo_domain::tier::DEFAULT_TIERS,
        )
    };
    s.incidents
        .ingest(&claim("Nomad Bridge").source("rekt").build())
        .await
        .unwrap();
    let later = s.clock.clock().now_utc() + chrono::Duration::minutes(5);
    let report = audit(later).await.unwrap();
    assert_eq!(
        report.missing.len(),
        1,
        "not dispatched past the grace: {report:#?}"
    );
    assert_eq!(report.missing[0].subscription_id, None);

    assert_eq!(service.run_once().await.unwrap(), 1);
    let healthy = audit(later).await.unwrap();
    assert!(healthy.missing.is_empty(), "{healthy:#?}");
    assert!(healthy.unfinished.is_empty());

    // A delivery lost (as a bug or a hand in the database would lose it) is named.
    kamiyo_store_execute(&s.db, "DELETE FROM alert_deliveries").await;
    let lost = audit(later).await.unwrap();
    assert_eq!(lost.missing.len(), 1, "{lost:#?}");
    assert_eq!(lost.missing[0].subscription_id, Some(subscription));
    assert_eq!(lost.missing[0].event, EventKind::Created);
}

async fn kamiyo_store_execute(db: &Database, sql: &'static str) {
    match db.primary() {
        kamiyo_db::Pool::Postgres(pool) => {
            pool.acquire()
                .await
                .unwrap()
                .execute(sql, &[])
                .await
                .unwrap();
        }
        kamiyo_db::Pool::Sqlite(pool) => {
            pool.acquire()
                .await
                .unwrap()
                .run(move |c| c.execute(sql, []))
                .await
                .unwrap();
        }
    }
}
