//! One value on its way from SQLite's storage classes to a PostgreSQL type, and back for
//! comparison. The kind of a column is decided by the *target's* declared type (the
//! source only has INTEGER and TEXT), so a conversion that cannot be exact is refused
//! instead of coerced: a float in a money column, `2` in a boolean, a malformed
//! timestamp or JSON text.

use std::error::Error;
use std::fmt;
use std::str::FromStr;

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rust_decimal::Decimal;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// The PostgreSQL types the copy knows how to fill from SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int2,
    Int4,
    Int8,
    Text,
    Bool,
    Numeric,
    Timestamptz,
    Json,
    Jsonb,
}

impl Kind {
    /// From `information_schema.columns.data_type`.
    pub(crate) fn from_pg(data_type: &str) -> Option<Kind> {
        Some(match data_type {
            "smallint" => Kind::Int2,
            "integer" => Kind::Int4,
            "bigint" => Kind::Int8,
            "text" | "character varying" => Kind::Text,
            "boolean" => Kind::Bool,
            "numeric" => Kind::Numeric,
            "timestamp with time zone" => Kind::Timestamptz,
            "json" => Kind::Json,
            "jsonb" => Kind::Jsonb,
            _ => return None,
        })
    }

    pub(crate) fn pg_type(self) -> Type {
        match self {
            Kind::Int2 => Type::INT2,
            Kind::Int4 => Type::INT4,
            Kind::Int8 => Type::INT8,
            Kind::Text => Type::TEXT,
            Kind::Bool => Type::BOOL,
            Kind::Numeric => Type::NUMERIC,
            Kind::Timestamptz => Type::TIMESTAMPTZ,
            Kind::Json => Type::JSON,
            Kind::Jsonb => Type::JSONB,
        }
    }

    /// The SQLite declared type a column of this kind has in Kamiyo's schema (see
    /// docs/SCHEMA.md, *Representation*).
    pub(crate) fn sqlite_type(self) -> &'static str {
        match self {
            Kind::Int2 | Kind::Int4 | Kind::Int8 | Kind::Bool => "INTEGER",
            Kind::Text | Kind::Numeric | Kind::Timestamptz | Kind::Json | Kind::Jsonb => "TEXT",
        }
    }

    /// The select-list expression that reads the column back for comparison. NUMERIC
    /// and JSON come back as text: the driver has no exact decimal without the feature,
    /// and JSON is compared parsed.
    pub(crate) fn pg_select(self, quoted_column: &str) -> String {
        match self {
            Kind::Numeric | Kind::Json | Kind::Jsonb => format!("{quoted_column}::text"),
            _ => quoted_column.to_owned(),
        }
    }
}

/// A converted value. Integers of every width are `Int`; the width is checked when the
/// value is written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
    Numeric(Decimal),
    Time(DateTime<Utc>),
    /// JSON text as the source wrote it: re-serialising would round large numbers.
    Json(String),
}

