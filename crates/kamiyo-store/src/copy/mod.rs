//! `kamiyo db copy`: moves a deployment from its SQLite file onto PostgreSQL with every id
//! and every reference kept (the system Kamiyo replaces renumbered incidents and left
//! alert references pointing at the wrong ones). See docs/DB_COPY.md.
//!
//! - `tables`: what is copied, from both catalogs, parents before children.
//! - `read`: the source, read-only, one snapshot, streamed in batches.
//! - `value`: SQLite storage classes to PostgreSQL types, exactly or not at all.
//! - `write`: the target session, locks, `--force`, binary COPY, sequences.
//! - `verify`: counts, orphans, sampled rows, before the commit.
//! - `report`: what happened, for people and for scripts.
//! - `fields`: the copy's own reads (catalogs, counts, bookkeeping) by column name.
//!
//! Everything on the target happens in one transaction, so a copy is all or nothing: any
//! error, a failed verification or a dropped connection leaves the target as it was.

mod error;
mod fields;
mod read;
mod report;
mod tables;
mod value;
mod verify;
mod write;

use std::time::{Duration, Instant};

use kamiyo_db::{BackendKind, Database, DbConfig, DbError};
use tokio::sync::mpsc;
use tokio_postgres::Transaction;

pub use error::{CopyError, Side, Unreadable};
pub use report::{CopyReport, ForeignKeyReport, Mismatch, SequenceReport, TableReport};

use crate::MIGRATIONS;
use error::TargetError;
use fields::NamedRow;
use read::{Source, SourceInfo};
use tables::Plan;

/// Rows per message from the reader to the writer. Larger batches cost memory, smaller
/// ones channel overhead; COPY streams either way.
pub const DEFAULT_BATCH_ROWS: usize = 1_000;
/// Batches the reader may be ahead of the writer: bounds memory at about
/// `batch_rows × (read_ahead_batches + 2)` rows whatever the database's size.
pub const DEFAULT_READ_AHEAD_BATCHES: usize = 4;
/// Rows per table compared field by field after the copy.
pub const DEFAULT_SAMPLE_ROWS: usize = 100;
/// `statement_timeout` of the copy's session: the COPY of the largest table must fit.
/// Too low fails big copies (harmlessly: they roll back); too high lets a stuck copy
/// hold its locks that long.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// `lock_timeout`: how long the copy waits for another session's locks on the target's
/// tables (a service already running on it) before giving up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the source may be locked by a writer before reading it fails.
pub const DEFAULT_SOURCE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The name the copy's session goes by in database errors.
pub(crate) const TARGET_POOL: &str = "copy target";

/// Every limit of a copy, each finite by default.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Empty the target's tables (in the copy's transaction) when they hold rows.
    pub force: bool,
    pub batch_rows: usize,
    pub read_ahead_batches: usize,
    /// 0 turns the field-by-field comparison off (counts and orphans are still checked).
    pub sample_rows: usize,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub source_busy_timeout: Duration,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            force: false,
            batch_rows: DEFAULT_BATCH_ROWS,
            read_ahead_batches: DEFAULT_READ_AHEAD_BATCHES,
            sample_rows: DEFAULT_SAMPLE_ROWS,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            source_busy_timeout: DEFAULT_SOURCE_BUSY_TIMEOUT,
        }
    }
}

impl CopyOptions {
    fn validate(&self) -> Result<(), CopyError> {
        let positive = |option: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(CopyError::Option {
                    option,
                    message: "must be greater than zero (zero would mean no limit or no progress)"
                        .into(),
                })
            }
        };
        positive("batch_rows", self.batch_rows > 0)?;
        positive("read_ahead_batches", self.read_ahead_batches > 0)?;
        positive("statement_timeout", !self.statement_timeout.is_zero())?;
        positive("lock_timeout", !self.lock_timeout.is_zero())?;
        positive("source_busy_timeout", !self.source_busy_timeout.is_zero())
    }
}

/// Told what the copy is doing, for a progress bar. Every method defaults to nothing.
pub trait CopyProgress: Send + Sync {
    fn stage(&self, _stage: &str) {}
    fn table_started(&self, _table: &str, _rows: u64) {}
    fn rows_copied(&self, _rows: u64) {}
    fn table_finished(&self, _table: &str) {}
}

/// No progress reporting.
pub struct NoProgress;

impl CopyProgress for NoProgress {}

