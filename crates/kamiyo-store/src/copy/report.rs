//! What a copy did and what its verification found, for people (`Display`) and scripts
//! (`Serialize`). Built inside the copy's transaction, before the commit, so a report
//! with problems belongs to a copy that was rolled back.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// The source file.
    pub source: String,
    /// The target URL, password redacted.
    pub target: String,
    pub schema_version: i64,
    /// True when `--force` emptied tables of the target that held rows.
    pub replaced_existing_data: bool,
    /// Tables in the order they were copied (parents first).
    pub tables: Vec<TableReport>,
    pub foreign_keys: Vec<ForeignKeyReport>,
    pub sequences: Vec<SequenceReport>,
    /// True when counts match, no reference is orphaned and every sampled row matches.
    pub verified: bool,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: String,
    /// Rows in the source snapshot.
    pub source_rows: u64,
    /// Rows the target accepted from the copy.
    pub copied_rows: u64,
    /// Rows the target's table holds after the copy, counted in the same transaction.
    pub target_rows: u64,
    /// Rows compared field by field (0 for a table without a key to find them by).
    pub sampled_rows: u64,
    pub mismatches: Vec<Mismatch>,
}

/// A sampled row that differs. `column` is `(row)` when the row is missing.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub key: String,
    pub column: String,
    pub source: String,
    pub target: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForeignKeyReport {
    pub constraint: String,
    pub table: String,
    pub columns: Vec<String>,
    pub references: String,
    /// Child rows whose parent does not exist in the target.
    pub orphans: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SequenceReport {
    pub table: String,
    pub column: String,
    /// The id the next insert without an explicit id gets.
    pub next_value: i64,
}

impl TableReport {
    fn counts_agree(&self) -> bool {
        self.source_rows == self.copied_rows && self.copied_rows == self.target_rows
    }
}

impl CopyReport {
    /// Each verification failure in one line; empty when verified.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for table in &self.tables {
            if !table.counts_agree() {
                problems.push(format!(
                    "{}: {} rows in the source, {} copied, {} in the target",
                    table.table, table.source_rows, table.copied_rows, table.target_rows
                ));
            }
            if !table.mismatches.is_empty() {
                problems.push(format!(
                    "{}: {} sampled rows differ",
                    table.table,
                    table.mismatches.len()
                ));
            }
        }
        for fk in &self.foreign_keys {
            if fk.orphans > 0 {
                problems.push(format!(
                    "{}: {} rows of {} reference a missing {}",
                    fk.constraint, fk.orphans, fk.table, fk.references
                ));
            }
        }
        problems
    }

    pub(crate) fn seal(&mut self) {
        self.verified = self.problems().is_empty();
    }
}

/// Mismatch lines printed per table; the JSON report has them all.
const MISMATCHES_SHOWN: usize = 10;

impl fmt::Display for CopyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "copy {} -> {} (schema version {}){}",
            self.source,
            self.target,
            self.schema_version,
            if self.replaced_existing_data {
                ", replacing the target's data"
            } else {
                ""
            }
        )?;
        let width = self
            .tables
            .iter()
            .map(|t| t.table.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:<width$}  {:>10}  {:>10}  {:>10}  {:>8}  {:>10}",
            "TABLE", "SOURCE", "COPIED", "TARGET", "SAMPLED", "MISMATCHES"
        )?;
        for t in &self.tables {
            writeln!(
                f,
                "{:<width$}  {:>10}  {:>10}  {:>10}  {:>8}  {:>10}",
                t.table,
                t.source_rows,
                t.copied_rows,
                t.target_rows,
                t.sampled_rows,
                t.mismatches.len()
            )?;
            for m in t.mismatches.iter().take(MISMATCHES_SHOWN) {
                writeln!(
                    f,
                    "  mismatch {} {}: source {} target {}",
                    m.key, m.column, m.source, m.target
                )?;
            }
            if t.mismatches.len() > MISMATCHES_SHOWN {
                writeln!(
                    f,
                    "  ... {} more (see --json)",
                    t.mismatches.len() - MISMATCHES_SHOWN
                )?;
            }
        }
        let orphaned: Vec<&ForeignKeyReport> = self
            .foreign_keys
            .iter()
            .filter(|fk| fk.orphans > 0)
            .collect();
        writeln!(
            f,
            "foreign keys: {} checked, {} with orphaned rows",
            self.foreign_keys.len(),
            orphaned.len()
        )?;
        for fk in orphaned {
            writeln!(
                f,
                "  {} ({}.{} -> {}): {} orphaned rows",
                fk.constraint,
                fk.table,
                fk.columns.join(","),
                fk.references,
                fk.orphans
            )?;
        }
        let sequences: Vec<String> = self
            .sequences
            .iter()
            .map(|s| format!("{}.{} next {}", s.table, s.column, s.next_value))
            .collect();
        writeln!(f, "sequences: {}", sequences.join(", "))?;
        let rows: u64 = self.tables.iter().map(|t| t.copied_rows).sum();
        if self.verified {
            write!(
                f,
                "verified: {rows} rows in {} tables, committed in {:.2}s",
                self.tables.len(),
                self.elapsed_ms as f64 / 1000.0
            )
        } else {
            write!(
                f,
                "verification FAILED, rolled back: {}",
                self.problems().join("; ")
            )
        }
    }
}
