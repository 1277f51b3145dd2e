//! Campaign report, masked contact list and audit trail.

use std::collections::{BTreeMap, HashMap};

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use outbound_domain::campaign::CampaignState;
use outbound_domain::eligibility::Decision;
use outbound_domain::validation::CheckStatus;
use outbound_persistence::attempts::{self, AttemptRecord};
use outbound_persistence::audit::{self, AuditRecord};
use outbound_persistence::campaigns::{self, Campaign};
use outbound_persistence::contacts::{self, ContactRecord};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::campaigns::PageQuery;
use super::lifecycle::{decide, run_validation};
use super::{decode_cursor, encode_cursor, page_limit, parse_uuid};
use crate::auth::Principal;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub actor: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ValidationSummary {
    /// False for a completed or cancelled campaign, which validation no
    /// longer applies to; `ready` is then false and the lists are empty.
    pub checked: bool,
    pub ready: bool,
    /// Names of checks that are blockers now.
    pub blockers: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetrySummary {
    /// Pending contacts that have been called before and wait for a retry.
    pub scheduled: u64,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignReport {
    pub campaign_id: Uuid,
    pub name: String,
    pub state: CampaignState,
    /// The time the report was computed at (the dispatcher's clock).
    pub as_of: DateTime<Utc>,
    pub contacts_total: u64,
    /// Contacts by state: pending, dialing, done, excluded, cancelled.
    pub contacts_by_state: BTreeMap<String, u64>,
    /// Why finished contacts ended: answered, opted_out, attempts_exhausted, campaign_cancelled, …
    pub contacts_by_final_reason: BTreeMap<String, u64>,
    /// Last outcome of each contact that has been called.
    pub contacts_by_last_outcome: BTreeMap<String, u64>,
    /// Why pending contacts cannot be called right now.
    pub contacts_by_blocked_reason: BTreeMap<String, u64>,
    pub excluded_by_reason: BTreeMap<String, u64>,
    pub registry_results: BTreeMap<String, u64>,
    pub attempts_made: u64,
    pub attempts_by_outcome: BTreeMap<String, u64>,
    pub retries: RetrySummary,
    pub suppressed_contacts: u64,
    pub validation: ValidationSummary,
    pub timeline: Vec<TimelineEntry>,
}

fn tally<'a>(values: impl Iterator<Item = Option<&'a str>>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for value in values.flatten() {
        *counts.entry(value.to_owned()).or_default() += 1;
    }
    counts
}

/// Get the campaign report: counts by state, outcome and reason, attempts,
/// retries, registry results, suppressions, exclusions, validation and the
/// timeline of state changes.
#[utoipa::path(
    tag = "reports",
    params(("campaign_id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The report", body = CampaignReport),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role has no campaign access", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/campaigns/{campaign_id}/report")]
