-- 0005_source_fetch_slots (PostgreSQL 15)
--
-- Sources fetched on a schedule by any number of instances (issue #14). A schedule cuts
-- time into slots (one per fetch interval); every instance that wants to fetch a source
-- for a slot claims the row (source_name, slot_start) first, and only the one that gets
-- it fetches. No leader and no session-level advisory lock: a session lock is lost or
-- shared behind a transaction-mode pooler, whereas a claim is one INSERT ... ON CONFLICT
-- DO UPDATE ... WHERE statement, a compare-and-set on the row that PostgreSQL serialises
-- for any number of sessions. A claim holds a lease; a holder that dies stops renewing
-- it, and once it has expired the next claimer takes the slot over (attempt + 1). Times
-- are the callers' injected clocks, bound as parameters: the database's clock never
-- decides a lease.
--
-- source_fetches gains what an HTTP fetch records: status, size, duration, the
-- validators for the next conditional request, the body's hash, what the records
-- became, whether the source said "not modified", and the slot it ran for.
--
-- The SQLite twin is ../sqlite/0005_source_fetch_slots.sql (docs/SCHEMA.md, section
-- "0005"). Expand only: a new table and nullable or defaulted columns that the previous
-- binary neither reads nor has to write; no table rewrite (constant defaults), and the
-- new CHECKs hold for every existing row by their defaults.

CREATE TABLE source_fetch_slots (
    -- The registry row is created by the claim when missing, as record_fetch does.
    source_name  text        NOT NULL,
    -- The slot's start on the schedule, to the millisecond (what SQLite keeps).
    slot_start   timestamptz NOT NULL,
    -- The instance that holds (or last held) the slot.
    holder       text        NOT NULL,
    -- When the current holder claimed it (a takeover moves it).
    claimed_at   timestamptz NOT NULL,
    -- Past this time, and while not finished, anyone may take the slot over.
    lease_until  timestamptz NOT NULL,
    -- 1 for the first claim, + 1 on each takeover of an expired lease.
    attempt      integer     NOT NULL DEFAULT 1,
    finished_at  timestamptz,
    outcome      text,
    CONSTRAINT source_fetch_slots_pkey PRIMARY KEY (source_name, slot_start),
    CONSTRAINT source_fetch_slots_source_name_fkey FOREIGN KEY (source_name)
        REFERENCES sources (name) ON DELETE CASCADE,
    CONSTRAINT source_fetch_slots_holder_check CHECK (holder <> ''),
    CONSTRAINT source_fetch_slots_lease_until_check CHECK (lease_until >= claimed_at),
    CONSTRAINT source_fetch_slots_attempt_check CHECK (attempt >= 1),
    -- Finished exactly when it has an outcome.
    CONSTRAINT source_fetch_slots_outcome_check
        CHECK ((finished_at IS NULL AND outcome IS NULL)
               OR (finished_at IS NOT NULL
                   AND outcome IN ('succeeded', 'failed', 'unchanged')))
);

-- No other index: the primary key (source_name, slot_start) serves the foreign key, a
-- source's last slot, and the pruning of a source's slots older than the fetch
-- retention (done by record_fetch, like the fetches of 0004).

ALTER TABLE source_fetches
    -- The HTTP status of the last response (after redirects); NULL for an import or a
    -- fetch that got no response.
    ADD COLUMN http_status integer
        CONSTRAINT source_fetches_http_status_check CHECK (http_status BETWEEN 100 AND 599),
    ADD COLUMN bytes bigint
        CONSTRAINT source_fetches_bytes_check CHECK (bytes >= 0),
    ADD COLUMN duration_ms bigint
        CONSTRAINT source_fetches_duration_ms_check CHECK (duration_ms >= 0),
    -- Validators as the server sent them, for the next conditional request.
    ADD COLUMN etag text,
    ADD COLUMN last_modified text,
    -- SHA-256 of the body, lowercase hex: an unchanged body is skipped even from a
    -- server that sends no validators.
    ADD COLUMN body_sha256 text
        CONSTRAINT source_fetches_body_sha256_check CHECK (body_sha256 ~ '^[0-9a-f]{64}$'),
    -- What the fetch's records became.
    ADD COLUMN inserted bigint NOT NULL DEFAULT 0
        CONSTRAINT source_fetches_inserted_check CHECK (inserted >= 0),
    ADD COLUMN merged bigint NOT NULL DEFAULT 0
        CONSTRAINT source_fetches_merged_check CHECK (merged >= 0),
    ADD COLUMN updated bigint NOT NULL DEFAULT 0
        CONSTRAINT source_fetches_updated_check CHECK (updated >= 0),
    ADD COLUMN unchanged bigint NOT NULL DEFAULT 0
        CONSTRAINT source_fetches_unchanged_check CHECK (unchanged >= 0),
    ADD COLUMN rejected bigint NOT NULL DEFAULT 0
        CONSTRAINT source_fetches_rejected_check CHECK (rejected >= 0),
    -- A 304, or a body whose hash is the last success's: successful, and no claim was
    -- written.
    ADD COLUMN not_modified boolean NOT NULL DEFAULT false,
    -- The slot this fetch ran for; NULL for an import (no schedule). Not a foreign key:
    -- slots and fetches are pruned on their own, by the same retention.
    ADD COLUMN slot_start timestamptz,
    ADD CONSTRAINT source_fetches_not_modified_check
        CHECK (NOT not_modified
               OR (succeeded AND inserted = 0 AND merged = 0 AND updated = 0));
