//! One error type for the database layer, with operational meaning: callers decide on
//! *timeout*, *unavailable*, *not found*, *conflict*, *read-only*, never on driver text.

use std::time::Duration;

use crate::migrate::MigrationError;
use crate::pool_state::PoolState;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The pool could not hand out a connection before the acquisition deadline.
    #[error(
        "timed out after {} waiting for a connection from pool \"{pool}\" ({} of {} in use, {} waiting)",
        humantime::format_duration(*deadline), state.in_use, state.max_size, state.waiting
    )]
    AcquireTimeout {
        pool: String,
        deadline: Duration,
        state: PoolState,
    },
    /// The server cancelled a statement that ran past `statement_timeout`. Not retried:
    /// running it again would most likely time out again, at the same cost.
    #[error("statement cancelled on pool \"{pool}\" after exceeding its timeout")]
    StatementTimeout { pool: String },
    /// The database cannot be reached or is shutting down; the connection is gone.
    #[error("database behind pool \"{pool}\" is unavailable: {reason}")]
    Unavailable {
        pool: String,
        reason: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Serialization failure, deadlock or a busy SQLite writer: safe to retry.
    #[error("transaction conflict ({code}): {message}")]
    TransactionConflict { code: String, message: String },
    #[error("{what} not found")]
    NotFound { what: String },
    /// An integrity constraint refused the change; `constraint` names it.
    #[error("constraint \"{constraint}\" refused the change: {message}")]
    Conflict { constraint: String, message: String },
    #[error("the database refused a write because it is read-only: {message}")]
    ReadOnly { message: String },
    #[error("invalid configuration {field}: {message}")]
    Config { field: String, message: String },
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("database error: {message}")]
    Other {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl DbError {
    /// True for failures that a retry of an idempotent operation may cure.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DbError::AcquireTimeout { .. }
                | DbError::Unavailable { .. }
                | DbError::TransactionConflict { .. }
        )
    }

    /// True when the failure says the database (not the request) is the problem; the API
    /// answers these with 503 and `Retry-After`.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::AcquireTimeout { .. }
                | DbError::Unavailable { .. }
                | DbError::StatementTimeout { .. }
        )
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        DbError::NotFound { what: what.into() }
    }

    pub fn other(message: impl Into<String>) -> Self {
        DbError::Other {
            message: message.into(),
            source: None,
        }
    }

    /// Classifies a PostgreSQL driver error by its SQLSTATE (or its lack of one).
    pub fn from_postgres(pool: &str, err: tokio_postgres::Error) -> Self {
        let Some(db) = err.as_db_error() else {
            // No server error: either the connection failed (unavailable, transient) or
            // the driver refused what came back (wrong row count, a type mismatch),
            // which is a bug to report, not a failure to retry.
            if connection_failure(&err) {
                return DbError::Unavailable {
                    pool: pool.to_owned(),
                    reason: err.to_string(),
                    source: Some(Box::new(err)),
                };
            }
            return DbError::Other {
                message: err.to_string(),
                source: Some(Box::new(err)),
            };
        };
        let code = db.code().code().to_owned();
        let message = db.message().to_owned();
        let class = &code[..2.min(code.len())];
        match (class, code.as_str()) {
            ("23", _) => DbError::Conflict {
                constraint: db
                    .constraint()
                    .or(db.column())
                    .unwrap_or("unnamed")
                    .to_owned(),
                message,
            },
            (_, "40001" | "40P01") => DbError::TransactionConflict { code, message },
            (_, "57014") => DbError::StatementTimeout {
                pool: pool.to_owned(),
            },
            ("08", _) | (_, "57P01" | "57P02" | "57P03" | "53300") => DbError::Unavailable {
                pool: pool.to_owned(),
                reason: format!("{message} (SQLSTATE {code})"),
                source: Some(Box::new(err)),
            },
            (_, "25006") => DbError::ReadOnly { message },
            _ => DbError::Other {
                message: format!("{message} (SQLSTATE {code})"),
                source: Some(Box::new(err)),
            },
        }
    }

    /// Classifies a SQLite error by its primary result code.
    pub fn from_sqlite(pool: &str, err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match &err {
            rusqlite::Error::QueryReturnedNoRows => DbError::not_found("row"),
            rusqlite::Error::SqliteFailure(failure, message) => {
                let message = message.clone().unwrap_or_else(|| failure.to_string());
                match failure.code {
                    ErrorCode::ConstraintViolation => DbError::Conflict {
                        constraint: sqlite_constraint_name(&message),
                        message,
                    },
                    ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                        DbError::TransactionConflict {
                            code: "SQLITE_BUSY".into(),
                            message,
                        }
                    }
                    ErrorCode::ReadOnly => DbError::ReadOnly { message },
                    ErrorCode::CannotOpen | ErrorCode::NotADatabase => DbError::Unavailable {
                        pool: pool.to_owned(),
                        reason: message,
                        source: Some(Box::new(err)),
                    },
                    _ => DbError::Other {
                        message,
                        source: Some(Box::new(err)),
                    },
                }
            }
            _ => DbError::Other {
                message: err.to_string(),
                source: Some(Box::new(err)),
            },
        }
    }
}

/// A closed connection, an I/O error anywhere in the cause chain, or a failed connect.
fn connection_failure(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(current) = cause {
        if current.is::<std::io::Error>() {
            return true;
        }
        cause = current.source();
    }
    let text = err.to_string();
    text.starts_with("error connecting")
        || text.starts_with("timeout")
        || text.contains("communicating with the server")
}

/// SQLite reports `UNIQUE constraint failed: users.email` or
/// `FOREIGN KEY constraint failed`; the part after the colon is the closest thing to a
/// constraint name it gives.
fn sqlite_constraint_name(message: &str) -> String {
    match message.split_once(": ") {
        Some((_, detail)) => detail.trim().to_owned(),
        None => message
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join("_")
            .to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_message_names_pool_deadline_and_state() {
        let err = DbError::AcquireTimeout {
            pool: "primary".into(),
            deadline: Duration::from_secs(3),
            state: PoolState {
                max_size: 10,
                open: 10,
                idle: 0,
                in_use: 10,
                waiting: 7,
            },
        };
        assert_eq!(
            err.to_string(),
            "timed out after 3s waiting for a connection from pool \"primary\" (10 of 10 in use, 7 waiting)"
        );
        assert!(err.is_transient());
    }

    #[test]
    fn sqlite_constraint_names() {
        assert_eq!(
            sqlite_constraint_name("UNIQUE constraint failed: users.email"),
            "users.email"
        );
        assert_eq!(
            sqlite_constraint_name("FOREIGN KEY constraint failed"),
            "foreign_key"
        );
    }

    #[test]
    fn constraint_and_statement_timeouts_are_not_transient() {
        let conflict = DbError::Conflict {
            constraint: "users_email_key".into(),
            message: "duplicate".into(),
        };
        assert!(!conflict.is_transient());
        assert!(!DbError::StatementTimeout { pool: "p".into() }.is_transient());
    }
}
