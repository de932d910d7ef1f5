//! `kamiyo-bench alerts`: alert delivery on PostgreSQL to a loopback receiver (issue #16).
//!
//! - Latency from an ingest's commit (its `ingest` call returned) to the receiver's
//!   arrival of the delivery (the 2xx follows at once), at 1 and at 100 events/s, with
//!   `NOTIFY` and with it off (polling every `alerts.poll_interval`).
//! - Sustained deliveries per second to 100 subscriptions, and the database statements
//!   per delivery (the pool monitor's count of every statement dispatch and delivery
//!   ran, over the deliveries made).
//!
//! Each run is on a fresh database; the service runs in this process, as in
//! `kamiyo serve`. A run whose deliveries did not all arrive, or arrived twice, is
//! reported invalid rather than as a figure.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kamiyo_alerts::config::AlertsConfig;
use kamiyo_alerts::runner::AlertService;
use kamiyo_alerts::signing::WebhookSecret;
use kamiyo_db::monitor::QuerySort;
use kamiyo_db::{Database, DbConfig};
use kamiyo_domain::alert_filter::AlertFilterInput;
use kamiyo_domain::{Role, Tier};
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::alerts::{EventKind, NewSubscription};
use kamiyo_store::{AlertStore, IncidentStore, MIGRATIONS};
use kamiyo_testkit::webhook::WebhookReceiver;
use kamiyo_testkit::{claim, TestDatabase};
use serde::Serialize;

use crate::stats::{millis, quantile};

