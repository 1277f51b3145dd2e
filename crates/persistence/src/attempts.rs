//! Call attempts: claiming due contacts, recording hand-overs and outcomes.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::contacts::{ContactRecord, RECORD_COLUMNS};

/// Attempts still open: handed over or about to be, and not yet ended.
pub const OPEN_STATES: &str = "('handing_over', 'handed_over', 'connected')";

pub async fn open_count(executor: impl PgExecutor<'_>, campaign_id: Uuid) -> sqlx::Result<i64> {
    let query =
        format!("SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state IN {OPEN_STATES}");
    sqlx::query_scalar(&query)
        .bind(campaign_id)
        .fetch_one(executor)
        .await
}

/// Claims up to `limit` due contacts, highest priority first, then the longest
/// waiting. Rows locked by another process are skipped, so no two processes
/// claim one contact.
pub async fn claim_due(
    connection: &mut PgConnection,
    campaign_id: Uuid,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<ContactRecord>> {
    let query = format!(
        "SELECT {RECORD_COLUMNS} FROM contacts c
          WHERE c.campaign_id = $1 AND c.state = 'pending'
            AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= $2)
          ORDER BY c.priority DESC, c.next_attempt_at NULLS FIRST, c.row_number
          LIMIT $3 FOR UPDATE OF c SKIP LOCKED"
    );
    sqlx::query_as(&query)
        .bind(campaign_id)
        .bind(now)
        .bind(limit)
        .fetch_all(connection)
        .await
}

/// Moves a blocked contact's next check to when the rules allow it.
pub async fn defer(
    executor: impl PgExecutor<'_>,
    contact_id: Uuid,
    next_at: DateTime<Utc>,
    blocked_reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE contacts SET next_attempt_at = $2, blocked_reason = $3, next_eligible_at = $2, updated_at = now()
          WHERE id = $1",
    )
    .bind(contact_id)
    .bind(next_at)
    .bind(blocked_reason)
    .execute(executor)
    .await?;
    Ok(())
}

/// Ends a contact's calling with the reason it ended.
pub async fn finish_contact(
    executor: impl PgExecutor<'_>,
    contact_id: Uuid,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE contacts SET state = 'done', final_reason = $2, blocked_reason = NULL, next_attempt_at = NULL,
                next_eligible_at = NULL, updated_at = now()
          WHERE id = $1",
    )
    .bind(contact_id)
    .bind(reason)
    .execute(executor)
    .await?;
    Ok(())
}

/// What the compliance gate saw when it allowed an attempt.
#[derive(Debug, Clone)]
pub struct GateRecord {
    pub call_type: String,
    pub caller_id: String,
    pub zone_checked: String,
    pub local_time_checked: String,
    pub clearance: String,
    pub clearance_reference: Option<String>,
}

/// Opens an attempt in `handing_over` and counts it against the contact. The
/// attempt number follows the contact's previous attempts, including any that
/// were withdrawn before hand-over (those do not count against the contact).
pub async fn start(
    connection: &mut PgConnection,
    campaign_id: Uuid,
    contact: &ContactRecord,
    gate: &GateRecord,
    started_at: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO attempts (id, campaign_id, contact_id, attempt_number, state, call_type, caller_id, zone_checked,
                               local_time_checked, clearance, clearance_reference, started_at)
         VALUES ($1, $2, $3, (SELECT COALESCE(max(attempt_number), 0) + 1 FROM attempts WHERE contact_id = $3),
                 'handing_over', $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(campaign_id)
    .bind(contact.id)
    .bind(&gate.call_type)
    .bind(&gate.caller_id)
    .bind(&gate.zone_checked)
    .bind(&gate.local_time_checked)
    .bind(&gate.clearance)
    .bind(&gate.clearance_reference)
    .bind(started_at)
    .execute(&mut *connection)
    .await?;
    sqlx::query(
        "UPDATE contacts SET state = 'dialing', attempts_made = attempts_made + 1, blocked_reason = NULL,
                next_eligible_at = NULL, updated_at = now()
          WHERE id = $1",
    )
    .bind(contact.id)
    .execute(&mut *connection)
    .await?;
    Ok(id)
}

/// The sealed values a hand-over needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedContact {
    pub id: Uuid,
    pub key_id: String,
    pub phone_ciphertext: Vec<u8>,
    pub personalisation_ciphertext: Option<Vec<u8>>,
}

