//! The `kamiyo` executable as an operator runs it: real processes, real PostgreSQL and
//! SQLite files, signals.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kamiyo_testkit::{eventually, TestDatabase};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const KAMIYO: &str = env!("CARGO_BIN_EXE_kamiyo");

/// A `kamiyo` command that sees none of the developer's own configuration.
fn kamiyo(dir: &Path) -> Command {
    isolated(Command::new(KAMIYO), dir)
}

/// `command` in `dir`, without the developer's configuration in its environment, and
/// with fetching on schedule off: nothing in the tests reaches the internet (the test
/// of the scheduler in `serve` turns it on for a loopback source).
fn isolated(mut command: Command, dir: &Path) -> Command {
    command.current_dir(dir).env("RUST_LOG", "info");
    for (key, _) in std::env::vars() {
        if key.starts_with("KAMIYO_") || key == "DATABASE_URL" {
            command.env_remove(key);
        }
    }
    command.env("KAMIYO_SOURCES_ENABLED", "false");
    command
}

fn output(command: &mut Command) -> Output {
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A minimal HTTP/1.1 GET: status code and body.
async fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// A `kamiyo serve --log-format json` process and its log, read as it is written (so the
/// server never blocks on a full pipe, and a test can await what it logs).
struct Server {
    child: tokio::process::Child,
    addr: String,
    /// What it logged before listening.
    startup: Vec<serde_json::Value>,
    log: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
}

impl Server {
    /// Starts `command` without waiting for it: see [`Server::listening`].
    fn spawn(command: Command) -> Server {
        let mut child = tokio::process::Command::from(command)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (events, log) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(event) = serde_json::from_str(&line) {
                    let _ = events.send(event);
                }
            }
        });
        Server {
            child,
            addr: String::new(),
            startup: Vec::new(),
            log,
        }
    }

    /// Waits until the server says where it listens.
    async fn listening(&mut self) -> &str {
        let startup = &mut self.startup;
        let log = &mut self.log;
        self.addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(event) = log.recv().await {
                if event["fields"]["message"] == "listening" {
                    return event["fields"]["addr"].as_str().unwrap().to_owned();
                }
                startup.push(event);
            }
            panic!("the server exited before listening: {startup:?}");
        })
        .await
        .expect("the server did not start listening within 30s");
        &self.addr
    }

    /// Waits until the server logs `message`.
    async fn logged(&mut self, message: &str) -> serde_json::Value {
        let log = &mut self.log;
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(event) = log.recv().await {
                if event["fields"]["message"] == message {
                    return event;
                }
            }
            panic!("the server exited without logging {message:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("the server did not log {message:?} within 30s"))
    }

    fn terminate(&self) {
        terminate(self.child.id().unwrap());
    }

    /// Waits for the process to end, within `limit`.
    async fn exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("kamiyo did not stop within {limit:?}"))
            .unwrap()
    }

    /// The one event it logged as `message` before listening.
    fn startup_event(&self, message: &str) -> &serde_json::Value {
        let mut found = self
            .startup
            .iter()
            .filter(|event| event["fields"]["message"] == message);
        let event = found
            .next()
            .unwrap_or_else(|| panic!("{message:?} not logged at startup: {:?}", self.startup));
        assert!(found.next().is_none(), "{message:?} logged twice");
        event
    }

    /// How many times it logged `message` before listening.
    fn logged_at_startup(&self, message: &str) -> usize {
        self.startup
            .iter()
            .filter(|event| event["fields"]["message"] == message)
            .count()
    }
}

/// `kamiyo serve` on a free port with a JSON log.
fn serve(dir: &Path) -> Command {
    let mut command = kamiyo(dir);
    command.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]);
    command
}

fn terminate(pid: u32) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_configuration_uses_a_sqlite_file_in_the_working_directory_and_stops_cleanly_on_sigterm(
) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::spawn(serve(dir.path()));
    let addr = server.listening().await.to_owned();

    let (status, body) = http_get(&addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = http_get(&addr, "/api/health/database").await;
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["backend"], "sqlite");
    assert_eq!(
        health["schema_version"],
        kamiyo_store::MIGRATIONS.sqlite.last().unwrap().version
    );
    assert!(dir.path().join("kamiyo.db").is_file());

    server.terminate();
    let exit = server.exit(Duration::from_secs(30)).await;
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_raises_its_open_file_limit_to_the_hard_one_and_fits_the_connection_cap_under_it() {
    let dir = tempfile::tempdir().unwrap();
    // Soft limit 256, hard limit 512: the default cap (4,096) cannot fit either.
    let mut command = Command::new("sh");
    command.args([
        "-c",
        r#"ulimit -Sn 256 && ulimit -Hn 512 && exec "$0" "$@""#,
        KAMIYO,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ]);
    let mut server = Server::spawn(isolated(command, dir.path()));
    let addr = server.listening().await.to_owned();

    let limit = server.startup_event("open-file limit");
    assert_eq!(
        (&limit["fields"]["before"], &limit["fields"]["after"]),
        (&"256".into(), &"512".into()),
        "{limit}"
    );
    let lowered = server.startup_event("server.max_connections lowered to fit the open-file limit");
    assert_eq!(lowered["level"], "WARN", "{lowered}");
    let fields = &lowered["fields"];
    assert_eq!(fields["configured"], 4096, "{lowered}");
    assert_eq!(
        fields["max_connections"].as_u64().unwrap() + fields["reserve"].as_u64().unwrap(),
        512,
        "{lowered}"
    );
    let (status, _) = http_get(&addr, "/healthz").await;
    assert_eq!(status, 200);
    server.terminate();
    let exit = server.exit(Duration::from_secs(30)).await;
    assert!(exit.success(), "exit status {exit:?}");
}

