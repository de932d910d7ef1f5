-- 0010_curation (PostgreSQL 15)
--
-- What people decide about incidents, kept so that every later import, fetch and remerge
-- respects it (issue #15, "curation"):
--
-- `curation_decisions`: a curator merged incidents, or split claims off one. The claims
-- are named by source and claim key (`[[source, claim_key], ...]`), which survive any
-- remerge, unlike incident ids; `incident_ids` records the ids named at the time. A
-- merge keeps `claims` together; a split keeps `claims` together and apart from `others`
-- (the claims they left). Later decisions override earlier ones on the claims they name.
--
-- `exploit_sources.curated_by`: the decision that put a claim in its incident, when a
-- decision did (its `joined_by` is then NULL: the rule did not join it).
--
-- `protocol_aliases`: names an operator declared one protocol at run time, beside the
-- table shipped in the binary; `alias_key` (the alias's key) is unique, so an alias
-- belongs to one protocol.
--
-- Expand only: new tables and a nullable column the previous binary neither reads nor
-- writes. The SQLite twin is ../sqlite/0010_curation.sql.

CREATE TABLE curation_decisions (
    id            bigserial   NOT NULL,
    kind          text        NOT NULL,
    claims        jsonb       NOT NULL,
    others        jsonb,
    incident_ids  jsonb       NOT NULL,
    reason        text        NOT NULL,
    decided_by    text        NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT curation_decisions_pkey PRIMARY KEY (id),
    CONSTRAINT curation_decisions_kind_check CHECK (kind IN ('merge', 'split')),
    CONSTRAINT curation_decisions_reason_check CHECK (reason <> ''),
    CONSTRAINT curation_decisions_decided_by_check CHECK (decided_by <> '')
);

ALTER TABLE exploit_sources ADD COLUMN curated_by bigint
    CONSTRAINT exploit_sources_curated_by_fkey REFERENCES curation_decisions (id) ON DELETE SET NULL;
-- Serves the foreign key (deleting a decision finds its claims).
CREATE INDEX exploit_sources_curated_by_idx ON exploit_sources (curated_by);

CREATE TABLE protocol_aliases (
    alias_key  text        NOT NULL,
    name       text        NOT NULL,
    alias      text        NOT NULL,
    reason     text        NOT NULL,
    added_by   text        NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT protocol_aliases_pkey PRIMARY KEY (alias_key),
    CONSTRAINT protocol_aliases_name_check CHECK (name <> ''),
    CONSTRAINT protocol_aliases_alias_check CHECK (alias <> ''),
    CONSTRAINT protocol_aliases_reason_check CHECK (reason <> ''),
    CONSTRAINT protocol_aliases_added_by_check CHECK (added_by <> '')
);
