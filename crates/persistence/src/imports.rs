//! Import and wash-result records, their row issues, and stored responses for
//! `Idempotency-Key` replays.

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
                error_message = 'the server stopped before the import finished; nothing was imported, so upload the file again',
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

pub async fn issues(
    executor: impl PgExecutor<'_>,
    import_id: Uuid,
    after_seq: i32,
    limit: i64,
) -> sqlx::Result<Vec<(i32, IssueRecord)>> {
    let rows: Vec<(i32, String, i32, i32, String, String, String)> = sqlx::query_as(
        "SELECT seq, severity, row_number, line, column_name, code, message
           FROM import_issues WHERE import_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(import_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(seq, severity, row_number, line, column_name, code, message)| {
                (
                    seq,
                    IssueRecord {
                        severity,
                        row_number,
                        line,
                        column_name,
                        code,
                        message,
                    },
                )
            },
        )
        .collect())
}

/// Reads the first `limit` issues of one severity (`error` or `warning`), in row order.
pub async fn issues_of_severity(
    executor: impl PgExecutor<'_>,
    import_id: Uuid,
    severity: &str,
    limit: i64,
) -> sqlx::Result<Vec<(i32, IssueRecord)>> {
    let rows: Vec<(i32, String, i32, i32, String, String, String)> = sqlx::query_as(
        "SELECT seq, severity, row_number, line, column_name, code, message
           FROM import_issues WHERE import_id = $1 AND severity = $2 ORDER BY seq LIMIT $3",
    )
    .bind(import_id)
    .bind(severity)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(seq, severity, row_number, line, column_name, code, message)| {
                (
                    seq,
                    IssueRecord {
                        severity,
                        row_number,
                        line,
                        column_name,
                        code,
                        message,
                    },
                )
            },
        )
        .collect())
}

/// `COPY` statement for [`encode_issue`] payloads.
pub const ISSUES_COPY: &str =
    "COPY import_issues (import_id, seq, severity, row_number, line, column_name, code, message)
    FROM STDIN (FORMAT binary)";

/// Appends one row issue to an [`ISSUES_COPY`] payload.
pub fn encode_issue(buffer: &mut CopyBuffer, import_id: Uuid, seq: i32, issue: &IssueRecord) {
    buffer.start_tuple(8);
    buffer.uuid(import_id);
    buffer.int4(seq);
    buffer.text(&issue.severity);
    buffer.int4(issue.row_number);
    buffer.int4(issue.line);
    buffer.text(&issue.column_name);
    buffer.text(&issue.code);
    buffer.text(&issue.message);
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
pub async fn rejected_issues(
    executor: impl PgExecutor<'_>,
    import_id: Uuid,
    after_seq: i32,
    limit: i64,
) -> sqlx::Result<Vec<RejectedIssue>> {
    let rows = sqlx::query(
        "SELECT i.seq, i.row_number, i.line, i.column_name, i.code, i.message,
                r.contact_ref, r.recipient_timezone, r.registry_status, r.registry_checked_at, r.registry_evidence,
                r.consent_type, r.consent_evidence, r.consent_given_at, r.consent_expires_at, r.exemption,
                r.call_type, r.priority, r.max_attempts
           FROM import_issues i
           LEFT JOIN import_rejected_rows r ON r.import_id = i.import_id AND r.row_number = i.row_number
          WHERE i.import_id = $1 AND i.severity = 'error' AND i.seq > $2
          ORDER BY i.seq LIMIT $3",
    )
    .bind(import_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|row| {
            let values = (6..6 + REJECTED_ROW_COLUMNS.len())
                .map(|index| row.try_get::<Option<String>, _>(index))
                .collect::<sqlx::Result<Vec<_>>>()?;
            Ok(RejectedIssue {
                seq: row.try_get(0)?,
                row_number: row.try_get(1)?,
                line: row.try_get(2)?,
                column_name: row.try_get(3)?,
                code: row.try_get(4)?,
                message: row.try_get(5)?,
                values,
            })
        })
        .collect()
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

/// Stores a response; a concurrent request that stored first wins.
pub async fn store_response(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    key: &str,
    request_hash: &str,
    status: i32,
    body: &Value,
) -> sqlx::Result<()> {
    sqlx::query(
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
    Ok(())
}
