//! Every limit of the database layer, named, documented and finite by default.
//!
//! The binary layers these values: defaults, then an optional TOML file (`[database]`
//! table), then `KAMIYO_DATABASE_*` environment variables (and the standard
//! `DATABASE_URL`), then command-line flags. Durations are written the human way
//! (`"3s"`, `"250ms"`, `"30min"`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::DbError;
use crate::url::DatabaseUrl;

/// No configuration: an embedded SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://kamiyo.db";
pub const DEFAULT_POOL_MAX_SIZE: usize = 16;
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_KEEPALIVE_RETRIES: u32 = 3;
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const DEFAULT_REAPER_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_LIVENESS_CHECK_AFTER: Duration = Duration::from_millis(500);
pub const DEFAULT_SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_MIGRATION_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MIGRATION_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_MAINTENANCE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_APPLICATION_NAME: &str = "kamiyo";
pub const DEFAULT_REPLICA_MAX_LAG: Duration = Duration::from_secs(5);
pub const DEFAULT_REPLICA_CHECK_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_REPLICA_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);

/// Configuration of one database (its pool, its sessions and its migrations).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbConfig {
    /// `postgres://...` or `sqlite://path`. Its password never appears in logs or errors.
    pub url: DatabaseUrl,
    /// `url` goes through a connection pooler in transaction mode (PgBouncer's
    /// `pool_mode = transaction`): each statement may run on another server session, so
    /// statements are sent unnamed with parameter types learned once per SQL text inside
    /// a transaction, no startup `options` are sent (PgBouncer refuses them: set the
    /// server-side timeouts on the role instead), and a lengthened maintenance timeout is
    /// set per transaction. Needs `direct_url`.
    pub transaction_pooling: bool,
    /// `postgres://...` of the primary itself, for what needs a session of its own when
    /// `transaction_pooling` is on: migrations (a session-level advisory lock) and
    /// `LISTEN`; the shared rate limiter (`rate_limit.backend = "postgres"`) uses it in
    /// any case. Unset: `url`.
    pub direct_url: Option<DatabaseUrl>,
    /// Optional `postgres://...` of a streaming replica (`DATABASE_READ_URL`). Reads that
    /// need not see this process's own writes go there, on read-only sessions; when it
    /// is down or lagging they go to the primary (PostgreSQL primary only).
    pub read_url: Option<DatabaseUrl>,
    /// A replica further behind than this is not used until it catches up. Too low
    /// sends reads to the primary on every burst of writes; too high serves stale data.
    #[serde(with = "humantime_serde")]
    pub replica_max_lag: Duration,
    /// How often the replica's reachability and lag are checked; a replica found down
    /// or lagging is skipped until a check finds it usable again.
    #[serde(with = "humantime_serde")]
    pub replica_check_interval: Duration,
    /// Acquisition deadline on the replica pool. Short, because a read that misses it
    /// still has to be served by the primary within the caller's own deadline.
    #[serde(with = "humantime_serde")]
    pub replica_acquire_timeout: Duration,
    /// Most connections the pool opens. Too high exhausts the server's
    /// `max_connections` across instances; too low queues requests.
    pub pool_max_size: usize,
    /// One total deadline for `acquire()`: waiting for a free slot, connecting and
    /// checking the connection. Too high lets requests pile up behind a sick database;
    /// too low fails requests during short bursts.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Deadline for opening one TCP connection and authenticating (PostgreSQL).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Server-side `statement_timeout`: a query running longer is cancelled by the
    /// server (PostgreSQL). Too low kills legitimate reports; too high lets one bad
    /// query hold a connection.
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// Server-side `idle_in_transaction_session_timeout`: a session that opened a
    /// transaction and went quiet is ended, releasing its locks (PostgreSQL).
    #[serde(with = "humantime_serde")]
    pub idle_in_transaction_timeout: Duration,
    /// `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged before the kernel
    /// drops the connection. Without it a query to a vanished server hangs for
    /// 15-20 minutes (PostgreSQL).
    #[serde(with = "humantime_serde")]
    pub tcp_user_timeout: Duration,
    /// Idle time before the first TCP keepalive probe (PostgreSQL).
    #[serde(with = "humantime_serde")]
    pub keepalive_idle: Duration,
    /// Time between TCP keepalive probes (PostgreSQL).
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// Unanswered keepalive probes before the connection is considered dead.
    pub keepalive_retries: u32,
    /// A connection older than this (less up to 10 % random jitter, so a pool does not
    /// reconnect all at once) is closed instead of reused.
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// A connection idle longer than this is closed by the reaper.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How often the reaper looks for expired and idle connections.
    #[serde(with = "humantime_serde")]
    pub reaper_interval: Duration,
    /// A connection idle longer than this is pinged before it is handed out; fresher
    /// ones are handed out unchecked (a check costs a round trip). Zero checks every
    /// connection on every checkout.
    #[serde(with = "humantime_serde")]
    pub liveness_check_after: Duration,
    /// SQLite `busy_timeout`: how long a writer waits for another writer's lock.
    #[serde(with = "humantime_serde")]
    pub sqlite_busy_timeout: Duration,
    /// How long start-up waits for another process's migration lock.
    #[serde(with = "humantime_serde")]
    pub migration_lock_timeout: Duration,
    /// `statement_timeout` of the migration session: a migration rebuilding an index
    /// may rightly run longer than a request, but never unbounded.
    #[serde(with = "humantime_serde")]
    pub migration_statement_timeout: Duration,
    /// Statement and idle-in-transaction timeout of a maintenance transaction: the
    /// remerge of every stored incident (after a migration that ships a rule, a
    /// curator's decision, `kamiyo incidents remerge`) reads every claim, decides in
    /// memory and writes the difference in one transaction, which at scale outlasts a
    /// request's `statement_timeout` (PostgreSQL).
    #[serde(with = "humantime_serde")]
    pub maintenance_timeout: Duration,
    /// Apply pending migrations when the service starts.
    pub migrate_on_start: bool,
    /// Retries of idempotent operations after transient failures.
    pub retry: crate::retry::RetryPolicy,
    /// Thresholds of the pool and query monitor.
    pub monitor: crate::monitor::MonitorConfig,
    /// `application_name` shown in `pg_stat_activity`.
    pub application_name: String,
    /// Where the monitor's health window, and everything built on this database that
    /// decides by elapsed time (caches, rate limits), reads the time. Not a setting: the
    /// system clock unless a test puts a [`ManualClock`](crate::ManualClock) here.
    #[serde(skip)]
    pub clock: crate::clock::Clock,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            url: DatabaseUrl::new(DEFAULT_DATABASE_URL),
            transaction_pooling: false,
            direct_url: None,
            read_url: None,
            replica_max_lag: DEFAULT_REPLICA_MAX_LAG,
            replica_check_interval: DEFAULT_REPLICA_CHECK_INTERVAL,
            replica_acquire_timeout: DEFAULT_REPLICA_ACQUIRE_TIMEOUT,
            pool_max_size: DEFAULT_POOL_MAX_SIZE,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            idle_in_transaction_timeout: DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT,
            tcp_user_timeout: DEFAULT_TCP_USER_TIMEOUT,
            keepalive_idle: DEFAULT_KEEPALIVE_IDLE,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_retries: DEFAULT_KEEPALIVE_RETRIES,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            reaper_interval: DEFAULT_REAPER_INTERVAL,
            liveness_check_after: DEFAULT_LIVENESS_CHECK_AFTER,
            sqlite_busy_timeout: DEFAULT_SQLITE_BUSY_TIMEOUT,
            migration_lock_timeout: DEFAULT_MIGRATION_LOCK_TIMEOUT,
            migration_statement_timeout: DEFAULT_MIGRATION_STATEMENT_TIMEOUT,
            maintenance_timeout: DEFAULT_MAINTENANCE_TIMEOUT,
            migrate_on_start: true,
            retry: crate::retry::RetryPolicy::default(),
            monitor: crate::monitor::MonitorConfig::default(),
            application_name: DEFAULT_APPLICATION_NAME.to_owned(),
            clock: crate::clock::Clock::system(),
        }
    }
}

