#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fault-injection harness itself, checked against real servers: if these fail, the
//! fault tests built on them prove nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kamiyo_testkit::{FaultMode, FaultProxy, PgCluster, TestDatabase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// How long a query on a healthy local server may take before the test calls it hung: far
/// above the milliseconds it needs, so "timed out" means "got no answer".
const SILENCE: Duration = Duration::from_secs(1);

/// Bound on anything that is expected to succeed; reaching it fails the test.
const PATIENCE: Duration = Duration::from_secs(15);

async fn try_connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn connect(url: &str) -> Client {
    tokio::time::timeout(PATIENCE, try_connect(url))
        .await
        .expect("connecting timed out")
        .expect("cannot connect")
}

async fn select_int(client: &Client, value: i32) -> Result<i32, tokio_postgres::Error> {
    let row = client.query_one("SELECT $1::int", &[&value]).await?;
    Ok(row.get(0))
}

/// The shared server's address, from a test database's URL.
async fn shared_server(database: &TestDatabase) -> SocketAddr {
    let url = database.url();
    let authority = url
        .split("://")
        .nth(1)
        .unwrap()
        .split(['/', '?'])
        .next()
        .unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    tokio::net::lookup_host(host_port)
        .await
        .unwrap()
        .next()
        .unwrap()
}

/// An upstream that echoes what it receives, for byte-level proxy tests.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

async fn echo_once(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(message).await?;
    let mut answer = vec![0; message.len()];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

#[tokio::test]
async fn the_proxy_passes_a_postgres_query_through() {
    let database = TestDatabase::create().await;
    let proxy = FaultProxy::start(shared_server(&database).await).await;
    let client = connect(&proxy.url_through(database.url())).await;

    assert_eq!(select_int(&client, 7).await.unwrap(), 7);
    assert_eq!(proxy.accepted_connections(), 1);
    assert_eq!(proxy.open_connections(), 1);
}

#[tokio::test]
async fn a_black_hole_makes_queries_time_out_and_pass_lets_them_finish() {
    let database = TestDatabase::create().await;
    let proxy = FaultProxy::start(shared_server(&database).await).await;
    let url = proxy.url_through(database.url());
    let client = connect(&url).await;
    assert_eq!(select_int(&client, 1).await.unwrap(), 1);

    proxy.set_mode(FaultMode::BlackHole).await;
    let held_query = tokio::spawn(async move { select_int(&client, 2).await });
    let held_url = url.clone();
    let held_connection = tokio::spawn(async move { try_connect(&held_url).await });
    let mut held = std::pin::pin!(async { tokio::join!(held_query, held_connection) });
    assert!(
        tokio::time::timeout(SILENCE, &mut held).await.is_err(),
        "a black hole answered"
    );
    assert_eq!(
        proxy.accepted_connections(),
        2,
        "black hole refused a connection"
    );

    proxy.set_mode(FaultMode::Pass).await;
    // Held connections resume where they stopped, like a healed partition.
    let (query, connection) = tokio::time::timeout(PATIENCE, held).await.unwrap();
    assert_eq!(query.unwrap().unwrap(), 2);
    assert_eq!(
        select_int(&connection.unwrap().unwrap(), 3).await.unwrap(),
        3
    );
    assert_eq!(select_int(&connect(&url).await, 4).await.unwrap(), 4);
}

#[tokio::test]
async fn reset_breaks_open_connections_with_a_connection_error_and_refuses_new_ones() {
    let database = TestDatabase::create().await;
    let proxy = FaultProxy::start(shared_server(&database).await).await;
    let url = proxy.url_through(database.url());
    let client = connect(&url).await;
    assert_eq!(select_int(&client, 1).await.unwrap(), 1);

    proxy.set_mode(FaultMode::Reset).await;
    let error = tokio::time::timeout(PATIENCE, select_int(&client, 2))
        .await
        .expect("a reset connection hung")
        .expect_err("a reset connection answered");
    assert!(error.is_closed(), "{error:?}");
    assert!(client.is_closed());
    let refused = tokio::time::timeout(PATIENCE, try_connect(&url)).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "a new connection was not reset"
    );
    assert_eq!(proxy.open_connections(), 0);

    proxy.set_mode(FaultMode::Pass).await;
    assert_eq!(select_int(&connect(&url).await, 3).await.unwrap(), 3);
}

