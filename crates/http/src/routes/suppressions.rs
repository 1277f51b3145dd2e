//! A client's suppression list: add by number, list masked, remove with a
//! reason. Every change is audited; numbers appear only masked.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use outbound_domain::phone::{normalise, NumberPolicy};
use outbound_persistence::audit::{self, AuditEntry};
use outbound_persistence::crypto::stored_index;
use outbound_persistence::suppressions::{self, Suppression};
use outbound_persistence::tenancy::Scope;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::campaigns::PageQuery;
use super::{decode_time_cursor, encode_cursor, idempotent, page_limit, parse_uuid, request_id};
use crate::auth::Principal;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSuppression {
    /// The number in any accepted Australian form; it is never returned.
    pub number: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveSuppression {
    /// Why the number may be called again, for the audit trail.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuppressionView {
    pub id: Uuid,
    pub client_id: Uuid,
    #[schema(example = "+61 ******006")]
    pub masked_number: Option<String>,
    /// `opt_out` (from a call) or `operator`.
    pub source: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
    pub removed_reason: Option<String>,
}

impl From<&Suppression> for SuppressionView {
    fn from(entry: &Suppression) -> Self {
        Self {
            id: entry.id,
            client_id: entry.client_id,
            masked_number: entry.phone_masked.clone(),
            source: entry.source.clone(),
            reason: entry.reason.clone(),
            created_at: entry.created_at,
            removed_at: entry.removed_at,
            removed_reason: entry.removed_reason.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuppressionList {
    pub items: Vec<SuppressionView>,
    pub next: Option<String>,
}

/// The client when it is in the caller's scope and assigned to the partner.
async fn client_in_scope(state: &AppState, scope: &Scope, client: &str) -> ApiResult<Uuid> {
    let id = parse_uuid(client, "client")?;
    let assigned: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM partner_clients WHERE partner_id = $1 AND client_id = $2)",
    )
    .bind(scope.partner_id)
    .bind(id)
    .fetch_one(&state.pool)
    .await?;
    if assigned && scope.client_ids.contains(&id) {
        Ok(id)
    } else {
        Err(ApiError::not_found("client"))
    }
}

fn audit_entry<'a>(
    scope: &Scope,
    actor: &'a str,
    action: &'a str,
    details: serde_json::Value,
    request: &'a Option<String>,
) -> AuditEntry<'a> {
    AuditEntry {
        partner_id: Some(scope.partner_id),
        campaign_id: None,
        actor,
        action,
        from_state: None,
        to_state: None,
        details,
        request_id: request.as_deref(),
    }
}

/// Suppress a number for the client: none of its campaigns will call it.
#[utoipa::path(
    tag = "suppressions",
    params(("client_id" = String, Path, description = "Client id"),
           ("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first response")),
    request_body = AddSuppression,
    responses(
        (status = 201, description = "Suppressed", body = SuppressionView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not change suppressions", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid number, or a reason over 500 characters", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/clients/{client_id}/suppressions")]
pub async fn add_suppression(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<AddSuppression>,
) -> ApiResult<HttpResponse> {
    let scope = principal.write_scope()?;
    let client = client_in_scope(&state, &scope, &path).await?;
    let body = body.into_inner();
    let number = normalise(
        &body.number,
        NumberPolicy {
            allow_non_geographic: true,
        },
    )
    .map_err(|error| ApiError::unprocessable(error.code(), error.to_string()))?;
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::unprocessable(
            "invalid_reason",
            "reason must be at most 500 characters",
        ));
    }
    let full_index = state.keyring.phone_index_array(number.e164.as_str());
    let index = stored_index(&full_index);
    // The fingerprint uses the whole blind index, so the stored replay record
    // contains no number.
    let fingerprint = [
        full_index.as_slice(),
        reason.as_deref().unwrap_or("").as_bytes(),
    ]
    .concat();
    idempotent(&state, &request, scope.partner_id, &fingerprint, async {
        let mut transaction = state.pool.begin().await?;
        let actor = principal.actor();
        let entry = suppressions::add(
            &mut *transaction,
            client,
            index,
            &number.e164.masked(),
            reason.as_deref(),
            &actor,
        )
        .await?;
        let request_id = request_id(&request);
        let details = serde_json::json!({ "suppression_id": entry.id, "client_id": client });
        audit::record(
            &mut *transaction,
            audit_entry(&scope, &actor, "suppression.add", details, &request_id),
        )
        .await?;
        transaction.commit().await?;
        tracing::info!(suppression_id = %entry.id, client_id = %client, "number suppressed");
        Ok((StatusCode::CREATED, SuppressionView::from(&entry)))
    })
    .await
}

/// List the client's active suppressions with masked numbers, newest first.
#[utoipa::path(
    tag = "suppressions",
    params(("client_id" = String, Path, description = "Client id"), PageQuery),
    responses(
        (status = 200, description = "A page of suppressions", body = SuppressionList),
        (status = 400, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role has no access", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client for this caller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/clients/{client_id}/suppressions")]
pub async fn list_suppressions(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<SuppressionList>> {
    let scope = principal.read_scope()?;
    let client = client_in_scope(&state, &scope, &path).await?;
    let limit = page_limit(query.limit)?;
    let before = query
        .cursor
        .as_deref()
        .map(decode_time_cursor)
        .transpose()?;
    let rows = suppressions::list(&state.pool, client, before, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<SuppressionView> = rows
        .iter()
        .take(limit as usize)
        .map(SuppressionView::from)
        .collect();
    let next = match (more, items.last()) {
        (true, Some(last)) => Some(encode_cursor(&[
            last.created_at.to_rfc3339(),
            last.id.to_string(),
        ])),
        _ => None,
    };
    Ok(web::Json(SuppressionList { items, next }))
}

/// Remove a suppression with a reason. The entry is kept and the removal audited.
#[utoipa::path(
    tag = "suppressions",
    params(("client_id" = String, Path, description = "Client id"), ("suppression_id" = String, Path, description = "Suppression id"),
           ("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first response")),
    request_body = RemoveSuppression,
    responses(
        (status = 200, description = "Removed", body = SuppressionView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not change suppressions", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such active suppression", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing reason", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/clients/{client_id}/suppressions/{suppression_id}/remove")]
pub async fn remove_suppression(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<RemoveSuppression>,
) -> ApiResult<HttpResponse> {
    let scope = principal.write_scope()?;
    let client = client_in_scope(&state, &scope, &path.0).await?;
    let id = parse_uuid(&path.1, "suppression")?;
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::unprocessable(
            "invalid_reason",
            "reason must be 1 to 500 characters",
        ));
    }
    let fingerprint = [id.as_bytes().as_slice(), reason.as_bytes()].concat();
    idempotent(&state, &request, scope.partner_id, &fingerprint, async {
        let mut transaction = state.pool.begin().await?;
        let actor = principal.actor();
        let entry = suppressions::remove(&mut *transaction, client, id, &reason, &actor)
            .await?
            .ok_or_else(|| ApiError::not_found("suppression"))?;
        let request_id = request_id(&request);
        let details = serde_json::json!({ "suppression_id": entry.id, "client_id": client, "reason": reason });
        audit::record(&mut *transaction, audit_entry(&scope, &actor, "suppression.remove", details, &request_id)).await?;
        transaction.commit().await?;
        tracing::info!(suppression_id = %entry.id, client_id = %client, "suppression removed");
        Ok((StatusCode::OK, SuppressionView::from(&entry)))
    })
    .await
}