impl DbConfig {
    /// A configuration for `url` with every other value at its default.
    pub fn for_url(url: impl Into<String>) -> Self {
        DbConfig {
            url: DatabaseUrl::new(url),
            ..DbConfig::default()
        }
    }

    /// Refuses values that would turn a deadline off or make the pool unusable; the
    /// error names the offending field.
    pub fn validate(&self) -> Result<(), DbError> {
        let backend = self.url.backend()?;
        if let Some(read_url) = &self.read_url {
            if backend != crate::url::BackendKind::Postgres
                || read_url.backend()? != crate::url::BackendKind::Postgres
            {
                return Err(invalid(
                    "read_url",
                    "a read replica needs PostgreSQL for both the primary and the replica",
                ));
            }
        }
        if let Some(direct) = &self.direct_url {
            if backend != crate::url::BackendKind::Postgres
                || direct.backend()? != crate::url::BackendKind::Postgres
            {
                return Err(invalid(
                    "direct_url",
                    "a direct URL is a postgres:// URL beside a postgres:// url",
                ));
            }
        }
        if self.transaction_pooling {
            if backend != crate::url::BackendKind::Postgres {
                return Err(invalid(
                    "transaction_pooling",
                    "a pooler in transaction mode stands in front of PostgreSQL",
                ));
            }
            if self.direct_url.is_none() {
                return Err(invalid(
                    "direct_url",
                    "transaction_pooling needs a direct URL of the primary, for migrations (a session-level lock) and LISTEN",
                ));
            }
        }
        if self.pool_max_size == 0 {
            return Err(invalid("pool_max_size", "must be at least 1"));
        }
        let durations = [
            ("acquire_timeout", self.acquire_timeout),
            ("replica_max_lag", self.replica_max_lag),
            ("replica_check_interval", self.replica_check_interval),
            ("replica_acquire_timeout", self.replica_acquire_timeout),
            ("connect_timeout", self.connect_timeout),
            ("statement_timeout", self.statement_timeout),
            (
                "idle_in_transaction_timeout",
                self.idle_in_transaction_timeout,
            ),
            ("tcp_user_timeout", self.tcp_user_timeout),
            ("keepalive_idle", self.keepalive_idle),
            ("keepalive_interval", self.keepalive_interval),
            ("max_lifetime", self.max_lifetime),
            ("idle_timeout", self.idle_timeout),
            ("reaper_interval", self.reaper_interval),
            ("sqlite_busy_timeout", self.sqlite_busy_timeout),
            ("migration_lock_timeout", self.migration_lock_timeout),
            (
                "migration_statement_timeout",
                self.migration_statement_timeout,
            ),
            ("maintenance_timeout", self.maintenance_timeout),
        ];
        for (field, value) in durations {
            if value.is_zero() {
                return Err(invalid(
                    field,
                    "must be greater than zero (zero would mean no deadline)",
                ));
            }
        }
        if self.retry.max_attempts == 0 {
            return Err(invalid(
                "retry.max_attempts",
                "must be at least 1 (1 means no retry)",
            ));
        }
        if let Some((field, message)) = self.monitor.invalid_field() {
            return Err(invalid(&format!("monitor.{field}"), message));
        }
        if self.keepalive_retries == 0 {
            return Err(invalid("keepalive_retries", "must be at least 1"));
        }
        if self.application_name.contains(['\'', '\\', ' ']) {
            return Err(invalid(
                "application_name",
                "must not contain quotes, backslashes or spaces",
            ));
        }
        Ok(())
    }
}

