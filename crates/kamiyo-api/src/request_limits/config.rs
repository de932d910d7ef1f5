//! `rate_limit.*`: where the request limiter keeps its buckets (docs/DEPLOYMENT.md).

use std::time::Duration;

use kamiyo_db::DatabaseUrl;
use serde::{Deserialize, Serialize};

/// Where the buckets live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimiterBackend {
    /// In this process: one instance's limits (the default, and what a SQLite database
    /// can have).
    #[default]
    Memory,
    /// A row per caller on the PostgreSQL primary, shared by every instance.
    Postgres,
    /// A hash per caller in Redis, shared by every instance.
    Redis,
}

impl LimiterBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            LimiterBackend::Memory => "memory",
            LimiterBackend::Postgres => "postgres",
            LimiterBackend::Redis => "redis",
        }
    }
}

/// 100 ms sent instances to per-instance limits under load on a busy machine
/// (`bench/deploy.sh`, BENCHMARKS.md section 13); 300 ms did not, and still bounds a request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(300);
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_POOL_SIZE: usize = 4;
pub const DEFAULT_KEY_PREFIX: &str = "kamiyo:rate:";
/// A check slower than this is not a rate limiter any more.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `memory`, `postgres` or `redis`.
    pub backend: LimiterBackend,
    /// The PostgreSQL server of the `postgres` backend (its primary, never a pooler in
    /// transaction mode; the password is never shown). Unset: `database.direct_url`,
    /// else `database.url`.
    pub postgres_url: Option<DatabaseUrl>,
    /// Connections the `postgres` backend holds, besides the service's pool.
    pub pool_size: usize,
    /// The Redis server of the `redis` backend, `redis://[:password@]host:port[/db]`
    /// (the password is never shown). Required for `redis`.
    pub redis_url: Option<DatabaseUrl>,
    /// Prefix of the Redis keys (one hash per caller): instances sharing limits share it.
    pub key_prefix: String,
    /// Longest a check may take on the shared backend (connecting included); past it the
    /// request is checked against this instance's own buckets instead (fail-open).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// After the shared backend failed, how long this instance uses its own buckets
    /// before trying the shared one again.
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            backend: LimiterBackend::Memory,
            postgres_url: None,
            pool_size: DEFAULT_POOL_SIZE,
            redis_url: None,
            key_prefix: DEFAULT_KEY_PREFIX.into(),
            timeout: DEFAULT_TIMEOUT,
            retry_interval: DEFAULT_RETRY_INTERVAL,
        }
    }
}

impl RateLimitConfig {
    /// Refuses settings that cannot work; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(format!(
                "rate_limit.timeout ({}) must be greater than zero and at most {}",
                humantime::format_duration(self.timeout),
                humantime::format_duration(MAX_TIMEOUT)
            ));
        }
        if self.retry_interval.is_zero() {
            return Err("rate_limit.retry_interval must be greater than zero".into());
        }
        if self.pool_size == 0 {
            return Err("rate_limit.pool_size must be greater than zero".into());
        }
        if self.backend == LimiterBackend::Redis {
            match &self.redis_url {
                None => {
                    return Err(
                        "rate_limit.redis_url is required when rate_limit.backend is \"redis\""
                            .into(),
                    )
                }
                Some(url)
                    if !(url.expose().starts_with("redis://")
                        || url.expose().starts_with("rediss://")) =>
                {
                    return Err(format!(
                        "rate_limit.redis_url ({url}) must start with redis:// or rediss://"
                    ));
                }
                Some(_) => {}
            }
            if self.key_prefix.is_empty() {
                return Err("rate_limit.key_prefix must not be empty".into());
            }
        }
        if let Some(url) = &self.postgres_url {
            if !(url.expose().starts_with("postgres://")
                || url.expose().starts_with("postgresql://"))
            {
                return Err(format!(
                    "rate_limit.postgres_url ({url}) must be a postgres:// URL"
                ));
            }
        }
        Ok(())
    }
}
