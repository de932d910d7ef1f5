//! A test application on a fresh PostgreSQL database, driven through the real router,
//! and incidents written through the store: what the security and visibility tests
//! share.

#![allow(dead_code)] // each test binary uses its own part

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use kamiyo_api::{router, AppState, ServerConfig};
use kamiyo_db::{Database, DbConfig};
use kamiyo_domain::{IncidentDraft, IncidentInput, Tier, TxHashInput};
use kamiyo_store::accounts::{AccountStore, Role};
use kamiyo_store::{IncidentStore, MIGRATIONS};
use kamiyo_testkit::TestDatabase;
use serde_json::Value;
use tower::ServiceExt;

pub struct TestApp {
    pub app: Router,
    pub state: AppState,
    pub db: Database,
    _pg: TestDatabase,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One request: method, path, headers, body and the peer address the server sees.
pub struct Call<'a> {
    method: Method,
    uri: &'a str,
    headers: Vec<(&'a str, String)>,
    body: Option<Value>,
    peer: Option<SocketAddr>,
}

impl<'a> Call<'a> {
    pub fn get(uri: &'a str) -> Self {
        Call {
            method: Method::GET,
            uri,
            headers: Vec::new(),
            body: None,
            peer: None,
        }
    }

    pub fn post(uri: &'a str, body: Value) -> Self {
        Call {
            method: Method::POST,
            body: Some(body),
            ..Call::get(uri)
        }
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn from(mut self, peer: &str) -> Self {
        self.peer = Some(peer.parse().unwrap());
        self
    }
}

impl TestApp {
    pub async fn start(server: ServerConfig) -> TestApp {
        let pg = TestDatabase::create().await;
        let db = Database::open(DbConfig::for_url(pg.url())).await.unwrap();
        db.migrate(&MIGRATIONS).await.unwrap();
        let state = AppState::new(db.clone(), server);
        TestApp {
            app: router(state.clone()),
            state,
            db,
            _pg: pg,
        }
    }

    pub async fn send(&self, call: Call<'_>) -> Answer {
        let mut request = Request::builder().method(call.method).uri(call.uri);
        for (name, value) in call.headers {
            request = request.header(name, value);
        }
        let body = match call.body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).unwrap();
        if let Some(peer) = call.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = self.app.clone().oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.send(Call::get(uri)).await
    }

    /// A new user of `tier` (admin with `Role::Admin`) and one key of theirs.
    pub async fn key(&self, email: &str, tier: Tier, role: Role) -> String {
        let accounts: &AccountStore = &self.state.accounts;
        accounts.create_user(email, tier, role).await.unwrap();
        accounts.create_key(email, "test").await.unwrap().1
    }

    /// Stores one claim; returns the incident's id.
    pub async fn incident(&self, claim: Claim<'_>) -> i64 {
        let draft = IncidentDraft::from_input(
            IncidentInput {
                source: Some(claim.source.into()),
                protocol: Some(claim.protocol.into()),
                chains: vec![claim.chain.into()],
                date: Some(claim.occurred_at.to_rfc3339()),
                loss_usd: Some("1000".into()),
                tx_hashes: claim
                    .tx_hash
                    .map(|hash| {
                        vec![TxHashInput {
                            chain: Some(claim.chain.into()),
                            hash: hash.into(),
                        }]
                    })
                    .unwrap_or_default(),
                ..IncidentInput::default()
            },
            Utc::now(),
        )
        .unwrap();
        IncidentStore::new(self.db.clone())
            .ingest(&draft)
            .await
            .unwrap()
            .exploit_id
    }
}

pub struct Claim<'a> {
    pub source: &'a str,
    pub protocol: &'a str,
    pub chain: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub tx_hash: Option<&'a str>,
}

/// Connections handed out by the primary's pool so far: what reached the database.
pub fn primary_acquisitions(db: &Database) -> u64 {
    db.monitors()
        .iter()
        .find(|(m, _)| m.pool() == kamiyo_db::PRIMARY_POOL)
        .map(|(m, s)| m.report(*s).acquisitions.total)
        .unwrap()
}

pub fn token(secret: &str) -> Option<kamiyo_api::config::BearerToken> {
    Some(kamiyo_api::config::BearerToken(secret.to_owned().into()))
}
