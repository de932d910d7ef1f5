//! [`TestApp`]: the API on a fresh, migrated database (PostgreSQL by default, or SQLite),
//! driven through the real router with the testkit's HTTP client.
//!
//! It lives here, not in `kamiyo-testkit`, because it builds `kamiyo-api`'s and
//! `kamiyo-store`'s types: those crates have the testkit as a dev-dependency, and a
//! dependency back would link two copies of them (docs/TESTING.md).
//!
//! ```ignore
//! let t = TestApp::builder().admin_token(ADMIN).user(Tier::Pro, Role::User).start().await;
//! t.incident(claim("Alphafi").ago(Duration::days(3))).await;
//! let answer = t.get("/api/exploits").await;          // as the app's user
//! let anonymous = t.get("/api/exploits").anonymous().await;
//! ```

#![allow(dead_code)] // each test binary uses its own part

use axum::http::Method;
use kamiyo_api::{router, AppState, ServerConfig};
use kamiyo_db::{Database, DbConfig};
use kamiyo_domain::{Tier, TierTable};
use kamiyo_store::accounts::{AccountStore, Role};
use kamiyo_store::{IncidentStore, MIGRATIONS};
use kamiyo_testkit::http::Request;
use kamiyo_testkit::{ClaimBuilder, Client, TestDatabase};
use serde_json::Value;

/// The e-mail of the user a [`Builder::user`] creates.
pub const USER_EMAIL: &str = "tester@example.com";

/// The API on its own database. Requests made through [`TestApp::get`], [`TestApp::post`]
/// and [`TestApp::call`] carry the key of the app's user when it has one
/// ([`Builder::user`]); `.anonymous()` or `.bearer(other)` on the request changes that.
pub struct TestApp {
    pub client: Client,
    pub state: AppState,
    pub db: Database,
    /// The key of the app's user, sent with every request unless replaced.
    pub user_key: Option<String>,
    _pg: Option<TestDatabase>,
    _dir: Option<tempfile::TempDir>,
}

enum Backend {
    Postgres,
    Sqlite,
    /// A PostgreSQL URL nothing listens on, never migrated.
    Unreachable(&'static str),
    /// A database the test opened (e.g. with a replica), already migrated.
    Given(Database),
}

/// How to build a [`TestApp`]: settings, database, and the user whose key requests carry.
pub struct Builder {
    settings: ServerConfig,
    alerts: kamiyo_alerts::config::AlertsConfig,
    tiers: TierTable,
    community: kamiyo_domain::ReputationRules,
    rate_limit: kamiyo_api::request_limits::RateLimitConfig,
    db_config: DbConfig,
    backend: Backend,
    user: Option<(Tier, Role)>,
}

impl TestApp {
    pub fn builder() -> Builder {
        Builder {
            settings: ServerConfig::default(),
            alerts: kamiyo_alerts::config::AlertsConfig::default(),
            tiers: TierTable::default(),
            community: kamiyo_domain::ReputationRules::default(),
            rate_limit: kamiyo_api::request_limits::RateLimitConfig::default(),
            db_config: DbConfig::default(),
            backend: Backend::Postgres,
            user: None,
        }
    }

    /// The API with `settings` on a fresh PostgreSQL database, anonymous by default.
    pub async fn start(settings: ServerConfig) -> TestApp {
        TestApp::builder().settings(settings).start().await
    }

    /// A GET, as the app's user when it has one.
    pub fn get(&self, path: &str) -> Request {
        self.call(Method::GET, path)
    }

    /// A POST of `json`, as the app's user when it has one.
    pub fn post(&self, path: &str, json: Value) -> Request {
        self.call(Method::POST, path).json(json)
    }

    /// Any method, as the app's user when it has one.
    pub fn call(&self, method: Method, path: &str) -> Request {
        self.client
            .request(method, path)
            .bearer_opt(self.user_key.as_deref())
    }

    /// Another instance of the API (its own caches, limits and settings, the default
    /// tier table) on this app's database: what a second process sees.
    pub fn another_instance(&self, settings: ServerConfig) -> Client {
        Client::new(router(AppState::new(self.db.clone(), settings)))
    }

    /// Another instance on this app's database whose request limits are kept as
    /// `rate_limit` says (the default settings otherwise): its state, for its health.
    pub fn another_limited_instance(
        &self,
        rate_limit: &kamiyo_api::request_limits::RateLimitConfig,
    ) -> (Client, AppState) {
        let settings = ServerConfig::default();
        let limiter = kamiyo_api::request_limits::RequestLimiter::new(
            rate_limit,
            self.db.config(),
            settings.rate_limit_max_callers,
            self.db.clock().clone(),
        )
        .unwrap_or_else(|e| panic!("the test's rate_limit settings are invalid: {e}"));
        let state = AppState::build(
            self.db.clone(),
            settings,
            Vec::new(),
            kamiyo_alerts::config::AlertsConfig::default(),
            TierTable::default(),
            kamiyo_domain::ReputationRules::default(),
            limiter,
        );
        (Client::new(router(state.clone())), state)
    }

    /// The PostgreSQL server under the app's database (none on SQLite).
    pub fn postgres_server(&self) -> Option<std::net::SocketAddr> {
        self._pg.as_ref().map(TestDatabase::server_addr)
    }

    /// The app's own account store: changes through it are this process's changes (its
    /// key cache forgets at once).
    pub fn accounts(&self) -> &AccountStore {
        &self.state.accounts
    }

