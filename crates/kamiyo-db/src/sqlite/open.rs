//! Opens a SQLite connection with the settings every connection must have.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// WAL lets readers run beside the single writer; `busy_timeout` makes a second writer
/// wait (up to the deadline) instead of failing at once; foreign keys are off by default
/// in SQLite and must be switched on for every connection.
pub(crate) fn open_connection(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(busy_timeout)?;
    // Changing the journal mode needs a write lock the first time; busy_timeout above
    // makes concurrent first openers wait for it instead of failing.
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal_mode = %mode, "SQLite refused WAL mode; concurrent readers will block");
    }
    conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;")?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connection_has_wal_busy_timeout_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("t.db"), Duration::from_millis(1234)).unwrap();
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let busy: i64 = conn
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        assert_eq!((fk, mode.as_str(), busy), (1, "wal", 1234));
    }
}
