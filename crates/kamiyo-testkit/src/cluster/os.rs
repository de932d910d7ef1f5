//! The operating-system side of a throwaway cluster: finding the PostgreSQL binaries,
//! running them as a user they accept, picking ports, and signalling processes.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

/// Environment variable naming the directory of `initdb`, `pg_ctl` and `pg_basebackup`.
pub const PG_BIN_ENV: &str = "KAMIYO_PG_BIN";

const BINARIES: [&str; 4] = ["initdb", "pg_ctl", "pg_basebackup", "postgres"];

/// `initdb` and `postgres` refuse to run as root; when the tests run as root they run the
/// server as this OS user instead.
const SERVER_OS_USER: &str = "postgres";

/// The binaries and the identity that runs them.
#[derive(Clone, Debug)]
pub(super) struct Tools {
    bin: PathBuf,
    /// `(uid, gid)` to switch to, when the tests run as root.
    run_as: Option<(u32, u32)>,
}

impl Tools {
    /// Panics, saying what is missing, when the binaries or the OS user cannot be found.
    pub(super) fn find() -> Tools {
        let bin = match std::env::var_os(PG_BIN_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => newest_installed_bin().unwrap_or_else(|| {
                panic!(
                    "PgCluster: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin. \
                     Install them (Debian: apt-get install postgresql) or set {PG_BIN_ENV} to \
                     the directory holding initdb, pg_ctl and pg_basebackup"
                )
            }),
        };
        for binary in BINARIES {
            if !bin.join(binary).is_file() {
                panic!(
                    "PgCluster: {} is missing (PostgreSQL binaries looked up in {}; set {PG_BIN_ENV} to override)",
                    bin.join(binary).display(),
                    bin.display()
                );
            }
        }
        let run_as = if effective_uid_is_root() {
            Some(os_user_ids(SERVER_OS_USER).unwrap_or_else(|| {
                panic!(
                    "PgCluster: the tests run as root, and PostgreSQL refuses to run as root; \
                     it would run as the OS user `{SERVER_OS_USER}`, which does not exist \
                     (Debian's postgresql package creates it; or run the tests as another user)"
                )
            }))
        } else {
            None
        };
        Tools { bin, run_as }
    }

    pub(super) fn owner(&self) -> Option<(u32, u32)> {
        self.run_as
    }

    pub(super) fn bin(&self) -> &Path {
        &self.bin
    }

    /// A PostgreSQL program (`initdb`, `pg_ctl`...), run as the server's user, with no
    /// inherited stdin and with `cwd` as working directory (the tests' own may be
    /// unreadable to that user).
    pub(super) fn command(&self, program: &str, cwd: &Path) -> Command {
        Command::from(self.std_command(&self.bin.join(program), cwd))
    }

    /// Any program, run like [`Tools::command`].
    pub(super) fn std_command(&self, program: &Path, cwd: &Path) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(program);
        command.current_dir(cwd).stdin(Stdio::null());
        // PG* variables of the test environment would otherwise redirect the client tools.
        for variable in [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGDATA",
            "PGSERVICE",
        ] {
            command.env_remove(variable);
        }
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }
}

/// Runs `command` to completion within `limit`, returning its output when it succeeds and
/// a description of the failure (with its stderr) when it does not.
pub(super) async fn run(mut command: Command, limit: Duration) -> Result<Output, String> {
    let description = format!("{:?}", command.as_std());
    command.kill_on_drop(true);
    match tokio::time::timeout(limit, command.output()).await {
        Err(_) => Err(format!("{description} did not finish within {limit:?}")),
        Ok(Err(e)) => Err(format!("cannot run {description}: {e}")),
        Ok(Ok(output)) if output.status.success() => Ok(output),
        Ok(Ok(output)) => Err(format!(
            "{description} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

fn newest_installed_bin() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: f64 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, bin)| bin)
}

pub(super) fn effective_uid_is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|effective| effective == "0")
}

pub(super) fn os_user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

/// A port on 127.0.0.1 free right now, chosen below the kernel's ephemeral range when
/// possible: ephemeral ports are also the local ports of outgoing connections, which could
/// take the port while the server is stopped between `stop()` and `start()`.
pub(super) fn free_port() -> u16 {
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const LOWEST: u16 = 20000;
    if ephemeral_low > LOWEST + 100 {
        let span = u128::from(ephemeral_low - LOWEST);
        for _ in 0..50 {
            let random = uuid::Uuid::new_v4().as_u128();
            let port = LOWEST + u16::try_from(random % span).unwrap_or(0);
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("PgCluster: no free port on 127.0.0.1: {e}"))
}

/// The postmaster's pid, from the first line of `postmaster.pid`.
pub(super) fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// `(state, parent pid)` from `/proc/<pid>/stat`; `None` once the process is gone.
fn state_and_parent(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or parentheses.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// The postmaster's children: backends and auxiliary processes (checkpointer, WAL
/// writer/sender/receiver, startup process...). PostgreSQL forks them all directly.
pub(super) fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| state_and_parent(*pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect()
}

/// Sends `signal` (a name such as `STOP`) to `pids` with the `kill` program: std has no
/// `kill(2)` and the crate forbids the `unsafe` that calling it through `libc` would take.
pub(super) async fn signal(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let mut command = Command::new("kill");
    command
        .arg("-s")
        .arg(signal)
        .args(pids.iter().map(u32::to_string));
    // A process that exited meanwhile makes `kill` fail; the others were still signalled.
    if let Err(e) = run(command, Duration::from_secs(10)).await {
        if pids.iter().all(|pid| state_and_parent(*pid).is_some()) {
            panic!("PgCluster: cannot send SIG{signal}: {e}");
        }
    }
}

/// Waits until every process of `pids` that still exists is stopped by a signal. Polled:
/// Linux offers no event for another process's stop that a non-parent could await.
pub(super) async fn wait_stopped(pids: &[u32], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let running: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|pid| {
                state_and_parent(*pid).is_some_and(|(state, _)| !matches!(state, 'T' | 'Z' | 'X'))
            })
            .collect();
        if running.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("PgCluster: processes {running:?} did not stop within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
