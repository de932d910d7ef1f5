//! Users, their tiers, API keys and payments. Keys are stored only as a SHA-256 hash
//! and shown once; a tier change and its `subscription_changes` row commit together;
//! payments and subscription changes are never deleted with a user (users are disabled).
//!
//! One file per part (`users`, `tiers`, `roles`, `keys`, `payments`); the values they take are
//! validated by domain types (`Email`, `Role`, `Currency`, `PaymentStatus`). Single
//! statements are written once for both backends (`statement::Sql`); the two multi-statement
//! transactions (creating a user, changing a tier) are written per backend side by side.

mod changes;
mod keys;
mod known_keys;
mod payments;
mod principal_cache;
mod roles;
mod tiers;
mod users;

use chrono::{DateTime, Utc};
use kamiyo_db::{Database, DbError};
use kamiyo_domain::{FieldError, Tier};
use serde::Serialize;

use crate::error::StoreError;

pub use changes::ACCOUNTS_CHANNEL;
pub use kamiyo_domain::Role;
pub use keys::{hash_key, new_key, KEY_PREFIX};
pub use principal_cache::{DEFAULT_AUTH_CACHE_MAX_ENTRIES, DEFAULT_AUTH_CACHE_TTL};
pub use roles::Access;

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
    Store(#[from] StoreError),
}

impl From<DbError> for AccountError {
    fn from(error: DbError) -> Self {
        AccountError::Store(StoreError::Database(error))
    }
}

#[derive(Clone)]
pub struct AccountStore {
    db: Database,
    /// Verified keys (see `principal_cache`); clones share it, so a change made through
    /// any clone empties it.
    principals: std::sync::Arc<principal_cache::PrincipalCache>,
    /// Keys the database has verified (see `known_keys`); shared by clones.
    known: std::sync::Arc<known_keys::KnownKeys>,
    /// Whether a follower of account changes listens now (see `changes`).
    listening: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl AccountStore {
    /// Every `authenticate` asks the database (what the command line needs).
    pub fn new(db: Database) -> Self {
        Self::with_principal_cache(db, std::time::Duration::ZERO, 0)
    }

    /// `authenticate` takes a key verified less than `ttl` ago as still valid, for at
    /// most `max_entries` keys. Changes through this store (or its clones) apply at once;
    /// changes made by another process apply within `ttl`, as read from the database's
    /// clock ([`Database::clock`]). Zero turns it off.
    pub fn with_principal_cache(
        db: Database,
        ttl: std::time::Duration,
        max_entries: usize,
    ) -> Self {
        AccountStore {
            principals: std::sync::Arc::new(principal_cache::PrincipalCache::new(
                ttl,
                max_entries,
                db.clock().clone(),
            )),
            known: std::sync::Arc::new(known_keys::KnownKeys::new(max_entries)),
            listening: std::sync::Arc::default(),
            db,
        }
    }

    fn db(&self) -> &Database {
        &self.db
    }

    fn principals(&self) -> &principal_cache::PrincipalCache {
        &self.principals
    }

    fn known(&self) -> &known_keys::KnownKeys {
        &self.known
    }
}
