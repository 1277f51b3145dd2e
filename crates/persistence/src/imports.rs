//! Import and wash-result records, their row issues, and stored responses for
//! `Idempotency-Key` replays.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, Row};
use uuid::Uuid;

use crate::bulk::CopyBuffer;

/// An import as stored. While `state` is `processing`, the counts are
/// progress written from outside the import's transaction.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImportRecord {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub file_sha256: String,
    pub state: String,
    pub rows_processed: i32,
    pub rows_total: i32,
    pub rows_accepted: i32,
    pub rows_rejected: i32,
    pub rows_with_warnings: i32,
    pub dropped_columns: Vec<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub error_line: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A row error or warning, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IssueRecord {
    pub severity: String,
    pub row_number: i32,
    pub line: i32,
    pub column_name: String,
    pub code: String,
    pub message: String,
}

/// An import about to start.
#[derive(Debug, Clone)]
pub struct NewImport<'a> {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub idempotency_key: Option<&'a str>,
    pub file_sha256: &'a str,
    pub created_by: &'a str,
}

/// Inserts an import in state `processing` with zero counts.
pub async fn insert_processing(
    executor: impl PgExecutor<'_>,
    import: &NewImport<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO imports (id, campaign_id, idempotency_key, file_sha256, state, rows_total, rows_accepted,
                              rows_rejected, rows_with_warnings, created_by)
         VALUES ($1, $2, $3, $4, 'processing', 0, 0, 0, 0, $5)",
    )
    .bind(import.id)
    .bind(import.campaign_id)
    .bind(import.idempotency_key)
    .bind(import.file_sha256)
    .bind(import.created_by)
    .execute(executor)
    .await?;
    Ok(())
}

/// Final counts of a finished import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub rows_total: i32,
    pub rows_accepted: i32,
    pub rows_rejected: i32,
    pub rows_with_warnings: i32,
}

/// Marks an import `completed` with its final counts and the digest of its
/// file. Run it inside the import's transaction, so the state and the
/// contacts commit together.
pub async fn complete(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    counts: ImportCounts,
    dropped_columns: &[String],
    file_sha256: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE imports SET state = 'completed', rows_processed = $2, rows_total = $2, rows_accepted = $3,
                rows_rejected = $4, rows_with_warnings = $5, dropped_columns = $6, file_sha256 = $7,
                finished_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(counts.rows_total)
    .bind(counts.rows_accepted)
    .bind(counts.rows_rejected)
    .bind(counts.rows_with_warnings)
    .bind(dropped_columns)
    .bind(file_sha256)
    .execute(executor)
    .await?;
    Ok(())
}

/// Records the progress of an import that is still `processing`.
pub async fn record_progress(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    rows_processed: i32,
    rows_accepted: i32,
    rows_rejected: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE imports SET rows_processed = $2, rows_accepted = $3, rows_rejected = $4
          WHERE id = $1 AND state = 'processing'",
    )
    .bind(id)
    .bind(rows_processed)
    .bind(rows_accepted)
    .bind(rows_rejected)
    .execute(executor)
    .await?;
    Ok(())
}

/// Marks a `processing` import `failed` with a file-level code and message.
/// Its counts are reset, because nothing it read was stored.
pub async fn fail(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    code: &str,
    message: &str,
    line: Option<i32>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE imports SET state = 'failed', error_code = $2, error_message = $3, error_line = $4,
                rows_processed = 0, rows_accepted = 0, rows_rejected = 0, rows_with_warnings = 0,
                finished_at = now()
          WHERE id = $1 AND state = 'processing'",
    )
    .bind(id)
    .bind(code)
    .bind(message)
    .bind(line)
    .execute(executor)
    .await?;
    Ok(())
}

