//! The target: a session of its own (not from the pool: binary `COPY` needs the driver's
//! client, and the copy needs timeouts a service must not have), locks, emptying under
//! `--force`, `COPY ... FROM STDIN (FORMAT binary)` per table, and the sequences.

use std::collections::BTreeMap;
use std::pin::pin;

use kamiyo_db::{DbConfig, DbError};
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, GenericClient, NoTls, Transaction};

use super::error::{CopyError, Side, TargetError, Unreadable};
use super::fields::NamedRow;
use super::read::Message;
use super::report::SequenceReport;
use super::tables::{quote, Plan, Table};
use super::{CopyOptions, CopyProgress, TARGET_POOL};

fn db_error(e: tokio_postgres::Error) -> DbError {
    DbError::from_postgres(TARGET_POOL, e)
}

/// Opens the copy's session with the target's connection settings and the copy's own
/// statement and lock timeouts.
pub(crate) async fn connect(target: &DbConfig, options: &CopyOptions) -> Result<Client, CopyError> {
    let refuse = |source| CopyError::Target {
        target: target.url.redacted(),
        source,
    };
    let mut config = target.url.postgres_config("--to").map_err(refuse)?;
    let session = format!(
        "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
        options.statement_timeout.as_millis(),
        options.lock_timeout.as_millis(),
        target.idle_in_transaction_timeout.as_millis(),
    );
    config
        .application_name(format!("{} db copy", target.application_name))
        .options(&session)
        .connect_timeout(target.connect_timeout)
        .tcp_user_timeout(target.tcp_user_timeout)
        .keepalives(true)
        .keepalives_idle(target.keepalive_idle)
        .keepalives_interval(target.keepalive_interval)
        .keepalives_retries(target.keepalive_retries);
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| refuse(db_error(e)))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "the copy's target session ended with an error");
        }
    });
    Ok(client)
}

/// The tables among `tables` that hold at least one row.
pub(crate) async fn tables_with_rows<C: GenericClient>(
    client: &C,
    tables: impl IntoIterator<Item = &str>,
) -> Result<Vec<String>, TargetError> {
    let mut found = Vec::new();
    for table in tables {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {}) AS has_rows", quote(table));
        let row = client.query_one(&sql, &[]).await.map_err(db_error)?;
        if NamedRow::of(Side::Target, table, &row).boolean("has_rows")? {
            found.push(table.to_owned());
        }
    }
    Ok(found)
}

fn table_list(plan: &Plan) -> String {
    plan.tables
        .iter()
        .map(Table::quoted)
        .collect::<Vec<_>>()
        .join(", ")
}

/// EXCLUSIVE: nobody else writes the copied tables until the commit (readers still
/// read). Waits at most the lock timeout for a running service's transactions.
pub(crate) async fn lock(tx: &Transaction<'_>, plan: &Plan) -> Result<(), DbError> {
    tx.batch_execute(&format!(
        "LOCK TABLE {} IN EXCLUSIVE MODE",
        table_list(plan)
    ))
    .await
    .map_err(db_error)
}

/// Empties every copied table and restarts its identity, in the copy's transaction: a
/// failed copy rolls this back too. No CASCADE: every table that references a copied
/// table is copied itself, and anything else must not be emptied silently.
pub(crate) async fn truncate(tx: &Transaction<'_>, plan: &Plan) -> Result<(), DbError> {
    tx.batch_execute(&format!("TRUNCATE {} RESTART IDENTITY", table_list(plan)))
        .await
        .map_err(db_error)
}

