//! A client's suppression list: numbers never to be called again by any of
//! its campaigns, matched by blind index.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Suppression {
    pub id: Uuid,
    pub client_id: Uuid,
    pub phone_masked: Option<String>,
    pub source: String,
    pub reason: Option<String>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
    pub removed_reason: Option<String>,
}

const COLUMNS: &str = "id, client_id, phone_masked, source, reason, created_by, created_at, removed_at, removed_reason";

/// Adds a number by operator request; returns the active entry (the existing
/// one when the number is already suppressed).
pub async fn add(
    executor: impl PgExecutor<'_>,
    client_id: Uuid,
    phone_index: Uuid,
    phone_masked: &str,
    reason: Option<&str>,
    created_by: &str,
) -> sqlx::Result<Suppression> {
    let query = format!(
        "INSERT INTO suppressions (id, client_id, phone_index, source, phone_masked, reason, created_by)
         VALUES ($1, $2, $3, 'operator', $4, $5, $6)
         ON CONFLICT (client_id, phone_index) DO UPDATE
            SET removed_at = NULL, removed_by = NULL, removed_reason = NULL,
                reason = CASE WHEN suppressions.removed_at IS NULL THEN suppressions.reason ELSE EXCLUDED.reason END,
                created_by = CASE WHEN suppressions.removed_at IS NULL THEN suppressions.created_by ELSE EXCLUDED.created_by END,
                source = CASE WHEN suppressions.removed_at IS NULL THEN suppressions.source ELSE 'operator' END,
                phone_masked = COALESCE(suppressions.phone_masked, EXCLUDED.phone_masked)
         RETURNING {COLUMNS}"
    );
    sqlx::query_as(&query)
        .bind(Uuid::new_v4())
        .bind(client_id)
        .bind(phone_index)
        .bind(phone_masked)
        .bind(reason)
        .bind(created_by)
        .fetch_one(executor)
        .await
}

/// Active suppressions of a client, newest first, after the `(created_at, id)` cursor.
pub async fn list(
    executor: impl PgExecutor<'_>,
    client_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Suppression>> {
    let query = format!(
        "SELECT {COLUMNS} FROM suppressions WHERE client_id = $1 AND removed_at IS NULL
            AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
          ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    sqlx::query_as(&query)
        .bind(client_id)
        .bind(before.map(|b| b.0))
        .bind(before.map(|b| b.1).unwrap_or_default())
        .bind(limit)
        .fetch_all(executor)
        .await
}

/// Removes an active suppression with a reason; the row is kept.
pub async fn remove(
    executor: impl PgExecutor<'_>,
    client_id: Uuid,
    id: Uuid,
    reason: &str,
    removed_by: &str,
) -> sqlx::Result<Option<Suppression>> {
    let query = format!(
        "UPDATE suppressions SET removed_at = now(), removed_reason = $3, removed_by = $4
          WHERE client_id = $1 AND id = $2 AND removed_at IS NULL RETURNING {COLUMNS}"
    );
    sqlx::query_as(&query)
        .bind(client_id)
        .bind(id)
        .bind(reason)
        .bind(removed_by)
        .fetch_optional(executor)
        .await
}
