//! Statement methods of a pooled connection and of its transactions. Each one times the
//! statement into the pool's monitor (failures included) and returns typed errors; the
//! SQL text is fingerprinted there, its parameter values are never recorded.

use std::future::Future;
use std::time::Instant;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, SimpleQueryMessage, Statement, Transaction};

use super::PgConnection;
use crate::error::DbError;
use crate::monitor::PoolMonitor;

pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Statements a session has prepared, by SQL text; bounded, emptied when full (a
/// service runs a few dozen distinct statements; a flood of ad-hoc SQL must not grow it).
type StatementCache = parking_lot::Mutex<std::collections::HashMap<String, Statement>>;
const MAX_CACHED_STATEMENTS: usize = 256;

async fn prepared<C: tokio_postgres::GenericClient>(
    client: &C,
    cache: &StatementCache,
    sql: &str,
) -> Result<Statement, tokio_postgres::Error> {
    if let Some(statement) = cache.lock().get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql).await?;
    let mut cache = cache.lock();
    if cache.len() >= MAX_CACHED_STATEMENTS {
        cache.clear();
    }
    cache.insert(sql.to_owned(), statement.clone());
    Ok(statement)
}

/// A transaction on a pooled connection. Dropped without `commit()`, it rolls back.
pub struct PgTransaction<'a> {
    tx: Transaction<'a>,
    monitor: &'a PoolMonitor,
    statements: &'a StatementCache,
}

impl PgConnection {
    pub async fn transaction(&mut self) -> Result<PgTransaction<'_>, DbError> {
        let started = Instant::now();
        let session = &mut *self.object;
        let result = session.client.transaction().await;
        record(&self.monitor, "BEGIN", started, result.as_ref().map(|_| 0));
        let tx = result.map_err(|e| DbError::from_postgres(self.monitor.pool(), e))?;
        Ok(PgTransaction {
            tx,
            monitor: &self.monitor,
            statements: &session.statements,
        })
    }
}

impl PgTransaction<'_> {
    pub async fn commit(self) -> Result<(), DbError> {
        let started = Instant::now();
        let result = self.tx.commit().await;
        record(self.monitor, "COMMIT", started, result.as_ref().map(|_| 0));
        result.map_err(|e| DbError::from_postgres(self.monitor.pool(), e))
    }

    pub async fn rollback(self) -> Result<(), DbError> {
        let started = Instant::now();
        let result = self.tx.rollback().await;
        record(
            self.monitor,
            "ROLLBACK",
            started,
            result.as_ref().map(|_| 0),
        );
        result.map_err(|e| DbError::from_postgres(self.monitor.pool(), e))
    }

    fn client(&self) -> &Transaction<'_> {
        &self.tx
    }

    fn statements(&self) -> &StatementCache {
        self.statements
    }
}

impl PgConnection {
    fn statements(&self) -> &StatementCache {
        &self.object.statements
    }
}

fn record<T>(monitor: &PoolMonitor, sql: &str, started: Instant, result: Result<u64, &T>) {
    let elapsed = started.elapsed();
    match result {
        Ok(rows) => monitor.record_query(sql, elapsed, rows, false),
        Err(_) => monitor.record_query(sql, elapsed, 0, true),
    }
}

async fn timed<T, F>(
    monitor: &PoolMonitor,
    sql: &str,
    run: F,
    rows: impl Fn(&T) -> u64,
) -> Result<T, DbError>
where
    F: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let started = Instant::now();
    let result = run.await;
    record(monitor, sql, started, result.as_ref().map(&rows));
    result.map_err(|e| DbError::from_postgres(monitor.pool(), e))
}

/// The same statement methods on connections and transactions.
macro_rules! statement_methods {
    ($type:ty) => {
        impl $type {
            /// Rows of a statement.
            pub async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, DbError> {
                let run = async {
                    let statement = prepared(self.client(), self.statements(), sql).await?;
                    self.client().query(&statement, params).await
                };
                timed(&self.monitor, sql, run, |rows| rows.len() as u64).await
            }

            /// The one row of a statement; `NotFound` when there is none.
            pub async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, DbError> {
                self.query_opt(sql, params)
                    .await?
                    .ok_or_else(|| DbError::not_found("row"))
            }

            /// At most one row; more than one is an error.
            pub async fn query_opt(
                &self,
                sql: &str,
                params: Params<'_>,
            ) -> Result<Option<Row>, DbError> {
                let run = async {
                    let statement = prepared(self.client(), self.statements(), sql).await?;
                    self.client().query_opt(&statement, params).await
                };
                timed(&self.monitor, sql, run, |row| u64::from(row.is_some())).await
            }

            /// Rows affected by a statement.
            pub async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, DbError> {
                let run = async {
                    let statement = prepared(self.client(), self.statements(), sql).await?;
                    self.client().execute(&statement, params).await
                };
                timed(&self.monitor, sql, run, |n| *n).await
            }

            /// Several statements separated by semicolons, without parameters.
            pub async fn batch_execute(&self, sql: &str) -> Result<(), DbError> {
                timed(&self.monitor, sql, self.client().batch_execute(sql), |_| 0).await
            }

            /// The simple query protocol: every value comes back as text.
            pub async fn simple_query(
                &self,
                sql: &str,
            ) -> Result<Vec<SimpleQueryMessage>, DbError> {
                timed(
                    &self.monitor,
                    sql,
                    self.client().simple_query(sql),
                    |messages| {
                        messages
                            .iter()
                            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
                            .count() as u64
                    },
                )
                .await
            }
        }
    };
}

statement_methods!(PgConnection);
statement_methods!(PgTransaction<'_>);
