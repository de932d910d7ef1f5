//! Statement methods of a pooled connection and of its transactions. Each one times the
//! statement into the pool's monitor (failures included) and returns typed errors; the
//! SQL text is fingerprinted there, its parameter values are never recorded. Each one
//! also has a client-side deadline (`statement_timeout` plus a grace), and a statement
//! abandoned by that deadline or by its caller is cancelled on the server (`cancel.rs`).

use std::pin::pin;
use std::time::Instant;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, SimpleQueryMessage, Statement, Transaction};

use super::cancel::{within_deadline, InFlight, SessionControl};
use super::manager::TypeCache;
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

/// Parameter types of `sql`, for sending it unnamed behind a pooler in transaction mode
/// (`database.transaction_pooling`): learned once per SQL text by preparing it, and kept.
/// A named statement exists only in the server session that prepared it, and behind such
/// a pooler a server session is a client's only within a transaction: `outside_tx`
/// wraps the prepare in one, and the statement is closed (when dropped here) before it
/// ends, so nothing is left in a server session another client will use.
async fn param_types<C: tokio_postgres::GenericClient>(
    client: &C,
    cache: &TypeCache,
    sql: &str,
    outside_tx: bool,
) -> Result<std::sync::Arc<[Type]>, tokio_postgres::Error> {
    if let Some(types) = cache.lock().get(sql) {
        return Ok(types.clone());
    }
    if outside_tx {
        client.batch_execute("BEGIN").await?;
    }
    let learned: Result<std::sync::Arc<[Type]>, _> = client
        .prepare(sql)
        .await
        .map(|statement| statement.params().into());
    if outside_tx {
        client
            .batch_execute(if learned.is_ok() {
                "COMMIT"
            } else {
                "ROLLBACK"
            })
            .await?;
    }
    let types = learned?;
    let mut cache = cache.lock();
    if cache.len() >= MAX_CACHED_STATEMENTS {
        cache.clear();
    }
    cache.insert(sql.to_owned(), types.clone());
    Ok(types)
}

/// `params` with the types the statement declares.
fn typed<'p>(params: Params<'p>, types: &[Type]) -> Vec<(&'p (dyn ToSql + Sync), Type)> {
    params.iter().copied().zip(types.iter().cloned()).collect()
}

/// A transaction on a pooled connection. Dropped without `commit()`, it rolls back.
pub struct PgTransaction<'a> {
    tx: Transaction<'a>,
    monitor: &'a PoolMonitor,
    statements: &'a StatementCache,
    types: Option<&'a TypeCache>,
    control: &'a SessionControl,
}

impl PgConnection {
    pub async fn transaction(&mut self) -> Result<PgTransaction<'_>, DbError> {
        let started = Instant::now();
        let session = &mut **self.object;
        let control = &session.control;
        let mut in_flight = control.start(started);
        let statement = pin!(session.client.transaction());
        let result = within_deadline(&mut in_flight, statement).await;
        let tx = finish(&self.monitor, in_flight, "BEGIN", started, result, |_| 0)?;
        let tx = PgTransaction {
            tx,
            monitor: &self.monitor,
            statements: &session.statements,
            types: session.types.as_deref(),
            control,
        };
        if let Some(ms) = session.local_timeouts_ms {
            tx.batch_execute(&format!(
                "SET LOCAL statement_timeout = {ms}; SET LOCAL idle_in_transaction_session_timeout = {ms}"
            ))
            .await?;
        }
        Ok(tx)
    }
}

impl PgConnection {
    /// Makes this session fit one long maintenance job (a remerge of every incident):
    /// its server-side `statement_timeout` and `idle_in_transaction_session_timeout`
    /// become `timeout`, and so does its client-side statement deadline (plus the
    /// grace). The session is closed when returned, never handed to a request with
    /// these settings.
    /// Behind a pooler in transaction mode the server-side settings are set by each
    /// transaction of the session instead (`SET LOCAL`).
    pub async fn lengthen_timeouts(&mut self, timeout: std::time::Duration) -> Result<(), DbError> {
        let ms = timeout.as_millis().max(1);
        if self.object.types.is_some() {
            self.object.local_timeouts_ms = Some(ms);
        } else {
            self.batch_execute(&format!(
                "SET statement_timeout = {ms}; SET idle_in_transaction_session_timeout = {ms}"
            ))
            .await?;
        }
        self.object
            .control
            .lengthen(timeout + super::cancel::CLIENT_DEADLINE_GRACE);
        Ok(())
    }
}

impl PgConnection {
    /// A read-only transaction on one snapshot (`REPEATABLE READ READ ONLY`, begun in
    /// one statement): for a read made of several statements that must agree with each
    /// other while writers commit in between.
    pub async fn snapshot(&mut self) -> Result<PgTransaction<'_>, DbError> {
        let started = Instant::now();
        let session = &mut **self.object;
        let control = &session.control;
        let mut in_flight = control.start(started);
        let statement = pin!(session
            .client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start());
        let result = within_deadline(&mut in_flight, statement).await;
        let tx = finish(&self.monitor, in_flight, "BEGIN", started, result, |_| 0)?;
        Ok(PgTransaction {
            tx,
            monitor: &self.monitor,
            statements: &session.statements,
            types: session.types.as_deref(),
            control,
        })
    }
}

