//! Campaign rows and their state changes.

use chrono::{DateTime, NaiveDate, Utc};
use outbound_domain::campaign::CampaignState;
use outbound_domain::eligibility::CampaignRules;
use outbound_domain::evidence::Exemption;
use outbound_domain::hours::{CallType, CallingWindow, CallingWindowSpec};
use outbound_domain::phone::NumberPolicy;
use outbound_domain::retry::RetryPolicy;
use outbound_domain::validation::CampaignSettings;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::tenancy::Scope;

const COLUMNS: &str = "id, partner_id, client_id, project_id, name, call_type, state, start_date, end_date,
    calling_window, retry_policy, personalisation_keys, capacity, default_max_attempts, caller_id,
    organisation, on_behalf_of, purpose, contact_for_questions, exemption, exemption_evidence,
    allow_non_geographic, block_state_holidays, version, created_at, updated_at, launched_at, finished_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Campaign {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub client_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub call_type: String,
    pub state: String,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub calling_window: Json<CallingWindowSpec>,
    pub retry_policy: Json<RetryPolicy>,
    pub personalisation_keys: Vec<String>,
    pub capacity: i32,
    pub default_max_attempts: i32,
    pub caller_id: Option<String>,
    pub organisation: Option<String>,
    pub on_behalf_of: Option<String>,
    pub purpose: Option<String>,
    pub contact_for_questions: Option<String>,
    pub exemption: Option<String>,
    pub exemption_evidence: Option<String>,
    pub allow_non_geographic: bool,
    pub block_state_holidays: bool,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Campaign {
    pub fn call_type(&self) -> CallType {
        // The column's CHECK constraint admits only the three known names.
        CallType::parse(&self.call_type).unwrap_or(CallType::Telemarketing)
    }

    pub fn state(&self) -> CampaignState {
        CampaignState::parse(&self.state).unwrap_or(CampaignState::Draft)
    }

    /// The stored window; a window that fails to parse allows no calls.
    pub fn window(&self) -> CallingWindow {
        self.calling_window.0.parse().unwrap_or(CallingWindow {
            weekdays: None,
            saturday: None,
            sunday: None,
        })
    }

    pub fn exemption(&self) -> Option<Exemption> {
        self.exemption.as_deref().and_then(Exemption::parse)
    }

    pub fn rules(&self) -> CampaignRules {
        CampaignRules {
            call_type: self.call_type(),
            window: self.window(),
            start_date: self.start_date,
            end_date: self.end_date,
            block_state_holidays: self.block_state_holidays,
            exemption: self.exemption(),
        }
    }

    pub fn settings(&self) -> CampaignSettings<'_> {
        CampaignSettings {
            call_type: self.call_type(),
            window: self.window(),
            start_date: self.start_date,
            end_date: self.end_date,
            capacity: self.capacity,
            caller_id: self.caller_id.as_deref(),
            organisation: self.organisation.as_deref(),
            on_behalf_of: self.on_behalf_of.as_deref(),
            purpose: self.purpose.as_deref(),
            contact_for_questions: self.contact_for_questions.as_deref(),
        }
    }

    pub fn number_policy(&self) -> NumberPolicy {
        NumberPolicy {
            allow_non_geographic: self.allow_non_geographic,
        }
    }
}

/// A campaign to insert; ids and tenancy are checked by the caller.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub partner_id: Uuid,
    pub client_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub call_type: CallType,
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
    pub exemption_evidence: Option<String>,
    pub allow_non_geographic: bool,
    pub block_state_holidays: bool,
}

pub async fn insert(
    executor: impl PgExecutor<'_>,
    campaign: &NewCampaign,
) -> sqlx::Result<Campaign> {
    let query = format!(
        "INSERT INTO campaigns (id, partner_id, client_id, project_id, name, call_type, start_date, end_date,
            calling_window, retry_policy, personalisation_keys, capacity, default_max_attempts, caller_id,
            organisation, on_behalf_of, purpose, contact_for_questions, exemption, exemption_evidence,
            allow_non_geographic, block_state_holidays)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
         RETURNING {COLUMNS}"
    );
    sqlx::query_as(&query)
        .bind(Uuid::new_v4())
        .bind(campaign.partner_id)
        .bind(campaign.client_id)
        .bind(campaign.project_id)
        .bind(&campaign.name)
        .bind(campaign.call_type.as_str())
        .bind(campaign.start_date)
        .bind(campaign.end_date)
        .bind(Json(&campaign.calling_window))
        .bind(Json(&campaign.retry_policy))
        .bind(&campaign.personalisation_keys)
        .bind(campaign.capacity)
        .bind(campaign.default_max_attempts)
        .bind(&campaign.caller_id)
        .bind(&campaign.organisation)
        .bind(&campaign.on_behalf_of)
        .bind(&campaign.purpose)
        .bind(&campaign.contact_for_questions)
        .bind(campaign.exemption.map(Exemption::as_str))
        .bind(&campaign.exemption_evidence)
        .bind(campaign.allow_non_geographic)
        .bind(campaign.block_state_holidays)
        .fetch_one(executor)
        .await
}

const SCOPE_FILTER: &str = "partner_id = $1 AND client_id = ANY($2)
    AND EXISTS (SELECT 1 FROM partner_clients pc WHERE pc.partner_id = campaigns.partner_id AND pc.client_id = campaigns.client_id)";

