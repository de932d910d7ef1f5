//! The scheduler on PostgreSQL, as several `kamiyo serve` instances run it: three
//! instances on one database fetch each slot of a source exactly once between them
//! (counted at the source's server), and a slot whose holder died unfinished is taken
//! over once its lease ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use kamiyo_db::{BackendKind, Clock, Database, DbConfig, RetryPolicy};
use kamiyo_ingest::fetch::HttpFetcher;
use kamiyo_ingest::scheduler::{slot_start, Scheduler};
use kamiyo_ingest::sources::{Source, SourceSettings, SourcesConfig};
use kamiyo_store::{IncidentStore, SlotClaim, SourceStore, MIGRATIONS};
use kamiyo_testkit::{eventually, FixtureServer, Reply, TestDatabase};

fn sample() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/defillama_api_sample.json"
    ))
    .unwrap()
}

fn mirror(url: String, interval: Duration) -> Source {
    let mut config = SourcesConfig::default();
    config.sources.insert(
        "mirror".into(),
        SourceSettings {
            url: Some(url),
            format: Some("defillama-api".into()),
            interval: Some(interval),
            timeout: Some(Duration::from_secs(2)),
            ..SourceSettings::default()
        },
    );
    config
        .resolve()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "mirror")
        .unwrap()
}

/// One instance: its own pool on the shared database, its own name.
async fn instance(pg: &TestDatabase, name: &str) -> Scheduler {
    let db = Database::open(DbConfig::for_url(pg.url())).await.unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    Scheduler {
        incidents: IncidentStore::new(db.clone()),
        sources: SourceStore::new(db),
        retry: RetryPolicy::default(),
        fetcher: HttpFetcher::new(Duration::from_secs(1), Clock::system()).unwrap(),
        clock: Clock::system(),
        backend: BackendKind::Postgres,
        fetch_log_keep: kamiyo_store::DEFAULT_SOURCE_FETCH_RETENTION,
        holder: Arc::from(name),
        metrics: Arc::default(),
        min_lease: Duration::from_secs(60),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_fetch_each_slot_of_a_source_once_between_them() {
    let pg = TestDatabase::create().await;
    let server = FixtureServer::start(Reply::json(sample())).await;
    let source = mirror(server.url("/hacks"), Duration::from_secs(1));
    let mut tasks = Vec::new();
    let mut store = None;
    for name in ["a", "b", "c"] {
        let scheduler = instance(&pg, name).await;
        store.get_or_insert_with(|| scheduler.sources.clone());
        tasks.extend(scheduler.spawn(vec![source.clone()]));
    }
    let store = store.unwrap();
    // Slots pass on the real clock here (the scheduler sleeps until each slot's start):
    // the event awaited is the fourth fetch recorded.
    let fetches = eventually("four slots fetched", Duration::from_secs(20), || {
        let store = store.clone();
        async move {
            let fetches = store.last_fetches("mirror", 100).await.unwrap();
            if fetches.len() >= 4 {
                Ok(fetches)
            } else {
                Err(fetches.len())
            }
        }
    })
    .await;
    for task in &tasks {
        task.abort();
    }
    let mut slots: Vec<_> = fetches.iter().map(|f| f.slot_start().unwrap()).collect();
    slots.sort();
    slots.dedup();
    assert_eq!(
        slots.len(),
        fetches.len(),
        "a slot fetched twice: {fetches:?}"
    );
    // Aborted mid-fetch, an instance may have sent a request it never recorded: at most
    // one request more than the fetches read above, per instance.
    let requests = server.requests();
    assert!(
        requests >= fetches.len() && requests <= fetches.len() + 3,
        "{requests} requests for {} fetches",
        fetches.len()
    );
    assert!(fetches.iter().all(|f| f.is_success()), "{fetches:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_whose_holder_died_is_taken_over_when_its_lease_ends() {
    let pg = TestDatabase::create().await;
    let server = FixtureServer::start(Reply::json(sample())).await;
    let source = mirror(server.url("/hacks"), Duration::from_secs(3600));
    let survivor = instance(&pg, "survivor").await;
    let now = Clock::system().now_utc();
    let slot = slot_start(now, source.interval);
    // The dead instance's claim: a lease of a second, never renewed, never finished.
    let claimed = survivor
        .sources
        .claim_slot("mirror", slot, "dead", Duration::from_secs(1), now)
        .await
        .unwrap();
    assert_eq!(claimed, SlotClaim::Claimed { attempt: 1 });
    let tasks = survivor.spawn(vec![source]);
    let taken = eventually(
        "the slot taken over and done",
        Duration::from_secs(15),
        || {
            let store = survivor.sources.clone();
            async move {
                match store.last_slot("mirror").await.unwrap() {
                    Some(slot) if slot.finished_at.is_some() => Ok(slot),
                    other => Err(other),
                }
            }
        },
    )
    .await;
    for task in &tasks {
        task.abort();
    }
    assert_eq!(
        (taken.holder.as_str(), taken.attempt),
        ("survivor", 2),
        "{taken:?}"
    );
    assert_eq!(server.requests(), 1);
}
