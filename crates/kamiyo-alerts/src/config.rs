//! `alerts.*` settings: how often and how hard the service delivers, and where to.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backoff::RetryPolicy;

pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_BATCH_SIZE: i64 = 100;
pub const DEFAULT_CONCURRENCY: usize = 32;
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
pub const DEFAULT_DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Dispatch and deliver alerts in `kamiyo serve`.
    pub enabled: bool,
    /// The longest a new event or a due retry waits when no notification wakes the
    /// dispatcher (a lost `NOTIFY`, SQLite, another instance's writes).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Wake up on PostgreSQL `NOTIFY` from the transactions that write events.
    pub listen: bool,
    /// Events matched, or deliveries claimed, per round.
    pub batch_size: i64,
    /// Deliveries in flight at once per instance.
    pub concurrency: usize,
    /// How long a claimed delivery is this instance's: longer than `timeout`, so that
    /// a delivery in flight is never claimed by another instance.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// One attempt's deadline (connect, send, answer).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Deliver to private, loopback and link-local addresses (tests, private
    /// deployments); refused by default, on the address connected to.
    pub allow_private_targets: bool,
    /// A subscription whose every delivery failed for this long is disabled.
    #[serde(with = "humantime_serde")]
    pub disable_after: Duration,
    /// Retries: a full-jitter delay under `base · 2^(n-1)`, at most `cap`, until
    /// `window` after the first attempt; a `Retry-After` up to `max_retry_after`.
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_cap: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_window: Duration,
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// Bytes of a receiver's answer kept in the delivery log.
    pub response_body_limit: usize,
    /// The Telegram Bot API's base URL.
    pub telegram_api_url: String,
    /// The service's public base URL, for links in chat and email alerts.
    pub public_url: Option<String>,
    /// The mail server email alerts go through; without `alerts.smtp.host` the email
    /// channel is refused.
    pub smtp: SmtpConfig,
}

/// How the connection to the mail server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587), required.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or network (and tests).
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: Option<String>,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    /// Never printed (`kamiyo config` shows `***`).
    pub password: Option<SmtpPassword>,
    /// The sender address of alerts.
    pub from: String,
    /// One message's deadline (connect, send, answer).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: None,
            port: 587,
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            from: "Kamiyo alerts <alerts@localhost>".into(),
            timeout: Duration::from_secs(15),
        }
    }
}

/// A password that serialises as `***` and prints as `SmtpPassword(***)`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SmtpPassword(pub secrecy::SecretString);

impl std::fmt::Debug for SmtpPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpPassword(***)")
    }
}

impl Serialize for SmtpPassword {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        AlertsConfig {
            enabled: true,
            poll_interval: DEFAULT_POLL_INTERVAL,
            listen: true,
            batch_size: DEFAULT_BATCH_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            lease: DEFAULT_LEASE,
            timeout: crate::target::DEFAULT_TIMEOUT,
            connect_timeout: crate::target::DEFAULT_CONNECT_TIMEOUT,
            allow_private_targets: false,
            disable_after: DEFAULT_DISABLE_AFTER,
            retry_base: retry.base,
            retry_cap: retry.cap,
            retry_window: retry.window,
            max_retry_after: retry.max_retry_after,
            response_body_limit: crate::target::DEFAULT_BODY_LIMIT,
            telegram_api_url: DEFAULT_TELEGRAM_API_URL.into(),
            public_url: None,
            smtp: SmtpConfig::default(),
        }
    }
}

impl AlertsConfig {
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            base: self.retry_base,
            cap: self.retry_cap,
            window: self.retry_window,
            max_retry_after: self.max_retry_after,
        }
    }

    /// Refuses settings that cannot work, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("poll_interval", self.poll_interval),
            ("lease", self.lease),
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
            ("disable_after", self.disable_after),
            ("retry_base", self.retry_base),
            ("retry_cap", self.retry_cap),
            ("retry_window", self.retry_window),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(format!("alerts.{name} must be greater than zero"));
        }
        if self.lease <= self.timeout {
            return Err(
                "alerts.lease must be longer than alerts.timeout (a delivery in flight would be claimed twice)"
                    .into(),
            );
        }
        if self.smtp.host.is_some() {
            if self.smtp.timeout.is_zero() {
                return Err("alerts.smtp.timeout must be greater than zero".into());
            }
            if self.lease <= self.smtp.timeout {
                return Err(
                    "alerts.lease must be longer than alerts.smtp.timeout (a message in flight would be claimed twice)"
                        .into(),
                );
            }
            if self.smtp.from.parse::<lettre::message::Mailbox>().is_err() {
                return Err(format!(
                    "alerts.smtp.from: {:?} is not a mail address",
                    self.smtp.from
                ));
            }
            if self.smtp.username.is_some() != self.smtp.password.is_some() {
                return Err("alerts.smtp.username and alerts.smtp.password go together".into());
            }
        }
        if self.batch_size < 1 || self.concurrency == 0 {
            return Err("alerts.batch_size and alerts.concurrency must be at least 1".into());
        }
        Ok(())
    }

    /// Whether the email channel can be delivered.
    pub fn email_configured(&self) -> bool {
        self.smtp.host.is_some()
    }

    pub fn client(&self) -> crate::target::ClientConfig {
        crate::target::ClientConfig {
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            allow_private_targets: self.allow_private_targets,
            ..crate::target::ClientConfig::default()
        }
    }
}
