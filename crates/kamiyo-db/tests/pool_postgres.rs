//! The PostgreSQL pool against the real server: deadlines, FIFO hand-off, dead sessions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use kamiyo_db::{Database, DbConfig, DbError, Pool};
use kamiyo_testkit::{eventually, TestDatabase};

/// The server process behind a pooled session: a new one means a new session.
async fn backend_pid(conn: &kamiyo_db::postgres::PgConnection) -> i32 {
    conn.query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

async fn pg_database(
    test_db: &TestDatabase,
    config: DbConfig,
) -> (Database, kamiyo_db::postgres::PgPool) {
    let database = Database::open(DbConfig {
        url: kamiyo_db::DatabaseUrl::new(test_db.url()),
        ..config
    })
    .await
    .unwrap();
    let Pool::Postgres(pool) = database.primary().clone() else {
        panic!("a postgres:// URL must give a PostgreSQL pool");
    };
    (database, pool)
}

/// Waits, up to 5 s, until `waiting` callers queue on the pool. deadpool has no event for
/// "a waiter arrived", so this polls its state.
async fn until_waiting(pool: &kamiyo_db::postgres::PgPool, waiting: usize) {
    eventually("a waiter queued", Duration::from_secs(5), || async {
        let state = pool.state();
        if state.waiting >= waiting {
            Ok(())
        } else {
            Err(state)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_times_out_at_its_deadline_with_a_message_naming_pool_and_state() {
    let test_db = TestDatabase::create().await;
    let config = DbConfig {
        pool_max_size: 2,
        ..DbConfig::default()
    };
    let (_database, pool) = pg_database(&test_db, config).await;
    let first = pool.acquire().await.unwrap();
    let second = pool.acquire().await.unwrap();

    let started = Instant::now();
    let err = match pool.acquire_within(Duration::from_millis(300)).await {
        Err(err) => err,
        Ok(_) => panic!("a third connection from a pool of two"),
    };
    let waited = started.elapsed();
    assert!(matches!(err, DbError::AcquireTimeout { .. }), "{err:?}");
    assert!(
        waited >= Duration::from_millis(300),
        "gave up early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(2),
        "deadline overshot: {waited:?}"
    );
    assert_eq!(
        err.to_string(),
        "timed out after 300ms waiting for a connection from pool \"primary\" (2 of 2 in use, 0 waiting)"
    );

    drop(first);
    let third = pool.acquire_within(Duration::from_millis(300)).await;
    assert!(
        third.is_ok(),
        "a released connection is available again: {:?}",
        third.err()
    );
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_task_gets_the_released_connection_without_polling_delay() {
    let test_db = TestDatabase::create().await;
    let config = DbConfig {
        pool_max_size: 1,
        ..DbConfig::default()
    };
    let (_database, pool) = pg_database(&test_db, config).await;
    let held = pool.acquire().await.unwrap();

    let waiter_pool = pool.clone();
    let waiter = tokio::spawn(async move {
        let conn = waiter_pool.acquire_within(Duration::from_secs(5)).await;
        (Instant::now(), conn.is_ok())
    });
    until_waiting(&pool, 1).await;

    let released = Instant::now();
    drop(held);
    let (acquired, ok) = waiter.await.unwrap();
    assert!(ok, "the waiter must get the connection");
    let handoff = acquired.duration_since(released);
    // The original polled every 100 ms; a wake-up by the release itself is far below.
    assert!(
        handoff < Duration::from_millis(50),
        "hand-off took {handoff:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_served_first_come_first_served() {
    let test_db = TestDatabase::create().await;
    let config = DbConfig {
        pool_max_size: 1,
        ..DbConfig::default()
    };
    let (_database, pool) = pg_database(&test_db, config).await;
    let held = pool.acquire().await.unwrap();
    let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    for id in 0..4 {
        let waiter_pool = pool.clone();
        let order_tx = order_tx.clone();
        waiters.push(tokio::spawn(async move {
            let conn = waiter_pool
                .acquire_within(Duration::from_secs(5))
                .await
                .unwrap();
            order_tx.send(id).unwrap();
            drop(conn);
        }));
        until_waiting(&pool, id + 1).await;
    }
    drop(held);
    for waiter in waiters {
        waiter.await.unwrap();
    }
    let mut order = Vec::new();
    while let Ok(id) = order_rx.try_recv() {
        order.push(id);
    }
    assert_eq!(order, vec![0, 1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_terminated_by_the_server_is_replaced_transparently() {
    let test_db = TestDatabase::create().await;
    let config = DbConfig {
        pool_max_size: 1,
        // Every checkout is checked, so the test does not depend on how quickly the
        // driver notices the closed socket by itself.
        liveness_check_after: Duration::ZERO,
        ..DbConfig::default()
    };
    let (_database, pool) = pg_database(&test_db, config).await;
    let first_pid = { backend_pid(&pool.acquire().await.unwrap()).await };
    let admin = test_db.admin_client().await;
    let terminated: bool = admin
        .query_one("SELECT pg_terminate_backend($1, 5000)", &[&first_pid])
        .await
        .unwrap()
        .get(0);
    assert!(terminated);

    let conn = pool.acquire().await.unwrap();
    let second_pid = backend_pid(&conn).await;
    assert_ne!(
        first_pid, second_pid,
        "the dead session must not be handed out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_carry_the_configured_server_side_timeouts() {
    let test_db = TestDatabase::create().await;
    let config = DbConfig {
        statement_timeout: Duration::from_millis(1500),
        idle_in_transaction_timeout: Duration::from_secs(7),
        ..DbConfig::default()
    };
    let (_database, pool) = pg_database(&test_db, config).await;
    let conn = pool.acquire().await.unwrap();
    let row = conn
        .query_one(
            "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout'), current_setting('application_name')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "1500ms");
    assert_eq!(row.get::<_, String>(1), "7s");
    assert_eq!(row.get::<_, String>(2), "kamiyo");

    let err = conn.query_one("SELECT pg_sleep(5)", &[]).await.unwrap_err();
    assert!(matches!(err, DbError::StatementTimeout { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_session_outlasts_the_request_timeouts_and_is_never_reused() {
    let test_db = TestDatabase::create().await;
    let config = DbConfig {
        statement_timeout: Duration::from_millis(300),
        pool_max_size: 1,
        ..DbConfig::default()
    };
    let (_database, pool) = pg_database(&test_db, config).await;
    let mut conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;
    conn.lengthen_timeouts(Duration::from_secs(20))
        .await
        .unwrap();
    let row = conn
        .query_one(
            "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "20s");
    assert_eq!(row.get::<_, String>(1), "20s");
    // Past the request's server-side timeout and its client-side deadline (1.3 s).
    conn.query("SELECT pg_sleep(1.5)", &[]).await.unwrap();
    drop(conn);

    let next = pool.acquire().await.unwrap();
    assert_ne!(backend_pid(&next).await, pid, "the session was closed");
    let row = next
        .query_one("SELECT current_setting('statement_timeout')", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "300ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_hears_committed_notifications_and_ends_when_its_session_is_killed() {
    let test_db = TestDatabase::create().await;
    let (_database, pool) = pg_database(&test_db, DbConfig::default()).await;
    assert!(pool.listen(&["bad channel"]).await.is_err());
    let mut listener = pool.listen(&["kamiyo_test"]).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let tx = conn.transaction().await.unwrap();
    tx.execute("SELECT pg_notify('kamiyo_test', '')", &[])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    conn.execute("SELECT pg_notify('kamiyo_test', '')", &[])
        .await
        .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(10), listener.next())
        .await
        .unwrap();
    assert_eq!(heard.as_deref(), Some("kamiyo_test"));

    let pid = listener.backend_pid().await.unwrap();
    conn.execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), listener.next())
        .await
        .unwrap();
    assert_eq!(ended, None, "only the committed notification, then the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_fast_with_unavailable() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let database = Database::open(DbConfig::for_url("postgres://kamiyo:pw@127.0.0.1:1/none"))
        .await
        .unwrap();
    let started = Instant::now();
    let err = database.ping(Duration::from_secs(2)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, DbError::Unavailable { .. }), "{err:?}");
    assert!(!err.to_string().contains("pw"), "password leaked: {err}");
}

/// What the server is doing for backend `pid`: `Some(state)` (`active`, `idle`...) while
/// the backend exists.
async fn backend_state(client: &tokio_postgres::Client, pid: i32) -> Option<String> {
    client
        .query_opt("SELECT state FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .await
        .unwrap()
        .and_then(|row| row.get(0))
}

/// Waits until backend `pid` runs nothing any more (idle or gone). A cancel request is
/// handled asynchronously by the server and gives no answer, so this polls
/// `pg_stat_activity`, up to `limit`.
async fn until_backend_stops(client: &tokio_postgres::Client, pid: i32, limit: Duration) {
    let what = format!("backend {pid} done with its statement");
    eventually(&what, limit, || async {
        match backend_state(client, pid).await {
            Some(state) if state == "active" => Err(state),
            _ => Ok(()),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_its_client_side_deadline_is_cancelled_on_the_server() {
    let test_db = TestDatabase::create().await;
    let config = DbConfig {
        statement_timeout: Duration::from_millis(300),
        ..DbConfig::default()
    };
    let (_database, pool) = pg_database(&test_db, config).await;
    let conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;
    // The server's own timeout would end the statement first; switched off for this
    // session, only the client-side deadline is left, as with a server that ignores it.
    conn.batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();

    let started = Instant::now();
    let err = conn.query("SELECT pg_sleep(60)", &[]).await.unwrap_err();
    let waited = started.elapsed();
    let deadline = Duration::from_millis(300) + kamiyo_db::postgres::CLIENT_DEADLINE_GRACE;
    assert!(matches!(err, DbError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("client-side statement deadline"),
        "{err}"
    );
    assert!(
        waited >= deadline,
        "gave up before the deadline: {waited:?}"
    );
    assert!(waited < deadline + Duration::from_secs(1), "{waited:?}");

    let observer = test_db.client().await;
    until_backend_stops(&observer, pid, Duration::from_secs(5)).await;
    drop(conn);
    let next = pool.acquire().await.unwrap();
    let next_pid = backend_pid(&next).await;
    assert_ne!(next_pid, pid, "the abandoned session must not be reused");
}

// Each session keeps one timer for its statements' deadlines and re-arms it per
// statement: a timer that went off while the session sat idle must still be armed
// again, and two statements in flight at once on one session must each have one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_side_deadline_holds_after_an_idle_session_and_for_pipelined_statements() {
    let test_db = TestDatabase::create().await;
    let config = DbConfig {
        statement_timeout: Duration::from_millis(300),
        ..DbConfig::default()
    };
    let deadline = Duration::from_millis(300) + kamiyo_db::postgres::CLIENT_DEADLINE_GRACE;
    let (_database, pool) = pg_database(&test_db, config).await;

    let conn = pool.acquire().await.unwrap();
    conn.batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();
    // Idle past the deadline of the statement above: its timer goes off unused. A real
    // timer on a real socket (tokio's paused time cannot run beside real I/O), so the
    // test awaits its firing.
    conn.idle_statement_deadline_passed().await;
    let started = Instant::now();
    let err = conn.query("SELECT pg_sleep(60)", &[]).await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, DbError::Unavailable { .. }), "{err:?}");
    assert!(
        waited >= deadline,
        "gave up before the deadline: {waited:?}"
    );
    assert!(waited < deadline + Duration::from_secs(1), "{waited:?}");
    drop(conn);

    let conn = pool.acquire().await.unwrap();
    conn.batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();
    let started = Instant::now();
    let (first, second) = tokio::join!(
        conn.query("SELECT pg_sleep(60)", &[]),
        conn.query("SELECT pg_sleep(60)", &[]),
    );
    let waited = started.elapsed();
    for result in [first, second] {
        let err = result.unwrap_err();
        assert!(matches!(err, DbError::Unavailable { .. }), "{err:?}");
        assert!(
            err.to_string().contains("client-side statement deadline"),
            "{err}"
        );
    }
    assert!(
        waited >= deadline,
        "gave up before the deadline: {waited:?}"
    );
    assert!(waited < deadline + Duration::from_secs(1), "{waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_whose_caller_stops_waiting_is_cancelled_on_the_server() {
    let test_db = TestDatabase::create().await;
    // Far longer than the test: only a cancel can end the statement in time.
    let config = DbConfig {
        statement_timeout: Duration::from_secs(60),
        ..DbConfig::default()
    };
    let (_database, pool) = pg_database(&test_db, config).await;
    let observer = test_db.client().await;
    let conn = pool.acquire().await.unwrap();
    let pid = backend_pid(&conn).await;

    // As a request deadline above the database layer does: the future is dropped.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        conn.query("SELECT pg_sleep(60)", &[]),
    )
    .await;
    assert!(abandoned.is_err(), "pg_sleep(60) answered within 300 ms");
    until_backend_stops(&observer, pid, Duration::from_secs(5)).await;

    drop(conn);
    let next = pool.acquire().await.unwrap();
    let next_pid = backend_pid(&next).await;
    assert_ne!(next_pid, pid, "the abandoned session must not be reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_answered_in_time_leaves_its_session_reusable() {
    let test_db = TestDatabase::create().await;
    let (_database, pool) = pg_database(&test_db, DbConfig::default()).await;
    let first = backend_pid(&pool.acquire().await.unwrap()).await;
    let second = backend_pid(&pool.acquire().await.unwrap()).await;
    assert_eq!(first, second, "a pool of one idle session reuses it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_is_unavailable_not_an_exhausted_pool() {
    let test_db = TestDatabase::create().await;
    let proxy = kamiyo_testkit::FaultProxy::start(test_db.server_addr()).await;
    let config = DbConfig {
        url: kamiyo_db::DatabaseUrl::new(proxy.url_through(test_db.url())),
        // Every checkout is checked: the idle session's check meets the black hole.
        liveness_check_after: Duration::ZERO,
        connect_timeout: Duration::from_secs(5),
        ..DbConfig::default()
    };
    let database = Database::open(config).await.unwrap();
    let Pool::Postgres(pool) = database.primary().clone() else {
        panic!("a postgres:// URL must give a PostgreSQL pool");
    };
    drop(pool.acquire().await.unwrap());

    proxy.set_mode(kamiyo_testkit::FaultMode::BlackHole).await;
    let deadline = Duration::from_millis(400);
    for what in ["checking the idle session", "opening a new session"] {
        let started = Instant::now();
        let err = match pool.acquire_within(deadline).await {
            Err(err) => err,
            Ok(_) => panic!("{what}: a session through a black hole"),
        };
        let waited = started.elapsed();
        assert!(
            matches!(err, DbError::Unavailable { .. }),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains("did not answer"), "{what}: {err}");
        assert!(
            waited < deadline + Duration::from_secs(1),
            "{what}: {waited:?}"
        );
    }
    assert_eq!(pool.state().open, 0, "{:?}", pool.state());

    proxy.set_mode(kamiyo_testkit::FaultMode::Pass).await;
    let conn = pool.acquire().await.unwrap();
    conn.query_one("SELECT 1", &[]).await.unwrap();
}
