//! `Database`: the one value the rest of Kamiyo holds to reach its database. The backend
//! is chosen once, from the URL's scheme; everything after that goes through its pool.

use std::sync::Arc;
use std::time::Duration;

use crate::config::DbConfig;
use crate::error::DbError;
use crate::migrate::{self, MigrationReport, MigrationStatus, Migrations};
use crate::monitor::prometheus::Exposition;
use crate::monitor::{self as monitoring, HealthReport, PoolMonitor};
use crate::pool_state::PoolState;
use crate::postgres::PgPool;
use crate::replica::{FallbackReason, Replica, ReplicaState, ReplicaStatus, REPLICA_POOL};
use crate::sqlite::{open_connection, SqlitePool};
use crate::url::BackendKind;

/// The name of the pool serving writes and reads that must see them.
pub const PRIMARY_POOL: &str = "primary";

/// The outcome of a health probe.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub report: HealthReport,
    /// `None` when the probe could not read it (or nothing is migrated yet).
    pub schema_version: Option<i64>,
}

/// A pool of either backend. Repositories match on it once per method; SQL dialects stay
/// in their backend's module.
#[derive(Clone)]
pub enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

#[derive(Clone)]
pub struct Database {
    primary: Pool,
    replica: Option<Arc<Replica>>,
    config: Arc<DbConfig>,
}

impl Database {
    /// Validates the configuration and builds the pool. No connection is opened yet: a
    /// database that is down at start-up shows up in the first `acquire()`, as a typed
    /// error, not as a hang.
    pub async fn open(config: DbConfig) -> Result<Self, DbError> {
        config.validate()?;
        let primary = match config.url.backend()? {
            BackendKind::Postgres => Pool::Postgres(PgPool::new(PRIMARY_POOL, &config)?),
            BackendKind::Sqlite => Pool::Sqlite(SqlitePool::new(PRIMARY_POOL, &config)?),
        };
        tracing::info!(backend = %config.url.backend()?, url = %config.url, pool_max_size = config.pool_max_size, "database pool ready");
        let replica = Replica::start(&config)?;
        if let Some(read_url) = &config.read_url {
            tracing::info!(url = %read_url, max_lag = ?config.replica_max_lag, "read replica pool ready");
        }
        Ok(Database {
            primary,
            replica,
            config: Arc::new(config),
        })
    }

    /// The pool for writes, and for reads that must see this process's own writes.
    pub fn primary(&self) -> &Pool {
        &self.primary
    }

