//! Rate-limit buckets shared by every instance, on PostgreSQL (migration 0015,
//! `rate_limit.backend = "postgres"`): one row per caller with its minute, hour and day
//! tokens, refilled and taken by `kamiyo_rate_limit_take` under the row's lock in one
//! round trip, on the database's clock.

use std::time::Duration;

use kamiyo_db::postgres::PgPool;

use crate::error::StoreError;
use crate::row::Fields;

/// What one check found: whether a token was taken from every window, and the tokens
/// each window holds afterwards (minute, hour, day).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Taken {
    pub allowed: bool,
    pub tokens: [f64; 3],
}

/// The shared buckets, on a pool of their own (a check must not wait behind queries).
#[derive(Clone)]
pub struct SharedBuckets {
    pool: PgPool,
}

impl SharedBuckets {
    pub fn new(pool: PgPool) -> SharedBuckets {
        SharedBuckets { pool }
    }

    /// Takes a token from every window of `key` if each has one; `capacity` is the
    /// tokens per window (minute, hour, day).
    pub async fn take(&self, key: &str, capacity: [u32; 3]) -> Result<Taken, StoreError> {
        let [minute, hour, day] = capacity.map(f64::from);
        let row = self
            .pool
            .acquire()
            .await?
            .query_one(
                "SELECT allowed, minute, hour, day FROM kamiyo_rate_limit_take($1, $2, $3, $4)",
                &[&key, &minute, &hour, &day],
            )
            .await?;
        let f = Fields::of("rate_limit_buckets", &row);
        Ok(Taken {
            allowed: f.boolean("allowed")?,
            tokens: [float(&f, "minute")?, float(&f, "hour")?, float(&f, "day")?],
        })
    }

    /// The tokens `key` holds now (minute, hour, day), taking none; a caller never seen
    /// has full buckets.
    pub async fn peek(&self, key: &str, capacity: [u32; 3]) -> Result<[f64; 3], StoreError> {
        let [minute, hour, day] = capacity.map(f64::from);
        let row = self
            .pool
            .acquire()
            .await?
            .query_opt(
                "SELECT least($2, minute + e * $2 / 60) AS minute, \
                        least($3, hour + e * $3 / 3600) AS hour, \
                        least($4, day + e * $4 / 86400) AS day \
                 FROM (SELECT minute, hour, day, \
                              greatest(0, extract(epoch FROM clock_timestamp() - updated_at))::float8 AS e \
                       FROM rate_limit_buckets WHERE key = $1) AS b",
                &[&key, &minute, &hour, &day],
            )
            .await?;
        match row {
            None => Ok([minute, hour, day]),
            Some(row) => {
                let f = Fields::of("rate_limit_buckets", &row);
                Ok([float(&f, "minute")?, float(&f, "hour")?, float(&f, "day")?])
            }
        }
    }

    /// Deletes callers idle for `idle` (at least a day: their buckets are full again, so
    /// forgetting them changes nothing); how many.
    pub async fn sweep(&self, idle: Duration) -> Result<u64, StoreError> {
        let idle = idle.max(Duration::from_secs(86_400)).as_secs_f64();
        Ok(self
            .pool
            .acquire()
            .await?
            .execute(
                "DELETE FROM rate_limit_buckets \
                 WHERE updated_at < clock_timestamp() - make_interval(secs => $1)",
                &[&idle],
            )
            .await?)
    }
}

fn float(f: &Fields<'_, tokio_postgres::Row>, column: &'static str) -> Result<f64, StoreError> {
    f.opt_float(column)?
        .ok_or_else(|| StoreError::corrupt("rate_limit_buckets", column, "empty"))
}
