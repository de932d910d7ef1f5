-- 0003_listing_paths (SQLite 3.40+)
--
-- Index paths for the read API's listing, SQLite twin of ../postgres/0003_listing_paths.sql
-- (see there for why): exploit_chains gets copies of its incident's occurred_at and
-- amount_usd, kept equal by triggers, and the index (chain, occurred_at, exploit_id,
-- amount_usd); exploits_amount_usd_idx, a prefix of exploits_amount_usd_id_idx, is
-- dropped. Same columns, triggers and index names (docs/SCHEMA.md, section "0003"); only
-- the dialect differs:
-- - SQLite has no INCLUDE: amount_usd is the index's last key column instead;
-- - no BEFORE trigger can change the row being written: the chain row is completed by an
--   AFTER trigger that updates it;
-- - the copies are in the incident's own representation (TEXT timestamps and money, see
--   0001), and compared as exploits' columns are (CAST(amount_usd AS REAL) for amounts).
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

-- Nullable: a row whose incident does not exist still fails on the foreign key.
ALTER TABLE exploit_chains ADD COLUMN occurred_at TEXT;
ALTER TABLE exploit_chains ADD COLUMN amount_usd TEXT;

CREATE TRIGGER exploit_chains_copy_incident_on_insert AFTER INSERT ON exploit_chains
FOR EACH ROW
BEGIN
    UPDATE exploit_chains
       SET (occurred_at, amount_usd) =
           (SELECT e.occurred_at, e.amount_usd FROM exploits e WHERE e.id = NEW.exploit_id)
     WHERE exploit_id = NEW.exploit_id AND chain = NEW.chain;
END;

CREATE TRIGGER exploit_chains_copy_incident_on_update AFTER UPDATE OF exploit_id ON exploit_chains
FOR EACH ROW
BEGIN
    UPDATE exploit_chains
       SET (occurred_at, amount_usd) =
           (SELECT e.occurred_at, e.amount_usd FROM exploits e WHERE e.id = NEW.exploit_id)
     WHERE exploit_id = NEW.exploit_id AND chain = NEW.chain;
END;

CREATE TRIGGER exploits_copy_to_chains AFTER UPDATE OF occurred_at, amount_usd ON exploits
FOR EACH ROW
WHEN NEW.occurred_at IS NOT OLD.occurred_at OR NEW.amount_usd IS NOT OLD.amount_usd
BEGIN
    UPDATE exploit_chains
       SET occurred_at = NEW.occurred_at, amount_usd = NEW.amount_usd
     WHERE exploit_id = NEW.id;
END;

UPDATE exploit_chains
   SET (occurred_at, amount_usd) =
       (SELECT e.occurred_at, e.amount_usd FROM exploits e WHERE e.id = exploit_chains.exploit_id);

CREATE INDEX exploit_chains_chain_occurred_at_idx
    ON exploit_chains (chain, occurred_at, exploit_id, amount_usd);

DROP INDEX exploits_amount_usd_idx;
