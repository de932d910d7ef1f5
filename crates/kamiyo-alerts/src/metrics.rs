//! This instance's alert deliveries, for `/metrics`: attempts by channel and outcome, and
//! the latency from the change's commit to the receiver's 2xx. Prometheus sums the
//! instances; the outbox's backlog is read from the database at each scrape (it is
//! shared).

use std::collections::HashMap;
use std::time::Duration;

use kamiyo_db::monitor::histogram::Histogram;
use kamiyo_db::monitor::prometheus::Exposition;
use parking_lot::Mutex;

#[derive(Debug, Default)]
pub struct AlertMetrics {
    attempts: Mutex<HashMap<(String, &'static str), u64>>,
    latency: Mutex<Histogram>,
}

impl AlertMetrics {
    /// An attempt on `channel` ended as `outcome` (`delivered`, `retry`, `failed`,
    /// `gone`); `latency`: from the change's commit, when delivered.
    pub fn attempted(&self, channel: &str, outcome: &'static str, latency: Option<Duration>) {
        *self
            .attempts
            .lock()
            .entry((channel.to_owned(), outcome))
            .or_insert(0) += 1;
        if let Some(latency) = latency {
            self.latency.lock().record(latency);
        }
    }

    /// Writes the counters, the histogram and `outbox_pending` (read by the caller).
    pub fn write(&self, exposition: &mut Exposition, outbox_pending: Option<i64>) {
        let mut rows: Vec<(String, &'static str, u64)> = self
            .attempts
            .lock()
            .iter()
            .map(|((channel, outcome), n)| (channel.clone(), *outcome, *n))
            .collect();
        rows.sort();
        let labels: Vec<[(&str, &str); 2]> = rows
            .iter()
            .map(|(channel, outcome, _)| [("channel", channel.as_str()), ("outcome", *outcome)])
            .collect();
        let samples: Vec<(&[(&str, &str)], u64)> = labels
            .iter()
            .zip(&rows)
            .map(|(l, (_, _, n))| (l.as_slice(), *n))
            .collect();
        exposition.counter(
            "kamiyo_alert_deliveries_total",
            "Delivery attempts by this instance, by channel and outcome (delivered, retry, failed, gone).",
            &samples,
        );
        let latency = self.latency.lock().clone();
        exposition.histogram(
            "kamiyo_alert_delivery_latency_seconds",
            "From an incident change's commit to the receiver's 2xx, for deliveries by this instance.",
            &[(&[], &latency)],
        );
        if let Some(pending) = outbox_pending {
            exposition.gauge(
                "kamiyo_alert_outbox_pending",
                "Incident changes written and not yet matched against the subscriptions.",
                &[(&[], pending as f64)],
            );
        }
    }
}
