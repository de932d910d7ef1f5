//! The API contract, fuzzed: schemathesis reads the OpenAPI document of a running
//! `kamiyo serve` on a fresh PostgreSQL database, generates requests that match it and
//! requests that break it, and checks every answer against it (status codes, headers,
//! bodies, content types; valid input accepted, invalid input refused; operations that
//! declare authentication refuse a request without it). Three callers: an admin (whose
//! generated bodies reach the store through `POST /api/exploits`), an anonymous caller
//! and a wrong key.
//!
//! schemathesis comes from PyPI: `scripts/test` installs the pinned version into a virtual
//! environment under `target/` and names its `st` in `KAMIYO_SCHEMATHESIS`. What JSON
//! Schema cannot say is in `tests/schemathesis/` (a hook that gives valid test cases a real
//! cursor, and the one check setting that tells 422 rules apart; both say why).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kamiyo_testkit::TestDatabase;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const KAMIYO: &str = env!("CARGO_BIN_EXE_kamiyo");
const ADMIN_TOKEN: &str = "schemathesis-admin-token-0123456789";
/// A seed makes a run reproducible: the same document and server give the same requests.
const SEED: &str = "1";
/// Test cases per operation and phase. The admin run's POSTs reach the store at this
/// number (checked below); each run takes some 20 to 40 seconds on two idle cores.
const MAX_EXAMPLES: &str = "50";
/// The three runs together, on a busy machine.
const TIME_LIMIT: Duration = Duration::from_secs(300);

/// `KAMIYO_SCHEMATHESIS`, or a panic that says how to get it: the test is never skipped.
fn schemathesis() -> PathBuf {
    let Some(path) = std::env::var_os("KAMIYO_SCHEMATHESIS") else {
        panic!(
            "KAMIYO_SCHEMATHESIS is not set. Run the tests with scripts/test, which installs \
             schemathesis from PyPI into target/ and sets it, or set it to a schemathesis \
             `st` executable of the version scripts/test pins."
        );
    };
    let path = PathBuf::from(path);
    let executable = std::fs::metadata(&path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    assert!(
        executable,
        "KAMIYO_SCHEMATHESIS={} is not an executable file; scripts/test installs \
         schemathesis and sets it",
        path.display()
    );
    path
}

/// `kamiyo serve` on a free port, seeing none of the developer's own configuration.
struct Server {
    /// Killed when dropped.
    _child: tokio::process::Child,
    addr: String,
}

impl Server {
    async fn start(database_url: &str, settings: &[(&str, &str)]) -> Server {
        let mut command = tokio::process::Command::new(KAMIYO);
        for (key, _) in std::env::vars() {
            if key.starts_with("KAMIYO_") || key == "DATABASE_URL" {
                command.env_remove(key);
            }
        }
        command
            // No fetching: nothing in the tests reaches the internet.
            .args([
                "serve",
                "--no-fetch",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .env("KAMIYO_DATABASE_URL", database_url)
            .env("KAMIYO_SERVER_ADMIN_TOKEN", ADMIN_TOKEN)
            // The hooks give each test case an address of its own (hooks.py says why).
            .env("KAMIYO_SERVER_TRUSTED_PROXY_HEADER", "x-forwarded-for")
            .env("RUST_LOG", "warn,kamiyo=info")
            .envs(settings.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut startup = Vec::new();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if event["fields"]["message"] == "listening" {
                    return event["fields"]["addr"].as_str().unwrap().to_owned();
                }
                startup.push(line);
            }
            panic!("kamiyo serve exited before listening: {startup:#?}");
        })
        .await
        .expect("kamiyo serve did not start listening within 30s");
        // Keep reading, so that the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            _child: child,
            addr,
        }
    }

    /// The body of `GET path` as the admin, which must answer 200.
    async fn get(&self, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        body.to_owned()
    }
}

impl Server {
    /// The share of this server's answers that were 429, from its own metrics.
    async fn share_of_429(&self) -> f64 {
        let metrics = self.get("/metrics").await;
        let (mut all, mut limited) = (0.0, 0.0);
        for line in metrics.lines() {
            let Some(rest) = line.strip_prefix("http_server_request_duration_seconds_count{")
            else {
                continue;
            };
            let count: f64 = rest
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0.0);
            all += count;
            if rest.contains("http_response_status_code=\"429\"") {
                limited += count;
            }
        }
        assert!(all > 0.0, "no request counted in /metrics:\n{metrics}");
        limited / all
    }
}

