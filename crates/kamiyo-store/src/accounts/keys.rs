//! API keys: `kmy_` and 64 hex digits (256 random bits), shown once; stored as the
//! SHA-256 of the whole key (lookup by hash is the comparison: no stored key to compare
//! against, in constant time or otherwise) with a short prefix to tell keys apart.

use kamiyo_db::{DbError, Pool};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{parse_time, tier_from_db, AccountError, AccountStore, ApiKeyInfo, Principal, Role};

pub const KEY_PREFIX: &str = "kmy_";
/// Characters of the key kept as its visible prefix (`kmy_` and 8 hex digits).
const SHOWN: usize = 12;
/// `last_used_at` is written at most this often per key: a write per request would
/// double the work of every authenticated call.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

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

/// (key id, user id, email, tier, role, last use old enough to record again)
type AuthRow = (i64, i64, String, String, String, bool);
type KeyRow = (
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

impl AccountStore {
    /// Creates a key for a user; returns its record and the key, which is never stored.
    pub async fn create_key(
        &self,
        user: &str,
        name: &str,
    ) -> Result<(ApiKeyInfo, String), AccountError> {
        let owner = self.find_user(user).await?;
        let (key, prefix, hash) = new_key();
        let name = if name.trim().is_empty() {
            "default".to_owned()
        } else {
            name.trim().to_owned()
        };
        let (id, created_at) = match self.db().primary() {
            Pool::Postgres(pool) => {
                let row = pool
                    .acquire()
                    .await?
                    .query_one(
                        "INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4) RETURNING id, created_at",
                        &[&owner.id, &name, &prefix, &hash],
                    )
                    .await?;
                (row.get(0), row.get(1))
            }
            Pool::Sqlite(pool) => {
                let (n, p, h) = (name.clone(), prefix.clone(), hash.clone());
                let (id, created): (i64, String) = pool
                    .acquire()
                    .await?
                    .run(move |c| {
                        c.query_row(
                            "INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES (?1, ?2, ?3, ?4) RETURNING id, created_at",
                            rusqlite::params![owner.id, n, p, h],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                    })
                    .await?;
                (id, parse_time(&created)?)
            }
        };
        Ok((
            ApiKeyInfo {
                id,
                user_id: owner.id,
                name,
                prefix,
                created_at,
                last_used_at: None,
                revoked_at: None,
            },
            key,
        ))
    }

    /// Keys of one user, or of everyone; never the keys themselves.
    pub async fn list_keys(&self, user: Option<&str>) -> Result<Vec<ApiKeyInfo>, AccountError> {
        let owner = match user {
            Some(user) => Some(self.find_user(user).await?.id),
            None => None,
        };
        let rows: Vec<KeyRow> = match self.db().primary() {
            Pool::Postgres(pool) => {
                let fmt = |c: &str| {
                    format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
                };
                let sql = format!(
                    "SELECT id, user_id, name, prefix, {}, {}, {} FROM api_keys WHERE ($1::bigint IS NULL OR user_id = $1) ORDER BY id",
                    fmt("created_at"),
                    fmt("last_used_at"),
                    fmt("revoked_at")
                );
                pool.acquire()
                    .await?
                    .query(&sql, &[&owner])
                    .await?
                    .iter()
                    .map(|r| {
                        (
                            r.get(0),
                            r.get(1),
                            r.get(2),
                            r.get(3),
                            r.get(4),
                            r.get(5),
                            r.get(6),
                        )
                    })
                    .collect()
            }
            Pool::Sqlite(pool) => {
                let param = owner.map_or(
                    rusqlite::types::Value::Null,
                    rusqlite::types::Value::Integer,
                );
                pool.acquire()
                    .await?
                    .query(
                        "SELECT id, user_id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys WHERE (?1 IS NULL OR user_id = ?1) ORDER BY id",
                        vec![param],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
                    )
                    .await?
            }
        };
        rows.into_iter()
            .map(|(id, user_id, name, prefix, created, used, revoked)| {
                Ok(ApiKeyInfo {
                    id,
                    user_id,
                    name,
                    prefix,
                    created_at: parse_time(&created)?,
                    last_used_at: used.as_deref().map(parse_time).transpose()?,
                    revoked_at: revoked.as_deref().map(parse_time).transpose()?,
                })
            })
            .collect::<Result<_, DbError>>()
            .map_err(AccountError::from)
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
        Ok(match self.db().primary() {
            Pool::Postgres(pool) => {
                pool.acquire()
                    .await?
                    .execute(
                        "UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL AND (prefix = $1 OR id::text = $1)",
                        &[&key],
                    )
                    .await?
            }
            Pool::Sqlite(pool) => {
                pool.acquire()
                    .await?
                    .execute(
                        "UPDATE api_keys SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE revoked_at IS NULL AND (prefix = ?1 OR CAST(id AS TEXT) = ?1)",
                        vec![rusqlite::types::Value::Text(key.to_owned())],
                    )
                    .await? as u64
            }
        })
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
    pub async fn authenticate(&self, key: &str) -> Result<Option<Principal>, DbError> {
        if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
            return Ok(None);
        }
        let hash = hash_key(key);
        if let Some(principal) = self.principals().get(&hash) {
            return Ok(Some(principal));
        }
        let generation = self.principals().generation();
        let found: Option<AuthRow> = match self.db().primary() {
            Pool::Postgres(pool) => {
                let conn = pool.acquire().await?;
                let row = conn
                    .query_opt(
                        "SELECT k.id, u.id, u.email, u.tier, u.role, \
                                (k.last_used_at IS NULL OR k.last_used_at < now() - make_interval(secs => $2)) \
                         FROM api_keys k JOIN users u ON u.id = k.user_id \
                         WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND u.is_active",
                        &[&hash, &(LAST_USED_RESOLUTION_SECS as f64)],
                    )
                    .await?;
                let found: Option<AuthRow> =
                    row.map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)));
                if let Some((key_id, .., true)) = &found {
                    conn.execute(
                        "UPDATE api_keys SET last_used_at = now() WHERE id = $1",
                        &[key_id],
                    )
                    .await?;
                }
                found
            }
            Pool::Sqlite(pool) => {
                let conn = pool.acquire().await?;
                let window = format!("-{LAST_USED_RESOLUTION_SECS} seconds");
                let rows = conn
                    .query(
                        "SELECT k.id, u.id, u.email, u.tier, u.role, \
                                (k.last_used_at IS NULL OR k.last_used_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?2)) \
                         FROM api_keys k JOIN users u ON u.id = k.user_id \
                         WHERE k.key_hash = ?1 AND k.revoked_at IS NULL AND u.is_active = 1",
                        vec![rusqlite::types::Value::Text(hash.clone()), rusqlite::types::Value::Text(window)],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                    )
                    .await?;
                let found = rows.into_iter().next();
                if let Some((key_id, .., true)) = &found {
                    conn.execute(
                        "UPDATE api_keys SET last_used_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
                        vec![rusqlite::types::Value::Integer(*key_id)],
                    )
                    .await?;
                }
                found
            }
        };
        let principal = found
            .map(|(key_id, user_id, email, tier, role, _)| {
                Ok::<_, DbError>(Principal {
                    user_id,
                    key_id,
                    email,
                    tier: tier_from_db(&tier)?,
                    role: Role::from_db(&role),
                })
            })
            .transpose()?;
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
