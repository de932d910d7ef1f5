//! Every statement SQLite runs, timed and counted for the monitor, including those a
//! multi-statement closure runs itself through rusqlite.
//!
//! SQLite reports each statement's start (`SQLITE_TRACE_STMT`) and its finish
//! (`SQLITE_TRACE_PROFILE`); the time between the two is the statement's run time.
//! Rows are not traced: SQLite's row event also fires for its internal schema
//! statements, which have no SQL text, and rusqlite reads that text without a check
//! (a crash). The profile event is only raised for statements with text. rusqlite takes the callback as a plain
//! `fn`, without a context pointer, so the callback writes into a capture that belongs
//! to the current thread: [`capture`] opens it around one closure on one blocking
//! thread (a connection runs one closure at a time) and hands back what was recorded,
//! and outside a capture (opening a connection, migrations) events are ignored.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::Connection;

/// One finished statement: its SQL text (with placeholders, never values) and how long
/// it ran.
pub(crate) struct Finished {
    pub sql: String,
    pub elapsed: Duration,
}

#[derive(Default)]
struct Capture {
    finished: Vec<Finished>,
    /// Statements that started and have not finished (a closure can step one statement
    /// while it runs others), by SQL text.
    running: Vec<(String, Instant)>,
    /// When the previous statement finished (or the capture opened).
    mark: Option<Instant>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// Sends the connection's statement events to [`capture`].
pub(crate) fn install(conn: &Connection) {
    conn.trace_v2(TraceEventCodes::SQLITE_TRACE_PROFILE, Some(on_event));
}

fn on_event(event: TraceEvent<'_>) {
    CAPTURE.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return;
        };
        let Some(capture) = slot.as_mut() else {
            return;
        };
        match event {
            // The text SQLite passes here is never absent; trigger programs pass
            // `-- TRIGGER name`, which has no finish event of its own.
            TraceEvent::Stmt(_, text) if !text.starts_with("--") => {
                capture.running.push((text.to_owned(), Instant::now()));
            }
            TraceEvent::Profile(statement, measured) => {
                let sql = statement.sql();
                // SQLite's own figure has the resolution of its clock (milliseconds):
                // timed here from the start event instead, when there was one.
                // SQLite sends the start event only on a statement's first run after it
                // is prepared: a cached statement run again is timed from the previous
                // statement's end (an upper bound: it includes the closure's own work
                // in between).
                let now = Instant::now();
                let started = match capture.running.iter().rposition(|(s, _)| *s == *sql) {
                    Some(at) => Some(capture.running.swap_remove(at).1),
                    None => capture.mark,
                };
                let elapsed = started.map_or(measured, |at| now.duration_since(at).max(measured));
                capture.mark = Some(now);
                capture.finished.push(Finished {
                    sql: sql.into_owned(),
                    elapsed,
                });
            }
            _ => {}
        }
    });
}

/// Runs `work` and returns, with its result, every statement it ran.
pub(crate) fn capture<R>(work: impl FnOnce() -> R) -> (R, Vec<Finished>) {
    /// Closes the capture however `work` ends (a panic included), so that a blocking
    /// thread reused for something else records nothing into it.
    struct Open;
    impl Drop for Open {
        fn drop(&mut self) {
            CAPTURE.with(|cell| cell.borrow_mut().take());
        }
    }
    CAPTURE.with(|cell| {
        *cell.borrow_mut() = Some(Capture {
            mark: Some(Instant::now()),
            ..Capture::default()
        })
    });
    let open = Open;
    let result = work();
    let finished = CAPTURE
        .with(|cell| {
            cell.borrow_mut()
                .as_mut()
                .map(|c| std::mem::take(&mut c.finished))
        })
        .unwrap_or_default();
    drop(open);
    (result, finished)
}