/// The campaign when it is in `scope`; another partner's or an unassigned
/// client's campaign is `None`, exactly like a missing one.
pub async fn find(
    executor: impl PgExecutor<'_>,
    scope: &Scope,
    id: Uuid,
) -> sqlx::Result<Option<Campaign>> {
    let query = format!("SELECT {COLUMNS} FROM campaigns WHERE {SCOPE_FILTER} AND id = $3");
    sqlx::query_as(&query)
        .bind(scope.partner_id)
        .bind(&scope.client_ids)
        .bind(id)
        .fetch_optional(executor)
        .await
}

/// Like [`find`], and locks the row until the transaction ends, so state
/// changes on one campaign serialise.
pub async fn find_for_update(
    connection: &mut PgConnection,
    scope: &Scope,
    id: Uuid,
) -> sqlx::Result<Option<Campaign>> {
    let query =
        format!("SELECT {COLUMNS} FROM campaigns WHERE {SCOPE_FILTER} AND id = $3 FOR UPDATE");
    sqlx::query_as(&query)
        .bind(scope.partner_id)
        .bind(&scope.client_ids)
        .bind(id)
        .fetch_optional(connection)
        .await
}

/// Locks a campaign by id alone, for the dispatcher (which has no caller
/// scope): `FOR SHARE` for a hand-over, `FOR NO KEY UPDATE` for a claim.
/// Claims exclude each other, hand-overs and [`find_for_update`]. They do
/// not exclude results, which hold the row `FOR KEY SHARE` only against a
/// pause or cancel.
pub async fn lock_by_id(
    connection: &mut PgConnection,
    id: Uuid,
    shared: bool,
) -> sqlx::Result<Option<Campaign>> {
    let mode = if shared {
        "FOR SHARE"
    } else {
        "FOR NO KEY UPDATE"
    };
    let query = format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1 {mode}");
    sqlx::query_as(&query)
        .bind(id)
        .fetch_optional(connection)
        .await
}

/// Campaigns in scope, newest first, after the `(created_at, id)` cursor.
pub async fn list(
    executor: impl PgExecutor<'_>,
    scope: &Scope,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Campaign>> {
    let query = format!(
        "SELECT {COLUMNS} FROM campaigns WHERE {SCOPE_FILTER}
            AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
          ORDER BY created_at DESC, id DESC LIMIT $5"
    );
    sqlx::query_as(&query)
        .bind(scope.partner_id)
        .bind(&scope.client_ids)
        .bind(before.map(|b| b.0))
        .bind(before.map(|b| b.1).unwrap_or_default())
        .bind(limit)
        .fetch_all(executor)
        .await
}

/// Ids of running campaigns, for the dispatcher.
pub async fn running_ids(executor: impl PgExecutor<'_>) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM campaigns WHERE state = 'running' ORDER BY launched_at, id")
        .fetch_all(executor)
        .await
}

/// Writes a new state; the caller holds the row lock and has checked the transition.
pub async fn set_state(
    connection: &mut PgConnection,
    id: Uuid,
    to: CampaignState,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE campaigns SET state = $2, version = version + 1, updated_at = now(),
                launched_at = CASE WHEN $2 = 'running' AND launched_at IS NULL THEN now() ELSE launched_at END,
                finished_at = CASE WHEN $2 IN ('completed', 'cancelled') THEN now() ELSE finished_at END
          WHERE id = $1",
    )
    .bind(id)
    .bind(to.as_str())
    .execute(connection)
    .await?;
    Ok(())
}

/// Overwrites a campaign's settings and bumps its version; the caller holds
/// the row lock and has checked the state and the expected version.
pub async fn update_settings(
    connection: &mut PgConnection,
    id: Uuid,
    campaign: &NewCampaign,
) -> sqlx::Result<Campaign> {
    let query = format!(
        "UPDATE campaigns SET name = $2, start_date = $3, end_date = $4, calling_window = $5, retry_policy = $6,
                personalisation_keys = $7, capacity = $8, default_max_attempts = $9, caller_id = $10,
                organisation = $11, on_behalf_of = $12, purpose = $13, contact_for_questions = $14, exemption = $15,
                exemption_evidence = $16, allow_non_geographic = $17, block_state_holidays = $18,
                version = version + 1, updated_at = now()
          WHERE id = $1
         RETURNING {COLUMNS}"
    );
    sqlx::query_as(&query)
        .bind(id)
        .bind(&campaign.name)
        .bind(campaign.start_date)
        .bind(campaign.end_date)
        .bind(Json(&campaign.calling_window))
        .bind(Json(&campaign.retry_policy))
        .bind(&campaign.personalisation_keys)
        .bind(campaign.capacity)
        .bind(campaign.default_max_attempts)
        .bind(&campaign.caller_id)
        .bind(&campaign.organisation)
        .bind(&campaign.on_behalf_of)
        .bind(&campaign.purpose)
        .bind(&campaign.contact_for_questions)
        .bind(campaign.exemption.map(Exemption::as_str))
        .bind(&campaign.exemption_evidence)
        .bind(campaign.allow_non_geographic)
        .bind(campaign.block_state_holidays)
        .fetch_one(connection)
        .await
}
