-- 0001_initial_schema (SQLite 3.40+)
--
-- Kamiyo's initial schema, SQLite twin of ../postgres/0001_initial_schema.sql: the same
-- tables, columns, views and rules (docs/SCHEMA.md); only the dialect differs.
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT on a connection with
-- PRAGMA foreign_keys=ON and records it as applied, so: no BEGIN/COMMIT, no PRAGMA (they
-- are no-ops or errors inside a transaction), and no IF NOT EXISTS (an object that already
-- exists means the database is not what the migration history says: fail, do not skip).
--
-- Dialect decisions:
-- * Tables are STRICT: a value of the wrong type is refused instead of silently stored
--   (a float bound for a money column, a number for a timestamp).
-- * Ids are INTEGER PRIMARY KEY AUTOINCREMENT: like PostgreSQL identities, an id is never
--   handed out twice, even after the row with the highest id is deleted.
-- * Booleans are INTEGER restricted to 0/1.
-- * Unique constraints are named unique indexes (SQLite cannot name a table-level UNIQUE
--   usefully). Note what SQLite reports on violation: for a plain-column index it names
--   the columns ("UNIQUE constraint failed: exploits.chain, exploits.tx_hash"); only for
--   an expression index (users_email_key) does it name the index. FK violations name
--   nothing ("FOREIGN KEY constraint failed"); CHECK violations name the constraint.
-- * Money is TEXT holding the canonical decimal string the application writes: no sign,
--   no leading zero, exactly two decimals, at most 18 integer digits ('197000000.00',
--   '0.50'). It is what PostgreSQL's NUMERIC(20,2) prints, so both backends round-trip
--   the same string, equality on the text is equality of amounts, and nothing is ever
--   rounded through a float. The format rule is the CHECK repeated on each money column.
--   Aggregates in views CAST to REAL and are therefore approximate; exact sums are done
--   by the application. An unknown amount is NULL, never 0.
-- * Timestamps are TEXT, UTC, ISO-8601 with milliseconds: 'YYYY-MM-DDTHH:MM:SS.sssZ'.
--   That fixed format is what makes text comparison equal time comparison (views compare
--   occurred_at with strftime('now', ...); indexes sort by it), so every timestamp column
--   checks that strftime() gives back exactly the stored text.

-- sources ------------------------------------------------------------------------------

-- A feed or site incidents are collected from. The counters are cumulative fetch outcomes
-- and feed v_source_health.
CREATE TABLE sources (
    id               INTEGER NOT NULL CONSTRAINT sources_pkey PRIMARY KEY AUTOINCREMENT,
    name             TEXT    NOT NULL,
    url              TEXT,
    kind             TEXT,
    is_active        INTEGER NOT NULL DEFAULT 1,
    success_count    INTEGER NOT NULL DEFAULT 0,
    error_count      INTEGER NOT NULL DEFAULT 0,
    last_fetch_at    TEXT,
    last_success_at  TEXT,
    last_error       TEXT,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT sources_name_check CHECK (name <> ''),
    CONSTRAINT sources_is_active_check CHECK (is_active IN (0, 1)),
    -- Non-negative counters are what keep v_source_health's rate within 0..100.
    CONSTRAINT sources_success_count_check CHECK (success_count >= 0),
    CONSTRAINT sources_error_count_check CHECK (error_count >= 0),
    CONSTRAINT sources_last_fetch_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', last_fetch_at) IS last_fetch_at),
    CONSTRAINT sources_last_success_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', last_success_at) IS last_success_at),
    CONSTRAINT sources_created_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', created_at) IS created_at),
    CONSTRAINT sources_updated_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', updated_at) IS updated_at)
) STRICT;

CREATE UNIQUE INDEX sources_name_key ON sources (name);

-- exploits -----------------------------------------------------------------------------

