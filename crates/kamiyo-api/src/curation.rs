//! The admin API of curation: merge incidents, split claims off one, the protocol
//! aliases operators add, and the review queue of near misses; what `kamiyo incident`,
//! `kamiyo protocol alias` and `kamiyo incidents candidates` do.
//! Each decision is stored with the admin who took it and why, and every later import,
//! fetch and remerge respects it (docs/DEDUP.md, "Curation").

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use kamiyo_store::incidents::candidates::{self, MergeCandidate};
use kamiyo_store::incidents::ProtocolAlias;
use kamiyo_store::{Curate, Curated, DecisionKind, RemergeReport};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::ingest::authorize_admin;
use crate::AppState;

/// Longest reason, name or alias accepted, in characters.
const MAX_TEXT: usize = 1000;
/// Most incidents one merge names, and claims one split takes.
const MAX_IDS: usize = 1000;

/// Text of at most [`MAX_TEXT`] characters once trimmed, not blank, without control
/// characters (as the schema's pattern says it).
fn text() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(kamiyo_domain::input_schema::trimmed_pattern(
            MAX_TEXT, true,
        )))
        .into()
}

/// Whole numbers, also when written with a fractional part of zero (`441.0` is the
/// integer 441 to JSON Schema).
fn whole_numbers<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<i64>, D::Error> {
    let numbers = Vec::<serde_json::Number>::deserialize(deserializer)?;
    numbers
        .iter()
        .map(|n| {
            n.as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number")))
        })
        .collect()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// Two or more different incident ids.
    #[schema(min_items = 2, max_items = 1000)]
    #[serde(deserialize_with = "whole_numbers")]
    pub incidents: Vec<i64>,
    /// Why they are one hack.
    #[schema(schema_with = text)]
    pub reason: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitRequest {
    /// Claim ids (`sources[].id`) of the incident to take out into one of their own.
    #[schema(min_items = 1, max_items = 1000)]
    #[serde(deserialize_with = "whole_numbers")]
    pub claims: Vec<i64>,
    /// Why they are another hack.
    #[schema(schema_with = text)]
    pub reason: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasRequest {
    /// A name of the protocol.
    #[schema(schema_with = text)]
    pub name: String,
    /// Another name sources use for it.
    #[schema(schema_with = text)]
    pub alias: String,
    /// Why the names are one protocol.
    #[schema(schema_with = text)]
    pub reason: String,
    /// Remerge the stored incidents under the new table at once (default true).
    #[serde(default = "yes")]
    pub remerge: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AliasChange {
    /// The alias added (absent for a removal).
    pub alias: Option<ProtocolAlias>,
    /// The remerge under the changed table, when one was asked for.
    pub remerge: Option<RemergeReport>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AliasList {
    /// The aliases operators added, oldest first.
    pub added: Vec<ProtocolAlias>,
    /// Groups in the table shipped with the service.
    pub shipped_groups: usize,
}

/// Who decides: the admin user's email, or the bootstrap token.
fn decided_by(caller: &Caller) -> String {
    match caller {
        Caller::User(principal, _) => principal.email.clone(),
        _ => "admin-token".to_owned(),
    }
}

fn bounded_text(field: &'static str, value: &str) -> Result<()> {
    let trimmed = value.trim();
    if trimmed.is_empty()
        || trimmed.chars().count() > MAX_TEXT
        || value.chars().any(char::is_control)
    {
        return Err(ApiError::Invalid {
            field: field.to_owned(),
            message: format!(
                "must be 1 to {MAX_TEXT} characters once trimmed, not blank, without control characters"
            ),
        });
    }
    Ok(())
}

fn bounded_ids(field: &'static str, ids: &[i64], min: usize) -> Result<()> {
    if ids.len() < min || ids.len() > MAX_IDS {
        return Err(ApiError::Invalid {
            field: field.to_owned(),
            message: format!("must list {min} to {MAX_IDS} ids"),
        });
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/admin/incidents/merge", tag = "curation",
    request_body = MergeRequest,
    responses((status = 200, description = "The decision, stored, and the remerge under it: the incident holding most claims keeps its id, the others redirect to it", body = Curated),
        (status = 400, description = "Not a JSON object of this shape; the message names the field", body = crate::error::ErrorEnvelope),
        (status = 413, description = "Body above server.body_limit_bytes", body = crate::error::ErrorEnvelope),
        (status = 422, description = "An incident that does not exist, fewer than two, a blank reason; the message names the field", body = crate::error::ErrorEnvelope),))]
pub async fn merge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: std::result::Result<Json<MergeRequest>, JsonRejection>,
) -> Result<Json<Curated>> {
    authorize_admin(&state, &caller)?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    bounded_ids("incidents", &request.incidents, 2)?;
    bounded_text("reason", &request.reason)?;
    let done = state
        .incidents
        .curate(Curate {
            kind: DecisionKind::Merge,
            incidents: request.incidents,
            claims: Vec::new(),
            reason: request.reason,
            decided_by: decided_by(&caller),
        })
        .await?;
    Ok(Json(done))
}

#[utoipa::path(post, path = "/api/admin/incidents/{id}/split", tag = "curation",
    params(("id" = i64, Path, minimum = 1, description = "Incident id")),
    request_body = SplitRequest,
    responses((status = 200, description = "The decision, stored, and the remerge under it: the claims taken out form an incident of their own, kept apart from the others by every later remerge", body = Curated),
        (status = 400, description = "Not a JSON object of this shape, or an id that is not a positive whole number; the message names the field", body = crate::error::ErrorEnvelope),
        (status = 413, description = "Body above server.body_limit_bytes", body = crate::error::ErrorEnvelope),
        (status = 422, description = "An incident that does not exist, a claim that is not its own, none or all of its claims, a blank reason; the message names the field", body = crate::error::ErrorEnvelope),))]
pub async fn split(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: std::result::Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: std::result::Result<Json<SplitRequest>, JsonRejection>,
) -> Result<Json<Curated>> {
    authorize_admin(&state, &caller)?;
    let id = crate::exploits::incident_id(id)?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    bounded_ids("claims", &request.claims, 1)?;
    bounded_text("reason", &request.reason)?;
    let done = state
        .incidents
        .curate(Curate {
            kind: DecisionKind::Split,
            incidents: vec![id],
            claims: request.claims,
            reason: request.reason,
            decided_by: decided_by(&caller),
        })
        .await?;
    Ok(Json(done))
}

#[utoipa::path(get, path = "/api/admin/aliases", tag = "curation",
    responses((status = 200, description = "The aliases operators added, and how many groups the shipped table has", body = AliasList),))]
