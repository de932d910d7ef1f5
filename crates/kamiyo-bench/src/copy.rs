//! `kamiyo-bench copy`: how long `kamiyo db copy` (`kamiyo_store::copy::sqlite_to_postgres`)
//! takes. A SQLite source of N synthetic incidents is built once in a temporary directory,
//! then copied R times, each time into an empty target: a database created for the run
//! and dropped after it (`--admin-url`, the default), so that each run also creates the
//! schema as a first copy does; or a given empty database, migrated once before the
//! first run and emptied again between runs (`--database-url`), so that each run finds
//! the schema in place. Only the library call is timed; creating, migrating, emptying
//! and dropping targets is not. Each run's stages say where its time went.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kamiyo_db::url::redact;
use kamiyo_db::{BackendKind, Database, DatabaseUrl, DbConfig};
use kamiyo_store::copy::{self, CopyError, CopyOptions, CopyProgress, CopyReport};
use kamiyo_store::MIGRATIONS;
use serde::Serialize;

use crate::stats::median_f64;

/// Prefix of the databases `--admin-url` creates; a run interrupted before its clean-up
/// leaves one behind under this name.
pub const SCRATCH_PREFIX: &str = "kamiyo_bench_copy_";
/// Connecting to the server for creating, emptying and dropping targets.
const ADMIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where each run copies to.
pub enum Target {
    /// A database created on this server before each run and dropped after it.
    Scratch { admin_url: String },
    /// An existing database that must be empty at the start; migrated before the first
    /// run, emptied between runs, and left holding the last run's copy.
    Existing { url: String },
}

pub struct Options {
    pub incidents: u32,
    pub repeat: usize,
    pub target: Target,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub incidents: u32,
    pub repeat: usize,
    /// `scratch` or `existing`.
    pub target_mode: &'static str,
    /// The server (`scratch`) or database (`existing`), password redacted.
    pub target: String,
    /// Rows of every table of the source (incidents with their chains, hashes and
    /// claims, and one user).
    pub source_rows: u64,
    pub source_bytes: u64,
    pub source_build_seconds: f64,
    pub runs: Vec<Run>,
    pub median_seconds: f64,
    pub median_rows_per_second: f64,
    pub median_incidents_per_second: f64,
    pub all_verified: bool,
}

