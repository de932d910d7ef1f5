-- 0015_rate_limit_buckets (SQLite 3.40+)
--
-- SQLite twin of ../postgres/0015_rate_limit_buckets.sql. A SQLite database serves one
-- process, whose in-memory limiter is already the only one (`rate_limit.backend =
-- "postgres"` needs PostgreSQL): the table is kept so that both schemas have the same
-- tables, and nothing writes it.
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

CREATE TABLE rate_limit_buckets (
    key         TEXT  NOT NULL PRIMARY KEY,
    minute      REAL  NOT NULL,
    hour        REAL  NOT NULL,
    day         REAL  NOT NULL,
    updated_at  TEXT  NOT NULL
);
CREATE INDEX rate_limit_buckets_updated_at_idx ON rate_limit_buckets (updated_at);
