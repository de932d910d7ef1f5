-- 0006_claim_keys_by_day (SQLite 3.40+)
--
-- Claim keys name the UTC day instead of the date text the source wrote: SQLite twin of
-- ../postgres/0006_claim_keys_by_day.sql (see there for why and for the rule), same
-- result. occurred_at is 0001's TEXT form ('2023-03-13T00:00:00.000Z', always UTC), so
-- its first ten characters are the day.
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

WITH rekeyed AS (
    SELECT id, source_name, claim_key,
           replace(claim_key, '@' || reported_date, '@' || substr(occurred_at, 1, 10)) AS day_key
      FROM exploit_sources
     WHERE reported_date IS NOT NULL AND reported_date <> ''
       AND instr(claim_key, '@' || reported_date) > 0
), ranked AS (
    SELECT id, source_name, day_key,
           row_number() OVER (PARTITION BY source_name, day_key ORDER BY id) AS rank
      FROM rekeyed
     WHERE day_key <> claim_key
)
UPDATE exploit_sources
   SET claim_key = (SELECT r.day_key FROM ranked AS r WHERE r.id = exploit_sources.id)
 WHERE id IN (SELECT r.id FROM ranked AS r
               WHERE r.rank = 1
                 AND NOT EXISTS (SELECT 1 FROM exploit_sources AS o
                                  WHERE o.source_name = r.source_name AND o.claim_key = r.day_key));
