//! Account changes made by any process, heard at once (PostgreSQL, migration 0016): a
//! key revoked, a user disabled, deleted or given another tier or role notifies the
//! channel `kamiyo_accounts` when its transaction commits, and a process that follows it
//! forgets every key it had verified ([`super::principal_cache`]), so that the next
//! request of each key is looked up again.
//!
//! A notification can be lost: one sent while the listening session was down, or while
//! the network held it. The session's end is noticed (the listener answers `None`): the
//! cache is emptied then, and again when listening resumes, so changes made meanwhile
//! apply as soon as the session is back. A session that hangs without ending is covered
//! by the cache's TTL (`server.auth_cache_ttl`), the bound that held before
//! notifications. SQLite has no notifications; one process serves it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kamiyo_db::Pool;

use super::AccountStore;

/// The channel migration 0016's triggers notify.
pub const ACCOUNTS_CHANNEL: &str = "kamiyo_accounts";

impl AccountStore {
    /// Forgets every verified key: the next request of each is looked up again.
    pub fn forget_verified_keys(&self) {
        self.principals().invalidate();
    }

    /// Whether changes made by other processes are heard now: a follower listens, and
    /// has emptied the cache since it began to.
    pub fn is_following_changes(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Follows account changes made by any process until the task is aborted, listening
    /// again `relisten_after` after the session ends or cannot be opened. `None` on
    /// SQLite (nothing to follow).
    pub fn follow_changes(&self, relisten_after: Duration) -> Option<tokio::task::JoinHandle<()>> {
        let Pool::Postgres(pool) = self.db().primary().clone() else {
            return None;
        };
        let store = self.clone();
        Some(tokio::spawn(async move {
            let mut warned = false;
            loop {
                match pool.listen(&[ACCOUNTS_CHANNEL]).await {
                    Ok(mut listener) => {
                        // Whatever changed while nobody listened is unknown.
                        store.forget_verified_keys();
                        store.listening.store(true, Ordering::Release);
                        if warned {
                            tracing::info!("listening for account changes again");
                        }
                        while listener.next().await.is_some() {
                            store.forget_verified_keys();
                        }
                        store.listening.store(false, Ordering::Release);
                        store.forget_verified_keys();
                        tracing::warn!(
                            ?relisten_after,
                            "the account-change listener's session ended: changes by other processes apply within server.auth_cache_ttl until it is back"
                        );
                        warned = true;
                    }
                    Err(error) => {
                        if !warned {
                            tracing::warn!(%error, "cannot listen for account changes: changes by other processes apply within server.auth_cache_ttl");
                            warned = true;
                        }
                    }
                }
                tokio::time::sleep(relisten_after).await;
            }
        }))
    }
}
