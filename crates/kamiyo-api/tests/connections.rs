//! The server's connection limits over real TCP: `serve` on a free port of 127.0.0.1,
//! the whole router on a SQLite file, raw sockets as clients (a client library would
//! hide what the server does to a connection).
//!
//! Deadlines under test are short; every timing assertion is a generous upper bound
//! (or a lower bound no timer can beat), never a tight figure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::routing;
use kamiyo_api::{router, AppState, ConnectionLimits, ConnectionStats, ServerConfig};
use kamiyo_db::{Database, DbConfig};
use kamiyo_testkit::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const SHORT: Duration = Duration::from_millis(200);
const LONG: Duration = Duration::from_secs(120);
/// Anything the server should do "promptly" or "after a short deadline" is done within
/// this, or the test fails.
const BOUND: Duration = Duration::from_secs(10);
const BIG_BODY_BYTES: usize = 64 << 20;

/// The service on a free port until `stop`.
struct Served {
    addr: SocketAddr,
    stats: Arc<ConnectionStats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: JoinHandle<bool>,
    /// Notified as a request reaches `/hang`.
    hanging: Arc<Notify>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// The whole router, plus `/peer` (the address the handler is given) and `/hang`
    /// (never answers).
    async fn start(limits: ConnectionLimits) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let db = Database::open(DbConfig::for_url(url)).await.unwrap();
        db.migrate(&kamiyo_store::MIGRATIONS).await.unwrap();
        let state = AppState::new(db, ServerConfig::default());
        let stats = Arc::clone(&state.connections);
        let hanging = Arc::new(Notify::new());
        let entered = Arc::clone(&hanging);
        let app = router(state)
            .route(
                "/peer",
                routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                    peer.to_string()
                }),
            )
            .route("/panic", routing::get(panicking_handler))
            // Larger than any socket buffers between the two ends.
            .route(
                "/big",
                routing::get(|| async { vec![b'x'; BIG_BODY_BYTES] }),
            )
            .route(
                "/hang",
                routing::get(move || {
                    entered.notify_one();
                    std::future::pending::<()>()
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(kamiyo_api::serve(
            listener,
            app,
            async {
                let _ = stopped.await;
            },
            limits,
            Arc::clone(&stats),
        ));
        Served {
            addr,
            stats,
            stop: Some(stop),
            server,
            hanging,
            _dir: dir,
        }
    }

    /// Starts the shutdown; `serve`'s answer is then awaited with [`Served::stopped`].
    fn stop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
    }

    async fn stopped(self) -> bool {
        within(BOUND, self.server, "serve to return").await.unwrap()
    }
}

/// A handler with a bug.
async fn panicking_handler() -> &'static str {
    panic!("a handler bug")
}

fn limits(header_read: Duration, keep_alive: Duration, max_connections: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: header_read,
        keep_alive_timeout: keep_alive,
        max_connections,
        write_timeout: LONG,
        drain_timeout: BOUND,
    }
}

async fn within<T>(limit: Duration, future: impl Future<Output = T>, what: &str) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {limit:?}"))
}

/// Sends a keep-alive GET and reads its answer: status and body.
async fn get(stream: &mut TcpStream, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: kamiyo\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    within(BOUND, read_answer(stream), "answer").await
}

/// One HTTP/1.1 answer with a `content-length`, read to its last byte and no further.
async fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut received = Vec::new();
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed mid-answer: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .unwrap_or_else(|| panic!("no content-length: {head}"))
        .trim()
        .parse()
        .unwrap();
    let mut body = received.split_off(head_end);
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    (status, String::from_utf8(body).unwrap())
}

/// Waits until the server closes `stream` (end of stream or reset), sending nothing;
/// returns how long that took.
async fn closed_by_server(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    match within(BOUND, stream.read(&mut chunk), "close by the server").await {
        Ok(0) | Err(_) => started.elapsed(),
        Ok(n) => panic!(
            "the server sent {:?} instead of closing",
            String::from_utf8_lossy(&chunk[..n])
        ),
    }
}

