//! Creating, listing and reading campaigns.

use actix_web::http::StatusCode;
use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use outbound_domain::campaign::CampaignState;
use outbound_domain::contact_row::{normalise_header, Column};
use outbound_domain::evidence::Exemption;
use outbound_domain::hours::{CallType, CallingWindowSpec};
use outbound_domain::retry::RetryPolicy;
use outbound_persistence::audit::{self, AuditEntry};
use outbound_persistence::campaigns::{self, Campaign, NewCampaign};
use outbound_persistence::tenancy;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{decode_time_cursor, encode_cursor, idempotent, page_limit, parse_uuid, request_id};
use crate::auth::Principal;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;

const MAX_NAME_CHARS: usize = 200;
const MAX_CAPACITY: i32 = 10_000;
const MAX_PERSONALISATION_KEYS: usize = 50;
const MAX_TEXT_CHARS: usize = 500;

/// A new campaign. It starts in `draft`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    /// A project of one of the caller's assigned clients.
    pub project_id: Uuid,
    #[schema(example = "Summer energy offer")]
    pub name: String,
    pub call_type: CallType,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// Hours to call in, in the recipient's local time. Defaults to the call
    /// type's legal hours; a wider window is a validation blocker.
    pub calling_window: Option<CallingWindowSpec>,
    pub retry_policy: Option<RetryPolicy>,
    /// Extra CSV columns the voice agent may use, such as `first_name`: up to
    /// 64 letters, digits or underscores, starting with a letter, with fewer
    /// than six digits.
    #[serde(default)]
    pub personalisation_keys: Vec<String>,
    /// Most calls in progress at once.
    pub capacity: i32,
    /// Attempts per contact unless a row sets `max_attempts` (1–10, default 3).
    pub default_max_attempts: Option<i32>,
    /// The number shown to recipients (CLI); it must be an Australian number they can call back.
    pub caller_id: Option<String>,
    pub organisation: Option<String>,
    pub on_behalf_of: Option<String>,
    pub purpose: Option<String>,
    pub contact_for_questions: Option<String>,
    /// A designated-call exemption for the whole campaign.
    pub exemption: Option<Exemption>,
    pub exemption_evidence: Option<String>,
    /// Accept 13, 1300 and 1800 numbers (B2B campaigns).
    #[serde(default)]
    pub allow_non_geographic: bool,
    /// Also block each recipient state's own public holidays (default true).
    pub block_state_holidays: Option<bool>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignView {
    pub id: Uuid,
    pub project_id: Uuid,
    pub client_id: Uuid,
    pub name: String,
    pub call_type: CallType,
    pub state: CampaignState,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub calling_window: CallingWindowSpec,
    pub retry_policy: RetryPolicy,
    pub personalisation_keys: Vec<String>,
    pub capacity: i32,
    pub default_max_attempts: i32,
    pub caller_id: Option<String>,
    pub organisation: Option<String>,
    pub on_behalf_of: Option<String>,
    pub purpose: Option<String>,
    pub contact_for_questions: Option<String>,
    pub exemption: Option<Exemption>,
    pub allow_non_geographic: bool,
    pub block_state_holidays: bool,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&Campaign> for CampaignView {
    fn from(campaign: &Campaign) -> Self {
        Self {
            id: campaign.id,
            project_id: campaign.project_id,
            client_id: campaign.client_id,
            name: campaign.name.clone(),
            call_type: campaign.call_type(),
            state: campaign.state(),
            start_date: campaign.start_date,
            end_date: campaign.end_date,
            calling_window: campaign.calling_window.0.clone(),
            retry_policy: campaign.retry_policy.0.clone(),
            personalisation_keys: campaign.personalisation_keys.clone(),
            capacity: campaign.capacity,
            default_max_attempts: campaign.default_max_attempts,
            caller_id: campaign.caller_id.clone(),
            organisation: campaign.organisation.clone(),
            on_behalf_of: campaign.on_behalf_of.clone(),
            purpose: campaign.purpose.clone(),
            contact_for_questions: campaign.contact_for_questions.clone(),
            exemption: campaign.exemption(),
            allow_non_geographic: campaign.allow_non_geographic,
            block_state_holidays: campaign.block_state_holidays,
            version: campaign.version,
            created_at: campaign.created_at,
            updated_at: campaign.updated_at,
            launched_at: campaign.launched_at,
            finished_at: campaign.finished_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignList {
    pub items: Vec<CampaignView>,
    /// Cursor for the next page, absent on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

fn optional_text(field: &str, value: &Option<String>) -> ApiResult<Option<String>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) if text.chars().count() > MAX_TEXT_CHARS => Err(ApiError::unprocessable(
            "value_too_long",
            format!("{field} is longer than {MAX_TEXT_CHARS} characters"),
        )),
        Some(text) => Ok(Some(text.to_owned())),
    }
}

/// Checks a create request and turns it into a row to insert.
fn new_campaign(
    request: &CreateCampaign,
    partner_id: Uuid,
    client_id: Uuid,
) -> ApiResult<NewCampaign> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::unprocessable(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    let window = request
        .calling_window
        .clone()
        .unwrap_or_else(|| CallingWindowSpec::from_window(&request.call_type.default_window()));
    window
        .parse()
        .map_err(|error| ApiError::unprocessable("invalid_calling_window", error.to_string()))?;
    if !(1..=MAX_CAPACITY).contains(&request.capacity) && request.capacity != 0 {
        return Err(ApiError::unprocessable(
            "invalid_capacity",
            format!("capacity must be between 0 and {MAX_CAPACITY}"),
        ));
    }
    let max_attempts = request.default_max_attempts.unwrap_or(3);
    if !(1..=10).contains(&max_attempts) {
        return Err(ApiError::unprocessable(
            "invalid_max_attempts",
            "default_max_attempts must be between 1 and 10",
        ));
    }
    if let (Some(start), Some(end)) = (request.start_date, request.end_date) {
        if end < start {
            return Err(ApiError::unprocessable(
                "invalid_dates",
                "end_date is before start_date",
            ));
        }
    }
    if request.personalisation_keys.len() > MAX_PERSONALISATION_KEYS {
        return Err(ApiError::unprocessable(
            "invalid_personalisation_key",
            format!("at most {MAX_PERSONALISATION_KEYS} personalisation keys"),
        ));
    }
    let mut keys = Vec::new();
    for key in &request.personalisation_keys {
        let normalised = normalise_header(key);
        // A header cell with six or more digits is read as data, not as a
        // column name, so such a key could never be imported.
        let valid = normalised.len() <= 64
            && normalised.starts_with(|c: char| c.is_ascii_alphabetic())
            && normalised
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && normalised.chars().filter(char::is_ascii_digit).count() < 6;
        if !valid {
            return Err(ApiError::unprocessable(
                "invalid_personalisation_key",
                "personalisation keys are 1 to 64 letters, digits or underscores, starting with a letter, with fewer than six digits",
            ));
        }
        if Column::ALL.iter().any(|c| c.name() == normalised) || keys.contains(&normalised) {
            return Err(ApiError::unprocessable(
                "invalid_personalisation_key",
                format!("personalisation key {normalised:?} repeats or is a contact column"),
            ));
        }
        keys.push(normalised);
    }
    Ok(NewCampaign {
        partner_id,
        client_id,
        project_id: request.project_id,
        name: name.to_owned(),
        call_type: request.call_type,
        start_date: request.start_date,
        end_date: request.end_date,
        calling_window: window,
        retry_policy: request.retry_policy.clone().unwrap_or_default(),
        personalisation_keys: keys,
        capacity: request.capacity,
        default_max_attempts: max_attempts,
        caller_id: optional_text("caller_id", &request.caller_id)?,
        organisation: optional_text("organisation", &request.organisation)?,
        on_behalf_of: optional_text("on_behalf_of", &request.on_behalf_of)?,
        purpose: optional_text("purpose", &request.purpose)?,
        contact_for_questions: optional_text(
            "contact_for_questions",
            &request.contact_for_questions,
        )?,
        exemption: request.exemption,
        exemption_evidence: optional_text("exemption_evidence", &request.exemption_evidence)?,
        allow_non_geographic: request.allow_non_geographic,
        block_state_holidays: request.block_state_holidays.unwrap_or(true),
    })
}

/// Create a campaign for a project of an assigned client. It starts in `draft`.
#[utoipa::path(
    tag = "campaigns",
    request_body = CreateCampaign,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key; a repeat returns the first response")),
    responses(
        (status = 201, description = "Created", body = CampaignView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not create campaigns", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Project not found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid settings", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/campaigns")]
pub async fn create_campaign(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    body: web::Json<CreateCampaign>,
) -> ApiResult<HttpResponse> {
    let scope = principal.write_scope()?;
    let body = body.into_inner();
    let fingerprint = serde_json::to_vec(&body).unwrap_or_default();
    idempotent(&state, &request, scope.partner_id, &fingerprint, async {
        let project = tenancy::find_project_in_scope(&state.pool, &scope, body.project_id)
            .await?
            .ok_or_else(|| ApiError::not_found("project"))?;
        let new = new_campaign(&body, scope.partner_id, project.client_id)?;
        let mut transaction = state.pool.begin().await?;
        let campaign = campaigns::insert(&mut *transaction, &new).await?;
        audit::record(
            &mut *transaction,
            AuditEntry {
                partner_id: Some(scope.partner_id),
                campaign_id: Some(campaign.id),
                actor: &principal.actor(),
                action: "campaign.create",
                from_state: None,
                to_state: Some(CampaignState::Draft.as_str()),
                details: serde_json::json!({ "call_type": campaign.call_type, "project_id": campaign.project_id }),
                request_id: request_id(&request).as_deref(),
            },
        )
        .await?;
        transaction.commit().await?;
        tracing::info!(campaign_id = %campaign.id, partner_id = %scope.partner_id, "campaign created");
        Ok((StatusCode::CREATED, CampaignView::from(&campaign)))
    })
    .await
}

/// List the caller's campaigns, newest first.
#[utoipa::path(
    tag = "campaigns",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of campaigns", body = CampaignList),
        (status = 400, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role has no campaign access", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/campaigns")]
pub async fn list_campaigns(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<CampaignList>> {
    let scope = principal.read_scope()?;
    let limit = page_limit(query.limit)?;
    let before = query
        .cursor
        .as_deref()
        .map(decode_time_cursor)
        .transpose()?;
    let rows = campaigns::list(&state.pool, &scope, before, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<CampaignView> = rows
        .iter()
        .take(limit as usize)
        .map(CampaignView::from)
        .collect();
    let next = match (more, items.last()) {
        (true, Some(last)) => Some(encode_cursor(&[
            last.created_at.to_rfc3339(),
            last.id.to_string(),
        ])),
        _ => None,
    };
    Ok(web::Json(CampaignList { items, next }))
}

/// Get one campaign.
#[utoipa::path(
    tag = "campaigns",
    params(("campaign_id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign; its ETag header is the If-Match value for PATCH", body = CampaignView),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role has no campaign access", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/campaigns/{campaign_id}")]
pub async fn get_campaign(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let scope = principal.read_scope()?;
    let id = parse_uuid(&path, "campaign")?;
    let campaign = campaigns::find(&state.pool, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(&campaign)))
        .json(CampaignView::from(&campaign)))
}
/// The entity tag of a campaign's settings: its version.
pub fn etag(campaign: &Campaign) -> String {
    format!("\"v{}\"", campaign.version)
}

/// Fields that cannot change after creation.
const IMMUTABLE_FIELDS: [&str; 2] = ["project_id", "call_type"];

/// Change campaign settings with a JSON merge patch (RFC 7396): fields given
/// replace the current ones and `null` clears an optional field.
///
/// Requires `If-Match` with the campaign's current `ETag`. Settings can change
/// only in `draft` or `paused`, because they bear on compliance or calling;
/// `name` alone may also change while running.
#[utoipa::path(
    tag = "campaigns",
    params(
        ("campaign_id" = String, Path, description = "Campaign id"),
        ("If-Match" = String, Header, description = "The ETag from the last read of this campaign"),
    ),
    request_body(content = Object, content_type = "application/merge-patch+json", description = "Fields of CreateCampaign to change, except project_id and call_type"),
    responses(
        (status = 200, description = "Updated; the new ETag is in the header", body = CampaignView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not edit campaigns", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Campaign state does not allow this change", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not match the current ETag", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is neither application/merge-patch+json nor application/json (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid settings", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/v1/campaigns/{campaign_id}")]
pub async fn update_campaign(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let scope = principal.write_scope()?;
    let id = parse_uuid(&path, "campaign")?;
    let media_type = request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    if !matches!(
        media_type.as_deref(),
        Some("application/merge-patch+json" | "application/json")
    ) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "this endpoint takes a JSON merge patch; send it with `Content-Type: application/merge-patch+json` or `application/json`",
        ));
    }
    let patch: serde_json::Value = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(
            "invalid_body",
            format!(
                "the JSON body is invalid: {}",
                crate::problem::redact_digits(&error.to_string())
            ),
        )
    })?;
    let serde_json::Value::Object(patch) = patch else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object of fields to change",
        ));
    };
    if let Some(field) = IMMUTABLE_FIELDS.iter().find(|f| patch.contains_key(**f)) {
        return Err(ApiError::unprocessable(
            "immutable_field",
            format!("{field} cannot change after the campaign is created"),
        ));
    }
    let if_match = request
        .headers()
        .get("If-Match")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned());

    let mut transaction = state.pool.begin().await?;
    let campaign = campaigns::find_for_update(&mut transaction, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let Some(if_match) = if_match else {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "if_match_required",
            "send If-Match with the ETag from your last read of the campaign",
        ));
    };
    let current = etag(&campaign);
    if if_match != current && if_match != "*" {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "etag_mismatch",
            "the campaign changed since you read it; read it again and reapply your change",
        )
        .with("etag", current));
    }
    let only_name = patch.keys().all(|k| k == "name");
    let editable = campaign.state().accepts_changes()
        || (only_name && campaign.state() == CampaignState::Running);
    if !editable {
        return Err(ApiError::conflict(
            "campaign_not_editable",
            format!(
                "settings can change only in draft or paused; the campaign is {}",
                campaign.state()
            ),
        )
        .with("state", campaign.state()));
    }

    let mut merged =
        serde_json::to_value(current_settings(&campaign)).map_err(|e| ApiError::internal(&e))?;
    if let serde_json::Value::Object(target) = &mut merged {
        for (key, value) in &patch {
            target.insert(key.clone(), value.clone());
        }
    }
    let merged: CreateCampaign = serde_json::from_value(merged).map_err(|error| {
        ApiError::unprocessable(
            "invalid_settings",
            format!(
                "the settings are invalid: {}",
                crate::problem::redact_digits(&error.to_string())
            ),
        )
    })?;
    let update = new_campaign(&merged, campaign.partner_id, campaign.client_id)?;
    let updated = campaigns::update_settings(&mut transaction, id, &update).await?;
    let mut fields: Vec<&String> = patch.keys().collect();
    fields.sort();
    audit::record(
        &mut *transaction,
        AuditEntry {
            partner_id: Some(scope.partner_id),
            campaign_id: Some(id),
            actor: &principal.actor(),
            action: "campaign.update",
            from_state: None,
            to_state: None,
            details: serde_json::json!({ "fields": fields, "version": updated.version }),
            request_id: request_id(&request).as_deref(),
        },
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(campaign_id = %id, version = updated.version, "campaign settings updated");
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(&updated)))
        .json(CampaignView::from(&updated)))
}

/// The campaign's settings in the create request's shape.
fn current_settings(campaign: &Campaign) -> CreateCampaign {
    CreateCampaign {
        project_id: campaign.project_id,
        name: campaign.name.clone(),
        call_type: campaign.call_type(),
        start_date: campaign.start_date,
        end_date: campaign.end_date,
        calling_window: Some(campaign.calling_window.0.clone()),
        retry_policy: Some(campaign.retry_policy.0.clone()),
        personalisation_keys: campaign.personalisation_keys.clone(),
        capacity: campaign.capacity,
        default_max_attempts: Some(campaign.default_max_attempts),
        caller_id: campaign.caller_id.clone(),
        organisation: campaign.organisation.clone(),
        on_behalf_of: campaign.on_behalf_of.clone(),
        purpose: campaign.purpose.clone(),
        contact_for_questions: campaign.contact_for_questions.clone(),
        exemption: campaign.exemption(),
        exemption_evidence: campaign.exemption_evidence.clone(),
        allow_non_geographic: campaign.allow_non_geographic,
        block_state_holidays: Some(campaign.block_state_holidays),
    }
}