/// Sessions of `application_name = 'kamiyo'` open on the test's database.
async fn kamiyo_sessions(pg: &TestDatabase, condition: &str) -> i64 {
    pg.admin_client()
        .await
        .query_one(
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                 AND application_name = 'kamiyo' {condition}"
            ),
            &[&pg.name()],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits until `kamiyo_sessions(pg, condition)` satisfies `expected`. What PostgreSQL's
/// backends do is only visible in pg_stat_activity, with no event to await, so this polls
/// it, up to 10 s, and fails showing every session of the database.
async fn until_sessions(pg: &TestDatabase, condition: &str, expected: fn(i64) -> bool) {
    let what = format!("the expected number of kamiyo sessions {condition}");
    eventually(&what, Duration::from_secs(10), || async move {
        let found = kamiyo_sessions(pg, condition).await;
        if expected(found) {
            return Ok(());
        }
        let rows = pg
            .admin_client()
            .await
            .query(
                "SELECT application_name, state, coalesce(wait_event_type, ''), coalesce(wait_event, ''), query FROM pg_stat_activity WHERE datname = $1",
                &[&pg.name()],
            )
            .await
            .unwrap();
        let sessions: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{} {:?} {} {} {}",
                    r.get::<_, String>(0),
                    r.get::<_, Option<String>>(1),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3),
                    r.get::<_, String>(4)
                )
            })
            .collect();
        Err((found, sessions))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_refuses_new_connections_finishes_the_request_in_flight_closes_the_pool_and_exits_0(
) {
    let pg = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve(dir.path());
    command
        .args(["--database-url", pg.url()])
        .env("KAMIYO_SERVER_DRAIN_TIMEOUT", "20s");
    let mut server = Server::spawn(command);
    let addr = server.listening().await.to_owned();

    // A slow request: its listing (and its count, on a second session) waits for a lock
    // the test holds.
    let locker = pg.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE exploits IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let in_flight = {
        let addr = addr.clone();
        tokio::spawn(async move { http_get(&addr, "/api/exploits?limit=3").await })
    };
    until_sessions(&pg, "AND wait_event_type = 'Lock'", |n| n >= 1).await;

    server.terminate();
    server
        .logged("listener closed: new connections are refused")
        .await;
    let refused = tokio::net::TcpStream::connect(&addr).await;
    assert!(
        refused.is_err(),
        "a new connection was accepted after SIGTERM"
    );
    if in_flight.is_finished() {
        panic!(
            "the slow request ended early: {:?}",
            in_flight.await.unwrap()
        );
    }

    locker.batch_execute("ROLLBACK").await.unwrap();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(page.is_object(), "{page}");

    let exit = server.exit(Duration::from_secs(20)).await;
    assert!(exit.success(), "exit status {exit:?}");
    let stopped = server.logged("stopped").await;
    assert_eq!(stopped["fields"]["drained"], true, "{stopped}");
    // The backends end as the server reads the sessions' ends; none may be left.
    until_sessions(&pg, "", |n| n == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_migrate_processes_started_at_once_on_one_empty_postgres_database_migrate_it_once() {
    let pg = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<Child> = (0..8)
        .map(|_| {
            kamiyo(dir.path())
                .args(["migrate", "--database-url", pg.url()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a migrate process failed: {}",
            text(&out.stderr)
        );
    }
    let client = pg.client().await;
    let rows = client
        .query("SELECT version FROM kamiyo_schema_migrations", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), kamiyo_store::MIGRATIONS.postgres.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_serve_processes_started_at_once_on_one_empty_postgres_database_all_serve_it_migrated_once(
) {
    let pg = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut servers: Vec<Server> = (0..8)
        .map(|_| {
            let mut command = serve(dir.path());
            command.args(["--database-url", pg.url()]);
            Server::spawn(command)
        })
        .collect();
    let latest = kamiyo_store::MIGRATIONS.postgres.last().unwrap().version;
    for server in &mut servers {
        let addr = server.listening().await.to_owned();
        let (status, body) = http_get(&addr, "/api/health/database").await;
        assert_eq!(status, 200, "{body}");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["schema_version"], latest, "{health}");
    }

    let rows = pg
        .client()
        .await
        .query("SELECT version FROM kamiyo_schema_migrations", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), kamiyo_store::MIGRATIONS.postgres.len());
    let applying: Vec<usize> = servers
        .iter()
        .map(|server| server.logged_at_startup("applying migration"))
        .collect();
    assert_eq!(
        applying.iter().filter(|&&n| n > 0).count(),
        1,
        "migrations applied per process: {applying:?}"
    );
    assert_eq!(
        applying.iter().sum::<usize>(),
        kamiyo_store::MIGRATIONS.postgres.len(),
        "{applying:?}"
    );
    assert_eq!(pg.advisory_locks_held().await, 0);

    for server in &servers {
        server.terminate();
    }
    for server in &mut servers {
        let exit = server.exit(Duration::from_secs(30)).await;
        assert!(exit.success(), "exit status {exit:?}");
    }
}

#[test]
fn two_migrate_processes_on_one_sqlite_file_migrate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<Child> = (0..2)
        .map(|_| {
            kamiyo(dir.path())
                .args(["migrate"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let applied_lines = outputs
        .iter()
        .map(|out| {
            text(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("applied migration"))
                .count()
        })
        .sum::<usize>();
    assert_eq!(applied_lines, kamiyo_store::MIGRATIONS.sqlite.len());
    let status = output(kamiyo(dir.path()).args(["migrate", "status"]));
    let listing = text(&status.stdout);
    let first = &kamiyo_store::MIGRATIONS.sqlite[0];
    assert!(listing.contains(&first.checksum()), "{listing}");
    assert!(listing.contains("applied"), "{listing}");
    assert!(!listing.contains("pending"), "{listing}");
}

#[test]
fn migrate_status_on_an_empty_database_lists_every_migration_as_pending() {
    let dir = tempfile::tempdir().unwrap();
    let status = output(kamiyo(dir.path()).args(["migrate", "status"]));
    assert!(status.status.success(), "{}", text(&status.stderr));
    let listing = text(&status.stdout);
    assert_eq!(
        listing.matches("pending").count(),
        kamiyo_store::MIGRATIONS.sqlite.len(),
        "{listing}"
    );
}

#[test]
fn an_unreachable_database_stops_start_up_quickly_without_showing_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = output(kamiyo(dir.path()).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "postgres://kamiyo:hunter2@127.0.0.1:1/kamiyo",
    ]));
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(20));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot open the database") || stderr.contains("cannot migrate"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "password leaked: {stderr}");
}

#[test]
fn config_prints_the_effective_settings_with_the_password_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let out = output(
        kamiyo(dir.path())
            .env(
                "DATABASE_URL",
                "postgres://kamiyo:hunter2@db.internal/kamiyo",
            )
            .env("KAMIYO_DATABASE_POOL_MAX_SIZE", "4")
            .arg("config"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("pool_max_size = 4"), "{shown}");
    assert!(
        shown.contains("postgres://kamiyo:***@db.internal/kamiyo"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

/// Only URLs are accepted, but an operator used to libpq may set the keyword form.
#[test]
fn a_keyword_form_database_url_is_refused_without_showing_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = "host=db.internal user=kamiyo password='hunter2 and more'";
    for command in ["config", "migrate"] {
        let out = output(kamiyo(dir.path()).env("DATABASE_URL", url).arg(command));
        assert!(!out.status.success(), "{command}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("host=db.internal user=kamiyo password=***"),
            "{command}: {stderr}"
        );
        assert!(
            !stderr.contains("hunter2") && !stderr.contains("more"),
            "{command}: password leaked: {stderr}"
        );
    }
}

#[test]
fn config_prints_the_tier_table_and_start_up_refuses_one_that_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = output(
        kamiyo(dir.path())
            .env("KAMIYO_TIERS_ANONYMOUS_DELAY", "0s")
            .env("KAMIYO_TIERS_ANONYMOUS_HISTORY", "all")
            .env("KAMIYO_TIERS_FREE_DELAY", "0s")
            .env("KAMIYO_TIERS_FREE_HISTORY", "all")
            .arg("config"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let anonymous = shown
        .split("[tiers.anonymous]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap_or_else(|| panic!("no [tiers.anonymous] in {shown}"));
    assert!(
        anonymous.contains("delay = \"0s\"") && anonymous.contains("history = \"all\""),
        "{anonymous}"
    );
    let free = shown
        .split("[tiers.free]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap_or_else(|| panic!("no [tiers.free] in {shown}"));
    assert!(free.contains("history = \"all\""), "{free}");

    let refused = output(
        kamiyo(dir.path())
            .env("KAMIYO_TIERS_PRO_PER_MINUTE", "0")
            .arg("config"),
    );
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("tiers.pro.per_minute"), "{stderr}");
}

#[test]
fn a_bad_environment_value_is_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = output(
        kamiyo(dir.path())
            .env("KAMIYO_SERVER_REQUEST_TIMEOUT", "soon")
            .arg("config"),
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("KAMIYO_SERVER_REQUEST_TIMEOUT"), "{stderr}");
}

#[test]
fn db_health_exits_0_on_a_healthy_database_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    assert!(output(kamiyo(dir.path()).arg("migrate")).status.success());
    let healthy = output(kamiyo(dir.path()).args(["db", "health", "--json"]));
    assert_eq!(healthy.status.code(), Some(0), "{}", text(&healthy.stderr));
    let report: serde_json::Value = serde_json::from_slice(&healthy.stdout).unwrap();
    assert_eq!(report["status"], "healthy");
    assert_eq!(report["pool"]["max_size"], 16);
}

#[test]
fn db_health_exits_2_on_an_unreachable_database_without_showing_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let down = output(kamiyo(dir.path()).args([
        "db",
        "health",
        "--database-url",
        "postgres://k:hunter2@127.0.0.1:1/k",
    ]));
    assert_eq!(down.status.code(), Some(2));
    let shown = text(&down.stdout);
    assert!(shown.contains("status: unhealthy"), "{shown}");
    assert!(!shown.contains("hunter2") && !text(&down.stderr).contains("hunter2"));
}

#[test]
fn fingerprints_are_the_same_in_two_processes_and_ignore_literal_values() {
    let dir = tempfile::tempdir().unwrap();
    let run = |sql: &str| text(&output(kamiyo(dir.path()).args(["db", "fingerprint", sql])).stdout);
    let first = run("SELECT * FROM exploits WHERE chain = 'ethereum' AND id IN (1, 2, 3)");
    let second = run("select *  from exploits where chain='bsc' and id in (9)");
    let id = |out: &str| out.lines().next().unwrap().to_owned();
    assert!(
        id(&first).starts_with("fingerprint: ") && id(&first).len() == "fingerprint: ".len() + 16,
        "{first}"
    );
    assert_eq!(id(&first), id(&second));
    assert_ne!(
        id(&first),
        id(&run("SELECT * FROM exploits WHERE protocol = 'x'"))
    );
    assert!(
        first.contains("normalized: select * from exploits where chain = ? and id in (...)"),
        "{first}"
    );
}

#[test]
fn import_reports_each_rejected_line_exits_1_and_a_second_import_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kamiyo-ingest/tests/fixtures/import.jsonl"
    );
    let first = output(kamiyo(dir.path()).args(["import", fixture]));
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stderr));
    let shown = text(&first.stdout);
    assert!(shown.contains("12 records: 6 inserted, 2 merged into existing incidents, 0 updated, 0 unchanged, 4 rejected"), "{shown}");
    assert!(
        shown.contains("rejected line 9: loss_usd: must not be negative"),
        "{shown}"
    );

    let second = output(kamiyo(dir.path()).args(["import", fixture, "--json"]));
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        (report["inserted"].as_u64(), report["unchanged"].as_u64()),
        (Some(0), Some(8)),
        "{report}"
    );
}

