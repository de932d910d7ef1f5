-- 0011_decision_claim_ids (PostgreSQL 15)
--
-- Curators' decisions name their claims by id (`exploit_sources.id`) in `claim_ids` and
-- `other_ids`. A claim's key changes when its source corrects it (a new date, another
-- spelling: the row is updated in place), so a decision naming `[source, claim_key]`
-- stopped matching the claim it was about; the id does not change.
--
-- Expand only: the `[source, claim_key]` lists stay and are still written, for a binary
-- of the previous release during a rolling deploy; this one reads the ids. Decisions
-- already taken are backfilled by joining their pairs to the claims they name now.
-- The SQLite twin is ../sqlite/0011_decision_claim_ids.sql.

ALTER TABLE curation_decisions ADD COLUMN claim_ids jsonb, ADD COLUMN other_ids jsonb;

UPDATE curation_decisions d SET
    claim_ids = COALESCE((
        SELECT jsonb_agg(s.id ORDER BY s.id)
        FROM jsonb_array_elements(d.claims) AS pair
        JOIN exploit_sources s ON s.source_name = pair ->> 0 AND s.claim_key = pair ->> 1
    ), '[]'::jsonb),
    other_ids = CASE WHEN d.others IS NULL THEN NULL ELSE COALESCE((
        SELECT jsonb_agg(s.id ORDER BY s.id)
        FROM jsonb_array_elements(d.others) AS pair
        JOIN exploit_sources s ON s.source_name = pair ->> 0 AND s.claim_key = pair ->> 1
    ), '[]'::jsonb) END;