/// Copies a Kamiyo SQLite database (`source`: a path or `sqlite://` URL) into the
/// PostgreSQL database of `target`, keeping every id, in one transaction, verified
/// before the commit. `target`'s other settings (connect timeout, keepalives,
/// application name, migration timeouts) apply to the target's sessions.
pub async fn sqlite_to_postgres(
    source: &str,
    target: &DbConfig,
    options: &CopyOptions,
    progress: &dyn CopyProgress,
) -> Result<CopyReport, CopyError> {
    let started = Instant::now();
    options.validate()?;
    let path = read::resolve(source)?;
    if target.url.backend().ok() != Some(BackendKind::Postgres) {
        return Err(CopyError::TargetUrl {
            given: target.url.redacted(),
        });
    }
    let target_name = target.url.redacted();
    let unreachable = |error: TargetError| {
        error.into_copy(|source| CopyError::Target {
            target: target_name.clone(),
            source,
        })
    };

    // The source is checked completely before the target is touched at all: a wrong
    // file must not leave a migrated but empty target behind.
    progress.stage("reading the source");
    let busy = options.source_busy_timeout;
    let (source, info) =
        tokio::task::spawn_blocking(move || read::open(path, busy, MIGRATIONS.sqlite))
            .await
            .map_err(|e| CopyError::Reader(format!("the source check did not complete: {e}")))??;

    progress.stage("checking the target");
    let mut client = write::connect(target, options).await?;
    // Refused before migrating, so that a refused copy changes nothing; checked again
    // under lock inside the transaction, where it counts.
    if !options.force {
        let existing = tables::target_catalog(&client).await.map_err(unreachable)?;
        let holding = write::tables_with_rows(&client, existing.tables.keys().map(String::as_str))
            .await
            .map_err(unreachable)?;
        if !holding.is_empty() {
            return Err(CopyError::TargetNotEmpty {
                target: target_name,
                tables: holding,
            });
        }
    }

    // Migrations run in their own transactions under the migration lock (the runner's
    // rules), so they are not part of the copy's transaction: a copy that fails after
    // this point leaves the target migrated, which `kamiyo migrate` would do anyway.
    progress.stage("migrating the target");
    let database = Database::open(target.clone())
        .await
        .map_err(|e| unreachable(e.into()))?;
    let migrated = database.migrate(&MIGRATIONS).await;
    database.close();
    migrated.map_err(|e| unreachable(e.into()))?;

    tracing::info!(source = %source.path.display(), target = %target_name, "copy started");
    let tx = client
        .transaction()
        .await
        .map_err(|e| in_transaction("starting the transaction")(db_error(e)))?;
    let outcome = copy_in(&tx, source, &info, &target_name, options, progress).await;
    match outcome {
        Ok(mut report) if report.verified => {
            report.elapsed_ms = elapsed_ms(started);
            tx.commit()
                .await
                .map_err(|e| in_transaction("committing")(db_error(e)))?;
            tracing::info!(target = %target_name, elapsed_ms = report.elapsed_ms, "copy committed");
            Ok(report)
        }
        Ok(mut report) => {
            report.elapsed_ms = elapsed_ms(started);
            rollback(tx).await;
            Err(CopyError::Verification {
                report: Box::new(report),
            })
        }
        Err(error) => {
            rollback(tx).await;
            Err(error)
        }
    }
}