impl Cell {
    /// Converts what SQLite stored into the value the target column takes.
    pub(crate) fn from_sqlite(kind: Kind, value: ValueRef<'_>) -> Result<Cell, String> {
        let text = |bytes: &[u8]| {
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| "text is not valid UTF-8".to_owned())
        };
        match (kind, value) {
            (_, ValueRef::Null) => Ok(Cell::Null),
            (Kind::Int2 | Kind::Int4 | Kind::Int8, ValueRef::Integer(v)) => {
                let fits = match kind {
                    Kind::Int2 => i16::try_from(v).is_ok(),
                    Kind::Int4 => i32::try_from(v).is_ok(),
                    _ => true,
                };
                if fits {
                    Ok(Cell::Int(v))
                } else {
                    Err(format!(
                        "{v} does not fit the target's {:?}",
                        kind.pg_type()
                    ))
                }
            }
            (Kind::Bool, ValueRef::Integer(0)) => Ok(Cell::Bool(false)),
            (Kind::Bool, ValueRef::Integer(1)) => Ok(Cell::Bool(true)),
            (Kind::Bool, ValueRef::Integer(v)) => Err(format!("{v} is not a boolean (0 or 1)")),
            (Kind::Text, ValueRef::Text(bytes)) => text(bytes).map(Cell::Text),
            (Kind::Numeric, ValueRef::Text(bytes)) => {
                let s = text(bytes)?;
                Decimal::from_str_exact(&s)
                    .map(Cell::Numeric)
                    .map_err(|e| format!("{s:?} is not a decimal: {e}"))
            }
            (Kind::Numeric, ValueRef::Integer(v)) => Ok(Cell::Numeric(Decimal::from(v))),
            (Kind::Timestamptz, ValueRef::Text(bytes)) => {
                let s = text(bytes)?;
                DateTime::parse_from_rfc3339(&s)
                    .map(|t| Cell::Time(t.with_timezone(&Utc)))
                    .map_err(|e| format!("{s:?} is not an RFC 3339 timestamp: {e}"))
            }
            (Kind::Json | Kind::Jsonb, ValueRef::Text(bytes)) => {
                let s = text(bytes)?;
                serde_json::from_str::<serde_json::Value>(&s)
                    .map(|_| Cell::Json(s))
                    .map_err(|e| format!("malformed JSON: {e}"))
            }
            (_, other) => Err(format!(
                "SQLite stored {}, which cannot become {:?} exactly",
                storage_class(other),
                kind.pg_type()
            )),
        }
    }

    /// Reads `column` of a row selected with [`Kind::pg_select`]; the error is the
    /// reason it cannot be read (a missing column, a value of another type).
    pub(crate) fn from_pg(
        kind: Kind,
        row: &tokio_postgres::Row,
        column: &str,
    ) -> Result<Cell, String> {
        fn opt<T>(value: Option<T>, f: impl FnOnce(T) -> Cell) -> Cell {
            value.map_or(Cell::Null, f)
        }
        fn get<'r, T: FromSql<'r>>(
            row: &'r tokio_postgres::Row,
            column: &str,
        ) -> Result<Option<T>, String> {
            row.try_get(column).map_err(|e| e.to_string())
        }
        Ok(match kind {
            Kind::Int2 => opt(get::<i16>(row, column)?, |v| Cell::Int(i64::from(v))),
            Kind::Int4 => opt(get::<i32>(row, column)?, |v| Cell::Int(i64::from(v))),
            Kind::Int8 => opt(get::<i64>(row, column)?, Cell::Int),
            Kind::Text => opt(get::<String>(row, column)?, Cell::Text),
            Kind::Bool => opt(get::<bool>(row, column)?, Cell::Bool),
            Kind::Numeric => opt(get::<String>(row, column)?, |s| {
                // PostgreSQL prints every NUMERIC in a form Decimal reads; keep the text
                // when it does not (a value beyond 28 digits) so the comparison fails
                // visibly instead of silently.
                Decimal::from_str(&s).map_or(Cell::Text(s), Cell::Numeric)
            }),
            Kind::Timestamptz => opt(get::<DateTime<Utc>>(row, column)?, Cell::Time),
            Kind::Json | Kind::Jsonb => opt(get::<String>(row, column)?, Cell::Json),
        })
    }

    /// Equal after normalisation: decimals by value (`1.5` = `1.50`), JSON by its parsed
    /// value (PostgreSQL's jsonb prints `["a", "b"]` where SQLite kept `["a","b"]`).
    pub(crate) fn same(&self, other: &Cell) -> bool {
        match (self, other) {
            (Cell::Json(a), Cell::Json(b)) => {
                let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
                a == b || (parse(a).is_some() && parse(a) == parse(b))
            }
            (a, b) => a == b,
        }
    }

    /// The value as a key for the sample lookup (`unnest($n::text[])`, cast back).
    pub(crate) fn key_text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Int(v) => Some(v.to_string()),
            Cell::Text(s) | Cell::Json(s) => Some(s.clone()),
            Cell::Bool(b) => Some(b.to_string()),
            Cell::Numeric(d) => Some(d.to_string()),
            Cell::Time(t) => Some(t.to_rfc3339()),
        }
    }
}

/// Shown in reports: short, and never more than [`MAX_SHOWN`] characters of a value.
impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = match self {
            Cell::Null => return f.write_str("NULL"),
            Cell::Int(v) => v.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Numeric(d) => d.to_string(),
            Cell::Time(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            Cell::Text(s) | Cell::Json(s) => format!("{s:?}"),
        };
        if shown.chars().count() > MAX_SHOWN {
            let cut: String = shown.chars().take(MAX_SHOWN).collect();
            write!(f, "{cut}…")
        } else {
            f.write_str(&shown)
        }
    }
}

