-- 0016_account_notifications (PostgreSQL 15)
--
-- Every instance keeps verified API keys for `server.auth_cache_ttl` (with the user's
-- tier, role and state). A key revoked, a user disabled, deleted or given another tier
-- or role, by any process (`kamiyo key revoke`, `kamiyo user ...`, an operator's SQL),
-- now notifies the channel `kamiyo_accounts` when its transaction commits; every
-- `kamiyo serve` listens and forgets its verified keys at once (docs/DEPLOYMENT.md).
-- The notification carries the table's name and nothing else: no key, no address.
-- Only changes that alter what a key may do notify: not `last_used_at`, which
-- authentication itself writes. PostgreSQL folds identical notifications of one
-- transaction into one. Expand only: a function and triggers.
-- The SQLite twin is ../sqlite/0016_account_notifications.sql (nothing: one process).

CREATE FUNCTION kamiyo_notify_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kamiyo_accounts', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_notify_revoked
    AFTER UPDATE ON api_keys
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.key_hash IS DISTINCT FROM NEW.key_hash
          OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION kamiyo_notify_accounts();

CREATE TRIGGER api_keys_notify_deleted
    AFTER DELETE ON api_keys
    FOR EACH STATEMENT
    EXECUTE FUNCTION kamiyo_notify_accounts();

CREATE TRIGGER users_notify_changed
    AFTER UPDATE ON users
    FOR EACH ROW
    WHEN (OLD.tier IS DISTINCT FROM NEW.tier
          OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.is_active IS DISTINCT FROM NEW.is_active
          OR OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION kamiyo_notify_accounts();

CREATE TRIGGER users_notify_deleted
    AFTER DELETE ON users
    FOR EACH STATEMENT
    EXECUTE FUNCTION kamiyo_notify_accounts();

-- `kamiyo db copy --force` empties tables with TRUNCATE, which fires no row trigger.
CREATE TRIGGER api_keys_notify_truncated
    AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT
    EXECUTE FUNCTION kamiyo_notify_accounts();

CREATE TRIGGER users_notify_truncated
    AFTER TRUNCATE ON users
    FOR EACH STATEMENT
    EXECUTE FUNCTION kamiyo_notify_accounts();
