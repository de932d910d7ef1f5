//! Importing a file: parse, validate each record into a claim, hand the claims to the
//! store in batches (dedup and merge happen there, each claim decided as if alone), and
//! report what happened to every line. A bad record is reported with its line and reason
//! and never stops the rest; the same file imported twice changes no incident or claim the
//! second time (it does record one more fetch of its sources).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use kamiyo_db::RetryPolicy;
use kamiyo_domain::{IncidentDraft, IncidentInput, TxHashInput};
use kamiyo_store::{
    IncidentStore, IngestAction, IngestOutcome, SourceFetch, SourceStore, StoreError,
};
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
    /// The database failed past its retries on the batch starting at `line`. Batches
    /// that completed are stored (with parallel streams, some after `line` too), none
    /// is half-written, and running the import again is safe (it is idempotent).
    #[error("line {line}: the database failed, import stopped (completed batches are stored; re-running is safe): {source}")]
    Database { line: usize, source: StoreError },
    /// An import stream ended abnormally (a bug); completed batches are stored.
    #[error("an import stream failed: {0}")]
    Stream(String),
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

/// Independent streams of batches written at once, each on its own connection: the
/// database's work for one batch is single-threaded, so a second stream puts the
/// server's second core to work.
pub const DEFAULT_STREAMS: usize = 2;

/// Claims per transaction on SQLite, unless asked. SQLite has one writer and the import
/// is bound by that writer's CPU (BENCHMARKS.md, section 6): a larger batch spreads each
/// commit's WAL writes over ten times the claims (10,000: about 1 s of holding the write
/// lock, well inside the default busy timeout of other writers; larger batches measured
/// slower).
pub const DEFAULT_SQLITE_BATCH_SIZE: usize = 10_000;

/// Streams on SQLite, unless asked: one. Its single writer takes the streams in turn,
/// so a second stream only adds waiting for the lock.
pub const DEFAULT_SQLITE_STREAMS: usize = 1;

/// `(batch size, streams)` for a backend when the caller asks for neither.
pub fn default_shape(backend: kamiyo_db::BackendKind) -> (usize, usize) {
    match backend {
        kamiyo_db::BackendKind::Postgres => (DEFAULT_BATCH_SIZE, DEFAULT_STREAMS),
        kamiyo_db::BackendKind::Sqlite => (DEFAULT_SQLITE_BATCH_SIZE, DEFAULT_SQLITE_STREAMS),
    }
}

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions<'a> {
    pub format: Format,
    /// Source name for records that do not name their own.
    pub default_source: Option<&'a str>,
    /// Claims per store batch (at least 1; see [`DEFAULT_BATCH_SIZE`]).
    pub batch_size: usize,
    /// Concurrent streams (at least 1; see [`DEFAULT_STREAMS`] and [`import`]).
    pub streams: usize,
    /// How long each source's fetch outcomes are kept: the import records one per source
    /// (see [`import`]) and deletes that source's older ones (`server.source_fetch_retention`).
    pub fetch_log_keep: std::time::Duration,
}

/// Imports `path` with the default batch size and streams; see [`import`].
pub async fn import_file(
    store: &IncidentStore,
    sources: &SourceStore,
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
        streams: DEFAULT_STREAMS,
        fetch_log_keep: kamiyo_store::DEFAULT_SOURCE_FETCH_RETENTION,
    };
    import(store, sources, retry, &options, path, progress).await
}