pub async fn list_aliases(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<AliasList>> {
    authorize_admin(&state, &caller)?;
    let (added, shipped_groups) = state.incidents.aliases().await?;
    Ok(Json(AliasList {
        added,
        shipped_groups,
    }))
}

#[utoipa::path(post, path = "/api/admin/aliases", tag = "curation",
    request_body = AliasRequest,
    responses((status = 201, description = "The alias, stored, and the remerge under the new table (unless `remerge` is false)", body = AliasChange),
        (status = 400, description = "Not a JSON object of this shape; the message names the field", body = crate::error::ErrorEnvelope),
        (status = 413, description = "Body above server.body_limit_bytes", body = crate::error::ErrorEnvelope),
        (status = 422, description = "An alias that is one already (of this protocol or another), names that key alike, a blank reason; the message names the field", body = crate::error::ErrorEnvelope),))]
pub async fn add_alias(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: std::result::Result<Json<AliasRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<AliasChange>)> {
    authorize_admin(&state, &caller)?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    bounded_text("name", &request.name)?;
    bounded_text("alias", &request.alias)?;
    bounded_text("reason", &request.reason)?;
    let alias = state
        .incidents
        .add_alias(
            &request.name,
            &request.alias,
            &request.reason,
            &decided_by(&caller),
        )
        .await?;
    let remerge = match request.remerge {
        true => Some(state.incidents.remerge(false).await?),
        false => None,
    };
    Ok((
        StatusCode::CREATED,
        Json(AliasChange {
            alias: Some(alias),
            remerge,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/admin/aliases/{alias}", tag = "curation",
    params(("alias" = String, Path, description = "The alias, as added (any spelling that keys alike)")),
    responses((status = 200, description = "Removed, and the stored incidents remerged under the table without it", body = AliasChange),
        (status = 400, description = "Not a usable path segment", body = crate::error::ErrorEnvelope),
        (status = 404, description = "No operator added this alias (shipped aliases change with a release)", body = crate::error::ErrorEnvelope),))]
pub async fn remove_alias(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    alias: std::result::Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<AliasChange>> {
    authorize_admin(&state, &caller)?;
    let Path(alias) = alias.map_err(|_| ApiError::BadParameter {
        parameter: "alias",
        message: "is not valid in a URL path".into(),
    })?;
    if !state.incidents.remove_alias(&alias).await? {
        return Err(ApiError::NotFoundItem("alias"));
    }
    let remerge = Some(state.incidents.remerge(false).await?);
    Ok(Json(AliasChange {
        alias: None,
        remerge,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CandidatesResponse {
    pub candidates: Vec<MergeCandidate>,
}

/// Most pairs one answer lists.
const MAX_CANDIDATES: i64 = 500;

#[utoipa::path(get, path = "/api/review/candidates", tag = "curation",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Most pairs listed (default 50)"),
        ("min_score" = Option<i64>, Query, minimum = 0, maximum = 1000, description = "Least evidence score listed (default 25; the rules join at 40)"),
        ("window_days" = Option<i64>, Query, minimum = 1, maximum = 30, description = "Pairs at most this many days apart (default 7)"),
    ),
    responses((status = 200, description = "Pairs of incidents the rules keep apart whose evidence comes close to joining them, best first: each incident, the score and what they share. A pair a curator split is not listed", body = CandidatesResponse),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope),))]
pub async fn candidates(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: axum::extract::RawQuery,
) -> Result<Json<CandidatesResponse>> {
    authorize_admin(&state, &caller)?;
    let params = crate::params::Params::from_query(query, &["limit", "min_score", "window_days"])?;
    let limit = params.integer("limit", 1, MAX_CANDIDATES)?.unwrap_or(50);
    let min_score = params
        .integer("min_score", 0, 1000)?
        .unwrap_or(i64::from(candidates::DEFAULT_MIN_SCORE));
    let window = params
        .integer("window_days", 1, candidates::MAX_WINDOW_DAYS)?
        .unwrap_or(candidates::DEFAULT_WINDOW_DAYS);
    let found = state
        .incidents
        .candidates(
            window,
            u32::try_from(min_score).unwrap_or(u32::MAX),
            usize::try_from(limit).unwrap_or(50),
        )
        .await?;
    Ok(Json(CandidatesResponse { candidates: found }))
}
