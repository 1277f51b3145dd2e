//! Connecting to PostgreSQL, creating the database when asked, and migrating.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// The database used when `DATABASE_URL` is not set: the local server.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/outbound";

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Creates the database named in `url` if it does not exist yet.
///
/// # Errors
/// Fails when the server cannot be reached or the database cannot be created.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url)?;
    let name = options
        .get_database()
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL names no database"))?
        .to_owned();
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(error) = sqlx::query(&statement).execute(&mut admin).await {
            // Another process may have created it between the check and here.
            let code = error
                .as_database_error()
                .and_then(|e| e.code())
                .unwrap_or_default();
            if code != "42P04" {
                return Err(error.into());
            }
        }
    }
    admin.close().await?;
    Ok(())
}

/// Opens a connection pool.
///
/// # Errors
/// Fails when the URL is invalid or the server cannot be reached.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Applies pending migrations from `migrations/`.
///
/// # Errors
/// Fails when a migration fails or the applied history differs from the files.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}
