//! Tier changes: the user's tier and its `subscription_changes` row, together or not
//! at all, and the history of them.

use kamiyo_db::Pool;
use kamiyo_domain::{FieldError, Tier};

use super::{AccountError, AccountStore, SubscriptionChange, User};
use crate::error::StoreError;
use crate::row::{DriverRow, Fields};
use crate::statement::{self, Param, Sql};

const HISTORY: Sql = Sql {
    postgres: "SELECT old_tier, new_tier, coalesce(reason, '') AS reason, changed_at \
               FROM subscription_changes WHERE user_id = $1 ORDER BY changed_at, id",
    sqlite: "SELECT old_tier, new_tier, coalesce(reason, '') AS reason, changed_at \
             FROM subscription_changes WHERE user_id = ?1 ORDER BY changed_at, id",
};

fn read_change(row: &dyn DriverRow) -> Result<SubscriptionChange, StoreError> {
    let f = Fields::of("subscription_changes", row);
    Ok(SubscriptionChange {
        old_tier: f.opt_parse("old_tier", Tier::parse)?,
        new_tier: f.parse("new_tier", Tier::parse)?,
        reason: f.text("reason")?,
        changed_at: f.time("changed_at")?,
    })
}

impl AccountStore {
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
        let changed = self.change_tier(found.id, tier, reason).await;
        // Forget every verified key whatever the outcome: a commit that failed in flight
        // may still have changed the tier.
        self.principals().invalidate();
        changed?;
        Ok(User { tier, ..found })
    }

    async fn change_tier(&self, id: i64, tier: Tier, reason: &str) -> Result<(), AccountError> {
        match self.db().primary() {
            Pool::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let tx = conn.transaction().await?;
                let row = tx
                    .query_one("SELECT tier FROM users WHERE id = $1 FOR UPDATE", &[&id])
                    .await?;
                let old = Fields::of("users", &row).text("tier")?;
                tx.execute(
                    "UPDATE users SET tier = $2 WHERE id = $1",
                    &[&id, &tier.as_str()],
                )
                .await?;
                tx.execute(
                    "INSERT INTO subscription_changes (user_id, old_tier, new_tier, reason) VALUES ($1, $2, $3, $4)",
                    &[&id, &old, &tier.as_str(), &reason],
                )
                .await?;
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let conn = pool.acquire().await?;
                let (tier, reason) = (tier.as_str(), reason.to_owned());
                conn.run(move |c| {
                    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let old: String =
                        tx.query_row("SELECT tier FROM users WHERE id = ?1", [id], |r| r.get("tier"))?;
                    tx.execute(
                        "UPDATE users SET tier = ?2 WHERE id = ?1",
                        rusqlite::params![id, tier],
                    )?;
                    tx.execute(
                        "INSERT INTO subscription_changes (user_id, old_tier, new_tier, reason) VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![id, old, tier, reason],
                    )?;
                    tx.commit()
                })
                .await?;
            }
        }
        Ok(())
    }

    pub async fn subscription_history(
        &self,
        user: &str,
    ) -> Result<Vec<SubscriptionChange>, AccountError> {
        let found = self.find_user(user).await?;
        Ok(statement::query(
            self.db().primary(),
            HISTORY.for_pool(self.db().primary()),
            vec![Param::Int(found.id)],
            read_change,
        )
        .await?)
    }
}