/// Values in mismatch reports are cut here: a description can be pages long.
const MAX_SHOWN: usize = 80;

fn storage_class(value: ValueRef<'_>) -> &'static str {
    match value {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an INTEGER",
        ValueRef::Real(_) => "a REAL (floating point)",
        ValueRef::Text(_) => "TEXT",
        ValueRef::Blob(_) => "a BLOB",
    }
}

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for Cell {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                _ => Err(wrong_type("an integer", ty)),
            },
            Cell::Text(v) => v.to_sql_checked(ty, out),
            Cell::Bool(v) => v.to_sql_checked(ty, out),
            Cell::Numeric(v) => v.to_sql_checked(ty, out),
            Cell::Time(v) => v.to_sql_checked(ty, out),
            // jsonb's binary form is a version byte (1) and the JSON text; json's is the
            // text alone. The server parses and normalises it.
            Cell::Json(text) => match *ty {
                Type::JSONB => {
                    out.extend_from_slice(&[1]);
                    out.extend_from_slice(text.as_bytes());
                    Ok(IsNull::No)
                }
                Type::JSON => {
                    out.extend_from_slice(text.as_bytes());
                    Ok(IsNull::No)
                }
                _ => Err(wrong_type("JSON", ty)),
            },
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::TEXT
                | Type::VARCHAR
                | Type::BOOL
                | Type::NUMERIC
                | Type::TIMESTAMPTZ
                | Type::JSON
                | Type::JSONB
        )
    }

    to_sql_checked!();
}

fn wrong_type(what: &str, ty: &Type) -> BoxError {
    format!("cannot write {what} into a column of type {ty}").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_values_become_exact_target_values_or_are_refused() {
        let money = Cell::from_sqlite(Kind::Numeric, ValueRef::Text(b"197000000.00"));
        assert_eq!(money, Ok(Cell::Numeric(Decimal::new(19_700_000_000, 2))));
        assert!(Cell::from_sqlite(Kind::Numeric, ValueRef::Real(1.5)).is_err());
        assert_eq!(
            Cell::from_sqlite(Kind::Bool, ValueRef::Integer(1)),
            Ok(Cell::Bool(true))
        );
        assert!(Cell::from_sqlite(Kind::Bool, ValueRef::Integer(2)).is_err());
        assert!(Cell::from_sqlite(Kind::Int4, ValueRef::Integer(1 << 40)).is_err());
        let time = Cell::from_sqlite(
            Kind::Timestamptz,
            ValueRef::Text(b"2024-09-03T10:00:00.123Z"),
        );
        assert_eq!(
            time.map(|c| c.to_string()),
            Ok("2024-09-03T10:00:00.123Z".to_owned())
        );
        assert!(Cell::from_sqlite(Kind::Timestamptz, ValueRef::Text(b"yesterday")).is_err());
        assert!(Cell::from_sqlite(Kind::Jsonb, ValueRef::Text(b"[\"a\"")).is_err());
        assert_eq!(
            Cell::from_sqlite(Kind::Text, ValueRef::Null),
            Ok(Cell::Null)
        );
    }

    #[test]
    fn comparison_normalises_decimals_and_json() {
        let a = Cell::Numeric(Decimal::new(15, 1));
        let b = Cell::Numeric(Decimal::new(150, 2));
        assert!(a.same(&b));
        let sqlite = Cell::Json(r#"["ethereum","bsc"]"#.into());
        let pg = Cell::Json(r#"["ethereum", "bsc"]"#.into());
        assert!(sqlite.same(&pg));
        assert!(!sqlite.same(&Cell::Json(r#"["bsc", "ethereum"]"#.into())));
        assert!(!Cell::Null.same(&Cell::Text(String::new())));
    }

    #[test]
    fn long_values_are_cut_in_reports() {
        let shown = Cell::Text("x".repeat(500)).to_string();
        assert!(shown.chars().count() <= MAX_SHOWN + 1, "{shown}");
    }
}