    /// Runs a read on the replica when there is one in use, else on the primary. A
    /// read that fails on the replica because of the server or the network (no
    /// connection in time, connection lost) runs again on the primary; any other error
    /// (a refused statement, a write attempted on the read-only replica) is returned.
    /// Every fallback is counted by reason; `work` must be safe to run twice.
    pub async fn read<T, E, F, Fut>(&self, work: F) -> Result<T, E>
    where
        E: AsDbError,
        F: Fn(Pool) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        if let Some(replica) = &self.replica {
            match replica.skip_reason() {
                Some(reason) => replica.fell_back(reason, None),
                None => match work(Pool::Postgres(replica.pool().clone())).await {
                    Err(error)
                        if error
                            .as_db_error()
                            .is_some_and(|e| e.is_unavailable() || e.is_transient()) =>
                    {
                        replica.fell_back(FallbackReason::Failed, error.as_db_error());
                    }
                    outcome => return outcome,
                },
            }
        }
        work(self.primary.clone()).await
    }

    /// The replica as last seen, when one is configured.
    pub fn replica_status(&self) -> Option<ReplicaStatus> {
        self.replica.as_ref().map(|r| r.status())
    }

    /// Changes of the replica's state (in use, lagging, down), when one is configured.
    pub fn watch_replica(&self) -> Option<tokio::sync::watch::Receiver<ReplicaStatus>> {
        self.replica.as_ref().map(|r| r.subscribe())
    }

    /// Reads served by the primary instead of the replica, by reason.
    pub fn replica_fallbacks(&self) -> Vec<(FallbackReason, u64)> {
        self.replica
            .as_ref()
            .map(|r| r.fallbacks())
            .unwrap_or_default()
    }

    /// The time source of this database's monitors, and of what is built on it.
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.config.clock
    }

    pub fn config(&self) -> &DbConfig {
        &self.config
    }

    pub fn backend(&self) -> BackendKind {
        match self.primary {
            Pool::Postgres(_) => BackendKind::Postgres,
            Pool::Sqlite(_) => BackendKind::Sqlite,
        }
    }

    pub fn pool_state(&self) -> PoolState {
        match &self.primary {
            Pool::Postgres(pool) => pool.state(),
            Pool::Sqlite(pool) => pool.state(),
        }
    }

    /// One round trip through the pool, ended at `deadline` whatever the server does.
    pub async fn ping(&self, deadline: Duration) -> Result<(), DbError> {
        self.probe(deadline).await.map(drop)
    }

    /// Reads the schema version through the pool, all within `deadline`: proof that
    /// the database answers, and what it answers with.
    pub async fn probe(&self, deadline: Duration) -> Result<Option<i64>, DbError> {
        // The acquisition has its own deadline (and reports an exhausted pool as such);
        // the query gets what is left of the budget, so no two timers race.
        let started = std::time::Instant::now();
        let no_answer = || DbError::Unavailable {
            pool: PRIMARY_POOL.into(),
            reason: format!("no answer within {}", humantime::format_duration(deadline)),
            source: None,
        };
        match &self.primary {
            Pool::Postgres(pool) => {
                let conn = pool.acquire_within(deadline).await?;
                let remaining = deadline.saturating_sub(started.elapsed());
                // Through the connection's own statement methods, not its raw client: a
                // probe abandoned at its deadline is then cancelled on the server and
                // its session discarded, like any other statement.
                tokio::time::timeout(remaining, async {
                    let exists: bool = conn
                        .query_one(
                            "SELECT to_regclass('kamiyo_schema_migrations') IS NOT NULL",
                            &[],
                        )
                        .await?
                        .get(0);
                    if !exists {
                        return Ok(None);
                    }
                    let version: Option<i64> = conn
                        .query_one(
                            "SELECT max(version)::int8 FROM kamiyo_schema_migrations",
                            &[],
                        )
                        .await?
                        .get(0);
                    Ok(version)
                })
                .await
                .map_err(|_| no_answer())?
            }
            Pool::Sqlite(pool) => {
                let conn = pool.acquire_within(deadline).await?;
                let remaining = deadline.saturating_sub(started.elapsed());
                let applied =
                    tokio::time::timeout(remaining, conn.run(|c| migrate::sqlite::read_applied(c)))
                        .await
                        .map_err(|_| no_answer())??;
                Ok(applied.iter().map(|row| row.version).max())
            }
        }
    }

    /// Applies the pending migrations of this backend under the migration lock.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<MigrationReport, DbError> {
        match &self.primary {
            Pool::Postgres(pool) => {
                let mut client = pool.connect_unpooled().await?;
                let report = migrate::PostgresMigrator {
                    client: &mut client,
                    pool_name: pool.name(),
                    lock_timeout: self.config.migration_lock_timeout,
                    statement_timeout: self.config.migration_statement_timeout,
                }
                .apply(migrations.postgres)
                .await;
                // Dropping the client closes the session: whatever happened above, no
                // advisory lock can outlive this call.
                drop(client);
                report
            }
            Pool::Sqlite(pool) => {
                let path = pool.path().to_owned();
                let lock_timeout = self.config.migration_lock_timeout;
                let name = pool.name().to_owned();
                let set = migrations.sqlite;
                tokio::task::spawn_blocking(move || {
                    let mut conn = open_connection(&path, lock_timeout)
                        .map_err(|e| DbError::from_sqlite(&name, e))?;
                    migrate::SqliteMigrator {
                        conn: &mut conn,
                        pool_name: &name,
                        lock_timeout,
                    }
                    .apply(set)
                })
                .await
                .map_err(|e| DbError::other(format!("migration task did not complete: {e}")))?
            }
        }
    }

    /// Every migration this binary embeds, and any the database has that it does not,
    /// with checksums and when each was applied.
    pub async fn migration_status(
        &self,
        migrations: &Migrations,
    ) -> Result<Vec<MigrationStatus>, DbError> {
        match &self.primary {
            Pool::Postgres(pool) => {
                let conn = pool.acquire().await?;
                let applied = migrate::postgres::read_applied(conn.client(), pool.name()).await?;
                Ok(migrate::status(migrations.postgres, &applied))
            }
            Pool::Sqlite(pool) => {
                let conn = pool.acquire().await?;
                let applied = conn.run(|c| migrate::sqlite::read_applied(c)).await?;
                Ok(migrate::status(migrations.sqlite, &applied))
            }
        }
    }

    /// The migrations still to apply, after the same checks `migrate` makes: an edited
    /// applied migration or a version this binary does not know is an error.
    pub async fn pending_migrations(
        &self,
        migrations: &Migrations,
    ) -> Result<Vec<MigrationStatus>, DbError> {
        let status = self.migration_status(migrations).await?;
        if let Some(bad) = status
            .iter()
            .find(|m| m.state == "changed" || m.state == "unknown")
        {
            let embedded = match self.backend() {
                BackendKind::Postgres => migrations.postgres,
                BackendKind::Sqlite => migrations.sqlite,
            };
            return Err(match embedded.iter().find(|m| m.version == bad.version) {
                Some(migration) => migrate::MigrationError::ChecksumMismatch {
                    label: migration.label(),
                    applied: self
                        .applied_checksum(bad.version)
                        .await?
                        .unwrap_or_default(),
                    embedded: migration.checksum(),
                },
                None => migrate::MigrationError::UnknownApplied {
                    version: bad.version,
                    name: bad.name.clone(),
                },
            }
            .into());
        }
        Ok(status
            .into_iter()
            .filter(|m| m.state == "pending")
            .collect())
    }

    async fn applied_checksum(&self, version: i64) -> Result<Option<String>, DbError> {
        let applied = match &self.primary {
            Pool::Postgres(pool) => {
                let conn = pool.acquire().await?;
                migrate::postgres::read_applied(conn.client(), pool.name()).await?
            }
            Pool::Sqlite(pool) => {
                let conn = pool.acquire().await?;
                conn.run(|c| migrate::sqlite::read_applied(c)).await?
            }
        };
        Ok(applied
            .into_iter()
            .find(|row| row.version == version)
            .map(|row| row.checksum))
    }

    /// The highest applied migration version, `None` on an empty database.
    pub async fn schema_version(&self) -> Result<Option<i64>, DbError> {
        let applied = match &self.primary {
            Pool::Postgres(pool) => {
                let conn = pool.acquire().await?;
                migrate::postgres::read_applied(conn.client(), pool.name()).await?
            }
            Pool::Sqlite(pool) => {
                let conn = pool.acquire().await?;
                conn.run(|c| migrate::sqlite::read_applied(c)).await?
            }
        };
        Ok(applied.iter().map(|row| row.version).max())
    }

    /// Each pool's monitor with the pool's state read now.
    pub fn monitors(&self) -> Vec<(Arc<PoolMonitor>, PoolState)> {
        let mut monitors = match &self.primary {
            Pool::Postgres(pool) => vec![(Arc::clone(pool.monitor()), pool.state())],
            Pool::Sqlite(pool) => vec![(Arc::clone(pool.monitor()), pool.state())],
        };
        if let Some(replica) = &self.replica {
            monitors.push((Arc::clone(replica.pool().monitor()), replica.pool().state()));
        }
        monitors
    }

    /// Health from the monitors' windows, without touching the database; `unreachable`
    /// says why the database is considered down, when it is.
    pub fn health_report(&self, unreachable: Option<&str>) -> HealthReport {
        let monitors = self.monitors();
        let leaks: Vec<usize> = monitors.iter().map(|(m, _)| m.leaks().len()).collect();
        let evidence: Vec<monitoring::PoolEvidence<'_>> = monitors
            .iter()
            .zip(&leaks)
            .map(|((monitor, state), leaks)| monitoring::PoolEvidence {
                pool: monitor.pool(),
                state: *state,
                window: monitor.window(),
                leaks: *leaks,
            })
            .collect();
        let mut report = monitoring::evaluate(&self.config.monitor, &evidence, unreachable);
        if let Some(status) = self.replica_status() {
            replica_health(&mut report, &status);
        }
        report
    }

    /// Pings the database (within `acquire_timeout`) and evaluates health. An exhausted
    /// pool is not an unreachable database: it shows as acquisition timeouts (degraded).
    pub async fn health(&self) -> HealthReport {
        self.health_check().await.report
    }

    /// [`health`](Self::health) with the schema version the probe read.
    pub async fn health_check(&self) -> HealthCheck {
        let outcome = self.probe(self.config.acquire_timeout).await;
        if let Err(error) = &outcome {
            tracing::warn!(%error, "database health check failed");
        }
        // Reasons are generic on purpose: health reports reach HTTP clients, and driver
        // messages can name hosts; the log above has the detail.
        let reason = match &outcome {
            Ok(_) | Err(DbError::AcquireTimeout { .. }) => None,
            Err(DbError::StatementTimeout { .. }) => {
                Some("the health query ran past its statement timeout")
            }
            Err(DbError::Unavailable { .. }) => {
                Some("the database does not accept connections or does not answer")
            }
            Err(_) => Some("the health query failed"),
        };
        HealthCheck {
            report: self.health_report(reason),
            schema_version: outcome.ok().flatten(),
        }
    }

    /// Appends this database's pool and query metrics to a Prometheus exposition.
    pub fn write_metrics(&self, exposition: &mut Exposition) {
        monitoring::export::write(exposition, &self.monitors());
        if let Some(status) = self.replica_status() {
            let labels: &[(&str, &str)] = &[("db_client_connection_pool_name", REPLICA_POOL)];
            exposition.gauge(
                "db_client_replica_lag_seconds",
                "Replay lag of the read replica at its last successful check.",
                &[(labels, status.lag_seconds.unwrap_or(f64::NAN))],
            );
            exposition.gauge(
                "db_client_replica_in_use",
                "1 when reads go to the replica, 0 when it is down or lagging.",
                &[(labels, f64::from(status.state.serves_reads()))],
            );
            let fallbacks: Vec<(Vec<(&str, &str)>, u64)> = self
                .replica_fallbacks()
                .into_iter()
                .map(|(reason, count)| {
                    (
                        vec![
                            ("db_client_connection_pool_name", REPLICA_POOL),
                            ("reason", reason.label()),
                        ],
                        count,
                    )
                })
                .collect();
            let samples: Vec<(&[(&str, &str)], u64)> = fallbacks
                .iter()
                .map(|(labels, count)| (labels.as_slice(), *count))
                .collect();
            exposition.counter(
                "db_client_fallback_total",
                "Reads meant for the replica that the primary served, by reason.",
                &samples,
            );
        }
    }

    /// Closes the pool: waiters get an error at once, idle connections are closed,
    /// connections in use are closed when they come back.
    pub fn close(&self) {
        match &self.primary {
            Pool::Postgres(pool) => pool.close(),
            Pool::Sqlite(pool) => pool.close(),
        }
        if let Some(replica) = &self.replica {
            replica.pool().close();
        }
    }
}

