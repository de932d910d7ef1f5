//! `kamiyo-bench fetch`: the cost of fetching a source, from a loopback server
//! (`kamiyo_testkit::FixtureServer`) into a fresh SQLite database: a DeFiLlama API answer
//! fetched, parsed and stored (the first fetch), then asked again with its `ETag` (a
//! `304`: what every later slot costs while the source has not changed), counting the
//! database statements each runs. A run whose first fetch did not import, or whose
//! conditional fetches were not answered `304`, is invalid and says so.

use std::time::{Duration, Instant};

use anyhow::Context;
use kamiyo_db::{BackendKind, Clock, Database, DbConfig, RetryPolicy};
use kamiyo_ingest::fetch::{HttpFetcher, Validators};
use kamiyo_ingest::job::{self, RunContext, RunOutcome};
use kamiyo_ingest::sources::{SourceSettings, SourcesConfig};
use kamiyo_store::{IncidentStore, SourceStore, MIGRATIONS};
use kamiyo_testkit::{FixtureServer, Reply};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct FetchReport {
    pub records: usize,
    pub body_bytes: usize,
    /// The first fetch: fetch, parse, validate, dedup and store every record.
    pub first_fetch_ms: f64,
    pub first_fetch_inserted: usize,
    pub first_fetch_statements: u64,
    /// Each conditional fetch answered `304`.
    pub not_modified_ms: Vec<f64>,
    pub not_modified_median_ms: f64,
    /// Database statements per `304` fetch (reading the validators, recording the fetch).
    pub not_modified_statements: u64,
    /// `None` when every run did what it measures.
    pub invalid: Option<String>,
}

/// `body`: a DeFiLlama API answer (the real one when given), else `records` synthetic
/// records; `repeat` conditional fetches after the first.
pub async fn run(
    body: Option<Vec<u8>>,
    records: usize,
    repeat: usize,
) -> anyhow::Result<FetchReport> {
    let body = body.unwrap_or_else(|| synthetic(records));
    let records = serde_json::from_slice::<Vec<serde_json::Value>>(&body)
        .context("the body is not a JSON array")?
        .len();
    let server = FixtureServer::start(Reply::Body {
        body: body.clone(),
        content_type: "application/json",
        etag: Some("\"bench\"".into()),
        last_modified: None,
    })
    .await;
    let dir = tempfile::tempdir()?;
    let db = Database::open(DbConfig::for_url(format!(
        "sqlite://{}",
        dir.path().join("fetch.db").display()
    )))
    .await?;
    db.migrate(&MIGRATIONS).await?;
    let incidents = IncidentStore::new(db.clone());
    let sources = SourceStore::new(db.clone());
    let retry = RetryPolicy::default();
    let clock = Clock::system();
    let fetcher = HttpFetcher::new(Duration::from_secs(2), clock.clone())?;
    let context = RunContext {
        incidents: &incidents,
        sources: &sources,
        retry: &retry,
        fetcher: &fetcher,
        clock: &clock,
        backend: BackendKind::Sqlite,
        fetch_log_keep: kamiyo_store::DEFAULT_SOURCE_FETCH_RETENTION,
    };
    let mut config = SourcesConfig::default();
    config.sources.insert(
        "defillama".into(),
        SourceSettings {
            url: Some(server.url("/hacks")),
            ..SourceSettings::default()
        },
    );
    let source = config.resolve()?.remove(0);
    let statements = || -> u64 {
        db.monitors()
            .iter()
            .flat_map(|(m, _)| m.statements(kamiyo_db::monitor::QuerySort::Calls, usize::MAX))
            .map(|s| s.calls)
            .sum()
    };
    let mut invalid = Vec::new();

    let before = statements();
    let started = Instant::now();
    let first = job::run(&context, &source, &Validators::default(), None).await;
    let first_fetch_ms = ms(started.elapsed());
    let first_fetch_statements = statements() - before;
    if first.outcome != RunOutcome::Imported {
        invalid.push(format!("the first fetch did not import: {:?}", first.error));
    }
    let inserted = first.report.as_ref().map_or(0, |r| r.inserted);

    let mut not_modified_ms = Vec::with_capacity(repeat);
    let before = statements();
    for _ in 0..repeat {
        let previous = sources
            .last_validators("defillama")
            .await?
            .unwrap_or_default();
        let started = Instant::now();
        let again = job::run(&context, &source, &previous, None).await;
        not_modified_ms.push(ms(started.elapsed()));
        if again.outcome != RunOutcome::NotModified {
            invalid.push(format!("a conditional fetch was {:?}", again.outcome));
        }
    }
    let not_modified_statements = (statements() - before) / repeat.max(1) as u64;
    let mut sorted = not_modified_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    db.close();
    Ok(FetchReport {
        records,
        body_bytes: body.len(),
        first_fetch_ms,
        first_fetch_inserted: inserted,
        first_fetch_statements,
        not_modified_ms,
        not_modified_median_ms: median,
        not_modified_statements,
        invalid: (!invalid.is_empty()).then(|| invalid.join("; ")),
    })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `n` DeFiLlama API records, each a distinct incident.
fn synthetic(n: usize) -> Vec<u8> {
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "date": 1_600_000_000 + (i as i64) * 86_400,
                "name": format!("Benchfi {i}"),
                "classification": "Protocol Logic",
                "technique": "Reentrancy",
                "amount": 100_000 + i,
                "chain": ["Ethereum"],
                "bridgeHack": false,
                "targetType": "DeFi Protocol",
                "source": format!("https://example.com/{i}"),
                "returnedFunds": null,
                "defillamaId": i,
                "language": "Solidity",
            })
        })
        .collect();
    serde_json::to_vec(&records).unwrap_or_default()
}
