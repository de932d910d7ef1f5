//! The HTTP service while its database fails for real: a PostgreSQL server of the test's
//! own restarted under load or frozen, the network to the shared server black-holed by a
//! fault proxy, a query stuck behind a lock past the request deadline. The service runs
//! in process (the router, `serve` and a real listener) and is called over TCP.
//!
//! Every limit is short, so a deadline that fires does so within the test's few seconds;
//! timing assertions are generous upper bounds proving that a deadline fired, never
//! tight expectations.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kamiyo_api::config::BearerToken;
use kamiyo_api::{router, AppState, ConnectionLimits, ServerConfig};
use kamiyo_db::{Database, DatabaseUrl, DbConfig, ManualClock, MonitorConfig};
use kamiyo_testkit::{eventually, FaultMode, FaultProxy, PgCluster, TestDatabase};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const TOKEN: &str = "faults-admin-token-0123456789abcdef";
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(1);
/// Above the acquisition deadline plus the client-side statement deadline (1 s + 2 s), so
/// that the database layer reports first (both answer 503 with `Retry-After`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Health looks back this far: after a fault it reports `healthy` again this long after
/// the last failure (the default, 5 min, would keep it `degraded` past the test).
const HEALTH_WINDOW: Duration = Duration::from_secs(1);
/// A client gives up on the service after this: only a hung service reaches it.
const CLIENT_LIMIT: Duration = Duration::from_secs(30);

fn db_config(url: &str) -> DbConfig {
    DbConfig {
        url: DatabaseUrl::new(url),
        pool_max_size: 8,
        acquire_timeout: ACQUIRE_TIMEOUT,
        connect_timeout: Duration::from_millis(500),
        statement_timeout: STATEMENT_TIMEOUT,
        tcp_user_timeout: Duration::from_secs(1),
        monitor: MonitorConfig {
            health_window: HEALTH_WINDOW,
            ..MonitorConfig::default()
        },
        ..DbConfig::default()
    }
}

fn server_config() -> ServerConfig {
    ServerConfig {
        request_timeout: REQUEST_TIMEOUT,
        retry_after: Duration::from_secs(1),
        // The admin token's tier allows 3,000 requests a minute: the load stays below.
        admin_token: Some(BearerToken(TOKEN.to_owned().into())),
        ..ServerConfig::default()
    }
}

/// The service on a free port, stopped when dropped.
struct Service {
    addr: SocketAddr,
    /// The service's clock: the health window passes when the test says so.
    time: ManualClock,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Service {
    /// Migrates the database, then serves it.
    async fn start(config: DbConfig, server: ServerConfig) -> Service {
        let time = ManualClock::new();
        let db = Database::open(DbConfig {
            clock: time.clock(),
            ..config
        })
        .await
        .unwrap();
        db.migrate(&kamiyo_store::MIGRATIONS).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = ConnectionLimits {
            drain_timeout: Duration::from_secs(1),
            ..ConnectionLimits::from(&server)
        };
        let app = router(AppState::new(db, server));
        tokio::spawn(kamiyo_api::serve(
            listener,
            app,
            async {
                let _ = stopped.await;
            },
            limits,
            Default::default(),
        ));
        Service {
            addr,
            time,
            _stop: stop,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        get(self.addr, path).await
    }
}

/// A listing no earlier request asked for: it misses the service's page and total caches,
/// so it reaches the database every time.
fn listing() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("/api/exploits?limit=5&protocol=p{n}")
}

/// One HTTP answer, and how long it took.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    started: Instant,
    elapsed: Duration,
}

/// A GET over a fresh connection, as the admin (database-backed paths need no key
/// lookup then, and are not rate-limited by the test's own load).
async fn get(addr: SocketAddr, path: &str) -> Answer {
    let started = Instant::now();
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    };
    let response = tokio::time::timeout(CLIENT_LIMIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no answer within {CLIENT_LIMIT:?}"));
    let elapsed = started.elapsed();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: not an HTTP answer: {response:?}"));
    let retry_after = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().to_owned())
    });
    Answer {
        status,
        retry_after,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        started,
        elapsed,
    }
}

