//! One statement on either backend, written once: its SQL per dialect side by side
//! ([`Sql`]), its parameters as backend-neutral values ([`Param`]), its rows read by
//! column name ([`Fields`](crate::row::Fields)). For the aggregates whose statements
//! are single and small (accounts, source registry); the incident ingest path has its
//! own batched I/O.

use kamiyo_db::Pool;

use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::DriverRow;

/// A statement's text on each backend (`$n` placeholders on PostgreSQL, `?n` on SQLite).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sql {
    pub postgres: &'static str,
    pub sqlite: &'static str,
}

impl Sql {
    pub fn text(self, dialect: Dialect) -> &'static str {
        dialect.pick(self.postgres, self.sqlite)
    }
}

/// A parameter value both drivers can bind.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
}

impl Param {
    fn sqlite(self) -> rusqlite::types::Value {
        use rusqlite::types::Value;
        match self {
            Param::Int(v) => Value::Integer(v),
            Param::OptInt(v) => v.map_or(Value::Null, Value::Integer),
            Param::Text(v) => Value::Text(v),
            Param::OptText(v) => v.map_or(Value::Null, Value::Text),
        }
    }

    fn postgres(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Param::Int(v) => v,
            Param::OptInt(v) => v,
            Param::Text(v) => v,
            Param::OptText(v) => v,
        }
    }
}

/// A row reader: the same function reads a row of either driver.
pub(crate) type Read<T> = fn(&dyn DriverRow) -> Result<T, StoreError>;

/// Every row of `sql`, read by `read`.
pub(crate) async fn rows<T: Send + 'static>(
    pool: &Pool,
    sql: Sql,
    params: Vec<Param>,
    read: Read<T>,
) -> Result<Vec<T>, StoreError> {
    match pool {
        Pool::Postgres(pool) => {
            let conn = pool.acquire().await?;
            let bound: Vec<_> = params.iter().map(Param::postgres).collect();
            let rows = conn.query(sql.text(Dialect::Postgres), &bound).await?;
            rows.iter().map(|row| read(row)).collect()
        }
        Pool::Sqlite(pool) => {
            let conn = pool.acquire().await?;
            let values: Vec<_> = params.into_iter().map(Param::sqlite).collect();
            conn.run(move |c| {
                let mut statement = c.prepare_cached(sql.text(Dialect::Sqlite))?;
                let mut rows = statement.query(rusqlite::params_from_iter(values))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    match read(row) {
                        Ok(value) => out.push(value),
                        Err(error) => return Ok(Err(error)),
                    }
                }
                Ok(Ok(out))
            })
            .await?
        }
    }
}

/// The first row of `sql`, if any.
pub(crate) async fn row<T: Send + 'static>(
    pool: &Pool,
    sql: Sql,
    params: Vec<Param>,
    read: Read<T>,
) -> Result<Option<T>, StoreError> {
    Ok(rows(pool, sql, params, read).await?.into_iter().next())
}

/// Rows changed by `sql`.
pub(crate) async fn execute(pool: &Pool, sql: Sql, params: Vec<Param>) -> Result<u64, StoreError> {
    match pool {
        Pool::Postgres(pool) => {
            let conn = pool.acquire().await?;
            let bound: Vec<_> = params.iter().map(Param::postgres).collect();
            Ok(conn.execute(sql.text(Dialect::Postgres), &bound).await?)
        }
        Pool::Sqlite(pool) => {
            let conn = pool.acquire().await?;
            let values = params.into_iter().map(Param::sqlite).collect();
            Ok(conn.execute(sql.text(Dialect::Sqlite), values).await? as u64)
        }
    }
}
