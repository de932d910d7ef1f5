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
        "migration {label} failed part-way; it runs outside a transaction, so what it did before failing stays: {message}"
    )]
    FailedOutsideTransaction { label: String, message: String },
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
    pub checksum: String,
    /// `None` while pending.
    pub applied_at: Option<String>,
}

/// One row of the migrations table.
#[derive(Debug, Clone)]
pub(crate) struct AppliedMigration {
    pub version: i64,
    pub name: String,
    pub checksum: String,
    pub applied_at: String,
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
        .map(|m| MigrationStatus {
            version: m.version,
            name: m.name.to_owned(),
            checksum: m.checksum(),
            applied_at: applied
                .iter()
                .find(|row| row.version == m.version)
                .map(|row| row.applied_at.clone()),
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
    fn versions_must_increase() {
        assert!(validate_set(&[ONE, TWO]).is_ok());
        assert!(validate_set(&[TWO, ONE]).is_err());
        assert!(validate_set(&[ONE, ONE]).is_err());
    }
}
