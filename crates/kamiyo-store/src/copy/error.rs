//! Why a copy did not happen. Every variant leaves the target as it was (the copy's
//! transaction is rolled back, or was never opened) and names what to fix. URLs appear
//! only redacted.

use std::fmt;
use std::path::PathBuf;

use kamiyo_db::DbError;

use super::report::CopyReport;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("invalid copy option {option}: {message}")]
    Option {
        option: &'static str,
        message: String,
    },
    #[error("the source must be a SQLite file or sqlite:// URL, not {given}")]
    SourceUrl { given: String },
    #[error("the target must be a postgres:// URL, not {given}")]
    TargetUrl { given: String },
    #[error("the source {} does not exist or is not a file", path.display())]
    SourceMissing { path: PathBuf },
    #[error("cannot read the source {}", path.display())]
    SourceUnreadable {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the source {} is not a Kamiyo database: {reason}", path.display())]
    NotKamiyo { path: PathBuf, reason: String },
    #[error(
        "the source {} is at schema version {}, this binary copies version {expected}: {reason}",
        path.display(), found.map_or_else(|| "none".to_owned(), |v| v.to_string())
    )]
    SchemaVersion {
        path: PathBuf,
        found: Option<i64>,
        expected: i64,
        reason: String,
    },
    /// The two catalogs disagree: copying would drop or invent a column.
    #[error("the source and target schemas differ, nothing was copied: {}", differences.join("; "))]
    SchemaMismatch { differences: Vec<String> },
    #[error("the source row {table} ({key}) has a value in {column} the target cannot take exactly: {message}")]
    BadValue {
        table: String,
        column: String,
        key: String,
        message: String,
    },
    #[error(
        "the target {target} already holds data (in {}); pass --force to replace it",
        tables.join(", ")
    )]
    TargetNotEmpty { target: String, tables: Vec<String> },
    #[error("the target {target} cannot be reached or prepared")]
    Target {
        target: String,
        #[source]
        source: DbError,
    },
    #[error("copying table {table} failed; the target was rolled back to what it held before")]
    Copy {
        table: String,
        #[source]
        source: DbError,
    },
    #[error("the copy failed while {doing}; the target was rolled back to what it held before")]
    Transaction {
        doing: &'static str,
        #[source]
        source: DbError,
    },
    #[error("reading the source stopped unexpectedly: {0}")]
    Reader(String),
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    #[error("verification failed ({}); the target was rolled back to what it held before", report.problems().join("; "))]
    Verification { report: Box<CopyReport> },
}

/// Which database a value was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// A value the copy reads for itself (the source's migrations and `sqlite_sequence`,
/// either catalog, counts, the sampled rows read back) that is missing, NULL or of
/// another type than the copy expects. SQLite keeps any value in any column, so a
/// damaged source can hold text where a number belongs; on the target it means a
/// catalog query and the code reading it disagree. Rows being copied are checked
/// separately ([`CopyError::BadValue`], with the row's key).
#[derive(Debug, thiserror::Error)]
#[error("the {side}'s {table}.{column} cannot be read: {reason}")]
pub struct Unreadable {
    pub side: Side,
    pub table: String,
    pub column: String,
    pub reason: String,
}

/// A step on the target that failed, before its caller says what the copy was doing
/// (see [`TargetError::into_copy`]).
#[derive(Debug)]
pub(crate) enum TargetError {
    Database(DbError),
    Unreadable(Unreadable),
}

impl From<DbError> for TargetError {
    fn from(error: DbError) -> Self {
        TargetError::Database(error)
    }
}

impl From<Unreadable> for TargetError {
    fn from(error: Unreadable) -> Self {
        TargetError::Unreadable(error)
    }
}

impl TargetError {
    /// A database failure wrapped by `database` (which says what the copy was doing);
    /// an unreadable value stays itself, as it already names where it is.
    pub(crate) fn into_copy(self, database: impl FnOnce(DbError) -> CopyError) -> CopyError {
        match self {
            TargetError::Database(error) => database(error),
            TargetError::Unreadable(error) => CopyError::Unreadable(error),
        }
    }
}

impl CopyError {
    /// The error and every cause, `: `-separated, as an operator is shown it (the
    /// command line's `--json` error, logs).
    pub fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

    pub(crate) fn source_read(
        path: &std::path::Path,
    ) -> impl Fn(rusqlite::Error) -> CopyError + '_ {
        move |source| CopyError::SourceUnreadable {
            path: path.to_owned(),
            source,
        }
    }
}
