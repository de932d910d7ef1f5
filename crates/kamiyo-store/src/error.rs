//! The store's own error: the database failed, or what it holds cannot be read back.
//!
//! The two need different handling. A database failure may be transient (retry), may
//! mean the database is down (503 with `Retry-After`) or may be a refused write (a
//! conflict). Corrupt stored data is none of these: retrying cannot help and the row is
//! named so that an operator can find it.

use kamiyo_db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] DbError),
    /// A stored value that does not read back as the type its column holds.
    #[error("stored data is corrupt: {table}.{column}: {reason}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        reason: String,
    },
    /// Another writer changed what a batch had read (it took a transaction hash the
    /// batch meant to give out) between the batch's reads and its writes; the batch was
    /// rolled back and running it again decides afresh.
    #[error("a concurrent writer changed the incidents this batch read; nothing was written")]
    Raced,
    /// A request that what is stored does not allow (an incident that does not exist, a
    /// claim that is not the incident's), naming the request's field.
    #[error("{field}: {reason}")]
    Refused { field: &'static str, reason: String },
    /// The store broke one of its own rules (a bug, not bad data or a failing database).
    #[error("store invariant broken: {0}")]
    Invariant(String),
}

impl StoreError {
    pub fn refused(field: &'static str, reason: impl ToString) -> Self {
        StoreError::Refused {
            field,
            reason: reason.to_string(),
        }
    }

    pub fn corrupt(table: &'static str, column: &'static str, reason: impl ToString) -> Self {
        StoreError::Corrupt {
            table,
            column,
            reason: reason.to_string(),
        }
    }

    /// Worth retrying as it is (see [`DbError::is_transient`]); a lost race is too.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(error) => error.is_transient(),
            StoreError::Raced => true,
            StoreError::Corrupt { .. } | StoreError::Invariant(_) | StoreError::Refused { .. } => {
                false
            }
        }
    }

    /// The database, not the request, is the problem (see [`DbError::is_unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Database(error) if error.is_unavailable())
    }

    /// The database refused a write because of what is stored (a unique rule).
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Database(DbError::Conflict { .. }))
    }

    /// The database error, for callers that speak only [`DbError`]. Corrupt data and
    /// lost races become `DbError::Other` with this error's message.
    pub fn into_db(self) -> DbError {
        match self {
            StoreError::Database(error) => error,
            other => DbError::other(other.to_string()),
        }
    }
}

impl kamiyo_db::AsDbError for StoreError {
    fn as_db_error(&self) -> Option<&DbError> {
        match self {
            StoreError::Database(error) => Some(error),
            _ => None,
        }
    }
}
