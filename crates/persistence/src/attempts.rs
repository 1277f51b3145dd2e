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

/// A claimed contact with the sealed values its call request needs, so the
/// hand-over reads nothing more from the database.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedContact {
    #[sqlx(flatten)]
    pub record: ContactRecord,
    pub key_id: String,
    pub phone_ciphertext: Vec<u8>,
    pub personalisation_ciphertext: Option<Vec<u8>>,
}

/// Claims up to `limit` due contacts, highest priority first, then the longest
/// waiting. Rows locked by another process are skipped, so no two processes
/// claim one contact.
pub async fn claim_due(
    connection: &mut PgConnection,
    campaign_id: Uuid,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<ClaimedContact>> {
    // The ORDER BY matches `contacts_claim_idx`, so the scan stops after
    // `limit` due rows instead of sorting every pending contact.
    let query = format!(
        "SELECT {RECORD_COLUMNS}, c.key_id, c.phone_ciphertext, c.personalisation_ciphertext FROM contacts c
          WHERE c.campaign_id = $1 AND c.state = 'pending'
            AND COALESCE(c.next_attempt_at, '-infinity'::timestamptz) <= $2
          ORDER BY c.priority DESC, COALESCE(c.next_attempt_at, '-infinity'::timestamptz), c.row_number
          LIMIT $3 FOR UPDATE OF c SKIP LOCKED"
    );
    sqlx::query_as(&query)
        .bind(campaign_id)
        .bind(now)
        .bind(limit)
        .fetch_all(connection)
        .await
}

/// Moves blocked contacts' next check to when the rules allow them: one
/// `(contact id, instant, block reason)` per contact.
pub async fn defer_all(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    deferrals: &[(Uuid, DateTime<Utc>, &str)],
) -> sqlx::Result<()> {
    if deferrals.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = deferrals.iter().map(|d| d.0).collect();
    let instants: Vec<DateTime<Utc>> = deferrals.iter().map(|d| d.1).collect();
    let reasons: Vec<&str> = deferrals.iter().map(|d| d.2).collect();
    sqlx::query(
        "UPDATE contacts c SET next_attempt_at = u.at, blocked_reason = u.reason, next_eligible_at = u.at,
                updated_at = now()
           FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[]) AS u(id, at, reason)
          WHERE c.campaign_id = $4 AND c.id = u.id",
    )
    .bind(ids)
    .bind(instants)
    .bind(reasons)
    .bind(campaign_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Ends contacts' calling, each with the reason it ended: one
/// `(contact id, reason)` per contact.
pub async fn finish_contacts(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    finished: &[(Uuid, &str)],
) -> sqlx::Result<()> {
    if finished.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = finished.iter().map(|f| f.0).collect();
    let reasons: Vec<&str> = finished.iter().map(|f| f.1).collect();
    sqlx::query(
        "UPDATE contacts c SET state = 'done', final_reason = u.reason, blocked_reason = NULL,
                next_attempt_at = NULL, next_eligible_at = NULL, updated_at = now()
           FROM UNNEST($1::uuid[], $2::text[]) AS u(id, reason)
          WHERE c.campaign_id = $3 AND c.id = u.id",
    )
    .bind(ids)
    .bind(reasons)
    .bind(campaign_id)
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

/// An attempt to open for a claimed contact.
#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub gate: GateRecord,
}

/// Opens attempts in `handing_over` and counts each against its contact, in
/// one statement. An attempt's number follows the contact's highest so far,
/// so an attempt withdrawn before its hand-over keeps its number and the next
/// attempt of that contact gets a new one.
pub async fn start_all(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    attempts: &[NewAttempt],
    started_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let column = |pick: fn(&GateRecord) -> &str| -> Vec<&str> {
        attempts.iter().map(|a| pick(&a.gate)).collect()
    };
    let ids: Vec<Uuid> = attempts.iter().map(|a| a.id).collect();
    let contact_ids: Vec<Uuid> = attempts.iter().map(|a| a.contact_id).collect();
    let references: Vec<Option<&str>> = attempts
        .iter()
        .map(|a| a.gate.clearance_reference.as_deref())
        .collect();
    // The insert runs to completion or fails the statement, so the update can
    // name the contacts by id and keep to the primary key.
    sqlx::query(
        "WITH opened AS (
            INSERT INTO attempts (id, campaign_id, contact_id, attempt_number, state, call_type, caller_id,
                                  zone_checked, local_time_checked, clearance, clearance_reference, started_at)
            SELECT u.id, $1, u.contact_id,
                   COALESCE((SELECT max(p.attempt_number) FROM attempts p WHERE p.contact_id = u.contact_id), 0) + 1,
                   'handing_over', u.call_type, u.caller_id, u.zone_checked, u.local_time_checked, u.clearance,
                   u.clearance_reference, $2
              FROM UNNEST($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                          $10::text[])
                   AS u(id, contact_id, call_type, caller_id, zone_checked, local_time_checked, clearance,
                        clearance_reference)
         )
         UPDATE contacts c SET state = 'dialing', attempts_made = c.attempts_made + 1, blocked_reason = NULL,
                next_eligible_at = NULL, updated_at = now()
          WHERE c.campaign_id = $1 AND c.id = ANY($4)",
    )
    .bind(campaign_id)
    .bind(started_at)
    .bind(ids)
    .bind(contact_ids)
    .bind(column(|g| &g.call_type))
    .bind(column(|g| &g.caller_id))
    .bind(column(|g| &g.zone_checked))
    .bind(column(|g| &g.local_time_checked))
    .bind(column(|g| &g.clearance))
    .bind(references)
    .execute(executor)
    .await?;
    Ok(())
}

/// Records accepted hand-overs: one `(attempt id, platform call id)` per
/// attempt. Attempts that an event already moved on are left as they are.
pub async fn mark_all_handed_over(
    executor: impl PgExecutor<'_>,
    accepted: &[(Uuid, String)],
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    if accepted.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = accepted.iter().map(|a| a.0).collect();
    let call_ids: Vec<&str> = accepted.iter().map(|a| a.1.as_str()).collect();
    // Locked in attempt id order, like the webhook batches.
    sqlx::query(
        "WITH locked AS (
            SELECT a.id, u.call_id FROM attempts a JOIN UNNEST($1::uuid[], $2::text[]) AS u(id, call_id) ON u.id = a.id
             WHERE a.state = 'handing_over'
             ORDER BY a.id FOR UPDATE OF a
         )
         UPDATE attempts a SET state = 'handed_over', platform_call_id = l.call_id, handed_over_at = $3
           FROM locked l WHERE a.id = l.id",
    )
    .bind(ids)
    .bind(call_ids)
    .bind(at)
    .execute(executor)
    .await?;
    Ok(())
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

/// An attempt with its contact and what deciding the contact's next step
/// needs, for recording events.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptWithContact {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub contact_id: Uuid,
    pub state: String,
    pub client_id: Uuid,
    pub phone_index: Uuid,
    pub attempts_made: i32,
    pub max_attempts: i32,
    pub retry_policy: sqlx::types::Json<outbound_domain::retry::RetryPolicy>,
    pub contact_state: String,
    pub campaign_state: String,
    /// Whether the client's suppression list has the number.
    pub suppressed: bool,
    /// The outcome of another attempt of the contact that ended the contact's
    /// calling (`answered` or `opted_out`), when a late result recorded one.
    pub earlier_final_outcome: Option<String>,
}

