//! [`WebhookReceiver`]: a webhook endpoint on loopback, for tests of webhook delivery. It
//! records every request in arrival order, answers as scripted ([`Answer`]), wakes
//! [`WebhookReceiver::wait_for`] on each arrival, and can hold every answer back so a test
//! can kill a sender in the middle of a request.
//!
//! [`Received::verify`] checks a Standard Webhooks 1.0 signature with code of its own,
//! not the product's: a mistake shared by the signer and its checker would otherwise pass.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The largest request body recorded; far above any webhook payload. A larger body is
/// answered `400` and not recorded, as is a body the sender cut short.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// How the receiver answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Waited after the request is recorded (and released, when held), before answering.
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// `200` with the body `ok`: the standing answer until [`WebhookReceiver::set_default`].
    pub fn ok() -> Answer {
        Answer::status(200).with_body("ok")
    }

    /// `status` with an empty body.
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            delay: Duration::ZERO,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn with_delay(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_body(mut self, body: impl Into<String>) -> Answer {
        self.body = body.into();
        self
    }
}

impl Default for Answer {
    fn default() -> Answer {
        Answer::ok()
    }
}

/// An [`Answer`] checked when it is given, so that a bad status or header panics in the
/// test that wrote it rather than in a connection task nobody watches.
#[derive(Clone)]
struct Prepared {
    status: StatusCode,
    delay: Duration,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Prepared {
    fn new(answer: Answer) -> Prepared {
        let status = StatusCode::from_u16(answer.status)
            .unwrap_or_else(|_| panic!("WebhookReceiver: {} is not an HTTP status", answer.status));
        let headers = answer
            .headers
            .into_iter()
            .map(|(name, value)| {
                let parsed_name = HeaderName::try_from(name.as_str())
                    .unwrap_or_else(|e| panic!("WebhookReceiver: header name {name:?}: {e}"));
                let parsed_value = HeaderValue::try_from(value.as_str())
                    .unwrap_or_else(|e| panic!("WebhookReceiver: header {name}: {value:?}: {e}"));
                (parsed_name, parsed_value)
            })
            .collect();
        Prepared {
            status,
            delay: answer.delay,
            headers,
            body: Bytes::from(answer.body),
        }
    }

    fn response(&self) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        for (name, value) in &self.headers {
            response.headers_mut().append(name.clone(), value.clone());
        }
        response
    }
}

/// One request as it arrived.
#[derive(Clone, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: Option<String>,
    /// In the order sent, names lower-cased, a repeated header once per line.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the request head arrived, for measuring intervals between deliveries.
    pub arrived: Instant,
    /// The same moment on the wall clock, for comparing with timestamps the sender wrote.
    pub arrived_at: DateTime<Utc>,
}

impl Received {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics, showing the body, when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: the body is not JSON ({e}): {}",
                self.method,
                self.path,
                self.text()
            )
        })
    }

    /// Checks the Standard Webhooks signature against `secret` (`whsec_<base64>`), with
    /// the timestamp at most `tolerance` from the current time.
    pub fn verify(&self, secret: &str, tolerance: Duration) -> Result<(), String> {
        self.verify_at(secret, Utc::now().timestamp(), tolerance)
    }

    /// [`verify`](Self::verify) as of `now_unix` (seconds), for fixed test vectors.
    ///
    /// The rule of the Standard Webhooks 1.0 reference libraries: the signed content is
    /// `{webhook-id}.{webhook-timestamp}.{body}`, the key is the base64 after `whsec_`,
    /// `webhook-signature` holds space-separated `v1,<base64 HMAC-SHA256>` entries of
    /// which any one may match, and a timestamp too old or too far ahead is refused.
    pub fn verify_at(
        &self,
        secret: &str,
        now_unix: i64,
        tolerance: Duration,
    ) -> Result<(), String> {
        let id = self.required("webhook-id")?;
        let timestamp = self.required("webhook-timestamp")?;
        let signatures = self.required("webhook-signature")?;
        let sent: i64 = timestamp.trim().parse().map_err(|_| {
            format!("webhook-timestamp {timestamp:?} is not a Unix time in seconds")
        })?;
        let skew = now_unix.abs_diff(sent);
        if skew > tolerance.as_secs() {
            let direction = if sent < now_unix {
                "behind"
            } else {
                "ahead of"
            };
            return Err(format!(
                "webhook-timestamp {sent} is {skew} s {direction} now ({now_unix}), beyond the tolerance of {} s",
                tolerance.as_secs()
            ));
        }
        let key = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = STANDARD
            .decode(key)
            .map_err(|e| format!("the secret is not whsec_ followed by base64: {e}"))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key)
            .map_err(|e| format!("the secret is not a usable HMAC key: {e}"))?;
        // The reference libraries sign the timestamp as they print the parsed number, not
        // the header's text: a padded or signed header must not verify.
        mac.update(format!("{id}.{sent}.").as_bytes());
        mac.update(&self.body);
        // `verify_slice` compares in constant time.
        let matched = signatures
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|signature| STANDARD.decode(signature).ok())
            .any(|signature| mac.clone().verify_slice(&signature).is_ok());
        if matched {
            Ok(())
        } else {
            Err(format!(
                "no v1 entry of webhook-signature {signatures:?} is the HMAC of message {id} at {sent} with this secret"
            ))
        }
    }

    fn required(&self, name: &str) -> Result<&str, String> {
        self.header(name)
            .ok_or_else(|| format!("no {name} header among {:?}", self.headers))
    }
}