-- One row per real-world incident, after normalisation and merging of duplicates.
CREATE TABLE exploits (
    id                    INTEGER NOT NULL CONSTRAINT exploits_pkey PRIMARY KEY AUTOINCREMENT,
    protocol              TEXT    NOT NULL,
    protocol_key          TEXT    NOT NULL,
    chain                 TEXT    NOT NULL,
    -- NULL when the incident has no known transaction (many have none).
    tx_hash               TEXT,
    -- Computed by the application (from tx_hash when there is one, else from
    -- protocol_key/chain/date); it, not tx_hash, identifies an incident, because a hash is
    -- missing for many incidents and some have several.
    dedup_key             TEXT    NOT NULL,
    amount_usd            TEXT,
    recovered_usd         TEXT,
    attack_class          TEXT,
    attack_type           TEXT,
    -- The technique exactly as the source wrote it, kept for re-classification later.
    attack_technique_raw  TEXT,
    description           TEXT,
    status                TEXT    NOT NULL DEFAULT 'confirmed',
    occurred_at           TEXT    NOT NULL,
    source_id             INTEGER,
    source_url            TEXT,
    created_at            TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at            TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT exploits_source_id_fkey FOREIGN KEY (source_id)
        REFERENCES sources (id) ON DELETE SET NULL,
    CONSTRAINT exploits_protocol_check CHECK (protocol <> ''),
    CONSTRAINT exploits_protocol_key_check CHECK (protocol_key <> ''),
    CONSTRAINT exploits_chain_check CHECK (chain <> ''),
    CONSTRAINT exploits_dedup_key_check CHECK (dedup_key <> ''),
    -- '' instead of NULL would make hash-less incidents collide on the unique key.
    CONSTRAINT exploits_tx_hash_check CHECK (tx_hash IS NULL OR tx_hash <> ''),
    CONSTRAINT exploits_amount_usd_check CHECK (amount_usd IS NULL OR (
        amount_usd GLOB '[0-9]*.[0-9][0-9]' AND amount_usd NOT GLOB '*[^0-9.]*'
        AND amount_usd NOT GLOB '*.*.*' AND amount_usd NOT GLOB '0[0-9]*'
        AND length(amount_usd) <= 21)),
    CONSTRAINT exploits_recovered_usd_check CHECK (recovered_usd IS NULL OR (
        recovered_usd GLOB '[0-9]*.[0-9][0-9]' AND recovered_usd NOT GLOB '*[^0-9.]*'
        AND recovered_usd NOT GLOB '*.*.*' AND recovered_usd NOT GLOB '0[0-9]*'
        AND length(recovered_usd) <= 21)),
    CONSTRAINT exploits_status_check
        CHECK (status IN ('suspected', 'confirmed', 'disputed', 'not_a_loss')),
    CONSTRAINT exploits_occurred_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', occurred_at) IS occurred_at),
    CONSTRAINT exploits_created_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', created_at) IS created_at),
    CONSTRAINT exploits_updated_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', updated_at) IS updated_at)
) STRICT;

CREATE UNIQUE INDEX exploits_dedup_key_key ON exploits (dedup_key);
-- A hash is unique per chain, not globally. SQLite treats NULLs as distinct in a unique
-- index, so any number of hash-less incidents coexist. Not partial, so that
-- ON CONFLICT (chain, tx_hash) needs no WHERE clause on either backend.
CREATE UNIQUE INDEX exploits_chain_tx_hash_key ON exploits (chain, tx_hash);

-- users and API keys -------------------------------------------------------------------

CREATE TABLE users (
    id          INTEGER NOT NULL CONSTRAINT users_pkey PRIMARY KEY AUTOINCREMENT,
    email       TEXT    NOT NULL,
    tier        TEXT    NOT NULL DEFAULT 'free',
    role        TEXT    NOT NULL DEFAULT 'user',
    -- Users are disabled, not deleted, once they have financial history (see payments).
    is_active   INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- The trigger of the system we replace wrote a column users did not have, so every
    -- UPDATE of a user failed. This column exists, and the migration tests update a user.
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT users_email_check CHECK (email LIKE '_%@_%'),
    CONSTRAINT users_tier_check CHECK (tier IN ('free', 'pro', 'team', 'enterprise')),
    CONSTRAINT users_role_check CHECK (role IN ('user', 'admin')),
    CONSTRAINT users_is_active_check CHECK (is_active IN (0, 1)),
    CONSTRAINT users_created_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', created_at) IS created_at),
    CONSTRAINT users_updated_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', updated_at) IS updated_at)
) STRICT;

