//! Which SQL a statement is written in. Where PostgreSQL and SQLite need different SQL
//! for the same thing, both texts sit side by side in one place, chosen by this value.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// `postgres` or `sqlite`, as the dialect requires.
    pub fn pick<T>(self, postgres: T, sqlite: T) -> T {
        match self {
            Dialect::Postgres => postgres,
            Dialect::Sqlite => sqlite,
        }
    }
}
