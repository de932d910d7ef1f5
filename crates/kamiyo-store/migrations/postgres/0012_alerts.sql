-- 0012_alerts (PostgreSQL 15)
--
-- Alerts (issue #16): subscriptions, the outbox of incident changes, and one delivery
-- per (subscription, event) with every attempt logged.
--
-- `alert_events` is the outbox: every change that can trigger an alert (an incident
-- created, updated with what changed, merged into another) is inserted in the same
-- transaction as the change, so a crash can neither lose one nor invent one.
-- `dispatched_at` is set once the dispatcher has matched the event against the
-- subscriptions and created its deliveries, in one transaction; `payload` is the
-- incident as it was then, so that every delivery and every retry of one event sends
-- the same body. `occurred_at` is the incident's, for the tiers' delay.
--
-- `alert_deliveries`: `message_id` is the `webhook-id` of Standard Webhooks, stable
-- across retries; `(subscription_id, event_id)` is unique, so a dispatcher running
-- twice cannot deliver an event twice to one subscription. Workers claim due rows
-- (`status = 'pending' AND next_attempt_at <= now()`) with `FOR UPDATE SKIP LOCKED`,
-- set `leased_until` and commit before the HTTP call; a worker that dies leaves the
-- lease to expire and another takes the row.
--
-- `alert_subscriptions.secret`: the webhook signing secret (`whsec_...`) or the
-- Telegram bot token, which the sender needs in clear; `previous_secret` still signs
-- until `previous_secret_expires_at` after a rotation.
--
-- Expand only: new tables. The seed's `alert_preferences` and `alerts_sent` are left
-- as they are (nothing reads them; a later contract step drops them). The SQLite twin is
-- ../sqlite/0012_alerts.sql.

CREATE TABLE alert_subscriptions (
    id                          bigserial   NOT NULL,
    user_id                     bigint      NOT NULL,
    name                        text        NOT NULL,
    channel                     text        NOT NULL,
    target                      text        NOT NULL,
    secret                      text,
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    filter                      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    events                      jsonb       NOT NULL,
    enabled                     boolean     NOT NULL DEFAULT true,
    disabled_reason             text,
    failing_since               timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alert_subscriptions_pkey PRIMARY KEY (id),
    CONSTRAINT alert_subscriptions_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT alert_subscriptions_name_check CHECK (name <> ''),
    CONSTRAINT alert_subscriptions_channel_check
        CHECK (channel IN ('webhook', 'slack', 'discord', 'telegram', 'email')),
    CONSTRAINT alert_subscriptions_target_check CHECK (target <> '')
);
CREATE INDEX alert_subscriptions_user_id_idx ON alert_subscriptions (user_id);

CREATE TABLE alert_events (
    id             bigserial   NOT NULL,
    kind           text        NOT NULL,
    exploit_id     bigint      NOT NULL,
    occurred_at    timestamptz NOT NULL,
    changes        jsonb,
    payload        jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    dispatched_at  timestamptz,
    CONSTRAINT alert_events_pkey PRIMARY KEY (id),
    CONSTRAINT alert_events_kind_check
        CHECK (kind IN ('incident.created', 'incident.updated', 'incident.merged'))
);
-- The dispatcher's queue: events not yet matched, oldest first.
CREATE INDEX alert_events_pending_idx ON alert_events (id) WHERE dispatched_at IS NULL;

CREATE TABLE alert_deliveries (
    id                bigserial   NOT NULL,
    subscription_id   bigint      NOT NULL,
    event_id          bigint      NOT NULL,
    message_id        text        NOT NULL,
    status            text        NOT NULL DEFAULT 'pending',
    attempts          integer     NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL,
    leased_until      timestamptz,
    first_attempt_at  timestamptz,
    last_status       integer,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alert_deliveries_pkey PRIMARY KEY (id),
    CONSTRAINT alert_deliveries_subscription_id_event_id_key UNIQUE (subscription_id, event_id),
    CONSTRAINT alert_deliveries_subscription_id_fkey FOREIGN KEY (subscription_id)
        REFERENCES alert_subscriptions (id) ON DELETE CASCADE,
    CONSTRAINT alert_deliveries_event_id_fkey FOREIGN KEY (event_id)
        REFERENCES alert_events (id) ON DELETE CASCADE,
    CONSTRAINT alert_deliveries_status_check
        CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped'))
);
-- The workers' queue: pending deliveries by when they are due.
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alert_deliveries_event_id_idx ON alert_deliveries (event_id);

CREATE TABLE alert_attempts (
    id               bigserial   NOT NULL,
    delivery_id      bigint      NOT NULL,
    attempted_at     timestamptz NOT NULL,
    duration_ms      bigint      NOT NULL,
    status_code      integer,
    error            text,
    response_body    text,
    next_attempt_at  timestamptz,
    CONSTRAINT alert_attempts_pkey PRIMARY KEY (id),
    CONSTRAINT alert_attempts_delivery_id_fkey FOREIGN KEY (delivery_id)
        REFERENCES alert_deliveries (id) ON DELETE CASCADE
);
CREATE INDEX alert_attempts_delivery_id_idx ON alert_attempts (delivery_id);
