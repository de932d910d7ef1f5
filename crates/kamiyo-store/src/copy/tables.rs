//! What is copied, read from both catalogs rather than listed by hand: every table of the
//! target's schema but the migrations bookkeeping and [`NOT_COPIED`], with every column, parents before
//! children. The two catalogs must agree table by table and column by column; a column a
//! later migration adds on one side only stops the copy with its name instead of being
//! dropped.

use std::collections::{BTreeMap, BTreeSet};

use kamiyo_db::migrate::MIGRATIONS_TABLE;
use kamiyo_db::DbError;
use tokio_postgres::GenericClient;

use super::error::{CopyError, Side, TargetError};
use super::fields::NamedRow;
use super::value::Kind;
use super::TARGET_POOL;

/// State that belongs to the running service, not to the data: the shared rate-limit
/// buckets (unlogged on PostgreSQL, never written on SQLite). A copy neither reads nor
/// fills it.
pub(crate) const NOT_COPIED: &str = "rate_limit_buckets";

/// A table as SQLite's catalog (`pragma_table_info`) describes it.
#[derive(Debug, Clone)]
pub(crate) struct SourceTable {
    pub name: String,
    pub columns: Vec<SourceColumn>,
}

#[derive(Debug, Clone)]
pub(crate) struct SourceColumn {
    pub name: String,
    /// The declared type, upper-cased (`INTEGER`, `TEXT`).
    pub declared: String,
    /// Position in the primary key, 0 when not part of it.
    pub pk: i64,
}

/// The target's tables, columns, usable keys and foreign keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct TargetCatalog {
    pub tables: BTreeMap<String, TargetTable>,
    pub foreign_keys: Vec<ForeignKey>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TargetTable {
    /// Name and `information_schema` data type, in column order.
    pub columns: Vec<(String, String)>,
    /// The primary key, else the first unique index over NOT NULL plain columns.
    pub key: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub(crate) struct ForeignKey {
    pub name: String,
    pub table: String,
    pub columns: Vec<String>,
    pub parent: String,
    pub parent_columns: Vec<String>,
}

/// The copy's plan: tables in an order where every parent precedes its children, so
/// the target's foreign keys can be checked row by row as the rows arrive.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub tables: Vec<Table>,
    pub foreign_keys: Vec<ForeignKey>,
}

#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    /// Indices of the key columns: rows are read in key order, samples found by key.
    /// Empty when the table has no usable key (it is then ordered by every column and
    /// not sampled).
    pub key: Vec<usize>,
    /// The source's `INTEGER PRIMARY KEY` column, whose high-water mark SQLite keeps in
    /// `sqlite_sequence` (AUTOINCREMENT: an id is never handed out twice).
    pub rowid_column: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub kind: Kind,
    /// The target's type name, for casts (`bigint`, `text`).
    pub data_type: String,
}

impl Table {
    pub(crate) fn quoted(&self) -> String {
        quote(&self.name)
    }

