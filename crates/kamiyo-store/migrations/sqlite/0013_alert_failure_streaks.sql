-- 0013_alert_failure_streaks (SQLite 3.40+)
--
-- `alert_subscriptions.last_failure_at`: SQLite twin of
-- ../postgres/0013_alert_failure_streaks.sql (see there for why).
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

ALTER TABLE alert_subscriptions ADD COLUMN last_failure_at TEXT;
UPDATE alert_subscriptions SET last_failure_at = failing_since WHERE failing_since IS NOT NULL;