/// Returns the session advisory lock key of an import job: the first 8 bytes of its id.
fn job_lock_key(id: Uuid) -> i64 {
    let bytes = id.as_bytes();
    i64::from_be_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

/// Takes the session advisory lock that marks an import job as alive. The
/// lock ends with the session, so a job whose server died is detectable by
/// [`fail_if_abandoned`]. The caller releases it with [`release_job_lock`] or
/// by closing the connection.
pub async fn hold_job_lock(connection: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(job_lock_key(id))
        .execute(connection)
        .await?;
    Ok(())
}

pub async fn release_job_lock(connection: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(job_lock_key(id))
        .execute(connection)
        .await?;
    Ok(())
}

/// Marks a `processing` import `failed` with `import_interrupted` when no
/// session holds its job lock, which means the server running it stopped
/// before it finished. Returns whether it did.
pub async fn fail_if_abandoned(connection: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let mut transaction = sqlx::Connection::begin(&mut *connection).await?;
    let unlocked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(job_lock_key(id))
        .fetch_one(&mut *transaction)
        .await?;
    if !unlocked {
        return Ok(false);
    }
    let changed = sqlx::query(
        "UPDATE imports SET state = 'failed', error_code = 'import_interrupted',
                error_message = 'the server stopped before the import finished; nothing was imported, so upload the file again (with a new Idempotency-Key if you sent one)',
                rows_processed = 0, rows_accepted = 0, rows_rejected = 0, rows_with_warnings = 0,
                finished_at = now()
          WHERE id = $1 AND state = 'processing'",
    )
    .bind(id)
    .execute(&mut *transaction)
    .await?
    .rows_affected();
    transaction.commit().await?;
    Ok(changed > 0)
}

/// Marks every abandoned `processing` import `failed`, as
/// [`fail_if_abandoned`] does for one. A server calls it when it starts, so an
/// import that a stopped server left behind reads as interrupted everywhere,
/// not only once its progress is polled. Returns how many it marked.
pub async fn fail_all_abandoned(pool: &sqlx::PgPool) -> sqlx::Result<u64> {
    let running: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM imports WHERE state = 'processing'")
            .fetch_all(pool)
            .await?;
    if running.is_empty() {
        return Ok(0);
    }
    let mut connection = pool.acquire().await?;
    let mut failed = 0;
    for id in running {
        if fail_if_abandoned(&mut connection, id).await? {
            failed += 1;
        }
    }
    Ok(failed)
}

pub async fn find_import(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<ImportRecord>> {
    sqlx::query_as(
        "SELECT id, campaign_id, file_sha256, state, rows_processed, rows_total, rows_accepted, rows_rejected,
                rows_with_warnings, dropped_columns, error_code, error_message, error_line, created_at, finished_at
           FROM imports WHERE campaign_id = $1 AND id = $2",
    )
    .bind(campaign_id)
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// Maximum number of issues in one row of `import_issue_blocks`. A page of
/// issues reads whole blocks, so blocks stay small: about 120 KB each for
/// typical messages (an estimate).
pub const ISSUE_BLOCK_LEN: usize = 1024;

/// Blocks read per query while a page of issues is collected.
const BLOCKS_PER_READ: i64 = 4;

/// One stored block: the first issue's `seq`, then the issues in order.
#[derive(Debug, sqlx::FromRow)]
struct IssueBlockRow {
    first_seq: i32,
    last_seq: i32,
    severities: Vec<String>,
    row_numbers: Vec<i32>,
    lines: Vec<i32>,
    column_names: Vec<String>,
    codes: Vec<String>,
    messages: Vec<String>,
}

impl IssueBlockRow {
    /// Takes the issues after `after_seq`, of `severity` when given, into
    /// `found` until it contains `limit`.
    fn take_into(
        self,
        after_seq: i32,
        severity: Option<&str>,
        limit: usize,
        found: &mut Vec<(i32, IssueRecord)>,
    ) {
        let issues = self
            .severities
            .into_iter()
            .zip(self.row_numbers)
            .zip(self.lines)
            .zip(self.column_names)
            .zip(self.codes)
            .zip(self.messages);
        for (seq, issue) in (self.first_seq..).zip(issues) {
            if found.len() >= limit {
                return;
            }
            let (((((issue_severity, row_number), line), column_name), code), message) = issue;
            let matches =
                seq > after_seq && severity.is_none_or(|expected| expected == issue_severity);
            if matches {
                found.push((
                    seq,
                    IssueRecord {
                        severity: issue_severity,
                        row_number,
                        line,
                        column_name,
                        code,
                        message,
                    },
                ));
            }
        }
    }
}

/// Reads up to `limit` issues after `after_seq` in `seq` order (file order),
/// all of them or only those of one severity (`error` or `warning`).
pub async fn issues<'e, E>(
    executor: E,
    import_id: Uuid,
    after_seq: i32,
    severity: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<(i32, IssueRecord)>>
where
    E: PgExecutor<'e> + Copy,
{
    let limit = usize::try_from(limit).unwrap_or(0);
    let mut found = Vec::with_capacity(limit.min(ISSUE_BLOCK_LEN));
    let mut after = after_seq;
    while found.len() < limit {
        let blocks: Vec<IssueBlockRow> = sqlx::query_as(
            "SELECT first_seq, last_seq, severities, row_numbers, lines, column_names, codes, messages
               FROM import_issue_blocks
              WHERE import_id = $1 AND last_seq > $2
                AND CASE $3::text WHEN 'error' THEN errors > 0 WHEN 'warning' THEN warnings > 0 ELSE true END
              ORDER BY first_seq LIMIT $4",
        )
        .bind(import_id)
        .bind(after)
        .bind(severity)
        .bind(BLOCKS_PER_READ)
        .fetch_all(executor)
        .await?;
        let last_read = blocks.len() < BLOCKS_PER_READ as usize;
        for block in blocks {
            let last_seq = block.last_seq;
            block.take_into(after, severity, limit, &mut found);
            after = last_seq;
        }
        if last_read {
            break;
        }
    }
    Ok(found)
}

/// `COPY` statement for [`encode_issue_block`] payloads.
pub const ISSUE_BLOCKS_COPY: &str =
    "COPY import_issue_blocks (import_id, first_seq, last_seq, errors, warnings,
    severities, row_numbers, lines, column_names, codes, messages) FROM STDIN (FORMAT binary)";

/// Appends a block of consecutive issues, the first numbered `first_seq`,
/// to an [`ISSUE_BLOCKS_COPY`] payload. `issues` contains 1 to
/// [`ISSUE_BLOCK_LEN`] issues.
pub fn encode_issue_block(
    buffer: &mut CopyBuffer,
    import_id: Uuid,
    first_seq: i32,
    issues: &[IssueRecord],
) {
    let count = i32::try_from(issues.len()).expect("a block has at most ISSUE_BLOCK_LEN issues");
    let errors = issues
        .iter()
        .filter(|issue| issue.severity == "error")
        .count() as i32;
    let row_numbers: Vec<i32> = issues.iter().map(|issue| issue.row_number).collect();
    let lines: Vec<i32> = issues.iter().map(|issue| issue.line).collect();
    buffer.start_tuple(11);
    buffer.uuid(import_id);
    buffer.int4(first_seq);
    buffer.int4(first_seq + count - 1);
    buffer.int4(errors);
    buffer.int4(count - errors);
    buffer.text_array(issues.iter().map(|issue| issue.severity.as_str()));
    buffer.int4_array(&row_numbers);
    buffer.int4_array(&lines);
    buffer.text_array(issues.iter().map(|issue| issue.column_name.as_str()));
    buffer.text_array(issues.iter().map(|issue| issue.code.as_str()));
    buffer.text_array(issues.iter().map(|issue| issue.message.as_str()));
}

/// Columns of a rejected row that are kept for the rejected-rows CSV, in
/// file order. The phone number and personalisation values are never among them.
pub const REJECTED_ROW_COLUMNS: [&str; 13] = [
    "contact_ref",
    "recipient_timezone",
    "registry_status",
    "registry_checked_at",
    "registry_evidence",
    "consent_type",
    "consent_evidence",
    "consent_given_at",
    "consent_expires_at",
    "exemption",
    "call_type",
    "priority",
    "max_attempts",
];

/// `COPY` statement for [`encode_rejected_row`] payloads.
pub const REJECTED_ROWS_COPY: &str = "COPY import_rejected_rows (import_id, row_number, line, contact_ref,
    recipient_timezone, registry_status, registry_checked_at, registry_evidence, consent_type, consent_evidence,
    consent_given_at, consent_expires_at, exemption, call_type, priority, max_attempts)
    FROM STDIN (FORMAT binary)";

/// Appends a rejected row to a [`REJECTED_ROWS_COPY`] payload; `values` are in
/// [`REJECTED_ROW_COLUMNS`] order.
pub fn encode_rejected_row(
    buffer: &mut CopyBuffer,
    import_id: Uuid,
    row_number: i32,
    line: i32,
    values: &[Option<&str>; 13],
) {
    buffer.start_tuple(16);
    buffer.uuid(import_id);
    buffer.int4(row_number);
    buffer.int4(line);
    for value in values {
        buffer.opt_text(*value);
    }
}

/// One row error joined with the kept values of its row.
#[derive(Debug, Clone)]
pub struct RejectedIssue {
    pub seq: i32,
    pub row_number: i32,
    pub line: i32,
    pub column_name: String,
    pub code: String,
    pub message: String,
    /// In [`REJECTED_ROW_COLUMNS`] order.
    pub values: Vec<Option<String>>,
}

/// Reads a page of an import's row errors after `after_seq`, each with its row's kept values.
pub async fn rejected_issues<'e, E>(
    executor: E,
    import_id: Uuid,
    after_seq: i32,
    limit: i64,
) -> sqlx::Result<Vec<RejectedIssue>>
where
    E: PgExecutor<'e> + Copy,
{
    let errors = issues(executor, import_id, after_seq, Some("error"), limit).await?;
    let row_numbers: Vec<i32> = errors.iter().map(|(_, issue)| issue.row_number).collect();
    let rows = sqlx::query(
        "SELECT row_number, contact_ref, recipient_timezone, registry_status, registry_checked_at,
                registry_evidence, consent_type, consent_evidence, consent_given_at, consent_expires_at,
                exemption, call_type, priority, max_attempts
           FROM import_rejected_rows WHERE import_id = $1 AND row_number = ANY($2)",
    )
    .bind(import_id)
    .bind(&row_numbers)
    .fetch_all(executor)
    .await?;
    let mut values_by_row = HashMap::with_capacity(rows.len());
    for row in &rows {
        let values = (1..=REJECTED_ROW_COLUMNS.len())
            .map(|index| row.try_get::<Option<String>, _>(index))
            .collect::<sqlx::Result<Vec<_>>>()?;
        values_by_row.insert(row.try_get::<i32, _>(0)?, values);
    }
    Ok(errors
        .into_iter()
        .map(|(seq, issue)| RejectedIssue {
            seq,
            values: values_by_row
                .get(&issue.row_number)
                .cloned()
                .unwrap_or_else(|| vec![None; REJECTED_ROW_COLUMNS.len()]),
            row_number: issue.row_number,
            line: issue.line,
            column_name: issue.column_name,
            code: issue.code,
            message: issue.message,
        })
        .collect())
}

