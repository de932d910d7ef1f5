//! The fetch log on both backends: recording fetches, the report's success rate over a
//! rolling window, sources with fetches and no claims, pruning, and times that never move
//! back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use kamiyo_db::Database;
use kamiyo_domain::IncidentDraft;
use kamiyo_store::{IncidentStore, SourceFetch, SourceReport, SourceStore};
use kamiyo_testkit::claim;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Claims go in through the incident store; fetches and the report through the source
/// store, on the same database.
struct Stores {
    incidents: IncidentStore,
    sources: SourceStore,
}

fn stores(db: Database) -> Stores {
    Stores {
        incidents: IncidentStore::new(db.clone()),
        sources: SourceStore::new(db),
    }
}

type Backend = common::Backend<Stores>;

kamiyo_testkit::per_backend! {
    stores => [
        the_success_rate_counts_the_fetches_within_the_window,
        a_failing_source_without_claims_is_reported_after_the_ones_with_claims,
        recording_a_fetch_deletes_the_sources_fetches_older_than_it_keeps,
        a_fetch_recorded_late_does_not_move_the_last_times_back,
        a_fetched_source_can_be_disabled_and_enabled_again,
        an_unknown_source_cannot_be_disabled,
        a_source_known_only_by_its_claims_can_be_disabled,
    ],
}

/// Now, in whole seconds: both backends then print it the same way.
fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap()
}