    /// A new user of `tier` with `role`, and one key of theirs.
    pub async fn key(&self, email: &str, tier: Tier, role: Role) -> String {
        self.accounts()
            .create_user(email, tier, role)
            .await
            .unwrap_or_else(|e| panic!("cannot create {email}: {e}"));
        self.another_key(email).await
    }

    /// One more key of an existing user.
    pub async fn another_key(&self, email: &str) -> String {
        self.accounts()
            .create_key(email, "test")
            .await
            .unwrap_or_else(|e| panic!("cannot create a key of {email}: {e}"))
            .1
    }

    /// Stores one claim through a store of its own (as an import in another process
    /// would: the app's caches do not hear of it); returns the incident's id.
    pub async fn incident(&self, claim: ClaimBuilder) -> i64 {
        IncidentStore::new(self.db.clone())
            .ingest(&claim.build())
            .await
            .unwrap_or_else(|e| panic!("cannot store the claim: {e}"))
            .exploit_id
    }
}

impl Builder {
    /// The `alerts.*` settings (default: the shipped ones).
    pub fn alerts(mut self, alerts: kamiyo_alerts::config::AlertsConfig) -> Self {
        self.alerts = alerts;
        self
    }

    /// The tier table (`tiers.*`; default: the shipped one).
    pub fn tiers(mut self, tiers: TierTable) -> Self {
        self.tiers = tiers;
        self
    }

    /// The `community.*` rules (default: the shipped ones).
    pub fn community(mut self, rules: kamiyo_domain::ReputationRules) -> Self {
        self.community = rules;
        self
    }

    /// Where request limits are kept (`rate_limit.*`; default: in the process).
    pub fn rate_limit(mut self, rate_limit: kamiyo_api::request_limits::RateLimitConfig) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// The server's settings (`ServerConfig { .., ..ServerConfig::default() }`).
    pub fn settings(mut self, settings: ServerConfig) -> Self {
        self.settings = settings;
        self
    }

    /// The admin token, on top of the settings given so far.
    pub fn admin_token(mut self, secret: &str) -> Self {
        self.settings.admin_token = token(secret);
        self
    }

    /// The pool and monitor settings; the URL is the test database's.
    pub fn db_config(mut self, config: DbConfig) -> Self {
        self.db_config = config;
        self
    }

    /// A fresh SQLite file instead of PostgreSQL.
    pub fn sqlite(mut self) -> Self {
        self.backend = Backend::Sqlite;
        self
    }

    /// A PostgreSQL URL nothing listens on (with a password, which must never show).
    pub fn unreachable_database(mut self) -> Self {
        self.backend = Backend::Unreachable("postgres://kamiyo:s3cret@127.0.0.1:1/none");
        self
    }

    /// A database the test opened and migrated itself.
    pub fn database(mut self, db: Database) -> Self {
        self.backend = Backend::Given(db);
        self
    }

    /// Every request carries the key of a user of `tier` with `role` ([`USER_EMAIL`]).
    pub fn user(mut self, tier: Tier, role: Role) -> Self {
        self.user = Some((tier, role));
        self
    }

    pub async fn start(self) -> TestApp {
        let (db, pg, dir) = match self.backend {
            Backend::Postgres => {
                let pg = TestDatabase::create().await;
                let db = migrated(DbConfig {
                    url: kamiyo_db::DatabaseUrl::new(pg.url()),
                    ..self.db_config
                })
                .await;
                (db, Some(pg), None)
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
                let url = format!("sqlite://{}", dir.path().join("k.db").display());
                let db = migrated(DbConfig {
                    url: kamiyo_db::DatabaseUrl::new(url),
                    ..self.db_config
                })
                .await;
                (db, None, Some(dir))
            }
            Backend::Unreachable(url) => {
                let db = Database::open(DbConfig::for_url(url))
                    .await
                    .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
                (db, None, None)
            }
            Backend::Given(db) => (db, None, None),
        };
        let limiter = kamiyo_api::request_limits::RequestLimiter::new(
            &self.rate_limit,
            db.config(),
            self.settings.rate_limit_max_callers,
            db.clock().clone(),
        )
        .unwrap_or_else(|e| panic!("the test's rate_limit settings are invalid: {e}"));
        let state = AppState::build(
            db.clone(),
            self.settings,
            Vec::new(),
            self.alerts,
            self.tiers,
            self.community,
            limiter,
        );
        let mut app = TestApp {
            client: Client::new(router(state.clone())),
            state,
            db,
            user_key: None,
            _pg: pg,
            _dir: dir,
        };
        if let Some((tier, role)) = self.user {
            app.user_key = Some(app.key(USER_EMAIL, tier, role).await);
        }
        app
    }
}

async fn migrated(config: DbConfig) -> Database {
    let db = Database::open(config)
        .await
        .unwrap_or_else(|e| panic!("cannot open the test database: {e}"));
    db.migrate(&MIGRATIONS)
        .await
        .unwrap_or_else(|e| panic!("cannot migrate the test database: {e}"));
    db
}

/// Connections handed out by the primary's pool so far: what reached the database.
pub fn primary_acquisitions(db: &Database) -> u64 {
    db.monitors()
        .iter()
        .find(|(m, _)| m.pool() == kamiyo_db::PRIMARY_POOL)
        .map(|(m, s)| m.report(*s).acquisitions.total)
        .unwrap_or_else(|| panic!("no primary pool monitor"))
}

pub fn token(secret: &str) -> Option<kamiyo_api::config::BearerToken> {
    Some(kamiyo_api::config::BearerToken(secret.to_owned().into()))
}