/// A replica that is down or lagging degrades health (reads still work, on the
/// primary); it never makes it unhealthy on its own.
fn replica_health(report: &mut HealthReport, status: &ReplicaStatus) {
    use crate::monitor::{HealthStatus, HealthWarning};
    let warning = match status.state {
        ReplicaState::Unknown | ReplicaState::InUse => return,
        ReplicaState::Lagging => HealthWarning {
            pool: REPLICA_POOL.into(),
            check: "replica_lag",
            severity: HealthStatus::Degraded,
            message: "the read replica lags behind the primary; reads go to the primary".into(),
            value: status.lag_seconds.unwrap_or(0.0),
            threshold: status.max_lag_seconds,
        },
        ReplicaState::Down => HealthWarning {
            pool: REPLICA_POOL.into(),
            check: "replica_down",
            severity: HealthStatus::Degraded,
            message: format!(
                "{}; reads go to the primary",
                status
                    .reason
                    .as_deref()
                    .unwrap_or("the read replica is down")
            ),
            value: 1.0,
            threshold: 0.0,
        },
    };
    if report.status == HealthStatus::Healthy {
        report.status = HealthStatus::Degraded;
    }
    report.warnings.push(warning);
}

/// An error that may be a database failure: how [`Database::read`] tells a replica
/// that failed (read again on the primary) from an answer to return.
pub trait AsDbError {
    fn as_db_error(&self) -> Option<&DbError>;
}

impl AsDbError for DbError {
    fn as_db_error(&self) -> Option<&DbError> {
        Some(self)
    }
}
