//! Alert subscriptions (docs/ALERTS.md): a user's own, managed with their API key; an
//! admin sees and manages everyone's. Another user's subscription is a 404, never a 403:
//! its existence is not the caller's business.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use kamiyo_alerts::channel::ChannelInput;
use kamiyo_domain::alert_filter::{AlertFilter, AlertFilterInput};
use kamiyo_store::alerts::{Delivery, EventKind, NewSubscription, Subscription, SubscriptionPatch};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::AppState;

/// Longest subscription name, in characters.
const MAX_NAME: usize = 200;
/// Most deliveries one page of the log shows.
const MAX_DELIVERIES: i64 = 500;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub channel: ChannelInput,
    #[serde(default)]
    pub filter: AlertFilterInput,
    /// `incident.created`, `incident.updated`, `incident.merged`; all when absent.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSubscription {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// A new webhook, Slack or Discord URL (the kind cannot change).
    pub url: Option<String>,
    pub filter: Option<AlertFilterInput>,
    pub events: Option<Vec<String>>,
    /// Enabling a subscription the service disabled clears why, and its failures.
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedSubscription {
    #[serde(flatten)]
    pub subscription: Subscription,
    /// A webhook's signing secret (`whsec_...`): shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionList {
    pub items: Vec<Subscription>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    /// The new signing secret, shown this once; the previous one signs beside it for 24 h.
    pub secret: String,
    pub previous_valid_until: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestOutcome {
    pub delivered: bool,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub response_body: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// Newest first, at most this many (default 50, at most 500).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub items: Vec<Delivery>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Deliveries of events written since this time are sent again (RFC 3339).
    pub since: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Replayed {
    pub replayed: u64,
}

/// A subscription as the API shows it: a Slack or Discord webhook URL is a secret in
/// itself (whoever has it can post), so only its host and last characters are shown.
fn shown(mut subscription: Subscription) -> Subscription {
    if matches!(subscription.channel.as_str(), "slack" | "discord") {
        let host = url::Url::parse(&subscription.target)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let tail: String = subscription
            .target
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        subscription.target = format!("https://{host}/…{tail}");
    }
    subscription
}

/// The user a caller manages subscriptions as; `None` for an admin, who manages all.
fn owner(caller: &Caller) -> Result<Option<i64>> {
    match caller {
        Caller::User(p, _) if p.role == kamiyo_domain::Role::Admin => Ok(None),
        Caller::User(p, _) => Ok(Some(p.user_id)),
        Caller::AdminToken(_) => Ok(None),
        Caller::Anonymous { .. } | Caller::MetricsReader(_) => Err(ApiError::Unauthorized(
            "an API key is required: Authorization: Bearer <key>",
        )),
    }
}

fn events(field: &str, names: Option<Vec<String>>) -> Result<Vec<EventKind>> {
    let Some(names) = names else {
        return Ok(EventKind::ALL.to_vec());
    };
    if names.is_empty() {
        return Err(ApiError::Invalid {
            field: field.to_owned(),
            message: "must name at least one event".into(),
        });
    }
    let mut kinds = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let kind = EventKind::parse(name.trim()).ok_or_else(|| ApiError::Invalid {
            field: format!("{field}[{i}]"),
            message: format!(
                "{name:?} is not one of incident.created, incident.updated, incident.merged"
            ),
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

fn name(value: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty()
        || trimmed.chars().count() > MAX_NAME
        || value.chars().any(char::is_control)
    {
        return Err(ApiError::Invalid {
            field: "name".into(),
            message: format!("must be 1 to {MAX_NAME} characters, without control characters"),
        });
    }
    Ok(trimmed.to_owned())
}

fn filter(input: &AlertFilterInput) -> Result<AlertFilterInput> {
    AlertFilter::from_input(input)
        .map(|f| f.to_input())
        .map_err(|e| ApiError::Invalid {
            field: e.field,
            message: e.message,
        })
}

fn subscription_id(id: std::result::Result<Path<String>, PathRejection>) -> Result<i64> {
    crate::exploits::positive_id(id, "a subscription")
}

/// The subscription `id` when the caller may manage it.
async fn owned(state: &AppState, caller: &Caller, id: i64) -> Result<Subscription> {
    let owner = owner(caller)?;
    state
        .alerts
        .subscription(id)
        .await?
        .filter(|s| owner.is_none_or(|user| s.user_id == user))
        .ok_or(ApiError::NotFoundItem("subscription"))
}

#[utoipa::path(post, path = "/api/subscriptions", tag = "alerts",
    request_body = CreateSubscription,
    responses((status = 201, description = "The subscription; a webhook's signing secret is in `secret`, shown this once", body = CreatedSubscription),
        (status = 400, description = "Not a JSON object of this shape; the message names the field", body = crate::error::ErrorEnvelope),
        (status = 422, description = "A value a rule refuses (a private address, an unknown chain, the tier's number of subscriptions reached); the message names the field", body = crate::error::ErrorEnvelope),))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: std::result::Result<Json<CreateSubscription>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedSubscription>)> {
    let Caller::User(principal, limits) = &caller else {
        owner(&caller)?;
        return Err(ApiError::Invalid {
            field: "Authorization".into(),
            message: "a subscription belongs to a user: create it with that user's API key".into(),
        });
    };
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let name = name(&request.name)?;
    let filter = filter(&request.filter)?;
    let events = events("events", request.events)?;
    let channel = request
        .channel
        .validate(
            state.alerts_config.allow_private_targets,
            state.alerts_config.email_configured(),
        )
        .map_err(|e| ApiError::Invalid {
            field: e.field,
            message: e.message,
        })?;
    let allowed = limits.subscriptions;
    let held = state.alerts.count_subscriptions(principal.user_id).await?;
    if held >= i64::from(allowed) {
        return Err(ApiError::Invalid {
            field: "subscriptions".into(),
            message: format!(
                "the {} tier holds at most {allowed} subscriptions (docs/TIERS.md)",
                principal.tier.as_str()
            ),
        });
    }
    let secret = channel.shown_secret().map(str::to_owned);
    let subscription = state
        .alerts
        .create_subscription(&NewSubscription {
            user_id: principal.user_id,
            name,
            channel: channel.kind.to_owned(),
            target: channel.target,
            secret: channel.secret,
            filter,
            events,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSubscription {
            subscription: shown(subscription),
            secret,
        }),
    ))
}

#[utoipa::path(get, path = "/api/subscriptions", tag = "alerts",
    responses((status = 200, description = "The caller's subscriptions (an admin's: everyone's), oldest first", body = SubscriptionList),
))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<SubscriptionList>> {
    let owner = owner(&caller)?;
    Ok(Json(SubscriptionList {
        items: state
            .alerts
            .subscriptions(owner)
            .await?
            .into_iter()
            .map(shown)
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/subscriptions/{id}", tag = "alerts",
    params(("id" = i64, Path, minimum = 1, description = "Subscription id")),
    responses((status = 200, description = "The subscription; `disabled_reason` says why the service disabled it", body = Subscription),
        (status = 400, description = "Not a subscription id", body = crate::error::ErrorEnvelope),
        (status = 404, description = "No such subscription of the caller's", body = crate::error::ErrorEnvelope),))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Subscription>> {
    let id = subscription_id(id)?;
    Ok(Json(shown(owned(&state, &caller, id).await?)))
}

#[utoipa::path(patch, path = "/api/subscriptions/{id}", tag = "alerts",
    params(("id" = i64, Path, minimum = 1, description = "Subscription id")),
    request_body = UpdateSubscription,
    responses((status = 200, description = "The subscription as it is now", body = Subscription),
        (status = 400, description = "Not a subscription id, or not a JSON object of this shape", body = crate::error::ErrorEnvelope),
        (status = 404, description = "No such subscription of the caller's", body = crate::error::ErrorEnvelope),
        (status = 422, description = "A value a rule refuses; the message names the field", body = crate::error::ErrorEnvelope),))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Json<UpdateSubscription>, JsonRejection>,
) -> Result<Json<Subscription>> {
    let id = subscription_id(id)?;
    let current = owned(&state, &caller, id).await?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let target = match request.url {
        None => None,
        Some(url) => {
            let input = match current.channel.as_str() {
                "webhook" => ChannelInput::Webhook { url },
                "slack" => ChannelInput::Slack { url },
                "discord" => ChannelInput::Discord { url },
                _ => {
                    return Err(ApiError::Invalid {
                        field: "url".into(),
                        message: format!("a {} subscription has no URL", current.channel),
                    })
                }
            };
            let spec = input
                .validate(
                    state.alerts_config.allow_private_targets,
                    state.alerts_config.email_configured(),
                )
                .map_err(|e| ApiError::Invalid {
                    field: "url".into(),
                    message: e.message,
                })?;
            Some(spec.target)
        }
    };
    let patch = SubscriptionPatch {
        name: request.name.as_deref().map(name).transpose()?,
        target,
        filter: request.filter.as_ref().map(filter).transpose()?,
        events: match request.events {
            Some(names) => Some(events("events", Some(names))?),
            None => None,
        },
        enabled: request.enabled,
    };
    state
        .alerts
        .update_subscription(id, &patch)
        .await?
        .map(|s| Json(shown(s)))
        .ok_or(ApiError::NotFoundItem("subscription"))
}

#[utoipa::path(delete, path = "/api/subscriptions/{id}", tag = "alerts",
    params(("id" = i64, Path, minimum = 1, description = "Subscription id")),
    responses((status = 204, description = "Deleted, with its deliveries and their log"),
        (status = 400, description = "Not a subscription id", body = crate::error::ErrorEnvelope),
        (status = 404, description = "No such subscription of the caller's", body = crate::error::ErrorEnvelope),))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<StatusCode> {
    let id = subscription_id(id)?;
    owned(&state, &caller, id).await?;
    state.alerts.delete_subscription(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/subscriptions/{id}/rotate-secret", tag = "alerts",
    params(("id" = i64, Path, minimum = 1, description = "Subscription id")),
    responses((status = 200, description = "A new signing secret, shown this once; the previous one still signs for 24 h", body = RotatedSecret),
        (status = 400, description = "Not a subscription id", body = crate::error::ErrorEnvelope),
        (status = 404, description = "No such subscription of the caller's", body = crate::error::ErrorEnvelope),
        (status = 422, description = "Not a webhook subscription", body = crate::error::ErrorEnvelope),))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<RotatedSecret>> {
    let id = subscription_id(id)?;
    let current = owned(&state, &caller, id).await?;
    if current.channel != "webhook" {
        return Err(ApiError::Invalid {
            field: "channel".into(),
            message: "only a webhook subscription has a signing secret".into(),
        });
    }
    let secret = kamiyo_alerts::signing::WebhookSecret::generate()
        .as_str()
        .to_owned();
    let now = state.now();
    if !state.alerts.rotate_secret(id, &secret, now).await? {
        return Err(ApiError::NotFoundItem("subscription"));
    }
    Ok(Json(RotatedSecret {
        secret,
        previous_valid_until: now + kamiyo_store::alerts::SECRET_OVERLAP,
    }))
}

#[utoipa::path(post, path = "/api/subscriptions/{id}/test", tag = "alerts",
    params(("id" = i64, Path, minimum = 1, description = "Subscription id")),
    responses((status = 200, description = "A `test` event sent now, signed like any delivery, and what the receiver answered (not kept in the delivery log)", body = TestOutcome),
        (status = 400, description = "Not a subscription id", body = crate::error::ErrorEnvelope),
        (status = 404, description = "No such subscription of the caller's", body = crate::error::ErrorEnvelope),))]
