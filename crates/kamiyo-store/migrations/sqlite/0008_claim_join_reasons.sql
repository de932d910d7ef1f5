-- 0008_claim_join_reasons (SQLite 3.40+)
--
-- Why each claim is part of its incident: SQLite twin of
-- ../postgres/0008_claim_join_reasons.sql (see there), same column, values and
-- constraint name.
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

ALTER TABLE exploit_sources ADD COLUMN joined_by TEXT
    CONSTRAINT exploit_sources_joined_by_check
    CHECK (joined_by IN ('first', 'hash', 'page', 'name', 'alias', 'listed_twice'));