pub async fn campaign_report(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> ApiResult<web::Json<CampaignReport>> {
    let scope = principal.read_scope()?;
    let id = parse_uuid(&path, "campaign")?;
    let mut connection = state.pool.acquire().await?;
    let campaign = campaigns::find(&mut *connection, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let now = state.clock.now();
    let records = contacts::all_for_campaign(&mut *connection, id).await?;
    let pending: Vec<&ContactRecord> = records.iter().filter(|r| r.state == "pending").collect();
    let blocked: Vec<Option<&'static str>> = pending
        .iter()
        .map(|r| decide(&campaign, r, now).blocked.map(|b| b.as_str()))
        .collect();
    let retries: Vec<&&ContactRecord> = pending.iter().filter(|r| r.attempts_made > 0).collect();

    let validation = if matches!(
        campaign.state(),
        CampaignState::Draft | CampaignState::Paused | CampaignState::Running
    ) {
        let report = run_validation(&mut connection, &campaign, now).await?;
        let names = |status: CheckStatus| {
            report
                .checks
                .iter()
                .filter(|c| c.status == status)
                .map(|c| {
                    serde_json::to_value(c.name)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
        };
        ValidationSummary {
            checked: true,
            ready: report.ready,
            blockers: names(CheckStatus::Blocker),
            warnings: names(CheckStatus::Warning),
        }
    } else {
        ValidationSummary {
            checked: false,
            ready: false,
            blockers: Vec::new(),
            warnings: Vec::new(),
        }
    };
    let attempt_counts = attempts::outcome_counts(&mut *connection, id).await?;
    let attempts_made = attempt_counts.iter().map(|(_, n)| *n as u64).sum();
    let attempts_by_outcome = attempt_counts
        .into_iter()
        .map(|(outcome, n)| (outcome.unwrap_or_else(|| "in_progress".into()), n as u64))
        .collect();
    let timeline = audit::timeline(&mut *connection, id)
        .await?
        .into_iter()
        .map(|entry| TimelineEntry {
            at: entry.created_at,
            action: entry.action,
            from_state: entry.from_state,
            to_state: entry.to_state,
            actor: entry.actor,
        })
        .collect();

    Ok(web::Json(CampaignReport {
        campaign_id: id,
        name: campaign.name.clone(),
        state: campaign.state(),
        as_of: now,
        contacts_total: records.len() as u64,
        contacts_by_state: tally(records.iter().map(|r| Some(r.state.as_str()))),
        contacts_by_final_reason: tally(records.iter().map(|r| r.final_reason.as_deref())),
        contacts_by_last_outcome: tally(records.iter().map(|r| r.last_outcome.as_deref())),
        contacts_by_blocked_reason: tally(blocked.into_iter()),
        excluded_by_reason: tally(records.iter().map(|r| r.excluded_reason.as_deref())),
        registry_results: tally(
            records
                .iter()
                .map(|r| Some(r.registry_status.as_deref().unwrap_or("none"))),
        ),
        attempts_made,
        attempts_by_outcome,
        retries: RetrySummary {
            scheduled: retries.len() as u64,
            next_attempt_at: retries.iter().filter_map(|r| r.next_attempt_at).min(),
        },
        suppressed_contacts: records.iter().filter(|r| r.suppressed).count() as u64,
        validation,
        timeline,
    }))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt_id: Uuid,
    pub attempt_number: i32,
    pub state: String,
    pub outcome: Option<String>,
    pub end_reason: Option<String>,
    /// The zone and local time the calling-hours check used.
    pub zone_checked: String,
    pub local_time_checked: String,
    /// What cleared the register rules: wash, consent, exemption or not_required.
    pub clearance: String,
    pub duration_seconds: Option<i32>,
    /// The voice platform's short call summary.
    pub call_summary: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<&AttemptRecord> for AttemptView {
    fn from(attempt: &AttemptRecord) -> Self {
        Self {
            attempt_id: attempt.id,
            attempt_number: attempt.attempt_number,
            state: attempt.state.clone(),
            outcome: attempt.outcome.clone(),
            end_reason: attempt.end_reason.clone(),
            zone_checked: attempt.zone_checked.clone(),
            local_time_checked: attempt.local_time_checked.clone(),
            clearance: attempt.clearance.clone(),
            duration_seconds: attempt.duration_seconds,
            call_summary: attempt.summary.clone(),
            started_at: attempt.started_at,
            ended_at: attempt.ended_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactView {
    pub contact_id: Uuid,
    /// Row in its import file.
    pub row: i32,
    pub import_id: Uuid,
    /// Country code and last three digits only.
    #[schema(example = "+61 ******006")]
    pub masked_number: String,
    pub number_type: String,
    pub contact_ref: Option<String>,
    /// pending, dialing, done, excluded or cancelled.
    pub state: String,
    pub zone_source: String,
    /// The explicit zone or state code, or the candidate group of the number.
    pub zone: String,
    pub registry_status: Option<String>,
    pub registry_checked_at: Option<DateTime<Utc>>,
    pub registry_evidence: Option<String>,
    pub consent_type: Option<String>,
    pub exemption: Option<String>,
    pub priority: i32,
    pub attempts_made: i32,
    pub max_attempts: i32,
    pub last_outcome: Option<String>,
    pub final_reason: Option<String>,
    pub excluded_reason: Option<String>,
    /// Why the contact is not being called now (pending contacts only).
    pub blocked_reason: Option<String>,
    /// When it next may be called, from the same rules that gate the call.
    pub next_eligible_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub suppressed: bool,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactPage {
    pub items: Vec<ContactView>,
    pub next: Option<String>,
}

/// List a campaign's contacts with masked numbers, their state, why each is
/// not being called now and when it next may be, and their attempts with call
/// summaries. Contacts come in import order, then file order.
#[utoipa::path(
    tag = "reports",
    params(("campaign_id" = String, Path, description = "Campaign id"), PageQuery),
    responses(
        (status = 200, description = "A page of contacts", body = ContactPage),
        (status = 400, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role has no campaign access", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/campaigns/{campaign_id}/contacts")]
pub async fn list_contacts(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<ContactPage>> {
    let scope = principal.read_scope()?;
    let id = parse_uuid(&path, "campaign")?;
    let limit = page_limit(query.limit)?;
    let after = match &query.cursor {
        None => None,
        Some(cursor) => {
            let parts = decode_cursor(cursor, 2)?;
            let invalid = || {
                ApiError::bad_request(
                    "invalid_cursor",
                    "the cursor is invalid; use the `next` value of the previous page",
                )
            };
            Some((
                parts[0].parse::<i32>().map_err(|_| invalid())?,
                Uuid::parse_str(&parts[1]).map_err(|_| invalid())?,
            ))
        }
    };
    let mut connection = state.pool.acquire().await?;
    let campaign = campaigns::find(&mut *connection, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let rows = contacts::page(&mut *connection, id, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<ContactRecord> = rows.into_iter().take(limit as usize).collect();
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut by_contact: HashMap<Uuid, Vec<AttemptView>> = HashMap::new();
    for attempt in attempts::for_contacts(&mut *connection, &ids).await? {
        by_contact
            .entry(attempt.contact_id)
            .or_default()
            .push(AttemptView::from(&attempt));
    }
    let now = state.clock.now();
    let items = rows
        .iter()
        .map(|record| {
            let decision =
                (record.state == "pending").then(|| pending_schedule(&campaign, record, now));
            ContactView {
                contact_id: record.id,
                row: record.row_number,
                import_id: record.import_id,
                masked_number: record.phone_masked.clone(),
                number_type: record.number_type.clone(),
                contact_ref: record.contact_ref.clone(),
                state: record.state.clone(),
                zone_source: record.zone_source.clone(),
                zone: record.zone_key.clone(),
                registry_status: record.registry_status.clone(),
                registry_checked_at: record.registry_checked_at,
                registry_evidence: record.registry_evidence.clone(),
                consent_type: record.consent_type.clone(),
                exemption: record.exemption.clone(),
                priority: record.priority,
                attempts_made: record.attempts_made,
                max_attempts: record.max_attempts,
                last_outcome: record.last_outcome.clone(),
                final_reason: record.final_reason.clone(),
                excluded_reason: record.excluded_reason.clone(),
                blocked_reason: decision
                    .and_then(|d| d.blocked)
                    .map(|b| b.as_str().to_owned()),
                next_eligible_at: decision.and_then(|d| d.next_eligible_at),
                next_attempt_at: record.next_attempt_at,
                suppressed: record.suppressed,
                attempts: by_contact.remove(&record.id).unwrap_or_default(),
            }
        })
        .collect();
    let next = match (more, rows.last()) {
        (true, Some(last)) => Some(encode_cursor(&[
            last.row_number.to_string(),
            last.id.to_string(),
        ])),
        _ => None,
    };
    Ok(web::Json(ContactPage { items, next }))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub request_id: Option<String>,
}

impl From<AuditRecord> for AuditView {
    fn from(entry: AuditRecord) -> Self {
        Self {
            id: entry.id,
            at: entry.created_at,
            actor: entry.actor,
            action: entry.action,
            from_state: entry.from_state,
            to_state: entry.to_state,
            details: entry.details,
            request_id: entry.request_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditView>,
    pub next: Option<String>,
}

/// The campaign's audit trail, oldest first: who did what, when, the state
/// change and the request id. Entries contain no phone numbers or personalisation.
#[utoipa::path(
    tag = "reports",
    params(("campaign_id" = String, Path, description = "Campaign id"), PageQuery),
    responses(
        (status = 200, description = "A page of audit entries", body = AuditPage),
        (status = 400, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role has no campaign access", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/campaigns/{campaign_id}/audit")]
pub async fn campaign_audit(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<AuditPage>> {
    let scope = principal.read_scope()?;
    let id = parse_uuid(&path, "campaign")?;
    let limit = page_limit(query.limit)?;
    let after = match &query.cursor {
        None => 0,
        Some(cursor) => decode_cursor(cursor, 1)?[0].parse().map_err(|_| {
            ApiError::bad_request(
                "invalid_cursor",
                "the cursor is invalid; use the `next` value of the previous page",
            )
        })?,
    };
    campaigns::find(&state.pool, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let rows = audit::list_for_campaign(&state.pool, id, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<AuditView> = rows
        .into_iter()
        .take(limit as usize)
        .map(AuditView::from)
        .collect();
    let next = match (more, items.last()) {
        (true, Some(last)) => Some(encode_cursor(&[last.id.to_string()])),
        _ => None,
    };
    Ok(web::Json(AuditPage { items, next }))
}

/// Columns of the contacts export, in order.
const EXPORT_COLUMNS: [&str; 19] = [
    "contact_id",
    "row",
    "masked_number",
    "number_type",
    "contact_ref",
    "state",
    "zone_source",
    "zone",
    "registry_status",
    "registry_checked_at",
    "attempts_made",
    "max_attempts",
    "last_outcome",
    "final_reason",
    "excluded_reason",
    "blocked_reason",
    "next_eligible_at",
    "suppressed",
    "last_call_summary",
];

/// Neutralises a cell a spreadsheet would run as a formula (`=`, `+`, `-`,
/// `@`, tab, carriage return or line feed first) by prefixing an apostrophe.
/// The full-width forms of the four operators are treated alike, as a precaution.
pub fn spreadsheet_safe(cell: &str) -> String {
    match cell.chars().next() {
        Some(
            '=' | '+' | '-' | '@' | '\t' | '\r' | '\n' | '\u{ff1d}' | '\u{ff0b}' | '\u{ff0d}'
            | '\u{ff20}',
        ) => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// Export every contact of a campaign as CSV with masked numbers. Cells that
/// a spreadsheet would run as a formula are neutralised.
#[utoipa::path(
    tag = "reports",
    params(("campaign_id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The contacts as CSV", body = String, content_type = "text/csv"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role has no campaign access", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/campaigns/{campaign_id}/contacts.csv")]
pub async fn export_contacts(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> ApiResult<actix_web::HttpResponse> {
    let scope = principal.read_scope()?;
    let id = parse_uuid(&path, "campaign")?;
    let mut connection = state.pool.acquire().await?;
    let campaign = campaigns::find(&mut *connection, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let records = contacts::all_for_campaign(&mut *connection, id).await?;
    let ids: Vec<Uuid> = records.iter().map(|r| r.id).collect();
    let mut last_summary: HashMap<Uuid, String> = HashMap::new();
    for attempt in attempts::for_contacts(&mut *connection, &ids).await? {
        if let Some(summary) = attempt.summary {
            last_summary.insert(attempt.contact_id, summary);
        }
    }
    let now = state.clock.now();
    let mut writer = csv::Writer::from_writer(Vec::new());
    let write_error = |e: csv::Error| ApiError::internal(&e);
    writer.write_record(EXPORT_COLUMNS).map_err(write_error)?;
    for record in &records {
        let decision =
            (record.state == "pending").then(|| pending_schedule(&campaign, record, now));
        let optional_time =
            |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
        let cells = [
            record.id.to_string(),
            record.row_number.to_string(),
            record.phone_masked.clone(),
            record.number_type.clone(),
            record.contact_ref.clone().unwrap_or_default(),
            record.state.clone(),
            record.zone_source.clone(),
            record.zone_key.clone(),
            record.registry_status.clone().unwrap_or_default(),
            optional_time(record.registry_checked_at),
            record.attempts_made.to_string(),
            record.max_attempts.to_string(),
            record.last_outcome.clone().unwrap_or_default(),
            record.final_reason.clone().unwrap_or_default(),
            record.excluded_reason.clone().unwrap_or_default(),
            decision
                .and_then(|d| d.blocked)
                .map(|b| b.as_str().to_owned())
                .unwrap_or_default(),
            optional_time(decision.and_then(|d| d.next_eligible_at)),
            record.suppressed.to_string(),
            last_summary.remove(&record.id).unwrap_or_default(),
        ];
        writer
            .write_record(cells.iter().map(|cell| spreadsheet_safe(cell)))
            .map_err(write_error)?;
    }
    let body = writer.into_inner().map_err(|e| ApiError::internal(&e))?;
    Ok(actix_web::HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"campaign-{id}-contacts.csv\""),
        ))
        .body(body))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Timeline {
    pub items: Vec<TimelineEntry>,
}

/// The campaign's state changes, oldest first.
#[utoipa::path(
    tag = "reports",
    params(("campaign_id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "State changes", body = Timeline),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role has no campaign access", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/campaigns/{campaign_id}/timeline")]
pub async fn campaign_timeline(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> ApiResult<web::Json<Timeline>> {
    let scope = principal.read_scope()?;
    let id = parse_uuid(&path, "campaign")?;
    campaigns::find(&state.pool, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let items = audit::timeline(&state.pool, id)
        .await?
        .into_iter()
        .map(|entry| TimelineEntry {
            at: entry.created_at,
            action: entry.action,
            from_state: entry.from_state,
            to_state: entry.to_state,
            actor: entry.actor,
        })
        .collect();
    Ok(web::Json(Timeline { items }))
}

/// Why a pending contact is not called now and when it next may be: the
/// block is the rules' decision at `now`, and the instant is the first one the
/// rules allow from its scheduled retry on, so a contact waiting for a retry
/// never shows an earlier time than the dispatcher will use.
fn pending_schedule(campaign: &Campaign, record: &ContactRecord, now: DateTime<Utc>) -> Decision {
    let current = decide(campaign, record, now);
    match record.next_attempt_at.filter(|at| *at > now) {
        Some(retry_at) => Decision {
            next_eligible_at: decide(campaign, record, retry_at).next_eligible_at,
            ..current
        },
        None => current,
    }
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn formula_cells_are_neutralised() {
        for cell in ["=1+1", "+61 ******006", "-2", "@SUM(A1)", "\tx"] {
            assert!(spreadsheet_safe(cell).starts_with('\''), "{cell:?}");
        }
        assert_eq!(spreadsheet_safe("CRM-1"), "CRM-1");
        assert_eq!(spreadsheet_safe(""), "");
    }
}
