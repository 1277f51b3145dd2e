//! Operator bootstrap commands and development token minting.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use outbound_http::auth::{mint_hs256, Claims, Role};
use outbound_persistence::tenancy;
use uuid::Uuid;

use crate::runtime::{
    load_secrets, prepare_database, DatabaseArgs, KeyArgs, DEFAULT_AUDIENCE, DEFAULT_ISSUER,
};

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Create a partner and print its id.
    CreatePartner {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Create a client and print its id; with --partner, assign it too.
    CreateClient {
        #[arg(long)]
        name: String,
        #[arg(long)]
        partner: Option<Uuid>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Assign a client to a partner.
    AssignClient {
        #[arg(long)]
        partner: Uuid,
        #[arg(long)]
        client: Uuid,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Set or clear a partner's cap on concurrent calls across all its campaigns.
    SetPartnerCapacity {
        #[arg(long)]
        partner: Uuid,
        /// Most calls in progress at once; omit to remove the cap.
        #[arg(long)]
        max_concurrent_calls: Option<i32>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Create a project for a client and print its id.
    CreateProject {
        #[arg(long)]
        client: Uuid,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Mint an HS256 development token signed with the key file's secret.
    Mint(MintArgs),
}

#[derive(Args)]
pub struct MintArgs {
    /// partner_admin, partner_user, or a customer role such as customer_admin.
    #[arg(long, default_value = "partner_admin")]
    pub role: String,
    /// Partner id the token acts for; required for partner_admin and partner_user.
    #[arg(long)]
    pub partner: Option<Uuid>,
    /// Assigned client ids the token may act for (repeat the flag).
    #[arg(long = "client")]
    pub clients: Vec<Uuid>,
    #[arg(long, default_value = "operator")]
    pub subject: String,
    /// Lifetime in minutes.
    #[arg(long, default_value_t = 60)]
    pub ttl_minutes: i64,
    #[arg(long, default_value = DEFAULT_ISSUER)]
    pub issuer: String,
    #[arg(long, default_value = DEFAULT_AUDIENCE)]
    pub audience: String,
    #[command(flatten)]
    pub keys: KeyArgs,
}

pub async fn run(command: OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::CreatePartner { name, database } => {
            let pool = prepare_database(&database.database_url).await?;
            println!("{}", tenancy::create_partner(&pool, &name).await?);
        }
        OperatorCommand::CreateClient {
            name,
            partner,
            database,
        } => {
            let pool = prepare_database(&database.database_url).await?;
            if let Some(partner) = partner {
                anyhow::ensure!(
                    tenancy::partner_exists(&pool, partner).await?,
                    "partner {partner} not found"
                );
            }
            let client = tenancy::create_client(&pool, &name).await?;
            if let Some(partner) = partner {
                tenancy::assign_client(&pool, partner, client).await?;
            }
            println!("{client}");
        }
        OperatorCommand::AssignClient {
            partner,
            client,
            database,
        } => {
            let pool = prepare_database(&database.database_url).await?;
            anyhow::ensure!(
                tenancy::partner_exists(&pool, partner).await?,
                "partner {partner} not found"
            );
            anyhow::ensure!(
                tenancy::client_exists(&pool, client).await?,
                "client {client} not found"
            );
            tenancy::assign_client(&pool, partner, client).await?;
            println!("assigned client {client} to partner {partner}");
        }
        OperatorCommand::SetPartnerCapacity {
            partner,
            max_concurrent_calls,
            database,
        } => {
            anyhow::ensure!(
                max_concurrent_calls.is_none_or(|cap| cap >= 0),
                "--max-concurrent-calls must be zero or more"
            );
            let pool = prepare_database(&database.database_url).await?;
            anyhow::ensure!(
                tenancy::set_partner_capacity(&pool, partner, max_concurrent_calls).await?,
                "partner {partner} not found"
            );
            match max_concurrent_calls {
                Some(cap) => println!("partner {partner} may have at most {cap} calls in progress"),
                None => println!("partner {partner} has no cap on calls in progress"),
            }
        }
        OperatorCommand::CreateProject {
            client,
            name,
            database,
        } => {
            let pool = prepare_database(&database.database_url).await?;
            anyhow::ensure!(
                tenancy::client_exists(&pool, client).await?,
                "client {client} not found"
            );
            println!("{}", tenancy::create_project(&pool, client, &name).await?);
        }
    }
    Ok(())
}

/// Mints a development token and prints it.
pub fn token(command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Mint(args) = command;
    // The API rejects a partner role's token without a partner id with 403,
    // so such a token is rejected here, before it is minted.
    let partner_role = matches!(
        Role::parse(&args.role),
        Role::PartnerAdmin | Role::PartnerUser
    );
    anyhow::ensure!(
        !partner_role || args.partner.is_some(),
        "--role {} needs --partner <partner-id>: the API rejects a {} token that names no partner. Create a partner with `outbound operator create-partner --name NAME` and pass the id it prints",
        args.role,
        args.role
    );
    let key_file = args
        .keys
        .key_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::runtime::DEV_KEY_FILE));
    let secrets = load_secrets(Some(&key_file), true)?;
    let secret = secrets
        .jwt_hs256_secret
        .context("the key file has no jwt_hs256_secret")?;
    let token = mint(
        &secret,
        &args.role,
        args.partner,
        &args.clients,
        &args.subject,
        args.ttl_minutes,
        &args.issuer,
        &args.audience,
    )?;
    println!("{token}");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn mint(
    secret: &[u8],
    role: &str,
    partner: Option<Uuid>,
    clients: &[Uuid],
    subject: &str,
    ttl_minutes: i64,
    issuer: &str,
    audience: &str,
) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: subject.to_owned(),
        role: role.to_owned(),
        partner_id: partner,
        client_ids: clients.to_vec(),
        iss: issuer.to_owned(),
        aud: audience.to_owned(),
        exp: now + ttl_minutes * 60,
        nbf: now - 5,
        iat: now,
    };
    Ok(mint_hs256(secret, &claims)?)
}
