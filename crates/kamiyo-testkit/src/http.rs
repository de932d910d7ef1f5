//! An HTTP client over any [`axum::Router`], in process: requests go through the whole
//! router (middleware, extractors, error mapping) with `oneshot`, with no socket. Tests
//! that need real connections (deadlines, connection caps, shutdown) speak HTTP over TCP
//! instead.
//!
//! ```ignore
//! let client = Client::new(router(state));
//! let answer = client.get("/api/me").bearer(&key).from("192.0.2.1:4000").await;
//! assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
//! assert_eq!(answer.json()["tier"], "pro");
//! ```

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

/// The largest answer a test reads; far above any page the API sends.
const MAX_BODY: usize = 1 << 24;

/// Sends requests to one router. Cloning is cheap (the router is shared).
#[derive(Clone)]
pub struct Client {
    router: Router,
}

impl Client {
    pub fn new(router: Router) -> Client {
        Client { router }
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn get(&self, path: &str) -> Request {
        self.request(Method::GET, path)
    }

    /// A POST whose body is `json`, with `content-type: application/json`.
    pub fn post(&self, path: &str, json: Value) -> Request {
        self.request(Method::POST, path).json(json)
    }

    /// A POST of an HTML form's fields (`application/x-www-form-urlencoded`).
    pub fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> Request {
        self.request(Method::POST, path).form(pairs)
    }

    pub fn delete(&self, path: &str) -> Request {
        self.request(Method::DELETE, path)
    }

    /// A request with any method, e.g. one named by an OpenAPI document
    /// (`Method::from_bytes(b"GET")`).
    pub fn request(&self, method: Method, path: &str) -> Request {
        Request {
            router: self.router.clone(),
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
            peer: None,
        }
    }
}

/// One request being built; `.await` sends it and gives its [`Response`].
#[must_use = "a request does nothing until awaited"]
pub struct Request {
    router: Router,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    peer: Option<SocketAddr>,
}

impl Request {
    /// Sets a header, replacing any value set before under that name.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Without credentials, whatever default the request was made with.
    pub fn anonymous(mut self) -> Request {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
        self
    }

    /// `authorization: Bearer <key>`.
    pub fn bearer(self, key: &str) -> Request {
        self.header("authorization", format!("Bearer {key}"))
    }

    /// `authorization: Bearer <key>` when there is a key; anonymous otherwise.
    pub fn bearer_opt(self, key: Option<&str>) -> Request {
        match key {
            Some(key) => self.bearer(key),
            None => self,
        }
    }

    /// `json` as the body, with `content-type: application/json`.
    pub fn json(self, json: Value) -> Request {
        self.raw_json(json.to_string())
    }

    /// `text` sent as is with `content-type: application/json`: for bodies that are
    /// not valid JSON on purpose.
    pub fn raw_json(mut self, text: impl Into<String>) -> Request {
        self.body = Some(text.into());
        self.header("content-type", "application/json")
    }

    /// `pairs` as an HTML form's body (`application/x-www-form-urlencoded`).
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Request {
        self.body = Some(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish(),
        );
        self.header("content-type", "application/x-www-form-urlencoded")
    }

    /// The peer address the server sees (`ConnectInfo`), e.g. `"192.0.2.1:4000"`;
    /// without it the request carries none, as a router called in process sees.
    pub fn from(mut self, peer: &str) -> Request {
        self.peer = Some(
            peer.parse()
                .unwrap_or_else(|e| panic!("peer {peer:?} is not a socket address: {e}")),
        );
        self
    }

    pub async fn send(self) -> Response {
        let what = format!("{} {}", self.method, self.path);
        let mut request = axum::http::Request::builder()
            .method(self.method)
            .uri(&self.path);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let body = self.body.map_or_else(Body::empty, Body::from);
        let mut request = request
            .body(body)
            .unwrap_or_else(|e| panic!("{what}: not a valid request: {e}"));
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = self
            .router
            .oneshot(request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = axum::body::to_bytes(response.into_body(), MAX_BODY)
            .await
            .unwrap_or_else(|e| panic!("{what}: cannot read the body: {e}"));
        Response {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

impl IntoFuture for Request {
    type Output = Response;
    type IntoFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A whole answer: status, headers and body (as text; lossy for non-UTF-8 bytes).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Response {
    /// The body as JSON; panics showing the status and body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text))
    }

    /// A header's value, when present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
