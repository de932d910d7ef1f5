//! Users, API keys, tier changes and payments. Keys are stored only as a SHA-256 hash
//! and shown once; a tier change and its `subscription_changes` row commit together;
//! payments and subscription changes are never deleted with a user (users are disabled).

mod keys;
mod known_keys;
mod principal_cache;

use chrono::{DateTime, Utc};
use kamiyo_db::{Database, DbError, Pool};
use kamiyo_domain::{FieldError, Tier, Usd};
use rusqlite::OptionalExtension;
use serde::Serialize;

pub use keys::{hash_key, new_key, KEY_PREFIX};
pub use principal_cache::{DEFAULT_AUTH_CACHE_MAX_ENTRIES, DEFAULT_AUTH_CACHE_TTL};

/// Stored times on SQLite are the same text the incident tables use.
/// A stored SQLite timestamp; a malformed one is a database error naming the text.
pub(crate) fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, DbError> {
    crate::row::parse_sqlite_time(text).map_err(|reason| DbError::other(format!("stored {reason}")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    fn from_db(text: &str) -> Role {
        if text == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub tier: Tier,
    pub role: Role,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// An API key as it can be shown after creation: never the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Who a valid key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub key_id: i64,
    pub email: String,
    pub tier: Tier,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SubscriptionChange {
    pub old_tier: Option<Tier>,
    pub new_tier: Tier,
    pub reason: String,
    pub changed_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("no user {0}")]
    NoSuchUser(String),
    #[error("no API key {0}")]
    NoSuchKey(String),
    #[error("a user with email {0} already exists")]
    EmailTaken(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Clone)]
pub struct AccountStore {
    db: Database,
    /// Verified keys (see `principal_cache`); clones share it, so a change made through
    /// any clone empties it.
    principals: std::sync::Arc<principal_cache::PrincipalCache>,
    /// Keys the database has verified (see `known_keys`); shared by clones.
    known: std::sync::Arc<known_keys::KnownKeys>,
}

/// A user named by id (digits) or email: the WHERE clause and its one parameter.
fn user_clause(user: &str, postgres: bool) -> (String, String) {
    let p = if postgres { "$1::text" } else { "?1" };
    if !user.is_empty() && user.chars().all(|c| c.is_ascii_digit()) {
        (format!("id = CAST({p} AS BIGINT)"), user.to_owned())
    } else {
        (format!("lower(email) = lower({p})"), user.trim().to_owned())
    }
}

fn tier_from_db(text: &str) -> Result<Tier, DbError> {
    Tier::parse(text).map_err(|e| DbError::other(format!("stored tier: {e}")))
}

fn validate_email(email: &str) -> Result<String, FieldError> {
    let email = email.trim();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email.to_owned())
    } else {
        Err(FieldError::new(
            "email",
            format!("{email:?} is not an email address"),
        ))
    }
}

impl AccountStore {
    /// Every `authenticate` asks the database (what the command line needs).
    pub fn new(db: Database) -> Self {
        Self::with_principal_cache(db, std::time::Duration::ZERO, 0)
    }

    /// `authenticate` takes a key verified less than `ttl` ago as still valid, for at
    /// most `max_entries` keys. Changes through this store (or its clones) apply at once;
    /// changes made by another process apply within `ttl`. Zero turns it off.
    pub fn with_principal_cache(
        db: Database,
        ttl: std::time::Duration,
        max_entries: usize,
    ) -> Self {
        AccountStore {
            db,
            principals: std::sync::Arc::new(principal_cache::PrincipalCache::new(ttl, max_entries)),
            known: std::sync::Arc::new(known_keys::KnownKeys::new(max_entries)),
        }
    }

    /// Creates a user; its first tier is recorded as a subscription change.
    pub async fn create_user(
        &self,
        email: &str,
        tier: Tier,
        role: Role,
    ) -> Result<User, AccountError> {
        let email = validate_email(email)?;
        let result = match self.db.primary() {
            Pool::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let tx = conn.transaction().await?;
                let row = tx
                    .query_one(
                        "INSERT INTO users (email, tier, role) VALUES ($1, $2, $3) RETURNING id, created_at",
                        &[&email, &tier.as_str(), &role.as_str()],
                    )
                    .await;
                let row = match row {
                    Err(DbError::Conflict { .. }) => return Err(AccountError::EmailTaken(email)),
                    other => other?,
                };
                let id: i64 = row.get(0);
                tx.execute(
                    "INSERT INTO subscription_changes (user_id, old_tier, new_tier, reason) VALUES ($1, NULL, $2, 'account created')",
                    &[&id, &tier.as_str()],
                )
                .await?;
                tx.commit().await?;
                User {
                    id,
                    email,
                    tier,
                    role,
                    active: true,
                    created_at: row.get(1),
                }
            }
            Pool::Sqlite(pool) => {
                let conn = pool.acquire().await?;
                let (email_for_db, tier_text, role_text) =
                    (email.clone(), tier.as_str(), role.as_str());
                let created = conn
                    .run(move |c| {
                        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                        let (id, created_at): (i64, String) = tx.query_row(
                            "INSERT INTO users (email, tier, role) VALUES (?1, ?2, ?3) RETURNING id, created_at",
                            rusqlite::params![email_for_db, tier_text, role_text],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )?;
                        tx.execute(
                            "INSERT INTO subscription_changes (user_id, old_tier, new_tier, reason) VALUES (?1, NULL, ?2, 'account created')",
                            rusqlite::params![id, tier_text],
                        )?;
                        tx.commit()?;
                        Ok((id, created_at))
                    })
                    .await;
                let (id, created_at) = match created {
                    Err(DbError::Conflict { .. }) => return Err(AccountError::EmailTaken(email)),
                    other => other?,
                };
                User {
                    id,
                    email,
                    tier,
                    role,
                    active: true,
                    created_at: parse_time(&created_at)?,
                }
            }
        };
        Ok(result)
    }

    pub async fn list_users(&self) -> Result<Vec<User>, AccountError> {
        self.users_where("1 = 1", None).await
    }

    pub async fn find_user(&self, user: &str) -> Result<User, AccountError> {
        let postgres = matches!(self.db.primary(), Pool::Postgres(_));
        let (clause, value) = user_clause(user, postgres);
        self.users_where(&clause, Some(value))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| AccountError::NoSuchUser(user.to_owned()))
    }

    async fn users_where(
        &self,
        clause: &str,
        value: Option<String>,
    ) -> Result<Vec<User>, AccountError> {
        match self.db.primary() {
            Pool::Postgres(pool) => {
                let conn = pool.acquire().await?;
                let sql = format!("SELECT id, email, tier, role, is_active, created_at FROM users WHERE {clause} ORDER BY id");
                let rows = match &value {
                    Some(v) => conn.query(&sql, &[v]).await?,
                    None => conn.query(&sql, &[]).await?,
                };
                rows.iter()
                    .map(|r| {
                        Ok(User {
                            id: r.get(0),
                            email: r.get(1),
                            tier: tier_from_db(r.get(2))?,
                            role: Role::from_db(r.get(3)),
                            active: r.get(4),
                            created_at: r.get(5),
                        })
                    })
                    .collect()
            }
            Pool::Sqlite(pool) => {
                let conn = pool.acquire().await?;
                let sql = format!("SELECT id, email, tier, role, is_active, created_at FROM users WHERE {clause} ORDER BY id");
                let params: Vec<rusqlite::types::Value> = value
                    .into_iter()
                    .map(rusqlite::types::Value::Text)
                    .collect();
                let rows: Vec<(i64, String, String, String, bool, String)> = conn
                    .query(&sql, params, |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    })
                    .await?;
                rows.into_iter()
                    .map(|(id, email, tier, role, active, created)| {
                        Ok(User {
                            id,
                            email,
                            tier: tier_from_db(&tier)?,
                            role: Role::from_db(&role),
                            active,
                            created_at: parse_time(&created)?,
                        })
                    })
                    .collect()
            }
        }
    }

    /// Changes a user's tier and records the change, in one transaction: both or neither.
    pub async fn set_tier(
        &self,
        user: &str,
        tier: Tier,
        reason: &str,
    ) -> Result<User, AccountError> {
        let found = self.find_user(user).await?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(FieldError::new("reason", "is required").into());
        }
        // Forget every verified key whatever the outcome: a commit that failed in flight
        // may still have changed the tier.
        let changed: Result<(), AccountError> = async {
            match self.db.primary() {
                Pool::Postgres(pool) => {
                    let mut conn = pool.acquire().await?;
                    let tx = conn.transaction().await?;
                    let old: String = tx
                        .query_one(
                            "SELECT tier FROM users WHERE id = $1 FOR UPDATE",
                            &[&found.id],
                        )
                        .await?
                        .get(0);
                    tx.execute(
                        "UPDATE users SET tier = $2 WHERE id = $1",
                        &[&found.id, &tier.as_str()],
                    )
                    .await?;
                    tx.execute(
                        "INSERT INTO subscription_changes (user_id, old_tier, new_tier, reason) VALUES ($1, $2, $3, $4)",
                        &[&found.id, &old, &tier.as_str(), &reason],
                    )
                    .await?;
                    tx.commit().await?;
                }
                Pool::Sqlite(pool) => {
                    let conn = pool.acquire().await?;
                    let (id, tier_text, reason) = (found.id, tier.as_str(), reason.to_owned());
                    conn.run(move |c| {
                        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                        let old: String = tx.query_row("SELECT tier FROM users WHERE id = ?1", [id], |r| r.get(0))?;
                        tx.execute("UPDATE users SET tier = ?2 WHERE id = ?1", rusqlite::params![id, tier_text])?;
                        tx.execute(
                            "INSERT INTO subscription_changes (user_id, old_tier, new_tier, reason) VALUES (?1, ?2, ?3, ?4)",
                            rusqlite::params![id, old, tier_text, reason],
                        )?;
                        tx.commit()
                    })
                    .await?;
                }
            }
            Ok(())
        }
        .await;
        self.principals.invalidate();
        changed?;
        Ok(User { tier, ..found })
    }

    /// Disables a user: their keys stop working; nothing is deleted.
    pub async fn disable_user(&self, user: &str) -> Result<User, AccountError> {
        let found = self.find_user(user).await?;
        let disabled = self
            .exec("UPDATE users SET is_active = false WHERE id = $1", found.id)
            .await;
        self.principals.invalidate();
        disabled?;
        Ok(User {
            active: false,
            ..found
        })
    }

    async fn exec(&self, sql: &str, id: i64) -> Result<u64, AccountError> {
        Ok(match self.db.primary() {
            Pool::Postgres(pool) => pool.acquire().await?.execute(sql, &[&id]).await?,
            Pool::Sqlite(pool) => {
                let conn = pool.acquire().await?;
                let sql = sql.replace('$', "?").replace("false", "0");
                conn.execute(&sql, vec![rusqlite::types::Value::Integer(id)])
                    .await? as u64
            }
        })
    }

    pub async fn subscription_history(
        &self,
        user: &str,
    ) -> Result<Vec<SubscriptionChange>, AccountError> {
        let found = self.find_user(user).await?;
        let rows: Vec<(Option<String>, String, String, DateTime<Utc>)> = match self.db.primary() {
            Pool::Postgres(pool) => pool
                .acquire()
                .await?
                .query("SELECT old_tier, new_tier, coalesce(reason, ''), changed_at FROM subscription_changes WHERE user_id = $1 ORDER BY changed_at, id", &[&found.id])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect(),
            Pool::Sqlite(pool) => {
                let raw: Vec<(Option<String>, String, String, String)> = pool
                    .acquire()
                    .await?
                    .query(
                        "SELECT old_tier, new_tier, coalesce(reason, ''), changed_at FROM subscription_changes WHERE user_id = ?1 ORDER BY changed_at, id",
                        vec![rusqlite::types::Value::Integer(found.id)],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .await?;
                raw.into_iter().map(|(a, b, c, d)| Ok((a, b, c, parse_time(&d)?))).collect::<Result<_, DbError>>()?
            }
        };
        rows.into_iter()
            .map(|(old, new, reason, at)| {
                Ok(SubscriptionChange {
                    old_tier: old.as_deref().map(tier_from_db).transpose()?,
                    new_tier: tier_from_db(&new)?,
                    reason,
                    changed_at: at,
                })
            })
            .collect()
    }

    /// Records a payment; amounts are decimal, currencies ISO 4217.
    pub async fn record_payment(
        &self,
        user: &str,
        amount: &str,
        currency: &str,
        status: &str,
        provider: &str,
        provider_ref: Option<&str>,
    ) -> Result<i64, AccountError> {
        let found = self.find_user(user).await?;
        let amount = Usd::parse("amount", amount)?;
        if amount.decimal().is_zero() {
            return Err(FieldError::new("amount", "must be greater than zero").into());
        }
        let currency = currency.trim().to_uppercase();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(FieldError::new("currency", "must be a three-letter ISO 4217 code").into());
        }
        if !["pending", "succeeded", "failed", "refunded"].contains(&status) {
            return Err(FieldError::new(
                "status",
                "must be pending, succeeded, failed or refunded",
            )
            .into());
        }
        let (amount, provider, provider_ref) = (
            amount.to_string(),
            provider.to_owned(),
            provider_ref.map(str::to_owned),
        );
        Ok(match self.db.primary() {
            Pool::Postgres(pool) => pool
                .acquire()
                .await?
                .query_one(
                    "INSERT INTO payments (user_id, amount, currency, status, provider, provider_ref) VALUES ($1, $2::text::numeric, $3, $4, $5, $6) RETURNING id",
                    &[&found.id, &amount, &currency, &status, &provider, &provider_ref],
                )
                .await?
                .get(0),
            Pool::Sqlite(pool) => {
                let status = status.to_owned();
                pool.acquire()
                    .await?
                    .run(move |c| {
                        c.query_row(
                            "INSERT INTO payments (user_id, amount, currency, status, provider, provider_ref) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                            rusqlite::params![found.id, amount, currency, status, provider, provider_ref],
                            |r| r.get(0),
                        )
                        .optional()
                        .map(|id| id.unwrap_or_default())
                    })
                    .await?
            }
        })
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    pub(crate) fn principals(&self) -> &principal_cache::PrincipalCache {
        &self.principals
    }

    pub(crate) fn known(&self) -> &known_keys::KnownKeys {
        &self.known
    }
}
