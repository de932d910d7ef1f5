//! Importing a file: parse, validate each record into a claim, hand the claims to the
//! store in batches (dedup and merge happen there, each claim decided as if alone), and
//! report what happened to every line. A bad record is reported with its line and reason and never stops the
//! rest; the same file imported twice changes nothing the second time.

use std::path::Path;

use chrono::Utc;
use kamiyo_db::{DbError, RetryPolicy};
use kamiyo_domain::{IncidentDraft, IncidentInput, TxHashInput};
use kamiyo_store::{IncidentStore, IngestAction};
use serde::Serialize;

use crate::{parse_path, Format, IngestError, RawIncident, Rejection};

/// What one import did, line by line where something is worth saying.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    pub records: usize,
    pub inserted: usize,
    pub merged: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub rejected: Vec<Rejection>,
    /// Accepted records with something to note (e.g. a hash held by another incident).
    pub warnings: Vec<LineWarning>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineWarning {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    File(#[from] IngestError),
    /// The database failed past its retries on the batch starting at `line`; the lines
    /// before it are stored, and running the import again is safe (it is idempotent).
    #[error("line {line}: the database failed, import stopped (lines before it are stored; re-running is safe): {source}")]
    Database { line: usize, source: DbError },
}

impl From<RawIncident> for IncidentInput {
    fn from(raw: RawIncident) -> IncidentInput {
        IncidentInput {
            source: raw.source,
            source_url: raw.source_url,
            external_id: raw.external_id,
            protocol: raw.protocol,
            chains: raw.chains,
            date: raw.date,
            loss_usd: raw.loss_usd,
            recovered_usd: raw.recovered_usd,
            attack_type: None,
            attack_class: raw.attack_class,
            technique: raw.technique,
            tx_hashes: raw
                .tx_hashes
                .into_iter()
                .map(|tx| TxHashInput {
                    chain: tx.chain,
                    hash: tx.hash,
                })
                .collect(),
            status: raw.status,
            description: raw.description,
            flash_loan: raw.flash_loan,
            bridge: raw.bridge,
        }
    }
}

/// Claims sent to the store at once: large enough that a batch's fixed cost (a
/// transaction, a handful of bulk statements) is spread thin, small enough that a batch
/// refused by the database and replayed claim by claim stays short.
pub const DEFAULT_BATCH_SIZE: usize = 1_000;

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions<'a> {
    pub format: Format,
    /// Source name for records that do not name their own.
    pub default_source: Option<&'a str>,
    /// Claims per store batch (at least 1; see [`DEFAULT_BATCH_SIZE`]).
    pub batch_size: usize,
}

/// Imports `path` in batches of [`DEFAULT_BATCH_SIZE`]; see [`import`].
pub async fn import_file(
    store: &IncidentStore,
    retry: &RetryPolicy,
    format: Format,
    path: &Path,
    default_source: Option<&str>,
    progress: impl FnMut(usize, usize),
) -> Result<ImportReport, ImportError> {
    let options = ImportOptions {
        format,
        default_source,
        batch_size: DEFAULT_BATCH_SIZE,
    };
    import(store, retry, &options, path, progress).await
}

/// Imports `path`; `progress(done, total)` is called after each batch. Each claim is
/// decided as if ingested alone, in file order (the store's batches guarantee it).
pub async fn import(
    store: &IncidentStore,
    retry: &RetryPolicy,
    options: &ImportOptions<'_>,
    path: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<ImportReport, ImportError> {
    let records = parse_path(options.format, path, options.default_source)?;
    let total = records.len();
    let mut report = ImportReport {
        records: total,
        ..ImportReport::default()
    };
    let now = Utc::now();
    // A source can list two different records under one claim key (DeFiLlama lists two
    // Mirror hacks under one id and day); the second becomes `id#2` (or `#2` without an
    // id), so that each keeps its own claim and a re-import finds each again.
    let mut seen_keys: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let batch_size = options.batch_size.max(1);
    let mut batch: Vec<(usize, IncidentDraft)> = Vec::with_capacity(batch_size);
    let mut done = 0;
    for record in records {
        done += 1;
        match record {
            Err(rejection) => report.rejected.push(rejection),
            Ok(raw) => {
                let line = raw.line;
                match IncidentDraft::from_input(IncidentInput::from(raw), now) {
                    Err(refusal) => report.rejected.push(Rejection {
                        line,
                        field: Some(refusal.field.clone()),
                        message: refusal.to_string(),
                    }),
                    Ok(mut draft) => {
                        let key = format!("{}|{}", draft.source.name, draft.claim_key());
                        let occurrence = seen_keys.entry(key).or_insert(0);
                        *occurrence += 1;
                        if *occurrence > 1 {
                            let id = draft.source.external_id.take().unwrap_or_default();
                            draft.source.external_id = Some(format!("{id}#{occurrence}"));
                        }
                        batch.push((line, draft));
                    }
                }
            }
        }
        if batch.len() >= batch_size {
            store_batch(store, retry, &mut batch, &mut report).await?;
            progress(done, total);
        }
    }
    store_batch(store, retry, &mut batch, &mut report).await?;
    progress(total, total);
    report.rejected.sort_by_key(|r| r.line);
    Ok(report)
}

async fn store_batch(
    store: &IncidentStore,
    retry: &RetryPolicy,
    batch: &mut Vec<(usize, IncidentDraft)>,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let Some(&(first_line, _)) = batch.first() else {
        return Ok(());
    };
    let drafts: Vec<IncidentDraft> = batch.iter().map(|(_, draft)| draft.clone()).collect();
    // The whole batch failed (the database is down or busy past the retries): stop; the
    // rest would fail the same way, and nothing of this batch is stored.
    let outcomes = retry
        .run("import", || store.ingest_batch(&drafts))
        .await
        .map_err(|source| ImportError::Database {
            line: first_line,
            source,
        })?;
    for ((line, _), outcome) in batch.drain(..).zip(outcomes) {
        match outcome {
            // The database refused this record alone (its claim was rolled back):
            // report it and go on.
            Err(refusal) => report.rejected.push(Rejection {
                line,
                field: None,
                message: format!("the database refused the record: {refusal}"),
            }),
            Ok(outcome) => {
                match outcome.action {
                    IngestAction::Inserted => report.inserted += 1,
                    IngestAction::Merged => report.merged += 1,
                    IngestAction::Updated => report.updated += 1,
                    IngestAction::Unchanged => report.unchanged += 1,
                }
                report.warnings.extend(
                    outcome
                        .warnings
                        .into_iter()
                        .map(|message| LineWarning { line, message }),
                );
            }
        }
    }
    Ok(())
}