pub async fn sealed_contact(
    executor: impl PgExecutor<'_>,
    contact_id: Uuid,
) -> sqlx::Result<SealedContact> {
    sqlx::query_as("SELECT id, key_id, phone_ciphertext, personalisation_ciphertext FROM contacts WHERE id = $1")
        .bind(contact_id)
        .fetch_one(executor)
        .await
}

pub async fn mark_handed_over(
    executor: impl PgExecutor<'_>,
    attempt_id: Uuid,
    platform_call_id: Option<&str>,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE attempts SET state = 'handed_over', platform_call_id = $2, handed_over_at = $3
          WHERE id = $1 AND state = 'handing_over'",
    )
    .bind(attempt_id)
    .bind(platform_call_id)
    .bind(at)
    .execute(executor)
    .await?;
    Ok(())
}

/// An attempt with its contact, for recording events.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptWithContact {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub contact_id: Uuid,
    pub state: String,
    pub client_id: Uuid,
    pub phone_index: Vec<u8>,
    pub attempts_made: i32,
    pub max_attempts: i32,
    pub retry_policy: sqlx::types::Json<outbound_domain::retry::RetryPolicy>,
}

/// Locks an attempt and its contact for an update.
pub async fn lock_attempt(
    connection: &mut PgConnection,
    attempt_id: Uuid,
) -> sqlx::Result<Option<AttemptWithContact>> {
    sqlx::query_as(
        "SELECT a.id, a.campaign_id, a.contact_id, a.state, c.client_id, c.phone_index, c.attempts_made,
                c.max_attempts, k.retry_policy
           FROM attempts a JOIN contacts c ON c.id = a.contact_id JOIN campaigns k ON k.id = a.campaign_id
          WHERE a.id = $1 FOR UPDATE OF a, c",
    )
    .bind(attempt_id)
    .fetch_optional(connection)
    .await
}

/// Marks an open attempt connected when the call is answered.
pub async fn mark_connected(
    executor: impl PgExecutor<'_>,
    attempt_id: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE attempts SET state = 'connected', answered_at = COALESCE(answered_at, $2)
          WHERE id = $1 AND state IN ('handing_over', 'handed_over')",
    )
    .bind(attempt_id)
    .bind(at)
    .execute(executor)
    .await?;
    Ok(())
}

/// Closes an attempt with its outcome. `state` is `ended`, `failed` or `unknown`.
#[allow(clippy::too_many_arguments)]
pub async fn close(
    executor: impl PgExecutor<'_>,
    attempt_id: Uuid,
    state: &str,
    outcome: &str,
    end_reason: Option<&str>,
    duration_seconds: Option<i32>,
    summary: Option<&str>,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE attempts SET state = $2, outcome = $3, end_reason = $4, duration_seconds = $5, summary = $6, ended_at = $7
          WHERE id = $1",
    )
    .bind(attempt_id)
    .bind(state)
    .bind(outcome)
    .bind(end_reason)
    .bind(duration_seconds)
    .bind(summary)
    .bind(at)
    .execute(executor)
    .await?;
    Ok(())
}

/// Puts a contact back in the queue after an attempt, to be tried from `next_at`.
pub async fn requeue_contact(
    executor: impl PgExecutor<'_>,
    contact_id: Uuid,
    outcome: &str,
    next_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE contacts SET state = 'pending', last_outcome = $2, next_attempt_at = $3, updated_at = now()
          WHERE id = $1 AND state = 'dialing'",
    )
    .bind(contact_id)
    .bind(outcome)
    .bind(next_at)
    .execute(executor)
    .await?;
    Ok(())
}

/// Ends a contact after its last attempt.
pub async fn close_contact(
    executor: impl PgExecutor<'_>,
    contact_id: Uuid,
    outcome: &str,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE contacts SET state = 'done', last_outcome = $2, final_reason = $3, next_attempt_at = NULL,
                updated_at = now()
          WHERE id = $1 AND state = 'dialing'",
    )
    .bind(contact_id)
    .bind(outcome)
    .bind(reason)
    .execute(executor)
    .await?;
    Ok(())
}

