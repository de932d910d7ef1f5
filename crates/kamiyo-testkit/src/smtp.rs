//! [`SmtpSink`]: a mail server on loopback that keeps every message it is given, for
//! tests of mail delivery. It speaks plain SMTP (no TLS) as far as a client such as
//! lettre's `AsyncSmtpTransport::builder_dangerous(host).port(port)` needs: EHLO/HELO,
//! AUTH PLAIN and LOGIN (any credentials pass), MAIL, RCPT, DATA, RSET, NOOP, QUIT.
//! [`SmtpSink::wait_for`] wakes on each message, without polling.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The largest message accepted (announced as `SIZE`); a larger one is refused with `552`
/// and not recorded.
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

const SERVER_NAME: &str = "kamiyo-testkit.invalid";

/// One message as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The reverse path of `MAIL FROM`, without the angle brackets (empty for `<>`).
    pub from: String,
    /// The forward paths of each `RCPT TO`, in order.
    pub to: Vec<String>,
    /// The content after dot-unstuffing, headers and body, lines ending in `\r\n`,
    /// without the final `.` line.
    pub data: String,
}

impl Mail {
    /// The first header `name` (case-insensitive), folded lines joined.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(value) = found.as_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((key, value)) = line.split_once(':') {
                if key.trim().eq_ignore_ascii_case(name) {
                    found = Some(value.trim().to_owned());
                }
            }
        }
        found
    }

    /// What follows the headers' blank line.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }
}

struct Shared {
    mails: Mutex<Vec<Mail>>,
    /// The number of messages kept, so waiters wake on each one without polling.
    arrivals: watch::Sender<usize>,
}

/// An SMTP server on `127.0.0.1:<free port>`, spawned on the current runtime; stopped
/// (with every connection it holds) by [`stop`](Self::stop) or when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("SmtpSink: cannot bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("SmtpSink: no local address: {e}"));
        let shared = Arc::new(Shared {
            mails: Mutex::new(Vec::new()),
            arrivals: watch::Sender::new(0),
        });
        let acceptor = tokio::spawn(accept(listener, Arc::clone(&shared)));
        SmtpSink {
            addr,
            shared,
            acceptor,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The messages kept so far, in the order their `DATA` ended.
    pub fn messages(&self) -> Vec<Mail> {
        self.shared.mails.lock().clone()
    }

    /// Returns every message kept once there are at least `n`; panics, listing the ones
    /// that did arrive, if `limit` passes first.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Mail> {
        let mut arrivals = self.shared.arrivals.subscribe();
        let reached = matches!(
            tokio::time::timeout(limit, arrivals.wait_for(|count| *count >= n)).await,
            Ok(Ok(_))
        );
        let mails = self.messages();
        if !reached {
            let listed: String = mails
                .iter()
                .enumerate()
                .map(|(i, mail)| format!("\n  {}. {mail:?}", i + 1))
                .collect();
            panic!(
                "SmtpSink: expected at least {n} messages within {limit:?}; {} arrived:{listed}",
                mails.len()
            );
        }
        mails
    }

    /// Stops the server and closes its connections; once this returns the port refuses
    /// connections.
    pub async fn stop(mut self) {
        self.acceptor.abort();
        // The acceptor owns the listener and the connections: awaiting its end waits for
        // them to be dropped.
        let _ = (&mut self.acceptor).await;
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    // The connections belong to the acceptor so that aborting it closes them too: a
    // pooled SMTP connection must not deliver to a sink that was stopped.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { break };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    // A client that goes away mid-conversation is part of what is tested.
                    let _ = converse(stream, &shared).await;
                });
            }
            // Reaps ended connections, so the set does not grow with every client.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The sender and recipients of the message being given.
