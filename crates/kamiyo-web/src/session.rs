//! Signing in to the dashboard with an API key, and the forms' CSRF tokens.
//!
//! The session cookie holds the key itself, encrypted and authenticated
//! (ChaCha20-Poly1305 under a key derived from `web.session_secret`) with its expiry:
//! whoever copies the cookie out of a browser's storage learns no key, and an altered or
//! expired cookie opens to nothing. It is `HttpOnly` (no script reads it),
//! `SameSite=Strict` (no other site's page sends it) and `Secure` over TLS. A layer in
//! front of the API router turns it into `Authorization: Bearer <key>` for the dashboard's
//! own paths only, so the guard identifies and rate-limits a signed-in visitor exactly as
//! it would the same key on the API; `/api/*` never reads the cookie, so no other site can
//! spend a visitor's key through it.
//!
//! Every form that changes something carries a token: an HMAC of a random nonce held in
//! the visitor's own cookie and of their session (double submit, signed and bound to the
//! session). A page on another site can neither read the token nor, with
//! `SameSite=Strict`, send the cookies; a nonce planted by a sibling site is replaced at
//! sign-in and sign-out, and a token minted for one session is refused in another.

use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::{SecureCookie, WebConfig};

pub const SESSION_COOKIE: &str = "kamiyo_session";
pub const CSRF_COOKIE: &str = "kamiyo_csrf";
/// The hidden field every state-changing form carries.
pub const CSRF_FIELD: &str = "csrf";
/// Bytes of a CSRF nonce (base64url: 22 characters).
const NONCE_BYTES: usize = 16;
/// What the session's ciphertext is bound to: a value encrypted for another purpose under
/// the same key does not open as a session.
const SESSION_AAD: &[u8] = b"kamiyo-session-v2";
const FLASH_AAD: &[u8] = b"kamiyo-flash-v1";
/// The cookie that carries a secret across the redirect after a form (shown once).
pub const FLASH_COOKIE: &str = "kamiyo_flash";

/// The keys sessions are sealed with and CSRF tokens signed with, both derived from
/// `web.session_secret`.
pub struct Signer {
    mac_key: Vec<u8>,
    cipher: ChaCha20Poly1305,
}

/// The CSRF nonce of this request's visitor (from their cookie, or drawn now and set on
/// the answer).
#[derive(Debug, Clone)]
pub struct CsrfNonce(pub String);

/// Set on a page request whose session cookie opened: the visitor signed in. Holds a
/// digest of the cookie, which CSRF tokens are bound to.
#[derive(Debug, Clone)]
pub struct SignedIn(pub String);

impl Signer {
    /// `web.session_secret`, or a random key for this process (with a warning: sessions
    /// end at a restart and do not cross instances).
    pub fn new(config: &WebConfig) -> Signer {
        let secret = match &config.session_secret {
            Some(secret) => secret.expose_secret().as_bytes().to_vec(),
            None => {
                tracing::warn!(
                    "web.session_secret is not set: dashboard sessions are sealed with a random key, \
                     so they end when this process restarts and are not valid on other instances"
                );
                let mut key = vec![0u8; 32];
                rand::rng().fill_bytes(&mut key);
                key
            }
        };
        // One secret, two keys: what encrypts sessions never signs a token. The secret
        // is at least 32 bytes (validated) or random, so a hash of it is a fine key.
        let derive = |purpose: &[u8]| -> [u8; 32] {
            let mut hash = Sha256::new();
            hash.update(purpose);
            hash.update([0u8]);
            hash.update(&secret);
            hash.finalize().into()
        };
        let encryption = derive(b"kamiyo session encryption");
        Signer {
            mac_key: derive(b"kamiyo csrf signing").to_vec(),
            cipher: ChaCha20Poly1305::new(&encryption.into()),
        }
    }

