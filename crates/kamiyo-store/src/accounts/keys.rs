//! API keys: `kmy_` and 64 hex digits (256 random bits), shown once; stored as the
//! SHA-256 of the whole key (lookup by hash is the comparison: no stored key to compare
//! against, in constant time or otherwise) with a short prefix to tell keys apart.

use kamiyo_domain::{Role, Tier};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{AccountError, AccountStore, ApiKeyInfo, Principal};
use crate::error::StoreError;
use crate::row::{DriverRow, Fields};
use crate::statement::{self, Param, Sql};

pub const KEY_PREFIX: &str = "kmy_";
/// Characters of the key kept as its visible prefix (`kmy_` and 8 hex digits).
const SHOWN: usize = 12;
/// `last_used_at` is written at most this often per key: a write per request would
/// double the work of every authenticated call.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

const CREATE: Sql = Sql {
    postgres: "INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4) \
               RETURNING id, user_id, name, prefix, created_at, last_used_at, revoked_at",
    sqlite: "INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES (?1, ?2, ?3, ?4) \
             RETURNING id, user_id, name, prefix, created_at, last_used_at, revoked_at",
};
const LIST: Sql = Sql {
    postgres:
        "SELECT id, user_id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys \
               WHERE ($1::bigint IS NULL OR user_id = $1) ORDER BY id",
    sqlite: "SELECT id, user_id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys \
             WHERE (?1 IS NULL OR user_id = ?1) ORDER BY id",
};
const REVOKE: Sql = Sql {
    postgres: "UPDATE api_keys SET revoked_at = now() \
               WHERE revoked_at IS NULL AND (prefix = $1 OR id::text = $1)",
    sqlite: "UPDATE api_keys SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
             WHERE revoked_at IS NULL AND (prefix = ?1 OR CAST(id AS TEXT) = ?1)",
};
/// The owner of a valid key, and whether its last use is old enough to record again.
const AUTHENTICATE: Sql = Sql {
    postgres: "SELECT k.id AS key_id, u.id AS user_id, u.email, u.tier, u.role, \
                      (k.last_used_at IS NULL OR k.last_used_at < now() - make_interval(secs => $2::int8::float8)) AS stale \
               FROM api_keys k JOIN users u ON u.id = k.user_id \
               WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND u.is_active",
    sqlite: "SELECT k.id AS key_id, u.id AS user_id, u.email, u.tier, u.role, \
                    (k.last_used_at IS NULL \
                     OR k.last_used_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || ?2 || ' seconds')) AS stale \
             FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE k.key_hash = ?1 AND k.revoked_at IS NULL AND u.is_active = 1",
};
const TOUCH: Sql = Sql {
    postgres: "UPDATE api_keys SET last_used_at = now() WHERE id = $1",
    sqlite:
        "UPDATE api_keys SET last_used_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
};