#[test]
fn user_key_and_payment_commands_manage_accounts_and_print_the_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let ok = |args: &[&str]| {
        let out = output(kamiyo(dir.path()).args(args));
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    assert!(ok(&[
        "user",
        "create",
        "--email",
        "ops@example.com",
        "--tier",
        "pro"
    ])
    .contains("tier pro"));
    let key = ok(&["key", "create", "--user", "ops@example.com", "--name", "ci"])
        .trim()
        .to_owned();
    assert!(key.starts_with("kmy_") && key.len() == 68, "{key}");
    let listing = ok(&["key", "list"]);
    assert!(
        listing.contains(&key[..12]) && !listing.contains(&key),
        "the key is never shown again: {listing}"
    );
    assert!(ok(&[
        "user",
        "set-tier",
        "ops@example.com",
        "team",
        "--reason",
        "upgrade"
    ])
    .contains("tier team"));
    assert!(ok(&[
        "payment",
        "record",
        "--user",
        "ops@example.com",
        "--amount",
        "99.00"
    ])
    .contains("recorded"));
    assert!(ok(&["key", "revoke", &key[..12]]).contains("revoked"));
    assert!(ok(&["user", "disable", "ops@example.com"]).contains("disabled"));
    assert!(ok(&["user", "list"]).contains("false"));
    let bad = output(kamiyo(dir.path()).args([
        "user",
        "create",
        "--email",
        "x@example.com",
        "--tier",
        "gold",
    ]));
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("tier"), "{}", text(&bad.stderr));
}

