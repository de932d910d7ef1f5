-- kamiyo:no-transaction
-- 0003_listing_paths (PostgreSQL 15)
--
-- Index paths for the read API's listing (issue 4's throughput work, bench/API_RESULTS.md):
--
-- 1. exploit_chains gets copies of its incident's occurred_at and amount_usd, kept equal
--    by triggers, and an index (chain, occurred_at, exploit_id) INCLUDE (amount_usd). A
--    listing filtered by chain then reads one index range in date order, and its count is
--    an index-only scan: before, the chain filter was an EXISTS probe per row of
--    exploits_occurred_at_idx (20,000 rows walked for a page of a rare chain) and its count
--    a hash join over the whole heap (50-100 ms for 100k incidents).
-- 2. exploits_amount_usd_idx is dropped: 0002's exploits_amount_usd_id_idx (amount_usd, id)
--    has it as a prefix and serves the amount sort in both orders.
--
-- The SQLite twin is ../sqlite/0003_listing_paths.sql (same columns, triggers and index
-- names; docs/SCHEMA.md, section "0003").
--
-- Expand only, and the previous binary keeps working: it inserts exploit_chains rows
-- without the new columns (the trigger fills them) and never reads them.
--
-- Outside a transaction (first line) because the indexes are built CONCURRENTLY on tables
-- that may be large and live. The runner sends one statement at a time; every statement
-- is safe to run again after a failure part-way (hence the IF [NOT] EXISTS and OR REPLACE
-- that transactional migrations do not use).

-- Nullable: no rewrite of the table, and a row whose incident does not exist fails on the
-- foreign key (exploit_chains_exploit_id_fkey), as before, not on a NOT NULL of a copy.
ALTER TABLE exploit_chains
    ADD COLUMN IF NOT EXISTS occurred_at timestamptz,
    ADD COLUMN IF NOT EXISTS amount_usd  numeric(20,2);

-- A chain row takes its incident's values when it is written (every writer deletes and
-- inserts an incident's chains after or before updating the incident; the second trigger
-- covers the other order).
CREATE OR REPLACE FUNCTION kamiyo_exploit_chains_copy_incident() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT e.occurred_at, e.amount_usd INTO NEW.occurred_at, NEW.amount_usd
      FROM exploits e
     WHERE e.id = NEW.exploit_id;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER exploit_chains_copy_incident_on_insert BEFORE INSERT ON exploit_chains
    FOR EACH ROW EXECUTE FUNCTION kamiyo_exploit_chains_copy_incident();
CREATE OR REPLACE TRIGGER exploit_chains_copy_incident_on_update
    BEFORE UPDATE OF exploit_id ON exploit_chains
    FOR EACH ROW EXECUTE FUNCTION kamiyo_exploit_chains_copy_incident();

-- An incident whose date or loss changes passes it on to its chain rows (one or two).
CREATE OR REPLACE FUNCTION kamiyo_exploits_copy_to_chains() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE exploit_chains
       SET occurred_at = NEW.occurred_at, amount_usd = NEW.amount_usd
     WHERE exploit_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER exploits_copy_to_chains AFTER UPDATE OF occurred_at, amount_usd ON exploits
    FOR EACH ROW
    WHEN (OLD.occurred_at IS DISTINCT FROM NEW.occurred_at
          OR OLD.amount_usd IS DISTINCT FROM NEW.amount_usd)
    EXECUTE FUNCTION kamiyo_exploits_copy_to_chains();

-- Rows written before the triggers existed. After them: a row written since already has
-- its values, and the condition skips it (a re-run skips everything).
UPDATE exploit_chains c
   SET occurred_at = e.occurred_at, amount_usd = e.amount_usd
  FROM exploits e
 WHERE e.id = c.exploit_id
   AND (c.occurred_at IS DISTINCT FROM e.occurred_at OR c.amount_usd IS DISTINCT FROM e.amount_usd);

-- Chain, then date: "incidents on chain X between two dates, newest first" is one range;
-- exploit_id breaks ties (keyset pages) and joins to the incident; amount_usd is included
-- so that an amount bound is checked in the index, and a count reads nothing else.
DROP INDEX CONCURRENTLY IF EXISTS exploit_chains_chain_occurred_at_idx;
CREATE INDEX CONCURRENTLY exploit_chains_chain_occurred_at_idx
    ON exploit_chains (chain, occurred_at, exploit_id) INCLUDE (amount_usd);

DROP INDEX CONCURRENTLY IF EXISTS exploits_amount_usd_idx;

-- The backfill left a dead version of every chain row: until a vacuum, index-only scans
-- would visit the heap for each of them. Also gives the planner the new columns' stats.
VACUUM (ANALYZE) exploit_chains;
