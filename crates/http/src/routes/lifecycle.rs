//! Launch validation, exclusions and state transitions.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use outbound_domain::calendar::HolidayCalendar;
use outbound_domain::campaign::{apply, CampaignState, Transition};
use outbound_domain::eligibility::{BlockReason, Decision, Rules};
use outbound_domain::validation::{validate, ContactStatus, ValidationReport};
use outbound_persistence::audit::{self, AuditEntry};
use outbound_persistence::campaigns::{self, Campaign};
use outbound_persistence::contacts::{self, ContactRecord};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::campaigns::CampaignView;
use super::{idempotent, parse_uuid, request_id};
use crate::auth::Principal;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;

/// Asks the eligibility engine about one contact at `now`.
pub fn decide(campaign: &Campaign, contact: &ContactRecord, now: DateTime<Utc>) -> Decision {
    let zones = contact.zones();
    Rules::default().evaluate(&contact.facts(&zones), &campaign.rules(), now)
}

fn contact_status(
    campaign: &Campaign,
    contact: &ContactRecord,
    now: DateTime<Utc>,
) -> ContactStatus {
    let pending = contact.state == "pending";
    let blocked = if pending {
        decide(campaign, contact, now).blocked
    } else {
        None
    };
    ContactStatus {
        contact_id: contact.id.to_string(),
        row: Some(i64::from(contact.row_number)),
        excluded: contact.state == "excluded",
        finished: !pending && contact.state != "dialing",
        blocked,
        consent_without_evidence: contact.consent_type.is_some()
            && contact.consent_evidence.is_none(),
    }
}

/// Runs launch validation over the campaign's contacts at `now`.
pub async fn run_validation(
    connection: &mut PgConnection,
    campaign: &Campaign,
    now: DateTime<Utc>,
) -> sqlx::Result<ValidationReport> {
    let records = contacts::all_for_campaign(&mut *connection, campaign.id).await?;
    let statuses: Vec<ContactStatus> = records
        .iter()
        .map(|c| contact_status(campaign, c, now))
        .collect();
    Ok(validate(
        &campaign.settings(),
        HolidayCalendar::bundled(),
        &statuses,
    ))
}

/// Run launch validation and report every check.
#[utoipa::path(
    tag = "lifecycle",
    params(("campaign_id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The validation report", body = ValidationReport),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role has no campaign access", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/campaigns/{campaign_id}/validation")]
pub async fn validate_campaign(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> ApiResult<web::Json<ValidationReport>> {
    let scope = principal.read_scope()?;
    let id = parse_uuid(&path, "campaign")?;
    let mut connection = state.pool.acquire().await?;
    let campaign = campaigns::find(&mut *connection, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let report = run_validation(&mut connection, &campaign, state.clock.now()).await?;
    Ok(web::Json(report))
}

/// Which contacts to exclude.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExclusionRequest {
    /// Exclude every pending contact blocked for one of these reasons
    /// (such as `dncr_registered`, `dncr_unwashed`, `consent_expired`).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Exclude these contacts whatever their state of eligibility.
    #[serde(default)]
    pub contact_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExclusionResult {
    pub excluded: u64,
    /// Contacts excluded per reason.
    pub by_reason: BTreeMap<String, u64>,
}

/// Exclude contacts that block validation. Excluded contacts are kept and
/// reported, never deleted or called.
#[utoipa::path(
    tag = "lifecycle",
    params(("campaign_id" = String, Path, description = "Campaign id"),
           ("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first result")),
    request_body = ExclusionRequest,
    responses(
        (status = 200, description = "Contacts excluded", body = ExclusionResult),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not exclude", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Campaign is not in draft or paused", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown reason", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/campaigns/{campaign_id}/exclusions")]
pub async fn exclude_contacts(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<ExclusionRequest>,
) -> ApiResult<HttpResponse> {
    let scope = principal.write_scope()?;
    let id = parse_uuid(&path, "campaign")?;
    let body = body.into_inner();
    let mut reasons = Vec::new();
    for reason in &body.reasons {
        match BlockReason::parse(reason) {
            Some(reason) if !reason.is_temporary() => reasons.push(reason),
            _ => {
                return Err(ApiError::unprocessable(
                    "invalid_exclusion_reason",
                    format!("{} is not a block reason that exclusion resolves; use a reason from the validation report", crate::problem::redact_digits(&format!("{reason:?}"))),
                ))
            }
        }
    }
    if reasons.is_empty() && body.contact_ids.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_exclusion_reason",
            "give reasons or contact_ids",
        ));
    }
    campaigns::find(&state.pool, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let fingerprint = serde_json::to_vec(&body).unwrap_or_default();
    idempotent(&state, &request, scope.partner_id, &fingerprint, async {
        let mut transaction = state.pool.begin().await?;
        let campaign = campaigns::find_for_update(&mut transaction, &scope, id)
            .await?
            .ok_or_else(|| ApiError::not_found("campaign"))?;
        if !campaign.state().accepts_changes() {
            return Err(ApiError::conflict(
                "campaign_not_editable",
                format!(
                    "contacts can be excluded only in draft or paused; the campaign is {}",
                    campaign.state()
                ),
            )
            .with("state", campaign.state()));
        }
        let now = state.clock.now();
        let records = contacts::all_for_campaign(&mut *transaction, campaign.id).await?;
        let mut ids = Vec::new();
        let mut labels = Vec::new();
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        for record in records.iter().filter(|r| r.state == "pending") {
            let label = if body.contact_ids.contains(&record.id) {
                Some("operator_request".to_owned())
            } else {
                decide(&campaign, record, now)
                    .blocked
                    .filter(|b| reasons.contains(b))
                    .map(|b| b.as_str().to_owned())
            };
            if let Some(label) = label {
                *by_reason.entry(label.clone()).or_default() += 1;
                ids.push(record.id);
                labels.push(label);
            }
        }
        let excluded = contacts::exclude(&mut *transaction, campaign.id, &ids, &labels).await?;
        audit::record(
            &mut *transaction,
            AuditEntry {
                partner_id: Some(scope.partner_id),
                campaign_id: Some(campaign.id),
                actor: &principal.actor(),
                action: "contacts.exclude",
                from_state: None,
                to_state: None,
                details: serde_json::json!({ "excluded": excluded, "by_reason": by_reason }),
                request_id: request_id(&request).as_deref(),
            },
        )
        .await?;
        transaction.commit().await?;
        tracing::info!(campaign_id = %campaign.id, excluded, "contacts excluded");
        Ok((
            StatusCode::OK,
            ExclusionResult {
                excluded,
                by_reason,
            },
        ))
    })
    .await
}