/// A working directory holding the import fixture's SQLite database (two sources).
fn imported() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kamiyo-ingest/tests/fixtures/import.jsonl"
    );
    // Exit code 1: the fixture has rejected lines on purpose.
    output(kamiyo(dir.path()).args(["import", fixture]));
    dir
}

#[test]
fn incidents_remerge_reports_what_it_would_change_and_a_current_database_needs_nothing() {
    let dir = imported();
    let dry = output(kamiyo(dir.path()).args(["incidents", "remerge", "--dry-run", "--json"]));
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    // The fixture's 8 stored claims, imported under the current rule: nothing to change.
    assert_eq!(report["claims"], 8, "{report}");
    assert_eq!(
        report["incidents_before"], report["incidents_after"],
        "{report}"
    );
    assert_eq!(report["merges"], serde_json::json!([]), "{report}");
    assert_eq!(report["applied"], false, "{report}");

    let applied = output(kamiyo(dir.path()).args(["incidents", "remerge"]));
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let shown = text(&applied.stdout);
    assert!(
        shown.contains("8 claims: 6 incidents before, 6 after; 0 merges, 0 splits, 0 rewritten, 0 removed (changed nothing in the database)"),
        "{shown}"
    );
}

#[test]
fn a_curator_merges_and_splits_incidents_and_adds_an_alias_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ronin.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"source": "defillama", "protocol": "Ronin Network", "chain": "Ethereum", "date": "2022-03-23", "loss_usd": 624000000}"#,
            "\n",
            r#"{"source": "rekt", "protocol": "Axie Infinity", "chain": "Ethereum", "date": "2022-03-29", "loss_usd": 625000000}"#,
            "\n",
        ),
    )
    .unwrap();
    let imported = output(kamiyo(dir.path()).args(["import", file.to_str().unwrap()]));
    assert!(imported.status.success(), "{}", text(&imported.stderr));

    let refused =
        output(kamiyo(dir.path()).args(["incident", "merge", "1", "999", "--reason", "one hack"]));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("incidents: incident 999 does not exist"),
        "{}",
        text(&refused.stderr)
    );

    let merged = output(kamiyo(dir.path()).args([
        "incident",
        "merge",
        "2",
        "1",
        "--reason",
        "Ronin is Axie Infinity's bridge",
        "--json",
    ]));
    assert!(merged.status.success(), "{}", text(&merged.stderr));
    let done: serde_json::Value = serde_json::from_slice(&merged.stdout).unwrap();
    assert_eq!(done["decision"], 1, "{done}");
    assert_eq!(done["report"]["merges"][0]["into"], 1, "{done}");
    assert_eq!(
        done["report"]["merges"][0]["from"],
        serde_json::json!([2]),
        "{done}"
    );

    let split = output(kamiyo(dir.path()).args([
        "incident",
        "split",
        "1",
        "--claims",
        "2",
        "--reason",
        "taken back",
        "--json",
    ]));
    assert!(split.status.success(), "{}", text(&split.stderr));
    let done: serde_json::Value = serde_json::from_slice(&split.stdout).unwrap();
    assert_eq!(done["report"]["splits"][0]["from"], 1, "{done}");

    let added = output(kamiyo(dir.path()).args([
        "protocol",
        "alias",
        "add",
        "Axie Infinity",
        "Ronin Network",
        "--reason",
        "Ronin is Axie's bridge",
    ]));
    assert!(added.status.success(), "{}", text(&added.stderr));
    let listed = output(kamiyo(dir.path()).args(["protocol", "alias", "list", "--json"]));
    let aliases: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(aliases[0]["alias"], "Ronin Network", "{aliases}");
    assert!(
        aliases[0]["added_by"].as_str().unwrap().starts_with("cli:"),
        "{aliases}"
    );
    let again = output(kamiyo(dir.path()).args([
        "protocol",
        "alias",
        "add",
        "Axie Infinity",
        "Ronin Network",
        "--reason",
        "twice",
    ]));
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stdout));
    assert!(
        text(&again.stderr).contains("already"),
        "{}",
        text(&again.stderr)
    );
}

