//! [`Site`]: the whole service (API and dashboard, `kamiyo_web::app`) on a fresh,
//! migrated PostgreSQL database, driven in process with the testkit's client or served
//! on a loopback port for a browser.

#![allow(dead_code)] // each test binary uses its own part

use kamiyo_api::{AppState, ServerConfig};
use kamiyo_db::{Database, DbConfig};
use kamiyo_domain::{Tier, TierTable};
use kamiyo_store::accounts::Role;
use kamiyo_store::{IncidentStore, MIGRATIONS};
use kamiyo_testkit::{ClaimBuilder, Client, TestDatabase};
use kamiyo_web::WebConfig;
use secrecy::SecretString;

pub const ADMIN_TOKEN: &str = "admin-token-for-the-dashboard-tests";
pub const SESSION_SECRET: &str = "a-session-secret-of-at-least-32-bytes!!";

pub struct Site {
    pub client: Client,
    pub state: AppState,
    pub db: Database,
    pub router: axum::Router,
    _pg: Option<TestDatabase>,
    _dir: Option<tempfile::TempDir>,
}

/// Tiers for tests: the shipped table, with request limits high enough that a test's
/// page loads are never throttled (the limits themselves are tested in kamiyo-api).
pub fn roomy_tiers() -> TierTable {
    let mut tiers = TierTable::default();
    for limits in [
        &mut tiers.anonymous,
        &mut tiers.free,
        &mut tiers.pro,
        &mut tiers.team,
        &mut tiers.enterprise,
    ] {
        limits.per_minute = 100_000;
        limits.per_hour = 1_000_000;
        limits.per_day = 10_000_000;
    }
    tiers
}

/// [`roomy_tiers`] for a private deployment: anonymous visitors see every incident, in
/// real time (`tiers.anonymous.delay = 0s`, `history = all`, and the free tier too: no
/// tier may see less than anonymous callers).
pub fn open_tiers() -> TierTable {
    let mut tiers = roomy_tiers();
    for limits in [&mut tiers.anonymous, &mut tiers.free] {
        limits.delay = std::time::Duration::ZERO;
        limits.history = None;
    }
    tiers
}

impl Site {
    /// The shipped visibility rules (an anonymous visitor sees incidents a day late, and
    /// a week of them), with roomy request limits.
    pub async fn start() -> Site {
        Site::with(ServerConfig::default(), roomy_tiers()).await
    }

    /// A site whose anonymous visitors see everything ([`open_tiers`]).
    pub async fn open() -> Site {
        Site::with(ServerConfig::default(), open_tiers()).await
    }

    /// An open site on a fresh SQLite file (the default backend of `kamiyo serve`).
    pub async fn sqlite() -> Site {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        Site::on(url, None, Some(dir), ServerConfig::default(), open_tiers()).await
    }

    pub async fn with(settings: ServerConfig, tiers: TierTable) -> Site {
        let pg = TestDatabase::create().await;
        let url = pg.url().to_owned();
        Site::on(url, Some(pg), None, settings, tiers).await
    }

    async fn on(
        url: String,
        pg: Option<TestDatabase>,
        dir: Option<tempfile::TempDir>,
        mut settings: ServerConfig,
        tiers: TierTable,
    ) -> Site {
        let db = Database::open(DbConfig {
            url: kamiyo_db::DatabaseUrl::new(url),
            ..DbConfig::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot open the test database: {e}"));
        db.migrate(&MIGRATIONS)
            .await
            .unwrap_or_else(|e| panic!("cannot migrate the test database: {e}"));
        if settings.admin_token.is_none() {
            settings.admin_token = Some(kamiyo_api::config::BearerToken(
                ADMIN_TOKEN.to_owned().into(),
            ));
        }
        // What start-up would refuse is no site to test.
        if let Err(e) = tiers.validate() {
            panic!("the test's tier table is invalid: {e}");
        }
        let limiter = kamiyo_api::request_limits::RequestLimiter::memory(
            settings.rate_limit_max_callers,
            db.clock().clone(),
        );
        let state = AppState::build(
            db.clone(),
            settings,
            Vec::new(),
            kamiyo_alerts::config::AlertsConfig::default(),
            tiers,
            kamiyo_domain::ReputationRules::default(),
            limiter,
        );
        let router = kamiyo_web::app(
            state.clone(),
            WebConfig {
                session_secret: Some(SecretString::from(SESSION_SECRET.to_owned())),
                ..WebConfig::default()
            },
        );
        Site {
            client: Client::new(router.clone()),
            router,
            state,
            db,
            _pg: pg,
            _dir: dir,
        }
    }

    /// Stores one claim; returns its incident's id.
    pub async fn incident(&self, claim: ClaimBuilder) -> i64 {
        IncidentStore::new(self.db.clone())
            .ingest(&claim.build())
            .await
            .unwrap_or_else(|e| panic!("cannot store the claim: {e}"))
            .exploit_id
    }

    /// A new user of `tier` with `role`, and one key of theirs.
    pub async fn key(&self, email: &str, tier: Tier, role: Role) -> String {
        self.state
            .accounts
            .create_user(email, tier, role)
            .await
            .unwrap_or_else(|e| panic!("cannot create {email}: {e}"));
        self.state
            .accounts
            .create_key(email, "test")
            .await
            .unwrap_or_else(|e| panic!("cannot create a key of {email}: {e}"))
            .1
    }

    /// Serves the site on a loopback port (for a browser); the server stops when the
    /// returned handle is dropped.
    pub async fn serve(&self) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot listen: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local address: {e}"));
        let router = self.router.clone();
        let limits = kamiyo_api::ConnectionLimits::from(&*self.state.server);
        let handle = tokio::spawn(async move {
            let _ = kamiyo_api::serve(
                listener,
                router,
                std::future::pending::<()>(),
                limits,
                std::sync::Arc::default(),
            )
            .await;
        });
        (format!("http://{addr}"), handle)
    }
}
