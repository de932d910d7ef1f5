//! Community submissions (docs/COMMUNITY.md): a user's report of an exploit
//! (`POST /api/submissions`), its status (`GET /api/submissions/{id}`), and the reviewers'
//! queue and decisions (`/api/review/submissions`). Matching, the review transaction and
//! reputation are the store's (`kamiyo_store::community`); the rules are
//! `community.*`.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use kamiyo_domain::SubmissionInput;
use kamiyo_store::community::{Decision, NewSubmission, Rewards, Submission, Submitted};
use kamiyo_store::Incident;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::params::Params;
use crate::AppState;

/// Longest review reason, in characters.
const MAX_REASON: usize = 2_000;
/// Most submissions one page of the queue shows.
const MAX_QUEUE: i64 = 200;
/// Submissions shown by default.
const DEFAULT_QUEUE: i64 = 50;

/// A submission as its submitter is answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubmissionAnswer {
    #[serde(flatten)]
    pub submission: Submission,
    /// The same submission (by content) was sent before: this is that one, unchanged.
    pub duplicate: bool,
}

/// One submission of the queue with the incident it matched and that incident's claims,
/// side by side.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueItem {
    pub submission: Submission,
    pub incident: Option<Incident>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Queue {
    pub items: Vec<QueueItem>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub decision: ReviewDecision,
    /// Why: stored with the decision; a rejection's is shown to the submitter.
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    pub reason: String,
}

/// What a reviewer decides.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReviewDecision {
    /// The report is true: its claim is stored (source `community`).
    Verify,
    /// The report is false.
    Reject,
    /// The report repeats what is known.
    Duplicate,
    /// Un-verify a verified submission: its claim leaves the incident (which is decided
    /// again without it, or removed when it was its only claim), the points it gave are
    /// taken back and an owed bounty is cancelled, in one transaction.
    Reverse,
}

/// Reviewers (a user granted the role) and admins may review; the answer is the reviewer's
/// user id (`None` for the admin token).
async fn reviewer(state: &AppState, caller: &Caller) -> Result<Option<i64>> {
    match caller {
        Caller::AdminToken(_) => Ok(None),
        Caller::User(p, _) if caller.is_admin() => Ok(Some(p.user_id)),
        Caller::User(p, _) => {
            if state
                .accounts
                .is_reviewer(p.user_id)
                .await
                .map_err(|e| match e {
                    // A database that does not answer is a 503 like everywhere else.
                    kamiyo_store::accounts::AccountError::Store(store) => ApiError::from(store),
                    other => ApiError::Unexpected(other.to_string()),
                })?
            {
                Ok(Some(p.user_id))
            } else {
                Err(ApiError::Forbidden(
                    "reviewing needs the reviewer or admin role",
                ))
            }
        }
        Caller::Anonymous { .. } | Caller::MetricsReader(_) => Err(ApiError::Unauthorized(
            "reviewing needs a reviewer's or an admin's key: Authorization: Bearer <key>",
        )),
    }
}

/// `submission` as its submitter may read it: the incidents it names (the one it
/// matched, the candidates) only when the submitter's tier may see them, as everywhere
/// else (a report must not be a way to learn of an incident before one's tier shows it).
/// Reviewers and admins read submissions whole.
pub(crate) async fn shown_to(
    state: &AppState,
    caller: &Caller,
    mut submission: Submission,
) -> Result<Submission> {
    let now = state.now();
    let visible =
        |incident: Option<Incident>| incident.is_some_and(|i| caller.can_see(i.occurred_at, now));
    if let Some(id) = submission.exploit_id {
        if !visible(state.incidents.get(id).await?) {
            submission.exploit_id = None;
        }
    }
    let mut candidates = Vec::new();
    for id in submission.candidate_ids.drain(..) {
        if visible(state.incidents.get(id).await?) {
            candidates.push(id);
        }
    }
    submission.candidate_ids = candidates;
    Ok(submission)
}

/// Seconds from `now` to the next UTC midnight, when a day's submissions start again.
fn until_tomorrow(now: DateTime<Utc>) -> u64 {
    let tomorrow = (now.date_naive() + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now);
    (tomorrow - now).num_seconds().max(1) as u64
}