/// `kamiyo source list --json`: (source, active, fetches in the window) of each.
fn sources(dir: &Path) -> Vec<(String, Option<bool>, Option<i64>)> {
    let out = output(kamiyo(dir).args(["source", "list", "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sources: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    sources
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["source"].as_str().unwrap_or_default().to_owned(),
                s["active"].as_bool(),
                s["fetches_in_window"].as_i64(),
            )
        })
        .collect()
}

#[test]
fn source_list_shows_each_source_of_an_import_with_one_fetch() {
    let dir = imported();
    assert_eq!(
        sources(dir.path()),
        [
            ("alpha-feed".to_owned(), Some(true), Some(1)),
            ("beta-feed".to_owned(), Some(true), Some(1))
        ]
    );
    let table = output(kamiyo(dir.path()).args(["source", "list"]));
    assert!(
        text(&table.stdout).contains("alpha-feed") && text(&table.stdout).contains("100.00%"),
        "{}",
        text(&table.stdout)
    );
}

#[test]
fn a_source_disabled_from_the_command_line_is_inactive_until_enabled() {
    let dir = imported();
    let disabled = output(kamiyo(dir.path()).args(["source", "disable", "beta-feed"]));
    assert!(
        text(&disabled.stdout).contains("source beta-feed disabled"),
        "{}",
        text(&disabled.stderr)
    );
    assert_eq!(sources(dir.path())[1].1, Some(false));
    let enabled = output(kamiyo(dir.path()).args(["source", "enable", "beta-feed"]));
    assert!(enabled.status.success(), "{}", text(&enabled.stderr));
    assert_eq!(sources(dir.path())[1].1, Some(true));
}

