-- 0009_incident_redirects (SQLite 3.40+)
--
-- Incidents merged away stay resolvable, and the remerge this release ships runs once
-- after migrating: SQLite twin of ../postgres/0009_incident_redirects.sql (see there),
-- same tables, columns and constraint names.
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

CREATE TABLE incident_redirects (
    old_id      INTEGER NOT NULL CONSTRAINT incident_redirects_pkey PRIMARY KEY,
    exploit_id  INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT incident_redirects_exploit_id_fkey FOREIGN KEY (exploit_id)
        REFERENCES exploits (id) ON DELETE CASCADE,
    CONSTRAINT incident_redirects_reason_check CHECK (reason IN ('remerge', 'curated'))
);
CREATE INDEX incident_redirects_exploit_id_idx ON incident_redirects (exploit_id);

CREATE TABLE maintenance_tasks (
    name          TEXT NOT NULL CONSTRAINT maintenance_tasks_pkey PRIMARY KEY,
    requested_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT maintenance_tasks_name_check CHECK (name IN ('remerge'))
);
-- Only where there is something to remerge: a new database starts empty and current.
INSERT INTO maintenance_tasks (name) SELECT 'remerge' WHERE EXISTS (SELECT 1 FROM exploits);