#[derive(Debug, Clone)]
pub struct NewWash<'a> {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub wash_reference: &'a str,
    pub account: Option<&'a str>,
    pub received_at: DateTime<Utc>,
    pub file_sha256: &'a str,
    pub rows_total: i32,
    pub registered: i32,
    pub not_registered: i32,
    pub invalid: i32,
    pub matched: i32,
    pub unmatched: i32,
    pub rejected_rows: i32,
    pub created_by: &'a str,
}

pub async fn insert_wash(executor: impl PgExecutor<'_>, wash: &NewWash<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO wash_results (id, campaign_id, wash_reference, account, received_at, file_sha256, rows_total,
                                   registered, not_registered, invalid, matched, unmatched, rejected_rows, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(wash.id)
    .bind(wash.campaign_id)
    .bind(wash.wash_reference)
    .bind(wash.account)
    .bind(wash.received_at)
    .bind(wash.file_sha256)
    .bind(wash.rows_total)
    .bind(wash.registered)
    .bind(wash.not_registered)
    .bind(wash.invalid)
    .bind(wash.matched)
    .bind(wash.unmatched)
    .bind(wash.rejected_rows)
    .bind(wash.created_by)
    .execute(executor)
    .await?;
    Ok(())
}

/// A stored response for an `Idempotency-Key`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredResponse {
    pub request_hash: String,
    pub status: i32,
    pub body: Value,
}

