-- 0002_incident_sources (SQLite 3.40+)
--
-- Incidents seen by several sources, SQLite twin of ../postgres/0002_incident_sources.sql:
-- every chain an incident touched, every transaction hash it has, and every source's own
-- claim about it, kept next to the merged row in exploits; the flash_loan/bridge flags and
-- two indexes for the read API. Same tables, columns and rules (docs/SCHEMA.md, section
-- "0002"); only the dialect differs, as decided in 0001's header (STRICT tables, INTEGER
-- 0/1 booleans, canonical TEXT money, fixed-format TEXT timestamps).
--
-- Expand only: new columns have defaults, new tables are filled from exploits below, and
-- nothing the 0001 code reads changes (exploits.chain and exploits.tx_hash stay the
-- primary chain and hash), so the previous binary runs unchanged against this schema.
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here), so the backfill is all-or-nothing
-- with the DDL.

-- exploits: flags ------------------------------------------------------------------------

-- 0, not NULL, for existing rows: an incident is not a flash-loan or bridge incident until
-- a source says so. ADD COLUMN is allowed here (NOT NULL with a non-NULL constant default,
-- and a CHECK, which SQLite tests against the existing rows); the table is not rebuilt.
ALTER TABLE exploits ADD COLUMN flash_loan INTEGER NOT NULL DEFAULT 0
    CONSTRAINT exploits_flash_loan_check CHECK (flash_loan IN (0, 1));
ALTER TABLE exploits ADD COLUMN bridge INTEGER NOT NULL DEFAULT 0
    CONSTRAINT exploits_bridge_check CHECK (bridge IN (0, 1));

-- exploit_chains -------------------------------------------------------------------------

-- Every chain an incident touched (a bridge exploit spans several). exploits.chain stays
-- the primary chain and has its row here too, so "incidents on chain X" is one lookup here.
CREATE TABLE exploit_chains (
    exploit_id  INTEGER NOT NULL,
    chain       TEXT    NOT NULL,
    -- Leads with exploit_id, so it also serves the foreign key.
    CONSTRAINT exploit_chains_pkey PRIMARY KEY (exploit_id, chain),
    CONSTRAINT exploit_chains_exploit_id_fkey FOREIGN KEY (exploit_id)
        REFERENCES exploits (id) ON DELETE CASCADE,
    CONSTRAINT exploit_chains_chain_check CHECK (chain <> '')
) STRICT;

-- exploit_tx_hashes ----------------------------------------------------------------------

-- Every transaction hash of an incident, with the chain it is on. exploits.tx_hash stays
-- the primary hash and has its row here too.
CREATE TABLE exploit_tx_hashes (
    exploit_id  INTEGER NOT NULL,
    chain       TEXT    NOT NULL,
    tx_hash     TEXT    NOT NULL,
    CONSTRAINT exploit_tx_hashes_exploit_id_fkey FOREIGN KEY (exploit_id)
        REFERENCES exploits (id) ON DELETE CASCADE,
    CONSTRAINT exploit_tx_hashes_chain_check CHECK (chain <> ''),
    CONSTRAINT exploit_tx_hashes_tx_hash_check CHECK (tx_hash <> '')
) STRICT;

-- A hash belongs to one incident. Per chain, as in exploits_chain_tx_hash_key: the same
-- hash value on another chain is another transaction. No surrogate id: this is the
-- natural key (both columns NOT NULL), and what upserts conflict on.
CREATE UNIQUE INDEX exploit_tx_hashes_chain_tx_hash_key ON exploit_tx_hashes (chain, tx_hash);

-- exploit_sources ------------------------------------------------------------------------

