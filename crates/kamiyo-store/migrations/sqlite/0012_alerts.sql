-- 0012_alerts (SQLite 3.40+)
--
-- Alerts: SQLite twin of ../postgres/0012_alerts.sql (see there), same tables, columns,
-- constraint and index names; JSON as text, times as ISO text. One process delivers
-- (no SKIP LOCKED here: the write lock serialises claims).
--
-- The runner executes this file inside BEGIN IMMEDIATE ... COMMIT with foreign_keys=ON
-- (no BEGIN/COMMIT, no PRAGMA, no IF NOT EXISTS here).

CREATE TABLE alert_subscriptions (
    id                          INTEGER NOT NULL CONSTRAINT alert_subscriptions_pkey PRIMARY KEY AUTOINCREMENT,
    user_id                     INTEGER NOT NULL,
    name                        TEXT    NOT NULL,
    channel                     TEXT    NOT NULL,
    target                      TEXT    NOT NULL,
    secret                      TEXT,
    previous_secret             TEXT,
    previous_secret_expires_at  TEXT,
    filter                      TEXT    NOT NULL DEFAULT '{}',
    events                      TEXT    NOT NULL,
    enabled                     INTEGER NOT NULL DEFAULT 1,
    disabled_reason             TEXT,
    failing_since               TEXT,
    created_at                  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at                  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT alert_subscriptions_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT alert_subscriptions_name_check CHECK (name <> ''),
    CONSTRAINT alert_subscriptions_channel_check
        CHECK (channel IN ('webhook', 'slack', 'discord', 'telegram', 'email')),
    CONSTRAINT alert_subscriptions_target_check CHECK (target <> '')
);
CREATE INDEX alert_subscriptions_user_id_idx ON alert_subscriptions (user_id);

CREATE TABLE alert_events (
    id             INTEGER NOT NULL CONSTRAINT alert_events_pkey PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL,
    exploit_id     INTEGER NOT NULL,
    occurred_at    TEXT    NOT NULL,
    changes        TEXT,
    payload        TEXT,
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    dispatched_at  TEXT,
    CONSTRAINT alert_events_kind_check
        CHECK (kind IN ('incident.created', 'incident.updated', 'incident.merged'))
);
CREATE INDEX alert_events_pending_idx ON alert_events (id) WHERE dispatched_at IS NULL;

CREATE TABLE alert_deliveries (
    id                INTEGER NOT NULL CONSTRAINT alert_deliveries_pkey PRIMARY KEY AUTOINCREMENT,
    subscription_id   INTEGER NOT NULL,
    event_id          INTEGER NOT NULL,
    message_id        TEXT    NOT NULL,
    status            TEXT    NOT NULL DEFAULT 'pending',
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   TEXT    NOT NULL,
    leased_until      TEXT,
    first_attempt_at  TEXT,
    last_status       INTEGER,
    last_error        TEXT,
    created_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT alert_deliveries_subscription_id_event_id_key UNIQUE (subscription_id, event_id),
    CONSTRAINT alert_deliveries_subscription_id_fkey FOREIGN KEY (subscription_id)
        REFERENCES alert_subscriptions (id) ON DELETE CASCADE,
    CONSTRAINT alert_deliveries_event_id_fkey FOREIGN KEY (event_id)
        REFERENCES alert_events (id) ON DELETE CASCADE,
    CONSTRAINT alert_deliveries_status_check
        CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped'))
);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alert_deliveries_event_id_idx ON alert_deliveries (event_id);

CREATE TABLE alert_attempts (
    id               INTEGER NOT NULL CONSTRAINT alert_attempts_pkey PRIMARY KEY AUTOINCREMENT,
    delivery_id      INTEGER NOT NULL,
    attempted_at     TEXT    NOT NULL,
    duration_ms      INTEGER NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    response_body    TEXT,
    next_attempt_at  TEXT,
    CONSTRAINT alert_attempts_delivery_id_fkey FOREIGN KEY (delivery_id)
        REFERENCES alert_deliveries (id) ON DELETE CASCADE
);
CREATE INDEX alert_attempts_delivery_id_idx ON alert_attempts (delivery_id);