/// Asserts what every failure of a database-backed request must look like: a 503 in the
/// envelope with `Retry-After` (or a 504), within the request deadline plus a margin.
fn assert_failed_within_deadline(path: &str, answer: &Answer) {
    assert!(
        answer.elapsed < REQUEST_TIMEOUT + Duration::from_secs(1),
        "GET {path} took {:?}: {answer:?}",
        answer.elapsed
    );
    assert!(matches!(answer.status, 503 | 504), "GET {path}: {answer:?}");
    assert!(answer.retry_after.is_some(), "GET {path}: {answer:?}");
}

/// Polls health until it says `healthy`. Health is a reading of the recent past: each
/// reading that is not healthy yet moves the service's clock on by a health window
/// (and past the probe cache's lifetime), so the failures it remembers age out when the
/// test says, not on the wall clock; what is awaited is the database answering again.
async fn until_healthy(service: &Service) -> Duration {
    let started = Instant::now();
    eventually(
        "healthy after recovery",
        Duration::from_secs(15),
        || async move {
            let answer = service.get("/api/health/database").await;
            if answer.status == 200 && answer.body["status"] == "healthy" {
                Ok(())
            } else {
                service
                    .time
                    .advance(HEALTH_WINDOW + Duration::from_millis(1));
                Err(answer)
            }
        },
    )
    .await;
    started.elapsed()
}

/// While the database does not answer: concurrent requests all end, within their
/// deadline, with 503 or 504, and health says `unhealthy`.
async fn assert_fails_fast_and_unhealthy(service: &Service) {
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let addr = service.addr;
        requests.spawn(async move { get(addr, &listing()).await });
    }
    let health = service.get("/api/health/database").await;
    for answer in requests.join_all().await {
        assert_failed_within_deadline("/api/exploits", &answer);
    }
    assert_failed_within_deadline("/api/health/database", &health);
    assert_eq!(health.body["status"], "unhealthy", "{health:?}");
    assert_eq!(health.body["error"]["code"], "database_unavailable");
    println!(
        "failing: all answered within {:?} (health {:?})",
        started.elapsed(),
        health.elapsed
    );
}