    pub(crate) fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `ORDER BY` list: the key, or every column when there is none.
    pub(crate) fn order_by(&self) -> String {
        if self.key.is_empty() {
            self.column_list()
        } else {
            self.key
                .iter()
                .map(|&i| quote(&self.columns[i].name))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// An identifier, double-quoted: names come from catalogs and are never trusted as SQL.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Reads the target's catalog (inside the copy's transaction, so it cannot change).
pub(crate) async fn target_catalog<C: GenericClient>(
    client: &C,
) -> Result<TargetCatalog, TargetError> {
    let err = |e| DbError::from_postgres(TARGET_POOL, e);
    let mut catalog = TargetCatalog::default();
    for row in client
        .query(
            "SELECT c.relname::text AS relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND c.relname <> $1 AND c.relname <> $2",
            &[&MIGRATIONS_TABLE, &NOT_COPIED],
        )
        .await
        .map_err(err)?
    {
        let name = NamedRow::of(Side::Target, "pg_class", &row).text("relname")?;
        catalog.tables.insert(name, TargetTable::default());
    }
    for row in client
        .query(
            "SELECT table_name::text AS table_name, column_name::text AS column_name, \
                    data_type::text AS data_type \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .map_err(err)?
    {
        let fields = NamedRow::of(Side::Target, "information_schema.columns", &row);
        if let Some(entry) = catalog.tables.get_mut(&fields.text("table_name")?) {
            entry
                .columns
                .push((fields.text("column_name")?, fields.text("data_type")?));
        }
    }
    // Unique indexes usable as a row's identity: plain columns, no predicate, every key
    // column NOT NULL (NULLs are distinct, so they would not identify a row). The
    // primary key first.
    for row in client
        .query(
            "SELECT c.relname::text AS table_name, \
                    array(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, pos) \
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                          WHERE k.pos <= i.indnkeyatts ORDER BY k.pos) AS key_columns, \
                    NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, pos) \
                          LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                          WHERE k.pos <= i.indnkeyatts AND (a.attnum IS NULL OR NOT a.attnotnull)) AS usable \
             FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_class ci ON ci.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND i.indisunique \
               AND i.indexprs IS NULL AND i.indpred IS NULL \
             ORDER BY c.relname, i.indisprimary DESC, ci.relname",
            &[],
        )
        .await
        .map_err(err)?
    {
        let fields = NamedRow::of(Side::Target, "pg_index", &row);
        let usable = fields.boolean("usable")?;
        if let Some(entry) = catalog.tables.get_mut(&fields.text("table_name")?) {
            if entry.key.is_none() && usable {
                entry.key = Some(fields.text_list("key_columns")?);
            }
        }
    }
    catalog.foreign_keys = foreign_keys(client).await?;
    Ok(catalog)
}

/// Every foreign key of the target's schema, from `pg_constraint`.
pub(crate) async fn foreign_keys<C: GenericClient>(
    client: &C,
) -> Result<Vec<ForeignKey>, TargetError> {
    let rows = client
        .query(
            "SELECT con.conname::text AS name, cl.relname::text AS table_name, pl.relname::text AS parent, \
                    array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, pos) \
                          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.pos) \
                        AS columns, \
                    array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, pos) \
                          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.pos) \
                        AS parent_columns \
             FROM pg_constraint con \
             JOIN pg_class cl ON cl.oid = con.conrelid \
             JOIN pg_class pl ON pl.oid = con.confrelid \
             JOIN pg_namespace n ON n.oid = cl.relnamespace \
             WHERE con.contype = 'f' AND n.nspname = current_schema() \
             ORDER BY cl.relname, con.conname",
            &[],
        )
        .await
        .map_err(|e| DbError::from_postgres(TARGET_POOL, e))?;
    let foreign_key = |row: &tokio_postgres::Row| -> Result<ForeignKey, TargetError> {
        let fields = NamedRow::of(Side::Target, "pg_constraint", row);
        Ok(ForeignKey {
            name: fields.text("name")?,
            table: fields.text("table_name")?,
            parent: fields.text("parent")?,
            columns: fields.text_list("columns")?,
            parent_columns: fields.text_list("parent_columns")?,
        })
    };
    rows.iter().map(foreign_key).collect()
}

/// Matches the two catalogs and orders the tables. Every disagreement is collected, so
/// one run names all of them.
pub(crate) fn plan(source: &[SourceTable], target: &TargetCatalog) -> Result<Plan, CopyError> {
    let mut differences = Vec::new();
    let source_names: BTreeSet<&str> = source.iter().map(|t| t.name.as_str()).collect();
    for name in target.tables.keys() {
        if !source_names.contains(name.as_str()) {
            differences.push(format!("table {name} exists in the target only"));
        }
    }
    let mut tables = BTreeMap::new();
    for source_table in source {
        let name = &source_table.name;
        let Some(target_table) = target.tables.get(name) else {
            differences.push(format!("table {name} exists in the source only"));
            continue;
        };
        let mut columns = Vec::new();
        for (column, data_type) in &target_table.columns {
            let Some(source_column) = source_table.columns.iter().find(|c| &c.name == column)
            else {
                differences.push(format!("column {name}.{column} exists in the target only"));
                continue;
            };
            let Some(kind) = Kind::from_pg(data_type) else {
                differences.push(format!(
                    "column {name}.{column} has type {data_type}, which the copy cannot fill from SQLite"
                ));
                continue;
            };
            if source_column.declared != kind.sqlite_type() {
                differences.push(format!(
                    "column {name}.{column} is {} in the source but {data_type} in the target (expected {} in the source)",
                    source_column.declared,
                    kind.sqlite_type()
                ));
                continue;
            }
            columns.push(super::tables::Column {
                name: column.clone(),
                kind,
                data_type: data_type.clone(),
            });
        }
        for column in &source_table.columns {
            if !target_table.columns.iter().any(|(c, _)| c == &column.name) {
                differences.push(format!(
                    "column {name}.{} exists in the source only",
                    column.name
                ));
            }
        }
        let key = target_table
            .key
            .as_ref()
            .map(|key| {
                key.iter()
                    .filter_map(|k| columns.iter().position(|c| &c.name == k))
                    .collect::<Vec<_>>()
            })
            .filter(|positions| Some(positions.len()) == target_table.key.as_ref().map(Vec::len))
            .unwrap_or_default();
        let pk: Vec<&SourceColumn> = source_table.columns.iter().filter(|c| c.pk > 0).collect();
        let rowid_column = match pk.as_slice() {
            [only] if only.declared == "INTEGER" => Some(only.name.clone()),
            _ => None,
        };
        tables.insert(
            name.clone(),
            Table {
                name: name.clone(),
                columns,
                key,
                rowid_column,
            },
        );
    }
    if !differences.is_empty() {
        return Err(CopyError::SchemaMismatch { differences });
    }
    let ordered = parents_first(tables, &target.foreign_keys)?;
    Ok(Plan {
        tables: ordered,
        foreign_keys: target.foreign_keys.clone(),
    })
}

/// Kahn's topological sort, alphabetical among tables that are ready, so the order is
/// the same on every run. A table referencing itself does not wait for itself.
fn parents_first(
    mut tables: BTreeMap<String, Table>,
    foreign_keys: &[ForeignKey],
) -> Result<Vec<Table>, CopyError> {
    let mut waiting_on: BTreeMap<String, BTreeSet<String>> = tables
        .keys()
        .map(|name| (name.clone(), BTreeSet::new()))
        .collect();
    for fk in foreign_keys {
        if fk.table != fk.parent && tables.contains_key(&fk.parent) {
            if let Some(parents) = waiting_on.get_mut(&fk.table) {
                parents.insert(fk.parent.clone());
            }
        }
    }
    let mut ordered = Vec::with_capacity(tables.len());
    loop {
        let ready = waiting_on
            .iter()
            .find(|(_, parents)| parents.is_empty())
            .map(|(name, _)| name.clone());
        let Some(name) = ready else { break };
        waiting_on.remove(&name);
        for parents in waiting_on.values_mut() {
            parents.remove(&name);
        }
        if let Some(table) = tables.remove(&name) {
            ordered.push(table);
        }
    }
    if !waiting_on.is_empty() {
        let cycle: Vec<String> = waiting_on.into_keys().collect();
        return Err(CopyError::SchemaMismatch {
            differences: vec![format!(
                "the foreign keys between {} form a cycle, so no parents-first order exists",
                cycle.join(", ")
            )],
        });
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, columns: &[(&str, &str, i64)]) -> SourceTable {
        SourceTable {
            name: name.into(),
            columns: columns
                .iter()
                .map(|(n, t, pk)| SourceColumn {
                    name: (*n).into(),
                    declared: (*t).into(),
                    pk: *pk,
                })
                .collect(),
        }
    }

    fn target(tables: &[(&str, &[(&str, &str)])], fks: &[(&str, &str)]) -> TargetCatalog {
        TargetCatalog {
            tables: tables
                .iter()
                .map(|(name, columns)| {
                    (
                        (*name).to_owned(),
                        TargetTable {
                            columns: columns
                                .iter()
                                .map(|(c, t)| ((*c).to_owned(), (*t).to_owned()))
                                .collect(),
                            key: Some(vec!["id".into()]),
                        },
                    )
                })
                .collect(),
            foreign_keys: fks
                .iter()
                .map(|(child, parent)| ForeignKey {
                    name: format!("{child}_{parent}_fkey"),
                    table: (*child).into(),
                    columns: vec![format!("{parent}_id")],
                    parent: (*parent).into(),
                    parent_columns: vec!["id".into()],
                })
                .collect(),
        }
    }

    #[test]
    fn parents_come_before_children_whatever_their_names() {
        let src = vec![
            source(
                "alerts",
                &[("id", "INTEGER", 1), ("users_id", "INTEGER", 0)],
            ),
            source(
                "users",
                &[("id", "INTEGER", 1), ("accounts_id", "INTEGER", 0)],
            ),
            source("accounts", &[("id", "INTEGER", 1)]),
        ];
        let tgt = target(
            &[
                ("alerts", &[("id", "bigint"), ("users_id", "bigint")]),
                ("users", &[("id", "bigint"), ("accounts_id", "bigint")]),
                ("accounts", &[("id", "bigint")]),
            ],
            &[("alerts", "users"), ("users", "accounts")],
        );
        let plan = plan(&src, &tgt).unwrap();
        let names: Vec<&str> = plan.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["accounts", "users", "alerts"]);
        assert_eq!(plan.tables[0].rowid_column.as_deref(), Some("id"));
    }

    #[test]
    fn a_column_on_one_side_only_is_named_not_dropped() {
        let src = vec![source(
            "exploits",
            &[
                ("id", "INTEGER", 1),
                ("extra", "TEXT", 0),
                ("note", "INTEGER", 0),
            ],
        )];
        let tgt = target(
            &[(
                "exploits",
                &[("id", "bigint"), ("note", "jsonb"), ("later", "text")],
            )],
            &[],
        );
        let Err(CopyError::SchemaMismatch { differences }) = plan(&src, &tgt) else {
            panic!("expected a schema mismatch");
        };
        let text = differences.join("\n");
        assert!(
            text.contains("exploits.extra exists in the source only"),
            "{text}"
        );
        assert!(
            text.contains("exploits.later exists in the target only"),
            "{text}"
        );
        assert!(text.contains("exploits.note"), "{text}");
    }

    #[test]
    fn a_cycle_is_refused() {
        let src = vec![
            source("a", &[("id", "INTEGER", 1)]),
            source("b", &[("id", "INTEGER", 1)]),
        ];
        let tgt = target(
            &[("a", &[("id", "bigint")]), ("b", &[("id", "bigint")])],
            &[("a", "b"), ("b", "a")],
        );
        assert!(matches!(
            plan(&src, &tgt),
            Err(CopyError::SchemaMismatch { .. })
        ));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote(r#"we"ird"#), r#""we""ird""#);
    }
}
