//! `kamiyo user`, `kamiyo key`, `kamiyo payment`: account administration.

use std::collections::HashSet;

use anyhow::Context;
use kamiyo_domain::Tier;
use kamiyo_store::accounts::{Access, AccountStore};

use crate::cli::{KeyAction, PaymentAction, UserAction};
use crate::settings::Settings;
use crate::startup::prepare_kamiyo_database;

async fn store(settings: &Settings) -> anyhow::Result<AccountStore> {
    let database = prepare_kamiyo_database(&settings.database).await?;
    Ok(AccountStore::new(database))
}

fn tier(text: &str) -> anyhow::Result<Tier> {
    Ok(Tier::parse(text)?)
}

pub async fn user(settings: Settings, action: UserAction) -> anyhow::Result<()> {
    let accounts = store(&settings).await?;
    match action {
        UserAction::Create {
            email,
            tier: t,
            role,
            admin,
        } => {
            let access = match (admin, role) {
                (true, _) => Access::Admin,
                (false, Some(role)) => Access::parse(&role)?,
                (false, None) => Access::User,
            };
            let user = accounts
                .create_user(&email, tier(&t)?, access.role())
                .await
                .context("cannot create the user")?;
            if access == Access::Reviewer {
                // A second step: the grant is a row of its own (see `kamiyo_store::accounts`'
                // roles); should it fail, the operator is told how to finish.
                accounts
                    .grant_reviewer(&user.id.to_string())
                    .await
                    .with_context(|| {
                        format!(
                            "user {} was created without the reviewer grant; run `kamiyo user set-role {} reviewer`",
                            user.id, user.email
                        )
                    })?;
            }
            println!(
                "created user {} <{}> tier {} role {}",
                user.id,
                user.email,
                user.tier.as_str(),
                access.as_str()
            );
        }
        UserAction::List => {
            let reviewers: HashSet<i64> = accounts.reviewer_ids().await?.into_iter().collect();
            println!(
                "{:<6} {:<40} {:<11} {:<8} {:<7} CREATED",
                "ID", "EMAIL", "TIER", "ROLE", "ACTIVE"
            );
            for user in accounts.list_users().await? {
                println!(
                    "{:<6} {:<40} {:<11} {:<8} {:<7} {}",
                    user.id,
                    user.email,
                    user.tier.as_str(),
                    Access::of(user.role, reviewers.contains(&user.id)).as_str(),
                    user.active,
                    user.created_at.to_rfc3339()
                );
            }
        }
        UserAction::SetRole { user, role } => {
            let access = Access::parse(&role)?;
            let user = accounts
                .set_access(&user, access)
                .await
                .context("cannot change the role")?;
            println!(
                "user {} <{}> now has role {}",
                user.id,
                user.email,
                access.as_str()
            );
        }
        UserAction::SetTier {
            user,
            tier: t,
            reason,
        } => {
            let user = accounts
                .set_tier(&user, tier(&t)?, &reason)
                .await
                .context("cannot change the tier")?;
            println!("user {} is now on tier {}", user.id, user.tier.as_str());
        }
        UserAction::Disable { user } => {
            let user = accounts
                .disable_user(&user)
                .await
                .context("cannot disable the user")?;
            println!(
                "user {} <{}> disabled; their keys no longer work",
                user.id, user.email
            );
        }
    }
    Ok(())
}

pub async fn key(settings: Settings, action: KeyAction) -> anyhow::Result<()> {
    let accounts = store(&settings).await?;
    match action {
        KeyAction::Create { user, name } => {
            let (info, key) = accounts
                .create_key(&user, &name)
                .await
                .context("cannot create the key")?;
            eprintln!(
                "key {} created for user {}; it is shown once, store it now:",
                info.prefix, info.user_id
            );
            println!("{key}");
        }
        KeyAction::List { user } => {
            println!(
                "{:<6} {:<14} {:<8} {:<16} {:<32} {:<32} REVOKED",
                "ID", "PREFIX", "USER", "NAME", "CREATED", "LAST USED"
            );
            for key in accounts.list_keys(user.as_deref()).await? {
                println!(
                    "{:<6} {:<14} {:<8} {:<16} {:<32} {:<32} {}",
                    key.id,
                    key.prefix,
                    key.user_id,
                    key.name,
                    key.created_at.to_rfc3339(),
                    key.last_used_at
                        .map_or_else(|| "-".into(), |t| t.to_rfc3339()),
                    key.revoked_at
                        .map_or_else(|| "-".into(), |t| t.to_rfc3339())
                );
            }
        }
        KeyAction::Revoke { key } => {
            accounts
                .revoke_key(&key)
                .await
                .context("cannot revoke the key")?;
            println!("key {key} revoked");
        }
    }
    Ok(())
}

pub async fn payment(settings: Settings, action: PaymentAction) -> anyhow::Result<()> {
    let accounts = store(&settings).await?;
    let PaymentAction::Record {
        user,
        amount,
        currency,
        status,
        provider,
        reference,
    } = action;
    let id = accounts
        .record_payment(
            &user,
            &amount,
            &currency,
            &status,
            &provider,
            reference.as_deref(),
        )
        .await
        .context("cannot record the payment")?;
    println!("payment {id} recorded");
    Ok(())
}
