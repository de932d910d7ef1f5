//! The database URL, kept secret: it may carry a password, which must never reach logs,
//! error messages, metrics or `Debug` output. `redact` hides it in every form a
//! connection string takes.

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::error::DbError;

mod redact;

pub use redact::{parse_error_message, redact};

/// Which server a URL points at, decided once from its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Postgres,
    Sqlite,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Postgres => "postgres",
            BackendKind::Sqlite => "sqlite",
        })
    }
}

/// A database URL: `postgres://user:pass@host:port/db`, `sqlite://path/to/file.db`,
/// `sqlite::memory:` is deliberately not supported (each pooled connection would see a
/// different empty database).
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

/// Where a SQLite URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteTarget {
    pub path: PathBuf,
}

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(SecretString::from(url.into()))
    }

    /// The URL with its secret in it. Call only to hand it to a driver.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn backend(&self) -> Result<BackendKind, DbError> {
        let url = self.expose();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(BackendKind::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(BackendKind::Sqlite)
        } else {
            Err(DbError::Config {
                field: "database.url".into(),
                message: format!(
                    "unsupported scheme in {}: expected postgres://, postgresql:// or sqlite://",
                    self.redacted()
                ),
            })
        }
    }

    /// The file a `sqlite://` URL names. `sqlite://kamiyo.db` is relative to the working
    /// directory, `sqlite:///var/lib/kamiyo.db` is absolute.
    pub fn sqlite_target(&self) -> Result<SqliteTarget, DbError> {
        let url = self.expose();
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| DbError::Config {
                field: "database.url".into(),
                message: format!("{} is not a sqlite:// URL", self.redacted()),
            })?;
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(DbError::Config {
                field: "database.url".into(),
                message: "a SQLite URL needs a file path, e.g. sqlite://kamiyo.db (in-memory databases are not shared between pooled connections)".into(),
            });
        }
        Ok(SqliteTarget {
            path: PathBuf::from(path),
        })
    }

    /// The URL with any password replaced by `***`, safe for logs and errors.
    pub fn redacted(&self) -> String {
        redact(self.expose())
    }

    /// The driver's configuration for a PostgreSQL URL. A refusal names `field` and
    /// shows neither the password nor any piece of the string the driver quotes.
    pub fn postgres_config(&self, field: &str) -> Result<tokio_postgres::Config, DbError> {
        self.expose()
            .parse()
            .map_err(|e: tokio_postgres::Error| DbError::Config {
                field: field.to_owned(),
                message: format!(
                    "cannot parse {}: {}",
                    self.redacted(),
                    parse_error_message(&e)
                ),
            })
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(DatabaseUrl::new)
    }
}

impl serde::Serialize for DatabaseUrl {
    /// Serialises the redacted form: a configuration dump never carries the password.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_hidden_in_debug_display_and_redacted() {
        let url = DatabaseUrl::new("postgres://kamiyo:s3cr3t@db.example:5432/kamiyo");
        for shown in [format!("{url:?}"), format!("{url}"), url.redacted()] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("kamiyo:***@db.example"), "{shown}");
        }
    }

    #[test]
    fn password_query_parameter_is_hidden() {
        let shown = redact("postgres://db/kamiyo?user=k&password=hunter2&sslmode=disable");
        assert_eq!(
            shown,
            "postgres://db/kamiyo?user=k&password=***&sslmode=disable"
        );
    }

    #[test]
    fn passwords_with_url_delimiters_are_hidden() {
        for password in ["pa/ss", "pa?ss", "pa#ss", "pa@ss", "p:w"] {
            let shown = redact(&format!(
                "postgres://u:{password}@db.example/kamiyo?sslmode=disable"
            ));
            assert!(!shown.contains(password), "{password}: {shown}");
            assert!(
                shown.starts_with("postgres://u:***@db.example/kamiyo"),
                "{shown}"
            );
        }
    }

    #[test]
    fn url_without_password_is_unchanged() {
        assert_eq!(
            redact("postgres://root@127.0.0.1/test"),
            "postgres://root@127.0.0.1/test"
        );
    }

    #[test]
    fn a_keyword_form_password_is_hidden_in_debug_display_and_serialised_form() {
        let url = DatabaseUrl::new("host=db.example user=kamiyo password='s3 cr3t' dbname=k");
        let serialised = serde_json::to_string(&url).unwrap();
        for shown in [format!("{url:?}"), format!("{url}"), serialised] {
            assert!(!shown.contains("s3") && !shown.contains("cr3t"), "{shown}");
            assert!(shown.contains("password=***"), "{shown}");
        }
    }

    #[test]
    fn the_error_for_a_keyword_form_database_url_does_not_contain_the_password() {
        let err = DatabaseUrl::new("host=db.example password=hunter2")
            .backend()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration database.url: unsupported scheme in \
             host=db.example password=***: expected postgres://, postgresql:// or sqlite://"
        );
    }

    #[test]
    fn the_parse_error_of_a_malformed_postgres_url_does_not_contain_the_password() {
        for (conn, expected) in [
            (
                "postgres://kamiyo:hunter2@db.example:notaport/kamiyo",
                "invalid configuration database.url: cannot parse \
                 postgres://kamiyo:***@db.example:notaport/kamiyo: \
                 invalid connection string: invalid value for option `port`",
            ),
            (
                "postgres://db.example/kamiyo?password=hunter2&hunter3",
                "invalid configuration database.url: cannot parse \
                 postgres://db.example/kamiyo?password=***&***: \
                 invalid connection string: unterminated parameter",
            ),
            (
                "host=db.example password=hunter2 hunter3=x",
                "invalid configuration database.url: cannot parse \
                 host=db.example password=*** ***: \
                 invalid connection string: unknown option `***`",
            ),
        ] {
            let err = DatabaseUrl::new(conn)
                .postgres_config("database.url")
                .unwrap_err();
            assert_eq!(err.to_string(), expected, "{conn}");
        }
    }

    #[test]
    fn backend_is_chosen_by_scheme() {
        assert_eq!(
            DatabaseUrl::new("postgresql://x/y").backend().ok(),
            Some(BackendKind::Postgres)
        );
        assert_eq!(
            DatabaseUrl::new("sqlite://kamiyo.db").backend().ok(),
            Some(BackendKind::Sqlite)
        );
        let err = DatabaseUrl::new("mysql://u:pw@h/d").backend().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("database.url") && !msg.contains("pw@"),
            "{msg}"
        );
    }

    #[test]
    fn sqlite_paths_relative_and_absolute() {
        let rel = DatabaseUrl::new("sqlite://kamiyo.db")
            .sqlite_target()
            .unwrap();
        assert_eq!(rel.path, PathBuf::from("kamiyo.db"));
        let abs = DatabaseUrl::new("sqlite:///var/lib/k.db")
            .sqlite_target()
            .unwrap();
        assert_eq!(abs.path, PathBuf::from("/var/lib/k.db"));
        assert!(DatabaseUrl::new("sqlite::memory:").sqlite_target().is_err());
    }
}
