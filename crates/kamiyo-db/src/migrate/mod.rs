//! The migration runner: migrations are embedded in the binary, versioned and
//! checksummed, applied one transaction each under a lock that several processes
//! starting at once can share safely.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub(crate) use postgres::PostgresMigrator;
pub(crate) use sqlite::SqliteMigrator;

/// The table that records applied migrations, on both backends.
pub const MIGRATIONS_TABLE: &str = "kamiyo_schema_migrations";

/// A first line that opts a migration out of its wrapping transaction, for statements
/// such as `CREATE INDEX CONCURRENTLY` that refuse to run inside one. Such a migration
/// must be safe to run again: a failure part-way cannot be rolled back.
pub const NO_TRANSACTION_MARKER: &str = "-- kamiyo:no-transaction";

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    pub const fn new(version: i64, name: &'static str, sql: &'static str) -> Self {
        Migration { version, name, sql }
    }

    /// SHA-256 of the text, hex: any edit of an applied migration changes it.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    pub fn transactional(&self) -> bool {
        self.sql
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .is_none_or(|line| line != NO_TRANSACTION_MARKER)
    }

    pub fn label(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }
}

/// Each backend's ordered list of migrations.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    pub postgres: &'static [Migration],
    pub sqlite: &'static [Migration],
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "migration {label} was changed after it was applied (applied checksum {applied}, embedded checksum {embedded}); never edit an applied migration, add a new one"
    )]
    ChecksumMismatch {
        label: String,
        applied: String,
        embedded: String,
    },
    #[error(
        "the database has migration {version} ({name}) applied, which this binary does not know: it was migrated by a newer version of Kamiyo"
    )]
    UnknownApplied { version: i64, name: String },
    #[error("migration {label} failed and was not applied: {message}")]
    Failed { label: String, message: String },
    #[error(
        "migration {label} failed at statement {statement} of {statements}; it runs outside a transaction, so the statements before it stay applied: {message}"
    )]
    FailedOutsideTransaction {
        label: String,
        statement: usize,
        statements: usize,
        message: String,
    },
    #[error("gave up waiting {waited} for another process's migration lock")]
    LockTimeout { waited: String },
    #[error("invalid migration set: {0}")]
    InvalidSet(String),
}

/// What one run of the migrator did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    /// Versions this run applied, in order.
    pub applied: Vec<i64>,
    /// Versions that were already applied when this run looked.
    pub already_applied: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationStatus {
    pub version: i64,
    pub name: String,
    /// The checksum of the text this binary embeds (or, for an unknown version, the
    /// recorded one).
    pub checksum: String,
    /// `None` while pending.
    pub applied_at: Option<String>,
    /// `applied`, `pending`, `changed` (applied, but the embedded text differs: start-up
    /// refuses it) or `unknown` (applied by a newer binary: start-up refuses it).
    pub state: &'static str,
}

/// One row of the migrations table.
#[derive(Debug, Clone)]
pub(crate) struct AppliedMigration {
    pub version: i64,
    pub name: String,
    pub checksum: String,
    pub applied_at: String,
}

/// Splits SQL text into statements at top-level semicolons: not inside quotes,
/// identifiers, comments or dollar-quoted bodies. Used for migrations that run outside a
/// transaction, because PostgreSQL wraps a multi-statement query string in an implicit
/// transaction, which `CREATE INDEX CONCURRENTLY` refuses.
pub(crate) fn split_statements(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'$' => {
                let tag_end = sql[i + 1..].find('$').map(|p| i + 1 + p);
                match tag_end {
                    Some(end)
                        if sql[i + 1..end]
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_')
                            && !sql[i + 1..end].starts_with(|c: char| c.is_ascii_digit()) =>
                    {
                        let tag = &sql[i..=end];
                        i = sql[end + 1..]
                            .find(tag)
                            .map_or(bytes.len(), |p| end + 1 + p + tag.len());
                    }
                    _ => i += 1,
                }
            }
            b';' => {
                statements.push(sql[start..i].to_owned());
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    statements.push(sql[start.min(sql.len())..].to_owned());
    statements
        .into_iter()
        .filter(|statement| {
            // Keep statements with something besides whitespace and comments.
            statement.lines().any(|line| {
                let line = line.trim();
                !line.is_empty() && !line.starts_with("--")
            })
        })
        .map(|statement| statement.trim().to_owned())
        .collect()
}

/// Versions must be positive and strictly increasing, so the order of application is
/// the order of the list.
pub(crate) fn validate_set(set: &[Migration]) -> Result<(), MigrationError> {
    let mut previous = 0;
    for migration in set {
        if migration.version <= previous {
            return Err(MigrationError::InvalidSet(format!(
                "version {} follows {previous}: versions must be positive and strictly increasing",
                migration.version
            )));
        }
        previous = migration.version;
    }
    Ok(())
}

/// Checks what the database has against what the binary embeds, and returns what is
/// still to do.
pub(crate) fn pending<'a>(
    set: &'a [Migration],
    applied: &[AppliedMigration],
) -> Result<Vec<&'a Migration>, MigrationError> {
    let embedded: BTreeMap<i64, &Migration> = set.iter().map(|m| (m.version, m)).collect();
    for row in applied {
        let Some(migration) = embedded.get(&row.version) else {
            return Err(MigrationError::UnknownApplied {
                version: row.version,
                name: row.name.clone(),
            });
        };
        let checksum = migration.checksum();
        if checksum != row.checksum {
            return Err(MigrationError::ChecksumMismatch {
                label: migration.label(),
                applied: row.checksum.clone(),
                embedded: checksum,
            });
        }
    }
    Ok(set
        .iter()
        .filter(|m| !applied.iter().any(|row| row.version == m.version))
        .collect())
}

