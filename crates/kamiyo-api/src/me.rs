//! `GET /api/me`: the caller's tier, limits, and what is left in each window.

use axum::extract::State;
use axum::{Extension, Json};
use kamiyo_domain::{Tier, TierLimits};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    pub user_id: Option<i64>,
    pub email: Option<String>,
    pub tier: Tier,
    pub role: String,
    pub limits: TierLimits,
    /// Requests left in the current minute, hour and day windows.
    pub remaining: Remaining,
    /// A user's reputation from community submissions (absent for the admin token).
    pub reputation: Option<kamiyo_store::community::Reputation>,
    /// A user's latest submissions, newest first (at most 20), with their status.
    pub submissions: Vec<kamiyo_store::community::Submission>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Remaining {
    pub minute: u32,
    pub hour: u32,
    pub day: u32,
}

#[utoipa::path(get, path = "/api/me", tag = "accounts",
    responses((status = 200, description = "The caller's tier, limits and usage", body = Me)))]
pub async fn me(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Me>> {
    let (user_id, email, role) = match &caller {
        Caller::Anonymous { .. } | Caller::MetricsReader(_) => {
            return Err(ApiError::Unauthorized(
                "an API key is required: Authorization: Bearer <key>",
            ))
        }
        Caller::User(p, _) => (
            Some(p.user_id),
            Some(p.email.clone()),
            p.role.as_str().to_owned(),
        ),
        Caller::AdminToken(_) => (None, None, "admin".to_owned()),
    };
    let (reputation, submissions) = match user_id {
        Some(user) => (
            Some(state.community.reputation(user, state.now()).await?),
            {
                let mut shown = Vec::new();
                for submission in state.community.of_user(user, 20).await? {
                    shown.push(crate::submissions::shown_to(&state, &caller, submission).await?);
                }
                shown
            },
        ),
        None => (None, Vec::new()),
    };
    let limits = caller.limits();
    let [minute, hour, day] = state
        .rate_limiter
        .usage(&caller.identity(), crate::ratelimit::capacity_of(&limits))
        .await;
    Ok(Json(Me {
        user_id,
        email,
        tier: caller.tier().unwrap_or(Tier::Free),
        role,
        limits,
        remaining: Remaining { minute, hour, day },
        reputation,
        submissions,
    }))
}
