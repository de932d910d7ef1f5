-- 0016_account_notifications (SQLite 3.40+)
--
-- SQLite twin of ../postgres/0016_account_notifications.sql, which makes PostgreSQL
-- notify every instance of a revoked key or a changed user. A SQLite database serves
-- one process, whose own changes empty its key cache at once, and whose command-line
-- changes (another process) take effect within `server.auth_cache_ttl`: SQLite has no
-- notifications, so there is nothing to add. The version exists so that both backends
-- count the same migrations.
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

SELECT 1;
