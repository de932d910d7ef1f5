//! Signing in to the dashboard with an API key, and the forms' CSRF tokens.
//!
//! The session cookie holds the key itself, signed (HMAC-SHA256 under
//! `web.session_secret`) with its expiry, `HttpOnly` (no script reads it),
//! `SameSite=Strict` (no other site's page sends it) and `Secure` over TLS. A layer in
//! front of the API router turns it into `Authorization: Bearer <key>` for page paths
//! only, so the guard identifies and rate-limits a signed-in visitor exactly as it would
//! the same key on the API; `/api/*` never reads the cookie, so no other site can spend
//! a visitor's key through it.
//!
//! Every form that changes something carries a token bound to a random nonce cookie
//! (double submit, signed): a page on another site can neither read the token nor, with
//! `SameSite=Strict`, send the cookie.

use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::config::{SecureCookie, WebConfig};

pub const SESSION_COOKIE: &str = "kamiyo_session";
pub const CSRF_COOKIE: &str = "kamiyo_csrf";
/// The hidden field every state-changing form carries.
pub const CSRF_FIELD: &str = "csrf";

/// The key sessions and CSRF tokens are signed with.
pub struct Signer {
    key: Vec<u8>,
}

/// The CSRF nonce of this request's visitor (from their cookie, or drawn now and set on
/// the answer).
#[derive(Debug, Clone)]
pub struct CsrfNonce(pub String);

/// Set on a page request whose session cookie was valid: the visitor signed in.
#[derive(Debug, Clone, Copy)]
pub struct SignedIn;

impl Signer {
    /// `web.session_secret`, or a random key for this process (with a warning: sessions
    /// end at a restart and do not cross instances).
    pub fn new(config: &WebConfig) -> Signer {
        match &config.session_secret {
            Some(secret) => Signer {
                key: secret.expose_secret().as_bytes().to_vec(),
            },
            None => {
                tracing::warn!(
                    "web.session_secret is not set: dashboard sessions are signed with a random key, \
                     so they end when this process restarts and are not valid on other instances"
                );
                let mut key = vec![0u8; 32];
                rand::rng().fill_bytes(&mut key);
                Signer { key }
            }
        }
    }

    fn mac(&self, purpose: &str, payload: &str) -> Vec<u8> {
        // new_from_slice fails only for key sizes HMAC cannot take; it takes any.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return Vec::new();
        };
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(payload.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn verify(&self, purpose: &str, payload: &str, signature: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return false;
        };
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(payload.as_bytes());
        // Constant time: a forger learns nothing from how long a refusal took.
        mac.verify_slice(&given).is_ok()
    }

    /// The session cookie's value for `api_key`, valid until `expires`.
    pub fn session(&self, api_key: &str, expires: DateTime<Utc>) -> String {
        let payload = format!(
            "{}.{}",
            expires.timestamp(),
            URL_SAFE_NO_PAD.encode(api_key.as_bytes())
        );
        let signature = URL_SAFE_NO_PAD.encode(self.mac("session", &payload));
        format!("v1.{payload}.{signature}")
    }

    /// The API key of a session cookie that this service signed and that has not expired
    /// at `now`.
    pub fn open_session(&self, value: &str, now: DateTime<Utc>) -> Option<String> {
        let rest = value.strip_prefix("v1.")?;
        let (payload, signature) = rest.rsplit_once('.')?;
        if !self.verify("session", payload, signature) {
            return None;
        }
        let (expires, key) = payload.split_once('.')?;
        if expires.parse::<i64>().ok()? <= now.timestamp() {
            return None;
        }
        String::from_utf8(URL_SAFE_NO_PAD.decode(key).ok()?).ok()
    }

    /// The token a form carries for the visitor holding `nonce`.
    pub fn csrf_token(&self, nonce: &CsrfNonce) -> String {
        URL_SAFE_NO_PAD.encode(self.mac("csrf", &nonce.0))
    }

    pub fn csrf_matches(&self, nonce: &CsrfNonce, token: &str) -> bool {
        !nonce.0.is_empty() && self.verify("csrf", &nonce.0, token)
    }
}

/// A fresh CSRF nonce: 128 random bits.
pub fn new_nonce() -> CsrfNonce {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    CsrfNonce(URL_SAFE_NO_PAD.encode(bytes))
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Whether the request reached us over TLS: `X-Forwarded-Proto: https` from a proxy the
/// operator trusts (`server.trusted_proxy_header` set), or the URI's own scheme.
pub fn over_tls(headers: &HeaderMap, uri: &axum::http::Uri, behind_proxy: bool) -> bool {
    uri.scheme_str() == Some("https")
        || (behind_proxy
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https")))
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` as
/// `web.secure_cookie` and the request's scheme say. `max_age` zero deletes it.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age_secs: u64,
    secure: SecureCookie,
    tls: bool,
) -> Option<HeaderValue> {
    let secure = match secure {
        SecureCookie::Always => true,
        SecureCookie::Never => false,
        SecureCookie::Auto => tls,
    };
    let text = format!(
        "{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn signer(secret: &str) -> Signer {
        Signer::new(&WebConfig {
            session_secret: Some(SecretString::from(secret.to_owned())),
            ..WebConfig::default()
        })
    }

    #[test]
    fn a_session_opens_only_unaltered_unexpired_and_under_its_own_key() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let now = Utc::now();
        let value = s.session("kmy_secret.key", now + chrono::Duration::hours(1));
        assert_eq!(
            s.open_session(&value, now).as_deref(),
            Some("kmy_secret.key")
        );
        assert_eq!(
            s.open_session(&value, now + chrono::Duration::hours(2)),
            None
        );
        let other = signer("fedcba9876543210fedcba9876543210");
        assert_eq!(other.open_session(&value, now), None);
        // Another key with the first one's signature.
        let forged = value.replacen(
            &URL_SAFE_NO_PAD.encode("kmy_secret.key"),
            &URL_SAFE_NO_PAD.encode("kmy_other"),
            1,
        );
        assert_eq!(s.open_session(&forged, now), None);
        // A later expiry with the first one's signature.
        let (_, rest) = value.split_at(3);
        let forged = format!("v1.9{rest}");
        assert_eq!(s.open_session(&forged, now), None);
        assert_eq!(s.open_session("garbage", now), None);
    }

    #[test]
    fn a_csrf_token_matches_its_own_nonce_only() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let a = new_nonce();
        let b = new_nonce();
        let token = s.csrf_token(&a);
        assert!(s.csrf_matches(&a, &token));
        assert!(!s.csrf_matches(&b, &token));
        assert!(!s.csrf_matches(&a, ""));
        assert!(!s.csrf_matches(
            &CsrfNonce(String::new()),
            &s.csrf_token(&CsrfNonce(String::new()))
        ));
    }

    #[test]
    fn cookies_are_found_among_several_headers_and_flags_follow_the_setting() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; kamiyo_csrf=xyz"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("kamiyo_session=v1.s"),
        );
        assert_eq!(cookie(&headers, CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("v1.s"));
        assert_eq!(cookie(&headers, "missing"), None);
        let plain = set_cookie("n", "v", 60, SecureCookie::Auto, false)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let tls = set_cookie("n", "v", 60, SecureCookie::Auto, true)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        assert!(tls.ends_with("; Secure"));
    }
}
