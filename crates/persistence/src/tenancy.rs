//! Partners, clients, their assignments and projects, and the scope a caller
//! may see.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// What a caller may see: one partner's resources for the assigned clients
/// named in the caller's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub partner_id: Uuid,
    pub client_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Partner {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Project {
    pub id: Uuid,
    pub client_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

pub async fn create_partner(pool: &PgPool, name: &str) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO partners (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(id)
}

pub async fn create_client(pool: &PgPool, name: &str) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO clients (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(id)
}

/// Assigns a client to a partner; assigning twice is a no-op.
pub async fn assign_client(pool: &PgPool, partner_id: Uuid, client_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO partner_clients (partner_id, client_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(partner_id)
    .bind(client_id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn create_project(pool: &PgPool, client_id: Uuid, name: &str) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO projects (id, client_id, name) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(client_id)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(id)
}

/// The project, when it belongs to a client in `scope` that is assigned to the
/// scope's partner.
pub async fn find_project_in_scope(
    executor: impl PgExecutor<'_>,
    scope: &Scope,
    project_id: Uuid,
) -> sqlx::Result<Option<Project>> {
    sqlx::query_as(
        "SELECT p.id, p.client_id, p.name, p.created_at
           FROM projects p
           JOIN partner_clients pc ON pc.client_id = p.client_id AND pc.partner_id = $1
          WHERE p.id = $2 AND p.client_id = ANY($3)",
    )
    .bind(scope.partner_id)
    .bind(project_id)
    .bind(&scope.client_ids)
    .fetch_optional(executor)
    .await
}

pub async fn partner_exists(pool: &PgPool, partner_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM partners WHERE id = $1)")
        .bind(partner_id)
        .fetch_one(pool)
        .await
}

pub async fn client_exists(pool: &PgPool, client_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM clients WHERE id = $1)")
        .bind(client_id)
        .fetch_one(pool)
        .await
}

/// Sets or clears a partner's cap on concurrent calls across its campaigns.
pub async fn set_partner_capacity(
    pool: &PgPool,
    partner_id: Uuid,
    max_concurrent_calls: Option<i32>,
) -> sqlx::Result<bool> {
    let result = sqlx::query("UPDATE partners SET max_concurrent_calls = $2 WHERE id = $1")
        .bind(partner_id)
        .bind(max_concurrent_calls)
        .execute(pool)
        .await?;
    Ok(result.rows_affected() == 1)
}