-- What one source said about one incident, as that source said it. A merge of incidents
-- moves claims (exploit_id) but never overwrites them; only a re-import of the same
-- (source_name, claim_key) updates its own claim. So exploits can always be recomputed
-- from its claims, and a wrong merge can be undone.
CREATE TABLE exploit_sources (
    id              INTEGER NOT NULL CONSTRAINT exploit_sources_pkey PRIMARY KEY AUTOINCREMENT,
    exploit_id      INTEGER NOT NULL,
    -- Text, not a sources id: claims also come from files and sources that have no row in
    -- sources ('legacy' for rows that predate this table).
    source_name     TEXT    NOT NULL,
    -- Computed by the application: the source's own id for the record, or a hash of its
    -- content when it has none. Stable across re-imports of the same record.
    claim_key       TEXT    NOT NULL,
    source_url      TEXT,
    external_id     TEXT,
    reported_name   TEXT    NOT NULL,
    -- The date exactly as the source wrote it ('Mar 2024', '2024-03-22 14:00 UTC'...),
    -- kept because parsing it loses precision; occurred_at is the parsed value. Free text,
    -- so no timestamp format CHECK.
    reported_date   TEXT,
    occurred_at     TEXT    NOT NULL,
    amount_usd      TEXT,
    recovered_usd   TEXT,
    -- JSON array of chain keys, at least one, e.g. '["ethereum","arbitrum"]'. Text JSON
    -- (what json_array() returns), never SQLite's binary JSONB.
    chains          TEXT    NOT NULL,
    -- JSON array of 'chain:hash' strings, possibly empty. It keeps every hash the source
    -- listed, including one that exploit_tx_hashes already assigns to another incident.
    tx_hashes       TEXT    NOT NULL,
    attack_class    TEXT,
    attack_type     TEXT,
    -- The technique exactly as the source wrote it (exploits.attack_technique_raw).
    attack_text     TEXT,
    -- The source's own category, in its own words.
    classification  TEXT,
    status          TEXT,
    description     TEXT,
    -- NULL: the source does not say.
    flash_loan      INTEGER,
    bridge          INTEGER,
    -- When an import first and last reported this claim: last_seen_at moves on every
    -- re-import even when nothing changed (updated_at only moves when the row is updated).
    first_seen_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_seen_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT exploit_sources_exploit_id_fkey FOREIGN KEY (exploit_id)
        REFERENCES exploits (id) ON DELETE CASCADE,
    CONSTRAINT exploit_sources_source_name_check CHECK (source_name <> ''),
    CONSTRAINT exploit_sources_claim_key_check CHECK (claim_key <> ''),
    CONSTRAINT exploit_sources_reported_name_check CHECK (reported_name <> ''),
    CONSTRAINT exploit_sources_occurred_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', occurred_at) IS occurred_at),
    CONSTRAINT exploit_sources_amount_usd_check CHECK (amount_usd IS NULL OR (
        amount_usd GLOB '[0-9]*.[0-9][0-9]' AND amount_usd NOT GLOB '*[^0-9.]*'
        AND amount_usd NOT GLOB '*.*.*' AND amount_usd NOT GLOB '0[0-9]*'
        AND length(amount_usd) <= 21)),
    CONSTRAINT exploit_sources_recovered_usd_check CHECK (recovered_usd IS NULL OR (
        recovered_usd GLOB '[0-9]*.[0-9][0-9]' AND recovered_usd NOT GLOB '*[^0-9.]*'
        AND recovered_usd NOT GLOB '*.*.*' AND recovered_usd NOT GLOB '0[0-9]*'
        AND length(recovered_usd) <= 21)),
    -- CASE, not AND: json_type() raises an error on malformed JSON, so it must only see
    -- valid JSON for the failure to be a named CHECK violation.
    CONSTRAINT exploit_sources_chains_check CHECK (CASE
        WHEN json_valid(chains)
        THEN json_type(chains) = 'array' AND json_array_length(chains) > 0
        ELSE 0 END),
    CONSTRAINT exploit_sources_tx_hashes_check CHECK (CASE
        WHEN json_valid(tx_hashes) THEN json_type(tx_hashes) = 'array'
        ELSE 0 END),
    CONSTRAINT exploit_sources_status_check
        CHECK (status IN ('suspected', 'confirmed', 'disputed', 'not_a_loss')),
    CONSTRAINT exploit_sources_flash_loan_check CHECK (flash_loan IN (0, 1)),
    CONSTRAINT exploit_sources_bridge_check CHECK (bridge IN (0, 1)),
    CONSTRAINT exploit_sources_first_seen_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', first_seen_at) IS first_seen_at),
    CONSTRAINT exploit_sources_last_seen_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', last_seen_at) IS last_seen_at),
    CONSTRAINT exploit_sources_updated_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', updated_at) IS updated_at)
) STRICT;