/// Selects an [`AttemptWithContact`] by attempt id (`$1`) and locks the
/// attempt and contact rows.
const LOCK_ATTEMPT: &str = "SELECT a.id, a.campaign_id, a.contact_id, a.state, c.client_id, c.phone_index,
        c.attempts_made, c.max_attempts, k.retry_policy, c.state AS contact_state, k.state AS campaign_state,
        EXISTS (SELECT 1 FROM suppressions s
                 WHERE s.client_id = c.client_id AND s.phone_index = c.phone_index AND s.removed_at IS NULL)
            AS suppressed,
        (SELECT e.outcome FROM attempts e
          WHERE e.contact_id = c.id AND e.id <> a.id AND e.outcome IN ('answered', 'opted_out')
          LIMIT 1) AS earlier_final_outcome";
/// Returns the `FROM` clause of [`LOCK_ATTEMPT`] for the attempt `$1` of the
/// campaign in parameter `campaign`. With the campaign as a parameter, the
/// plan reads that campaign's partition of contacts alone.
fn lock_attempt_from(campaign: &str) -> String {
    format!(
        "FROM attempts a JOIN contacts c ON c.id = a.contact_id AND c.campaign_id = a.campaign_id
            JOIN campaigns k ON k.id = a.campaign_id
      WHERE a.id = $1 AND c.campaign_id = {campaign} FOR UPDATE OF a, c"
    )
}