-- Case-insensitive uniqueness: the stored email keeps the user's spelling, lookups compare
-- lower(email) (ASCII folding in SQLite's lower(); non-ASCII addresses are rare enough).
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE api_keys (
    id            INTEGER NOT NULL CONSTRAINT api_keys_pkey PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    -- The first characters of the key, shown so users can tell their keys apart.
    prefix        TEXT    NOT NULL,
    -- SHA-256 of the key, lowercase hex. The key itself is shown once and never stored;
    -- the format check stops a raw key from being written here by mistake.
    key_hash      TEXT    NOT NULL,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_used_at  TEXT,
    revoked_at    TEXT,
    CONSTRAINT api_keys_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT api_keys_key_hash_check
        CHECK (length(key_hash) = 64 AND key_hash NOT GLOB '*[^0-9a-f]*'),
    CONSTRAINT api_keys_created_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', created_at) IS created_at),
    CONSTRAINT api_keys_last_used_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', last_used_at) IS last_used_at),
    CONSTRAINT api_keys_revoked_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', revoked_at) IS revoked_at)
) STRICT;

CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);

-- alerting -----------------------------------------------------------------------------

CREATE TABLE alert_preferences (
    id              INTEGER NOT NULL CONSTRAINT alert_preferences_pkey PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL,
    channel         TEXT    NOT NULL,
    -- Email address, webhook URL, chat id...: whatever the channel delivers to.
    target          TEXT    NOT NULL,
    -- NULL: alert whatever the amount (including incidents whose loss is unknown).
    min_amount_usd  TEXT,
    -- JSON array of chain keys, e.g. '["ethereum","bsc"]'; NULL means every chain. An
    -- empty array is refused because it would be ambiguous with "all".
    chains          TEXT,
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT alert_preferences_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT alert_preferences_channel_check
        CHECK (channel IN ('email', 'webhook', 'discord', 'telegram', 'slack')),
    CONSTRAINT alert_preferences_target_check CHECK (target <> ''),
    CONSTRAINT alert_preferences_min_amount_usd_check CHECK (min_amount_usd IS NULL OR (
        min_amount_usd GLOB '[0-9]*.[0-9][0-9]' AND min_amount_usd NOT GLOB '*[^0-9.]*'
        AND min_amount_usd NOT GLOB '*.*.*' AND min_amount_usd NOT GLOB '0[0-9]*'
        AND length(min_amount_usd) <= 21)),
    -- CASE, not AND: json_type() raises an error on malformed JSON, so it must only see
    -- valid JSON for the failure to be a named CHECK violation.
    CONSTRAINT alert_preferences_chains_check CHECK (chains IS NULL OR CASE
        WHEN json_valid(chains)
        THEN json_type(chains) = 'array' AND json_array_length(chains) > 0
        ELSE 0 END),
    CONSTRAINT alert_preferences_enabled_check CHECK (enabled IN (0, 1)),
    CONSTRAINT alert_preferences_created_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', created_at) IS created_at),
    CONSTRAINT alert_preferences_updated_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', updated_at) IS updated_at)
) STRICT;

-- Leads with user_id, so it also serves the foreign key.
CREATE UNIQUE INDEX alert_preferences_user_id_channel_key
    ON alert_preferences (user_id, channel);