#[test]
fn disabling_an_unknown_source_fails_naming_it() {
    let dir = imported();
    let unknown = output(kamiyo(dir.path()).args(["source", "disable", "no-such-feed"]));
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("no source named \"no-such-feed\""),
        "{}",
        text(&unknown.stderr)
    );
}

/// `command` knowing `mirror`, a `defillama-api` source of one's own at `url`.
fn with_mirror(command: &mut Command, url: String) -> &mut Command {
    command
        .env("KAMIYO_SOURCES_MIRROR_URL", url)
        .env("KAMIYO_SOURCES_MIRROR_FORMAT", "defillama-api")
}

/// `command` fetching on schedule only `mirror` (the built-in sources off: the tests
/// never reach the internet), once an hour.
fn fetching_only_mirror(command: &mut Command, url: String) -> &mut Command {
    with_mirror(command, url)
        .env("KAMIYO_SOURCES_ENABLED", "true")
        .env("KAMIYO_SOURCES_DEFILLAMA_ENABLED", "false")
        .env("KAMIYO_SOURCES_DEFIHACKLABS_ENABLED", "false")
        .env("KAMIYO_SOURCES_REKT_ENABLED", "false")
        .env("KAMIYO_SOURCES_MIRROR_INTERVAL", "1h")
}

/// `kamiyo source fetch` on a source of one's own served from loopback: its records are
/// imported and the fetch shows in `source list`; a source answering HTML fails with
/// exit code 1 naming what was expected; an unknown name lists the configured ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_fetch_imports_a_configured_source_once_and_a_changed_format_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let sample = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kamiyo-ingest/tests/fixtures/defillama_api_sample.json"
    ))
    .unwrap();
    let server = kamiyo_testkit::FixtureServer::start(kamiyo_testkit::Reply::json(sample)).await;
    let fetch = |name: &'static str| {
        let mut command = kamiyo(dir.path());
        with_mirror(&mut command, server.url("/hacks")).args(["source", "fetch", name, "--json"]);
        command
    };
    let fetched = tokio::task::spawn_blocking({
        let mut command = fetch("mirror");
        move || command.output().unwrap()
    })
    .await
    .unwrap();
    assert!(fetched.status.success(), "{}", text(&fetched.stderr));
    let outcome: serde_json::Value = serde_json::from_slice(&fetched.stdout).unwrap();
    assert_eq!(outcome["outcome"], "imported", "{outcome}");
    assert_eq!(outcome["report"]["inserted"], 3, "{outcome}");
    assert!(sources(dir.path())
        .iter()
        .any(|(name, _, fetches)| name == "mirror" && *fetches == Some(1)));

    server.answer_with(kamiyo_testkit::Reply::Body {
        body: b"<html>maintenance</html>".to_vec(),
        content_type: "text/html",
        etag: None,
        last_modified: None,
    });
    let failed = tokio::task::spawn_blocking({
        let mut command = fetch("mirror");
        move || command.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        text(&failed.stderr).contains("HTML or XML, not JSON"),
        "{}",
        text(&failed.stderr)
    );

    // Health: the mirror's last success is recent (the failure since does not make it
    // stale); a built-in source never fetched is stale, and the exit code says so.
    let health = |builtins: bool| {
        let mut command = kamiyo(dir.path());
        with_mirror(&mut command, server.url("/hacks")).args(["source", "health", "--json"]);
        if !builtins {
            for name in ["DEFILLAMA", "DEFIHACKLABS", "REKT"] {
                command.env(format!("KAMIYO_SOURCES_{name}_ENABLED"), "false");
            }
        }
        output(&mut command)
    };
    let listed = output(
        with_mirror(&mut kamiyo(dir.path()), server.url("/hacks"))
            .args(["source", "list", "--json"]),
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let mirror = listed
        .as_array()
        .and_then(|all| all.iter().find(|s| s["source"] == "mirror").cloned())
        .unwrap();
    assert_eq!(mirror["stale"], false, "{mirror}");
    let fresh = health(false);
    assert_eq!(fresh.status.code(), Some(0), "{}", text(&fresh.stdout));
    let fresh: serde_json::Value = serde_json::from_slice(&fresh.stdout).unwrap();
    assert_eq!(fresh["status"], "healthy", "{fresh}");
    assert_eq!(fresh["sources"][0]["consecutive_failures"], 1, "{fresh}");
    let stale = health(true);
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale.stdout));
    let stale: serde_json::Value = serde_json::from_slice(&stale.stdout).unwrap();
    assert_eq!(
        (
            &stale["sources"][0]["source"],
            &stale["sources"][0]["stale"]
        ),
        (&serde_json::json!("defillama"), &serde_json::json!(true))
    );

    let unknown = output(kamiyo(dir.path()).args(["source", "fetch", "nowhere"]));
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("defillama, defihacklabs, rekt"),
        "{}",
        text(&unknown.stderr)
    );
}

