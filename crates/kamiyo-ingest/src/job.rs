//! One fetch of a configured source, end to end: the HTTP fetch (`fetch`), the parser of
//! its format, the same validation, dedup and merge as a file import (`import`), and one
//! fetch recorded in the source's log, whatever happened.
//!
//! A fetch succeeds when the source answered with its format: a `304` or an unchanged
//! body (nothing written), or records of which at least one is valid. It fails, and says
//! why, when the source could not be fetched, answered something else (HTML instead of
//! JSON, a renamed field: the parser's `IngestError::Shape`), answered no record at all,
//! or answered records none of which is valid (a changed format the parser could not
//! tell). Never an empty success.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kamiyo_db::{BackendKind, Clock, RetryPolicy};
use kamiyo_store::{FetchCounts, FetchResponse, IncidentStore, SourceFetch, SourceStore};

use crate::articles::{read_articles, ArticleReport};
use crate::fetch::{FetchReport, Fetched, HttpFetcher, Validators};
use crate::import::{default_shape, ingest_records, record_or_log, ImportOptions, ImportReport};
use crate::sources::Source;

/// What one fetch of a source did.
#[derive(Debug)]
pub struct SourceRun {
    pub source: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The last HTTP status seen, when the source answered.
    pub status: Option<u16>,
    pub attempts: u32,
    pub bytes: usize,
    /// The whole fetch, retries included (not the ingest).
    pub fetch_duration: Duration,
    pub outcome: RunOutcome,
    /// The import of the body's records, when there was a new body.
    pub report: Option<ImportReport>,
    /// The feed's articles read before the import (a `rekt-rss` source with `articles`).
    pub articles: Option<ArticleReport>,
    /// Why the fetch failed; `None` exactly when it succeeded.
    pub error: Option<String>,
    /// The validators to send next time (the last success's when this one failed).
    pub validators: Validators,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// New records were read and ingested.
    Imported,
    /// `304 Not Modified`.
    NotModified,
    /// The same body as the last success's.
    Unchanged,
    Failed,
}

/// What a run needs besides the source: the stores, the client and the clock.
pub struct RunContext<'a> {
    pub incidents: &'a IncidentStore,
    pub sources: &'a SourceStore,
    pub retry: &'a RetryPolicy,
    pub fetcher: &'a HttpFetcher,
    pub clock: &'a Clock,
    /// The database's backend, which decides the import's batch shape.
    pub backend: BackendKind,
    /// How long the source's fetch log is kept (`server.source_fetch_retention`).
    pub fetch_log_keep: Duration,
}

/// Fetches `source` once, conditionally on `previous`, ingests what it brought and
/// records the fetch (for `slot`, when the scheduler runs it for one).
pub async fn run(
    context: &RunContext<'_>,
    source: &Source,
    previous: &Validators,
    slot: Option<DateTime<Utc>>,
) -> SourceRun {
    let started_at = context.clock.now_utc();
    let fetched = context
        .fetcher
        .fetch(&source.url, previous, &source.limits)
        .await;
    let mut run = SourceRun {
        source: source.name.clone(),
        started_at,
        finished_at: started_at,
        status: fetched.status,
        attempts: fetched.attempts,
        bytes: 0,
        fetch_duration: fetched.duration,
        outcome: RunOutcome::Failed,
        report: None,
        articles: None,
        error: None,
        validators: previous.clone(),
    };
    settle(context, source, fetched, &mut run).await;
    run.finished_at = context.clock.now_utc();
    record(context, &run, slot).await;
    match &run.error {
        None => {
            tracing::info!(source = %run.source, outcome = ?run.outcome, status = ?run.status, "source fetched")
        }
        Some(error) => {
            tracing::warn!(source = %run.source, status = ?run.status, %error, "source fetch failed")
        }
    }
    run
}

