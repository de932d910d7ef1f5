//! A TCP proxy that sits between a test's client and a real server and fails on command,
//! so a test can break the network under a live connection pool and then heal it.
//!
//! Each proxy is a value owned by its test (no global state); dropping it stops it and
//! closes every connection it holds.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How long a connection waits for the upstream server to accept it before the proxy gives
/// up and resets the client: a dead upstream must fail the test's query, not hang it.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`FaultProxy::reset_all`] waits for the connections to confirm they were reset.
/// Resetting only drops sockets, so reaching this means the runtime is stuck.
const RESET_CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

const BUFFER_SIZE: usize = 16 * 1024;

/// What the proxy does with the bytes and connections it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// Forward bytes both ways, as if the proxy were not there.
    Pass,
    /// Forward nothing and answer nothing, but keep every connection open and accept new
    /// ones: the server looks as if it stopped answering (a network partition, a hung
    /// host). Bytes read before the switch may still be delivered; none read after it are,
    /// until the mode returns to `Pass`, at which point held connections resume where they
    /// stopped (the partition heals) and connections accepted meanwhile are connected
    /// upstream then.
    BlackHole,
    /// Reset (TCP RST, the client sees `ECONNRESET`) every open connection when the mode is
    /// set, and every new connection as soon as it is accepted.
    Reset,
}

/// A TCP proxy on `127.0.0.1:<free port>` to one upstream address.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
}

/// A connection's kill switch: the proxy sends it a sender that the connection drops once
/// its sockets are reset, which is how `reset_all` knows the resets have happened.
type KillSwitch = oneshot::Sender<oneshot::Sender<()>>;