#[derive(Debug, Serialize)]
pub struct Run {
    pub run: usize,
    /// The whole `sqlite_to_postgres` call: source checks, target checks and
    /// migrations, the copy, verification and the commit.
    pub seconds: f64,
    pub rows_copied: u64,
    pub incidents_copied: u64,
    pub rows_per_second: f64,
    pub incidents_per_second: f64,
    pub verified: bool,
    /// The copy's stages as it announces them, each until the next one starts; the
    /// last one runs until the commit returns.
    pub stages: Vec<Stage>,
    /// The database created for this run (`scratch` only); it is dropped afterwards.
    pub scratch_database: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Stage {
    pub stage: String,
    pub seconds: f64,
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    anyhow::ensure!(options.incidents > 0, "--incidents must be at least 1");
    anyhow::ensure!(options.repeat > 0, "--repeat must be at least 1");
    let (target_mode, server_url) = match &options.target {
        Target::Scratch { admin_url } => ("scratch", admin_url),
        Target::Existing { url } => ("existing", url),
    };
    let target_name = redact(server_url);
    if DatabaseUrl::new(server_url.as_str()).backend().ok() != Some(BackendKind::Postgres) {
        bail!("kamiyo-bench copy needs a postgres:// target, not {target_name}");
    }

    if let Target::Existing { url } = &options.target {
        prepare_existing(url, &target_name)
            .await
            .with_context(|| format!("preparing {target_name}"))?;
    }

    let dir = tempfile::tempdir().context("creating a temporary directory for the source")?;
    let source = dir.path().join("source.db");
    let build_started = Instant::now();
    build_source(&source, options.incidents)
        .await
        .with_context(|| format!("building the SQLite source {}", source.display()))?;
    let source_build_seconds = build_started.elapsed().as_secs_f64();
    let source_bytes = std::fs::metadata(&source)
        .with_context(|| format!("reading the size of {}", source.display()))?
        .len();
    let source_url = format!("sqlite://{}", source.display());

    let mut runs = Vec::with_capacity(options.repeat);
    let mut source_rows = 0;
    for index in 1..=options.repeat {
        let (timed, scratch_database) =
            copy_into(&options.target, index, &source_url, &target_name).await?;
        let report = &timed.report;
        source_rows = report.tables.iter().map(|t| t.source_rows).sum();
        let rows_copied: u64 = report.tables.iter().map(|t| t.copied_rows).sum();
        let incidents_copied = report
            .tables
            .iter()
            .find(|t| t.table == "exploits")
            .map_or(0, |t| t.copied_rows);
        let run = Run {
            run: index,
            seconds: timed.seconds,
            rows_copied,
            incidents_copied,
            rows_per_second: per_second(rows_copied, timed.seconds),
            incidents_per_second: per_second(incidents_copied, timed.seconds),
            verified: report.verified,
            stages: timed.stages,
            scratch_database,
        };
        // Per-run lines go to stderr: stdout stays one JSON object with --json.
        eprintln!(
            "run {index}/{}: {:.3} s, {rows_copied} rows, {:.0} rows/s, {:.0} incidents/s, {}",
            options.repeat,
            run.seconds,
            run.rows_per_second,
            run.incidents_per_second,
            if run.verified {
                "verified"
            } else {
                "verification FAILED"
            }
        );
        if !run.verified {
            eprintln!("{}", timed.report);
        }
        runs.push(run);
    }

    let median = |f: fn(&Run) -> f64| median_f64(&runs.iter().map(f).collect::<Vec<_>>());
    Ok(Report {
        incidents: options.incidents,
        repeat: options.repeat,
        target_mode,
        target: target_name,
        source_rows,
        source_bytes,
        source_build_seconds,
        median_seconds: median(|r| r.seconds),
        median_rows_per_second: median(|r| r.rows_per_second),
        median_incidents_per_second: median(|r| r.incidents_per_second),
        all_verified: runs.iter().all(|r| r.verified),
        runs,
    })
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Run `index` into an empty target: a database created for it and dropped after it
/// (returned with its name), or the existing one, emptied after the first run.
async fn copy_into(
    target: &Target,
    index: usize,
    source_url: &str,
    target_name: &str,
) -> anyhow::Result<(Timed, Option<String>)> {
    let (outcome, scratch) = match target {
        Target::Scratch { admin_url } => {
            let name = scratch_name(index);
            let admin = connect(admin_url).await?;
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .with_context(|| format!("creating {name} on {target_name}"))?;
            let outcome =
                timed_copy(source_url, &kamiyo_testkit::database_url(admin_url, &name)).await;
            // Dropped whatever the copy did, before its error is returned.
            let dropped = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .with_context(|| format!("dropping {name} on {target_name}"));
            if let Err(error) = dropped {
                if outcome.is_ok() {
                    return Err(error);
                }
                // The copy's own error, returned below, matters more.
                eprintln!("kamiyo-bench copy: {error:#}");
            }
            (outcome, Some(name))
        }
        Target::Existing { url } => {
            if index > 1 {
                empty(url)
                    .await
                    .with_context(|| format!("emptying {target_name} between runs"))?;
            }
            (timed_copy(source_url, url).await, None)
        }
    };
    match outcome {
        Ok(timed) => Ok((timed, scratch)),
        // Written to after it was checked. The library's message suggests `--force`,
        // which this command does not have: it never replaces data it did not copy.
        Err(CopyError::TargetNotEmpty { tables, .. }) => bail!(
            "run {index}: the target {target_name} was written to by someone else (rows in \
             {}); kamiyo-bench copy needs a database nobody else uses",
            tables.join(", ")
        ),
        Err(error) => Err(anyhow::Error::new(error))
            .with_context(|| format!("run {index}: copying into {target_name}")),
    }
}

/// A copy's report, how long the call took, and its stages.
struct Timed {
    report: CopyReport,
    seconds: f64,
    stages: Vec<Stage>,
}

/// One copy, timed from the call to its return. A failed verification comes back as the
/// report it produced (with `verified` false): the run is reported, not aborted.
async fn timed_copy(source_url: &str, target_url: &str) -> Result<Timed, CopyError> {
    let mut target = DbConfig::for_url(target_url);
    target.application_name = "kamiyo-bench-copy".to_owned();
    let stages = StageClock::default();
    let started = Instant::now();
    let outcome =
        copy::sqlite_to_postgres(source_url, &target, &CopyOptions::default(), &stages).await;
    let ended = Instant::now();
    let seconds = ended.duration_since(started).as_secs_f64();
    let stages = stages.finish(ended);
    let report = match outcome {
        Ok(report) => report,
        Err(CopyError::Verification { report }) => *report,
        Err(error) => return Err(error),
    };
    Ok(Timed {
        report,
        seconds,
        stages,
    })
}

/// Records when each of the copy's stages starts.
#[derive(Default)]
struct StageClock(Mutex<Vec<(String, Instant)>>);

impl StageClock {
    fn finish(self, ended: Instant) -> Vec<Stage> {
        let starts = self.0.into_inner().unwrap_or_else(PoisonError::into_inner);
        let ends = starts.iter().skip(1).map(|(_, at)| *at).chain([ended]);
        starts
            .iter()
            .zip(ends)
            .map(|((stage, start), end)| Stage {
                stage: stage.clone(),
                seconds: end.duration_since(*start).as_secs_f64(),
            })
            .collect()
    }
}

impl CopyProgress for StageClock {
    fn stage(&self, stage: &str) {
        let now = Instant::now();
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((stage.to_owned(), now));
    }
}

/// A Kamiyo SQLite database with `incidents` incidents, each with one chain, one
/// transaction hash and one source claim, and one user: migrated with the store's
/// migrations, then filled in one transaction with plain SQL (the repositories would
/// take minutes for 100,000 incidents).
async fn build_source(path: &Path, incidents: u32) -> anyhow::Result<()> {
    let database = Database::open(DbConfig::for_url(format!("sqlite://{}", path.display())))
        .await
        .context("creating the file")?;
    let migrated = database.migrate(&MIGRATIONS).await;
    database.close();
    migrated.context("migrating it")?;

    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute_batch("PRAGMA foreign_keys = ON")?;
        conn.execute_batch(&fill_sql(incidents))?;
        Ok(())
    })
    .await
    .context("the fill did not complete")?
    .context("filling it")
}

