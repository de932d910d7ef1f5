//! Opens PostgreSQL sessions with every deadline set, and decides whether a pooled one
//! may be handed out again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool::managed::{Manager, Metrics, RecycleError, RecycleResult};
use rand::Rng;
use tokio_postgres::{Client, NoTls};

use super::cancel::{SessionControl, CLIENT_DEADLINE_GRACE};
use super::server_wait::on_server;
use crate::config::DbConfig;
use crate::error::DbError;
use crate::monitor::{CloseReason, PoolMonitor};

/// One pooled PostgreSQL session. Boxed: deadpool and every layer of an acquisition move
/// the pooled object several times per checkout, and inline (the driver's client holds a
/// copy of the connection settings, the cancel token another) it was several hundred
/// bytes, a memcpy each time (callgrind); boxed, they move a pointer. The box is made
/// once per session.
pub struct PgSession(Box<SessionState>);

impl std::ops::Deref for PgSession {
    type Target = SessionState;

    fn deref(&self) -> &SessionState {
        &self.0
    }
}

impl std::ops::DerefMut for PgSession {
    fn deref_mut(&mut self) -> &mut SessionState {
        &mut self.0
    }
}

pub struct SessionState {
    pub(crate) client: Client,
    /// When the session was last given back to the pool; decides whether it is checked
    /// before its next use.
    pub(crate) returned_at: Instant,
    /// Past this instant the session is closed instead of reused.
    pub(crate) expires_at: Instant,
    /// Statements prepared on this session, by SQL text: a repeated statement costs one
    /// round trip instead of two (prepare, then execute).
    pub(crate) statements:
        parking_lot::Mutex<std::collections::HashMap<String, tokio_postgres::Statement>>,
    /// Cancels statements their caller stopped waiting for, and remembers that one was.
    pub(crate) control: SessionControl,
    /// Behind a pooler in transaction mode (`database.transaction_pooling`): parameter
    /// types by SQL text, shared by the pool's sessions; statements are then sent
    /// unnamed instead of prepared.
    pub(crate) types: Option<Arc<TypeCache>>,
    /// Behind such a pooler, the lengthened timeouts (milliseconds) each transaction of
    /// this session sets for itself (`SET LOCAL`): a session-level `SET` would stay on
    /// whichever server session ran it, for other clients.
    pub(crate) local_timeouts_ms: Option<u128>,
}

/// Parameter types of statements by SQL text (see [`SessionState::types`]); bounded as
/// the statement cache is.
pub(crate) type TypeCache =
    parking_lot::Mutex<std::collections::HashMap<String, Arc<[tokio_postgres::types::Type]>>>;

pub(crate) struct PgManager {
    pool_name: String,
    pg_config: tokio_postgres::Config,
    /// Sessions of their own (migrations, `LISTEN`): `database.direct_url` with every
    /// option, when the pool's URL goes through a pooler in transaction mode.
    direct_config: Option<tokio_postgres::Config>,
    types: Option<Arc<TypeCache>>,
    connect_timeout: Duration,
    statement_deadline: Duration,
    max_lifetime: Duration,
    liveness_check_after: Duration,
    pub(crate) monitor: Arc<PoolMonitor>,
}

impl PgManager {
    pub(crate) fn new(
        pool_name: &str,
        config: &DbConfig,
        monitor: Arc<PoolMonitor>,
        read_only: bool,
    ) -> Result<Self, DbError> {
        let mut pg_config = config.url.postgres_config("database.url")?;
        // Also per session: no parallel workers (on a small server under concurrency a
        // parallel scan costs several times the CPU for the same answer) and custom plans
        // for prepared statements (the statement cache keeps statements whose generic
        // plan, chosen after five executions, can be far slower for other parameters).
        // Both were measured in BENCHMARKS.md.
        let mut options = format!(
            "-c statement_timeout={} -c idle_in_transaction_session_timeout={} \
             -c max_parallel_workers_per_gather=0 -c plan_cache_mode=force_custom_plan",
            config.statement_timeout.as_millis(),
            config.idle_in_transaction_timeout.as_millis(),
        );
        // A replica's sessions refuse writes themselves, so a write routed there by
        // mistake fails with a clear error instead of depending on the server's role.
        if read_only {
            options.push_str(" -c default_transaction_read_only=on");
        }
        let settle = |pg_config: &mut tokio_postgres::Config| {
            pg_config
                .application_name(&config.application_name)
                .connect_timeout(config.connect_timeout)
                .tcp_user_timeout(config.tcp_user_timeout)
                .keepalives(true)
                .keepalives_idle(config.keepalive_idle)
                .keepalives_interval(config.keepalive_interval)
                .keepalives_retries(config.keepalive_retries);
        };
        settle(&mut pg_config);
        let mut direct_config = None;
        if config.transaction_pooling {
            // PgBouncer refuses the `options` start-up parameter; the server-side
            // settings come from the role (docs/DEPLOYMENT.md).
            if let Some(direct) = &config.direct_url {
                let mut direct = direct.postgres_config("database.direct_url")?;
                settle(&mut direct);
                direct.options(&options);
                direct_config = Some(direct);
            }
        } else {
            pg_config.options(&options);
        }
        Ok(PgManager {
            pool_name: pool_name.to_owned(),
            pg_config,
            direct_config,
            types: config
                .transaction_pooling
                .then(|| Arc::new(parking_lot::Mutex::new(std::collections::HashMap::new()))),
            connect_timeout: config.connect_timeout,
            statement_deadline: config.statement_timeout + CLIENT_DEADLINE_GRACE,
            max_lifetime: config.max_lifetime,
            liveness_check_after: config.liveness_check_after,
            monitor,
        })
    }