/// The independent sources of the incident a submission matched, for the bounty rule.
async fn sources_before(state: &AppState, submission: &Submission) -> Result<i64> {
    Ok(match submission.exploit_id {
        Some(id) => state
            .incidents
            .get(id)
            .await?
            .map_or(0, |incident| incident.sources_count),
        None => 0,
    })
}

#[utoipa::path(post, path = "/api/submissions", tag = "community",
    request_body = SubmissionInput,
    responses((status = 201, description = "Stored, pending review (or verified at once for a trusted submitter's evidence); `matched` says what it matched", body = SubmissionAnswer),
        (status = 200, description = "The same submission was sent before: that one, with `duplicate: true`", body = SubmissionAnswer),
        (status = 400, description = "Not a JSON object of this shape; the message names the field", body = crate::error::ErrorEnvelope),
        (status = 403, description = "The caller's reputation is below zero (submissions are closed to them), or the caller is the admin token (no user)", body = crate::error::ErrorEnvelope),
        (status = 422, description = "A value a rule refuses; the message names the field (`evidence_urls[0]`, `tx_hashes[1].hash`)", body = crate::error::ErrorEnvelope),))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: std::result::Result<Json<SubmissionInput>, JsonRejection>,
) -> Result<(StatusCode, Json<SubmissionAnswer>)> {
    let principal = match &caller {
        Caller::User(principal, _) => principal,
        Caller::Anonymous { .. } | Caller::MetricsReader(_) => {
            return Err(ApiError::Unauthorized(
                "a submission is a user's: send your API key (Authorization: Bearer <key>)",
            ))
        }
        Caller::AdminToken(_) => {
            return Err(ApiError::Forbidden(
                "a submission is a user's: the admin token is none; send a user's API key",
            ))
        }
    };
    let Json(input) = body.map_err(ApiError::from_json_rejection)?;
    let now = state.now();
    let valid = input.validate(now).map_err(|e| ApiError::Invalid {
        field: e.field,
        message: e.message,
    })?;
    // The same report again is answered as what it is, whatever the day's count.
    if let Some(submission) = state
        .community
        .by_fingerprint(principal.user_id, &valid.fingerprint)
        .await?
    {
        return Ok((
            StatusCode::OK,
            Json(SubmissionAnswer {
                submission: shown_to(&state, &caller, submission).await?,
                duplicate: true,
            }),
        ));
    }
    let rules = &state.community_rules;
    let reputation = state.community.reputation(principal.user_id, now).await?;
    let score = i32::try_from(reputation.score).unwrap_or(i32::MIN);
    if !rules.may_submit(score) {
        return Err(ApiError::Forbidden(
            "your reputation is below zero: submissions are closed to you (docs/COMMUNITY.md)",
        ));
    }
    let today = state
        .community
        .submitted_today(principal.user_id, now)
        .await?;
    if today >= i64::from(rules.per_day(score)) {
        return Err(ApiError::RateLimited {
            retry_after_secs: until_tomorrow(now),
        });
    }
    let claim = serde_json::to_value(&valid.claim)
        .map_err(|e| ApiError::Unexpected(format!("serialising a claim: {e}")))?;
    let new = NewSubmission {
        user_id: principal.user_id,
        protocol: valid.draft.protocol.display().to_owned(),
        claim,
        draft: valid.draft.clone(),
        evidence_urls: valid.evidence_urls.clone(),
        attacker_addresses: valid.attacker_addresses.clone(),
        victim_addresses: valid.victim_addresses.clone(),
        fingerprint: valid.fingerprint.clone(),
    };
    match state.community.submit(&new, now).await? {
        Submitted::Duplicate(submission) => Ok((
            StatusCode::OK,
            Json(SubmissionAnswer {
                submission: shown_to(&state, &caller, submission).await?,
                duplicate: true,
            }),
        )),
        Submitted::New(submission) => {
            // A trusted user's evidence for an incident already known is applied at once,
            // recorded as an automatic verification (no reviewer, no bounty), and stays
            // pending when its claim would create an incident after all.
            let submission = if rules.is_trusted(score) && submission.matched == "incident" {
                let before = sources_before(&state, &submission).await?;
                let rewards = Rewards::for_decision(rules, Decision::Verify, before);
                match state
                    .community
                    .auto_verify(submission.id, rewards, now)
                    .await
                {
                    Ok(reviewed) => reviewed.submission,
                    Err(kamiyo_store::StoreError::Refused { .. }) => submission,
                    Err(other) => return Err(other.into()),
                }
            } else {
                submission
            };
            let submission = shown_to(&state, &caller, submission).await?;
            Ok((
                StatusCode::CREATED,
                Json(SubmissionAnswer {
                    submission,
                    duplicate: false,
                }),
            ))
        }
    }
}

