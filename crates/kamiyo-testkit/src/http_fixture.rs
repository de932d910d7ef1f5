//! [`FixtureServer`]: a source's HTTP server on loopback, for fetcher tests. It speaks
//! just enough HTTP/1.1 over raw TCP to misbehave the way real servers do: validators
//! and `304`, a status with `Retry-After`, a body sent slowly, a body larger than asked,
//! a body cut short, a connection closed without an answer. Replies are scripted in
//! order; when the script is empty the server answers with its standing reply. It counts
//! the requests it received and keeps their heads.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200` with the body and its validators; `304` (no body) when the request's
    /// `If-None-Match` names this `etag`.
    Body {
        body: Vec<u8>,
        content_type: &'static str,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// A status with no body, and `Retry-After` when given.
    Status {
        status: u16,
        retry_after: Option<String>,
    },
    /// `200` whose body trickles out: `chunk` bytes every `pause`.
    Slow {
        body: Vec<u8>,
        chunk: usize,
        pause: Duration,
    },
    /// `200` announcing `declared` bytes and sending only `body`, then closing.
    Truncated { declared: usize, body: Vec<u8> },
    /// The connection is closed without a byte of answer.
    Close,
    /// A redirect (`status`, e.g. 302) to `location`.
    Redirect { status: u16, location: String },
}

impl Reply {
    /// `200` with a JSON body and no validators.
    pub fn json(body: impl Into<Vec<u8>>) -> Reply {
        Reply::Body {
            body: body.into(),
            content_type: "application/json",
            etag: None,
            last_modified: None,
        }
    }

    /// A status without a body.
    pub fn status(status: u16) -> Reply {
        Reply::Status {
            status,
            retry_after: None,
        }
    }
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Reply>,
    standing: Option<Reply>,
    heads: Vec<String>,
}

/// A scripted HTTP server on `127.0.0.1:<free port>`, stopped when dropped.
pub struct FixtureServer {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    acceptor: JoinHandle<()>,
}

impl FixtureServer {
    /// Starts a server whose standing reply is `standing`.
    pub async fn start(standing: Reply) -> FixtureServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("FixtureServer: cannot bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("FixtureServer: no local address: {e}"));
        let shared = Arc::new(Mutex::new(Shared {
            standing: Some(standing),
            ..Shared::default()
        }));
        let serving = Arc::clone(&shared);
        let acceptor = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&serving);
                tokio::spawn(async move {
                    // A client that goes away mid-answer is part of what is tested.
                    let _ = answer(stream, &shared).await;
                });
            }
        });
        FixtureServer {
            addr,
            shared,
            acceptor,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Replies given before the standing one, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.shared).script.extend(replies);
    }

    /// Replaces the standing reply.
    pub fn answer_with(&self, standing: Reply) {
        lock(&self.shared).standing = Some(standing);
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        lock(&self.shared).heads.len()
    }

    /// The heads (request line and headers) of the requests received, in order.
    pub fn heads(&self) -> Vec<String> {
        lock(&self.shared).heads.clone()
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // Every update is a single push or pop: a panic cannot leave it half done.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn answer(mut stream: TcpStream, shared: &Mutex<Shared>) -> std::io::Result<()> {
    let head = read_head(&mut stream).await?;
    let reply = {
        let mut shared = lock(shared);
        shared.heads.push(head.clone());
        shared
            .script
            .pop_front()
            .or_else(|| shared.standing.clone())
            .unwrap_or(Reply::Close)
    };
    match reply {
        Reply::Close => Ok(()),
        Reply::Redirect { status, location } => {
            let head = format!(
                "HTTP/1.1 {status} {}\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                reason(status)
            );
            stream.write_all(head.as_bytes()).await
        }
        Reply::Status {
            status,
            retry_after,
        } => {
            let retry = retry_after
                .map(|r| format!("Retry-After: {r}\r\n"))
                .unwrap_or_default();
            let head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\n{retry}Connection: close\r\n\r\n",
                reason(status)
            );
            stream.write_all(head.as_bytes()).await
        }
        Reply::Body {
            body,
            content_type,
            etag,
            last_modified,
        } => {
            let matched = etag.as_ref().is_some_and(|etag| {
                header(&head, "if-none-match").is_some_and(|sent| sent == etag.as_str())
            });
            let mut validators = String::new();
            if let Some(etag) = &etag {
                validators.push_str(&format!("ETag: {etag}\r\n"));
            }
            if let Some(modified) = &last_modified {
                validators.push_str(&format!("Last-Modified: {modified}\r\n"));
            }
            if matched {
                let head =
                    format!("HTTP/1.1 304 Not Modified\r\n{validators}Connection: close\r\n\r\n");
                return stream.write_all(head.as_bytes()).await;
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{validators}Connection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await
        }
        Reply::Slow { body, chunk, pause } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            for part in body.chunks(chunk.max(1)) {
                tokio::time::sleep(pause).await;
                stream.write_all(part).await?;
                stream.flush().await?;
            }
            Ok(())
        }
        Reply::Truncated { declared, body } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.shutdown().await
        }
    }
}

/// The request head, up to the blank line (at most 64 KiB).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = stream.read(&mut byte).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&byte[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
