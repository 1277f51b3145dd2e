//! The audit trail: one entry for every write. Entries name ids, states and
//! counts, never phone numbers or personalisation.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

/// A write to record.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub partner_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub actor: &'a str,
    pub action: &'a str,
    pub from_state: Option<&'a str>,
    pub to_state: Option<&'a str>,
    pub details: Value,
    pub request_id: Option<&'a str>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub details: Value,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn record(executor: impl PgExecutor<'_>, entry: AuditEntry<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (partner_id, campaign_id, actor, action, from_state, to_state, details, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(entry.partner_id)
    .bind(entry.campaign_id)
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.from_state)
    .bind(entry.to_state)
    .bind(entry.details)
    .bind(entry.request_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Entries for a campaign after `after_id`, oldest first.
pub async fn list_for_campaign(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    after_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<AuditRecord>> {
    sqlx::query_as(
        "SELECT id, actor, action, from_state, to_state, details, request_id, created_at
           FROM audit_log WHERE campaign_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(campaign_id)
    .bind(after_id)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// State changes of a campaign, oldest first.
pub async fn timeline(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
) -> sqlx::Result<Vec<AuditRecord>> {
    sqlx::query_as(
        "SELECT id, actor, action, from_state, to_state, details, request_id, created_at
           FROM audit_log WHERE campaign_id = $1 AND to_state IS NOT NULL ORDER BY id",
    )
    .bind(campaign_id)
    .fetch_all(executor)
    .await
}