/// Imports `path`; `progress(done, total)` is called as batches complete.
///
/// Every claim is decided as if ingested alone, in file order, with one exception made
/// to write in parallel: the claims are split into independent groups (claims of one
/// protocol, and claims of protocols that share a transaction hash in this file, always
/// share a group), the groups are dealt to `streams` streams, and each stream ingests its
/// claims in file order. Claims in different groups cannot affect each other's
/// decisions, so the result is the same as claim by claim.
///
/// An import of a source's records is a fetch of that source: the import records in
/// `sources` one fetch outcome per source its valid records name (successful, or failed with the
/// error that stopped the import), which `GET /api/sources` rates. When no valid record
/// names a source, the fetch is `default_source`'s (when there is one): failed when the
/// file cannot be read or every record in it was rejected, successful with no records
/// when it is empty.
pub async fn import(
    store: &IncidentStore,
    sources: &SourceStore,
    retry: &RetryPolicy,
    options: &ImportOptions<'_>,
    path: &Path,
    progress: impl FnMut(usize, usize),
) -> Result<ImportReport, ImportError> {
    let started_at = Utc::now();
    let mut per_source: BTreeMap<String, u64> = BTreeMap::new();
    let result = import_records(store, retry, options, path, progress, &mut per_source).await;
    let mut error = result.as_ref().err().map(ToString::to_string);
    // No valid record named a source: the fetch is `default_source`'s, when there is one.
    // A file whose every record was rejected is a failed fetch (its format changed, say),
    // an empty one a fetch that brought nothing.
    if let (true, Some(source)) = (per_source.is_empty(), options.default_source) {
        per_source.insert(source.to_owned(), 0);
        if let Ok(report) = &result {
            if let Some(first) = report.rejected.first() {
                error = Some(format!(
                    "none of the {} records was valid (first: {first})",
                    report.records
                ));
            }
        }
    }
    record_fetches(
        sources,
        &per_source,
        started_at,
        error.as_deref(),
        options.fetch_log_keep,
    )
    .await;
    result
}

/// Records one fetch outcome per source. A failure to record is logged, not returned:
/// the import's own result is what the caller needs.
async fn record_fetches(
    store: &SourceStore,
    per_source: &BTreeMap<String, u64>,
    started_at: DateTime<Utc>,
    error: Option<&str>,
    keep: std::time::Duration,
) {
    let finished_at = Utc::now();
    for (source, &records) in per_source {
        let fetch = match error {
            None => SourceFetch::succeeded(source, started_at, finished_at, records),
            Some(error) => SourceFetch::failed(source, started_at, finished_at, records, error),
        };
        record_or_log(store, source, fetch, keep).await;
    }
}

/// Records one fetch, or logs why it could not: the import's or the fetch's own outcome
/// is what its caller needs, not the log's.
pub(crate) async fn record_or_log(
    store: &SourceStore,
    source: &str,
    fetch: Result<SourceFetch, kamiyo_domain::FieldError>,
    keep: std::time::Duration,
) {
    let recorded = match fetch {
        Ok(fetch) => store
            .record_fetch(&fetch, keep)
            .await
            .map_err(|e| e.to_string()),
        Err(refusal) => Err(refusal.to_string()),
    };
    if let Err(error) = recorded {
        tracing::warn!(%source, %error, "the fetch outcome was not recorded");
    }
}

async fn import_records(
    store: &IncidentStore,
    retry: &RetryPolicy,
    options: &ImportOptions<'_>,
    path: &Path,
    progress: impl FnMut(usize, usize),
    per_source: &mut BTreeMap<String, u64>,
) -> Result<ImportReport, ImportError> {
    let records = parse_path(options.format, path, options.default_source)?;
    ingest_records(store, retry, options, records, progress, per_source).await
}