pub async fn find_response(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    key: &str,
) -> sqlx::Result<Option<StoredResponse>> {
    sqlx::query_as("SELECT request_hash, status, body FROM idempotency_keys WHERE partner_id = $1 AND key = $2")
        .bind(partner_id)
        .bind(key)
        .fetch_optional(executor)
        .await
}

/// The outcome of claiming an `Idempotency-Key` before the work it covers.
#[derive(Debug)]
pub enum KeyClaim {
    /// This request has the key and does the work.
    Claimed,
    /// An earlier request finished and stored its response.
    Stored(StoredResponse),
    /// A concurrent request has the key and has not finished.
    InProgress,
}

/// A claimed key that was not completed within this time is taken as
/// abandoned (its server stopped), and the next request may claim it.
const ABANDONED_CLAIM: &str = "5 minutes";

/// Claims a key for a request, marking it in progress with status 0, so that
/// a concurrent request with the same key waits for the first response
/// instead of doing the work again.
pub async fn claim_key(
    pool: &sqlx::PgPool,
    partner_id: Uuid,
    key: &str,
    request_hash: &str,
) -> sqlx::Result<KeyClaim> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (partner_id, key, request_hash, status, body)
         VALUES ($1, $2, $3, 0, 'null') ON CONFLICT DO NOTHING",
    )
    .bind(partner_id)
    .bind(key)
    .bind(request_hash)
    .execute(pool)
    .await?
    .rows_affected();
    if inserted > 0 {
        return Ok(KeyClaim::Claimed);
    }
    let taken_over = sqlx::query(&format!(
        "UPDATE idempotency_keys SET request_hash = $3, created_at = now()
          WHERE partner_id = $1 AND key = $2 AND status = 0
            AND created_at < now() - interval '{ABANDONED_CLAIM}'"
    ))
    .bind(partner_id)
    .bind(key)
    .bind(request_hash)
    .execute(pool)
    .await?
    .rows_affected();
    if taken_over > 0 {
        return Ok(KeyClaim::Claimed);
    }
    Ok(match find_response(pool, partner_id, key).await? {
        Some(stored) if stored.status > 0 => KeyClaim::Stored(stored),
        // Gone between the statements: its request failed and released it.
        None => KeyClaim::InProgress,
        Some(_) => KeyClaim::InProgress,
    })
}