/// Reads attempts with their contacts without locking them, for a write
/// that checks they are unchanged ([`record_ended_all`]).
pub async fn read_attempts(
    executor: impl PgExecutor<'_> + Copy,
    attempt_ids: &[Uuid],
) -> sqlx::Result<Vec<AttemptWithContact>> {
    // The campaigns go in as a parameter, so the plan reads their partitions alone.
    let campaigns: Vec<Uuid> =
        sqlx::query_scalar("SELECT DISTINCT campaign_id FROM attempts WHERE id = ANY($1)")
            .bind(attempt_ids)
            .fetch_all(executor)
            .await?;
    sqlx::query_as(&format!(
        "{LOCK_ATTEMPT} FROM attempts a JOIN contacts c ON c.id = a.contact_id AND c.campaign_id = a.campaign_id
           JOIN campaigns k ON k.id = a.campaign_id
          WHERE a.id = ANY($1) AND c.campaign_id = ANY($2)"
    ))
    .bind(attempt_ids)
    .bind(campaigns)
    .fetch_all(executor)
    .await
}

/// Locks the campaign row of an attempt `FOR KEY SHARE`, before the attempt
/// and its contact are locked. A pause or cancel takes the row `FOR UPDATE`,
/// which conflicts with this lock. So the campaign state read while it is
/// held stays true until commit, and a result recorded during a cancel never
/// requeues the contact of a cancelled campaign. A claim takes the row
/// `FOR NO KEY UPDATE`, which does not conflict, so results and claims do not
/// wait for each other. Taken first, so a cancel that waits for a pending
/// contact locked here never waits in a cycle.
///
/// Returns the campaign's id, or `None` when the attempt does not exist.
async fn share_campaign_of(
    connection: &mut PgConnection,
    attempt_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT k.id FROM campaigns k WHERE k.id = (SELECT a.campaign_id FROM attempts a WHERE a.id = $1)
           FOR KEY SHARE OF k",
    )
    .bind(attempt_id)
    .fetch_optional(connection)
    .await
}

/// Locks an attempt and its contact for an update, and its campaign row
/// `FOR KEY SHARE`.
pub async fn lock_attempt(
    connection: &mut PgConnection,
    attempt_id: Uuid,
) -> sqlx::Result<Option<AttemptWithContact>> {
    let Some(campaign_id) = share_campaign_of(&mut *connection, attempt_id).await? else {
        return Ok(None);
    };
    sqlx::query_as(&format!("{LOCK_ATTEMPT} {}", lock_attempt_from("$2")))
        .bind(attempt_id)
        .bind(campaign_id)
        .fetch_optional(connection)
        .await
}

/// An attempt locked for a webhook event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventTarget {
    #[sqlx(flatten)]
    pub attempt: AttemptWithContact,
    /// False when the event id was recorded before: the event is a repeat.
    pub first_delivery: bool,
}

/// Records a webhook event id and locks its attempt and contact, in one
/// statement, after locking its campaign row `FOR KEY SHARE`. Returns `None`
/// when the attempt does not exist. The caller must roll back on `None`, or
/// the event id stays recorded.
pub async fn lock_attempt_for_event(
    connection: &mut PgConnection,
    attempt_id: Uuid,
    event_id: &str,
    event_type: &str,
) -> sqlx::Result<Option<EventTarget>> {
    let Some(campaign_id) = share_campaign_of(&mut *connection, attempt_id).await? else {
        return Ok(None);
    };
    let query = format!(
        "WITH recorded AS (
            INSERT INTO webhook_events (event_id, attempt_id, event_type) VALUES ($2, $1, $3)
            ON CONFLICT DO NOTHING RETURNING 1
         )
         {LOCK_ATTEMPT}, EXISTS (SELECT 1 FROM recorded) AS first_delivery {}",
        lock_attempt_from("$4")
    );
    sqlx::query_as(&query)
        .bind(attempt_id)
        .bind(event_id)
        .bind(event_type)
        .bind(campaign_id)
        .fetch_optional(connection)
        .await
}

