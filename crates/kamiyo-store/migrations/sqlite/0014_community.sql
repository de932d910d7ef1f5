-- 0014_community (SQLite 3.40+)
--
-- Community submissions as reviewed evidence: SQLite twin of ../postgres/0014_community.sql
-- (see there for why). SQLite cannot drop or change a CHECK constraint, so
-- community_submissions is rebuilt: no table references it, and the one view that reads
-- it is dropped first and recreated after (a rename checks every view in the schema).
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

DROP VIEW v_user_stats;

CREATE TABLE community_submissions_0014 (
    id                  INTEGER NOT NULL CONSTRAINT community_submissions_pkey PRIMARY KEY AUTOINCREMENT,
    submitted_by        INTEGER,
    exploit_id          INTEGER,
    protocol            TEXT    NOT NULL,
    amount_usd          TEXT,
    description         TEXT,
    claim               TEXT    NOT NULL,
    evidence_urls       TEXT    NOT NULL DEFAULT '[]',
    attacker_addresses  TEXT    NOT NULL DEFAULT '[]',
    victim_addresses    TEXT    NOT NULL DEFAULT '[]',
    fingerprint         TEXT    NOT NULL,
    matched             TEXT    NOT NULL DEFAULT 'none',
    candidate_ids       TEXT    NOT NULL DEFAULT '[]',
    claim_id            INTEGER,
    status              TEXT    NOT NULL DEFAULT 'pending',
    reviewed_by         INTEGER,
    reviewed_at         TEXT,
    review_note         TEXT,
    created_at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT community_submissions_submitted_by_fkey FOREIGN KEY (submitted_by)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT community_submissions_exploit_id_fkey FOREIGN KEY (exploit_id)
        REFERENCES exploits (id) ON DELETE SET NULL,
    CONSTRAINT community_submissions_reviewed_by_fkey FOREIGN KEY (reviewed_by)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT community_submissions_claim_id_fkey FOREIGN KEY (claim_id)
        REFERENCES exploit_sources (id) ON DELETE SET NULL,
    CONSTRAINT community_submissions_protocol_check CHECK (protocol <> ''),
    CONSTRAINT community_submissions_amount_usd_check CHECK (amount_usd IS NULL OR (
        amount_usd GLOB '[0-9]*.[0-9][0-9]' AND amount_usd NOT GLOB '*[^0-9.]*'
        AND amount_usd NOT GLOB '*.*.*' AND amount_usd NOT GLOB '0[0-9]*'
        AND length(amount_usd) <= 21)),
    CONSTRAINT community_submissions_claim_check CHECK (json_valid(claim)),
    CONSTRAINT community_submissions_lists_check CHECK (json_valid(evidence_urls)
        AND json_valid(attacker_addresses) AND json_valid(victim_addresses)
        AND json_valid(candidate_ids)),
    CONSTRAINT community_submissions_status_check
        CHECK (status IN ('pending', 'verified', 'rejected', 'duplicate', 'reversed')),
    CONSTRAINT community_submissions_matched_check
        CHECK (matched IN ('incident', 'candidates', 'none')),
    CONSTRAINT community_submissions_reviewed_at_check
        CHECK ((status = 'pending') = (reviewed_at IS NULL)
               AND strftime('%Y-%m-%dT%H:%M:%fZ', reviewed_at) IS reviewed_at),
    CONSTRAINT community_submissions_created_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', created_at) IS created_at),
    CONSTRAINT community_submissions_updated_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', updated_at) IS updated_at)
) STRICT;

INSERT INTO community_submissions_0014 (
    id, submitted_by, exploit_id, protocol, amount_usd, description, claim, evidence_urls,
    fingerprint, status, reviewed_by, reviewed_at, review_note, created_at, updated_at)
SELECT id, submitted_by, exploit_id, protocol, amount_usd, description,
       json_object(
           'protocol', protocol,
           'chains', json_array(chain),
           'tx_hashes', CASE WHEN tx_hash IS NULL THEN json_array()
                             ELSE json_array(json_object('chain', chain, 'hash', tx_hash)) END,
           'loss_usd', amount_usd,
           'description', description,
           'date', substr(created_at, 1, 10)),
       CASE WHEN evidence_url IS NULL THEN json_array() ELSE json_array(evidence_url) END,
       'legacy-' || id,
       CASE status WHEN 'approved' THEN 'verified' ELSE status END,
       reviewed_by, reviewed_at, review_note, created_at, updated_at
  FROM community_submissions;

DROP TABLE community_submissions;
ALTER TABLE community_submissions_0014 RENAME TO community_submissions;

CREATE INDEX community_submissions_submitted_by_idx
    ON community_submissions (submitted_by, status);
CREATE INDEX community_submissions_exploit_id_idx ON community_submissions (exploit_id);
CREATE INDEX community_submissions_reviewed_by_idx ON community_submissions (reviewed_by);
CREATE INDEX community_submissions_status_created_at_idx
    ON community_submissions (status, created_at);
CREATE INDEX community_submissions_claim_id_idx ON community_submissions (claim_id);
CREATE UNIQUE INDEX community_submissions_fingerprint_key
    ON community_submissions (submitted_by, fingerprint);
CREATE INDEX community_submissions_pending_idx
    ON community_submissions (created_at, id) WHERE status = 'pending';

CREATE TRIGGER community_submissions_set_updated_at AFTER UPDATE ON community_submissions
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE community_submissions
       SET updated_at = max(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                            strftime('%Y-%m-%dT%H:%M:%fZ', OLD.updated_at, '+0.001 seconds'))
     WHERE id = NEW.id;