/// Stores the response of a claimed key.
pub async fn complete_key(
    pool: &sqlx::PgPool,
    partner_id: Uuid,
    key: &str,
    status: i32,
    body: &Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $3, body = $4
          WHERE partner_id = $1 AND key = $2 AND status = 0",
    )
    .bind(partner_id)
    .bind(key)
    .bind(status)
    .bind(body)
    .execute(pool)
    .await?;
    Ok(())
}

/// Releases a claimed key whose request failed, so it can be sent again.
pub async fn release_key(pool: &sqlx::PgPool, partner_id: Uuid, key: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE partner_id = $1 AND key = $2 AND status = 0")
        .bind(partner_id)
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}

/// Removes a stored response.
pub async fn delete_response(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    key: &str,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE partner_id = $1 AND key = $2")
        .bind(partner_id)
        .bind(key)
        .execute(executor)
        .await?;
    Ok(())
}

/// Stores a response; a concurrent request that stored first wins. Returns
/// whether this one was stored.
pub async fn store_response(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    key: &str,
    request_hash: &str,
    status: i32,
    body: &Value,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO idempotency_keys (partner_id, key, request_hash, status, body)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(partner_id)
    .bind(key)
    .bind(request_hash)
    .bind(status)
    .bind(body)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() > 0)
}