async fn settle(
    context: &RunContext<'_>,
    source: &Source,
    fetched: FetchReport,
    run: &mut SourceRun,
) {
    let (body, validators) = match fetched.result {
        Err(error) => {
            run.error = Some(error.to_string());
            return;
        }
        Ok(Fetched::NotModified { validators }) => {
            run.outcome = RunOutcome::NotModified;
            run.validators = validators;
            return;
        }
        Ok(Fetched::Unchanged { bytes, validators }) => {
            run.outcome = RunOutcome::Unchanged;
            run.bytes = bytes;
            run.validators = validators;
            return;
        }
        Ok(Fetched::Body { body, validators }) => (body, validators),
    };
    run.bytes = body.len();
    let mut records = match crate::parse_bytes(source.format, &body, Some(&source.name)) {
        Ok(records) => records,
        Err(error) => {
            run.error = Some(error.to_string());
            return;
        }
    };
    if records.is_empty() {
        run.error = Some(format!(
            "the source answered {} bytes of {} with no record in them",
            run.bytes, source.format
        ));
        return;
    }
    if source.articles > 0 {
        let articles = read_articles(context.fetcher, source, &mut records).await;
        for failure in &articles.failed {
            tracing::warn!(source = %source.name, %failure, "article not read");
        }
        run.articles = Some(articles);
    }
    let (batch_size, streams) = default_shape(context.backend);
    let options = ImportOptions {
        format: source.format,
        default_source: Some(&source.name),
        batch_size,
        streams,
        fetch_log_keep: context.fetch_log_keep,
    };
    let mut per_source = BTreeMap::new();
    match ingest_records(
        context.incidents,
        context.retry,
        &options,
        records,
        |_, _| {},
        &mut per_source,
    )
    .await
    {
        Ok(report) if per_source.is_empty() => {
            run.error = Some(match report.rejected.first() {
                Some(first) => format!(
                    "none of the {} records was valid (first: {first})",
                    report.records
                ),
                None => "no valid record".to_owned(),
            });
            run.report = Some(report);
        }
        Ok(report) => {
            run.outcome = RunOutcome::Imported;
            run.validators = validators;
            run.report = Some(report);
        }
        Err(error) => run.error = Some(error.to_string()),
    }
}

/// One row in the source's fetch log, with what the HTTP exchange and the ingest said.
/// A failure to record is logged: the run's own outcome is what its caller needs.
async fn record(context: &RunContext<'_>, run: &SourceRun, slot: Option<DateTime<Utc>>) {
    record_or_log(
        context.sources,
        &run.source,
        fetch_row(run, slot),
        context.fetch_log_keep,
    )
    .await;
}

fn fetch_row(
    run: &SourceRun,
    slot: Option<DateTime<Utc>>,
) -> Result<SourceFetch, kamiyo_domain::FieldError> {
    let records = run.report.as_ref().map_or(0, |r| r.records as u64);
    let (start, end) = (run.started_at, run.finished_at);
    let fetch = match (&run.error, run.outcome) {
        (Some(error), _) => SourceFetch::failed(&run.source, start, end, records, error)?,
        (None, RunOutcome::NotModified | RunOutcome::Unchanged) => {
            SourceFetch::not_modified(&run.source, start, end)?
        }
        (None, _) => SourceFetch::succeeded(&run.source, start, end, records)?,
    };
    let fetch = fetch.with_response(FetchResponse {
        status: run.status,
        bytes: Some(run.bytes as u64),
        duration_ms: Some(run.fetch_duration.as_millis() as u64),
        validators: if run.error.is_none() {
            run.validators.clone()
        } else {
            Validators::default()
        },
    })?;
    let fetch = match &run.report {
        Some(report) => fetch.with_counts(FetchCounts {
            inserted: report.inserted as u64,
            merged: report.merged as u64,
            updated: report.updated as u64,
            unchanged: report.unchanged as u64,
            rejected: report.rejected.len() as u64,
        })?,
        None => fetch,
    };
    Ok(match slot {
        Some(slot) => fetch.for_slot(slot),
        None => fetch,
    })
}
