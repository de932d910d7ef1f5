//! Throwaway PostgreSQL servers owned by one test: a primary, and streaming replicas of
//! it, that the test may stop, restart, freeze and lag on purpose. The shared server of
//! [`crate::TestDatabase`] must never be broken like that, hence servers of their own.
//!
//! Each server lives in a directory `kamiyo-pg-<uuid>` (data directory `data`, server log
//! `server.log`) under `/dev/shm` (a tmpfs; `/tmp` where there is none, or
//! `KAMIYO_PG_TMPDIR`), listens on 127.0.0.1 only (no Unix socket) with trust
//! authentication, and has a superuser `root`: its URL is
//! `postgres://root@127.0.0.1:PORT/postgres`. Dropping the value stops the server
//! (`pg_ctl stop -m immediate`) and removes the directory.
//!
//! New primaries are copies of a data directory made once by `initdb` and kept as
//! `/tmp/kamiyo-pg-template-<key>` (see `template.rs`): `initdb` took most of a start-up.
//!
//! The binaries come from the newest `/usr/lib/postgresql/<version>/bin`, or from
//! `KAMIYO_PG_BIN`. When the tests run as root the server runs as the OS user `postgres`,
//! since PostgreSQL refuses to run as root.

mod os;
pub mod pgbouncer;
mod replica;
mod template;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use os::Tools;
pub use os::PG_BIN_ENV;

/// Environment variable naming the directory the servers' directories are made in.
pub const CLUSTER_DIR_ENV: &str = "KAMIYO_PG_TMPDIR";

/// Bound on `initdb`, `pg_basebackup` and `pg_ctl` (which gets it as `-t` too). Generous:
/// the machine may be busy compiling; a broken harness still fails instead of hanging.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound on connecting to a cluster and on the waits for replication progress.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Start-up attempts when another process takes the chosen port first.
const PORT_ATTEMPTS: usize = 5;

/// Settings for speed and for the tests' needs, not for durability: the data is thrown
/// away. `autovacuum` is off so background work neither competes for the CPU nor writes
/// WAL behind the tests' backs; `wal_retrieve_retry_interval` is short so that a replica
/// reconnects promptly after its primary restarts. A change here makes a new template
/// (see `template.rs`).
const SETTINGS: &str = "
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 100
shared_buffers = 16MB
fsync = off
full_page_writes = off
autovacuum = off
jit = off
wal_level = replica
max_wal_senders = 10
wal_keep_size = 64MB
hot_standby = on
wal_retrieve_retry_interval = 100ms
";

/// One throwaway PostgreSQL server: a primary ([`PgCluster::start_primary`]) or a
/// streaming replica of one ([`PgCluster::start_replica`]).
pub struct PgCluster {
    tools: Tools,
    dir: PathBuf,
    port: u16,
    /// For a replica, the URL of its primary.
    primary_url: Option<String>,
}

impl PgCluster {
    /// Creates (a copy of a cached `initdb` result) and starts a new primary on a free
    /// port.
    pub async fn start_primary() -> PgCluster {
        let tools = Tools::find();
        let dir = new_owned_dir(&tools, &cluster_parent(), "kamiyo-pg");
        let cluster = PgCluster {
            tools,
            dir,
            port: 0,
            primary_url: None,
        };
        template::copy_into(&cluster.tools, &cluster.dir, &cluster.data_dir()).await;
        cluster.first_start().await
    }

