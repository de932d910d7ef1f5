//! Statement methods of a pooled connection and of its transactions. Each one times the
//! statement into the pool's monitor (failures included) and returns typed errors; the
//! SQL text is fingerprinted there, its parameter values are never recorded.

use std::future::Future;
use std::time::Instant;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, SimpleQueryMessage, Transaction};

use super::PgConnection;
use crate::error::DbError;
use crate::monitor::PoolMonitor;

pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A transaction on a pooled connection. Dropped without `commit()`, it rolls back.
pub struct PgTransaction<'a> {
    tx: Transaction<'a>,
    monitor: &'a PoolMonitor,
}

impl PgConnection {
    pub async fn transaction(&mut self) -> Result<PgTransaction<'_>, DbError> {
        let started = Instant::now();
        let result = self.object.client.transaction().await;
        record(&self.monitor, "BEGIN", started, result.as_ref().map(|_| 0));
        let tx = result.map_err(|e| DbError::from_postgres(self.monitor.pool(), e))?;
        Ok(PgTransaction {
            tx,
            monitor: &self.monitor,
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
                timed(
                    &self.monitor,
                    sql,
                    self.client().query(sql, params),
                    |rows| rows.len() as u64,
                )
                .await
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
                timed(
                    &self.monitor,
                    sql,
                    self.client().query_opt(sql, params),
                    |row| u64::from(row.is_some()),
                )
                .await
            }

            /// Rows affected by a statement.
            pub async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, DbError> {
                timed(
                    &self.monitor,
                    sql,
                    self.client().execute(sql, params),
                    |n| *n,
                )
                .await
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