#[tokio::test]
async fn reset_all_and_reset_mode_send_econnreset_and_reset_all_stays_in_pass() {
    let proxy = FaultProxy::start(echo_server().await).await;
    let mut first = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(echo_once(&mut first, b"ping").await.unwrap(), b"ping");

    proxy.reset_all().await;
    let mut buffer = [0; 1];
    let error = tokio::time::timeout(PATIENCE, first.read(&mut buffer))
        .await
        .unwrap()
        .expect_err("a reset connection read data or a clean end of stream");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);

    assert_eq!(proxy.mode(), FaultMode::Pass);
    let mut second = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(echo_once(&mut second, b"pong").await.unwrap(), b"pong");

    proxy.set_mode(FaultMode::Reset).await;
    let error = tokio::time::timeout(PATIENCE, second.read(&mut buffer))
        .await
        .unwrap()
        .expect_err("Reset left an open connection alive");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    // The kernel completes the handshake before the proxy accepts and resets.
    let mut third = TcpStream::connect(proxy.addr()).await.unwrap();
    let error = tokio::time::timeout(PATIENCE, third.read(&mut buffer))
        .await
        .unwrap()
        .expect_err("Reset left a new connection alive");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_connections() {
    let proxy = FaultProxy::start(echo_server().await).await;
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(echo_once(&mut stream, b"hi").await.unwrap(), b"hi");
    let addr = proxy.addr();

    drop(proxy);
    let mut buffer = [0; 1];
    let read = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
        .await
        .expect("the connection outlived the proxy");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(TcpStream::connect(addr).await.is_err());
}

async fn rows_in_t(client: &Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn the_replica_follows_the_primary_rejects_writes_and_lags_while_replay_is_paused() {
    let started = Instant::now();
    let primary = PgCluster::start_primary().await;
    let primary_ready = started.elapsed();
    let replica = primary.start_replica().await;
    eprintln!(
        "primary started in {primary_ready:?}, replica {:?} later",
        started.elapsed() - primary_ready
    );

    let writer = primary.client().await;
    writer
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    replica.wait_caught_up().await;
    let reader = replica.client().await;
    assert_eq!(rows_in_t(&reader).await, 1);

    let error = reader
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .expect_err("the replica accepted a write");
    assert_eq!(error.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION));

    replica.pause_replay().await;
    writer
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    replica.wait_received().await;
    assert_eq!(
        rows_in_t(&reader).await,
        1,
        "a paused replica showed new rows"
    );
    assert!(replica.replay_lag_bytes().await > 0);

    replica.resume_replay().await;
    replica.wait_caught_up().await;
    assert_eq!(rows_in_t(&reader).await, 2);
    assert_eq!(replica.replay_lag_bytes().await, 0);
}

#[tokio::test]
async fn a_frozen_server_answers_nothing_until_thawed() {
    let primary = PgCluster::start_primary().await;
    let client = primary.client().await;
    assert_eq!(select_int(&client, 1).await.unwrap(), 1);

    primary.freeze().await;
    let held_query = tokio::spawn(async move { select_int(&client, 2).await });
    let url = primary.url();
    let held_connection = tokio::spawn(async move { try_connect(&url).await });
    let mut held = std::pin::pin!(async { tokio::join!(held_query, held_connection) });
    assert!(
        tokio::time::timeout(SILENCE, &mut held).await.is_err(),
        "a frozen server answered"
    );

    primary.thaw().await;
    let (query, connection) = tokio::time::timeout(PATIENCE, held).await.unwrap();
    assert_eq!(query.unwrap().unwrap(), 2);
    assert_eq!(
        select_int(&connection.unwrap().unwrap(), 3).await.unwrap(),
        3
    );
}

#[tokio::test]
async fn a_stopped_server_starts_again_on_the_same_port_with_its_data() {
    let primary = PgCluster::start_primary().await;
    let url = primary.url();
    let client = primary.client().await;
    client
        .batch_execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)")
        .await
        .unwrap();

    primary.stop().await;
    assert!(select_int(&client, 1).await.is_err());
    assert!(
        try_connect(&url).await.is_err(),
        "a stopped server accepted"
    );

    primary.start().await;
    assert_eq!(primary.url(), url);
    let client = connect(&url).await;
    let kept: i64 = client
        .query_one("SELECT count(*) FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 1);

    primary.restart().await;
    assert!(select_int(&client, 1).await.is_err());
    assert_eq!(select_int(&connect(&url).await, 2).await.unwrap(), 2);
}