-- One row per (incident, user, channel) delivery outcome. The unique key is what makes
-- alerting idempotent: a restarted dispatcher cannot alert twice.
CREATE TABLE alerts_sent (
    id          INTEGER NOT NULL CONSTRAINT alerts_sent_pkey PRIMARY KEY AUTOINCREMENT,
    exploit_id  INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    channel     TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'sent',
    error       TEXT,
    sent_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT alerts_sent_exploit_id_fkey FOREIGN KEY (exploit_id)
        REFERENCES exploits (id) ON DELETE CASCADE,
    CONSTRAINT alerts_sent_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT alerts_sent_channel_check
        CHECK (channel IN ('email', 'webhook', 'discord', 'telegram', 'slack')),
    CONSTRAINT alerts_sent_status_check CHECK (status IN ('sent', 'failed')),
    CONSTRAINT alerts_sent_sent_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', sent_at) IS sent_at)
) STRICT;

-- Leads with exploit_id, so it also serves that foreign key.
CREATE UNIQUE INDEX alerts_sent_exploit_id_user_id_channel_key
    ON alerts_sent (exploit_id, user_id, channel);

-- community ----------------------------------------------------------------------------

CREATE TABLE community_submissions (
    id            INTEGER NOT NULL CONSTRAINT community_submissions_pkey PRIMARY KEY AUTOINCREMENT,
    -- SET NULL: a submission outlives its author's account (it may have become an
    -- incident); reputation is per user and goes with the user.
    submitted_by  INTEGER,
    -- The incident the submission became or was merged into, once approved.
    exploit_id    INTEGER,
    protocol      TEXT    NOT NULL,
    chain         TEXT    NOT NULL,
    tx_hash       TEXT,
    amount_usd    TEXT,
    description   TEXT,
    evidence_url  TEXT,
    status        TEXT    NOT NULL DEFAULT 'pending',
    reviewed_by   INTEGER,
    reviewed_at   TEXT,
    -- Why it was rejected (or any reviewer remark), shown to the submitter.
    review_note   TEXT,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT community_submissions_submitted_by_fkey FOREIGN KEY (submitted_by)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT community_submissions_exploit_id_fkey FOREIGN KEY (exploit_id)
        REFERENCES exploits (id) ON DELETE SET NULL,
    CONSTRAINT community_submissions_reviewed_by_fkey FOREIGN KEY (reviewed_by)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT community_submissions_protocol_check CHECK (protocol <> ''),
    CONSTRAINT community_submissions_chain_check CHECK (chain <> ''),
    CONSTRAINT community_submissions_tx_hash_check CHECK (tx_hash IS NULL OR tx_hash <> ''),
    CONSTRAINT community_submissions_amount_usd_check CHECK (amount_usd IS NULL OR (
        amount_usd GLOB '[0-9]*.[0-9][0-9]' AND amount_usd NOT GLOB '*[^0-9.]*'
        AND amount_usd NOT GLOB '*.*.*' AND amount_usd NOT GLOB '0[0-9]*'
        AND length(amount_usd) <= 21)),
    CONSTRAINT community_submissions_status_check
        CHECK (status IN ('pending', 'approved', 'rejected')),
    -- A decision has a time, and only a decision has one. reviewed_by cannot be required
    -- alongside: it becomes NULL when the reviewer's account is deleted.
    CONSTRAINT community_submissions_reviewed_at_check
        CHECK ((status = 'pending') = (reviewed_at IS NULL)
               AND strftime('%Y-%m-%dT%H:%M:%fZ', reviewed_at) IS reviewed_at),
    CONSTRAINT community_submissions_created_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', created_at) IS created_at),
    CONSTRAINT community_submissions_updated_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', updated_at) IS updated_at)
) STRICT;