pub(crate) fn status(set: &[Migration], applied: &[AppliedMigration]) -> Vec<MigrationStatus> {
    let mut rows: Vec<MigrationStatus> = set
        .iter()
        .map(|m| {
            let checksum = m.checksum();
            // `status` shows the embedded checksum; `changed` says the recorded one differs.
            let row = applied.iter().find(|row| row.version == m.version);
            MigrationStatus {
                version: m.version,
                name: m.name.to_owned(),
                state: match row {
                    None => "pending",
                    Some(row) if row.checksum == checksum => "applied",
                    Some(_) => "changed",
                },
                checksum,
                applied_at: row.map(|row| row.applied_at.clone()),
            }
        })
        .collect();
    // A version the binary does not know is still shown: it is what an operator needs
    // to see when a newer release migrated this database.
    for row in applied {
        if !set.iter().any(|m| m.version == row.version) {
            rows.push(MigrationStatus {
                version: row.version,
                name: format!("{} (unknown to this binary)", row.name),
                checksum: row.checksum.clone(),
                applied_at: Some(row.applied_at.clone()),
                state: "unknown",
            });
        }
    }
    rows.sort_by_key(|row| row.version);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Migration = Migration::new(1, "one", "CREATE TABLE a (id int);");
    const TWO: Migration = Migration::new(
        2,
        "two",
        "-- kamiyo:no-transaction\nCREATE INDEX CONCURRENTLY i ON a (id);",
    );

    fn row(m: &Migration, checksum: &str) -> AppliedMigration {
        AppliedMigration {
            version: m.version,
            name: m.name.into(),
            checksum: checksum.into(),
            applied_at: "now".into(),
        }
    }

    #[test]
    fn checksum_is_stable_sha256() {
        assert_eq!(ONE.checksum(), ONE.checksum());
        assert_eq!(ONE.checksum().len(), 64);
        assert_ne!(ONE.checksum(), TWO.checksum());
    }

    #[test]
    fn no_transaction_marker_is_read_from_the_first_line() {
        assert!(ONE.transactional());
        assert!(!TWO.transactional());
    }

    #[test]
    fn pending_skips_applied_and_refuses_edited() {
        let set = [ONE, TWO];
        let pending_now = pending(&set, &[row(&ONE, &ONE.checksum())]).unwrap();
        assert_eq!(
            pending_now.iter().map(|m| m.version).collect::<Vec<_>>(),
            vec![2]
        );
        let err = pending(&set, &[row(&ONE, "deadbeef")]).unwrap_err();
        assert!(
            matches!(err, MigrationError::ChecksumMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("0001_one"));
    }

    #[test]
    fn unknown_applied_version_is_refused() {
        let unknown = Migration::new(9, "future", "");
        let err = pending(&[ONE], &[row(&unknown, "x")]).unwrap_err();
        assert!(matches!(
            err,
            MigrationError::UnknownApplied { version: 9, .. }
        ));
    }

    #[test]
    fn statements_split_at_top_level_semicolons_only() {
        let sql = "-- kamiyo:no-transaction\nCREATE INDEX CONCURRENTLY a ON t (x);\n\
                   /* ; */ CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n\
                   INSERT INTO t VALUES ('a;b', \"c;d\"); -- trailing ; comment\n";
        let statements = split_statements(sql);
        assert_eq!(statements.len(), 3, "{statements:?}");
        assert!(statements[0].ends_with("CREATE INDEX CONCURRENTLY a ON t (x)"));
        assert!(statements[1].contains("$body$ SELECT 1; $body$"));
        assert!(statements[2].starts_with("INSERT INTO t VALUES ('a;b'"));
        assert!(split_statements("  -- nothing\n").is_empty());
    }

    #[test]
    fn versions_must_increase() {
        assert!(validate_set(&[ONE, TWO]).is_ok());
        assert!(validate_set(&[TWO, ONE]).is_err());
        assert!(validate_set(&[ONE, ONE]).is_err());
    }
}