#[derive(Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Connection {
    /// One line without its line ending; `None` once the client has closed.
    async fn line(&mut self) -> std::io::Result<Option<String>> {
        let mut line = Vec::new();
        if self.reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line);
        Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
    }

    async fn reply(&mut self, reply: &str) -> std::io::Result<()> {
        // One write per reply: two small ones meet Nagle's algorithm and the peer's
        // delayed acknowledgement, which costs each exchange about 40 ms.
        self.writer
            .write_all(format!("{reply}\r\n").as_bytes())
            .await
    }

    /// The message after `DATA`, unstuffed, up to the `.` line; `None` if the client
    /// closed first. Only `\r\n.\r\n` ends it: a client that ends lines with a bare `\n`
    /// is broken, and the test should see it time out rather than pass.
    async fn data(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut data = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            if self.reader.read_until(b'\n', &mut line).await? == 0 {
                return Ok(None);
            }
            if line == b".\r\n" {
                return Ok(Some(data));
            }
            // Past the limit the rest is read only to find the end, not kept.
            if data.len() <= MAX_MESSAGE_SIZE {
                data.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
            }
        }
    }

    /// Runs an `AUTH` exchange; any well-formed credentials are accepted.
    async fn authenticate(&mut self, argument: &str) -> std::io::Result<Option<String>> {
        let (mechanism, initial) = match argument.split_once(' ') {
            Some((mechanism, initial)) => (mechanism, Some(initial.trim().to_owned())),
            None => (argument, None),
        };
        let prompts: &[&str] = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => &["334 "],
            // "Username:" and "Password:", base64-encoded as RFC 4954 clients expect.
            "LOGIN" => &["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"],
            _ => {
                return Ok(Some(
                    "504 5.5.4 Unrecognized authentication type".to_owned(),
                ))
            }
        };
        let mut responses = Vec::new();
        responses.extend(initial);
        for prompt in &prompts[responses.len()..] {
            self.reply(prompt).await?;
            let Some(response) = self.line().await? else {
                return Ok(None);
            };
            responses.push(response);
        }
        let reply = if responses.iter().any(|r| r == "*") {
            "501 5.0.0 Authentication cancelled"
        } else if responses.iter().any(|r| STANDARD.decode(r).is_err()) {
            "501 5.5.2 Cannot decode the response as base64"
        } else {
            "235 2.7.0 Authentication successful"
        };
        Ok(Some(reply.to_owned()))
    }
}

async fn converse(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (reader, writer) = stream.into_split();
    let mut connection = Connection {
        reader: BufReader::new(reader),
        writer,
    };
    connection
        .reply(&format!("220 {SERVER_NAME} ESMTP SmtpSink"))
        .await?;
    let mut envelope = Envelope::default();
    while let Some(line) = connection.line().await? {
        let (verb, argument) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let reply = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                envelope = Envelope::default();
                format!(
                    "250-{SERVER_NAME} greets {argument}\r\n250-8BITMIME\r\n250-SIZE {MAX_MESSAGE_SIZE}\r\n250 AUTH PLAIN LOGIN"
                )
            }
            "HELO" => {
                envelope = Envelope::default();
                format!("250 {SERVER_NAME}")
            }
            "AUTH" => match connection.authenticate(argument).await? {
                Some(reply) => reply,
                None => return Ok(()),
            },
            "MAIL" => mail(&mut envelope, argument),
            "RCPT" => match (mailbox(argument, "TO:"), &envelope.from) {
                (_, None) => "503 5.5.1 MAIL first".to_owned(),
                (None, _) => "501 5.5.4 Syntax: RCPT TO:<address>".to_owned(),
                (Some((to, _)), Some(_)) => {
                    envelope.to.push(to.to_owned());
                    "250 2.1.5 OK".to_owned()
                }
            },
            "DATA" => match std::mem::take(&mut envelope) {
                Envelope { from: None, .. } => "503 5.5.1 MAIL first".to_owned(),
                Envelope {
                    from: Some(from),
                    to,
                } if to.is_empty() => {
                    envelope.from = Some(from);
                    "503 5.5.1 RCPT first".to_owned()
                }
                Envelope {
                    from: Some(from),
                    to,
                } => {
                    connection
                        .reply("354 End data with <CR><LF>.<CR><LF>")
                        .await?;
                    let Some(data) = connection.data().await? else {
                        return Ok(());
                    };
                    if data.len() > MAX_MESSAGE_SIZE {
                        "552 5.3.4 Message too big".to_owned()
                    } else {
                        let data = String::from_utf8_lossy(&data).into_owned();
                        let count = keep(shared, Mail { from, to, data });
                        format!("250 2.0.0 OK: queued as {count}")
                    }
                }
            },
            "RSET" => {
                envelope = Envelope::default();
                "250 2.0.0 OK".to_owned()
            }
            "NOOP" => "250 2.0.0 OK".to_owned(),
            "QUIT" => {
                connection.reply("221 2.0.0 Bye").await?;
                return Ok(());
            }
            "STARTTLS" => "454 4.7.0 TLS not available".to_owned(),
            _ => "500 5.5.2 Command not recognised".to_owned(),
        };
        connection.reply(&reply).await?;
    }
    Ok(())
}