    /// Creates (`pg_basebackup -R`) and starts a hot-standby replica streaming from this
    /// server, on a port of its own.
    pub async fn start_replica(&self) -> PgCluster {
        let tools = self.tools.clone();
        let dir = new_owned_dir(&tools, &cluster_parent(), "kamiyo-pg");
        let replica = PgCluster {
            tools,
            dir,
            port: 0,
            primary_url: Some(self.url()),
        };
        let mut basebackup = replica.tools.command("pg_basebackup", &replica.dir);
        basebackup
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "root",
            ])
            .arg("-D")
            .arg(replica.data_dir())
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]);
        os::run(basebackup, COMMAND_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("PgCluster: pg_basebackup failed: {e}"));
        replica.first_start().await
    }

    /// `postgres://root@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://root@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, e.g. for [`crate::FaultProxy::start`].
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server's log, worth reading when a test fails.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    pub fn is_replica(&self) -> bool {
        self.primary_url.is_some()
    }

    /// A plain driver connection to the `postgres` database, within a bounded time.
    pub async fn client(&self) -> Client {
        connect(&self.url()).await
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are terminated, then a
    /// checkpoint). A frozen server is thawed first, since a stopped process cannot act on
    /// the shutdown request.
    pub async fn stop(&self) {
        self.thaw().await;
        let mut stop = self.pg_ctl("stop");
        stop.args(["-m", "fast"]);
        os::run(stop, COMMAND_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("PgCluster: stop failed: {e}"));
    }

    /// Starts the stopped server again, on the same port: clients configured with the old
    /// URL can reconnect.
    pub async fn start(&self) {
        if let Err(e) = self.try_start().await {
            panic!("PgCluster: start on port {} failed: {e}", self.port);
        }
    }

    pub async fn restart(&self) {
        self.stop().await;
        self.start().await;
    }

    /// Suspends the server (SIGSTOP to the postmaster, then to every process it forked:
    /// backends, WAL sender/receiver, checkpointer...). The sockets stay open and the
    /// kernel still completes TCP handshakes, but nothing is read or answered: a hung
    /// server, not a down one. Queries in flight and new connections wait until
    /// [`thaw`](Self::thaw) or their own timeout. Returns once every process is stopped.
    pub async fn freeze(&self) {
        let Some(postmaster) = os::postmaster_pid(&self.data_dir()) else {
            panic!("PgCluster: cannot freeze a server that is not running");
        };
        // The postmaster first, and waited for, so that it forks no child that the list
        // below would miss.
        os::signal(&[postmaster], "STOP").await;
        os::wait_stopped(&[postmaster], WAIT_TIMEOUT).await;
        let children = os::children(postmaster);
        os::signal(&children, "STOP").await;
        os::wait_stopped(&children, WAIT_TIMEOUT).await;
    }

    /// Resumes a frozen server; a no-op on one that is not frozen.
    pub async fn thaw(&self) {
        let Some(postmaster) = os::postmaster_pid(&self.data_dir()) else {
            return;
        };
        let mut pids = os::children(postmaster);
        pids.push(postmaster);
        os::signal(&pids, "CONT").await;
    }

    async fn first_start(mut self) -> PgCluster {
        let mut failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            self.port = os::free_port();
            match self.try_start().await {
                Ok(()) => return self,
                Err(e) => failure = e,
            }
            let log = fs::read_to_string(self.log_path()).unwrap_or_default();
            if !log.contains("could not bind") && !log.contains("already in use") {
                break;
            }
        }
        panic!("PgCluster: cannot start the server: {failure}");
    }

    async fn try_start(&self) -> Result<(), String> {
        // Only this attempt's messages, so that a port conflict is not misread later.
        if let Ok(log) = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.log_path())
        {
            drop(log);
        }
        let mut start = self.pg_ctl("start");
        start
            .arg("-l")
            .arg(self.log_path())
            .arg("-o")
            .arg(format!("-p {}", self.port));
        os::run(start, COMMAND_TIMEOUT)
            .await
            .map(drop)
            .map_err(|e| {
                let log = fs::read_to_string(self.log_path()).unwrap_or_default();
                format!("{e}\nserver log:\n{log}")
            })
    }

    fn pg_ctl(&self, action: &str) -> tokio::process::Command {
        let mut command = self.tools.command("pg_ctl", &self.dir);
        command.arg(action).arg("-D").arg(self.data_dir()).args([
            "-w",
            "-t",
            &COMMAND_TIMEOUT.as_secs().to_string(),
        ]);
        command
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Drop cannot await, so these are blocking: brief, and bounded by pg_ctl's -t.
        let data = self.data_dir();
        if let Some(postmaster) = os::postmaster_pid(&data) {
            let mut pids = os::children(postmaster);
            pids.push(postmaster);
            let _ = std::process::Command::new("kill")
                .args(["-s", "CONT"])
                .args(pids.iter().map(u32::to_string))
                .status();
            let _ = self
                .tools
                .std_command(&self.tools.bin().join("pg_ctl"), &self.dir)
                .arg("stop")
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "-t", "10"])
                .output();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Where servers live: `KAMIYO_PG_TMPDIR`, else `/dev/shm` when it exists, else the
/// temporary directory. A tmpfs matters: copying the template and `pg_basebackup` take
/// about 0.1 s there against 0.5 to 1 s on the disk of a busy machine. The data is thrown
/// away, so memory is the right place for it.
fn cluster_parent() -> PathBuf {
    if let Some(dir) = std::env::var_os(CLUSTER_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

/// A new directory `<parent>/<prefix>-<uuid>`, owned by the user the server runs as.
fn new_owned_dir(tools: &Tools, parent: &Path, prefix: &str) -> PathBuf {
    let dir = parent.join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    fs::create_dir(&dir)
        .unwrap_or_else(|e| panic!("PgCluster: cannot create {}: {e}", dir.display()));
    if let Some((uid, gid)) = tools.owner() {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap_or_else(|e| {
            panic!(
                "PgCluster: cannot hand {} to the server's OS user: {e}",
                dir.display()
            )
        });
    }
    dir
}

async fn connect(url: &str) -> Client {
    let connecting = tokio_postgres::connect(url, NoTls);
    let (client, connection) = match tokio::time::timeout(WAIT_TIMEOUT, connecting).await {
        Ok(Ok(connected)) => connected,
        Ok(Err(e)) => panic!("PgCluster: cannot connect to {url}: {e}"),
        Err(_) => panic!("PgCluster: connecting to {url} took more than {WAIT_TIMEOUT:?}"),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}
