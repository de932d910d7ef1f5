//! A configured source fetched end to end from a loopback server (`FixtureServer`), on
//! each backend: its records go through the same ingest path as an import, every fetch
//! is recorded, a 304 or an unchanged body writes nothing, and a changed format (HTML
//! in place of JSON, no records) is a failed fetch that says why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use kamiyo_db::{BackendKind, Clock, RetryPolicy};
use kamiyo_ingest::fetch::{HttpFetcher, Validators};
use kamiyo_ingest::job::{self, RunContext, RunOutcome, SourceRun};
use kamiyo_ingest::sources::{SourceSettings, SourcesConfig};
use kamiyo_testkit::{FixtureServer, Reply};

type Backend = common::Backend<common::Stores>;

kamiyo_testkit::per_backend! {
    common::Stores::on => [
        a_fetched_source_is_ingested_like_an_import_and_its_fetch_recorded,
        a_304_after_a_fetch_writes_nothing_and_counts_as_a_success,
        html_in_place_of_the_source_s_json_is_a_failed_fetch_that_names_what_was_expected,
    ],
}

fn sample() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/defillama_api_sample.json"
    ))
    .unwrap()
}

fn with_etag(body: Vec<u8>) -> Reply {
    Reply::Body {
        body,
        content_type: "application/json",
        etag: Some("\"v1\"".into()),
        last_modified: None,
    }
}

/// The built-in `defillama` source, pointed at `url`.
fn defillama_at(url: String) -> kamiyo_ingest::sources::Source {
    let mut config = SourcesConfig::default();
    config.sources.insert(
        "defillama".into(),
        SourceSettings {
            url: Some(url),
            timeout: Some(Duration::from_secs(2)),
            ..SourceSettings::default()
        },
    );
    config.resolve().unwrap().remove(0)
}

async fn fetch(b: &Backend, url: String, previous: &Validators) -> SourceRun {
    let retry = RetryPolicy::default();
    let fetcher = HttpFetcher::new(Duration::from_secs(1), Clock::system()).unwrap();
    let clock = Clock::system();
    let context = RunContext {
        incidents: &b.store.incidents,
        sources: &b.store.sources,
        retry: &retry,
        fetcher: &fetcher,
        clock: &clock,
        backend: if b.name == "sqlite" {
            BackendKind::Sqlite
        } else {
            BackendKind::Postgres
        },
        fetch_log_keep: kamiyo_store::DEFAULT_SOURCE_FETCH_RETENTION,
    };
    job::run(&context, &defillama_at(url), previous, None).await
}

async fn report_of(b: &Backend) -> kamiyo_store::SourceReport {
    b.store
        .sources
        .report(kamiyo_store::DEFAULT_SOURCE_HEALTH_WINDOW, None, None)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.source == "defillama")
        .expect("defillama is listed")
}

async fn a_fetched_source_is_ingested_like_an_import_and_its_fetch_recorded(b: Backend) {
    let server = FixtureServer::start(Reply::json(sample())).await;
    let run = fetch(&b, server.url("/hacks"), &Validators::default()).await;
    assert_eq!(
        (run.outcome, run.error.as_deref()),
        (RunOutcome::Imported, None),
        "{run:?}"
    );
    let report = run.report.as_ref().unwrap();
    // Samplswap names no chain: kept on the unknown chain, as in an import.
    assert_eq!(
        (report.records, report.inserted, report.rejected.len()),
        (3, 3, 0)
    );
    assert_eq!(b.store.incidents.count().await.unwrap(), 3);
    let health = report_of(&b).await;
    assert_eq!(
        (health.fetches_in_window, health.claims),
        (1, 3),
        "{health:?}"
    );

    // The same answer again (no validators): unchanged by its hash, nothing written.
    let again = fetch(&b, server.url("/hacks"), &run.validators).await;
    assert_eq!(again.outcome, RunOutcome::Unchanged, "{again:?}");
    assert!(again.report.is_none());
    assert_eq!(report_of(&b).await.fetches_in_window, 2);
    let logged = b
        .store
        .sources
        .last_fetches("defillama", 1)
        .await
        .unwrap()
        .remove(0);
    assert!(
        logged.is_success() && logged.is_not_modified(),
        "{logged:?}"
    );
}

async fn a_304_after_a_fetch_writes_nothing_and_counts_as_a_success(b: Backend) {
    let server = FixtureServer::start(with_etag(sample())).await;
    let first = fetch(&b, server.url("/hacks"), &Validators::default()).await;
    assert_eq!(first.outcome, RunOutcome::Imported, "{first:?}");
    let second = fetch(&b, server.url("/hacks"), &first.validators).await;
    assert_eq!(
        (second.outcome, second.status, second.error.as_deref()),
        (RunOutcome::NotModified, Some(304), None)
    );
    assert_eq!(second.validators.etag.as_deref(), Some("\"v1\""));
    assert_eq!(report_of(&b).await.success_rate_pct, Some(100.0));
}

async fn html_in_place_of_the_source_s_json_is_a_failed_fetch_that_names_what_was_expected(
    b: Backend,
) {
    let server = FixtureServer::start(Reply::Body {
        body: b"<!DOCTYPE html><html><body>Just a moment...</body></html>".to_vec(),
        content_type: "text/html",
        etag: None,
        last_modified: None,
    })
    .await;
    let run = fetch(&b, server.url("/hacks"), &Validators::default()).await;
    assert_eq!(run.outcome, RunOutcome::Failed);
    let error = run.error.as_deref().unwrap();
    assert!(error.contains("HTML"), "{error}");
    assert!(
        error.contains("JSON array of DeFiLlama hack records"),
        "{error}"
    );
    assert_eq!(b.store.incidents.count().await.unwrap(), 0);

    server.answer_with(Reply::json("[]"));
    let empty = fetch(&b, server.url("/hacks"), &Validators::default()).await;
    assert!(
        empty
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no record")),
        "{empty:?}"
    );
    let health = report_of(&b).await;
    assert_eq!(
        (health.fetches_in_window, health.success_rate_pct),
        (2, Some(0.0))
    );
}