/// Applies a transition under the campaign's row lock. Launch and resume
/// recompute validation in the same transaction and are refused unless ready.
async fn transition(
    state: &AppState,
    principal: &Principal,
    request: &HttpRequest,
    campaign_id: &str,
    transition: Transition,
) -> ApiResult<HttpResponse> {
    let scope = principal.write_scope()?;
    let id = parse_uuid(campaign_id, "campaign")?;
    campaigns::find(&state.pool, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    idempotent(state, request, scope.partner_id, transition.as_str().as_bytes(), async {
        let mut transaction = state.pool.begin().await?;
        let campaign = campaigns::find_for_update(&mut transaction, &scope, id).await?.ok_or_else(|| ApiError::not_found("campaign"))?;
        let from = campaign.state();
        let to = apply(from, transition).map_err(|error| {
            ApiError::conflict("invalid_transition", error.to_string()).with("state", from)
        })?;
        if transition.needs_validation() {
            let report = run_validation(&mut transaction, &campaign, state.clock.now()).await?;
            if !report.ready {
                return Err(ApiError::conflict(
                    "validation_failed",
                    format!("the campaign cannot {}: validation has blockers; resolve them and try again", transition.as_str()),
                )
                .with("state", from)
                .with("validation", report));
            }
        }
        campaigns::set_state(&mut transaction, id, to).await?;
        if to == CampaignState::Cancelled {
            sqlx::query(
                "UPDATE contacts SET state = 'cancelled', final_reason = 'campaign_cancelled', next_attempt_at = NULL, updated_at = now()
                  WHERE campaign_id = $1 AND state = 'pending'",
            )
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        }
        audit::record(
            &mut *transaction,
            AuditEntry {
                partner_id: Some(scope.partner_id),
                campaign_id: Some(id),
                actor: &principal.actor(),
                action: &format!("campaign.{}", transition.as_str()),
                from_state: Some(from.as_str()),
                to_state: Some(to.as_str()),
                details: serde_json::json!({}),
                request_id: request_id(request).as_deref(),
            },
        )
        .await?;
        let updated = campaigns::find(&mut *transaction, &scope, id).await?.ok_or_else(|| ApiError::not_found("campaign"))?;
        transaction.commit().await?;
        tracing::info!(campaign_id = %id, from = %from, to = %to, "campaign state changed");
        Ok((StatusCode::OK, CampaignView::from(&updated)))
    })
    .await
}

macro_rules! transition_endpoint {
    ($name:ident, $path:literal, $transition:expr, $doc:literal, $conflict:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            tag = "lifecycle",
            params(("campaign_id" = String, Path, description = "Campaign id"),
                   ("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first result")),
            responses(
                (status = 200, description = "The campaign in its new state", body = CampaignView),
                (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
                (status = 403, description = "Role may not change campaign state", body = Problem, content_type = "application/problem+json"),
                (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
                (status = 409, description = $conflict, body = Problem, content_type = "application/problem+json"),
            ),
            security(("bearer" = []))
        )]
        #[post($path)]
        pub async fn $name(
            state: web::Data<AppState>,
            principal: Principal,
            request: HttpRequest,
            path: web::Path<String>,
        ) -> ApiResult<HttpResponse> {
            transition(&state, &principal, &request, &path, $transition).await
        }
    };
}

transition_endpoint!(
    launch_campaign,
    "/v1/campaigns/{campaign_id}/launch",
    Transition::Launch,
    "Launch a draft campaign. Validation is recomputed in the same transaction; blockers refuse the launch with 409 and the report.",
    "Invalid transition (with the current state) or validation blockers (with the report)"
);
transition_endpoint!(
    pause_campaign,
    "/v1/campaigns/{campaign_id}/pause",
    Transition::Pause,
    "Pause a running campaign. No new attempt is handed over once this returns; connected calls finish and are recorded.",
    "Invalid transition, with the current state"
);
transition_endpoint!(
    resume_campaign,
    "/v1/campaigns/{campaign_id}/resume",
    Transition::Resume,
    "Resume a paused campaign after revalidating it in the same transaction.",
    "Invalid transition (with the current state) or validation blockers (with the report)"
);
transition_endpoint!(
    cancel_campaign,
    "/v1/campaigns/{campaign_id}/cancel",
    Transition::Cancel,
    "Cancel a campaign. Terminal: pending contacts are closed, connected calls finish and are recorded, nothing is deleted.",
    "Invalid transition, with the current state"
);