/// Starts a transaction on `MAIL FROM:<address> [parameters]`; a declared `SIZE` above
/// the limit is refused before the message is sent.
fn mail(envelope: &mut Envelope, argument: &str) -> String {
    if envelope.from.is_some() {
        return "503 5.5.1 Nested MAIL command".to_owned();
    }
    let Some((from, parameters)) = mailbox(argument, "FROM:") else {
        return "501 5.5.4 Syntax: MAIL FROM:<address>".to_owned();
    };
    let declared = parameters.split_whitespace().find_map(|parameter| {
        let (key, value) = parameter.split_once('=')?;
        key.eq_ignore_ascii_case("SIZE")
            .then(|| value.parse::<usize>().ok())
            .flatten()
    });
    if declared.is_some_and(|size| size > MAX_MESSAGE_SIZE) {
        return "552 5.3.4 Message size exceeds fixed limit".to_owned();
    }
    envelope.from = Some(from.to_owned());
    "250 2.1.0 OK".to_owned()
}

/// Splits `FROM:<address> parameters` (or `TO:`) into the address and the parameters.
fn mailbox<'a>(argument: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let path = argument.get(keyword.len()..)?.trim_start();
    let (address, parameters) = path.strip_prefix('<')?.split_once('>')?;
    Some((address, parameters.trim()))
}