/// Explicit, so the target is back to its old state when the error is returned; if the
/// connection is gone the server has rolled back already.
async fn rollback(tx: Transaction<'_>) {
    if let Err(error) = tx.rollback().await {
        tracing::warn!(%error, "rollback of the copy failed; the server discards the transaction with the session");
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn db_error(e: tokio_postgres::Error) -> DbError {
    DbError::from_postgres(TARGET_POOL, e)
}

/// Maps a failure inside the transaction: a database error says what the copy was
/// doing, an unreadable value names itself.
fn in_transaction<E: Into<TargetError>>(doing: &'static str) -> impl Fn(E) -> CopyError {
    move |error| {
        error
            .into()
            .into_copy(|source| CopyError::Transaction { doing, source })
    }
}

/// Everything inside the transaction: plan, lock, empty, copy, sequences, verify.
async fn copy_in(
    tx: &Transaction<'_>,
    source: Source,
    info: &SourceInfo,
    target_name: &str,
    options: &CopyOptions,
    progress: &dyn CopyProgress,
) -> Result<CopyReport, CopyError> {
    let catalog = tables::target_catalog(tx)
        .await
        .map_err(in_transaction("reading the target's catalog"))?;
    let plan = tables::plan(&info.tables, &catalog)?;
    write::lock(tx, &plan)
        .await
        .map_err(in_transaction("locking the target's tables"))?;
    let migrations = kamiyo_db::migrate::MIGRATIONS_TABLE;
    let reading_version = in_transaction::<TargetError>("reading the target's schema version");
    let row = tx
        .query_one(
            &format!("SELECT max(version) AS version FROM {migrations}"),
            &[],
        )
        .await
        .map_err(|e| reading_version(db_error(e).into()))?;
    let target_version = NamedRow::of(Side::Target, migrations, &row)
        .opt_int("version")
        .map_err(|e| reading_version(e.into()))?;
    if target_version != Some(info.schema_version) {
        return Err(CopyError::SchemaMismatch {
            differences: vec![format!(
                "the target is at schema version {target_version:?} after migrating, the source at {}",
                info.schema_version
            )],
        });
    }
    let holding = write::tables_with_rows(tx, plan.tables.iter().map(|t| t.name.as_str()))
        .await
        .map_err(in_transaction("checking that the target is empty"))?;
    let replaced_existing_data = !holding.is_empty();
    if replaced_existing_data {
        if !options.force {
            return Err(CopyError::TargetNotEmpty {
                target: target_name.to_owned(),
                tables: holding,
            });
        }
        progress.stage("emptying the target");
        write::truncate(tx, &plan)
            .await
            .map_err(in_transaction("emptying the target (--force)"))?;
    }

    progress.stage("copying");
    let source_name = source.path.display().to_string();
    let (copied, samples) = stream(tx, source, &plan, info, options, progress).await?;
    let sequences = write::reset_sequences(tx, &plan, &info.sequences)
        .await
        .map_err(in_transaction("resetting the sequences"))?;

    progress.stage("verifying");
    let mut table_reports = Vec::with_capacity(plan.tables.len());
    for ((table, copied_rows), sampled) in plan.tables.iter().zip(copied).zip(&samples) {
        let verifying = in_transaction("verifying");
        let target_rows = verify::count(tx, table).await.map_err(&verifying)?;
        let mismatches = verify::compare_sample(tx, table, sampled)
            .await
            .map_err(&verifying)?;
        table_reports.push(TableReport {
            table: table.name.clone(),
            source_rows: info.counts.get(&table.name).copied().unwrap_or_default(),
            copied_rows,
            target_rows,
            sampled_rows: sampled.len() as u64,
            mismatches,
        });
    }
    let mut foreign_keys = Vec::with_capacity(plan.foreign_keys.len());
    for fk in &plan.foreign_keys {
        foreign_keys.push(
            verify::orphans(tx, fk)
                .await
                .map_err(in_transaction("counting orphaned references"))?,
        );
    }
    let mut report = CopyReport {
        source: source_name,
        target: target_name.to_owned(),
        schema_version: info.schema_version,
        replaced_existing_data,
        tables: table_reports,
        foreign_keys,
        sequences,
        verified: false,
        elapsed_ms: 0,
    };
    report.seal();
    Ok(report)
}

/// Runs the reader on a blocking thread and the writer here, table by table. Returns
/// the rows each table accepted and the sampled source rows.
async fn stream(
    tx: &Transaction<'_>,
    source: Source,
    plan: &Plan,
    info: &SourceInfo,
    options: &CopyOptions,
    progress: &dyn CopyProgress,
) -> Result<(Vec<u64>, read::Samples), CopyError> {
    let (sender, mut receiver) = mpsc::channel(options.read_ahead_batches);
    let reader_plan = plan.clone();
    let counts = info.counts.clone();
    let (batch_rows, sample_rows) = (options.batch_rows, options.sample_rows);
    let reader = tokio::task::spawn_blocking(move || {
        source.stream(&reader_plan, &counts, batch_rows, sample_rows, &sender)
    });
    let mut copied = Vec::with_capacity(plan.tables.len());
    let mut failure = None;
    for (index, table) in plan.tables.iter().enumerate() {
        let rows = info.counts.get(&table.name).copied().unwrap_or_default();
        progress.table_started(&table.name, rows);
        match write::copy_table(tx, index, table, &mut receiver, progress).await {
            Ok(n) => {
                copied.push(n);
                progress.table_finished(&table.name);
            }
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    // A reader still sending stops at its next batch once nobody receives.
    drop(receiver);
    let read = reader
        .await
        .map_err(|e| CopyError::Reader(format!("the reader did not complete: {e}")))?;
    match (failure, read) {
        // The channel closed early because the reader failed: its error says why.
        (Some(CopyError::Reader(_)), Err(reader_error)) => Err(reader_error),
        (Some(error), _) => Err(error),
        (None, read) => Ok((copied, read?)),
    }
}