/// A new key: the key itself (show it once), its visible prefix, its hash.
pub fn new_key() -> (String, String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    let prefix = key[..SHOWN].to_owned();
    let hash = hash_key(&key);
    (key, prefix, hash)
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn read_key(row: &dyn DriverRow) -> Result<ApiKeyInfo, StoreError> {
    let f = Fields::of("api_keys", row);
    Ok(ApiKeyInfo {
        id: f.int("id")?,
        user_id: f.int("user_id")?,
        name: f.text("name")?,
        prefix: f.text("prefix")?,
        created_at: f.time("created_at")?,
        last_used_at: f.opt_time("last_used_at")?,
        revoked_at: f.opt_time("revoked_at")?,
    })
}

/// A key's owner, and whether to record this use.
fn read_owner(row: &dyn DriverRow) -> Result<(Principal, bool), StoreError> {
    let f = Fields::of("api_keys", row);
    Ok((
        Principal {
            key_id: f.int("key_id")?,
            user_id: f.int("user_id")?,
            email: f.text("email")?,
            tier: f.parse("tier", Tier::parse)?,
            role: f.parse("role", Role::parse)?,
        },
        f.boolean("stale")?,
    ))
}

impl AccountStore {
    /// Creates a key for a user; returns its record and the key, which is never stored.
    pub async fn create_key(
        &self,
        user: &str,
        name: &str,
    ) -> Result<(ApiKeyInfo, String), AccountError> {
        let owner = self.find_user(user).await?;
        let (key, prefix, hash) = new_key();
        let name = match name.trim() {
            "" => "default",
            trimmed => trimmed,
        };
        let params = vec![
            Param::Int(owner.id),
            Param::Text(name.to_owned()),
            Param::Text(prefix),
            Param::Text(hash),
        ];
        let info = statement::query_opt(
            self.db().primary(),
            CREATE.for_pool(self.db().primary()),
            params,
            read_key,
        )
        .await?
        .ok_or_else(|| StoreError::Invariant("INSERT ... RETURNING gave no row".into()))?;
        Ok((info, key))
    }

    /// Keys of one user, or of everyone; never the keys themselves.
    pub async fn list_keys(&self, user: Option<&str>) -> Result<Vec<ApiKeyInfo>, AccountError> {
        let owner = match user {
            Some(user) => Some(self.find_user(user).await?.id),
            None => None,
        };
        Ok(statement::query(
            self.db().primary(),
            LIST.for_pool(self.db().primary()),
            vec![Param::OptInt(owner)],
            read_key,
        )
        .await?)
    }

    /// Revokes a key named by its id or its visible prefix.
    pub async fn revoke_key(&self, key: &str) -> Result<(), AccountError> {
        let changed = self.revoke_in_db(key).await;
        self.principals().invalidate();
        if changed? == 0 {
            return Err(AccountError::NoSuchKey(key.to_owned()));
        }
        Ok(())
    }

    async fn revoke_in_db(&self, key: &str) -> Result<u64, AccountError> {
        Ok(statement::execute(
            self.db().primary(),
            REVOKE.for_pool(self.db().primary()),
            vec![Param::Text(key.to_owned())],
        )
        .await?)
    }

    /// The owner of a key verified within the key cache's TTL, without asking the
    /// database; `None` when it is not remembered (which says nothing of its validity).
    pub fn authenticate_cached(&self, key: &str) -> Option<Principal> {
        if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
            return None;
        }
        self.principals().get(&hash_key(key))
    }

    /// Whether the database has verified `key` since this process started (the most
    /// recent `server.auth_cache_max_entries` keys; `known_keys`). Lets a caller with a
    /// valid key keep its lookup while its address is throttled for others' failures.
    pub fn is_known_key(&self, key: &str) -> bool {
        key.starts_with(KEY_PREFIX) && key.len() <= 128 && self.known().contains(&hash_key(key))
    }

    /// The owner of a valid key: not revoked, user active. `None` for anything else.
    pub async fn authenticate(&self, key: &str) -> Result<Option<Principal>, StoreError> {
        if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
            return Ok(None);
        }
        let hash = hash_key(key);
        if let Some(principal) = self.principals().get(&hash) {
            return Ok(Some(principal));
        }
        let generation = self.principals().generation();
        let params = vec![
            Param::Text(hash.clone()),
            Param::Int(LAST_USED_RESOLUTION_SECS),
        ];
        let found = statement::query_opt(
            self.db().primary(),
            AUTHENTICATE.for_pool(self.db().primary()),
            params,
            read_owner,
        )
        .await?;
        let principal = match found {
            Some((principal, stale)) => {
                if stale {
                    statement::execute(
                        self.db().primary(),
                        TOUCH.for_pool(self.db().primary()),
                        vec![Param::Int(principal.key_id)],
                    )
                    .await?;
                }
                Some(principal)
            }
            None => None,
        };
        if let Some(principal) = &principal {
            self.known().remember(&hash);
            self.principals().keep(hash, principal.clone(), generation);
        }
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hashed() {
        let (key, prefix, hash) = new_key();
        assert!(key.starts_with(KEY_PREFIX) && key.len() == KEY_PREFIX.len() + 64);
        assert!(key.starts_with(&prefix));
        assert_eq!(hash, hash_key(&key));
        assert_ne!(hash, key);
        assert_ne!(new_key().0, key);
    }
}