/// Whether the server closes `stream` within `limit`.
async fn closes_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    match tokio::time::timeout(limit, stream.read(&mut chunk)).await {
        Err(_) => false,
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(n)) => panic!("unexpected {:?}", String::from_utf8_lossy(&chunk[..n])),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_answered_and_its_handler_sees_the_peer_address() {
    let served = Served::start(limits(SHORT, SHORT, 8)).await;
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    let (status, body) = get(&mut stream, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = get(&mut stream, "/peer").await;
    assert_eq!(status, 200);
    assert_eq!(body, stream.local_addr().unwrap().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_sending_half_a_request_line_is_closed_after_the_header_read_timeout() {
    let served = Served::start(limits(SHORT, LONG, 8)).await;
    // Before connecting: the server's deadline runs from its accept, which can come
    // before `connect` returns here.
    let opened = Instant::now();
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    stream.write_all(b"GET /api/expl").await.unwrap();
    closed_by_server(&mut stream).await;
    assert!(opened.elapsed() >= SHORT, "closed before the deadline");
    assert_eq!(served.stats.timed_out(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    // A header deadline far longer than the test: only the keep-alive one can close it.
    let served = Served::start(limits(LONG, SHORT, 8)).await;
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    // Before the request: the server's idle deadline runs from when it wrote the answer,
    // which can come well before this side has read it on a busy machine (the test once
    // measured 198 ms of a 200 ms deadline from the read).
    let asked = Instant::now();
    assert_eq!(get(&mut stream, "/healthz").await.0, 200);
    closed_by_server(&mut stream).await;
    let idle = asked.elapsed();
    assert!(
        idle >= SHORT,
        "closed {idle:?} after the request: keep-alive not honoured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_may_idle_past_the_header_read_timeout_but_its_next_head_may_not_be_slow(
) {
    let served = Served::start(limits(SHORT, LONG, 8)).await;
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    assert_eq!(get(&mut stream, "/healthz").await.0, 200);
    assert!(
        !closes_within(&mut stream, 5 * SHORT).await,
        "an idle keep-alive connection was closed by the header read timeout"
    );
    assert_eq!(get(&mut stream, "/healthz").await.0, 200);

    stream.write_all(b"GET /hea").await.unwrap();
    let started = Instant::now();
    closed_by_server(&mut stream).await;
    assert!(started.elapsed() >= SHORT, "closed before the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_a_new_connection_is_closed_unread_until_a_place_frees() {
    const MAX: usize = 4;
    let served = Served::start(limits(LONG, LONG, MAX)).await;
    let mut slow = Vec::new();
    for _ in 0..MAX {
        let mut stream = TcpStream::connect(served.addr).await.unwrap();
        stream.write_all(b"GET /api/expl").await.unwrap();
        slow.push(stream);
    }
    let stats = &served.stats;
    eventually("all slow connections open", BOUND, || async {
        (stats.open() == MAX as u64).then_some(())
    })
    .await;

    let mut refused = TcpStream::connect(served.addr).await.unwrap();
    closed_by_server(&mut refused).await;
    assert_eq!(served.stats.refused(), 1);
    assert_eq!(served.stats.open(), MAX as u64);

    drop(slow);
    let addr = served.addr;
    let (status, _) = eventually("a request answered", BOUND, || async move {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = "GET /healthz HTTP/1.1\r\nHost: kamiyo\r\n\r\n";
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut first = [0u8; 1];
        // A refused connection ends here, before any byte.
        stream.peek(&mut first).await.ok().filter(|n| *n > 0)?;
        Some(read_answer(&mut stream).await)
    })
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_refuses_new_ones_and_reports_a_complete_drain() {
    let mut served = Served::start(limits(LONG, LONG, 8)).await;
    let mut idle = TcpStream::connect(served.addr).await.unwrap();
    assert_eq!(get(&mut idle, "/healthz").await.0, 200);
    let addr = served.addr;
    served.stop();
    closed_by_server(&mut idle).await;
    assert!(served.stopped().await, "the drain did not complete");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "a connection was accepted after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_running_at_the_drain_deadline_is_cut_and_the_drain_reported_incomplete() {
    let mut served = Served::start(ConnectionLimits {
        drain_timeout: SHORT,
        ..limits(LONG, LONG, 8)
    })
    .await;
    let mut hanging = TcpStream::connect(served.addr).await.unwrap();
    hanging
        .write_all(b"GET /hang HTTP/1.1\r\nHost: kamiyo\r\n\r\n")
        .await
        .unwrap();
    let stats = Arc::clone(&served.stats);
    within(BOUND, served.hanging.notified(), "request in flight").await;
    served.stop();
    assert!(
        !served.stopped().await,
        "a drain past its deadline reported complete"
    );
    closed_by_server(&mut hanging).await;
    assert_eq!(stats.open(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_its_answer_is_cut_off_after_the_write_timeout() {
    let served = Served::start(ConnectionLimits {
        write_timeout: SHORT,
        ..limits(LONG, LONG, 8)
    })
    .await;
    let mut reader = TcpStream::connect(served.addr).await.unwrap();
    reader
        .write_all(b"GET /big HTTP/1.1\r\nHost: kamiyo\r\n\r\n")
        .await
        .unwrap();
    // Reads nothing: the answer fills the socket buffers and the server's writes stall.
    eventually(
        "the stalled connection to be closed by the server",
        BOUND,
        || async { (served.stats.open() == 0 && served.stats.timed_out() == 1).then_some(()) },
    )
    .await;
    // What was sent is there to read, then the connection ends short of the body.
    let mut received = Vec::new();
    let _ = within(
        BOUND,
        reader.read_to_end(&mut received),
        "the client to see the end",
    )
    .await;
    assert!(
        received.len() < BIG_BODY_BYTES,
        "the whole body arrived ({} bytes): nothing was cut",
        received.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_answers_500_in_the_envelope_and_the_server_goes_on() {
    let served = Served::start(limits(LONG, LONG, 8)).await;
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    let (status, body) = get(&mut stream, "/panic").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains(r#""code":"internal_error""#) && !body.contains("handler bug"),
        "{body}"
    );
    let mut again = TcpStream::connect(served.addr).await.unwrap();
    assert_eq!(get(&mut again, "/healthz").await.0, 200);
}