    /// Opens one session, driven in the background: `direct` for one outside any pool
    /// (the migration runner needs its own, so that closing it releases its advisory
    /// lock whatever happened), to `database.direct_url` when one is set.
    pub(crate) async fn connect(&self, direct: bool) -> Result<Client, DbError> {
        let (client, connection) = self.connect_raw(direct).await?;
        let pool = self.pool_name.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(pool = %pool, %error, "postgres session ended with an error");
            }
        });
        Ok(client)
    }

    /// A session whose connection the caller drives (a listener reads its
    /// notifications from it); `direct` as for [`PgManager::connect`].
    pub(crate) async fn connect_raw(
        &self,
        direct: bool,
    ) -> Result<
        (
            Client,
            tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
        ),
        DbError,
    > {
        // tokio-postgres's own connect timeout covers the TCP handshake only; this one
        // also covers a server that accepts and then never answers the start-up.
        let config = match (&self.direct_config, direct) {
            (Some(direct_config), true) => direct_config,
            _ => &self.pg_config,
        };
        let connecting = config.connect(NoTls);
        tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| DbError::Unavailable {
                pool: self.pool_name.clone(),
                reason: format!(
                    "connecting took longer than the connect timeout ({})",
                    humantime::format_duration(self.connect_timeout)
                ),
                source: None,
            })?
            .map_err(|e| DbError::from_postgres(&self.pool_name, e))
    }

    fn reject(&self, reason: CloseReason, message: &'static str) -> RecycleError<DbError> {
        self.monitor.connection_closed(reason);
        RecycleError::message(message)
    }
}

impl Manager for PgManager {
    type Type = PgSession;
    type Error = DbError;

    async fn create(&self) -> Result<PgSession, DbError> {
        let started = Instant::now();
        // Boxed: the connect future is several kilobytes, and unboxed it would be part
        // of every `acquire()` future, copied on each checkout (found with callgrind:
        // a tenth of the client's instructions per query went to memcpy).
        let client = on_server(Box::pin(self.connect(false))).await?;
        self.monitor.connection_created(started.elapsed());
        // Up to 10 % earlier than the configured lifetime, so that sessions opened
        // together (at start-up, after an outage) are not all recycled at once.
        let jitter_ms = (self.max_lifetime.as_millis() / 10) as u64;
        let jitter = Duration::from_millis(rand::rng().random_range(0..=jitter_ms));
        let now = Instant::now();
        let control = SessionControl::new(
            self.types.is_none().then(|| client.cancel_token()),
            self.statement_deadline,
            self.connect_timeout,
        );
        Ok(PgSession(Box::new(SessionState {
            control,
            client,
            returned_at: now,
            expires_at: now + self.max_lifetime.saturating_sub(jitter),
            statements: parking_lot::Mutex::new(std::collections::HashMap::new()),
            types: self.types.clone(),
            local_timeouts_ms: None,
        })))
    }

    async fn recycle(&self, session: &mut PgSession, _: &Metrics) -> RecycleResult<DbError> {
        if session.client.is_closed() {
            return Err(self.reject(
                CloseReason::Broken,
                "session was closed by the server or the network",
            ));
        }
        if session.control.is_abandoned() {
            return Err(self.reject(
                CloseReason::Broken,
                "a statement on this session was abandoned before its answer",
            ));
        }
        if session.control.is_retired() {
            return Err(self.reject(
                CloseReason::Expired,
                "a maintenance session's lengthened timeouts are not handed to requests",
            ));
        }
        let now = Instant::now();
        if now >= session.expires_at {
            return Err(self.reject(CloseReason::Expired, "session reached its maximum lifetime"));
        }
        // A session used a moment ago is almost certainly alive; one that sat idle may
        // have been cut by a restart, a failover or a firewall, so it is pinged first.
        // The ping is boxed for the reason `create` boxes connecting: most checkouts
        // never ping, and every one would copy the ping's state with the acquire future.
        if now.saturating_duration_since(session.returned_at) >= self.liveness_check_after
            && on_server(Box::pin(session.client.simple_query("SELECT 1")))
                .await
                .is_err()
        {
            return Err(self.reject(CloseReason::FailedCheck, "liveness check failed"));
        }
        Ok(())
    }
}