-- One claim per source record: re-imports upsert on it.
CREATE UNIQUE INDEX exploit_sources_source_name_claim_key_key
    ON exploit_sources (source_name, claim_key);

-- indexes --------------------------------------------------------------------------------

-- "Incidents on chain X", any of their chains; exploit_id makes it a covering index.
CREATE INDEX exploit_chains_chain_idx ON exploit_chains (chain, exploit_id);
-- The foreign key (exploit_tx_hashes_chain_tx_hash_key does not lead with exploit_id).
CREATE INDEX exploit_tx_hashes_exploit_id_idx ON exploit_tx_hashes (exploit_id);
-- The foreign key, and "the claims of incident N".
CREATE INDEX exploit_sources_exploit_id_idx ON exploit_sources (exploit_id);

-- Keyset pagination by amount: id breaks ties, as in exploits_occurred_at_idx. On the
-- same expression as exploits_amount_usd_idx, CAST(amount_usd AS REAL) (text order is not
-- numeric order); queries must use exactly that expression. It makes
-- exploits_amount_usd_idx redundant; that one is dropped in a later (contract) migration,
-- not here, so the previous binary keeps its plans during a rolling deploy.
CREATE INDEX exploits_amount_usd_id_idx ON exploits (CAST(amount_usd AS REAL), id);
CREATE INDEX exploits_attack_type_occurred_at_idx ON exploits (attack_type, occurred_at);

-- updated_at trigger ---------------------------------------------------------------------

-- The same trigger as 0001's (see there): keeps an explicitly set updated_at, otherwise
-- the later of now and OLD + 1 ms.
CREATE TRIGGER exploit_sources_set_updated_at AFTER UPDATE ON exploit_sources FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE exploit_sources
       SET updated_at = max(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                            strftime('%Y-%m-%dT%H:%M:%fZ', OLD.updated_at, '+0.001 seconds'))
     WHERE id = NEW.id;
END;

-- backfill -------------------------------------------------------------------------------
--
-- Every existing incident gets its chain, its hash and one claim, so that every incident
-- has at least one source reference. No conflict is possible: exploits' own unique keys
-- (id, (chain, tx_hash)) carry over, and claim_key embeds the incident id.

INSERT INTO exploit_chains (exploit_id, chain)
SELECT id, chain FROM exploits;

INSERT INTO exploit_tx_hashes (exploit_id, chain, tx_hash)
SELECT id, chain, tx_hash FROM exploits WHERE tx_hash IS NOT NULL;

-- The claim is what the merged row says, attributed to its source ('legacy' when it has
-- none). first_seen_at/last_seen_at approximate the import history by created_at and
-- updated_at; what the row does not record (reported_date, external_id, classification,
-- flash_loan, bridge) stays NULL rather than being invented. Money and timestamps are
-- copied as text, already in the canonical formats the CHECKs require.
INSERT INTO exploit_sources (
    exploit_id, source_name, claim_key, source_url, reported_name, occurred_at,
    amount_usd, recovered_usd, chains, tx_hashes, attack_class, attack_type, attack_text,
    status, description, first_seen_at, last_seen_at
)
SELECT e.id,
       coalesce((SELECT s.name FROM sources s WHERE s.id = e.source_id), 'legacy'),
       'exploit:' || e.id,
       e.source_url,
       e.protocol,
       e.occurred_at,
       e.amount_usd,
       e.recovered_usd,
       json_array(e.chain),
       CASE WHEN e.tx_hash IS NULL THEN '[]'
            ELSE json_array(e.chain || ':' || e.tx_hash) END,
       e.attack_class,
       e.attack_type,
       e.attack_technique_raw,
       e.status,
       e.description,
       e.created_at,
       e.updated_at
FROM exploits e;