struct Shared {
    mode: watch::Sender<FaultMode>,
    accepted: AtomicU64,
    next_id: AtomicU64,
    /// Connections that are still open, by id. Mode changes to `Reset` and new
    /// registrations take this lock, so no connection can slip in between a `Reset` and the
    /// sweep that follows it.
    live: Mutex<HashMap<u64, KillSwitch>>,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, HashMap<u64, KillSwitch>> {
        // A panic while holding this lock cannot leave the map inconsistent (inserts and
        // removals are single operations), so a poisoned lock is still usable.
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl FaultProxy {
    /// Starts a proxy in [`FaultMode::Pass`] to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap_or_else(|e| panic!("fault proxy: cannot listen on 127.0.0.1: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fault proxy: no local address: {e}"));
        let shared = Arc::new(Shared {
            mode: watch::Sender::new(FaultMode::Pass),
            accepted: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        });
        let acceptor = tokio::spawn(accept_loop(listener, upstream, Arc::clone(&shared)));
        FaultProxy {
            addr,
            upstream,
            shared,
            acceptor,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// `url` (a `postgres://` URL) with its host and port replaced by the proxy's, so a
    /// client built from it goes through the proxy. Key-value connection strings and
    /// multi-host URLs are not supported.
    pub fn url_through(&self, url: &str) -> String {
        replace_host_port(url, &self.addr.to_string())
    }

    pub fn mode(&self) -> FaultMode {
        *self.shared.mode.borrow()
    }

    /// Switches the mode. When this returns the new mode is in force: after `BlackHole` no
    /// further byte is forwarded (a write already under way may finish), and after `Reset`
    /// every connection open at the time has been reset.
    pub async fn set_mode(&self, mode: FaultMode) {
        let doomed = {
            let mut live = self.shared.live();
            self.shared.mode.send_replace(mode);
            if mode == FaultMode::Reset {
                live.drain().map(|(_, kill)| kill).collect()
            } else {
                Vec::new()
            }
        };
        kill_all(doomed).await;
    }

    /// Resets every open connection once and stays in the current mode: for a `Pass`
    /// proxy, the server "restarted" under the clients. Returns once they are reset.
    pub async fn reset_all(&self) {
        let doomed = self.shared.live().drain().map(|(_, kill)| kill).collect();
        kill_all(doomed).await;
    }

    /// Connections accepted since the proxy started, including those reset at once.
    pub fn accepted_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections currently open through the proxy (held ones included).
    pub fn open_connections(&self) -> usize {
        self.shared.live().len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The acceptor owns every connection task (a JoinSet), so aborting it drops them
        // all and with them their sockets.
        self.acceptor.abort();
    }
}

async fn kill_all(doomed: Vec<KillSwitch>) {
    let mut confirmations = Vec::with_capacity(doomed.len());
    for kill in doomed {
        let (done, confirmed) = oneshot::channel();
        // A connection that already ended has dropped its receiver; nothing to wait for.
        if kill.send(done).is_ok() {
            confirmations.push(confirmed);
        }
    }
    let all = async {
        for confirmed in confirmations {
            // The connection drops `done` after resetting (or ending): either way it is gone.
            let _ = confirmed.await;
        }
    };
    if tokio::time::timeout(RESET_CONFIRM_TIMEOUT, all)
        .await
        .is_err()
    {
        panic!("fault proxy: connections were not reset within {RESET_CONFIRM_TIMEOUT:?}");
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // Accept errors (e.g. the peer gave up before accept) concern one
                // connection only; the listener stays usable.
                let Ok((client, _)) = accepted else { continue };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let kill = {
                    let mut live = shared.live();
                    if *shared.mode.borrow() == FaultMode::Reset {
                        None
                    } else {
                        let (kill_switch, kill) = oneshot::channel();
                        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
                        live.insert(id, kill_switch);
                        Some((id, kill))
                    }
                };
                match kill {
                    None => abort_connection(&client),
                    Some((id, kill)) => {
                        connections.spawn(serve(client, upstream, Arc::clone(&shared), id, kill));
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Removes a connection from the live set however its task ends (closed, reset, aborted).
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.live().remove(&self.id);
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    id: u64,
    mut kill: oneshot::Receiver<oneshot::Sender<()>>,
) {
    let _registered = Registered {
        shared: Arc::clone(&shared),
        id,
    };
    // PostgreSQL's messages are small; Nagle's algorithm would delay them by round trips.
    let _ = client.set_nodelay(true);
    let connected = tokio::select! {
        biased;
        done = &mut kill => {
            abort_connection(&client);
            drop(client);
            drop(done);
            return;
        }
        connected = connect_when_passing(upstream, shared.mode.subscribe()) => connected,
    };
    let Some(mut server) = connected else {
        abort_connection(&client);
        return;
    };
    let ended = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        tokio::select! {
            biased;
            done = &mut kill => Ended::Killed(done.ok()),
            pumped = async {
                tokio::try_join!(
                    pump(client_read, server_write, shared.mode.subscribe()),
                    pump(server_read, client_write, shared.mode.subscribe()),
                )
            } => match pumped {
                Ok(_) => Ended::Closed,
                Err(_) => Ended::Failed,
            },
        }
    };
    match ended {
        Ended::Closed => {}
        // An error on one side (usually a reset) is passed on to the other side as a
        // reset, as a router would, rather than as a clean end of stream.
        Ended::Failed => {
            abort_connection(&client);
            abort_connection(&server);
        }
        Ended::Killed(done) => {
            abort_connection(&client);
            abort_connection(&server);
            drop(client);
            drop(server);
            drop(done);
        }
    }
}

enum Ended {
    Closed,
    Failed,
    Killed(Option<oneshot::Sender<()>>),
}

/// Connects upstream once the mode lets bytes through, so a connection accepted during a
/// black hole gets nothing until it heals. `None`: the server is unreachable.
async fn connect_when_passing(
    upstream: SocketAddr,
    mut mode: watch::Receiver<FaultMode>,
) -> Option<TcpStream> {
    passing(&mut mode).await.ok()?;
    let server = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream))
        .await
        .ok()?
        .ok()?;
    let _ = server.set_nodelay(true);
    Some(server)
}

/// Copies `from` to `to` until `from` ends, holding bytes while the mode is not `Pass`.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    mut mode: watch::Receiver<FaultMode>,
) -> io::Result<()> {
    let mut buffer = vec![0_u8; BUFFER_SIZE];
    loop {
        passing(&mut mode).await?;
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return to.shutdown().await;
        }
        // Checked again after the read: bytes sent after a switch to `BlackHole` must be
        // held even if this read started before it.
        passing(&mut mode).await?;
        to.write_all(&buffer[..read]).await?;
    }
}

async fn passing(mode: &mut watch::Receiver<FaultMode>) -> io::Result<()> {
    match mode.wait_for(|mode| *mode == FaultMode::Pass).await {
        Ok(_) => Ok(()),
        Err(_) => Err(io::Error::other("fault proxy stopped")),
    }
}

/// Makes the socket's close send a RST instead of a FIN: the peer sees `ECONNRESET`.
fn abort_connection(stream: &TcpStream) {
    // If the option cannot be set the close is a clean FIN: still a dropped connection.
    let _ = stream.set_zero_linger();
}

fn replace_host_port(url: &str, host_port: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        panic!("fault proxy: not a URL (key-value connection strings are not supported): {url}");
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let userinfo_end = authority.rfind('@').map_or(0, |i| i + 1);
    if authority[userinfo_end..].contains(',') {
        panic!("fault proxy: multi-host URLs are not supported: {url}");
    }
    format!(
        "{}{}{}{}",
        &url[..scheme_end],
        &authority[..userinfo_end],
        host_port,
        &rest[authority_end..]
    )
}

#[cfg(test)]
mod tests {
    use super::replace_host_port;

    #[test]
    fn host_and_port_are_replaced() {
        let through = |url| replace_host_port(url, "127.0.0.1:9");
        assert_eq!(
            through("postgres://root@127.0.0.1:5432/postgres"),
            "postgres://root@127.0.0.1:9/postgres"
        );
        assert_eq!(
            through("postgresql://u:p@db.example:5432/app?sslmode=disable"),
            "postgresql://u:p@127.0.0.1:9/app?sslmode=disable"
        );
        assert_eq!(through("postgres://db"), "postgres://127.0.0.1:9");
        assert_eq!(
            through("postgres://db?connect_timeout=1"),
            "postgres://127.0.0.1:9?connect_timeout=1"
        );
    }
}
