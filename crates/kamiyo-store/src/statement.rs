//! One statement on either backend: its parameters bound as each driver needs them and
//! its rows read by one mapping for both (through [`Fields`](crate::row::Fields)). For
//! repositories whose SQL differs between the backends in its text only, chosen by
//! [`Dialect`]; where the work itself differs (the incident ingest path), each backend
//! has its own module.

use chrono::{DateTime, Utc};
use kamiyo_db::Pool;
use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::{sqlite_time, DriverRow};

/// The dialect of the SQL `pool` runs.
pub(crate) fn dialect(pool: &Pool) -> Dialect {
    match pool {
        Pool::Postgres(_) => Dialect::Postgres,
        Pool::Sqlite(_) => Dialect::Sqlite,
    }
}

/// A statement's text on each backend (`$n` placeholders on PostgreSQL, `?n` on
/// SQLite), for statements whose text differs between them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sql {
    pub postgres: &'static str,
    pub sqlite: &'static str,
}

impl Sql {
    /// The text in `pool`'s dialect.
    pub fn for_pool(self, pool: &Pool) -> &'static str {
        dialect(pool).pick(self.postgres, self.sqlite)
    }
}

/// A statement parameter. A time is a `timestamptz` on PostgreSQL and SQLite's stored
/// text form ([`sqlite_time`]), a boolean 0 or 1 on SQLite.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
    OptBool(Option<bool>),
    Time(DateTime<Utc>),
    OptTime(Option<DateTime<Utc>>),
}

impl Param {
    fn postgres(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(value) => value,
            Param::OptText(value) => value,
            Param::Int(value) => value,
            Param::OptInt(value) => value,
            Param::Bool(value) => value,
            Param::OptBool(value) => value,
            Param::Time(value) => value,
            Param::OptTime(value) => value,
        }
    }

    fn sqlite(self) -> Value {
        match self {
            Param::Text(value) => Value::Text(value),
            Param::OptText(value) => value.map_or(Value::Null, Value::Text),
            Param::Int(value) => Value::Integer(value),
            Param::OptInt(value) => value.map_or(Value::Null, Value::Integer),
            Param::Bool(value) => Value::Integer(i64::from(value)),
            Param::OptBool(value) => value.map_or(Value::Null, |v| Value::Integer(i64::from(v))),
            Param::Time(value) => Value::Text(sqlite_time(value)),
            Param::OptTime(value) => value.map_or(Value::Null, |v| Value::Text(sqlite_time(v))),
        }
    }
}

/// `since..=until` as two parameters, an open end made a bound no stored time passes.
pub(crate) fn time_bounds(
    dialect: Dialect,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> [Param; 2] {
    match dialect {
        // timestamptz ends in year 294276, before chrono's maximum: a century ahead.
        Dialect::Postgres => [
            Param::Time(since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH)),
            Param::Time(until.unwrap_or_else(|| Utc::now() + chrono::Duration::days(365 * 100))),
        ],
        // Text order is time order; 'Z' sorts after every digit, so no stored time is above it.
        Dialect::Sqlite => [
            Param::Text(since.map(sqlite_time).unwrap_or_default()),
            Param::Text(until.map(sqlite_time).unwrap_or_else(|| "Z".into())),
        ],
    }
}

/// How one row becomes a value, the same for both drivers.
pub(crate) type ReadRow<T> = fn(&dyn DriverRow) -> Result<T, StoreError>;

/// The rows of `sql` (in `pool`'s dialect), each read by `read`.
pub(crate) async fn query<T: Send + 'static>(
    pool: &Pool,
    sql: &str,
    params: Vec<Param>,
    read: ReadRow<T>,
) -> Result<Vec<T>, StoreError> {
    match pool {
        Pool::Postgres(pool) => {
            let params: Vec<_> = params.iter().map(Param::postgres).collect();
            let rows = pool.acquire().await?.query(sql, &params).await?;
            rows.iter().map(|row| read(row)).collect()
        }
        Pool::Sqlite(pool) => {
            let params = params.into_iter().map(Param::sqlite).collect();
            // A row that does not read is the store's error, not the driver's: it comes
            // back as a value and the statement still counts as answered.
            let rows = pool
                .acquire()
                .await?
                .query(sql, params, move |row| Ok(read(row)))
                .await?;
            rows.into_iter().collect()
        }
    }
}

/// The one row of `sql`, which always returns one (an aggregate without `GROUP BY`).
pub(crate) async fn query_one<T: Send + 'static>(
    pool: &Pool,
    sql: &str,
    params: Vec<Param>,
    read: ReadRow<T>,
) -> Result<T, StoreError> {
    query(pool, sql, params, read)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Invariant(format!("no row from {sql}")))
}

/// The first row of `sql`, if any.
pub(crate) async fn query_opt<T: Send + 'static>(
    pool: &Pool,
    sql: &str,
    params: Vec<Param>,
    read: ReadRow<T>,
) -> Result<Option<T>, StoreError> {
    Ok(query(pool, sql, params, read).await?.into_iter().next())
}

