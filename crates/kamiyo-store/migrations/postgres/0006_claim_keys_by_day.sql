-- 0006_claim_keys_by_day (PostgreSQL 15)
--
-- A claim's key (exploit_sources.claim_key, computed by the application) named the date
-- as the source wrote it: '@3/13/23' from DeFiLlama's CSV export, '@1678665600' from its
-- API, so one record read in two shapes became two claims of one source. The key now
-- names the parsed date's UTC day ('@2023-03-13'); this rewrites the stored keys the same
-- way, so that the next import or fetch of a record finds its claim.
--
-- A key is rewritten by replacing '@' || reported_date with '@' || the UTC day of
-- occurred_at (the value the application parsed from reported_date). Where two claims
-- of one source would end up with one key (a record already stored twice, from the two
-- shapes), the oldest claim (lowest id) gets it and the others keep their old keys:
-- nothing is deleted or merged here, and an incident keeps every claim it had. A key
-- that some claim already holds is never given to another.
--
-- Contract change: a binary from before 0006 computes the old keys, so its imports would
-- no longer find their claims. Stop old instances before running it (docs/SCHEMA.md,
-- section "0006"). The SQLite twin is ../sqlite/0006_claim_keys_by_day.sql.

WITH rekeyed AS (
    SELECT id, source_name, claim_key,
           replace(claim_key, '@' || reported_date,
                   '@' || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')) AS day_key
      FROM exploit_sources
     WHERE reported_date IS NOT NULL AND reported_date <> ''
       AND strpos(claim_key, '@' || reported_date) > 0
), ranked AS (
    SELECT id, source_name, day_key,
           row_number() OVER (PARTITION BY source_name, day_key ORDER BY id) AS rank
      FROM rekeyed
     WHERE day_key <> claim_key
)
UPDATE exploit_sources AS s
   SET claim_key = r.day_key
  FROM ranked AS r
 WHERE s.id = r.id
   AND r.rank = 1
   AND NOT EXISTS (SELECT 1 FROM exploit_sources AS o
                    WHERE o.source_name = r.source_name AND o.claim_key = r.day_key);