/// One line per request, with the body as text: what a failed assertion needs to show.
impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query = self
            .query
            .as_ref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        write!(
            f,
            "{} {}{query} at {} {:?} body {:?}",
            self.method,
            self.path,
            self.arrived_at.to_rfc3339(),
            self.headers,
            self.text()
        )
    }
}

struct Shared {
    state: Mutex<State>,
    /// The number of requests recorded, so waiters wake on each arrival without polling.
    arrivals: watch::Sender<usize>,
    held: watch::Sender<bool>,
}

struct State {
    received: Vec<Received>,
    script: VecDeque<Prepared>,
    default: Prepared,
}

/// An HTTP/1.1 server on `127.0.0.1:<free port>`, spawned on the current runtime; stopped
/// (with every connection it holds) by [`stop`](Self::stop) or when dropped.
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start() -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("WebhookReceiver: cannot bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("WebhookReceiver: no local address: {e}"));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                received: Vec::new(),
                script: VecDeque::new(),
                default: Prepared::new(Answer::ok()),
            }),
            arrivals: watch::Sender::new(0),
            held: watch::Sender::new(false),
        });
        let acceptor = tokio::spawn(accept(listener, Arc::clone(&shared)));
        WebhookReceiver {
            addr,
            shared,
            acceptor,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.state.lock().received.clone()
    }

    /// Answers for the next requests, one each in order, replacing those not yet used;
    /// once they are used up, the default answer. Panics on an invalid status or header.
    pub fn respond_with(&self, script: Vec<Answer>) {
        let script = script.into_iter().map(Prepared::new).collect();
        self.shared.state.lock().script = script;
    }

    /// The answer once the script is used up (initially [`Answer::ok`]).
    pub fn set_default(&self, answer: Answer) {
        let answer = Prepared::new(answer);
        self.shared.state.lock().default = answer;
    }

    /// Returns every request recorded once there are at least `n`; panics, listing the
    /// ones that did arrive, if `limit` passes first.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let mut arrivals = self.shared.arrivals.subscribe();
        let reached = matches!(
            tokio::time::timeout(limit, arrivals.wait_for(|count| *count >= n)).await,
            Ok(Ok(_))
        );
        let received = self.requests();
        if !reached {
            let listed: String = received
                .iter()
                .enumerate()
                .map(|(i, request)| format!("\n  {}. {request:?}", i + 1))
                .collect();
            panic!(
                "WebhookReceiver: expected at least {n} requests within {limit:?}; {} arrived:{listed}",
                received.len()
            );
        }
        received
    }

    /// From now on, requests are recorded on arrival but not answered until
    /// [`release`](Self::release): a sender can be killed while it waits for an answer.
    pub fn hold(&self) {
        self.shared.held.send_replace(true);
    }

    /// Answers the held requests (each after its delay) and stops holding.
    pub fn release(&self) {
        self.shared.held.send_replace(false);
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

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    // The connections belong to the acceptor so that aborting it closes them too: a
    // kept-alive connection must not deliver to a receiver that was stopped.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { break };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(request, Arc::clone(&shared))
                    });
                    // A sender that goes away mid-request is part of what is tested.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reaps ended connections, so the set does not grow with every sender.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible> {
    let arrived = Instant::now();
    let arrived_at = Utc::now();
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(Body::new(body), MAX_BODY).await else {
        let mut refused = Response::new(Body::empty());
        *refused.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(refused);
    };
    let received = Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body: body.to_vec(),
        arrived,
        arrived_at,
    };
    let answer = {
        let mut state = shared.state.lock();
        state.received.push(received);
        // Published under the lock, so the count never runs ahead of `requests()`.
        shared.arrivals.send_replace(state.received.len());
        state
            .script
            .pop_front()
            .unwrap_or_else(|| state.default.clone())
    };
    let mut held = shared.held.subscribe();
    // `shared` owns the sender, so this ends only on release.
    let _ = held.wait_for(|held| !*held).await;
    tokio::time::sleep(answer.delay).await;
    Ok(answer.response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_BODY: &str = r#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const TOLERANCE: Duration = Duration::from_secs(300);
    const LIMIT: Duration = Duration::from_secs(10);

    fn signed(signature: &str, body: &str) -> Received {
        Received {
            method: "POST".to_owned(),
            path: "/hook".to_owned(),
            query: None,
            headers: vec![
                ("webhook-id".to_owned(), VECTOR_ID.to_owned()),
                ("webhook-timestamp".to_owned(), VECTOR_TIMESTAMP.to_string()),
                ("webhook-signature".to_owned(), signature.to_owned()),
            ],
            body: body.as_bytes().to_vec(),
            arrived: Instant::now(),
            arrived_at: Utc::now(),
        }
    }

    #[test]
    fn the_standard_webhooks_test_vector_verifies() {
        let request = signed(VECTOR_SIGNATURE, VECTOR_BODY);
        assert_eq!(
            request.verify_at(VECTOR_SECRET, VECTOR_TIMESTAMP, TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn any_matching_v1_entry_among_several_verifies() {
        let header = format!("v1,Zm9v v1a,c2lnbmVk {VECTOR_SIGNATURE}");
        let request = signed(&header, VECTOR_BODY);
        assert_eq!(
            request.verify_at(VECTOR_SECRET, VECTOR_TIMESTAMP, TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn a_timestamp_older_than_the_tolerance_is_rejected() {
        let request = signed(VECTOR_SIGNATURE, VECTOR_BODY);
        let later = VECTOR_TIMESTAMP + 301;
        let error = request
            .verify_at(VECTOR_SECRET, later, TOLERANCE)
            .unwrap_err();
        assert!(error.contains("301 s behind"), "{error}");
        let current = request.verify(VECTOR_SECRET, TOLERANCE).unwrap_err();
        assert!(current.contains("behind"), "{current}");
    }

    #[test]
    fn a_timestamp_too_far_ahead_is_rejected() {
        let request = signed(VECTOR_SIGNATURE, VECTOR_BODY);
        let earlier = VECTOR_TIMESTAMP - 301;
        let error = request
            .verify_at(VECTOR_SECRET, earlier, TOLERANCE)
            .unwrap_err();
        assert!(error.contains("ahead of"), "{error}");
    }

    #[test]
    fn a_wrong_secret_is_rejected() {
        let request = signed(VECTOR_SIGNATURE, VECTOR_BODY);
        let other = format!("whsec_{}", STANDARD.encode(b"another secret of this test"));
        let error = request
            .verify_at(&other, VECTOR_TIMESTAMP, TOLERANCE)
            .unwrap_err();
        assert!(error.contains("no v1 entry"), "{error}");
    }

    #[test]
    fn a_changed_body_is_rejected() {
        let request = signed(VECTOR_SIGNATURE, r#"{"test": 2432232315}"#);
        assert!(request
            .verify_at(VECTOR_SECRET, VECTOR_TIMESTAMP, TOLERANCE)
            .is_err());
    }

    #[test]
    fn a_missing_signature_header_is_named() {
        let mut request = signed(VECTOR_SIGNATURE, VECTOR_BODY);
        request
            .headers
            .retain(|(name, _)| name != "webhook-signature");
        let error = request
            .verify_at(VECTOR_SECRET, VECTOR_TIMESTAMP, TOLERANCE)
            .unwrap_err();
        assert!(error.contains("no webhook-signature header"), "{error}");
    }

    /// Sends one HTTP/1.1 request on `stream` and reads the answer: status and body.
    async fn exchange(stream: &mut TcpStream, head: &str, body: &str) -> (u16, String, String) {
        let request = format!(
            "{head}\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        let split = loop {
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the connection closed before an answer");
            answer.extend_from_slice(&buffer[..n]);
        };
        let head = String::from_utf8(answer[..split].to_vec()).unwrap();
        let length: usize = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while answer.len() < split + length {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the connection closed before the end of the body");
            answer.extend_from_slice(&buffer[..n]);
        }
        let status = head[9..12].parse().unwrap();
        let body = String::from_utf8(answer[split..].to_vec()).unwrap();
        (status, head, body)
    }

    async fn post(receiver: &WebhookReceiver, path: &str, body: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(receiver.addr()).await.unwrap();
        exchange(&mut stream, &format!("POST {path} HTTP/1.1"), body).await
    }

    #[tokio::test]
    async fn requests_are_recorded_in_order_with_lower_cased_header_names() {
        let receiver = WebhookReceiver::start().await;
        let mut stream = TcpStream::connect(receiver.addr()).await.unwrap();
        let first = "POST /hooks/a?attempt=1 HTTP/1.1\r\nX-Custom-Name: One\r\nContent-Type: application/json";
        let (status, _, body) = exchange(&mut stream, first, r#"{"n": 1}"#).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
        exchange(&mut stream, "PUT /hooks/b HTTP/1.1", "second").await;

        let received = receiver.requests();
        assert_eq!(received.len(), 2);
        assert_eq!(received[0].method, "POST");
        assert_eq!(received[0].path, "/hooks/a");
        assert_eq!(received[0].query.as_deref(), Some("attempt=1"));
        assert!(received[0]
            .headers
            .contains(&("x-custom-name".to_owned(), "One".to_owned())));
        assert_eq!(received[0].header("X-Custom-Name"), Some("One"));
        assert_eq!(received[0].json()["n"], 1);
        assert_eq!(received[1].method, "PUT");
        assert_eq!(received[1].text(), "second");
        assert!(received[0].arrived <= received[1].arrived);
        assert!(received[0].arrived_at <= received[1].arrived_at);
    }

    #[tokio::test]
    async fn scripted_answers_are_used_in_order_and_then_the_default() {
        let receiver = WebhookReceiver::start().await;
        receiver.respond_with(vec![
            Answer::status(503).with_header("Retry-After", "7"),
            Answer::ok().with_body("second"),
        ]);
        receiver.set_default(Answer::status(204));

        let (status, head, _) = post(&receiver, "/h", "1").await;
        assert_eq!(status, 503);
        assert!(
            head.to_ascii_lowercase().contains("retry-after: 7"),
            "{head}"
        );
        assert_eq!(post(&receiver, "/h", "2").await.2, "second");
        assert_eq!(post(&receiver, "/h", "3").await.0, 204);
        assert_eq!(post(&receiver, "/h", "4").await.0, 204);
    }

    #[tokio::test]
    async fn a_delayed_answer_comes_no_sooner_than_its_delay() {
        let receiver = WebhookReceiver::start().await;
        let delay = Duration::from_millis(150);
        receiver.respond_with(vec![Answer::ok().with_delay(delay)]);
        let started = Instant::now();
        assert_eq!(post(&receiver, "/slow", "").await.0, 200);
        assert!(started.elapsed() >= delay);
    }

    #[tokio::test]
    async fn wait_for_returns_once_enough_requests_have_arrived() {
        let receiver = WebhookReceiver::start().await;
        let addr = receiver.addr();
        let sender = tokio::spawn(async move {
            for n in 0..3 {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                exchange(&mut stream, "POST /n HTTP/1.1", &n.to_string()).await;
            }
        });
        let received = receiver.wait_for(3, LIMIT).await;
        let bodies: Vec<String> = received.iter().map(Received::text).collect();
        assert_eq!(bodies, ["0", "1", "2"]);
        sender.await.unwrap();
    }

    #[tokio::test]
    #[should_panic(
        expected = "expected at least 2 requests within 50ms; 1 arrived:\n  1. POST /only"
    )]
    async fn wait_for_panics_listing_what_did_arrive() {
        let receiver = WebhookReceiver::start().await;
        post(&receiver, "/only", "lonely").await;
        receiver.wait_for(2, Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn a_held_request_is_recorded_on_arrival_and_answered_on_release() {
        let receiver = WebhookReceiver::start().await;
        receiver.hold();
        let addr = receiver.addr();
        let mut sender = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            exchange(&mut stream, "POST /held HTTP/1.1", "payload")
                .await
                .0
        });
        let received = receiver.wait_for(1, LIMIT).await;
        assert_eq!(received[0].text(), "payload");
        let early = tokio::time::timeout(Duration::from_millis(100), &mut sender).await;
        assert!(early.is_err(), "a held request was answered");
        receiver.release();
        assert_eq!(sender.await.unwrap(), 200);
    }

    #[tokio::test]
    async fn stop_closes_the_port_and_kept_alive_connections() {
        let receiver = WebhookReceiver::start().await;
        let addr = receiver.addr();
        let mut kept = TcpStream::connect(addr).await.unwrap();
        exchange(&mut kept, "POST /k HTTP/1.1", "").await;
        receiver.stop().await;

        let mut rest = Vec::new();
        let closed = tokio::time::timeout(LIMIT, kept.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[test]
    #[should_panic(expected = "1000 is not an HTTP status")]
    fn an_invalid_status_panics_where_it_is_given() {
        Prepared::new(Answer::status(1000));
    }
}