END;

CREATE VIEW v_user_stats AS
SELECT u.id,
       u.email,
       u.tier,
       u.role,
       u.is_active,
       u.created_at,
       (SELECT count(*) FROM alerts_sent a
         WHERE a.user_id = u.id AND a.status = 'sent')                   AS alerts_sent,
       (SELECT count(*) FROM community_submissions c
         WHERE c.submitted_by = u.id)                                    AS submissions_total,
       (SELECT count(*) FROM community_submissions c
         WHERE c.submitted_by = u.id AND c.status = 'verified')          AS submissions_approved,
       coalesce((SELECT r.score FROM user_reputation r
                  WHERE r.user_id = u.id), 0)                            AS reputation_score,
       (SELECT count(*) FROM payments p
         WHERE p.user_id = u.id AND p.status = 'succeeded')              AS payments_succeeded_count,
       (SELECT total(CAST(p.amount AS REAL)) FROM payments p
         WHERE p.user_id = u.id AND p.status = 'succeeded')              AS payments_succeeded_total
FROM users u;

CREATE TABLE submission_reviews (
    id             INTEGER NOT NULL CONSTRAINT submission_reviews_pkey PRIMARY KEY AUTOINCREMENT,
    submission_id  INTEGER NOT NULL,
    reviewer_id    INTEGER,
    decision       TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT submission_reviews_submission_id_fkey FOREIGN KEY (submission_id)
        REFERENCES community_submissions (id) ON DELETE CASCADE,
    CONSTRAINT submission_reviews_reviewer_id_fkey FOREIGN KEY (reviewer_id)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT submission_reviews_decision_check
        CHECK (decision IN ('verify', 'auto_verify', 'reject', 'duplicate', 'reverse')),
    CONSTRAINT submission_reviews_reason_check CHECK (reason <> '')
) STRICT;
CREATE INDEX submission_reviews_submission_id_idx ON submission_reviews (submission_id);
CREATE INDEX submission_reviews_reviewer_id_idx ON submission_reviews (reviewer_id);

CREATE TABLE reputation_events (
    id             INTEGER NOT NULL CONSTRAINT reputation_events_pkey PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL,
    submission_id  INTEGER,
    review_id      INTEGER,
    points         INTEGER NOT NULL,
    reason         TEXT    NOT NULL,
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT reputation_events_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT reputation_events_submission_id_fkey FOREIGN KEY (submission_id)
        REFERENCES community_submissions (id) ON DELETE SET NULL,
    CONSTRAINT reputation_events_review_id_fkey FOREIGN KEY (review_id)
        REFERENCES submission_reviews (id) ON DELETE SET NULL,
    CONSTRAINT reputation_events_reason_check
        CHECK (reason IN ('new_incident', 'evidence', 'duplicate', 'false_report', 'reversal'))
) STRICT;
CREATE INDEX reputation_events_user_id_created_at_idx ON reputation_events (user_id, created_at);
CREATE INDEX reputation_events_submission_id_idx ON reputation_events (submission_id);
CREATE INDEX reputation_events_review_id_idx ON reputation_events (review_id);

CREATE TABLE bounties (
    id                 INTEGER NOT NULL CONSTRAINT bounties_pkey PRIMARY KEY AUTOINCREMENT,
    submission_id      INTEGER NOT NULL CONSTRAINT bounties_submission_id_key UNIQUE,
    exploit_id         INTEGER,
    user_id            INTEGER,
    amount_usd         TEXT    NOT NULL,
    status             TEXT    NOT NULL DEFAULT 'owed',
    paid_at            TEXT,
    paid_by            INTEGER,
    payment_reference  TEXT,
    created_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT bounties_submission_id_fkey FOREIGN KEY (submission_id)
        REFERENCES community_submissions (id) ON DELETE RESTRICT,
    CONSTRAINT bounties_exploit_id_fkey FOREIGN KEY (exploit_id)
        REFERENCES exploits (id) ON DELETE SET NULL,
    CONSTRAINT bounties_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT bounties_paid_by_fkey FOREIGN KEY (paid_by)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT bounties_amount_usd_check CHECK (
        amount_usd GLOB '[0-9]*.[0-9][0-9]' AND amount_usd NOT GLOB '*[^0-9.]*'
        AND amount_usd NOT GLOB '*.*.*' AND amount_usd NOT GLOB '0[0-9]*'
        AND amount_usd <> '0.00' AND length(amount_usd) <= 21),
    CONSTRAINT bounties_status_check CHECK (status IN ('owed', 'paid', 'cancelled')),
    CONSTRAINT bounties_paid_check
        CHECK ((status = 'paid') = (paid_at IS NOT NULL AND payment_reference IS NOT NULL)),
    CONSTRAINT bounties_payment_reference_check
        CHECK (payment_reference IS NULL OR payment_reference <> '')
) STRICT;
CREATE UNIQUE INDEX bounties_one_per_incident ON bounties (exploit_id) WHERE status <> 'cancelled';
CREATE INDEX bounties_user_id_idx ON bounties (user_id, status);
CREATE INDEX bounties_paid_by_idx ON bounties (paid_by);

CREATE TABLE reviewers (
    user_id     INTEGER NOT NULL CONSTRAINT reviewers_pkey PRIMARY KEY,
    granted_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT reviewers_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
) STRICT;