#[utoipa::path(get, path = "/api/submissions/{id}", tag = "community",
    params(("id" = i64, Path, minimum = 1, description = "Submission id")),
    responses((status = 200, description = "The submission and its status (a rejection's reason in `review_note`)", body = Submission),
        (status = 400, description = "Not a submission id", body = crate::error::ErrorEnvelope),
        (status = 404, description = "No such submission of the caller's (reviewers and admins see every one)", body = crate::error::ErrorEnvelope),))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Submission>> {
    let id = crate::exploits::positive_id(id, "a submission")?;
    let submission = state
        .community
        .get(id)
        .await?
        .ok_or(ApiError::NotFoundItem("submission"))?;
    let own = matches!(&caller, Caller::User(p, _) if submission.submitted_by == Some(p.user_id));
    if reviewer(&state, &caller).await.is_ok() {
        Ok(Json(submission))
    } else if own {
        Ok(Json(shown_to(&state, &caller, submission).await?))
    } else {
        // Another user's submission does not exist for this caller.
        Err(ApiError::NotFoundItem("submission"))
    }
}

#[utoipa::path(get, path = "/api/review/submissions", tag = "community",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Most submissions shown, default 50")),
    responses((status = 200, description = "Pending submissions of active users, oldest first, each with the incident it matched and that incident's claims", body = Queue),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope),))]
pub async fn queue(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: RawQuery,
) -> Result<Json<Queue>> {
    reviewer(&state, &caller).await?;
    let params = Params::from_query(query, &["limit"])?;
    let limit = params
        .integer("limit", 1, MAX_QUEUE)?
        .unwrap_or(DEFAULT_QUEUE);
    let mut items = Vec::new();
    for submission in state.community.pending(limit).await? {
        let incident = match submission.exploit_id {
            Some(id) => state.incidents.get(id).await?,
            None => None,
        };
        items.push(QueueItem {
            submission,
            incident,
        });
    }
    Ok(Json(Queue { items }))
}

#[utoipa::path(post, path = "/api/review/submissions/{id}", tag = "community",
    params(("id" = i64, Path, minimum = 1, description = "Submission id")),
    request_body = ReviewRequest,
    responses((status = 200, description = "The decision is recorded, in one transaction: a verification stored the claim (source `community`) with the submitter's points and any bounty; a reversal withdrew it (its incident decided again without it, or removed when it was its only claim), took the points back and cancelled an owed bounty", body = Submission),
        (status = 400, description = "Not a submission id, or not a JSON object of this shape", body = crate::error::ErrorEnvelope),
        (status = 404, description = "No such submission", body = crate::error::ErrorEnvelope),
        (status = 403, description = "The reviewer's own submission", body = crate::error::ErrorEnvelope),
        (status = 409, description = "The submission was reviewed already (or, for `reverse`, is not verified)", body = crate::error::ErrorEnvelope),
        (status = 422, description = "An empty reason, a submitter disabled since, a decision made meanwhile by another reviewer (`id`), a submission verified before claims were recorded (`reverse`), or a claim the rules refuse at verification; the message names the field", body = crate::error::ErrorEnvelope),))]
