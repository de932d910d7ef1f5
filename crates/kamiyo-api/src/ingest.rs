//! `POST /api/exploits`: one incident claim, through the same validation, dedup and merge
//! as `kamiyo import`. Writes need an admin: the API key of a user with the admin role,
//! or `server.admin_token`; with neither, writes are off.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use kamiyo_domain::{IncidentDraft, IncidentInput};
use kamiyo_store::IngestOutcome;

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::AppState;

#[utoipa::path(post, path = "/api/exploits", tag = "incidents",
    request_body = IncidentInput,
    responses((status = 201, description = "A new incident", body = IngestOutcome),
        (status = 200, description = "Merged into, updated or already in an incident", body = IngestOutcome),
        (status = 400, description = "Not a JSON object of this shape (a field of the wrong type, an unknown field, no JSON content type); the message names the field", body = crate::error::ErrorEnvelope),
        (status = 409, description = "The claim conflicts with a stored one (a unique rule); retrying may succeed", body = crate::error::ErrorEnvelope),
        (status = 413, description = "Body above server.body_limit_bytes", body = crate::error::ErrorEnvelope),
        (status = 422, description = "A value a rule refuses (a missing or blank required field, a date out of range, a hash that does not suit its chain, ...); the message names the field", body = crate::error::ErrorEnvelope),))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: std::result::Result<Json<IncidentInput>, JsonRejection>,
) -> Result<(StatusCode, Json<IngestOutcome>)> {
    authorize_admin(&state, &caller)?;
    let Json(input) = body.map_err(ApiError::from_json_rejection)?;
    let invalid = |e: kamiyo_domain::FieldError| ApiError::Invalid {
        field: e.field.clone(),
        message: e.message,
    };
    let (draft, dropped) =
        IncidentDraft::from_input_with_warnings(input, state.now()).map_err(invalid)?;
    // An importer keeps a record whose hash does not fit its chain; an API caller is
    // told, and can correct the request.
    if let Some(refusal) = dropped.into_iter().next() {
        return Err(invalid(refusal));
    }
    let outcome = state.incidents.ingest(&draft).await?;
    let status = match outcome.action {
        kamiyo_store::IngestAction::Inserted => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(outcome)))
}

pub(crate) fn authorize_admin(state: &AppState, caller: &Caller) -> Result<()> {
    match caller {
        _ if caller.is_admin() => Ok(()),
        Caller::Anonymous { .. } if state.server.admin_token.is_none() => Err(ApiError::Forbidden(
            "writes need an admin: an API key of a user with the admin role, or server.admin_token",
        )),
        Caller::Anonymous { .. } => Err(ApiError::Unauthorized(
            "an admin key is required: Authorization: Bearer <key>",
        )),
        _ => Err(ApiError::Forbidden("this key's user is not an admin")),
    }
}

/// Compares without stopping at the first difference, so timing does not reveal how
/// much of a guess was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secrets"));
    }
}