/// `kamiyo serve` fetches the configured sources on schedule (the built-in ones turned
/// off here: the tests never reach the internet): a loopback source of one's own is
/// fetched without any command, and `GET /api/sources` shows its fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_fetches_the_configured_sources_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let sample = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kamiyo-ingest/tests/fixtures/defillama_api_sample.json"
    ))
    .unwrap();
    let source = kamiyo_testkit::FixtureServer::start(kamiyo_testkit::Reply::json(sample)).await;
    let mut command = serve(dir.path());
    fetching_only_mirror(&mut command, source.url("/hacks"));
    let mut server = Server::spawn(command);
    let addr = server.listening().await.to_owned();
    let mirror = eventually("the mirror fetched", Duration::from_secs(20), || {
        let addr = addr.clone();
        async move {
            let (_, body) = http_get(&addr, "/api/sources").await;
            let sources: serde_json::Value =
                serde_json::from_str(&body).map_err(|_| body.clone())?;
            sources
                .as_array()
                .and_then(|all| all.iter().find(|s| s["source"] == "mirror").cloned())
                .filter(|s| s["fetches_in_window"] == 1)
                .ok_or(body)
        }
    })
    .await;
    // An anonymous caller sees no 2024 incident (its tier's history window), so the
    // fetch's own record is what shows: three records read, none failed.
    assert_eq!(
        (&mirror["records_last_fetch"], &mirror["success_rate_pct"]),
        (&serde_json::json!(3), &serde_json::json!(100.0)),
        "{mirror}"
    );
    assert_eq!(source.requests(), 1);
    server.terminate();
    assert!(server.exit(Duration::from_secs(30)).await.success());
}

