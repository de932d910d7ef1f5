-- 0010_curation (SQLite 3.40+)
--
-- Curators' decisions, the claim column naming the decision that placed it, and
-- operators' protocol aliases: SQLite twin of ../postgres/0010_curation.sql (see there),
-- same tables, columns and constraint names; JSON lists as text.
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

CREATE TABLE curation_decisions (
    id            INTEGER NOT NULL CONSTRAINT curation_decisions_pkey PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    claims        TEXT    NOT NULL,
    others        TEXT,
    incident_ids  TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    decided_by    TEXT    NOT NULL,
    decided_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT curation_decisions_kind_check CHECK (kind IN ('merge', 'split')),
    CONSTRAINT curation_decisions_reason_check CHECK (reason <> ''),
    CONSTRAINT curation_decisions_decided_by_check CHECK (decided_by <> '')
);

ALTER TABLE exploit_sources ADD COLUMN curated_by INTEGER
    CONSTRAINT exploit_sources_curated_by_fkey REFERENCES curation_decisions (id) ON DELETE SET NULL;
-- Serves the foreign key (deleting a decision finds its claims).
CREATE INDEX exploit_sources_curated_by_idx ON exploit_sources (curated_by);

CREATE TABLE protocol_aliases (
    alias_key  TEXT NOT NULL CONSTRAINT protocol_aliases_pkey PRIMARY KEY,
    name       TEXT NOT NULL,
    alias      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    added_by   TEXT NOT NULL,
    added_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT protocol_aliases_name_check CHECK (name <> ''),
    CONSTRAINT protocol_aliases_alias_check CHECK (alias <> ''),
    CONSTRAINT protocol_aliases_reason_check CHECK (reason <> ''),
    CONSTRAINT protocol_aliases_added_by_check CHECK (added_by <> '')
);
