-- 0011_decision_claim_ids (SQLite 3.40+)
--
-- Curators' decisions name their claims by id: SQLite twin of
-- ../postgres/0011_decision_claim_ids.sql (see there for why), JSON lists as text.
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

ALTER TABLE curation_decisions ADD COLUMN claim_ids TEXT;
ALTER TABLE curation_decisions ADD COLUMN other_ids TEXT;

UPDATE curation_decisions SET
    claim_ids = COALESCE((
        SELECT json_group_array(s.id)
        FROM json_each(curation_decisions.claims) AS pair
        JOIN exploit_sources s ON s.source_name = json_extract(pair.value, '$[0]')
                              AND s.claim_key = json_extract(pair.value, '$[1]')
    ), '[]'),
    other_ids = CASE WHEN others IS NULL THEN NULL ELSE COALESCE((
        SELECT json_group_array(s.id)
        FROM json_each(curation_decisions.others) AS pair
        JOIN exploit_sources s ON s.source_name = json_extract(pair.value, '$[0]')
                              AND s.claim_key = json_extract(pair.value, '$[1]')
    ), '[]') END;
