//! `/subscriptions`: a signed-in user's alert subscriptions. Each action calls the API's
//! own handler (the same validation, tier limits and ownership rules); only webhook,
//! Slack and Discord are offered here, Telegram and email through the API or the CLI.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use kamiyo_alerts::channel::ChannelInput;
use kamiyo_api::subscriptions::{self as api, CreateSubscription, UpdateSubscription};
use kamiyo_api::{ApiError, AppState, Caller};
use kamiyo_domain::alert_filter::AlertFilterInput;
use maud::{html, Markup};
use serde::Deserialize;

use super::html;
use crate::ctx::Ctx;
use crate::format;
use crate::layout;
use crate::session::{self, FLASH_COOKIE};

#[derive(Deserialize, Default)]
pub struct NewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    chains: String,
    #[serde(default)]
    protocols: String,
    #[serde(default)]
    min_loss_usd: String,
    #[serde(default)]
    min_sources: String,
}

#[derive(Deserialize)]
pub struct ToggleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    enabled: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Subscriptions belong to users: a visitor who is not signed in is sent to sign in; the
/// admin token (no user) is refused with a 403 (never a 401, which would read as a
/// revoked session).
fn refusal_unless_user(ctx: &Ctx) -> Option<Response> {
    match ctx.caller {
        Caller::User(..) => None,
        Caller::Anonymous { .. } => Some(Redirect::to("/signin").into_response()),
        _ => Some(
            ApiError::Forbidden(
                "alert subscriptions belong to a user: sign in with that user's API key",
            )
            .into_response(),
        ),
    }
}

/// How long the secret of a new webhook waits in its sealed cookie for the page that
/// shows it once.
const FLASH_SECONDS: i64 = 120;

pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(refusal) = refusal_unless_user(&ctx) {
        return Ok(refusal);
    }
    // The secret of the subscription just created, shown this once (see `create`).
    let cookie = session::cookie(&headers, FLASH_COOKIE);
    let flash = cookie
        .and_then(|value| ctx.dashboard.signer.open_flash(value, ctx.now))
        .and_then(|text| {
            text.split_once('\0')
                .map(|(name, secret)| (name.to_owned(), secret.to_owned()))
        });
    let mut response = render(
        &state,
        &ctx,
        StatusCode::OK,
        None,
        flash,
        &NewForm::default(),
    )
    .await?;
    if cookie.is_some() {
        let config = &ctx.dashboard.config;
        if let Some(clear) = session::set_cookie(FLASH_COOKIE, "", 0, config.secure_cookie, ctx.tls)
        {
            response.headers_mut().append(header::SET_COOKIE, clear);
        }
    }
    Ok(response)
}