/// Records a webhook event id; returns false when it was seen before.
pub async fn record_event(
    executor: impl PgExecutor<'_>,
    event_id: &str,
    attempt_id: Uuid,
    event_type: &str,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO webhook_events (event_id, attempt_id, event_type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(event_id)
    .bind(attempt_id)
    .bind(event_type)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Open attempts that started before `cutoff`: their result is lost.
pub async fn stale_open(
    executor: impl PgExecutor<'_>,
    cutoff: DateTime<Utc>,
) -> sqlx::Result<Vec<Uuid>> {
    let query = format!(
        "SELECT id FROM attempts WHERE state IN {OPEN_STATES} AND started_at < $1 LIMIT 500"
    );
    sqlx::query_scalar(&query)
        .bind(cutoff)
        .fetch_all(executor)
        .await
}

/// Whether the campaign has contacts still to call or calls still open.
pub async fn has_work_left(executor: impl PgExecutor<'_>, campaign_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM contacts WHERE campaign_id = $1 AND state IN ('pending', 'dialing'))",
    )
    .bind(campaign_id)
    .fetch_one(executor)
    .await
}

/// The earliest next attempt among pending contacts of running campaigns.
pub async fn earliest_due(executor: impl PgExecutor<'_>) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT min(c.next_attempt_at) FROM contacts c JOIN campaigns k ON k.id = c.campaign_id
          WHERE k.state = 'running' AND c.state = 'pending'",
    )
    .fetch_one(executor)
    .await
}

/// Open attempts across all campaigns.
pub async fn open_total(executor: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    let query = format!("SELECT count(*) FROM attempts WHERE state IN {OPEN_STATES}");
    sqlx::query_scalar(&query).fetch_one(executor).await
}

/// Attempt summary rows for a campaign's report.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRecord {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub attempt_number: i32,
    pub state: String,
    pub outcome: Option<String>,
    pub end_reason: Option<String>,
    pub zone_checked: String,
    pub local_time_checked: String,
    pub clearance: String,
    pub duration_seconds: Option<i32>,
    pub summary: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

pub async fn for_contacts(
    executor: impl PgExecutor<'_>,
    contact_ids: &[Uuid],
) -> sqlx::Result<Vec<AttemptRecord>> {
    sqlx::query_as(
        "SELECT id, contact_id, attempt_number, state, outcome, end_reason, zone_checked, local_time_checked, clearance,
                duration_seconds, summary, started_at, ended_at
           FROM attempts WHERE contact_id = ANY($1) ORDER BY contact_id, attempt_number",
    )
    .bind(contact_ids)
    .fetch_all(executor)
    .await
}

pub async fn outcome_counts(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
) -> sqlx::Result<Vec<(Option<String>, i64)>> {
    sqlx::query_as(
        "SELECT outcome, count(*) FROM attempts
          WHERE campaign_id = $1 AND outcome IS DISTINCT FROM 'not_placed'
          GROUP BY outcome ORDER BY outcome",
    )
    .bind(campaign_id)
    .fetch_all(executor)
    .await
}

/// The partner's concurrent-call cap and its open attempts, locking the
/// partner row so claims of all its campaigns serialise; `None` when the
/// partner has no cap.
pub async fn partner_capacity(
    connection: &mut PgConnection,
    partner_id: Uuid,
) -> sqlx::Result<Option<(i64, i64)>> {
    let cap: Option<i32> =
        sqlx::query_scalar("SELECT max_concurrent_calls FROM partners WHERE id = $1 FOR UPDATE")
            .bind(partner_id)
            .fetch_optional(&mut *connection)
            .await?
            .flatten();
    let Some(cap) = cap else {
        return Ok(None);
    };
    let query = format!(
        "SELECT count(*) FROM attempts a JOIN campaigns k ON k.id = a.campaign_id
          WHERE k.partner_id = $1 AND a.state IN {OPEN_STATES}"
    );
    let open: i64 = sqlx::query_scalar(&query)
        .bind(partner_id)
        .fetch_one(&mut *connection)
        .await?;
    Ok(Some((i64::from(cap), open)))
}