/// The result of recording a webhook event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventRecording {
    /// The event id was new and the event was applied.
    Recorded,
    /// The event id was recorded before; nothing changed.
    Duplicate,
    /// No attempt has the event's attempt id.
    AttemptNotFound,
    /// The attempt or its contact changed since they were read; nothing
    /// changed, and the caller must take the locking path.
    Changed,
}

/// A `started` or `answered` event: the platform placed the call, or a
/// person answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A `handing_over` attempt becomes `handed_over` with the platform's call id.
    Started,
    /// An open attempt not yet connected becomes `connected`.
    Answered,
}

/// One `started` or `answered` event to record.
#[derive(Debug, Clone)]
pub struct ProgressEvent<'a> {
    pub attempt_id: Uuid,
    pub event_id: &'a str,
    /// The platform's call id, kept from a `started` event.
    pub call_id: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// Records `started` or `answered` events and applies them, in one statement;
/// returns one result per event, in order. An event id is recorded only when
/// its attempt exists, and an attempt moves only when its event id is new and
/// the event moves it on, so late and repeated events change nothing. Each
/// attempt and each event id may appear once.
pub async fn record_progress_all(
    executor: impl PgExecutor<'_>,
    progress: Progress,
    events: &[ProgressEvent<'_>],
) -> sqlx::Result<Vec<EventRecording>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let (event_type, moves) = match progress {
        Progress::Started => ("started", "state = 'handing_over'"),
        Progress::Answered => ("answered", "state IN ('handing_over', 'handed_over')"),
    };
    let set = match progress {
        Progress::Started => {
            "state = 'handed_over', platform_call_id = l.call_id, handed_over_at = l.at"
        }
        Progress::Answered => "state = 'connected', answered_at = COALESCE(a.answered_at, l.at)",
    };
    // Rows are locked in attempt id order, like every batch that locks
    // attempts, so two batches never wait for each other in a cycle.
    let query = format!(
        "WITH input AS (
            SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
                   WITH ORDINALITY AS u(attempt_id, event_id, call_id, at, position)
         ), known AS (
            SELECT i.* FROM input i WHERE EXISTS (SELECT 1 FROM attempts a WHERE a.id = i.attempt_id)
         ), recorded AS (
            INSERT INTO webhook_events (event_id, attempt_id, event_type)
            SELECT event_id, attempt_id, '{event_type}' FROM known
            ON CONFLICT DO NOTHING RETURNING event_id
         ), locked AS (
            SELECT a.id, k.call_id, k.at FROM known k JOIN recorded r ON r.event_id = k.event_id
              JOIN attempts a ON a.id = k.attempt_id
             WHERE a.{moves}
             ORDER BY a.id FOR UPDATE OF a
         ), moved AS (
            UPDATE attempts a SET {set} FROM locked l WHERE a.id = l.id
         )
         SELECT EXISTS (SELECT 1 FROM known k WHERE k.position = i.position),
                EXISTS (SELECT 1 FROM recorded r WHERE r.event_id = i.event_id)
           FROM input i ORDER BY i.position"
    );
    let results: Vec<(bool, bool)> = sqlx::query_as(&query)
        .bind(events.iter().map(|e| e.attempt_id).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.call_id).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.at).collect::<Vec<_>>())
        .fetch_all(executor)
        .await?;
    Ok(results
        .into_iter()
        .map(|(known, recorded)| match (known, recorded) {
            (false, _) => EventRecording::AttemptNotFound,
            (true, false) => EventRecording::Duplicate,
            (true, true) => EventRecording::Recorded,
        })
        .collect())
}

