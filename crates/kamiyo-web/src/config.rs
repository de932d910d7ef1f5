//! `web.*`: the dashboard's settings.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Shortest `web.session_secret` accepted: an HMAC key guessable in less than 2^128
/// tries would let anyone forge a session cookie.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the dashboard at `/` (the API is served either way).
    pub enabled: bool,
    /// Key that signs the session and CSRF cookies, at least 32 bytes. Every instance
    /// behind one load balancer needs the same one. When absent, each process draws a
    /// random key at start: sessions then end when it restarts, and do not carry across
    /// instances.
    #[serde(skip_serializing)]
    pub session_secret: Option<SecretString>,
    /// How long a sign-in lasts.
    #[serde(with = "humantime_serde")]
    pub session_max_age: Duration,
    /// When the session cookie is marked `Secure`: `auto` (when the request came over
    /// TLS, as a trusted proxy's `X-Forwarded-Proto: https` says), `always`, `never`.
    pub secure_cookie: SecureCookie,
    /// Figures older than this (the overview's totals, charts and latest incidents, the
    /// sources' health) are rebuilt in the background while the page shows them.
    #[serde(with = "humantime_serde")]
    pub overview_refresh: Duration,
    /// Figures older than this are rebuilt while the page waits (after a quiet spell).
    #[serde(with = "humantime_serde")]
    pub overview_max_stale: Duration,
    /// Most sets of figures kept (one per window and tier rule); the oldest makes room.
    pub overview_max_entries: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookie {
    Auto,
    Always,
    Never,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            session_secret: None,
            session_max_age: Duration::from_secs(7 * 24 * 3600),
            secure_cookie: SecureCookie::Auto,
            overview_refresh: Duration::from_secs(5),
            overview_max_stale: Duration::from_secs(600),
            overview_max_entries: 64,
        }
    }
}

impl WebConfig {
    /// Refuses what would make sessions unsafe or pages unbounded; the message names the
    /// key.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(secret) = &self.session_secret {
            if secret.expose_secret().len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "web.session_secret must be at least {MIN_SECRET_BYTES} bytes"
                ));
            }
        }
        if self.session_max_age < Duration::from_secs(60)
            || self.session_max_age > Duration::from_secs(366 * 24 * 3600)
        {
            return Err("web.session_max_age must be between 1 minute and 366 days".into());
        }
        if self.overview_refresh.is_zero() || self.overview_refresh > Duration::from_secs(3600) {
            return Err("web.overview_refresh must be between 1ms and 1 hour".into());
        }
        if self.overview_max_stale < self.overview_refresh
            || self.overview_max_stale > Duration::from_secs(24 * 3600)
        {
            return Err(
                "web.overview_max_stale must be at least web.overview_refresh and at most 1 day"
                    .into(),
            );
        }
        if !(1..=10_000).contains(&self.overview_max_entries) {
            return Err("web.overview_max_entries must be between 1 and 10000".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_secret_or_an_unbounded_session_is_refused_naming_the_key() {
        let short = WebConfig {
            session_secret: Some(SecretString::from("too short")),
            ..WebConfig::default()
        };
        assert!(short.validate().unwrap_err().contains("web.session_secret"));
        let forever = WebConfig {
            session_max_age: Duration::from_secs(10 * 366 * 24 * 3600),
            ..WebConfig::default()
        };
        assert!(forever
            .validate()
            .unwrap_err()
            .contains("web.session_max_age"));
        assert!(WebConfig::default().validate().is_ok());
    }
}
