//! Checks run on the target inside the copy's transaction, before the commit: row counts,
//! orphaned references for every foreign key the target's catalog has, and sampled rows
//! compared field by field with what was read from the source.

use kamiyo_db::DbError;
use tokio_postgres::Transaction;

use super::error::{Side, TargetError, Unreadable};
use super::fields::NamedRow;
use super::report::{ForeignKeyReport, Mismatch};
use super::tables::{quote, ForeignKey, Table};
use super::value::Cell;
use super::TARGET_POOL;

fn db_error(e: tokio_postgres::Error) -> DbError {
    DbError::from_postgres(TARGET_POOL, e)
}

pub(crate) async fn count(tx: &Transaction<'_>, table: &Table) -> Result<u64, TargetError> {
    let row = tx
        .query_one(
            &format!("SELECT count(*) AS row_count FROM {}", table.quoted()),
            &[],
        )
        .await
        .map_err(db_error)?;
    let n = NamedRow::of(Side::Target, &table.name, &row).int("row_count")?;
    Ok(u64::try_from(n).unwrap_or_default())
}

/// Child rows whose referenced parent row does not exist. MATCH SIMPLE, as the
/// constraints are: a row with a NULL in the reference references nothing.
pub(crate) async fn orphans(
    tx: &Transaction<'_>,
    fk: &ForeignKey,
) -> Result<ForeignKeyReport, TargetError> {
    let not_null = fk
        .columns
        .iter()
        .map(|c| format!("c.{} IS NOT NULL", quote(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let joined = fk
        .columns
        .iter()
        .zip(&fk.parent_columns)
        .map(|(c, p)| format!("p.{} = c.{}", quote(p), quote(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "SELECT count(*) AS orphans FROM {} AS c WHERE {not_null} \
         AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {joined})",
        quote(&fk.table),
        quote(&fk.parent)
    );
    let row = tx.query_one(&sql, &[]).await.map_err(db_error)?;
    let orphans = NamedRow::of(Side::Target, &fk.table, &row).int("orphans")?;
    Ok(ForeignKeyReport {
        constraint: fk.name.clone(),
        table: fk.table.clone(),
        columns: fk.columns.clone(),
        references: format!("{}({})", fk.parent, fk.parent_columns.join(", ")),
        orphans: u64::try_from(orphans).unwrap_or_default(),
    })
}

/// The sampled row's position among the keys looked up, named so that no column of a
/// copied table can take its name.
const ORD: &str = "sample position";

/// Finds each sampled row in the target by its key (one query per table) and compares
/// every column after normalisation.
pub(crate) async fn compare_sample(
    tx: &Transaction<'_>,
    table: &Table,
    sampled: &[Vec<Cell>],
) -> Result<Vec<Mismatch>, TargetError> {
    if sampled.is_empty() || table.key.is_empty() {
        return Ok(Vec::new());
    }
    let key_arrays: Vec<Vec<Option<String>>> = table
        .key
        .iter()
        .map(|&k| sampled.iter().map(|row| row[k].key_text()).collect())
        .collect();
    let aliases: Vec<String> = (0..table.key.len()).map(|i| format!("k{i}")).collect();
    let unnest = (1..=table.key.len())
        .map(|n| format!("${n}::text[]"))
        .collect::<Vec<_>>()
        .join(", ");
    let join = table
        .key
        .iter()
        .zip(&aliases)
        .map(|(&k, alias)| {
            let column = &table.columns[k];
            format!(
                "t.{} = k.{alias}::{}",
                quote(&column.name),
                column.data_type
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    // Every column under its own name, so that it is read back by name.
    let select = table
        .columns
        .iter()
        .map(|c| {
            let name = quote(&c.name);
            format!("{} AS {name}", c.kind.pg_select(&format!("t.{name}")))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {select}, k.ord AS {} FROM {} AS t \
         JOIN unnest({unnest}) WITH ORDINALITY AS k({}, ord) ON {join}",
        quote(ORD),
        table.quoted(),
        aliases.join(", ")
    );
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = key_arrays
        .iter()
        .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let rows = tx.query(&sql, &params).await.map_err(db_error)?;
    let mut found: Vec<Option<Vec<Cell>>> = vec![None; sampled.len()];
    for row in &rows {
        let ord = NamedRow::of(Side::Target, &table.name, row).int(ORD)?;
        let cells = table
            .columns
            .iter()
            .map(|c| {
                Cell::from_pg(c.kind, row, &c.name).map_err(|reason| Unreadable {
                    side: Side::Target,
                    table: table.name.clone(),
                    column: c.name.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(slot) = usize::try_from(ord - 1).ok().and_then(|i| found.get_mut(i)) {
            *slot = Some(cells);
        }
    }
    let mut mismatches = Vec::new();
    for (source, target) in sampled.iter().zip(found) {
        let key = table
            .key
            .iter()
            .map(|&k| format!("{}={}", table.columns[k].name, source[k]))
            .collect::<Vec<_>>()
            .join(", ");
        let Some(target) = target else {
            mismatches.push(Mismatch {
                key,
                column: "(row)".into(),
                source: "present".into(),
                target: "missing".into(),
            });
            continue;
        };
        for ((column, s), t) in table.columns.iter().zip(source).zip(&target) {
            if !s.same(t) {
                mismatches.push(Mismatch {
                    key: key.clone(),
                    column: column.name.clone(),
                    source: s.to_string(),
                    target: t.to_string(),
                });
            }
        }
    }
    Ok(mismatches)
}