/// One `ended` event to record, with the attempt as read by
/// [`read_attempts`] and the contact's step decided from that read.
#[derive(Debug, Clone)]
pub struct EndedEvent<'a> {
    pub expected: &'a AttemptWithContact,
    pub event_id: &'a str,
    pub closing: Closing<'a>,
    pub step: ContactStep<'a>,
}

/// Records `ended` events, closes their attempts and moves their contacts on,
/// in one statement; returns one result per event, in order. An event is
/// applied only while its attempt's state, and its contact's `dialing` state
/// and attempt count, and its campaign's state, are still those read:
/// otherwise it changes nothing and reads [`EventRecording::Changed`], and the
/// caller must take the locking path. The campaign row is held
/// `FOR KEY SHARE`, so a cancel either waits for this statement's commit or
/// is seen by it, while claims go on beside it.
/// Each attempt and each event id may appear once.
pub async fn record_ended_all(
    executor: impl PgExecutor<'_>,
    events: &[EndedEvent<'_>],
) -> sqlx::Result<Vec<EventRecording>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // The campaigns go in as a parameter, so the plan reads their partitions alone.
    let mut campaigns: Vec<Uuid> = events.iter().map(|e| e.expected.campaign_id).collect();
    campaigns.sort_unstable();
    campaigns.dedup();
    let results: Vec<(bool, bool)> = sqlx::query_as(
        "WITH input AS (
            SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::int4[], $5::text[], $6::text[], $7::text[],
                                 $8::text[], $9::int4[], $10::text[], $11::timestamptz[], $12::text[],
                                 $13::timestamptz[], $14::text[], $15::text[])
                   WITH ORDINALITY AS u(attempt_id, attempt_state, contact_id, attempts_made, event_id, closed_state,
                                        outcome, end_reason, duration_seconds, summary, at, contact_state,
                                        next_attempt_at, final_reason, campaign_state, position)
         ), target AS (
            SELECT i.*, a.campaign_id FROM input i
              JOIN attempts a ON a.id = i.attempt_id
              JOIN contacts c ON c.id = i.contact_id AND c.campaign_id = a.campaign_id
                              AND c.campaign_id = ANY($16)
              JOIN campaigns k ON k.id = a.campaign_id
             WHERE a.contact_id = i.contact_id
               AND a.state = i.attempt_state AND c.state = 'dialing' AND c.attempts_made = i.attempts_made
               AND k.state = i.campaign_state
               -- A late result of an earlier attempt marks the contact so
               -- this statement leaves it to the locking path.
               AND c.final_reason IS NULL
             ORDER BY i.attempt_id FOR UPDATE OF a, c FOR KEY SHARE OF k
         ), recorded AS (
            INSERT INTO webhook_events (event_id, attempt_id, event_type)
            SELECT event_id, attempt_id, 'ended' FROM target
            ON CONFLICT DO NOTHING RETURNING event_id
         ), applied AS (
            SELECT t.* FROM target t JOIN recorded r ON r.event_id = t.event_id
         ), closed AS (
            UPDATE attempts a SET state = p.closed_state, outcome = p.outcome, end_reason = p.end_reason,
                   duration_seconds = p.duration_seconds, summary = p.summary, ended_at = p.at
              FROM applied p WHERE a.id = p.attempt_id
         ), settled AS (
            UPDATE contacts c SET state = p.contact_state, last_outcome = p.outcome,
                   next_attempt_at = p.next_attempt_at, final_reason = COALESCE(p.final_reason, c.final_reason),
                   updated_at = now()
              FROM applied p WHERE c.id = p.contact_id AND c.campaign_id = p.campaign_id
                               AND c.campaign_id = ANY($16) AND c.state = 'dialing'
         )
         SELECT EXISTS (SELECT 1 FROM target t WHERE t.position = i.position),
                EXISTS (SELECT 1 FROM recorded r WHERE r.event_id = i.event_id)
           FROM input i ORDER BY i.position",
    )
    .bind(events.iter().map(|e| e.expected.id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.expected.state.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.expected.contact_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.expected.attempts_made).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.closing.state).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.closing.outcome).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.closing.end_reason).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.closing.duration_seconds).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.closing.summary).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.closing.at).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.step.contact_state()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.step.next_attempt_at()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.step.final_reason()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.expected.campaign_state.as_str()).collect::<Vec<_>>())
    .bind(campaigns)
    .fetch_all(executor)
    .await?;
    Ok(results
        .into_iter()
        .map(|(unchanged, recorded)| match (unchanged, recorded) {
            (false, _) => EventRecording::Changed,
            (true, false) => EventRecording::Duplicate,
            (true, true) => EventRecording::Recorded,
        })
        .collect())
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