fn shown(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn ok(source: &str, finished: DateTime<Utc>, records: u64) -> SourceFetch {
    SourceFetch::succeeded(source, finished - TimeDelta::seconds(5), finished, records).unwrap()
}

fn failed(source: &str, finished: DateTime<Utc>, error: &str) -> SourceFetch {
    SourceFetch::failed(source, finished - TimeDelta::seconds(5), finished, 0, error).unwrap()
}

/// A claim of `source` about `protocol`, in March 2024.
fn claim_of(source: &str, protocol: &str) -> IncidentDraft {
    claim(protocol).source(source).date("2024-03-01").build()
}

async fn report(b: &Backend, window: Duration, source: &str) -> SourceReport {
    let all = b.store.sources.report(window, None, None).await.unwrap();
    all.into_iter()
        .find(|r| r.source == source)
        .unwrap_or_else(|| panic!("{}: {source} is not in the report", b.name))
}

async fn the_success_rate_counts_the_fetches_within_the_window(b: Backend) {
    let t = now();
    b.store
        .incidents
        .ingest(&claim_of("defillama", "Alpha"))
        .await
        .unwrap();
    let before = report(&b, 7 * DAY, "defillama").await;
    assert_eq!(
        (
            before.active,
            before.fetches_in_window,
            before.success_rate_pct
        ),
        (None, 0, None),
        "{}: claims without a recorded fetch have no health",
        b.name
    );
    for fetch in [
        ok("defillama", t - TimeDelta::hours(3), 10),
        failed("defillama", t - TimeDelta::hours(2), "HTTP 502"),
        ok("defillama", t - TimeDelta::hours(1), 12),
        failed("defillama", t, "timed out after 30s"),
        // Outside a 7-day window, kept by a 30-day one.
        failed("defillama", t - TimeDelta::days(10), "HTTP 500"),
    ] {
        b.store
            .sources
            .record_fetch(&fetch, 30 * DAY)
            .await
            .unwrap();
    }
    let r = report(&b, 7 * DAY, "defillama").await;
    assert_eq!(
        (r.incidents, r.claims, r.active),
        (1, 1, Some(true)),
        "{}",
        b.name
    );
    assert_eq!(
        (r.fetches_in_window, r.success_rate_pct),
        (4, Some(50.0)),
        "{}: 2 of the 4 fetches within 7 days succeeded",
        b.name
    );
    assert_eq!(
        (r.last_fetch_at, r.last_success_at),
        (Some(shown(t)), Some(shown(t - TimeDelta::hours(1)))),
        "{}: the newest fetch failed, the one before succeeded",
        b.name
    );
    let wide = report(&b, 30 * DAY, "defillama").await;
    assert_eq!(
        (wide.fetches_in_window, wide.success_rate_pct),
        (5, Some(40.0)),
        "{}: a 30-day window sees the old failure too",
        b.name
    );
    let narrow = report(&b, Duration::from_secs(90 * 60), "defillama").await;
    assert_eq!(
        (narrow.fetches_in_window, narrow.success_rate_pct),
        (2, Some(50.0)),
        "{}: the last 90 minutes",
        b.name
    );
}

async fn a_failing_source_without_claims_is_reported_after_the_ones_with_claims(b: Backend) {
    let t = now();
    b.store
        .incidents
        .ingest(&claim_of("rekt", "Beta"))
        .await
        .unwrap();
    b.store
        .sources
        .record_fetch(&failed("broken-feed", t, "DNS lookup failed"), 7 * DAY)
        .await
        .unwrap();
    let all = b.store.sources.report(7 * DAY, None, None).await.unwrap();
    let names: Vec<&str> = all.iter().map(|r| r.source.as_str()).collect();
    assert_eq!(names, ["rekt", "broken-feed"], "{}", b.name);
    let broken = &all[1];
    assert_eq!(
        (
            broken.incidents,
            broken.claims,
            broken.first_seen_at.as_deref(),
            broken.last_seen_at.as_deref()
        ),
        (0, 0, None, None),
        "{}",
        b.name
    );
    assert_eq!(
        (
            broken.active,
            broken.fetches_in_window,
            broken.success_rate_pct,
            broken.last_success_at.as_deref()
        ),
        (Some(true), 1, Some(0.0), None),
        "{}",
        b.name
    );
    assert_eq!(broken.last_fetch_at, Some(shown(t)), "{}", b.name);
}

async fn recording_a_fetch_deletes_the_sources_fetches_older_than_it_keeps(b: Backend) {
    let t = now();
    for days in [20, 10, 2] {
        b.store
            .sources
            .record_fetch(&ok("feed", t - TimeDelta::days(days), 1), 30 * DAY)
            .await
            .unwrap();
    }
    b.store
        .sources
        .record_fetch(&ok("other", t - TimeDelta::days(20), 1), 30 * DAY)
        .await
        .unwrap();
    assert_eq!(
        report(&b, 30 * DAY, "feed").await.fetches_in_window,
        3,
        "{}",
        b.name
    );
    // Keeping 5 days: the 20- and 10-day-old fetches of this source go.
    b.store
        .sources
        .record_fetch(&failed("feed", t, "HTTP 503"), 5 * DAY)
        .await
        .unwrap();
    let r = report(&b, 30 * DAY, "feed").await;
    assert_eq!(
        (r.fetches_in_window, r.success_rate_pct),
        (2, Some(50.0)),
        "{}: the 2-day-old success and the new failure are left",
        b.name
    );
    assert_eq!(
        report(&b, 30 * DAY, "other").await.fetches_in_window,
        1,
        "{}: another source's fetches are its own to prune",
        b.name
    );
}

async fn a_fetch_recorded_late_does_not_move_the_last_times_back(b: Backend) {
    let t = now();
    b.store
        .sources
        .record_fetch(&ok("feed", t, 1), DAY)
        .await
        .unwrap();
    b.store
        .sources
        .record_fetch(&ok("feed", t - TimeDelta::hours(1), 1), DAY)
        .await
        .unwrap();
    b.store
        .sources
        .record_fetch(&failed("feed", t - TimeDelta::hours(2), "HTTP 500"), DAY)
        .await
        .unwrap();
    let r = report(&b, DAY, "feed").await;
    assert_eq!(
        (r.last_fetch_at, r.last_success_at, r.fetches_in_window),
        (Some(shown(t)), Some(shown(t)), 3),
        "{}",
        b.name
    );
}

async fn a_fetched_source_can_be_disabled_and_enabled_again(b: Backend) {
    b.store
        .sources
        .record_fetch(&ok("feed", now(), 1), DAY)
        .await
        .unwrap();
    assert!(b.store.sources.set_active("feed", false).await.unwrap());
    assert_eq!(
        report(&b, DAY, "feed").await.active,
        Some(false),
        "{}",
        b.name
    );
    assert!(b.store.sources.set_active("feed", true).await.unwrap());
    assert_eq!(
        report(&b, DAY, "feed").await.active,
        Some(true),
        "{}",
        b.name
    );
}

async fn an_unknown_source_cannot_be_disabled(b: Backend) {
    b.store
        .sources
        .record_fetch(&ok("feed", now(), 1), DAY)
        .await
        .unwrap();
    assert!(
        !b.store.sources.set_active("unknown", false).await.unwrap(),
        "{}",
        b.name
    );
}

async fn a_source_known_only_by_its_claims_can_be_disabled(b: Backend) {
    // No fetch recorded: it gets its registry row when first disabled.
    b.store
        .incidents
        .ingest(&claim_of("posted", "Gammafi"))
        .await
        .unwrap();
    assert_eq!(report(&b, DAY, "posted").await.active, None, "{}", b.name);
    assert!(b.store.sources.set_active("posted", false).await.unwrap());
    assert_eq!(
        report(&b, DAY, "posted").await.active,
        Some(false),
        "{}",
        b.name
    );
}