fn invalid(field: &str, message: &str) -> DbError {
    DbError::Config {
        field: format!("database.{field}"),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_finite() {
        let config = DbConfig::default();
        config.validate().unwrap();
        assert!(config.acquire_timeout <= Duration::from_secs(30));
        assert_eq!(config.url.backend().unwrap(), crate::BackendKind::Sqlite);
    }

    #[test]
    fn zero_deadline_is_refused_naming_the_field() {
        let config = DbConfig {
            acquire_timeout: Duration::ZERO,
            ..DbConfig::default()
        };
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("database.acquire_timeout"), "{message}");
    }

    #[test]
    fn transaction_pooling_needs_a_direct_url_of_postgres() {
        let pooled = DbConfig {
            transaction_pooling: true,
            ..DbConfig::for_url("postgres://u@127.0.0.1:6432/db")
        };
        let refused = pooled.validate().unwrap_err().to_string();
        assert!(refused.contains("direct_url"), "{refused}");
        DbConfig {
            direct_url: Some(DatabaseUrl::new("postgres://u@127.0.0.1:5432/db")),
            ..pooled.clone()
        }
        .validate()
        .unwrap();
        let on_sqlite = DbConfig {
            transaction_pooling: true,
            direct_url: Some(DatabaseUrl::new("postgres://u@127.0.0.1:5432/db")),
            ..DbConfig::for_url("sqlite://k.db")
        };
        assert!(on_sqlite.validate().is_err());
    }

    #[test]
    fn zero_pool_size_is_refused() {
        let config = DbConfig {
            pool_max_size: 0,
            ..DbConfig::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("pool_max_size"));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let config = DbConfig::for_url("postgres://u:topsecret@localhost/db");
        let shown = format!("{config:?}");
        assert!(!shown.contains("topsecret"), "{shown}");
    }
}
