//! Import and wash-result records, their row issues, and stored responses for
//! `Idempotency-Key` replays.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImportRecord {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub file_sha256: String,
    pub state: String,
    pub rows_total: i32,
    pub rows_accepted: i32,
    pub rows_rejected: i32,
    pub rows_with_warnings: i32,
    pub dropped_columns: Vec<String>,
    pub created_at: DateTime<Utc>,
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

#[allow(clippy::too_many_arguments)]
pub async fn insert_import(
    connection: &mut PgConnection,
    id: Uuid,
    campaign_id: Uuid,
    idempotency_key: Option<&str>,
    file_sha256: &str,
    counts: (i32, i32, i32, i32),
    dropped_columns: &[String],
    created_by: &str,
) -> sqlx::Result<()> {
    let (total, accepted, rejected, warned) = counts;
    sqlx::query(
        "INSERT INTO imports (id, campaign_id, idempotency_key, file_sha256, state, rows_total, rows_accepted,
                              rows_rejected, rows_with_warnings, dropped_columns, created_by)
         VALUES ($1, $2, $3, $4, 'completed', $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(campaign_id)
    .bind(idempotency_key)
    .bind(file_sha256)
    .bind(total)
    .bind(accepted)
    .bind(rejected)
    .bind(warned)
    .bind(dropped_columns)
    .bind(created_by)
    .execute(connection)
    .await?;
    Ok(())
}

pub async fn insert_issues(
    connection: &mut PgConnection,
    import_id: Uuid,
    issues: &[IssueRecord],
) -> sqlx::Result<()> {
    for (chunk_index, chunk) in issues.chunks(5_000).enumerate() {
        let offset = (chunk_index * 5_000) as i32;
        let seq: Vec<i32> = (0..chunk.len() as i32).map(|i| offset + i).collect();
        let severity: Vec<&str> = chunk.iter().map(|i| i.severity.as_str()).collect();
        let rows: Vec<i32> = chunk.iter().map(|i| i.row_number).collect();
        let lines: Vec<i32> = chunk.iter().map(|i| i.line).collect();
        let columns: Vec<&str> = chunk.iter().map(|i| i.column_name.as_str()).collect();
        let codes: Vec<&str> = chunk.iter().map(|i| i.code.as_str()).collect();
        let messages: Vec<&str> = chunk.iter().map(|i| i.message.as_str()).collect();
        sqlx::query(
            "INSERT INTO import_issues (import_id, seq, severity, row_number, line, column_name, code, message)
             SELECT $1, u.* FROM UNNEST($2::int[], $3::text[], $4::int[], $5::int[], $6::text[], $7::text[], $8::text[]) AS u",
        )
        .bind(import_id)
        .bind(&seq)
        .bind(&severity)
        .bind(&rows)
        .bind(&lines)
        .bind(&columns)
        .bind(&codes)
        .bind(&messages)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

pub async fn find_import(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<ImportRecord>> {
    sqlx::query_as(
        "SELECT id, campaign_id, file_sha256, state, rows_total, rows_accepted, rows_rejected, rows_with_warnings,
                dropped_columns, created_at
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