pub async fn review(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Json<ReviewRequest>, JsonRejection>,
) -> Result<Json<Submission>> {
    let reviewer = reviewer(&state, &caller).await?;
    let id = crate::exploits::positive_id(id, "a submission")?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let decision = match request.decision {
        ReviewDecision::Verify => Decision::Verify,
        ReviewDecision::Reject => Decision::Reject,
        ReviewDecision::Duplicate => Decision::Duplicate,
        ReviewDecision::Reverse => Decision::Reverse,
    };
    let reason = request.reason.trim();
    if reason.is_empty()
        || reason.chars().count() > MAX_REASON
        || reason.chars().any(char::is_control)
    {
        return Err(ApiError::Invalid {
            field: "reason".into(),
            message: format!("must be 1 to {MAX_REASON} characters without control characters"),
        });
    }
    let submission = state
        .community
        .get(id)
        .await?
        .ok_or(ApiError::NotFoundItem("submission"))?;
    if submission.status != decision.applies_to() {
        return Err(ApiError::Conflict(kamiyo_store::StoreError::refused(
            "id",
            decision.refused_on(&submission.status),
        )));
    }
    if reviewer.is_some() && reviewer == submission.submitted_by {
        return Err(ApiError::Forbidden(
            "a reviewer cannot review their own submission",
        ));
    }
    let before = sources_before(&state, &submission).await?;
    let rewards = Rewards::for_decision(&state.community_rules, decision, before);
    let reviewed = state
        .community
        .review(id, reviewer, decision, reason, rewards, state.now())
        .await?;
    Ok(Json(reviewed.submission))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BountyList {
    pub items: Vec<kamiyo_store::community::Bounty>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayBounty {
    /// The payment's reference (a transfer id), kept with the bounty.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub payment_reference: String,
}

/// The admin's user id (`None` for the admin token); anyone else is refused.
fn admin(caller: &Caller) -> Result<Option<i64>> {
    match caller {
        Caller::AdminToken(_) => Ok(None),
        Caller::User(p, _) if caller.is_admin() => Ok(Some(p.user_id)),
        Caller::User(..) => Err(ApiError::Forbidden("bounties are an admin's")),
        Caller::Anonymous { .. } | Caller::MetricsReader(_) => Err(ApiError::Unauthorized(
            "an admin's key is required: Authorization: Bearer <key>",
        )),
    }
}

#[utoipa::path(get, path = "/api/admin/bounties", tag = "community",
    responses((status = 200, description = "Every bounty, newest first: owed, paid (with its payment reference) or cancelled", body = BountyList),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope),))]
pub async fn bounties(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: RawQuery,
) -> Result<Json<BountyList>> {
    admin(&caller)?;
    Params::from_query(query, &[])?;
    Ok(Json(BountyList {
        items: state.community.bounties(None).await?,
    }))
}

#[utoipa::path(post, path = "/api/admin/bounties/{id}/paid", tag = "community",
    params(("id" = i64, Path, minimum = 1, description = "Bounty id")),
    request_body = PayBounty,
    responses((status = 200, description = "Marked paid, with the payment's reference", body = kamiyo_store::community::Bounty),
        (status = 400, description = "Not a bounty id, or not a JSON object of this shape", body = crate::error::ErrorEnvelope),
        (status = 404, description = "No such bounty", body = crate::error::ErrorEnvelope),
        (status = 422, description = "The bounty is not owed (paid or cancelled already): a bounty is never paid twice", body = crate::error::ErrorEnvelope),))]
pub async fn pay(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Json<PayBounty>, JsonRejection>,
) -> Result<Json<kamiyo_store::community::Bounty>> {
    let paid_by = admin(&caller)?;
    let id = crate::exploits::positive_id(id, "a bounty")?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let reference = request.payment_reference.trim();
    if reference.is_empty()
        || reference.chars().count() > 200
        || reference.chars().any(char::is_control)
    {
        return Err(ApiError::Invalid {
            field: "payment_reference".into(),
            message: "must be 1 to 200 characters without control characters".into(),
        });
    }
    if state.community.bounty(id).await?.is_none() {
        return Err(ApiError::NotFoundItem("bounty"));
    }
    Ok(Json(
        state
            .community
            .pay_bounty(id, paid_by, reference, state.now())
            .await?,
    ))
}
