//! What a page handler knows about its request: who is looking (the guard's [`Caller`]),
//! whether through a session, the CSRF token for its forms, and where it is.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use kamiyo_api::{ApiError, AppState, Caller};

use crate::session::{CsrfNonce, SignedIn};
use crate::Dashboard;

pub struct Ctx {
    pub caller: Caller,
    /// Signed in through the dashboard's session (not a header of the visitor's own).
    pub signed_in: bool,
    /// The token this visitor's forms carry.
    pub csrf: String,
    /// The digest of the visitor's session cookie, which CSRF tokens are bound to.
    pub session: Option<String>,
    pub nonce: CsrfNonce,
    pub dashboard: Arc<Dashboard>,
    pub path: String,
    pub now: DateTime<Utc>,
    /// The request came over TLS (its cookies get `Secure` under `web.secure_cookie = auto`).
    pub tls: bool,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let missing =
            |what: &str| ApiError::Unexpected(format!("a page was routed without {what}"));
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| missing("the guard's caller"))?;
        let dashboard = parts
            .extensions
            .get::<Arc<Dashboard>>()
            .cloned()
            .ok_or_else(|| missing("the dashboard"))?;
        let nonce = parts
            .extensions
            .get::<CsrfNonce>()
            .cloned()
            .ok_or_else(|| missing("the gate's CSRF nonce"))?;
        let session = parts.extensions.get::<SignedIn>().map(|s| s.0.clone());
        let tls = crate::session::over_tls(&parts.headers, &parts.uri, dashboard.behind_proxy);
        Ok(Ctx {
            tls,
            signed_in: session.is_some(),
            csrf: dashboard
                .signer
                .csrf_token(&nonce, session.as_deref().unwrap_or_default()),
            session,
            nonce,
            caller,
            dashboard,
            path: parts.uri.path().to_owned(),
            now: state.now(),
        })
    }
}

impl Ctx {
    /// A form's token is this visitor's: refuses a cross-site post.
    pub fn check_csrf(&self, token: &str) -> Result<(), ApiError> {
        let session = self.session.as_deref().unwrap_or_default();
        if self
            .dashboard
            .signer
            .csrf_matches(&self.nonce, session, token)
        {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "the form's security token is missing or stale: reload the page and submit it again",
            ))
        }
    }
}
