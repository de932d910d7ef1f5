-- 0013_alert_failure_streaks (PostgreSQL 15)
--
-- A subscription is disabled after failing continuously for `alerts.disable_after`.
-- `failing_since` alone could not tell a streak from two failures a week apart with no
-- traffic between them: `last_failure_at` can, and a failure more than the retry window
-- after the previous one starts a new streak. Expand only: a nullable column.
-- The SQLite twin is ../sqlite/0013_alert_failure_streaks.sql.

ALTER TABLE alert_subscriptions ADD COLUMN last_failure_at timestamptz;
UPDATE alert_subscriptions SET last_failure_at = failing_since WHERE failing_since IS NOT NULL;
