-- 0005_source_fetch_slots (SQLite 3.40+)
--
-- Fetch slots and what an HTTP fetch records, SQLite twin of
-- ../postgres/0005_source_fetch_slots.sql (see there for why): same tables, columns,
-- constraint names and rules (docs/SCHEMA.md, section "0005"); timestamps are 0001's
-- TEXT form, booleans 0/1. A claim is one INSERT ... ON CONFLICT DO UPDATE ... WHERE
-- ... RETURNING (SQLite 3.35+; the bundled library is newer), which SQLite's single
-- writer serialises.
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

CREATE TABLE source_fetch_slots (
    source_name  TEXT    NOT NULL,
    slot_start   TEXT    NOT NULL,
    holder       TEXT    NOT NULL,
    claimed_at   TEXT    NOT NULL,
    lease_until  TEXT    NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 1,
    finished_at  TEXT,
    outcome      TEXT,
    CONSTRAINT source_fetch_slots_pkey PRIMARY KEY (source_name, slot_start),
    CONSTRAINT source_fetch_slots_source_name_fkey FOREIGN KEY (source_name)
        REFERENCES sources (name) ON DELETE CASCADE,
    CONSTRAINT source_fetch_slots_slot_start_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', slot_start) IS slot_start),
    CONSTRAINT source_fetch_slots_holder_check CHECK (holder <> ''),
    CONSTRAINT source_fetch_slots_claimed_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', claimed_at) IS claimed_at),
    CONSTRAINT source_fetch_slots_lease_until_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', lease_until) IS lease_until
               AND lease_until >= claimed_at),
    CONSTRAINT source_fetch_slots_attempt_check CHECK (attempt >= 1),
    CONSTRAINT source_fetch_slots_finished_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', finished_at) IS finished_at),
    CONSTRAINT source_fetch_slots_outcome_check
        CHECK ((finished_at IS NULL AND outcome IS NULL)
               OR (finished_at IS NOT NULL
                   AND outcome IN ('succeeded', 'failed', 'unchanged')))
) STRICT;

-- No other index: the primary key serves the foreign key, a source's last slot and the
-- pruning of its old slots (see the PostgreSQL twin).

-- SQLite adds one column per statement. A CHECK on an added column is verified against
-- the existing rows, which all hold the defaults.
ALTER TABLE source_fetches ADD COLUMN http_status INTEGER
    CONSTRAINT source_fetches_http_status_check CHECK (http_status BETWEEN 100 AND 599);
ALTER TABLE source_fetches ADD COLUMN bytes INTEGER
    CONSTRAINT source_fetches_bytes_check CHECK (bytes >= 0);
ALTER TABLE source_fetches ADD COLUMN duration_ms INTEGER
    CONSTRAINT source_fetches_duration_ms_check CHECK (duration_ms >= 0);
ALTER TABLE source_fetches ADD COLUMN etag TEXT;
ALTER TABLE source_fetches ADD COLUMN last_modified TEXT;
ALTER TABLE source_fetches ADD COLUMN body_sha256 TEXT
    CONSTRAINT source_fetches_body_sha256_check
        CHECK (length(body_sha256) = 64 AND body_sha256 NOT GLOB '*[^0-9a-f]*');
ALTER TABLE source_fetches ADD COLUMN inserted INTEGER NOT NULL DEFAULT 0
    CONSTRAINT source_fetches_inserted_check CHECK (inserted >= 0);
ALTER TABLE source_fetches ADD COLUMN merged INTEGER NOT NULL DEFAULT 0
    CONSTRAINT source_fetches_merged_check CHECK (merged >= 0);
ALTER TABLE source_fetches ADD COLUMN updated INTEGER NOT NULL DEFAULT 0
    CONSTRAINT source_fetches_updated_check CHECK (updated >= 0);
ALTER TABLE source_fetches ADD COLUMN unchanged INTEGER NOT NULL DEFAULT 0
    CONSTRAINT source_fetches_unchanged_check CHECK (unchanged >= 0);
ALTER TABLE source_fetches ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0
    CONSTRAINT source_fetches_rejected_check CHECK (rejected >= 0);
-- SQLite has no table-level ADD CONSTRAINT: the rule tying not_modified to the other
-- columns is this column's CHECK, under the same name as PostgreSQL's.
ALTER TABLE source_fetches ADD COLUMN not_modified INTEGER NOT NULL DEFAULT 0
    CONSTRAINT source_fetches_not_modified_check
        CHECK (not_modified IN (0, 1)
               AND (NOT not_modified
                    OR (succeeded AND inserted = 0 AND merged = 0 AND updated = 0)));
ALTER TABLE source_fetches ADD COLUMN slot_start TEXT
    CONSTRAINT source_fetches_slot_start_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', slot_start) IS slot_start);