/// Copies one table's rows as they arrive from the reader; returns how many the target
/// accepted. A failure aborts the COPY and leaves the transaction to be rolled back.
pub(crate) async fn copy_table(
    tx: &Transaction<'_>,
    index: usize,
    table: &Table,
    rows: &mut mpsc::Receiver<Message>,
    progress: &dyn CopyProgress,
) -> Result<u64, CopyError> {
    let failed = |e: tokio_postgres::Error| CopyError::Copy {
        table: table.name.clone(),
        source: db_error(e),
    };
    let sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        table.quoted(),
        table.column_list()
    );
    let sink = tx.copy_in(&sql).await.map_err(failed)?;
    let types: Vec<Type> = table.columns.iter().map(|c| c.kind.pg_type()).collect();
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
    loop {
        match rows.recv().await {
            Some(Message::Rows { table: t, rows }) if t == index => {
                for row in &rows {
                    let values: Vec<&(dyn ToSql + Sync)> =
                        row.iter().map(|cell| cell as &(dyn ToSql + Sync)).collect();
                    writer.as_mut().write(&values).await.map_err(failed)?;
                }
                progress.rows_copied(rows.len() as u64);
            }
            Some(Message::End { table: t }) if t == index => break,
            Some(_) => {
                return Err(CopyError::Reader(format!(
                    "rows of another table arrived while copying {}",
                    table.name
                )))
            }
            // The reader stopped: its own error says why (the caller awaits it).
            None => return Err(CopyError::Reader("the source stopped sending rows".into())),
        }
    }
    writer.as_mut().finish().await.map_err(failed)
}

/// Restarts every identity or serial sequence of the copied tables past the highest id
/// the source ever handed out: `max(id)`, or SQLite's AUTOINCREMENT high-water mark when
/// rows with the highest ids were deleted, so no id is handed out twice across the move.
/// `RESTART` rather than `setval()`: it rewrites the sequence in the transaction and is
/// rolled back with it, where `setval()` would survive a failed copy.
pub(crate) async fn reset_sequences(
    tx: &Transaction<'_>,
    plan: &Plan,
    source_sequences: &BTreeMap<String, i64>,
) -> Result<Vec<SequenceReport>, TargetError> {
    let rows = tx
        .query(
            "SELECT c.relname::text AS table_name, a.attname::text AS column_name, \
                    a.attidentity <> '' AS is_identity, \
                    pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) AS sequence \
             FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
               AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY c.relname, a.attnum",
            &[],
        )
        .await
        .map_err(db_error)?;
    let columns = rows
        .iter()
        .map(|row| {
            let fields = NamedRow::of(Side::Target, "pg_attribute", row);
            Ok((
                fields.text("table_name")?,
                fields.text("column_name")?,
                fields.boolean("is_identity")?,
                fields.opt_text("sequence")?,
            ))
        })
        .collect::<Result<Vec<_>, Unreadable>>()?;
    let mut reports = Vec::new();
    for table in &plan.tables {
        for (owner, column, identity, sequence) in &columns {
            if *owner != table.name {
                continue;
            }
            // Already quoted and qualified as needed, by pg_get_serial_sequence.
            let Some(sequence) = sequence else {
                continue;
            };
            let row = tx
                .query_one(
                    &format!(
                        "SELECT max({})::bigint AS last FROM {}",
                        quote(column),
                        table.quoted()
                    ),
                    &[],
                )
                .await
                .map_err(db_error)?;
            let max = NamedRow::of(Side::Target, &table.name, &row).opt_int("last")?;
            let high_water = if table.rowid_column.as_deref() == Some(column.as_str()) {
                source_sequences.get(&table.name).copied()
            } else {
                None
            };
            let next_value = max
                .max(high_water)
                .filter(|last| *last >= 1)
                .map_or(1, |last| last.saturating_add(1));
            let restart = if *identity {
                format!(
                    "ALTER TABLE {} ALTER COLUMN {} RESTART WITH {next_value}",
                    table.quoted(),
                    quote(column)
                )
            } else {
                format!("ALTER SEQUENCE {sequence} RESTART WITH {next_value}")
            };
            tx.batch_execute(&restart).await.map_err(db_error)?;
            reports.push(SequenceReport {
                table: table.name.clone(),
                column: column.clone(),
                next_value,
            });
        }
    }
    Ok(reports)
}
