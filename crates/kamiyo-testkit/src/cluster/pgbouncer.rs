//! PgBouncer in transaction mode in front of a PostgreSQL server, for the tests that run
//! the service through it (docs/DEPLOYMENT.md). One process per value, on a port of its
//! own, with trust authentication for the test user; dropping the value stops it.
//!
//! Debian's `pgbouncer` (1.18) is what production runs here; `scripts/test` installs it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::os;

/// Where Debian installs it; `KAMIYO_PGBOUNCER` overrides.
const DEFAULT_BINARY: &str = "/usr/sbin/pgbouncer";
/// Longest wait for it to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct PgBouncer {
    addr: SocketAddr,
    dir: PathBuf,
    child: Child,
}

impl PgBouncer {
    /// Starts PgBouncer in transaction mode on a free port, forwarding every database to
    /// `upstream` as the user of the test's URLs (`root` unless `KAMIYO_TEST_ADMIN_URL`
    /// says otherwise), with at most `server_pool_size` server connections per database.
    /// Panics, saying what is missing, when it cannot.
    pub async fn start(upstream: SocketAddr, server_pool_size: u32) -> PgBouncer {
        let binary = std::env::var_os("KAMIYO_PGBOUNCER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BINARY));
        assert!(
            binary.is_file(),
            "PgBouncer: {} is missing (Debian: apt-get install pgbouncer; scripts/test installs it; or set KAMIYO_PGBOUNCER)",
            binary.display()
        );
        let user = crate::admin_url()
            .parse::<tokio_postgres::Config>()
            .ok()
            .and_then(|c| c.get_user().map(str::to_owned))
            .unwrap_or_else(|| "root".into());
        let port = os::free_port();
        let dir = std::env::temp_dir().join(format!(
            "kamiyo-pgbouncer-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("PgBouncer: cannot create {}: {e}", dir.display()));
        let ini = format!(
            "[databases]\n* = host={host} port={upstream_port}\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {auth}\npool_mode = transaction\n\
             max_client_conn = 1000\ndefault_pool_size = {server_pool_size}\n\
             server_reset_query =\nlogfile = {log}\n",
            host = upstream.ip(),
            upstream_port = upstream.port(),
            auth = dir.join("userlist.txt").display(),
            log = dir.join("pgbouncer.log").display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap_or_else(|e| panic!("PgBouncer: {e}"));
        std::fs::write(dir.join("userlist.txt"), format!("\"{user}\" \"\"\n"))
            .unwrap_or_else(|e| panic!("PgBouncer: {e}"));
        let mut command = Command::new(&binary);
        // PgBouncer refuses to run as root; `-u` makes it switch to the server's user.
        if os::effective_uid_is_root() {
            let (uid, gid) = os::os_user_ids("postgres").unwrap_or_else(|| {
                panic!("PgBouncer: the tests run as root and PgBouncer refuses root; it would run as the OS user `postgres`, which does not exist")
            });
            for file in ["", "pgbouncer.ini", "userlist.txt"] {
                let _ = std::os::unix::fs::chown(dir.join(file), Some(uid), Some(gid));
            }
            command.arg("-u").arg("postgres");
        }
        command
            .arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("PgBouncer: cannot run {}: {e}", binary.display()));
        let bouncer = PgBouncer {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            dir,
            child,
        };
        bouncer.wait_until_it_answers().await;
        bouncer
    }

    async fn wait_until_it_answers(&self) {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "PgBouncer did not accept connections on {} within {START_TIMEOUT:?}; its log: {}",
                self.addr,
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` (a `postgres://` URL of the upstream server) with its host and port
    /// replaced by PgBouncer's.
    pub fn url_through(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
        let (userinfo, after) = match rest.rsplit_once('@') {
            Some((userinfo, after)) => (format!("{userinfo}@"), after),
            None => (String::new(), rest),
        };
        let path = after.find('/').map_or("", |i| &after[i..]);
        format!("{scheme}://{userinfo}{}{path}", self.addr)
    }

    /// Its log, for a failing test to show.
    pub fn log(&self) -> PathBuf {
        self.dir.join("pgbouncer.log")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