async fn render(
    state: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    error: Option<String>,
    secret: Option<(String, String)>,
    form: &NewForm,
) -> Result<Response, ApiError> {
    let Json(list) = api::list(State(state.clone()), Extension(ctx.caller.clone())).await?;
    let body = html! {
        h1 { "Alerts" }
        p { "Kamiyo tells you when an incident matching your filter is created, updated by a source, or merged. Deliveries are signed and retried; see the API's "
            code { "/api/subscriptions" } " for Telegram, email, delivery logs and replays." }
        @if let Some((name, secret)) = &secret {
            div.notice role="status" {
                p { "Subscription " strong { (name) } " created. Its signing secret, shown this once:" }
                p.secret { (secret) }
            }
        }
        h2 { "Your subscriptions" }
        div.table-wrap { table {
            caption { "Alert subscriptions" }
            thead { tr {
                th scope="col" { "Name" } th scope="col" { "Channel" } th scope="col" { "Target" }
                th scope="col" { "Filter" } th scope="col" { "State" } th scope="col" { "Actions" }
            } }
            tbody {
                @for s in &list.items {
                    tr {
                        th scope="row" { (s.name) }
                        td { (s.channel) }
                        td { code { (s.target) } }
                        td { (filter_summary(&s.filter)) }
                        td {
                            @if s.enabled { span.ok { "enabled" } } @else { span.bad { "disabled" } }
                            @if let Some(reason) = &s.disabled_reason { br; span.muted { (reason) } }
                        }
                        td.actions {
                            form.inline-form method="post" action=(format!("/subscriptions/{}/enabled", s.id)) {
                                input type="hidden" name="csrf" value=(ctx.csrf);
                                input type="hidden" name="enabled" value=(if s.enabled { "false" } else { "true" });
                                button.secondary type="submit" aria-label=(format!("{} {}", if s.enabled { "Disable" } else { "Enable" }, s.name)) { (if s.enabled { "Disable" } else { "Enable" }) }
                            }
                            form.inline-form method="post" action=(format!("/subscriptions/{}/delete", s.id)) {
                                input type="hidden" name="csrf" value=(ctx.csrf);
                                button.secondary type="submit" aria-label=(format!("Delete {}", s.name)) { "Delete" }
                            }
                        }
                    }
                }
                @if list.items.is_empty() { tr { td colspan="6" { "None yet." } } }
            }
        } }
        h2 #new { "New subscription" }
        @if let Some(error) = &error { p.error role="alert" { (error) } }
        form.filters method="post" action="/subscriptions" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            div { label for="s-name" { "Name" } input #s-name name="name" required value=(form.name); }
            div {
                label for="s-kind" { "Channel" }
                select #s-kind name="kind" {
                    @for (v, t) in [("webhook", "Webhook (signed)"), ("slack", "Slack"), ("discord", "Discord")] {
                        option value=(v) selected[form.kind == v] { (t) }
                    }
                }
            }
            div { label for="s-url" { "URL" } input #s-url name="url" type="url" required value=(form.url) placeholder="https://"; }
            div { label for="s-chains" { "Chains (comma-separated)" } input #s-chains name="chains" value=(form.chains) placeholder="any"; }
            div { label for="s-protocols" { "Protocols (comma-separated)" } input #s-protocols name="protocols" value=(form.protocols) placeholder="any"; }
            div { label for="s-min" { "Min loss (USD)" } input #s-min name="min_loss_usd" value=(form.min_loss_usd) placeholder="none"; }
            div { label for="s-sources" { "Min sources" } input #s-sources name="min_sources" type="number" min="1" value=(form.min_sources) placeholder="1"; }
            div.actions { button type="submit" { "Create" } }
        }
    };
    Ok(html(status, layout::page(ctx, "Alerts", body)))
}

fn filter_summary(filter: &AlertFilterInput) -> Markup {
    let mut parts = Vec::new();
    if !filter.chains.is_empty() {
        parts.push(format!("chains {}", filter.chains.join(", ")));
    }
    if !filter.protocols.is_empty() {
        parts.push(format!("protocols {}", filter.protocols.join(", ")));
    }
    if let Some(min) = &filter.min_loss_usd {
        parts.push(format!(
            "loss ≥ {}",
            format::usd_short(format::decimal(min))
        ));
    }
    if let Some(n) = filter.min_sources {
        parts.push(format!("≥ {n} sources"));
    }
    for (label, values) in [
        ("classes", &filter.attack_classes),
        ("types", &filter.attack_types),
        ("statuses", &filter.statuses),
    ] {
        if !values.is_empty() {
            parts.push(format!("{label} {}", values.join(", ")));
        }
    }
    if parts.is_empty() {
        html! { span.muted { "every incident" } }
    } else {
        html! { (parts.join("; ")) }
    }
}

fn list_of(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(form): Form<NewForm>,
) -> Result<Response, ApiError> {
    ctx.check_csrf(&form.csrf)?;
    if let Some(refusal) = refusal_unless_user(&ctx) {
        return Ok(refusal);
    }
    let url = form.url.trim().to_owned();
    let channel = match form.kind.as_str() {
        "slack" => ChannelInput::Slack { url },
        "discord" => ChannelInput::Discord { url },
        _ => ChannelInput::Webhook { url },
    };
    let min_sources = match form.min_sources.trim() {
        "" => None,
        text => match text.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                let error = format!("min_sources: {text:?} is not a whole number");
                return render(
                    &state,
                    &ctx,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some(error),
                    None,
                    &form,
                )
                .await;
            }
        },
    };
    let request = CreateSubscription {
        name: form.name.clone(),
        channel,
        filter: AlertFilterInput {
            chains: list_of(&form.chains),
            protocols: list_of(&form.protocols),
            min_loss_usd: Some(form.min_loss_usd.trim().to_owned()).filter(|s| !s.is_empty()),
            min_sources,
            ..AlertFilterInput::default()
        },
        events: None,
    };
    match api::create(
        State(state.clone()),
        Extension(ctx.caller.clone()),
        Ok(Json(request)),
    )
    .await
    {
        // Post, redirect, get: reloading the page cannot create a second subscription. The
        // secret crosses the redirect sealed in a cookie that lives two minutes.
        Ok((_, Json(created))) => {
            let mut response = Redirect::to("/subscriptions").into_response();
            if let Some(secret) = created.secret {
                let text = format!("{}\0{secret}", created.subscription.name);
                let sealed = ctx
                    .dashboard
                    .signer
                    .flash(&text, ctx.now + chrono::Duration::seconds(FLASH_SECONDS));
                let config = &ctx.dashboard.config;
                if let Some(cookie) = session::set_cookie(
                    FLASH_COOKIE,
                    &sealed,
                    FLASH_SECONDS as u64,
                    config.secure_cookie,
                    ctx.tls,
                ) {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
            }
            Ok(response)
        }
        Err(ApiError::Invalid { field, message }) => {
            let error = format!("{field}: {message}");
            render(
                &state,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(error),
                None,
                &form,
            )
            .await
        }
        Err(other) => Err(other),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    id: Result<Path<String>, PathRejection>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    ctx.check_csrf(&form.csrf)?;
    if let Some(refusal) = refusal_unless_user(&ctx) {
        return Ok(refusal);
    }
    api::delete(State(state), Extension(ctx.caller.clone()), id).await?;
    Ok(Redirect::to("/subscriptions").into_response())
}

pub async fn set_enabled(
    State(state): State<AppState>,
    ctx: Ctx,
    id: Result<Path<String>, PathRejection>,
    Form(form): Form<ToggleForm>,
) -> Result<Response, ApiError> {
    ctx.check_csrf(&form.csrf)?;
    if let Some(refusal) = refusal_unless_user(&ctx) {
        return Ok(refusal);
    }
    let patch = UpdateSubscription {
        name: None,
        url: None,
        filter: None,
        events: None,
        enabled: Some(form.enabled == "true"),
    };
    let _updated = api::update(
        State(state),
        Extension(ctx.caller.clone()),
        id,
        Ok(Json(patch)),
    )
    .await?;
    Ok(Redirect::to("/subscriptions").into_response())
}