/// Validates, deduplicates and stores parsed records, as [`import`] does for a file's
/// (a fetched source's body goes the same way: `crate::job`). `per_source` counts the
/// valid records by the source they name.
pub(crate) async fn ingest_records(
    store: &IncidentStore,
    retry: &RetryPolicy,
    options: &ImportOptions<'_>,
    records: Vec<Result<RawIncident, Rejection>>,
    mut progress: impl FnMut(usize, usize),
    per_source: &mut BTreeMap<String, u64>,
) -> Result<ImportReport, ImportError> {
    let total = records.len();
    let mut report = ImportReport {
        records: total,
        ..ImportReport::default()
    };
    let accepted = claims_of(records, Utc::now(), &mut report, per_source);
    // The input is whole: a stored claim of its sources that it no longer lists may be a
    // record it now gives corrected (`IncidentStore::ingest_listed`).
    let listed: std::sync::Arc<kamiyo_store::incidents::Listed> = std::sync::Arc::new(
        accepted
            .iter()
            .map(|(_, draft)| (draft.source.name.clone(), draft.claim_key()))
            .collect(),
    );
    let settled = total - accepted.len();
    progress(settled, total);

    let batch_size = options.batch_size.max(1);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut streams = tokio::task::JoinSet::new();
    // Streams are split by lock key: with the operators' aliases, as the batches lock.
    if let Err(error) = store.load_aliases().await {
        tracing::warn!(%error, "cannot read the operators' protocol aliases; splitting streams by the shipped table");
    }
    for claims in partition(store, accepted, options.streams.max(1)) {
        let store = store.clone();
        let retry = *retry;
        let done_tx = done_tx.clone();
        let listed = std::sync::Arc::clone(&listed);
        streams.spawn(async move {
            run_stream(&store, &retry, claims, batch_size, &listed, &done_tx).await
        });
    }
    drop(done_tx);
    let mut done = settled;
    while let Some(count) = done_rx.recv().await {
        done += count;
        progress(done, total);
    }
    let mut outcomes = Vec::new();
    let mut failure: Option<ImportError> = None;
    while let Some(joined) = streams.join_next().await {
        match joined {
            Ok(Ok(stream)) => outcomes.extend(stream),
            Ok(Err(error)) => {
                // The earliest line wins, so the message points at the first problem.
                let earlier = match (&failure, &error) {
                    (
                        Some(ImportError::Database { line: a, .. }),
                        ImportError::Database { line: b, .. },
                    ) => b < a,
                    (None, _) => true,
                    _ => false,
                };
                if earlier {
                    failure = Some(error);
                }
            }
            Err(panic) => {
                failure = Some(ImportError::Stream(panic.to_string()));
            }
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    outcomes.sort_by_key(|(line, _)| *line);
    for (line, outcome) in outcomes {
        tally(&mut report, line, outcome);
    }
    report.rejected.sort_by_key(|r| r.line);
    report.warnings.sort_by_key(|w| w.line);
    Ok(report)
}

/// Validates parsed records as claims, as every import and fetch does: a record that is
/// not a valid claim goes to `report.rejected`, what was dropped to keep one to
/// `report.warnings`, and `per_source` counts the valid ones by the source they name.
/// The claims come back with their lines, in file order.
pub fn claims_of(
    records: Vec<Result<RawIncident, Rejection>>,
    now: chrono::DateTime<Utc>,
    report: &mut ImportReport,
    per_source: &mut BTreeMap<String, u64>,
) -> Vec<(usize, IncidentDraft)> {
    // A source can list two different records under one claim key (DeFiLlama lists two
    // Mirror hacks under one id and day); the second becomes `id#2` (or `#2` without an
    // id), so that each keeps its own claim and a re-import finds each again.
    let mut seen_keys: HashMap<String, usize> = HashMap::new();
    let mut accepted: Vec<(usize, IncidentDraft)> = Vec::with_capacity(records.len());
    for record in records {
        match record {
            Err(rejection) => report.rejected.push(rejection),
            Ok(raw) => {
                let line = raw.line;
                let id_names_incident = raw.id_names_incident;
                match IncidentDraft::from_input_with_warnings(IncidentInput::from(raw), now) {
                    Err(refusal) => report.rejected.push(Rejection {
                        line,
                        field: Some(refusal.field.clone()),
                        message: refusal.to_string(),
                    }),
                    Ok((mut draft, dropped)) => {
                        report
                            .warnings
                            .extend(dropped.into_iter().map(|refusal| LineWarning {
                                line,
                                message: format!("{refusal}; dropped from this claim"),
                            }));
                        draft.source.id_names_incident = id_names_incident;
                        *per_source.entry(draft.source.name.clone()).or_insert(0) += 1;
                        let key = format!("{}|{}", draft.source.name, draft.claim_key());
                        let occurrence = seen_keys.entry(key).or_insert(0);
                        *occurrence += 1;
                        if *occurrence > 1 {
                            let id = draft.source.external_id.take().unwrap_or_default();
                            draft.source.external_id = Some(format!("{id}#{occurrence}"));
                        }
                        accepted.push((line, draft));
                    }
                }
            }
        }
    }
    accepted
}

/// Splits claims into at most `streams` lists, each in file order, such that claims of
/// one lock key (`IncidentStore::lock_key`), claims citing one page, claims sharing a
/// transaction hash (only those can decide each other), and claims whose lock keys
/// share a lock bucket are in the same list.
fn partition(
    store: &IncidentStore,
    claims: Vec<(usize, IncidentDraft)>,
    streams: usize,
) -> Vec<Vec<(usize, IncidentDraft)>> {
    // Union-find over lock keys and lock buckets, joined by the hashes they share.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut parent: Vec<usize> = Vec::new();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut key_of = Vec::with_capacity(claims.len());
    let mut hash_owner: HashMap<(String, String), usize> = HashMap::new();
    let mut node = |name: String, parent: &mut Vec<usize>| {
        let next = index.len();
        let id = *index.entry(name).or_insert(next);
        if id == parent.len() {
            parent.push(id);
        }
        id
    };
    for (_, draft) in &claims {
        let key = node(format!("p:{}", draft.protocol.key()), &mut parent);
        // Claims citing one page can decide each other whatever their names.
        if let Some(url) = draft
            .source
            .url
            .as_deref()
            .and_then(kamiyo_domain::identity::url_key)
        {
            let page = node(format!("u:{url}"), &mut parent);
            let (a, b) = (root(&mut parent, key), root(&mut parent, page));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
        let lock = store.lock_key(draft.protocol.key());
        // Lock keys that share a lock bucket share a stream too: two streams would
        // otherwise take the same bucket locks and write one after the other.
        let bucket = kamiyo_store::incidents::lock_bucket(&lock);
        for other in [
            node(format!("k:{lock}"), &mut parent),
            node(format!("b:{bucket}"), &mut parent),
        ] {
            let (a, b) = (root(&mut parent, key), root(&mut parent, other));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
        key_of.push(key);
        for hash in &draft.tx_hashes {
            let other = *hash_owner
                .entry((hash.chain.slug().to_owned(), hash.hash.clone()))
                .or_insert(key);
            let (a, b) = (root(&mut parent, key), root(&mut parent, other));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    // Deal whole groups, largest first, to the least loaded stream.
    let mut group_sizes: HashMap<usize, usize> = HashMap::new();
    let roots: Vec<usize> = key_of.iter().map(|&k| root(&mut parent, k)).collect();
    for &r in &roots {
        *group_sizes.entry(r).or_insert(0) += 1;
    }
    let mut groups: Vec<(usize, usize)> = group_sizes.into_iter().collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut load = vec![0usize; streams];
    let mut stream_of: HashMap<usize, usize> = HashMap::new();
    for (group, size) in groups {
        let (lightest, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .unwrap_or((0, &0));
        if let Some(slot) = load.get_mut(lightest) {
            *slot += size;
        }
        stream_of.insert(group, lightest);
    }
    let mut out: Vec<Vec<(usize, IncidentDraft)>> = (0..streams).map(|_| Vec::new()).collect();
    for (claim, group) in claims.into_iter().zip(roots) {
        let stream = stream_of.get(&group).copied().unwrap_or(0);
        if let Some(list) = out.get_mut(stream) {
            list.push(claim);
        }
    }
    out.retain(|list| !list.is_empty());
    out
}

type LineOutcome = (usize, Result<IngestOutcome, StoreError>);

async fn run_stream(
    store: &IncidentStore,
    retry: &RetryPolicy,
    claims: Vec<(usize, IncidentDraft)>,
    batch_size: usize,
    listed: &std::sync::Arc<kamiyo_store::incidents::Listed>,
    done: &tokio::sync::mpsc::UnboundedSender<usize>,
) -> Result<Vec<LineOutcome>, ImportError> {
    let mut outcomes = Vec::with_capacity(claims.len());
    for batch in claims.chunks(batch_size) {
        let Some(&(first_line, _)) = batch.first() else {
            continue;
        };
        let drafts: Vec<IncidentDraft> = batch.iter().map(|(_, draft)| draft.clone()).collect();
        // The whole batch failed (the database is down or busy past the retries):
        // stop; the rest would fail the same way, and nothing of this batch is stored.
        let results = retry
            .run("import", || store.ingest_listed(&drafts, listed))
            .await
            .map_err(|source| ImportError::Database {
                line: first_line,
                source,
            })?;
        outcomes.extend(batch.iter().map(|(line, _)| *line).zip(results));
        // The receiver only goes away when the import itself was dropped.
        let _ = done.send(batch.len());
    }
    Ok(outcomes)
}

fn tally(report: &mut ImportReport, line: usize, outcome: Result<IngestOutcome, StoreError>) {
    match outcome {
        // The database refused this record alone (its claim was rolled back): report
        // it and go on.
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
