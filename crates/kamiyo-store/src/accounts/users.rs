//! Users: created with their first tier recorded, found by id or email, disabled
//! (never deleted).

use kamiyo_db::{DbError, Pool};
use kamiyo_domain::{Email, Role, Tier};

use super::{AccountError, AccountStore, User};
use crate::error::StoreError;
use crate::row::{DriverRow, Fields};
use crate::statement::{self, Param, Sql};

const BY_ID: Sql = Sql {
    postgres:
        "SELECT id, email, tier, role, is_active, created_at FROM users WHERE id = $1 ORDER BY id",
    sqlite:
        "SELECT id, email, tier, role, is_active, created_at FROM users WHERE id = ?1 ORDER BY id",
};
const BY_EMAIL: Sql = Sql {
    postgres: "SELECT id, email, tier, role, is_active, created_at FROM users \
               WHERE lower(email) = lower($1) ORDER BY id",
    sqlite: "SELECT id, email, tier, role, is_active, created_at FROM users \
             WHERE lower(email) = lower(?1) ORDER BY id",
};
const ALL: Sql = Sql {
    postgres: "SELECT id, email, tier, role, is_active, created_at FROM users ORDER BY id",
    sqlite: "SELECT id, email, tier, role, is_active, created_at FROM users ORDER BY id",
};
const DISABLE: Sql = Sql {
    postgres: "UPDATE users SET is_active = false WHERE id = $1",
    sqlite: "UPDATE users SET is_active = 0 WHERE id = ?1",
};

pub(super) fn read_user(row: &dyn DriverRow) -> Result<User, StoreError> {
    let f = Fields::of("users", row);
    Ok(User {
        id: f.int("id")?,
        email: f.text("email")?,
        tier: f.parse("tier", Tier::parse)?,
        role: f.parse("role", Role::parse)?,
        active: f.boolean("is_active")?,
        created_at: f.time("created_at")?,
    })
}

impl AccountStore {
    /// Creates a user; its first tier is recorded as a subscription change.
    pub async fn create_user(
        &self,
        email: &str,
        tier: Tier,
        role: Role,
    ) -> Result<User, AccountError> {
        let email = Email::parse(email)?.into_string();
        let created = match self.db().primary() {
            Pool::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let tx = conn.transaction().await?;
                let row = tx
                    .query_one(
                        "INSERT INTO users (email, tier, role) VALUES ($1, $2, $3) \
                         RETURNING id, email, tier, role, is_active, created_at",
                        &[&email, &tier.as_str(), &role.as_str()],
                    )
                    .await;
                match row {
                    Err(DbError::Conflict { .. }) => return Err(AccountError::EmailTaken(email)),
                    Err(error) => return Err(error.into()),
                    Ok(row) => {
                        let user = read_user(&row)?;
                        tx.execute(
                            "INSERT INTO subscription_changes (user_id, old_tier, new_tier, reason) \
                             VALUES ($1, NULL, $2, 'account created')",
                            &[&user.id, &tier.as_str()],
                        )
                        .await?;
                        tx.commit().await?;
                        Ok(user)
                    }
                }
            }
            Pool::Sqlite(pool) => {
                let conn = pool.acquire().await?;
                let (stored, tier, role) = (email.clone(), tier.as_str(), role.as_str());
                conn.run(move |c| {
                    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let user = tx.query_row(
                        "INSERT INTO users (email, tier, role) VALUES (?1, ?2, ?3) \
                         RETURNING id, email, tier, role, is_active, created_at",
                        rusqlite::params![stored, tier, role],
                        |row| Ok(read_user(row)),
                    )?;
                    if let Ok(user) = &user {
                        tx.execute(
                            "INSERT INTO subscription_changes (user_id, old_tier, new_tier, reason) \
                             VALUES (?1, NULL, ?2, 'account created')",
                            rusqlite::params![user.id, tier],
                        )?;
                        tx.commit()?;
                    }
                    Ok(user)
                })
                .await
                .map_err(|error| match error {
                    DbError::Conflict { .. } => AccountError::EmailTaken(email),
                    error => error.into(),
                })?
            }
        };
        Ok(created?)
    }

    pub async fn list_users(&self) -> Result<Vec<User>, AccountError> {
        Ok(statement::query(
            self.db().primary(),
            ALL.for_pool(self.db().primary()),
            Vec::new(),
            read_user,
        )
        .await?)
    }

    /// A user named by id (digits) or email.
    pub async fn find_user(&self, user: &str) -> Result<User, AccountError> {
        let by_id = user
            .parse::<i64>()
            .ok()
            .filter(|_| !user.is_empty() && user.chars().all(|c| c.is_ascii_digit()));
        let (sql, param) = match by_id {
            Some(id) => (BY_ID, Param::Int(id)),
            None => (BY_EMAIL, Param::Text(user.trim().to_owned())),
        };
        statement::query_opt(
            self.db().primary(),
            sql.for_pool(self.db().primary()),
            vec![param],
            read_user,
        )
        .await?
        .ok_or_else(|| AccountError::NoSuchUser(user.to_owned()))
    }

    /// Disables a user: their keys stop working; nothing is deleted.
    pub async fn disable_user(&self, user: &str) -> Result<User, AccountError> {
        let found = self.find_user(user).await?;
        let disabled = statement::execute(
            self.db().primary(),
            DISABLE.for_pool(self.db().primary()),
            vec![Param::Int(found.id)],
        )
        .await;
        // Forget every verified key whatever the outcome: a commit that failed in
        // flight may still have disabled the user.
        self.principals().invalidate();
        disabled?;
        Ok(User {
            active: false,
            ..found
        })
    }
}
