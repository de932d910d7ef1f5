-- 0004_source_fetches (SQLite 3.40+)
--
-- The fetch log, SQLite twin of ../postgres/0004_source_fetches.sql (see there for why):
-- one row per attempt to collect a source, from which GET /api/sources computes a success
-- rate over a rolling window. Same columns, constraints and index names (docs/SCHEMA.md,
-- section "0004"); timestamps are 0001's TEXT form, booleans 0/1.
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

CREATE TABLE source_fetches (
    id           INTEGER NOT NULL CONSTRAINT source_fetches_pkey PRIMARY KEY AUTOINCREMENT,
    source_name  TEXT    NOT NULL,
    started_at   TEXT    NOT NULL,
    finished_at  TEXT    NOT NULL,
    succeeded    INTEGER NOT NULL,
    records      INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    CONSTRAINT source_fetches_source_name_fkey FOREIGN KEY (source_name)
        REFERENCES sources (name) ON DELETE CASCADE,
    CONSTRAINT source_fetches_succeeded_check CHECK (succeeded IN (0, 1)),
    CONSTRAINT source_fetches_records_check CHECK (records >= 0),
    CONSTRAINT source_fetches_started_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', started_at) IS started_at),
    CONSTRAINT source_fetches_finished_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', finished_at) IS finished_at
               AND finished_at >= started_at),
    CONSTRAINT source_fetches_error_check
        CHECK ((succeeded AND error IS NULL)
               OR (NOT succeeded AND error IS NOT NULL AND error <> ''))
) STRICT;

CREATE INDEX source_fetches_source_name_finished_at_idx
    ON source_fetches (source_name, finished_at);
