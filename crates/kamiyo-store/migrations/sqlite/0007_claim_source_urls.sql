-- 0007_claim_source_urls (SQLite 3.40+)
--
-- The index of a claim's lookup by the page it cites: SQLite twin of
-- ../postgres/0007_claim_source_urls.sql (see there for why).
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

CREATE INDEX exploit_sources_source_url_idx ON exploit_sources (source_url);
