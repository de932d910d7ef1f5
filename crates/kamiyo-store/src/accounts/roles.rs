//! What a user may do beyond their tier: `users.role` (`user` or `admin`) and the
//! reviewer grant (docs/COMMUNITY.md). Reviewers are a table of their own (migration
//! 0014 says why), so "reviewer" is a role of user plus a grant; an admin may review
//! without one, and callers check the role first.

use kamiyo_domain::{FieldError, Role};

use super::{AccountError, AccountStore, User};
use crate::row::Fields;
use crate::statement::{self, Param, Sql, Step};

const GRANT: Sql = Sql {
    postgres: "INSERT INTO reviewers (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING",
    sqlite: "INSERT INTO reviewers (user_id) VALUES (?1) ON CONFLICT (user_id) DO NOTHING",
};
const REVOKE: Sql = Sql {
    postgres: "DELETE FROM reviewers WHERE user_id = $1",
    sqlite: "DELETE FROM reviewers WHERE user_id = ?1",
};
const IS_REVIEWER: Sql = Sql {
    postgres: "SELECT count(*) AS n FROM reviewers WHERE user_id = $1",
    sqlite: "SELECT count(*) AS n FROM reviewers WHERE user_id = ?1",
};
const REVIEWER_IDS: Sql = Sql {
    postgres: "SELECT user_id FROM reviewers ORDER BY user_id",
    sqlite: "SELECT user_id FROM reviewers ORDER BY user_id",
};
const SET_ROLE: Sql = Sql {
    postgres: "UPDATE users SET role = $2 WHERE id = $1",
    sqlite: "UPDATE users SET role = ?2 WHERE id = ?1",
};

/// A user's access as an operator names it: `users.role` and the reviewer grant
/// together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Role `user`, no grant.
    User,
    /// Role `user` with the reviewer grant.
    Reviewer,
    /// Role `admin`. The grant is removed: an admin reviews by role, and a grant left
    /// behind would outlive a later demotion to `user` unnoticed.
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::User => "user",
            Access::Reviewer => "reviewer",
            Access::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Access, FieldError> {
        match text.trim() {
            "user" => Ok(Access::User),
            "reviewer" => Ok(Access::Reviewer),
            "admin" => Ok(Access::Admin),
            other => Err(FieldError::new(
                "role",
                format!("{other:?} is not a role: expected user, reviewer or admin"),
            )),
        }
    }

    /// The `users.role` this access stores.
    pub fn role(self) -> Role {
        match self {
            Access::User | Access::Reviewer => Role::User,
            Access::Admin => Role::Admin,
        }
    }

    /// The access of a user with `role`, holding the reviewer grant or not.
    pub fn of(role: Role, reviewer: bool) -> Access {
        match (role, reviewer) {
            (Role::Admin, _) => Access::Admin,
            (Role::User, true) => Access::Reviewer,
            (Role::User, false) => Access::User,
        }
    }
}

impl AccountStore {
    /// Lets `user` (email or id) review community submissions. Granting twice is one
    /// grant, and keeps its first time.
    pub async fn grant_reviewer(&self, user: &str) -> Result<(), AccountError> {
        let found = self.find_user(user).await?;
        let pool = self.db().primary();
        statement::execute(pool, GRANT.for_pool(pool), vec![Param::Int(found.id)]).await?;
        Ok(())
    }

    /// Takes the reviewer grant from `user` (email or id); whether they had one.
    pub async fn revoke_reviewer(&self, user: &str) -> Result<bool, AccountError> {
        let found = self.find_user(user).await?;
        let pool = self.db().primary();
        let removed =
            statement::execute(pool, REVOKE.for_pool(pool), vec![Param::Int(found.id)]).await?;
        Ok(removed > 0)
    }

    /// Whether user `user_id` holds the reviewer grant (an admin without one does not).
    pub async fn is_reviewer(&self, user_id: i64) -> Result<bool, AccountError> {
        let pool = self.db().primary();
        let n = statement::query_one(
            pool,
            IS_REVIEWER.for_pool(pool),
            vec![Param::Int(user_id)],
            |row| Fields::of("reviewers", row).int("n"),
        )
        .await?;
        Ok(n > 0)
    }

    /// The ids of every user holding the reviewer grant, in order.
    pub async fn reviewer_ids(&self) -> Result<Vec<i64>, AccountError> {
        let pool = self.db().primary();
        Ok(
            statement::query(pool, REVIEWER_IDS.for_pool(pool), Vec::new(), |row| {
                Fields::of("reviewers", row).int("user_id")
            })
            .await?,
        )
    }

    /// Gives `user` (email or id) `access`: their role and their reviewer grant change
    /// in one transaction, so no one is ever seen half promoted.
    pub async fn set_access(&self, user: &str, access: Access) -> Result<User, AccountError> {
        let found = self.find_user(user).await?;
        let pool = self.db().primary();
        let id = Param::Int(found.id);
        let grant = match access {
            Access::Reviewer => GRANT,
            Access::User | Access::Admin => REVOKE,
        };
        let steps = vec![
            Step::new(
                SET_ROLE.for_pool(pool),
                vec![id.clone(), Param::Text(access.role().as_str().to_owned())],
            )
            .must_change(1, "user", "the user is gone"),
            Step::new(grant.for_pool(pool), vec![id]),
        ];
        let changed = statement::run_steps(pool, steps).await;
        // The role is part of every verified key's principal: forget them whatever the
        // outcome, as a commit that failed in flight may still have changed it.
        self.principals().invalidate();
        changed?;
        Ok(User {
            role: access.role(),
            ..found
        })
    }
}