CREATE TABLE user_reputation (
    user_id               INTEGER NOT NULL CONSTRAINT user_reputation_pkey PRIMARY KEY,
    -- May go negative: penalties for spam are part of the scoring.
    score                 INTEGER NOT NULL DEFAULT 0,
    submissions_total     INTEGER NOT NULL DEFAULT 0,
    submissions_approved  INTEGER NOT NULL DEFAULT 0,
    submissions_rejected  INTEGER NOT NULL DEFAULT 0,
    created_at            TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at            TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT user_reputation_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT user_reputation_submissions_total_check CHECK (submissions_total >= 0),
    CONSTRAINT user_reputation_submissions_approved_check CHECK (submissions_approved >= 0),
    CONSTRAINT user_reputation_submissions_rejected_check CHECK (submissions_rejected >= 0),
    -- Decided submissions are a subset of all submissions.
    CONSTRAINT user_reputation_submissions_decided_check
        CHECK (submissions_approved + submissions_rejected <= submissions_total),
    CONSTRAINT user_reputation_created_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', created_at) IS created_at),
    CONSTRAINT user_reputation_updated_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', updated_at) IS updated_at)
) STRICT;

-- money and audit ----------------------------------------------------------------------

-- Financial record. RESTRICT: deleting a user who has paid is refused (accounting must be
-- able to show every payment and who made it); such users are disabled instead.
-- RESTRICT, not NO ACTION, so the refusal is immediate even inside a transaction.
CREATE TABLE payments (
    id            INTEGER NOT NULL CONSTRAINT payments_pkey PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL,
    amount        TEXT    NOT NULL,
    currency      TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending',
    provider      TEXT    NOT NULL,
    -- The provider's id for the charge; unique so a replayed provider webhook cannot
    -- record the same payment twice. NULL until the provider has assigned one.
    provider_ref  TEXT,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- Status moves (pending -> succeeded -> refunded), so the row records when it last did.
    updated_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT payments_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE RESTRICT,
    -- Canonical money format and strictly positive ('0.00' is the only zero).
    CONSTRAINT payments_amount_check CHECK (
        amount GLOB '[0-9]*.[0-9][0-9]' AND amount NOT GLOB '*[^0-9.]*'
        AND amount NOT GLOB '*.*.*' AND amount NOT GLOB '0[0-9]*'
        AND length(amount) <= 21 AND amount <> '0.00'),
    -- ISO 4217 code (GLOB is case-sensitive).
    CONSTRAINT payments_currency_check
        CHECK (length(currency) = 3 AND currency NOT GLOB '*[^A-Z]*'),
    CONSTRAINT payments_status_check
        CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    CONSTRAINT payments_provider_check CHECK (provider <> ''),
    CONSTRAINT payments_provider_ref_check CHECK (provider_ref IS NULL OR provider_ref <> ''),
    CONSTRAINT payments_created_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', created_at) IS created_at),
    CONSTRAINT payments_updated_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', updated_at) IS updated_at)
) STRICT;

-- NULLs are distinct in a unique index: any number of payments without a provider ref.
CREATE UNIQUE INDEX payments_provider_ref_key ON payments (provider_ref);

-- Audit trail of tier changes; append-only, so no updated_at. RESTRICT for the same
-- reason as payments: the history must not vanish with the account.
CREATE TABLE subscription_changes (
    id          INTEGER NOT NULL CONSTRAINT subscription_changes_pkey PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL,
    -- NULL for the first tier a user ever had.
    old_tier    TEXT,
    new_tier    TEXT    NOT NULL,
    reason      TEXT,
    changed_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT subscription_changes_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT subscription_changes_old_tier_check
        CHECK (old_tier IN ('free', 'pro', 'team', 'enterprise')),
    CONSTRAINT subscription_changes_new_tier_check
        CHECK (new_tier IN ('free', 'pro', 'team', 'enterprise')),
    CONSTRAINT subscription_changes_changed_at_check
        CHECK (strftime('%Y-%m-%dT%H:%M:%fZ', changed_at) IS changed_at)
) STRICT;

-- indexes ------------------------------------------------------------------------------
--
-- Every foreign-key column is indexed (SQLite scans the child table for every parent
-- delete otherwise, and every FK here is also a lookup path), as is every column the API
-- filters or sorts on. Same names and columns as on PostgreSQL.

