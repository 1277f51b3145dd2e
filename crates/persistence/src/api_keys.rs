//! Partner API keys, stored as an HMAC-SHA256 hash with a lookup prefix.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub secret_hash: Vec<u8>,
    pub role: String,
    pub client_ids: Option<Vec<Uuid>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, partner_id, name, prefix, secret_hash, role, client_ids, created_by, created_at, last_used_at, revoked_at";

#[allow(clippy::too_many_arguments)]
pub async fn insert(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    partner_id: Uuid,
    name: &str,
    prefix: &str,
    secret_hash: &[u8],
    role: &str,
    client_ids: Option<&[Uuid]>,
    created_by: &str,
) -> sqlx::Result<ApiKey> {
    let query = format!(
        "INSERT INTO api_keys (id, partner_id, name, prefix, secret_hash, role, client_ids, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    );
    sqlx::query_as(&query)
        .bind(id)
        .bind(partner_id)
        .bind(name)
        .bind(prefix)
        .bind(secret_hash)
        .bind(role)
        .bind(client_ids)
        .bind(created_by)
        .fetch_one(executor)
        .await
}

pub async fn find_by_prefix(
    executor: impl PgExecutor<'_>,
    prefix: &str,
) -> sqlx::Result<Option<ApiKey>> {
    let query = format!("SELECT {COLUMNS} FROM api_keys WHERE prefix = $1");
    sqlx::query_as(&query)
        .bind(prefix)
        .fetch_optional(executor)
        .await
}

/// A partner's keys, newest first, after the `(created_at, id)` cursor.
pub async fn list(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<ApiKey>> {
    let query = format!(
        "SELECT {COLUMNS} FROM api_keys WHERE partner_id = $1
            AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
          ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    sqlx::query_as(&query)
        .bind(partner_id)
        .bind(before.map(|b| b.0))
        .bind(before.map(|b| b.1).unwrap_or_default())
        .bind(limit)
        .fetch_all(executor)
        .await
}

/// Revokes a partner's key; revoking twice keeps the first revocation.
pub async fn revoke(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
    id: Uuid,
    by: &str,
) -> sqlx::Result<Option<ApiKey>> {
    let query = format!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()), revoked_by = COALESCE(revoked_by, $3)
          WHERE partner_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    sqlx::query_as(&query)
        .bind(partner_id)
        .bind(id)
        .bind(by)
        .fetch_optional(executor)
        .await
}

/// Records a use, at most once a minute per key to keep writes off the hot path.
pub async fn touch(executor: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now()
          WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Clients currently assigned to a partner.
pub async fn assigned_clients(
    executor: impl PgExecutor<'_>,
    partner_id: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT client_id FROM partner_clients WHERE partner_id = $1 ORDER BY client_id",
    )
    .bind(partner_id)
    .fetch_all(executor)
    .await
}