/// Records `mail` and returns how many are kept.
fn keep(shared: &Shared, mail: Mail) -> usize {
    let mut mails = shared.mails.lock();
    mails.push(mail);
    // Published under the lock, so the count never runs ahead of `messages()`.
    shared.arrivals.send_replace(mails.len());
    mails.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    /// The client's side of a conversation.
    struct Client {
        connection: Connection,
    }

    impl Client {
        async fn connect(sink: &SmtpSink) -> (Client, Vec<String>) {
            let stream = TcpStream::connect(sink.addr()).await.unwrap();
            let (reader, writer) = stream.into_split();
            let mut client = Client {
                connection: Connection {
                    reader: BufReader::new(reader),
                    writer,
                },
            };
            let greeting = client.read_reply().await;
            (client, greeting)
        }

        /// The lines of one reply, up to the one whose code is followed by a space.
        async fn read_reply(&mut self) -> Vec<String> {
            let mut lines = Vec::new();
            loop {
                let line = self.connection.line().await.unwrap().expect("a reply");
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    return lines;
                }
            }
        }

        async fn send(&mut self, line: &str) -> Vec<String> {
            self.connection.reply(line).await.unwrap();
            self.read_reply().await
        }

        /// The code of the reply to `line`.
        async fn code(&mut self, line: &str) -> u16 {
            self.send(line).await[0][..3].parse().unwrap()
        }
    }

    #[tokio::test]
    async fn a_conversation_is_recorded_as_a_mail() {
        let sink = SmtpSink::start().await;
        let (mut client, greeting) = Client::connect(&sink).await;
        assert!(greeting[0].starts_with("220 "), "{greeting:?}");

        let ehlo = client.send("EHLO client.example").await;
        assert!(ehlo[0].starts_with("250-"), "{ehlo:?}");
        assert!(ehlo.contains(&"250-8BITMIME".to_owned()), "{ehlo:?}");
        assert!(ehlo.iter().any(|line| line.contains("SIZE")), "{ehlo:?}");
        assert!(ehlo.last().unwrap().starts_with("250 "), "{ehlo:?}");

        let plain = STANDARD.encode(b"\0user\0secret");
        assert_eq!(client.code(&format!("AUTH PLAIN {plain}")).await, 235);
        assert_eq!(client.code("NOOP").await, 250);
        let mail_from = "MAIL FROM:<alerts@kamiyo.example> BODY=8BITMIME";
        assert_eq!(client.code(mail_from).await, 250);
        assert_eq!(client.code("RCPT TO:<a@example.org>").await, 250);
        assert_eq!(client.code("rcpt to: <b@example.org>").await, 250);
        assert_eq!(client.code("DATA").await, 354);
        let content =
            "Subject: Incident\r\n resolved\r\n\r\nbody line\r\n..starts with a dot\r\n.\r\n";
        assert_eq!(client.code(content.trim_end_matches("\r\n")).await, 250);

        let mails = sink.wait_for(1, LIMIT).await;
        assert_eq!(
            mails,
            [Mail {
                from: "alerts@kamiyo.example".to_owned(),
                to: vec!["a@example.org".to_owned(), "b@example.org".to_owned()],
                data: "Subject: Incident\r\n resolved\r\n\r\nbody line\r\n.starts with a dot\r\n"
                    .to_owned(),
            }]
        );
        assert_eq!(
            mails[0].header("subject").as_deref(),
            Some("Incident resolved")
        );
        assert_eq!(mails[0].body(), "body line\r\n.starts with a dot\r\n");

        assert_eq!(client.code("QUIT").await, 221);
        assert_eq!(client.connection.line().await.unwrap(), None);
    }

    #[tokio::test]
    async fn rset_drops_the_transaction_and_a_connection_carries_several_mails() {
        let sink = SmtpSink::start().await;
        let (mut client, _) = Client::connect(&sink).await;
        client.send("HELO client").await;
        client.send("MAIL FROM:<dropped@example.org>").await;
        client.send("RCPT TO:<x@example.org>").await;
        assert_eq!(client.code("RSET").await, 250);
        assert_eq!(client.code("RCPT TO:<x@example.org>").await, 503);
        for n in 1..=2 {
            client.send("MAIL FROM:<>").await;
            client.send("RCPT TO:<x@example.org>").await;
            client.send("DATA").await;
            assert_eq!(client.code(&format!("n: {n}\r\n\r\n.")).await, 250);
        }
        let mails = sink.wait_for(2, LIMIT).await;
        assert_eq!(mails[0].from, "");
        assert_eq!(mails[1].header("n").as_deref(), Some("2"));
    }

    #[tokio::test]
    async fn auth_login_is_accepted_step_by_step() {
        let sink = SmtpSink::start().await;
        let (mut client, _) = Client::connect(&sink).await;
        client.send("EHLO client").await;
        assert_eq!(client.send("AUTH LOGIN").await, ["334 VXNlcm5hbWU6"]);
        assert_eq!(
            client.send(&STANDARD.encode("user")).await,
            ["334 UGFzc3dvcmQ6"]
        );
        assert_eq!(client.code(&STANDARD.encode("secret")).await, 235);
        let initial = format!("AUTH LOGIN {}", STANDARD.encode("user"));
        assert_eq!(client.send(&initial).await, ["334 UGFzc3dvcmQ6"]);
        assert_eq!(client.code("*").await, 501);
        assert_eq!(client.send("AUTH PLAIN").await, ["334 "]);
        assert_eq!(client.code("not base64!").await, 501);
        assert_eq!(client.code("AUTH CRAM-MD5").await, 504);
    }

    #[tokio::test]
    async fn commands_out_of_order_and_oversized_mail_are_refused() {
        let sink = SmtpSink::start().await;
        let (mut client, _) = Client::connect(&sink).await;
        client.send("EHLO client").await;
        assert_eq!(client.code("DATA").await, 503);
        assert_eq!(client.code("MAIL FROM:nobrackets@example.org").await, 501);
        let too_big = format!("MAIL FROM:<a@example.org> SIZE={}", MAX_MESSAGE_SIZE + 1);
        assert_eq!(client.code(&too_big).await, 552);
        assert_eq!(client.code("MAIL FROM:<a@example.org>").await, 250);
        assert_eq!(client.code("MAIL FROM:<a@example.org>").await, 503);
        assert_eq!(client.code("DATA").await, 503);
        assert_eq!(client.code("STARTTLS").await, 454);
        assert_eq!(client.code("HELP ME").await, 500);
        assert!(sink.messages().is_empty());
    }

    #[tokio::test]
    #[should_panic(expected = "expected at least 1 messages within 50ms; 0 arrived")]
    async fn wait_for_panics_listing_what_did_arrive() {
        let sink = SmtpSink::start().await;
        sink.wait_for(1, Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn stop_closes_the_port_and_open_connections() {
        let sink = SmtpSink::start().await;
        let addr = sink.addr();
        let (mut client, _) = Client::connect(&sink).await;
        sink.stop().await;
        let closed = tokio::time::timeout(LIMIT, client.connection.line()).await;
        assert!(matches!(closed, Ok(Ok(None)) | Ok(Err(_))), "{closed:?}");
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
