-- 0009_incident_redirects (PostgreSQL 15)
--
-- Incidents merged away stay resolvable (issue #15, "re-evaluation"): when a remerge or
-- a curator folds incident `old_id` into another, `GET /api/exploits/{old_id}` answers
-- 308 to the survivor, and the survivor lists the ids merged into it. A redirect follows
-- its survivor when that one is merged away in turn (rewritten, never chained), and goes
-- with it if it is ever deleted.
--
-- `maintenance_tasks` holds work the binary runs once after migrating, in Rust, because
-- SQL alone cannot do it: here the remerge of every stored claim under the identity rule
-- this release ships. The task's row is deleted in the transaction that does the work,
-- so a crash part-way leaves it to run again. Expand only: the previous binary neither
-- reads nor writes these tables. The SQLite twin is ../sqlite/0009_incident_redirects.sql.

CREATE TABLE incident_redirects (
    old_id      bigint      NOT NULL,
    exploit_id  bigint      NOT NULL,
    reason      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT incident_redirects_pkey PRIMARY KEY (old_id),
    CONSTRAINT incident_redirects_exploit_id_fkey FOREIGN KEY (exploit_id)
        REFERENCES exploits (id) ON DELETE CASCADE,
    CONSTRAINT incident_redirects_reason_check CHECK (reason IN ('remerge', 'curated'))
);
CREATE INDEX incident_redirects_exploit_id_idx ON incident_redirects (exploit_id);

CREATE TABLE maintenance_tasks (
    name          text        NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT maintenance_tasks_pkey PRIMARY KEY (name),
    CONSTRAINT maintenance_tasks_name_check CHECK (name IN ('remerge'))
);
-- Only where there is something to remerge: a new database starts empty and current.
INSERT INTO maintenance_tasks (name) SELECT 'remerge' WHERE EXISTS (SELECT 1 FROM exploits);