-- (occurred_at, id): id breaks ties for stable keyset pagination.
CREATE INDEX exploits_occurred_at_idx ON exploits (occurred_at, id);
CREATE INDEX exploits_created_at_idx ON exploits (created_at);
CREATE INDEX exploits_chain_occurred_at_idx ON exploits (chain, occurred_at);
-- Also the dedup lookup: same protocol, occurred within a few days.
CREATE INDEX exploits_protocol_key_occurred_at_idx ON exploits (protocol_key, occurred_at);
-- On the numeric value, not the text: '9.00' sorts after '100.00' as text. Queries must
-- filter and sort with this exact expression, CAST(amount_usd AS REAL), to use it; a
-- double orders two-decimal amounts correctly far beyond any real loss.
CREATE INDEX exploits_amount_usd_idx ON exploits (CAST(amount_usd AS REAL));
CREATE INDEX exploits_status_occurred_at_idx ON exploits (status, occurred_at);
CREATE INDEX exploits_attack_class_occurred_at_idx ON exploits (attack_class, occurred_at);
CREATE INDEX exploits_source_id_idx ON exploits (source_id);

CREATE INDEX users_tier_idx ON users (tier);

CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);

CREATE INDEX alerts_sent_user_id_idx ON alerts_sent (user_id);

-- (submitted_by, status): the FK, and "my submissions / my approved ones" in one index.
CREATE INDEX community_submissions_submitted_by_idx
    ON community_submissions (submitted_by, status);
CREATE INDEX community_submissions_exploit_id_idx ON community_submissions (exploit_id);
CREATE INDEX community_submissions_reviewed_by_idx ON community_submissions (reviewed_by);
-- The moderation queue: pending, oldest first.
CREATE INDEX community_submissions_status_created_at_idx
    ON community_submissions (status, created_at);

CREATE INDEX payments_user_id_idx ON payments (user_id, status);

CREATE INDEX subscription_changes_user_id_idx ON subscription_changes (user_id, changed_at);

-- updated_at triggers ------------------------------------------------------------------
--
-- SQLite cannot change NEW in a trigger, so each trigger runs AFTER UPDATE and writes
-- updated_at by primary key. WHEN NEW.updated_at IS OLD.updated_at: only when the
-- statement left updated_at alone, so an explicit value (an import replaying history) is
-- kept, as on PostgreSQL. The value is the later of now and OLD + 1 ms: updated_at strictly
-- increases on every update even within one millisecond (an insert followed at once by an
-- update) or if the clock steps back, and so can serve as a change marker. Text max() is
-- time max() because of the fixed timestamp format. The inner UPDATE does not re-fire the
-- trigger (recursive_triggers is off), and even if it did, the WHEN clause would be false.

CREATE TRIGGER sources_set_updated_at AFTER UPDATE ON sources FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE sources
       SET updated_at = max(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                            strftime('%Y-%m-%dT%H:%M:%fZ', OLD.updated_at, '+0.001 seconds'))
     WHERE id = NEW.id;
END;

CREATE TRIGGER exploits_set_updated_at AFTER UPDATE ON exploits FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE exploits
       SET updated_at = max(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                            strftime('%Y-%m-%dT%H:%M:%fZ', OLD.updated_at, '+0.001 seconds'))
     WHERE id = NEW.id;
END;

CREATE TRIGGER users_set_updated_at AFTER UPDATE ON users FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE users
       SET updated_at = max(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                            strftime('%Y-%m-%dT%H:%M:%fZ', OLD.updated_at, '+0.001 seconds'))
     WHERE id = NEW.id;
END;

CREATE TRIGGER alert_preferences_set_updated_at AFTER UPDATE ON alert_preferences FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE alert_preferences
       SET updated_at = max(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                            strftime('%Y-%m-%dT%H:%M:%fZ', OLD.updated_at, '+0.001 seconds'))
     WHERE id = NEW.id;
END;

