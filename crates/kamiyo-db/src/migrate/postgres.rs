//! PostgreSQL: a session-level advisory lock, taken on a session opened only for the
//! migration, serialises concurrent start-ups. The lock is released explicitly on every
//! path, and closing the session would release it anyway.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::{pending, validate_set, AppliedMigration, Migration, MigrationError, MigrationReport};
use crate::error::DbError;

/// Any fixed key works as long as every Kamiyo process uses the same one; this is the
/// ASCII of "kamiyomi" read as a big-endian integer, unlikely to collide with another
/// application's lock on the same database.
const MIGRATION_LOCK_KEY: i64 = 0x6b61_6d69_796f_6d69;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS kamiyo_schema_migrations (
    version      BIGINT PRIMARY KEY,
    name         TEXT NOT NULL,
    checksum     TEXT NOT NULL,
    applied_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    execution_ms BIGINT NOT NULL
)";

pub(crate) struct PostgresMigrator<'a> {
    pub client: &'a mut Client,
    pub pool_name: &'a str,
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
}

impl PostgresMigrator<'_> {
    pub(crate) async fn apply(&mut self, set: &[Migration]) -> Result<MigrationReport, DbError> {
        validate_set(set)?;
        let session_limits = format!(
            "SET statement_timeout = {}",
            self.statement_timeout.as_millis()
        );
        self.client
            .batch_execute(&session_limits)
            .await
            .map_err(|e| DbError::from_postgres(self.pool_name, e))?;
        self.take_lock().await?;
        let outcome = self.apply_locked(set).await;
        // Released whether or not the migrations succeeded; a failure here is logged,
        // not returned, because the session is closed right after and that releases it.
        if let Err(error) = self
            .client
            .batch_execute("SELECT pg_advisory_unlock_all()")
            .await
        {
            tracing::warn!(%error, "could not release the migration lock explicitly; closing the session releases it");
        }
        outcome
    }

    /// Tries the lock with capped backoff until `lock_timeout`. A blocking
    /// `pg_advisory_lock` would be simpler, but a session waiting in it holds a snapshot,
    /// and `CREATE INDEX CONCURRENTLY` in the lock holder's migration waits for every
    /// older snapshot to end: the two would deadlock.
    async fn take_lock(&mut self) -> Result<(), DbError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let row = self
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
                .await
                .map_err(|e| DbError::from_postgres(self.pool_name, e))?;
            if row.get::<_, bool>(0) {
                return Ok(());
            }
            let waited = started.elapsed();
            if waited >= self.lock_timeout {
                return Err(MigrationError::LockTimeout {
                    waited: humantime::format_duration(self.lock_timeout).to_string(),
                }
                .into());
            }
            tokio::time::sleep(pause.min(self.lock_timeout - waited)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    async fn apply_locked(&mut self, set: &[Migration]) -> Result<MigrationReport, DbError> {
        self.client
            .batch_execute(CREATE_TABLE)
            .await
            .map_err(|e| DbError::from_postgres(self.pool_name, e))?;
        let applied = read_applied(self.client, self.pool_name).await?;
        let todo = pending(set, &applied)?;
        let mut report = MigrationReport {
            applied: Vec::new(),
            already_applied: applied.iter().map(|row| row.version).collect(),
        };
        for migration in todo {
            self.apply_one(migration).await?;
            report.applied.push(migration.version);
        }
        Ok(report)
    }

    async fn apply_one(&mut self, migration: &Migration) -> Result<(), DbError> {
        let started = Instant::now();
        let record = "INSERT INTO kamiyo_schema_migrations (version, name, checksum, execution_ms) VALUES ($1, $2, $3, $4)";
        let label = migration.label();
        tracing::info!(migration = %label, transactional = migration.transactional(), "applying migration");
        if migration.transactional() {
            let tx = self
                .client
                .transaction()
                .await
                .map_err(|e| DbError::from_postgres(self.pool_name, e))?;
            if let Err(e) = tx.batch_execute(migration.sql).await {
                let message = describe(&e);
                // Rolled back before the lock is released, so the next process to take
                // the lock finds nothing of this migration.
                if let Err(error) = tx.rollback().await {
                    tracing::warn!(%error, "rollback of the failed migration did not complete; closing the session aborts it");
                }
                return Err(MigrationError::Failed { label, message }.into());
            }
            let elapsed = elapsed_ms(started);
            tx.execute(
                record,
                &[
                    &migration.version,
                    &migration.name,
                    &migration.checksum(),
                    &elapsed,
                ],
            )
            .await
            .map_err(|e| DbError::from_postgres(self.pool_name, e))?;
            tx.commit()
                .await
                .map_err(|e| DbError::from_postgres(self.pool_name, e))?;
        } else {
            // One statement per round trip: a multi-statement string would run in an
            // implicit transaction, which is what this migration opted out of.
            let statements = super::split_statements(migration.sql);
            for (index, statement) in statements.iter().enumerate() {
                self.client.batch_execute(statement).await.map_err(|e| {
                    MigrationError::FailedOutsideTransaction {
                        label: label.clone(),
                        statement: index + 1,
                        statements: statements.len(),
                        message: describe(&e),
                    }
                })?;
            }
            let elapsed = elapsed_ms(started);
            self.client
                .execute(
                    record,
                    &[
                        &migration.version,
                        &migration.name,
                        &migration.checksum(),
                        &elapsed,
                    ],
                )
                .await
                .map_err(|e| DbError::from_postgres(self.pool_name, e))?;
        }
        tracing::info!(migration = %label, elapsed_ms = elapsed_ms(started), "migration applied");
        Ok(())
    }
}

/// The applied migrations, or none when the table does not exist yet.
pub(crate) async fn read_applied(
    client: &Client,
    pool_name: &str,
) -> Result<Vec<AppliedMigration>, DbError> {
    // Unnamed statements (`query_typed`, no parameters): they also work through a
    // pooler in transaction mode, where the health probe and start-up read this.
    let exists = client
        .query_typed(
            "SELECT to_regclass('kamiyo_schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| DbError::from_postgres(pool_name, e))?;
    if !exists.first().is_some_and(|row| row.get::<_, bool>(0)) {
        return Ok(Vec::new());
    }
    let rows = client
        .query_typed(
            "SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
             FROM kamiyo_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(|e| DbError::from_postgres(pool_name, e))?;
    Ok(rows
        .iter()
        .map(|row| AppliedMigration {
            version: row.get(0),
            name: row.get(1),
            checksum: row.get(2),
            applied_at: row.get(3),
        })
        .collect())
}

/// The server's message with its SQLSTATE, detail and position: what an operator needs
/// to find the failing statement.
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; detail: {detail}"));
            }
            if let Some(tokio_postgres::error::ErrorPosition::Original(pos)) = db.position() {
                text.push_str(&format!("; at character {pos}"));
            }
            text
        }
        None => err.to_string(),
    }
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}
