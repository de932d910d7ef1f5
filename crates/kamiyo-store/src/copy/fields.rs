//! Reading the copy's own rows (catalogs, bookkeeping, counts) by column name on both
//! drivers, through the store's [`DriverRow`]. Unlike the store's `row::Fields`, the
//! table is known only at run time and the error says which side it came from.

use super::error::{Side, Unreadable};
use crate::row::DriverRow;

/// A row of `table` on one side, read by column name: a missing column, a NULL where a
/// value is required or a value of another type is [`Unreadable`], never a panic.
pub(crate) struct NamedRow<'r, R: ?Sized> {
    side: Side,
    table: &'r str,
    row: &'r R,
}

impl<'r, R: DriverRow + ?Sized> NamedRow<'r, R> {
    pub fn of(side: Side, table: &'r str, row: &'r R) -> Self {
        NamedRow { side, table, row }
    }

    fn unreadable(&self, column: &str, reason: impl Into<String>) -> Unreadable {
        Unreadable {
            side: self.side,
            table: self.table.to_owned(),
            column: column.to_owned(),
            reason: reason.into(),
        }
    }

    fn optional<T>(
        &self,
        column: &str,
        value: Result<Option<T>, String>,
    ) -> Result<Option<T>, Unreadable> {
        value.map_err(|reason| self.unreadable(column, reason))
    }

    fn required<T>(&self, column: &str, value: Result<Option<T>, String>) -> Result<T, Unreadable> {
        self.optional(column, value)?
            .ok_or_else(|| self.unreadable(column, "NULL where a value is required"))
    }

    pub fn text(&self, column: &str) -> Result<String, Unreadable> {
        self.required(column, self.row.text(column))
    }

    pub fn opt_text(&self, column: &str) -> Result<Option<String>, Unreadable> {
        self.optional(column, self.row.text(column))
    }

    pub fn int(&self, column: &str) -> Result<i64, Unreadable> {
        self.required(column, self.row.int(column))
    }

    pub fn opt_int(&self, column: &str) -> Result<Option<i64>, Unreadable> {
        self.optional(column, self.row.int(column))
    }

    pub fn boolean(&self, column: &str) -> Result<bool, Unreadable> {
        self.required(column, self.row.boolean(column))
    }

    pub fn text_list(&self, column: &str) -> Result<Vec<String>, Unreadable> {
        self.required(column, self.row.text_list(column))
    }
}
