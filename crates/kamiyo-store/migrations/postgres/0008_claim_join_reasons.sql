-- 0008_claim_join_reasons (PostgreSQL 15)
--
-- Why each claim is part of its incident, as the merge rule decided it when the claim
-- joined (issue #15, "explainable"): first (it created the incident), hash, page (a
-- cited page both share), name, alias, listed_twice (its source listed the record
-- twice). NULL for claims stored before this migration: the rule of their day decided
-- them, and nothing recorded why. Expand only: a nullable column the previous binary
-- neither reads nor writes. The SQLite twin is ../sqlite/0008_claim_join_reasons.sql.

ALTER TABLE exploit_sources ADD COLUMN joined_by text
    CONSTRAINT exploit_sources_joined_by_check
    CHECK (joined_by IN ('first', 'hash', 'page', 'name', 'alias', 'listed_twice'));