#[derive(Debug, Serialize)]
pub struct Latency {
    pub rate_per_second: u32,
    pub listen: bool,
    pub events: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Throughput {
    pub subscriptions: usize,
    pub deliveries: usize,
    pub seconds: f64,
    pub deliveries_per_second: f64,
    pub statements_per_delivery: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub latency: Vec<Latency>,
    pub throughput: Throughput,
}

struct Bench {
    db: Database,
    incidents: IncidentStore,
    receiver: WebhookReceiver,
    _pg: TestDatabase,
}

async fn bench(subscriptions: usize) -> anyhow::Result<Bench> {
    let pg = TestDatabase::create().await;
    let db = Database::open(DbConfig::for_url(pg.url())).await?;
    db.migrate(&MIGRATIONS).await?;
    let receiver = WebhookReceiver::start().await;
    let accounts = AccountStore::new(db.clone());
    let alerts = AlertStore::new(db.clone());
    for n in 0..subscriptions {
        let user = accounts
            .create_user(&format!("bench{n}@example.com"), Tier::Pro, Role::User)
            .await?;
        alerts
            .create_subscription(&NewSubscription {
                user_id: user.id,
                name: format!("bench {n}"),
                channel: "webhook".into(),
                target: receiver.url(&format!("/hook/{n}")),
                secret: Some(WebhookSecret::generate().as_str().to_owned()),
                filter: AlertFilterInput::default(),
                events: EventKind::ALL.to_vec(),
            })
            .await?;
    }
    Ok(Bench {
        incidents: IncidentStore::new(db.clone()),
        db,
        receiver,
        _pg: pg,
    })
}

fn config(listen: bool, poll: Duration) -> AlertsConfig {
    AlertsConfig {
        allow_private_targets: true,
        listen,
        poll_interval: poll,
        ..AlertsConfig::default()
    }
}

/// `events` new incidents at `rate` per second, each timed from its commit to its
/// delivery's arrival.
async fn latency(
    rate: u32,
    events: usize,
    listen: bool,
    poll: Duration,
) -> anyhow::Result<Latency> {
    let b = bench(1).await?;
    let service = AlertService::new(&b.db, config(listen, poll))?.spawn();
    if listen {
        // The listener's session is up when pg_stat_activity shows it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listening: i64 = b
                ._pg
                .client()
                .await
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()",
                    &[],
                )
                .await?
                .get(0);
            if listening > 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("the alert service did not start listening within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut committed = Vec::with_capacity(events);
    let mut next = tokio::time::Instant::now();
    for n in 0..events {
        tokio::time::sleep_until(next).await;
        next += interval;
        let draft = claim(&format!("Latency {n}"))
            .source("bench")
            .date("2026-11-01")
            .build();
        b.incidents.ingest(&draft).await?;
        committed.push(Instant::now());
    }
    let limit = poll + Duration::from_secs(30);
    let received = b.receiver.wait_for(events, limit).await;
    service.abort();
    if received.len() != events {
        bail!(
            "invalid run: {} deliveries for {events} events",
            received.len()
        );
    }
    let mut by_name: std::collections::HashMap<String, Instant> = std::collections::HashMap::new();
    for r in &received {
        let name = r.json()["data"]["incident"]["protocol"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if by_name.insert(name, r.arrived).is_some() {
            bail!("invalid run: an incident delivered twice");
        }
    }
    let mut waits: Vec<Duration> = committed
        .iter()
        .enumerate()
        .map(|(n, at)| {
            by_name
                .get(&format!("Latency {n}"))
                .map(|arrived| arrived.saturating_duration_since(*at))
                .context("a delivery is missing")
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Latency {
        rate_per_second: rate,
        listen,
        events,
        p50_ms: millis(quantile(&mut waits, 0.50)),
        p99_ms: millis(quantile(&mut waits, 0.99)),
        max_ms: millis(quantile(&mut waits, 1.0)),
    })
}

fn statements(db: &Database) -> u64 {
    db.monitors()
        .iter()
        .map(|(monitor, _)| {
            monitor
                .statements(QuerySort::Calls, usize::MAX)
                .iter()
                .map(|s| s.calls)
                .sum::<u64>()
        })
        .sum()
}

/// `events` incidents stored first, then delivered to `subscriptions` subscriptions.
async fn throughput(subscriptions: usize, events: usize) -> anyhow::Result<Throughput> {
    let b = bench(subscriptions).await?;
    let drafts: Vec<_> = (0..events)
        .map(|n| {
            claim(&format!("Throughput {n}"))
                .source("bench")
                .date("2026-11-01")
                .build()
        })
        .collect();
    for chunk in drafts.chunks(500) {
        for outcome in b.incidents.ingest_batch(chunk).await? {
            outcome?;
        }
    }
    let deliveries = subscriptions * events;
    let before = statements(&b.db);
    let started = Instant::now();
    let service = AlertService::new(&b.db, config(true, Duration::from_secs(5)))?.spawn();
    let received = b
        .receiver
        .wait_for(deliveries, Duration::from_secs(600))
        .await;
    let seconds = started.elapsed().as_secs_f64();
    service.abort();
    let ran = statements(&b.db) - before;
    if received.len() != deliveries {
        bail!("invalid run: {} of {deliveries} deliveries", received.len());
    }
    let ids: std::collections::HashSet<&str> = received
        .iter()
        .filter_map(|r| r.header("webhook-id"))
        .collect();
    if ids.len() != deliveries {
        bail!(
            "invalid run: {} distinct webhook-ids for {deliveries} deliveries",
            ids.len()
        );
    }
    if received.iter().any(|r| r.path.is_empty()) {
        bail!("invalid run: a request without a path");
    }
    Ok(Throughput {
        subscriptions,
        deliveries,
        seconds,
        deliveries_per_second: deliveries as f64 / seconds,
        statements_per_delivery: ran as f64 / deliveries as f64,
    })
}

/// Every figure; `quick` shrinks the runs (seconds, for tests).
pub async fn run(quick: bool) -> anyhow::Result<Report> {
    let (slow_events, fast_events, poll_events, subscriptions, events) = if quick {
        (3, 50, 2, 10, 20)
    } else {
        (30, 1_000, 20, 100, 200)
    };
    let poll = Duration::from_secs(5);
    Ok(Report {
        latency: vec![
            latency(1, slow_events, true, poll).await?,
            latency(100, fast_events, true, poll).await?,
            latency(1, poll_events, false, poll).await?,
            latency(100, fast_events, false, poll).await?,
        ],
        throughput: throughput(subscriptions, events).await?,
    })
}
