//! Test-only helpers. Tests run against the real PostgreSQL server, never a mock; each
//! test gets a database of its own, created here and dropped when the test ends.
//!
//! The server is found through `KAMIYO_TEST_ADMIN_URL` (default
//! `postgres://root@127.0.0.1:5432/postgres`). When it cannot be reached the test fails
//! with a message saying so: a test is never skipped because the server is missing.
//!
//! Layout:
//! - this file: [`TestDatabase`], a database of its own on the shared server;
//! - [`proxy`]: [`FaultProxy`], a TCP proxy that black-holes or resets connections on
//!   command, to break the network between a client and a server;
//! - [`cluster`]: [`PgCluster`], throwaway primary and replica servers that a test may
//!   stop, freeze or lag, which the shared server must never be;
//! - [`eventually`](mod@eventually): [`eventually()`], the one poll loop, bounded, for
//!   states that no event announces;
//! - [`http`]: [`Client`], requests through any `axum::Router` in process, answered
//!   with a [`Response`];
//! - [`claim`](mod@claim): [`claim()`], a claim about an incident with defaults for what
//!   a test is not about;
//! - [`backends`]: [`per_backend!`], one test per database backend for each story;
//! - [`http_fixture`]: [`FixtureServer`], a source's HTTP server on loopback that
//!   answers with validators and `304`, `Retry-After`, slow, oversized, cut-off bodies
//!   and closed connections, as scripted, and counts requests.
//!
//! This crate knows the domain's types (`kamiyo-domain`) but not the service's crates:
//! `kamiyo-db`, `kamiyo-store` and `kamiyo-api` have it as a dev-dependency, and a
//! dependency back would link two copies of their types. Their own test helpers (the
//! API's `TestApp`) live in their `tests/common/`. docs/TESTING.md describes how the
//! tests use all of them.

#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod backends;
pub mod claim;
pub mod cluster;
pub mod eventually;
pub mod http;
pub mod http_fixture;
pub mod proxy;
pub mod smtp;
pub mod webhook;

pub use claim::{claim, ClaimBuilder};
pub use cluster::pgbouncer::PgBouncer;
pub use cluster::PgCluster;
pub use eventually::eventually;
pub use http::{Client, Response};
pub use http_fixture::{FixtureServer, Reply};
pub use proxy::{FaultMode, FaultProxy};
pub use smtp::{Mail, SmtpSink};
pub use webhook::{Answer, Received, WebhookReceiver};

use tokio_postgres::NoTls;

pub const DEFAULT_ADMIN_URL: &str = "postgres://root@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("KAMIYO_TEST_ADMIN_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// A freshly created, empty PostgreSQL database, dropped (with `FORCE`, closing any
/// session a test left open) when this value is dropped.
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let admin_url = admin_url();
        let name = format!("kamiyo_test_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let url = database_url(&admin_url, &name);
        TestDatabase {
            name,
            url,
            admin_url,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `postgres://...` of this database, for `DbConfig::for_url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's TCP address, for a [`FaultProxy`] in front of it.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        use std::net::ToSocketAddrs;
        let authority = self
            .url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?']).next())
            .unwrap_or_else(|| panic!("no host in the test server's URL {}", self.url));
        let host_port = authority.rsplit('@').next().unwrap_or(authority);
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        };
        host_port
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("cannot resolve the test server's address {host_port}"))
    }

    /// A plain driver connection to this database, outside any Kamiyo pool, for
    /// inspecting what Kamiyo did.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// Advisory locks currently held in this database by any session: after a migration
    /// run, on any path, there must be none.
    pub async fn advisory_locks_held(&self) -> i64 {
        self.client()
            .await
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("cannot read pg_locks: {e}"))
            .get(0)
    }

    /// A plain connection to the maintenance database, e.g. to terminate backends.
    pub async fn admin_client(&self) -> tokio_postgres::Client {
        connect(&self.admin_url).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await, and may run inside a runtime; a short-lived thread with its
        // own runtime does the clean-up without blocking the test's executor.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await.ok()?;
                tokio::spawn(connection);
                client.batch_execute(&statement).await.ok()
            })
        });
        let _ = cleanup.join();
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach the test PostgreSQL server at {url}: {e}. Start it (scripts/test starts the local cluster) or set KAMIYO_TEST_ADMIN_URL"
        )
    });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Replaces the database name (the URL's path) of `admin_url` by `name`, keeping the
/// query string. Also used by `kamiyo-bench` for its scratch databases.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            database_url("postgres://root@127.0.0.1:5432/postgres", "t1"),
            "postgres://root@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url("postgres://h?sslmode=disable", "t2"),
            "postgres://h/t2?sslmode=disable"
        );
        assert_eq!(
            database_url("postgres://u:p@h/db?sslmode=disable", "t3"),
            "postgres://u:p@h/t3?sslmode=disable"
        );
    }
}
