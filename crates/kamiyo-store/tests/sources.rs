//! The fetch log on both backends: recording fetches and what an HTTP fetch saw, the
//! validators for the next conditional request, the report's success rate over a
//! rolling window, its failures since the last success and last attempt, sources with
//! fetches and no claims, pruning, and times that never move back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use kamiyo_db::Database;
use kamiyo_domain::IncidentDraft;
use kamiyo_store::{
    FetchCounts, FetchResponse, IncidentStore, SourceFetch, SourceReport, SourceStore, Validators,
};
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
        the_fetch_log_reads_back_what_an_http_fetch_recorded,
        the_validators_are_the_last_successs_not_those_of_a_later_failure_or_import,
        consecutive_failures_count_since_the_last_success_and_reset_after_one,
        the_last_attempt_is_the_newer_of_the_last_fetch_and_the_last_claim,
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

/// The validators a response carried: an `ETag` and a body hash made from `tag`.
fn validators(tag: &str) -> Validators {
    Validators {
        etag: Some(format!("\"{tag}\"")),
        last_modified: Some("Tue, 01 Dec 2026 10:00:00 GMT".into()),
        body_sha256: Some(format!("{:0>64}", tag.len())),
    }
}

fn response(status: u16, tag: &str) -> FetchResponse {
    FetchResponse {
        status: Some(status),
        bytes: Some(48_213),
        duration_ms: Some(1_250),
        validators: validators(tag),
    }
}

async fn the_fetch_log_reads_back_what_an_http_fetch_recorded(b: Backend) {
    let t = now();
    let fetched = ok("defillama", t - TimeDelta::minutes(5), 120)
        .with_response(response(200, "v1"))
        .unwrap()
        .with_counts(FetchCounts {
            inserted: 3,
            merged: 2,
            updated: 1,
            unchanged: 110,
            rejected: 4,
        })
        .unwrap()
        .for_slot(t - TimeDelta::minutes(10));
    let not_modified = SourceFetch::not_modified("defillama", t - TimeDelta::seconds(1), t)
        .unwrap()
        .with_response(FetchResponse {
            status: Some(304),
            ..FetchResponse::default()
        })
        .unwrap()
        .for_slot(t - TimeDelta::minutes(5));
    let imported = ok("defillama", t - TimeDelta::hours(1), 7);
    for fetch in [&imported, &fetched, &not_modified] {
        b.store.sources.record_fetch(fetch, DAY).await.unwrap();
    }
    let log = b.store.sources.last_fetches("defillama", 10).await.unwrap();
    assert_eq!(
        log,
        [not_modified, fetched, imported],
        "{}: newest first, every field as recorded",
        b.name
    );
    assert_eq!(
        b.store
            .sources
            .last_fetches("defillama", 1)
            .await
            .unwrap()
            .len(),
        1,
        "{}",
        b.name
    );
}

async fn the_validators_are_the_last_successs_not_those_of_a_later_failure_or_import(b: Backend) {
    let t = now();
    let s = &b.store.sources;
    assert_eq!(s.last_validators("feed").await.unwrap(), None, "{}", b.name);
    for fetch in [
        ok("feed", t - TimeDelta::hours(3), 5).with_response(response(200, "old")),
        ok("feed", t - TimeDelta::hours(2), 5).with_response(response(200, "current")),
        // An import after it: says nothing about the remote resource.
        Ok(ok("feed", t - TimeDelta::hours(1), 9)),
        failed("feed", t, "HTTP 500").with_response(response(500, "error-page")),
    ] {
        s.record_fetch(&fetch.unwrap(), DAY).await.unwrap();
    }
    assert_eq!(
        s.last_validators("feed").await.unwrap(),
        Some(validators("current")),
        "{}",
        b.name
    );
}

async fn failures(b: &Backend, source: &str) -> i64 {
    report(b, DAY, source).await.consecutive_failures
}

async fn consecutive_failures_count_since_the_last_success_and_reset_after_one(b: Backend) {
    let t = now();
    let s = &b.store.sources;
    let record = |fetch: SourceFetch| async move { s.record_fetch(&fetch, DAY).await.unwrap() };
    record(failed("feed", t - TimeDelta::hours(6), "HTTP 502")).await;
    record(failed("feed", t - TimeDelta::hours(5), "HTTP 502")).await;
    assert_eq!(
        failures(&b, "feed").await,
        2,
        "{}: failed from the start",
        b.name
    );
    record(ok("feed", t - TimeDelta::hours(4), 1)).await;
    assert_eq!(failures(&b, "feed").await, 0, "{}", b.name);
    for hours in [3, 2, 1] {
        record(failed("feed", t - TimeDelta::hours(hours), "timed out")).await;
    }
    assert_eq!(failures(&b, "feed").await, 3, "{}", b.name);
    record(ok("feed", t, 1)).await;
    assert_eq!(
        failures(&b, "feed").await,
        0,
        "{}: a success resets it",
        b.name
    );
}

async fn the_last_attempt_is_the_newer_of_the_last_fetch_and_the_last_claim(b: Backend) {
    let t = now();
    let s = &b.store.sources;
    b.store
        .incidents
        .ingest(&claim_of("posted", "Deltafi"))
        .await
        .unwrap();
    let only_claims = report(&b, DAY, "posted").await;
    assert_eq!(
        (
            only_claims.last_attempt_at,
            only_claims.consecutive_failures,
            only_claims.records_last_fetch
        ),
        (None, 0, None),
        "{}: no fetch, no claim of a slot",
        b.name
    );

    s.record_fetch(&ok("feed", t - TimeDelta::minutes(30), 40), DAY)
        .await
        .unwrap();
    s.record_fetch(&ok("feed", t - TimeDelta::minutes(10), 17), DAY)
        .await
        .unwrap();
    let fetched = report(&b, DAY, "feed").await;
    assert_eq!(
        (fetched.last_attempt_at, fetched.records_last_fetch),
        (
            Some(shown(t - TimeDelta::minutes(10) - TimeDelta::seconds(5))),
            Some(17)
        ),
        "{}: the last fetch's start and records",
        b.name
    );

    // A fetch under way: claimed, not recorded yet.
    s.claim_slot("feed", t, "instance-a", Duration::from_secs(300), t)
        .await
        .unwrap();
    let under_way = report(&b, DAY, "feed").await;
    assert_eq!(
        (under_way.last_attempt_at, under_way.records_last_fetch),
        (Some(shown(t)), Some(17)),
        "{}",
        b.name
    );
}
