//! Kamiyo's database reliability layer, independent of Kamiyo's domain.
//!
//! - [`Clock`]: the injected time source of caches, rate limits and health windows.
//! - [`config`]: every limit, named and finite by default; [`url`]: the secret URL.
//! - [`Database`]: the backend chosen from the URL, its pool, health ping, migrations.
//! - [`postgres`] and [`sqlite`]: pools with one total acquisition deadline, liveness
//!   checks, a reaper for old and idle connections.
//! - [`replica`]: the optional read replica, its lag check and the fallback to the
//!   primary.
//! - [`retry`]: retries of idempotent work after transient failures only.
//! - [`migrate`]: embedded, checksummed migrations under a cross-process lock.
//! - [`monitor`]: pool state, acquisition and query statistics, slow queries, leaks,
//!   health over a rolling window, Prometheus export.
//! - [`DbError`]: failures with operational meaning.

mod acquire;
pub mod clock;
pub mod config;
mod database;
pub mod error;
pub mod migrate;
pub mod monitor;
mod pool_state;
pub mod postgres;
mod reaper;
pub mod replica;
pub mod retry;
pub mod sqlite;
pub mod url;

pub use clock::{Clock, ManualClock};
pub use config::DbConfig;
pub use database::{AsDbError, Database, HealthCheck, Pool, PRIMARY_POOL};
pub use error::DbError;
pub use migrate::{Migration, MigrationError, MigrationReport, MigrationStatus, Migrations};
pub use monitor::{HealthReport, HealthStatus, MonitorConfig, PoolMonitor};
pub use pool_state::PoolState;
pub use replica::{FallbackReason, ReplicaState, ReplicaStatus, REPLICA_POOL};
pub use retry::RetryPolicy;
pub use url::{BackendKind, DatabaseUrl};
