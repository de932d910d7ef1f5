//! SQLite: every step runs under `BEGIN IMMEDIATE`, which takes the database's write
//! lock (waiting up to the busy timeout), and re-reads what is applied after taking it,
//! so two processes starting on one file apply each migration once.

use std::time::Instant;

use rusqlite::{params, Connection, TransactionBehavior};

use super::{pending, validate_set, AppliedMigration, Migration, MigrationError, MigrationReport};
use crate::error::DbError;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS kamiyo_schema_migrations (
    version      INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    checksum     TEXT NOT NULL,
    applied_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    execution_ms INTEGER NOT NULL
)";

pub(crate) struct SqliteMigrator<'a> {
    pub conn: &'a mut Connection,
    pub pool_name: &'a str,
    /// How long the busy timeout was set to, for the error message.
    pub lock_timeout: std::time::Duration,
}

impl SqliteMigrator<'_> {
    pub(crate) fn apply(&mut self, set: &[Migration]) -> Result<MigrationReport, DbError> {
        validate_set(set)?;
        let pool = self.pool_name;
        let error = |e| DbError::from_sqlite(pool, e);
        let (already, todo) = {
            let tx = self.begin_immediate()?;
            tx.execute_batch(CREATE_TABLE).map_err(error)?;
            let applied = read_applied(&tx).map_err(error)?;
            let todo = pending(set, &applied)?;
            tx.commit().map_err(error)?;
            (applied.iter().map(|row| row.version).collect(), todo)
        };
        let mut report = MigrationReport {
            applied: Vec::new(),
            already_applied: already,
        };
        for migration in todo {
            if self.apply_one(migration)? {
                report.applied.push(migration.version);
            } else {
                report.already_applied.push(migration.version);
            }
        }
        Ok(report)
    }

    /// Applies one migration unless another process did it first; true when this call
    /// applied it.
    fn apply_one(&mut self, migration: &Migration) -> Result<bool, DbError> {
        let label = migration.label();
        let started = Instant::now();
        let record = "INSERT INTO kamiyo_schema_migrations (version, name, checksum, execution_ms) VALUES (?1, ?2, ?3, ?4)";
        let pool = self.pool_name;
        let error = |e| DbError::from_sqlite(pool, e);
        if !migration.transactional() {
            let applied = read_applied(self.conn).map_err(error)?;
            if applied.iter().any(|row| row.version == migration.version) {
                return Ok(false);
            }
            // Outside a transaction there is no lock to serialise two processes: such a
            // migration must be safe to run twice, and the second record is ignored.
            let statements = super::split_statements(migration.sql);
            for (index, statement) in statements.iter().enumerate() {
                self.conn.execute_batch(statement).map_err(|e| {
                    MigrationError::FailedOutsideTransaction {
                        label: label.clone(),
                        statement: index + 1,
                        statements: statements.len(),
                        message: e.to_string(),
                    }
                })?;
            }
            let recorded = self
                .conn
                .execute(
                    &record.replace("INSERT INTO", "INSERT OR IGNORE INTO"),
                    params![
                        migration.version,
                        migration.name,
                        migration.checksum(),
                        elapsed_ms(started)
                    ],
                )
                .map_err(error)?;
            return Ok(recorded == 1);
        }
        let lock_timeout = self.lock_timeout;
        let tx = self.begin_immediate()?;
        let applied = read_applied(&tx).map_err(error)?;
        if applied.iter().any(|row| row.version == migration.version) {
            return Ok(false);
        }
        tracing::info!(migration = %label, "applying migration");
        if let Err(e) = tx.execute_batch(migration.sql) {
            // Dropping the transaction rolls it back: nothing of the migration stays.
            return Err(MigrationError::Failed {
                label,
                message: e.to_string(),
            }
            .into());
        }
        tx.execute(
            record,
            params![
                migration.version,
                migration.name,
                migration.checksum(),
                elapsed_ms(started)
            ],
        )
        .map_err(error)?;
        tx.commit().map_err(|e| busy_or(e, pool, lock_timeout))?;
        tracing::info!(migration = %label, elapsed_ms = elapsed_ms(started), "migration applied");
        Ok(true)
    }

    fn begin_immediate(&mut self) -> Result<rusqlite::Transaction<'_>, DbError> {
        let (pool, lock_timeout) = (self.pool_name, self.lock_timeout);
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| busy_or(e, pool, lock_timeout))
    }
}

fn busy_or(e: rusqlite::Error, pool_name: &str, lock_timeout: std::time::Duration) -> DbError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            MigrationError::LockTimeout {
                waited: humantime::format_duration(lock_timeout).to_string(),
            }
            .into()
        }
        _ => DbError::from_sqlite(pool_name, e),
    }
}

/// The applied migrations, or none when the table does not exist yet.
pub(crate) fn read_applied(conn: &Connection) -> rusqlite::Result<Vec<AppliedMigration>> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kamiyo_schema_migrations')",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut statement = conn.prepare(
        "SELECT version, name, checksum, applied_at FROM kamiyo_schema_migrations ORDER BY version",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(AppliedMigration {
            version: row.get(0)?,
            name: row.get(1)?,
            checksum: row.get(2)?,
            applied_at: row.get(3)?,
        })
    })?;
    rows.collect()
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}