/// Rows changed by `sql`.
pub(crate) async fn execute(pool: &Pool, sql: &str, params: Vec<Param>) -> Result<u64, StoreError> {
    match pool {
        Pool::Postgres(pool) => {
            let params: Vec<_> = params.iter().map(Param::postgres).collect();
            Ok(pool.acquire().await?.execute(sql, &params).await?)
        }
        Pool::Sqlite(pool) => {
            let params = params.into_iter().map(Param::sqlite).collect();
            Ok(pool.acquire().await?.execute(sql, params).await? as u64)
        }
    }
}

/// Runs `statements` in order, in one transaction: all of them or none. On SQLite the
/// transaction takes the write lock when it begins (`BEGIN IMMEDIATE`), where it waits
/// for another writer; a deferred one that read first would fail (`SQLITE_BUSY`) instead
/// of waiting when it came to write.
pub(crate) async fn execute_all(
    pool: &Pool,
    statements: Vec<(&'static str, Vec<Param>)>,
) -> Result<(), StoreError> {
    execute_in_one_transaction(pool, statements)
        .await
        .map(|_| ())
}

/// [`execute_all`], then `last` in the same transaction: the rows `last` changed.
pub(crate) async fn execute_all_counted(
    pool: &Pool,
    mut statements: Vec<(&'static str, Vec<Param>)>,
    last: (&'static str, Vec<Param>),
) -> Result<u64, StoreError> {
    statements.push(last);
    execute_in_one_transaction(pool, statements).await
}

/// `statements` in one transaction (see [`execute_all`]); the rows the last changed.
async fn execute_in_one_transaction(
    pool: &Pool,
    statements: Vec<(&'static str, Vec<Param>)>,
) -> Result<u64, StoreError> {
    let steps = statements
        .into_iter()
        .map(|(sql, params)| Step::new(sql, params))
        .collect();
    run_steps(pool, steps).await
}

/// One statement of a transaction that decides as it goes: when `guard` is set and the
/// statement changes another number of rows, the transaction is rolled back with that
/// refusal (a submission already reviewed by someone else, say).
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub sql: &'static str,
    pub params: Vec<Param>,
    pub guard: Option<Guard>,
}

/// What a guarded [`Step`] must change, and the refusal when it does not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Guard {
    pub rows: u64,
    pub field: &'static str,
    pub reason: &'static str,
}

impl Step {
    pub fn new(sql: &'static str, params: Vec<Param>) -> Step {
        Step {
            sql,
            params,
            guard: None,
        }
    }

    /// This step must change exactly `rows` rows, or the whole transaction is refused.
    pub fn must_change(mut self, rows: u64, field: &'static str, reason: &'static str) -> Step {
        self.guard = Some(Guard {
            rows,
            field,
            reason,
        });
        self
    }

    fn check(&self, changed: u64) -> Result<(), StoreError> {
        check(self.guard, changed)
    }
}

fn check(guard: Option<Guard>, changed: u64) -> Result<(), StoreError> {
    match guard {
        Some(guard) if guard.rows != changed => Err(StoreError::refused(guard.field, guard.reason)),
        _ => Ok(()),
    }
}

/// `steps` in order on an open PostgreSQL transaction, and the rows the last changed; the
/// first refusal stops them (the caller drops the transaction, which rolls it back).
pub(crate) async fn run_steps_postgres(
    tx: &kamiyo_db::postgres::PgTransaction<'_>,
    steps: &[Step],
) -> Result<u64, StoreError> {
    let mut changed = 0;
    for step in steps {
        let params: Vec<_> = step.params.iter().map(Param::postgres).collect();
        changed = tx.execute(step.sql, &params).await?;
        step.check(changed)?;
    }
    Ok(changed)
}

/// [`run_steps_postgres`] on an open SQLite transaction (`pool` names the pool in errors).
pub(crate) fn run_steps_sqlite(
    tx: &rusqlite::Connection,
    pool: &str,
    steps: Vec<Step>,
) -> Result<u64, StoreError> {
    let mut changed = 0;
    for step in steps {
        let guard = step.guard;
        let params = step.params.into_iter().map(Param::sqlite);
        changed = tx
            .execute(step.sql, rusqlite::params_from_iter(params))
            .map_err(|e| StoreError::Database(kamiyo_db::DbError::from_sqlite(pool, e)))?
            as u64;
        check(guard, changed)?;
    }
    Ok(changed)
}

/// `steps` in one transaction on either backend (see [`Step`] and [`execute_all`]); the
/// rows the last changed.
pub(crate) async fn run_steps(pool: &Pool, steps: Vec<Step>) -> Result<u64, StoreError> {
    match pool {
        Pool::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            let tx = conn.transaction().await?;
            let changed = run_steps_postgres(&tx, &steps).await?;
            tx.commit().await?;
            Ok(changed)
        }
        Pool::Sqlite(pool) => {
            let name = pool.name().to_owned();
            pool.acquire()
                .await?
                .run(move |c| {
                    let tx =
                        c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    match run_steps_sqlite(&tx, &name, steps) {
                        Ok(changed) => {
                            tx.commit()?;
                            Ok(Ok(changed))
                        }
                        Err(refused) => Ok(Err(refused)),
                    }
                })
                .await?
        }
    }
}