    fn mac(&self, parts: &[&str]) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key).ok()?;
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        Some(mac)
    }

    /// The session cookie's value for `api_key`, valid until `expires`.
    pub fn session(&self, api_key: &str, expires: DateTime<Utc>) -> String {
        self.seal(SESSION_AAD, api_key, expires)
    }

    /// The API key of a session cookie this service sealed, unaltered and unexpired at
    /// `now`.
    pub fn open_session(&self, value: &str, now: DateTime<Utc>) -> Option<String> {
        self.open(SESSION_AAD, value, now)
    }

    /// A short-lived cookie's value carrying `text` (a secret shown once after a
    /// redirect), sealed like a session.
    pub fn flash(&self, text: &str, expires: DateTime<Utc>) -> String {
        self.seal(FLASH_AAD, text, expires)
    }

    pub fn open_flash(&self, value: &str, now: DateTime<Utc>) -> Option<String> {
        self.open(FLASH_AAD, value, now)
    }

    /// `text` with its expiry, encrypted and authenticated for `purpose`:
    /// `v2.` + base64url(nonce, ciphertext).
    fn seal(&self, purpose: &[u8], text: &str, expires: DateTime<Utc>) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let mut plain = expires.timestamp().to_be_bytes().to_vec();
        plain.extend_from_slice(text.as_bytes());
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: purpose,
                },
            )
            .unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("v2.{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    fn open(&self, purpose: &[u8], value: &str, now: DateTime<Utc>) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(value.strip_prefix("v2.")?).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: purpose,
                },
            )
            .ok()?;
        let (expires, text) = plain.split_at_checked(8)?;
        let expires = i64::from_be_bytes(expires.try_into().ok()?);
        if expires <= now.timestamp() {
            return None;
        }
        String::from_utf8(text.to_vec()).ok()
    }

    /// The token a form carries for the visitor holding `nonce`, in session `session`
    /// (a [`SignedIn`] digest; empty when signed out).
    pub fn csrf_token(&self, nonce: &CsrfNonce, session: &str) -> String {
        match self.mac(&["csrf", &nonce.0, session]) {
            Some(mac) => URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()),
            None => String::new(),
        }
    }

    pub fn csrf_matches(&self, nonce: &CsrfNonce, session: &str, token: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        // Constant time: a forger learns nothing from how long a refusal took.
        is_nonce(&nonce.0)
            && self
                .mac(&["csrf", &nonce.0, session])
                .is_some_and(|mac| mac.verify_slice(&given).is_ok())
    }
}

/// A digest of a session cookie's value, for binding CSRF tokens to it.
pub fn session_digest(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

/// What [`new_nonce`] draws: 22 base64url characters. Anything else in the cookie (a
/// value another site planted, say) is replaced.
pub fn is_nonce(text: &str) -> bool {
    text.len() == 22
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh CSRF nonce: 128 random bits.
pub fn new_nonce() -> CsrfNonce {
    let mut bytes = [0u8; NONCE_BYTES];
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
        // Nothing of the key shows, in any encoding.
        assert!(!value.contains("kmy_secret"));
        assert!(!value.contains(&URL_SAFE_NO_PAD.encode("kmy_secret.key")));
        // Any changed byte opens to nothing.
        let mut bytes = URL_SAFE_NO_PAD.decode(&value[3..]).unwrap_or_default();
        let last = bytes.len() - 1;
        for i in [0, 12, last] {
            bytes[i] ^= 1;
            let altered = format!("v2.{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert_eq!(s.open_session(&altered, now), None, "byte {i}");
            bytes[i] ^= 1;
        }
        assert_eq!(s.open_session("garbage", now), None);
        assert_eq!(s.open_session("v2.", now), None);
        // A flash does not open as a session, nor a session as a flash.
        let flash = s.flash("whsec_x", now + chrono::Duration::minutes(1));
        assert_eq!(s.open_session(&flash, now), None);
        assert_eq!(s.open_flash(&value, now), None);
        assert_eq!(s.open_flash(&flash, now).as_deref(), Some("whsec_x"));
    }

    #[test]
    fn a_csrf_token_matches_its_own_nonce_and_session_only() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let a = new_nonce();
        let b = new_nonce();
        let token = s.csrf_token(&a, "");
        assert!(s.csrf_matches(&a, "", &token));
        assert!(!s.csrf_matches(&b, "", &token));
        assert!(!s.csrf_matches(&a, "", ""));
        // Bound to the session: a token of the signed-out page fails once signed in.
        assert!(!s.csrf_matches(&a, "session-digest", &token));
        // A nonce not of our making is refused whatever token comes with it.
        let planted = CsrfNonce("attacker".into());
        assert!(!s.csrf_matches(&planted, "", &s.csrf_token(&planted, "")));
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