pub async fn test(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<TestOutcome>> {
    let id = subscription_id(id)?;
    let subscription = owned(&state, &caller, id).await?;
    let now = state.now();
    let secrets = state.alerts.signing_secrets(id, now).await?;
    let sent = kamiyo_alerts::send::send_test(&state.alerts_config, &subscription, secrets, now)
        .await
        .map_err(|e| ApiError::Invalid {
            field: "alerts".into(),
            message: e,
        })?;
    Ok(Json(TestOutcome {
        delivered: sent.delivered(),
        status_code: sent.status,
        duration_ms: u64::try_from(sent.duration.as_millis()).unwrap_or(u64::MAX),
        error: sent.error,
        response_body: sent.body,
    }))
}

#[utoipa::path(get, path = "/api/subscriptions/{id}/deliveries", tag = "alerts",
    params(("id" = i64, Path, minimum = 1, description = "Subscription id"), DeliveriesQuery),
    responses((status = 200, description = "Deliveries, newest first, each with every attempt (time, status code, duration, error, next retry)", body = DeliveryList),
        (status = 400, description = "Not a subscription id, or a bad limit", body = crate::error::ErrorEnvelope),
        (status = 404, description = "No such subscription of the caller's", body = crate::error::ErrorEnvelope),))]
pub async fn deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: std::result::Result<Path<String>, PathRejection>,
    query: std::result::Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<DeliveryList>> {
    let id = subscription_id(id)?;
    let Query(query) = query.map_err(|e| ApiError::BadParameter {
        parameter: "limit",
        message: e.body_text(),
    })?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_DELIVERIES).contains(&limit) {
        return Err(ApiError::BadParameter {
            parameter: "limit",
            message: format!("must be 1 to {MAX_DELIVERIES}"),
        });
    }
    owned(&state, &caller, id).await?;
    let now = state.now();
    // A delivery waiting for the tier's delay names an incident the tier may not see
    // yet: listed once it is due.
    let items = state
        .alerts
        .deliveries(id, limit)
        .await?
        .into_iter()
        .filter(|d| d.attempts > 0 || d.next_attempt_at.is_none_or(|due| due <= now))
        .collect();
    Ok(Json(DeliveryList { items }))
}