impl PgTransaction<'_> {
    pub async fn commit(self) -> Result<(), DbError> {
        let started = Instant::now();
        let mut in_flight = self.control.start(started);
        let statement = pin!(self.tx.commit());
        let result = within_deadline(&mut in_flight, statement).await;
        finish(self.monitor, in_flight, "COMMIT", started, result, |_| 0)
    }

    pub async fn rollback(self) -> Result<(), DbError> {
        let started = Instant::now();
        let mut in_flight = self.control.start(started);
        let statement = pin!(self.tx.rollback());
        let result = within_deadline(&mut in_flight, statement).await;
        finish(self.monitor, in_flight, "ROLLBACK", started, result, |_| 0)
    }

    fn client(&self) -> &Transaction<'_> {
        &self.tx
    }

    fn statements(&self) -> &StatementCache {
        self.statements
    }

    fn types(&self) -> Option<&TypeCache> {
        self.types
    }

    fn control(&self) -> &SessionControl {
        self.control
    }
}

impl PgConnection {
    fn statements(&self) -> &StatementCache {
        &self.object.statements
    }

    fn types(&self) -> Option<&TypeCache> {
        self.object.types.as_deref()
    }

    fn control(&self) -> &SessionControl {
        &self.object.control
    }
}

fn record<T>(monitor: &PoolMonitor, sql: &str, started: Instant, result: Result<u64, &T>) {
    let elapsed = started.elapsed();
    match result {
        Ok(rows) => monitor.record_query(sql, elapsed, rows, false),
        Err(_) => monitor.record_query(sql, elapsed, 0, true),
    }
}

/// Records a statement that started at `started`, settles its in-flight guard (a
/// statement past its client-side deadline is abandoned) and maps its error. Each method
/// awaits its statement in its own body and then calls this: an `async fn` taking the
/// statement's future as an argument would hold that future twice in its state
/// (rust-lang/rust#62958), and every query would copy both (found with callgrind).
fn finish<T>(
    monitor: &PoolMonitor,
    in_flight: InFlight<'_>,
    sql: &str,
    started: Instant,
    result: Option<Result<T, tokio_postgres::Error>>,
    rows: impl Fn(&T) -> u64,
) -> Result<T, DbError> {
    let result = match result {
        Some(answer) => {
            in_flight.answered();
            answer
        }
        None => {
            let error = in_flight.expired(monitor.pool());
            record(monitor, sql, started, Err(&error));
            return Err(error);
        }
    };
    record(monitor, sql, started, result.as_ref().map(&rows));
    result.map_err(|e| DbError::from_postgres(monitor.pool(), e))
}

/// The same statement methods on connections and transactions.
/// `$outside_tx`: whether a statement of `$type` runs outside a transaction (see
/// [`param_types`]).
macro_rules! statement_methods {
    ($type:ty, $outside_tx:expr) => {
        impl $type {
            /// Rows of a statement.
            pub async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, DbError> {
                let started = Instant::now();
                let mut in_flight = self.control().start(started);
                let statement = pin!(async {
                    if let Some(cache) = self.types() {
                        let types = param_types(self.client(), cache, sql, $outside_tx).await?;
                        return self.client().query_typed(sql, &typed(params, &types)).await;
                    }
                    let statement = prepared(self.client(), self.statements(), sql).await?;
                    self.client().query(&statement, params).await
                });
                let result = within_deadline(&mut in_flight, statement).await;
                finish(&self.monitor, in_flight, sql, started, result, |rows| {
                    rows.len() as u64
                })
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
                let started = Instant::now();
                let mut in_flight = self.control().start(started);
                let statement = pin!(async {
                    if let Some(cache) = self.types() {
                        let types = param_types(self.client(), cache, sql, $outside_tx).await?;
                        return self
                            .client()
                            .query_typed_opt(sql, &typed(params, &types))
                            .await;
                    }
                    let statement = prepared(self.client(), self.statements(), sql).await?;
                    self.client().query_opt(&statement, params).await
                });
                let result = within_deadline(&mut in_flight, statement).await;
                finish(&self.monitor, in_flight, sql, started, result, |row| {
                    u64::from(row.is_some())
                })
            }

            /// Rows affected by a statement.
            pub async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, DbError> {
                let started = Instant::now();
                let mut in_flight = self.control().start(started);
                let statement = pin!(async {
                    if let Some(cache) = self.types() {
                        use futures_util::StreamExt;
                        let types = param_types(self.client(), cache, sql, $outside_tx).await?;
                        let rows = self
                            .client()
                            .query_typed_raw(sql, typed(params, &types))
                            .await?;
                        let mut rows = std::pin::pin!(rows);
                        while let Some(row) = rows.next().await {
                            row?;
                        }
                        return Ok(rows.rows_affected().unwrap_or(0));
                    }
                    let statement = prepared(self.client(), self.statements(), sql).await?;
                    self.client().execute(&statement, params).await
                });
                let result = within_deadline(&mut in_flight, statement).await;
                finish(&self.monitor, in_flight, sql, started, result, |n| *n)
            }

            /// Several statements separated by semicolons, without parameters. The
            /// client-side deadline covers the whole batch (the server's
            /// `statement_timeout` covers each statement).
            pub async fn batch_execute(&self, sql: &str) -> Result<(), DbError> {
                let started = Instant::now();
                let mut in_flight = self.control().start(started);
                let statement = pin!(self.client().batch_execute(sql));
                let result = within_deadline(&mut in_flight, statement).await;
                finish(&self.monitor, in_flight, sql, started, result, |_| 0)
            }

            /// The simple query protocol: every value comes back as text.
            pub async fn simple_query(
                &self,
                sql: &str,
            ) -> Result<Vec<SimpleQueryMessage>, DbError> {
                let started = Instant::now();
                let mut in_flight = self.control().start(started);
                let statement = pin!(self.client().simple_query(sql));
                let result = within_deadline(&mut in_flight, statement).await;
                finish(&self.monitor, in_flight, sql, started, result, |messages| {
                    messages
                        .iter()
                        .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
                        .count() as u64
                })
            }
        }
    };
}

statement_methods!(PgConnection, true);
statement_methods!(PgTransaction<'_>, false);
