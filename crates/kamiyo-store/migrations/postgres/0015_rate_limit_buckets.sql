-- 0015_rate_limit_buckets (PostgreSQL 15)
--
-- Rate limits shared by every instance (`rate_limit.backend = "postgres"`, issue #19,
-- docs/DEPLOYMENT.md): one row per caller with the tokens of its minute, hour and day
-- buckets. UNLOGGED: a crash empties it, which gives every caller full buckets once,
-- and in exchange a check writes no WAL and is not shipped to replicas (the limiter
-- reads and writes the primary only). Expand only: a new table and a new function.
-- The SQLite twin is ../sqlite/0015_rate_limit_buckets.sql.

CREATE UNLOGGED TABLE rate_limit_buckets (
    key         text              NOT NULL,
    minute      double precision  NOT NULL,
    hour        double precision  NOT NULL,
    day         double precision  NOT NULL,
    updated_at  timestamptz       NOT NULL,
    CONSTRAINT rate_limit_buckets_pkey PRIMARY KEY (key)
);
CREATE INDEX rate_limit_buckets_updated_at_idx ON rate_limit_buckets (updated_at);

-- One check: refill the caller's three buckets to the database's clock, and take a token
-- from each only when each has one (a request denied by one window costs nothing in the
-- others), under the row's lock, in one round trip. The clock is the database's, so
-- instances whose clocks differ still agree. Answers whether the request is allowed and
-- the tokens left.
CREATE FUNCTION kamiyo_rate_limit_take(
    p_key text,
    p_minute double precision,
    p_hour double precision,
    p_day double precision,
    OUT allowed boolean,
    OUT minute double precision,
    OUT hour double precision,
    OUT day double precision
) LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz := clock_timestamp();
    b rate_limit_buckets%ROWTYPE;
    elapsed double precision;
BEGIN
    INSERT INTO rate_limit_buckets AS r (key, minute, hour, day, updated_at)
    VALUES (p_key, p_minute, p_hour, p_day, t)
    ON CONFLICT (key) DO NOTHING;
    SELECT * INTO b FROM rate_limit_buckets AS r WHERE r.key = p_key FOR UPDATE;
    -- Waiting for the lock may have let another check write a later time.
    t := greatest(t, b.updated_at);
    elapsed := extract(epoch FROM t - b.updated_at);
    minute := least(p_minute, b.minute + elapsed * p_minute / 60);
    hour := least(p_hour, b.hour + elapsed * p_hour / 3600);
    day := least(p_day, b.day + elapsed * p_day / 86400);
    allowed := minute >= 1 AND hour >= 1 AND day >= 1;
    IF allowed THEN
        minute := minute - 1;
        hour := hour - 1;
        day := day - 1;
    END IF;
    UPDATE rate_limit_buckets AS r
       SET minute = kamiyo_rate_limit_take.minute,
           hour = kamiyo_rate_limit_take.hour,
           day = kamiyo_rate_limit_take.day,
           updated_at = t
     WHERE r.key = p_key;
END
$$;