#[utoipa::path(post, path = "/api/subscriptions/{id}/replay", tag = "alerts",
    params(("id" = i64, Path, minimum = 1, description = "Subscription id")),
    request_body = ReplayRequest,
    responses((status = 200, description = "The subscription's deliveries of events written since `since` are sent again, with their `webhook-id`", body = Replayed),
        (status = 400, description = "Not a subscription id, or not a JSON object of this shape", body = crate::error::ErrorEnvelope),
        (status = 404, description = "No such subscription of the caller's", body = crate::error::ErrorEnvelope),))]
pub async fn replay(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Json<Replayed>> {
    let id = subscription_id(id)?;
    owned(&state, &caller, id).await?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let replayed = state.alerts.replay(id, request.since, state.now()).await?;
    Ok(Json(Replayed { replayed }))
}

#[utoipa::path(get, path = "/api/admin/alerts/audit", tag = "alerts",
    params(("since" = Option<String>, Query, format = DateTime, description = "Changes written since this time (YYYY-MM-DD or RFC 3339); a day before now when absent")),
    responses((status = 200, description = "Every incident change since `since` that matched a subscription and has no delivery (empty on a healthy system), and every delivery not finished", body = kamiyo_alerts::audit::AuditReport),
        (status = 400, description = "`since` not an RFC 3339 time", body = crate::error::ErrorEnvelope),))]
pub async fn audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: axum::extract::RawQuery,
) -> Result<Json<kamiyo_alerts::audit::AuditReport>> {
    crate::ingest::authorize_admin(&state, &caller)?;
    let params = crate::params::Params::from_query(query, &["since"])?;
    let since = params
        .time("since", false)?
        .unwrap_or_else(|| state.now() - chrono::Duration::days(1));
    let report = kamiyo_alerts::audit::audit(
        &state.alerts,
        &state.incidents,
        since,
        state.now(),
        state.alerts_config.poll_interval * 2,
        &state.tiers,
    )
    .await?;
    Ok(Json(report))
}