/// After recovery: healthy again, and requests answered, with no restart of the service.
async fn assert_recovers(service: &Service) {
    let healthy_after = until_healthy(service).await;
    println!("recovering: healthy after {healthy_after:?}");
    for _ in 0..5 {
        let answer = service.get(&listing()).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_fails_requests_fast_and_the_pool_recovers_by_itself() {
    let cluster = PgCluster::start_primary().await;
    let service = Service::start(db_config(&cluster.url()), server_config()).await;

    // Four clients, each sending its next request when the previous one is answered,
    // paced so that the admin's rate limit is never what fails them.
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<Answer>();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let answers_tx = answers_tx.clone();
            let stop = stop.clone();
            let addr = service.addr;
            tokio::spawn(async move {
                let mut pace = tokio::time::interval(Duration::from_millis(20));
                while !*stop.borrow() {
                    pace.tick().await;
                    let _ = answers_tx.send(get(addr, &listing()).await);
                }
            })
        })
        .collect();
    drop(answers_tx);
    let mut seen = Vec::new();
    while seen.iter().filter(|a: &&Answer| a.status == 200).count() < 4 {
        seen.push(answers.recv().await.unwrap());
    }

    cluster.restart().await;
    let restarted = Instant::now();

    // The first success after the restart, then twenty in a row among requests that
    // started after it.
    let recovery_limit = Duration::from_secs(10);
    let first_success = loop {
        let answer = tokio::time::timeout(recovery_limit, answers.recv())
            .await
            .expect("no answer at all after the restart")
            .unwrap();
        seen.push(answer.clone());
        if answer.status == 200 && answer.started >= restarted {
            break answer.started + answer.elapsed;
        }
        assert!(
            restarted.elapsed() < recovery_limit,
            "no success within {recovery_limit:?} of the restart"
        );
    };
    let recovered_after = first_success - restarted;
    let mut in_a_row = 0;
    while in_a_row < 20 {
        let answer = answers.recv().await.unwrap();
        seen.push(answer.clone());
        if answer.started >= first_success {
            assert_eq!(answer.status, 200, "after recovery: {answer:?}");
            in_a_row += 1;
        }
    }
    stop_tx.send(true).unwrap();
    for client in clients {
        client.await.unwrap();
    }
    while let Some(answer) = answers.recv().await {
        seen.push(answer);
    }

    let failures: Vec<&Answer> = seen.iter().filter(|a| a.status != 200).collect();
    assert!(
        !failures.is_empty(),
        "no request failed during the restart: the test proved nothing"
    );
    for failure in &failures {
        assert_eq!(failure.status, 503, "{failure:?}");
        assert_eq!(failure.body["error"]["code"], "database_unavailable");
        assert_failed_within_deadline("/api/exploits", failure);
    }
    let slowest = failures.iter().map(|a| a.elapsed).max().unwrap_or_default();
    println!(
        "{} requests, {} failed (slowest failure {slowest:?}), first success {recovered_after:?} after the restart",
        seen.len(),
        failures.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_database_fails_requests_within_their_deadline_and_health_recovers_without_a_restart(
) {
    let test_db = TestDatabase::create().await;
    let proxy = FaultProxy::start(test_db.server_addr()).await;
    let config = DbConfig {
        // Every checkout is checked: requests and the health probe meet the black hole
        // while acquiring, the case that looked like an exhausted pool.
        liveness_check_after: Duration::ZERO,
        ..db_config(&proxy.url_through(test_db.url()))
    };
    let service = Service::start(config, server_config()).await;
    assert_eq!(service.get(&listing()).await.status, 200);

    proxy.set_mode(FaultMode::BlackHole).await;
    assert_fails_fast_and_unhealthy(&service).await;

    proxy.set_mode(FaultMode::Pass).await;
    assert_recovers(&service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_server_fails_requests_within_their_deadline_and_health_recovers_on_thaw()
{
    let cluster = PgCluster::start_primary().await;
    let service = Service::start(db_config(&cluster.url()), server_config()).await;
    assert_eq!(service.get(&listing()).await.status, 200);

    cluster.freeze().await;
    assert_fails_fast_and_unhealthy(&service).await;

    cluster.thaw().await;
    assert_recovers(&service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_cancels_its_query_on_the_server() {
    let test_db = TestDatabase::create().await;
    let config = DbConfig {
        // Far longer than the test: only a cancel ends the query in time.
        statement_timeout: Duration::from_secs(60),
        ..db_config(test_db.url())
    };
    let server = ServerConfig {
        request_timeout: Duration::from_millis(500),
        ..server_config()
    };
    let service = Service::start(config, server).await;
    assert_eq!(service.get(&listing()).await.status, 200);

    let locker = test_db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE exploits IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let answer = service.get(&listing()).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], "request_timeout");
    assert!(
        answer.retry_after.is_some(),
        "a 503 says when to retry: {answer:?}"
    );
    assert!(answer.elapsed < Duration::from_secs(2), "{answer:?}");

    // The server handles a cancel request asynchronously and answers nothing, so this
    // looks at pg_stat_activity between short pauses.
    let observer = &test_db.client().await;
    eventually(
        "the abandoned query cancelled on the server",
        Duration::from_secs(5),
        || async move {
            let waiting: i64 = observer
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND application_name = 'kamiyo' AND state = 'active'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting == 0 {
                Ok(())
            } else {
                Err(format!("{waiting} of Kamiyo's queries still active"))
            }
        },
    )
    .await;

    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(service.get(&listing()).await.status, 200);
}