struct Run {
    caller: &'static str,
    succeeded: bool,
    output: String,
}

/// One schemathesis run with every check against `server`, as `caller` (`authorization`
/// is the header sent with every request, if any), within `deadline`.
async fn fuzz(
    st: &Path,
    document: &Path,
    server: &Server,
    caller: &'static str,
    authorization: Option<&str>,
    deadline: Instant,
) -> Run {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let workdir = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(st);
    command
        .arg("--config-file")
        .arg(here.join("schemathesis.toml"))
        .arg("run")
        .arg(document)
        .args(["--url", &format!("http://{}", server.addr)])
        .args(["--checks", "all"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        // Nothing remembered between runs, so a run depends on the seed alone.
        .args(["--generation-database", "none"])
        // JSON Schema counts characters; the server counts UTF-8 bytes for some limits
        // (chain names, hashes). In ASCII the two agree.
        .args(["--generation-codec", "ascii"])
        // One worker: the machine is shared (nextest runs tests in parallel), and with
        // two, Hypothesis failed under CPython 3.11 ("AST constructor recursion depth
        // mismatch").
        .args(["--workers", "1"])
        .args(["--request-timeout", "20"])
        .arg("--continue-on-failure")
        .arg("--no-color")
        .env("PYTHONPATH", &here)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(workdir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match authorization {
        Some(value) => {
            command.args(["--header", &format!("Authorization: {value}")]);
        }
        // Truly anonymous: no generated credentials either.
        None => {
            command.args(["--generation-with-security-parameters", "false"]);
        }
    }
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} (KAMIYO_SCHEMATHESIS): {e}", st.display()));
    let budget = deadline.saturating_duration_since(Instant::now());
    let Ok(output) = tokio::time::timeout(budget, child.wait_with_output()).await else {
        panic!(
            "schemathesis ({caller}) did not finish within the test's {TIME_LIMIT:?}; \
             the machine may be overloaded, or a request hangs"
        );
    };
    let output = output.unwrap();
    Run {
        caller,
        succeeded: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_an_admin_an_anonymous_caller_and_a_wrong_key_as_its_openapi_document_says(
) {
    let st = schemathesis();
    let started = Instant::now();
    let deadline = started + TIME_LIMIT;
    let pg = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();

    // A server per caller, so that each run's answers can be counted alone.
    let admin_server = Server::start(pg.url(), &[]).await;
    // Fetched once: the wrong key could not read it.
    let document = dir.path().join("openapi.json");
    std::fs::write(&document, admin_server.get("/api/openapi.json").await).unwrap();
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let mut runs = vec![
        fuzz(
            &st,
            &document,
            &admin_server,
            "admin",
            Some(&admin),
            deadline,
        )
        .await,
    ];
    let mut throttled = vec![("admin", admin_server.share_of_429().await)];
    drop(admin_server);
    for (caller, authorization) in [
        ("anonymous", None),
        ("wrong key", Some("Bearer kmy_not_a_key_of_this_server")),
    ] {
        let server = Server::start(pg.url(), &[]).await;
        runs.push(fuzz(&st, &document, &server, caller, authorization, deadline).await);
        throttled.push((caller, server.share_of_429().await));
    }

    let failed: Vec<&Run> = runs.iter().filter(|run| !run.succeeded).collect();
    for run in &failed {
        eprintln!("==== schemathesis as {}:\n{}", run.caller, run.output);
    }
    assert!(
        failed.is_empty(),
        "schemathesis found failures as {} (its output is above, with a curl line that \
         reproduces each)",
        failed
            .iter()
            .map(|r| r.caller)
            .collect::<Vec<_>>()
            .join(", ")
    );
    // A run answered mostly 429 would have checked the shape of a 429 and little else.
    for (caller, share) in &throttled {
        assert!(
            *share < 0.2,
            "{:.0} % of the {caller} run's answers were 429: the runs no longer reach the \
             handlers (see hooks.py)",
            share * 100.0
        );
    }
    let client = pg.client().await;
    let stored: i64 = client
        .query_one("SELECT count(*) FROM exploits", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        stored > 0,
        "no generated POST /api/exploits reached the store: the document's IncidentInput \
         no longer lets schemathesis build a valid body"
    );
    eprintln!(
        "schemathesis: 3 runs in {:?}, {stored} incidents stored, share of 429 answers: {throttled:?}",
        started.elapsed()
    );
}
