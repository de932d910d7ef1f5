//! `LISTEN` on a session of its own: notifications are asynchronous messages on the
//! connection, which a pooled session (handed from request to request) cannot keep.
//! The listener's session is opened with the pool's settings (to `database.direct_url`
//! when one is set: a pooler in transaction mode cannot keep a `LISTEN`) and lives until it drops
//! or the server goes away; then [`Listener::next`] answers `None` and the caller opens
//! a new one (a notification sent meanwhile is lost: callers poll as well).

use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::PgPool;
use crate::error::DbError;

/// Notifications arriving for the channels listened to.
pub struct Listener {
    notifications: mpsc::Receiver<String>,
    /// Holding the client holds the session open.
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
}

/// How many notifications may wait unread before more are dropped: they only wake a
/// poller, and one waiting is as good as many.
const BACKLOG: usize = 64;

impl PgPool {
    /// A new session listening on `channels` (plain identifiers).
    pub async fn listen(&self, channels: &[&str]) -> Result<Listener, DbError> {
        if let Some(bad) = channels
            .iter()
            .find(|c| c.is_empty() || !c.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(DbError::other(format!(
                "cannot listen on {bad:?}: not a plain identifier"
            )));
        }
        let (client, mut connection) = self.pool.manager().connect_raw(true).await?;
        let (sender, notifications) = mpsc::channel(BACKLOG);
        let pool = self.name.to_string();
        let task = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        // Full: the reader has wake-ups waiting already.
                        let _ = sender.try_send(n.channel().to_owned());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        tracing::debug!(pool = %pool, %error, "listening session ended");
                        break;
                    }
                    None => break,
                }
            }
        });
        let statement: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
        // A server that took the connection and then stalls must not hold the caller.
        tokio::time::timeout(self.acquire_timeout, client.batch_execute(&statement))
            .await
            .map_err(|_| DbError::Unavailable {
                pool: self.name.to_string(),
                reason: "LISTEN was not answered within the acquire timeout".into(),
                source: None,
            })?
            .map_err(|e| DbError::from_postgres(&self.name, e))?;
        Ok(Listener {
            notifications,
            client,
            task,
        })
    }
}

impl Listener {
    /// The channel of the next notification; `None` once the session has ended.
    pub async fn next(&mut self) -> Option<String> {
        self.notifications.recv().await
    }

    /// The backend's process id, for tests that end the session from outside.
    pub async fn backend_pid(&self) -> Result<i32, DbError> {
        let row = self
            .client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(|e| DbError::from_postgres("listener", e))?;
        Ok(row.get(0))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}
