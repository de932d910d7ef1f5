//! HTTP request metrics, labelled by route template (`/api/metrics/queries`), never by
//! the raw path: the number of series stays bounded whatever clients send.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kamiyo_db::monitor::histogram::Histogram;
use kamiyo_db::monitor::prometheus::Exposition;
use parking_lot::Mutex;

/// Route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

#[derive(Debug, Default)]
pub struct HttpMetrics {
    series: Mutex<HashMap<(String, String, u16), Histogram>>,
}

impl HttpMetrics {
    fn record(&self, method: &str, route: &str, status: u16, elapsed: std::time::Duration) {
        let mut series = self.series.lock();
        series
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default()
            .record(elapsed);
    }

    pub fn write(&self, exposition: &mut Exposition) {
        let mut snapshot: Vec<((String, String, u16), Histogram)> = self
            .series
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        snapshot.sort_by(|a, b| a.0.cmp(&b.0));
        let statuses: Vec<String> = snapshot
            .iter()
            .map(|((_, _, s), _)| s.to_string())
            .collect();
        let labels: Vec<[(&str, &str); 3]> = snapshot
            .iter()
            .zip(&statuses)
            .map(|(((method, route, _), _), status)| {
                [
                    ("http_request_method", method.as_str()),
                    ("http_route", route.as_str()),
                    ("http_response_status_code", status.as_str()),
                ]
            })
            .collect();
        let series: Vec<_> = labels
            .iter()
            .zip(&snapshot)
            .map(|(l, (_, h))| (&l[..], h))
            .collect();
        exposition.histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP requests, by method, route template and status.",
            &series,
        );
    }
}

/// Middleware: times each request and records it under its route template.
pub async fn track(
    State(metrics): State<std::sync::Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics.record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