fn fill_sql(incidents: u32) -> String {
    format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {incidents})
         INSERT INTO exploits (protocol, protocol_key, chain, tx_hash, dedup_key, amount_usd,
             attack_class, attack_type, description, status, occurred_at)
         SELECT 'Protocol ' || i, 'protocol-' || i, 'ethereum', printf('0x%064x', i), 'k:' || i,
                printf('%d.%02d', i * 1000, i % 100), 'defi', 'oracle_manipulation',
                'Incident number ' || i, 'confirmed',
                strftime('%Y-%m-%dT%H:%M:%fZ', '2020-01-01', '+' || i || ' hours')
         FROM n;
         INSERT INTO exploit_chains (exploit_id, chain) SELECT id, chain FROM exploits;
         INSERT INTO exploit_tx_hashes (exploit_id, chain, tx_hash)
             SELECT id, chain, tx_hash FROM exploits;
         INSERT INTO exploit_sources (exploit_id, source_name, claim_key, reported_name,
             occurred_at, amount_usd, chains, tx_hashes, attack_class, attack_type, description)
         SELECT id, 'defillama', 'c:' || id, protocol, occurred_at, amount_usd, json_array(chain),
                json_array(chain || ':' || tx_hash), attack_class, attack_type, description
         FROM exploits;
         INSERT INTO users (email) VALUES ('a@example.com');
         COMMIT;"
    )
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let name = redact(url);
    let mut config = tokio_postgres::Config::from_str(url)
        .with_context(|| format!("{name} is not a valid PostgreSQL URL"))?;
    config.connect_timeout(ADMIN_CONNECT_TIMEOUT);
    config.application_name("kamiyo-bench-copy");
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {name}"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("kamiyo-bench copy: connection to {name} ended: {error}");
        }
    });
    Ok(client)
}

/// Checked before anything else, so that a database holding data is refused before the
/// source is built and before it is migrated; then migrated, untimed, so that every run
/// finds the same state (the copy's own migration step finds nothing to do, as it would
/// after its first run).
async fn prepare_existing(url: &str, target_name: &str) -> anyhow::Result<()> {
    let client = connect(url).await?;
    let mut holding = Vec::new();
    for table in tables(&client).await? {
        let has_rows: bool = client
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await
            .with_context(|| format!("reading {table} of {target_name}"))?
            .get(0);
        if has_rows {
            holding.push(table);
        }
    }
    if !holding.is_empty() {
        bail!(
            "the target {target_name} already holds data (in {}); kamiyo-bench copy needs an \
             empty database, or --admin-url to create one",
            holding.join(", ")
        );
    }
    let database = Database::open(DbConfig::for_url(url)).await?;
    let migrated = database.migrate(&MIGRATIONS).await;
    database.close();
    migrated.with_context(|| format!("migrating {target_name}"))?;
    Ok(())
}

/// The tables the copy fills: every base table of the schema but the migrations'
/// bookkeeping, quoted for SQL.
async fn tables(client: &tokio_postgres::Client) -> anyhow::Result<Vec<String>> {
    Ok(client
        .query(
            "SELECT format('%I', table_name) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
               AND table_name <> $1 ORDER BY table_name",
            &[&kamiyo_db::migrate::MIGRATIONS_TABLE],
        )
        .await
        .context("listing the target's tables")?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Back to a migrated, empty database, identities restarted.
async fn empty(url: &str) -> anyhow::Result<()> {
    let client = connect(url).await?;
    let tables = tables(&client).await?;
    if !tables.is_empty() {
        client
            .batch_execute(&format!("TRUNCATE {} RESTART IDENTITY", tables.join(", ")))
            .await?;
    }
    Ok(())
}

/// Unique on the server for this process and run; the time keeps a leftover of an
/// interrupted process that had the same id from colliding.
fn scratch_name(run: usize) -> String {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{SCRATCH_PREFIX}{}_{}_{run}",
        std::process::id(),
        since_epoch.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_last_until_the_next_one_starts() {
        let clock = StageClock::default();
        clock.stage("one");
        clock.stage("two");
        let stages = clock.finish(Instant::now());
        let names: Vec<&str> = stages.iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(names, ["one", "two"]);
        assert!(stages.iter().all(|s| s.seconds >= 0.0));
    }
}
