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
    // Switching a new file to WAL needs an exclusive lock, and SQLite answers a second
    // opener racing for it with BUSY at once, without its busy handler. The switch is
    // made once per file, so the rare loser retries for up to the busy timeout.
    let started = std::time::Instant::now();
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0)) {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && started.elapsed() < busy_timeout =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => break other?,
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal_mode = %mode, "SQLite refused WAL mode; concurrent readers will block");
    }
    conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;")?;
    register_functions(&conn)?;
    super::trace::install(&conn);
    Ok(conn)
}

/// Lower case, character by character: what PostgreSQL's `lower()` does in a UTF-8
/// locale, and what `kamiyo_lower()` does on SQLite. Not `str::to_lowercase`, whose
/// context rule (a final Σ becomes ς) PostgreSQL does not apply: a pattern ending in Σ
/// would then miss the σ stored mid-word.
pub fn fold_case(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// SQL name of a Unicode-aware `lower()` ([`fold_case`]): SQLite's own folds ASCII
/// letters only, so a case-insensitive search for "ÉULER" would miss "éuler"
/// (PostgreSQL's `lower()` folds by the database's `LC_CTYPE`, Unicode in a UTF-8 locale).
pub const UNICODE_LOWER: &str = "kamiyo_lower";

fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        UNICODE_LOWER,
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            use rusqlite::types::ValueRef;
            // NULL stays NULL and numbers become text, as with SQLite's lower() (a REAL
            // as Rust prints it: 3.0 gives "3").
            Ok(match ctx.get_raw(0) {
                ValueRef::Null => None,
                ValueRef::Integer(i) => Some(i.to_string()),
                ValueRef::Real(f) => Some(f.to_string()),
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                    Some(fold_case(&String::from_utf8_lossy(bytes)))
                }
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamiyo_lower_folds_unicode_where_lower_folds_ascii_only() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("f.db"), Duration::from_secs(1)).unwrap();
        let folded: (String, String, Option<String>, String) = conn
            .query_row(
                "SELECT lower('ÉULER Ünïcode'), kamiyo_lower('ÉULER Ünïcode'), kamiyo_lower(NULL), kamiyo_lower(42)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            fold_case("ΟΔΥΣ"),
            "οδυσ",
            "no final-sigma rule, as PostgreSQL"
        );
        assert_eq!(
            folded,
            (
                "Éuler Ünïcode".to_owned(),
                "éuler ünïcode".to_owned(),
                None,
                "42".to_owned()
            )
        );
    }

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
