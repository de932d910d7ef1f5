//! `/signin` and `/signout`: a session from an API key (see `session`).

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use kamiyo_api::{ApiError, AppState, Caller};
use maud::html;
use serde::Deserialize;

use super::html;
use crate::ctx::Ctx;
use crate::layout;
use crate::session::{self, SESSION_COOKIE};

#[derive(Deserialize)]
pub struct SignIn {
    key: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
pub struct Csrf {
    #[serde(default)]
    csrf: String,
}

pub async fn form(ctx: Ctx, RawQuery(query): RawQuery) -> Response {
    let expired = query.as_deref() == Some("expired=1");
    render(&ctx, StatusCode::OK, expired.then_some(
        "Your session ended: the API key was revoked or its user disabled. Sign in with a valid key.",
    ))
}

fn render(ctx: &Ctx, status: StatusCode, error: Option<&str>) -> Response {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        @if let Caller::User(p, _) = &ctx.caller {
            p { "You are signed in as " strong { (p.email) } ". Signing in with another key replaces this session." }
        }
        form method="post" action="/signin" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            div {
                label for="key" { "API key" }
                input #key name="key" type="password" autocomplete="current-password" required;
            }
            p.muted { "The key is kept in a signed cookie that scripts cannot read, for "
                (crate::format::span(ctx.dashboard.config.session_max_age)) ". It is never shown on a page." }
            button type="submit" { "Sign in" }
        }
    };
    html(status, layout::page(ctx, "Sign in", body))
}

pub async fn submit(
    State(state): State<AppState>,
    ctx: Ctx,
    // What identifies the visitor's address, as the guard reads it (only sign-in needs it).
    headers: axum::http::HeaderMap,
    connect: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Form(form): Form<SignIn>,
) -> Result<Response, ApiError> {
    ctx.check_csrf(&form.csrf)?;
    let key = form.key.trim();
    if key.is_empty() {
        return Ok(render(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("key: enter an API key"),
        ));
    }
    // The API's own lookup and failed-attempt budget: guessing keys here is throttled
    // exactly as it is on the API.
    let peer = connect.map(|axum::Extension(axum::extract::ConnectInfo(addr))| addr.ip());
    match kamiyo_api::authenticate_key(&state, &headers, peer, key).await {
        Ok(Caller::User(..)) => {
            let config = &ctx.dashboard.config;
            let max_age = config.session_max_age;
            let expires = ctx.now
                + chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::days(7));
            let value = ctx.dashboard.signer.session(key, expires);
            let mut response = Redirect::to("/").into_response();
            set(&mut response, &ctx, SESSION_COOKIE, &value, max_age.as_secs());
            rotate_nonce(&mut response, &ctx);
            Ok(response)
        }
        // The bootstrap token is an operator's secret for the API and the CLI: it is not
        // kept in a browser for days.
        Ok(Caller::AdminToken(_)) => Ok(render(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("key: server.admin_token cannot sign in to the dashboard; use the key of a user with the admin role"),
        )),
        Ok(_) => Ok(render(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("key: this is not an API key"),
        )),
        // 422, not 401: the form was wrong, and a signed-in visitor stays signed in.
        Err(ApiError::InvalidCredentials(message)) => Ok(render(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&format!("key: {message}")),
        )),
        Err(other) => Err(other),
    }
}

/// Appends a `Set-Cookie` for `name` with this visitor's cookie flags.
fn set(response: &mut Response, ctx: &Ctx, name: &str, value: &str, max_age: u64) {
    let config = &ctx.dashboard.config;
    if let Some(cookie) = session::set_cookie(name, value, max_age, config.secure_cookie, ctx.tls) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
}

/// A new CSRF nonce when the visitor's session changes: a nonce another site planted
/// before sign-in does not outlive it.
fn rotate_nonce(response: &mut Response, ctx: &Ctx) {
    let nonce = session::new_nonce();
    let max_age = ctx.dashboard.config.session_max_age.as_secs();
    set(response, ctx, session::CSRF_COOKIE, &nonce.0, max_age);
}

pub async fn sign_out(ctx: Ctx, Form(form): Form<Csrf>) -> Result<Response, ApiError> {
    ctx.check_csrf(&form.csrf)?;
    let mut response = Redirect::to("/").into_response();
    set(&mut response, &ctx, SESSION_COOKIE, "", 0);
    rotate_nonce(&mut response, &ctx);
    Ok(response)
}