/// Closes an attempt with its outcome and leaves its contact as it is.
pub async fn close(
    executor: impl PgExecutor<'_>,
    attempt_id: Uuid,
    closing: &Closing<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE attempts SET state = $2, outcome = $3, end_reason = $4, duration_seconds = $5, summary = $6, ended_at = $7
          WHERE id = $1",
    )
    .bind(attempt_id)
    .bind(closing.state)
    .bind(closing.outcome)
    .bind(closing.end_reason)
    .bind(closing.duration_seconds)
    .bind(closing.summary)
    .bind(closing.at)
    .execute(executor)
    .await?;
    Ok(())
}

/// The end of an attempt: its final state, outcome and call details.
#[derive(Debug, Clone, Copy)]
pub struct Closing<'a> {
    /// `ended`, `failed` or `unknown`.
    pub state: &'a str,
    pub outcome: &'a str,
    pub end_reason: Option<&'a str>,
    pub duration_seconds: Option<i32>,
    pub summary: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// The next step of an ended attempt's contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactStep<'a> {
    /// Back in the queue, due from this instant.
    Requeue(DateTime<Utc>),
    /// Calling is over, for this reason.
    Finish(&'a str),
}

impl<'a> ContactStep<'a> {
    /// Returns the contact's state after the step.
    fn contact_state(self) -> &'static str {
        match self {
            ContactStep::Requeue(_) => "pending",
            ContactStep::Finish(_) => "done",
        }
    }

    fn next_attempt_at(self) -> Option<DateTime<Utc>> {
        match self {
            ContactStep::Requeue(at) => Some(at),
            ContactStep::Finish(_) => None,
        }
    }

    fn final_reason(self) -> Option<&'a str> {
        match self {
            ContactStep::Requeue(_) => None,
            ContactStep::Finish(reason) => Some(reason),
        }
    }
}

/// Closes an attempt and moves its contact on, in one statement. The contact
/// changes only while it is `dialing`, so its step is applied at most once.
pub async fn close_and_settle(
    executor: impl PgExecutor<'_>,
    attempt_id: Uuid,
    campaign_id: Uuid,
    contact_id: Uuid,
    closing: &Closing<'_>,
    step: ContactStep<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "WITH closed AS (
            UPDATE attempts SET state = $2, outcome = $3, end_reason = $4, duration_seconds = $5, summary = $6,
                   ended_at = $7
             WHERE id = $1
         )
         UPDATE contacts SET state = $9, last_outcome = $3, next_attempt_at = $10,
                final_reason = COALESCE($11, final_reason), updated_at = now()
          WHERE id = $8 AND campaign_id = $12 AND state = 'dialing'",
    )
    .bind(attempt_id)
    .bind(closing.state)
    .bind(closing.outcome)
    .bind(closing.end_reason)
    .bind(closing.duration_seconds)
    .bind(closing.summary)
    .bind(closing.at)
    .bind(contact_id)
    .bind(step.contact_state())
    .bind(step.next_attempt_at())
    .bind(step.final_reason())
    .bind(campaign_id)
    .execute(executor)
    .await?;
    Ok(())
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
pub async fn earliest_due(
    executor: impl PgExecutor<'_> + Copy,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    // The running campaigns go in as a parameter, so the plan reads their
    // partitions of contacts alone.
    let running: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM campaigns WHERE state = 'running'")
        .fetch_all(executor)
        .await?;
    if running.is_empty() {
        return Ok(None);
    }
    sqlx::query_scalar(
        "SELECT min(c.next_attempt_at) FROM contacts c
          WHERE c.campaign_id = ANY($1) AND c.state = 'pending'",
    )
    .bind(running)
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