CREATE TRIGGER community_submissions_set_updated_at AFTER UPDATE ON community_submissions
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE community_submissions
       SET updated_at = max(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                            strftime('%Y-%m-%dT%H:%M:%fZ', OLD.updated_at, '+0.001 seconds'))
     WHERE id = NEW.id;
END;

CREATE TRIGGER user_reputation_set_updated_at AFTER UPDATE ON user_reputation FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE user_reputation
       SET updated_at = max(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                            strftime('%Y-%m-%dT%H:%M:%fZ', OLD.updated_at, '+0.001 seconds'))
     WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER payments_set_updated_at AFTER UPDATE ON payments FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE payments
       SET updated_at = max(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                            strftime('%Y-%m-%dT%H:%M:%fZ', OLD.updated_at, '+0.001 seconds'))
     WHERE id = NEW.id;
END;

-- views --------------------------------------------------------------------------------
--
-- Same names and columns as on PostgreSQL. Views carry no ORDER BY: callers order (and
-- paginate) explicitly. "Occurred in the last N" has no upper bound: an incident dated
-- slightly in the future (a source's time zone) is still recent. Money aggregates are
-- REAL here (approximate); money columns passed through are the exact TEXT.

-- What an incident listing needs, for incidents that occurred in the last 7 days. All
-- statuses are included; the status column lets the caller filter.
CREATE VIEW v_recent_exploits AS
SELECT e.id,
       e.protocol,
       e.protocol_key,
       e.chain,
       e.tx_hash,
       e.amount_usd,
       e.recovered_usd,
       e.attack_class,
       e.attack_type,
       e.description,
       e.status,
       e.occurred_at,
       e.source_id,
       s.name AS source_name,
       e.source_url,
       e.created_at,
       e.updated_at
FROM exploits e
LEFT JOIN sources s ON s.id = e.source_id
WHERE e.occurred_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-7 days');

-- Exactly one row (an aggregate without GROUP BY), zeros rather than NULLs when empty
-- (total() is 0.0 on no rows, unlike sum()). 'not_a_loss' incidents are left out: they
-- are, by definition, not losses.
CREATE VIEW v_stats_24h AS
SELECT count(*)                                          AS incident_count,
       total(CAST(amount_usd AS REAL))                   AS total_loss_usd,
       coalesce(max(CAST(amount_usd AS REAL)), 0.0)      AS max_loss_usd,
       count(DISTINCT chain)                             AS chains_affected,
       count(DISTINCT protocol_key)                      AS protocols_affected
FROM exploits
WHERE occurred_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-24 hours')
  AND status <> 'not_a_loss';

-- success_rate_pct is NULL only when no fetch outcome was ever recorded; otherwise it is
-- within 0..100 because both counters are non-negative (CHECKs on sources). 100.0 makes
-- the division real, not integer.
CREATE VIEW v_source_health AS
SELECT id,
       name,
       kind,
       is_active,
       success_count,
       error_count,
       CASE
           WHEN success_count + error_count = 0 THEN NULL
           ELSE round(100.0 * success_count / (success_count + error_count), 2)
       END AS success_rate_pct,
       last_fetch_at,
       last_success_at,
       last_error
FROM sources;

-- One scalar subquery per figure: joining alerts, submissions and payments to users would
-- multiply each count by the others (fan-out). Each subquery runs on an index leading
-- with the user id. payments_succeeded_total sums amounts regardless of currency; it is a
-- figure for the admin overview, not accounting.
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
         WHERE c.submitted_by = u.id AND c.status = 'approved')          AS submissions_approved,
       coalesce((SELECT r.score FROM user_reputation r
                  WHERE r.user_id = u.id), 0)                            AS reputation_score,
       (SELECT count(*) FROM payments p
         WHERE p.user_id = u.id AND p.status = 'succeeded')              AS payments_succeeded_count,
       (SELECT total(CAST(p.amount AS REAL)) FROM payments p
         WHERE p.user_id = u.id AND p.status = 'succeeded')              AS payments_succeeded_total
FROM users u;
