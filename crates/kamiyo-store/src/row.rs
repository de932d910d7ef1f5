//! Reading a stored row by column name, the same way on both drivers.
//!
//! Every read of a stored value goes through [`Fields`]: a missing column, a value of
//! another type or a malformed timestamp or list becomes [`StoreError::Corrupt`] naming
//! the table and column, never a panic and never a value made up on the spot.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::error::StoreError;

/// One driver's row. The timestamp and list readers hide how each backend stores them
/// (PostgreSQL: `timestamptz` and `text[]`; SQLite: RFC 3339 text and a JSON array).
pub(crate) trait DriverRow {
    fn text(&self, column: &str) -> Result<Option<String>, String>;
    fn int(&self, column: &str) -> Result<Option<i64>, String>;
    fn boolean(&self, column: &str) -> Result<Option<bool>, String>;
    fn float(&self, column: &str) -> Result<Option<f64>, String>;
    fn time(&self, column: &str) -> Result<Option<DateTime<Utc>>, String>;
    fn text_list(&self, column: &str) -> Result<Option<Vec<String>>, String>;
}

/// A row of `table`, read by column name.
pub(crate) struct Fields<'r, R: ?Sized> {
    table: &'static str,
    row: &'r R,
}

impl<'r, R: DriverRow + ?Sized> Fields<'r, R> {
    pub fn of(table: &'static str, row: &'r R) -> Self {
        Fields { table, row }
    }

    fn required<T>(
        &self,
        column: &'static str,
        value: Result<Option<T>, String>,
    ) -> Result<T, StoreError> {
        value
            .map_err(|reason| StoreError::corrupt(self.table, column, reason))?
            .ok_or_else(|| {
                StoreError::corrupt(self.table, column, "NULL where a value is required")
            })
    }

    fn optional<T>(
        &self,
        column: &'static str,
        value: Result<Option<T>, String>,
    ) -> Result<Option<T>, StoreError> {
        value.map_err(|reason| StoreError::corrupt(self.table, column, reason))
    }

    pub fn text(&self, column: &'static str) -> Result<String, StoreError> {
        self.required(column, self.row.text(column))
    }

    pub fn opt_text(&self, column: &'static str) -> Result<Option<String>, StoreError> {
        self.optional(column, self.row.text(column))
    }

    pub fn int(&self, column: &'static str) -> Result<i64, StoreError> {
        self.required(column, self.row.int(column))
    }

    pub fn boolean(&self, column: &'static str) -> Result<bool, StoreError> {
        self.required(column, self.row.boolean(column))
    }

    pub fn opt_int(&self, column: &'static str) -> Result<Option<i64>, StoreError> {
        self.optional(column, self.row.int(column))
    }

    pub fn opt_boolean(&self, column: &'static str) -> Result<Option<bool>, StoreError> {
        self.optional(column, self.row.boolean(column))
    }

    pub fn opt_float(&self, column: &'static str) -> Result<Option<f64>, StoreError> {
        self.optional(column, self.row.float(column))
    }

    /// A flag whose NULL means "no" (columns added after rows existed).
    pub fn flag(&self, column: &'static str) -> Result<bool, StoreError> {
        Ok(self
            .optional(column, self.row.boolean(column))?
            .unwrap_or(false))
    }

    pub fn time(&self, column: &'static str) -> Result<DateTime<Utc>, StoreError> {
        self.required(column, self.row.time(column))
    }

    pub fn text_list(&self, column: &'static str) -> Result<Vec<String>, StoreError> {
        self.required(column, self.row.text_list(column))
    }

    pub fn opt_time(&self, column: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.optional(column, self.row.time(column))
    }

    /// A value parsed from its stored text by `parse` (a tier, a role); text that does
    /// not parse is corrupt data in that column.
    pub fn parse<T, E: std::fmt::Display>(
        &self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        let text = self.text(column)?;
        parse(&text).map_err(|e| StoreError::corrupt(self.table, column, format!("{text:?}: {e}")))
    }

    pub fn opt_parse<T, E: std::fmt::Display>(
        &self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, StoreError> {
        match self.opt_text(column)? {
            None => Ok(None),
            Some(text) => parse(&text)
                .map(Some)
                .map_err(|e| StoreError::corrupt(self.table, column, format!("{text:?}: {e}"))),
        }
    }

    /// A list of exact decimal amounts, stored as text.
    pub fn decimal_list(&self, column: &'static str) -> Result<Vec<Decimal>, StoreError> {
        self.text_list(column)?
            .iter()
            .map(|text| {
                text.parse::<Decimal>().map_err(|e| {
                    StoreError::corrupt(self.table, column, format!("amount {text:?}: {e}"))
                })
            })
            .collect()
    }
}

impl DriverRow for tokio_postgres::Row {
    fn text(&self, column: &str) -> Result<Option<String>, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn int(&self, column: &str) -> Result<Option<i64>, String> {
        // Counts and ids are int8; a few columns are int4 (ports of the seed's schema).
        match self.try_get::<_, Option<i64>>(column) {
            Ok(value) => Ok(value),
            Err(_) => self
                .try_get::<_, Option<i32>>(column)
                .map(|v| v.map(i64::from))
                .map_err(|e| e.to_string()),
        }
    }

    fn boolean(&self, column: &str) -> Result<Option<bool>, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn float(&self, column: &str) -> Result<Option<f64>, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn time(&self, column: &str) -> Result<Option<DateTime<Utc>>, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn text_list(&self, column: &str) -> Result<Option<Vec<String>>, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }
}

impl DriverRow for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> Result<Option<String>, String> {
        self.get(column).map_err(|e| e.to_string())
    }

    fn int(&self, column: &str) -> Result<Option<i64>, String> {
        self.get(column).map_err(|e| e.to_string())
    }

    fn boolean(&self, column: &str) -> Result<Option<bool>, String> {
        self.get(column).map_err(|e| e.to_string())
    }

    fn float(&self, column: &str) -> Result<Option<f64>, String> {
        self.get(column).map_err(|e| e.to_string())
    }

    fn time(&self, column: &str) -> Result<Option<DateTime<Utc>>, String> {
        match DriverRow::text(self, column)? {
            None => Ok(None),
            Some(text) => parse_sqlite_time(&text).map(Some),
        }
    }

    fn text_list(&self, column: &str) -> Result<Option<Vec<String>>, String> {
        match DriverRow::text(self, column)? {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| format!("not a JSON list of text: {e}")),
        }
    }
}

/// `2023-03-13T08:50:00.000Z`: SQLite's stored form (text comparison is time order).
pub(crate) fn sqlite_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub(crate) fn parse_sqlite_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("timestamp {text:?} is malformed: {e}"))
}