/// Two `kamiyo serve` processes on one PostgreSQL database: the first claims the slot of
/// a slow source and is killed (SIGKILL) mid-fetch; the second takes the slot over once
/// its lease has run out (attempt 2) and fetches it, so the slot is fetched to the end
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_process_killed_mid_fetch_leaves_its_slot_to_another_after_the_lease() {
    let pg = TestDatabase::create().await;
    let sample = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kamiyo-ingest/tests/fixtures/defillama_api_sample.json"
    ))
    .unwrap();
    let source = kamiyo_testkit::FixtureServer::start(kamiyo_testkit::Reply::json(sample)).await;
    // The first request hangs (a body trickling for far longer than the test) so that
    // the first process is mid-fetch when it is killed.
    source.script([kamiyo_testkit::Reply::Slow {
        body: vec![b' '; 64],
        chunk: 1,
        pause: Duration::from_secs(60),
    }]);
    let start = |dir: &Path| {
        let mut command = serve(dir);
        fetching_only_mirror(&mut command, source.url("/hacks"))
            .env("DATABASE_URL", pg.url())
            .env("KAMIYO_SOURCES_MIN_LEASE", "2s")
            // One attempt of at most 1 s, a fetch of at most 4 s: a lease of 8 s.
            .env("KAMIYO_SOURCES_MIRROR_TIMEOUT", "1s");
        Server::spawn(command)
    };
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut first = start(first_dir.path());
    first.listening().await;
    eventually(
        "the first process fetching",
        Duration::from_secs(20),
        || async {
            (source.requests() >= 1)
                .then_some(())
                .ok_or(source.requests())
        },
    )
    .await;
    let killed = Command::new("kill")
        .args(["-KILL", &first.child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = first.exit(Duration::from_secs(10)).await;

    let mut second = start(second_dir.path());
    let addr = second.listening().await.to_owned();
    let slots = tokio_postgres::connect(pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(slots.1);
    let client = slots.0;
    let slot = eventually(
        "the slot taken over and fetched",
        Duration::from_secs(30),
        || {
            let client = &client;
            async move {
                let row = client
                .query_opt(
                    "SELECT attempt, outcome FROM source_fetch_slots WHERE source_name = 'mirror'",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
                match row {
                    Some(row) if row.get::<_, Option<String>>(1).is_some() => {
                        Ok((row.get::<_, i32>(0), row.get::<_, Option<String>>(1)))
                    }
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    assert_eq!(slot, (2, Some("succeeded".to_owned())));
    let (_, body) = http_get(&addr, "/api/sources").await;
    let sources: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mirror = sources
        .as_array()
        .and_then(|all| all.iter().find(|s| s["source"] == "mirror").cloned())
        .unwrap();
    assert_eq!(
        mirror["fetches_in_window"], 1,
        "only the finished fetch is recorded: {mirror}"
    );
    second.terminate();
    assert!(second.exit(Duration::from_secs(30)).await.success());
}

/// SIGTERM while a fetch is under way: `kamiyo serve` stops promptly and cleanly (the
/// fetch is cut off, nothing of it is written), and the slot is left unfinished for the
/// next claim to take over once its lease has run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_fetch_stops_serve_cleanly_and_writes_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let source = kamiyo_testkit::FixtureServer::start(kamiyo_testkit::Reply::Slow {
        body: vec![b' '; 64],
        chunk: 1,
        pause: Duration::from_secs(60),
    })
    .await;
    let mut command = serve(dir.path());
    fetching_only_mirror(&mut command, source.url("/hacks"))
        .env("KAMIYO_SOURCES_MIRROR_TIMEOUT", "30s");
    let mut server = Server::spawn(command);
    server.listening().await;
    eventually("the fetch under way", Duration::from_secs(20), || async {
        (source.requests() >= 1)
            .then_some(())
            .ok_or(source.requests())
    })
    .await;
    server.terminate();
    let exit = server.exit(Duration::from_secs(30)).await;
    assert!(exit.success(), "exit status {exit:?}");

    let listed = output(kamiyo(dir.path()).args(["source", "list", "--json"]));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let mirror = listed
        .as_array()
        .and_then(|all| all.iter().find(|s| s["source"] == "mirror").cloned())
        .unwrap_or_default();
    // The slot's claim registered the source; no fetch of it was recorded.
    assert_eq!(mirror["fetches_in_window"], 0, "{listed}");
    assert_eq!(mirror["claims"], 0, "{listed}");
    assert!(
        mirror["last_attempt_at"].is_string(),
        "the claim is its attempt: {listed}"
    );
}

/// SIGTERM while a large fetch is being ingested: what is stored is whole batches (each
/// batch is one transaction; 100,000 records are 100 full batches of 1,000), and the
/// next fetch of the same body completes the import without a second copy of anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_large_ingest_leaves_whole_batches_and_the_next_fetch_completes_it() {
    const RECORDS: i64 = 100_000;
    const BATCH: i64 = kamiyo_ingest::DEFAULT_BATCH_SIZE as i64;
    let pg = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let body: String = (0..RECORDS)
        .map(|i| {
            format!(
                "{{\"protocol\": \"Bulkfi {i}\", \"chain\": \"Ethereum\", \"date\": \"2024-01-{:02}\", \"loss_usd\": {}}}\n",
                1 + i % 28,
                1_000 + i
            )
        })
        .collect();
    let source = kamiyo_testkit::FixtureServer::start(kamiyo_testkit::Reply::Body {
        body: body.into_bytes(),
        content_type: "application/x-ndjson",
        etag: None,
        last_modified: None,
    })
    .await;
    let configure = |command: &mut Command| {
        with_mirror(command, source.url("/bulk.jsonl"))
            .env("KAMIYO_SOURCES_MIRROR_FORMAT", "jsonl")
            .env("DATABASE_URL", pg.url());
    };
    let mut command = serve(dir.path());
    fetching_only_mirror(&mut command, source.url("/bulk.jsonl"));
    configure(&mut command);
    let mut server = Server::spawn(command);
    server.listening().await;

    let (client, connection) = tokio_postgres::connect(pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let claims = || async {
        client
            .query_one("SELECT count(*) FROM exploit_sources", &[])
            .await
            .map(|row| row.get::<_, i64>(0))
            .map_err(|e| e.to_string())
    };
    eventually(
        "the first batch stored",
        Duration::from_secs(60),
        || async {
            let stored = claims().await?;
            (stored > 0).then_some(()).ok_or(stored.to_string())
        },
    )
    .await;
    server.terminate();
    let exit = server.exit(Duration::from_secs(30)).await;
    assert!(exit.success(), "exit status {exit:?}");
    let stored = claims().await.unwrap();
    assert!(
        stored > 0 && stored < RECORDS,
        "SIGTERM came mid-ingest: {stored} of {RECORDS} stored"
    );
    assert_eq!(stored % BATCH, 0, "{stored} claims: a batch was cut");

    let mut again = kamiyo(dir.path());
    configure(&mut again);
    let fetched = output(again.args(["source", "fetch", "mirror", "--json"]));
    assert!(fetched.status.success(), "{}", text(&fetched.stderr));
    let report: serde_json::Value = serde_json::from_slice(&fetched.stdout).unwrap();
    assert_eq!(
        (
            &report["report"]["inserted"],
            &report["report"]["unchanged"]
        ),
        (
            &serde_json::json!(RECORDS - stored),
            &serde_json::json!(stored)
        ),
        "{report}"
    );
    assert_eq!(claims().await.unwrap(), RECORDS);
    let incidents: i64 = client
        .query_one("SELECT count(*) FROM exploits", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(incidents, RECORDS);
}
