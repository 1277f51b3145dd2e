//! `serve`, `migrate` and `voice-sim`: configuration, logging and start-up.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use outbound_http::auth::Authenticator;
use outbound_http::clock::Clock;
use outbound_http::state::{AppState, ImportLimits, VoiceSettings};
use outbound_persistence::db;
use outbound_persistence::keys::{KeyOrigin, Secrets};

/// Connections in a server's PostgreSQL pool unless configured.
pub const DEFAULT_DATABASE_CONNECTIONS: u32 = 20;

/// Where development mode keeps its generated key file.
pub const DEV_KEY_FILE: &str = ".outbound/dev-keys.json";
pub const DEFAULT_ISSUER: &str = "outbound-dev";
pub const DEFAULT_AUDIENCE: &str = "outbound-api";
/// The address `outbound voice-sim` listens on by default.
pub const DEFAULT_VOICE_SIM_LISTEN: &str = "127.0.0.1:8090";

#[derive(Args, Clone)]
pub struct DatabaseArgs {
    /// PostgreSQL URL; defaults to the local server at 127.0.0.1:5432, database `outbound`.
    #[arg(long, env = "DATABASE_URL", default_value = db::DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
}

#[derive(Args, Clone)]
pub struct KeyArgs {
    /// JSON key file with data, blind-index, webhook and development JWT keys.
    /// Development mode creates it when missing.
    #[arg(long, env = "OUTBOUND_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Development mode: HS256 tokens from the key file's secret, and a key file
    /// generated on first run.
    #[arg(long)]
    pub dev: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// This server's base URL as the voice platform reaches it (for webhook callbacks).
    #[arg(long, env = "OUTBOUND_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Base URL of the voice platform. With --dev it defaults to
    /// http://127.0.0.1:8090, where `outbound voice-sim` listens by default;
    /// without --dev there is no default and the dispatcher claims no contact.
    #[arg(long, env = "OUTBOUND_VOICE_PLATFORM_URL")]
    pub voice_platform_url: Option<String>,
    /// PEM public key that verifies production tokens.
    #[arg(long, env = "OUTBOUND_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Algorithm of the production key: EdDSA or RS256.
    #[arg(long, env = "OUTBOUND_JWT_ALGORITHM", default_value = "EdDSA")]
    pub jwt_algorithm: String,
    /// Required `iss` claim.
    #[arg(long, env = "OUTBOUND_JWT_ISSUER", default_value = DEFAULT_ISSUER)]
    pub jwt_issuer: String,
    /// Required `aud` claim.
    #[arg(long, env = "OUTBOUND_JWT_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub jwt_audience: String,
    /// Seconds after which a call with no result is recorded as unknown.
    #[arg(long, default_value_t = 900)]
    pub result_timeout_seconds: i64,
    /// Largest upload in bytes.
    #[arg(long, env = "OUTBOUND_MAX_UPLOAD_BYTES", default_value_t = ImportLimits::default().max_bytes)]
    pub max_upload_bytes: usize,
    /// Most data rows in one contact file.
    #[arg(long, env = "OUTBOUND_MAX_IMPORT_ROWS", default_value_t = ImportLimits::default().max_rows)]
    pub max_import_rows: usize,
    /// Contact files larger than this many bytes are imported as a background
    /// job: the upload answers 202 and the client polls the import.
    #[arg(long, env = "OUTBOUND_ASYNC_IMPORT_BYTES", default_value_t = ImportLimits::default().async_bytes)]
    pub async_import_bytes: usize,
    /// Longest field of an uploaded file in bytes; a longer one fails the file.
    #[arg(long, env = "OUTBOUND_MAX_IMPORT_FIELD_BYTES", default_value_t = ImportLimits::default().max_field_bytes)]
    pub max_import_field_bytes: usize,
    /// Maximum import jobs this server runs at once, at least 1. An upload
    /// that needs another job is rejected with 429 before its body is read.
    #[arg(long, env = "OUTBOUND_MAX_IMPORT_JOBS", default_value_t = ImportLimits::default().max_jobs)]
    pub max_import_jobs: usize,
    /// Seconds an upload may send nothing before it fails with 408
    /// upload_timeout, at least 1.
    #[arg(long, env = "OUTBOUND_UPLOAD_IDLE_SECONDS", default_value_t = ImportLimits::default().idle_timeout.as_secs())]
    pub upload_idle_seconds: u64,
    /// Run the API without the dispatcher.
    #[arg(long)]
    pub no_dispatcher: bool,
    /// Requests a second allowed per API key or token subject (0 turns limits off).
    #[arg(long, env = "OUTBOUND_RATE_LIMIT_PER_SECOND", default_value_t = 100)]
    pub rate_limit_per_second: u32,
    /// Requests a caller may send in a burst above the rate.
    #[arg(long, env = "OUTBOUND_RATE_LIMIT_BURST", default_value_t = 200)]
    pub rate_limit_burst: u32,
    /// Milliseconds allowed for one call request to the voice platform. An
    /// attempt whose request gets no response in time may have been placed,
    /// so it stays open and keeps its concurrency slot until a call event
    /// arrives, or until --result-timeout-seconds passes and it is recorded
    /// as unknown.
    #[arg(long, env = "OUTBOUND_HANDOVER_TIMEOUT_MS", default_value_t = 5_000)]
    pub handover_timeout_ms: u64,
    /// Connections in this process's PostgreSQL pool.
    #[arg(long, env = "OUTBOUND_DATABASE_CONNECTIONS", default_value_t = DEFAULT_DATABASE_CONNECTIONS)]
    pub database_connections: u32,
    /// Write the bound address (`host:port`) to this file once listening, for
    /// scripts and tests that listen on port 0.
    #[arg(long)]
    pub address_file: Option<PathBuf>,
    /// Test and demo aid: the dispatcher's clock reads this RFC 3339 instant
    /// at start-up instead of the system time, then runs at --clock-speed and
    /// skips idle hours. Each process keeps its own clock.
    #[arg(long, hide = true)]
    pub clock_start: Option<chrono::DateTime<chrono::Utc>>,
    /// Test and demo aid: how many times faster than real time the clock set
    /// by --clock-start runs.
    #[arg(long, hide = true, default_value_t = 1.0)]
    pub clock_speed: f64,
}

#[derive(Args, Clone)]
pub struct VoiceSimArgs {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_VOICE_SIM_LISTEN)]
    pub listen: String,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Share of call requests refused with 503 and never placed, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0)]
    pub failure_rate: f64,
    /// Shortest real time from a call request to its ended event, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub call_min_ms: u64,
    /// Longest real time from a call request to its ended event, in milliseconds.
    #[arg(long, default_value_t = 1_500)]
    pub call_max_ms: u64,
    /// Shortest extra delay before responding to a call request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_min_ms: u64,
    /// Longest extra delay before responding to a call request, in milliseconds
    /// (0 adds none).
    #[arg(long, default_value_t = 0)]
    pub latency_max_ms: u64,
    /// Share of call requests, 0.0 to 1.0, whose call is placed but whose
    /// answer is sent only after --late-response-ms. Set that above the
    /// server's --handover-timeout-ms to test lost hand-overs.
    #[arg(long, default_value_t = 0.0)]
    pub late_response_rate: f64,
    /// Delay of a late answer, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub late_response_ms: u64,
    /// Share of call requests, 0.0 to 1.0, whose call is placed but never
    /// answered: the request is held until the caller gives up.
    #[arg(long, default_value_t = 0.0)]
    pub no_response_rate: f64,
    /// Share of call events, 0.0 to 1.0, never sent (dropped results).
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Share of call events, 0.0 to 1.0, sent twice at once with the same
    /// event id.
    #[arg(long, default_value_t = 0.0)]
    pub duplicate_rate: f64,
    /// Send each call's events in a random order (for example `ended`
    /// before `started`).
    #[arg(long)]
    pub reorder_events: bool,
    /// Send only the `ended` and `opt_out` events, like a platform that
    /// reports results alone.
    #[arg(long)]
    pub results_only: bool,
}

impl VoiceSimArgs {
    /// Returns the simulator's faults after checking every rate and range.
    fn faults(&self) -> anyhow::Result<outbound_http::simulator::Faults> {
        for (flag, rate) in [
            ("--failure-rate", self.failure_rate),
            ("--late-response-rate", self.late_response_rate),
            ("--no-response-rate", self.no_response_rate),
            ("--drop-rate", self.drop_rate),
            ("--duplicate-rate", self.duplicate_rate),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&rate),
                "{flag} must be between 0.0 and 1.0, got {rate}"
            );
        }
        anyhow::ensure!(
            self.latency_min_ms <= self.latency_max_ms || self.latency_max_ms == 0,
            "--latency-min-ms ({}) must not exceed --latency-max-ms ({})",
            self.latency_min_ms,
            self.latency_max_ms
        );
        anyhow::ensure!(
            self.call_min_ms <= self.call_max_ms,
            "--call-min-ms ({}) must not exceed --call-max-ms ({})",
            self.call_min_ms,
            self.call_max_ms
        );
        Ok(outbound_http::simulator::Faults {
            latency_ms: (self.latency_min_ms, self.latency_max_ms),
            late_response_rate: self.late_response_rate,
            late_response_ms: self.late_response_ms,
            no_response_rate: self.no_response_rate,
            drop_rate: self.drop_rate,
            duplicate_rate: self.duplicate_rate,
            reorder_events: self.reorder_events,
            results_only: self.results_only,
        })
    }
}

/// Sets up logging: JSON lines on stderr, level from `RUST_LOG` (default `info`).
pub fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default_level},sqlx=warn"))
    });
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Loads secrets; in development mode a missing key file is generated with a warning.
pub fn load_secrets(key_file: Option<&Path>, development: bool) -> anyhow::Result<Secrets> {
    let default_path = PathBuf::from(DEV_KEY_FILE);
    let path = key_file.or(development.then_some(default_path.as_path()));
    let (secrets, origin) = Secrets::load(path, development)?;
    if let KeyOrigin::GeneratedDevelopmentFile(path) = origin {
        eprintln!(
            "WARNING: development mode generated new encryption keys in {}. Data encrypted with them is unreadable without this file. Never use development keys in production.",
            path.display()
        );
        tracing::warn!(path = %path.display(), "generated a development key file");
    }
    Ok(secrets)
}

/// Exit status of a command that refused to start because its keys are not
/// the ones the database was created with.
pub const KEY_MISMATCH_EXIT_CODE: u8 = 3;

/// An error for loaded keys that do not match the database. Its message
/// explains how to fix it and names no key material.
#[derive(Debug)]
pub struct KeyMismatch(String);

impl std::fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyMismatch {}

/// Checks the loaded keys against the fingerprints in the database, recording
/// them on a database that has none. Every command that writes or reads
/// numbers in the database calls it before it does so.
///
/// # Errors
/// Fails with [`KeyMismatch`] when the keys differ from the ones the database
/// was created with, or when stored contacts were sealed under a data key
/// that is not loaded.
pub async fn check_keys(pool: &sqlx::PgPool, secrets: &Secrets) -> anyhow::Result<()> {
    use outbound_persistence::key_check::{verify_and_record, KeyCheckError};
    let fix = "Start it with the key file this database was created with: --key-file PATH or OUTBOUND_KEY_FILE=PATH (or the OUTBOUND_DATA_KEYS, OUTBOUND_ACTIVE_DATA_KEY and OUTBOUND_BLIND_INDEX_KEY variables); in --dev mode, run it from the directory that holds .outbound/dev-keys.json";
    let generated = match &secrets.origin {
        KeyOrigin::GeneratedDevelopmentFile(path) => format!(
            " This run generated a new development key file at {}{} because none was there; those new keys do not belong to this database.",
            path.display(),
            std::env::current_dir()
                .map(|dir| format!(" (in {})", dir.display()))
                .unwrap_or_default()
        ),
        KeyOrigin::Loaded => String::new(),
    };
    let mismatch = format!(
        "Outbound refuses to start: the encryption keys loaded from {} do not match the keys this database was created with",
        secrets.source
    );
    let problem = match verify_and_record(pool, &secrets.keyring).await {
        Ok(()) => return Ok(()),
        Err(KeyCheckError::Database(error)) => {
            return Err(anyhow::Error::new(error).context("cannot check the keys against the database"))
        }
        Err(KeyCheckError::BlindIndexMismatch) => format!(
            "{mismatch}: the blind-index key differs, so numbers already stored would not be found as duplicates, wash matches or opt-outs, and could not be decrypted."
        ),
        Err(KeyCheckError::DataKeyMismatch(ids)) => format!(
            "{mismatch}: the data keys {} differ from the keys with the same ids that stored contacts were sealed with, so those contacts could not be decrypted or called.",
            ids.join(", ")
        ),
        Err(KeyCheckError::MissingDataKeys(ids)) => format!(
            "{mismatch}: the database holds contacts sealed under the data keys {}, which they lack, so those contacts could not be decrypted or called. Keep every data key that stored contacts use in data_keys, and set active_data_key to the key for new contacts.",
            ids.join(", ")
        ),
    };
    tracing::error!("the loaded keys do not match the database");
    Err(KeyMismatch(format!("{problem} {fix}.{generated}")).into())
}

/// Connects, creating the database when it is missing, and migrates.
pub async fn prepare_database(url: &str) -> anyhow::Result<sqlx::PgPool> {
    prepare_database_with(url, DEFAULT_DATABASE_CONNECTIONS).await
}

/// Like [`prepare_database`], with a pool of `connections` connections.
pub async fn prepare_database_with(url: &str, connections: u32) -> anyhow::Result<sqlx::PgPool> {
    db::ensure_database(url)
        .await
        .context("cannot reach PostgreSQL or create the database")?;
    let pool = db::connect(url, connections)
        .await
        .context("cannot connect to PostgreSQL")?;
    db::migrate(&pool)
        .await
        .context("database migration failed")?;
    Ok(pool)
}

pub async fn migrate(args: DatabaseArgs) -> anyhow::Result<()> {
    init_logging("info");
    prepare_database(&args.database_url).await?;
    println!("database is migrated");
    Ok(())
}

/// Returns the voice platform's base URL: the configured one, or in
/// development mode the address `outbound voice-sim` listens on by default.
/// Production mode has no default.
fn voice_platform_url(args: &ServeArgs) -> Option<String> {
    if let Some(url) = &args.voice_platform_url {
        tracing::info!(%url, "voice platform URL");
        return Some(url.clone());
    }
    if !args.dev {
        return None;
    }
    let url = format!("http://{DEFAULT_VOICE_SIM_LISTEN}");
    tracing::info!(%url, "development mode: the voice platform URL defaults to the address of `outbound voice-sim`");
    eprintln!("Development mode: calls go to the voice platform at {url}, where `outbound voice-sim` listens by default (set --voice-platform-url to change it).");
    Some(url)
}

/// Builds the server state from arguments and secrets.
pub fn app_state(
    args: &ServeArgs,
    pool: sqlx::PgPool,
    secrets: Secrets,
    clock: Clock,
    public_url: String,
) -> anyhow::Result<AppState> {
    let authenticator = match (&args.jwt_public_key_file, args.dev) {
        (Some(path), _) => {
            let pem = std::fs::read(path).with_context(|| format!("cannot read JWT public key {}", path.display()))?;
            Authenticator::public_key(&args.jwt_algorithm, &pem, &args.jwt_issuer, &args.jwt_audience)?
        }
        (None, true) => {
            let secret = secrets
                .jwt_hs256_secret
                .as_ref()
                .context("development mode needs jwt_hs256_secret in the key file or OUTBOUND_JWT_HS256_SECRET")?;
            Authenticator::hs256(secret, &args.jwt_issuer, &args.jwt_audience)
        }
        (None, false) => anyhow::bail!(
            "no JWT verification key: set --jwt-public-key-file (EdDSA or RS256), or run with --dev for HS256 development tokens"
        ),
    };
    if secrets.voice_platform_secret.is_none() {
        tracing::warn!("no voice platform secret configured: every webhook will be rejected and no call can be handed over");
        eprintln!("WARNING: no voice platform secret is configured (OUTBOUND_VOICE_SECRET or voice_platform_secret in the key file); webhooks will be rejected and this process will claim no contact.");
    }
    let voice_platform_url = voice_platform_url(args);
    if voice_platform_url.is_none() && !args.no_dispatcher {
        tracing::warn!("no voice platform URL configured: the dispatcher claims no contact");
        eprintln!("WARNING: no voice platform URL is configured (--voice-platform-url or OUTBOUND_VOICE_PLATFORM_URL); the dispatcher will claim no contact.");
    }
    anyhow::ensure!(
        args.max_import_jobs > 0,
        "--max-import-jobs must be at least 1"
    );
    anyhow::ensure!(
        args.upload_idle_seconds > 0,
        "--upload-idle-seconds must be at least 1"
    );
    Ok(AppState {
        event_batcher: outbound_http::event_batch::EventBatcher::start(pool.clone()),
        pool,
        authenticator: Arc::new(authenticator),
        clock,
        voice: VoiceSettings {
            platform_url: voice_platform_url,
            public_url,
            secret: secrets.voice_platform_secret.map(Arc::new),
            result_timeout_seconds: args.result_timeout_seconds,
            handover_timeout: std::time::Duration::from_millis(args.handover_timeout_ms),
        },
        limits: ImportLimits {
            max_bytes: args.max_upload_bytes,
            max_rows: args.max_import_rows,
            async_bytes: args.async_import_bytes,
            max_field_bytes: args.max_import_field_bytes,
            max_jobs: args.max_import_jobs,
            idle_timeout: std::time::Duration::from_secs(args.upload_idle_seconds),
        },
        import_jobs: Arc::default(),
        http: reqwest::Client::builder().build()?,
        rate_limits: (args.rate_limit_per_second > 0).then(|| {
            Arc::new(outbound_http::rate_limit::RateLimits::new(
                args.rate_limit_per_second,
                args.rate_limit_burst,
            ))
        }),
        keyring: Arc::new(secrets.keyring),
    })
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging("info");
    let secrets = load_secrets(args.keys.key_file.as_deref(), args.dev)?;
    tracing::info!(source = %secrets.source, key_id = secrets.keyring.active_key_id(), "keys loaded");
    let clock = clock_from(&args)?;
    anyhow::ensure!(
        args.database_connections > 0,
        "--database-connections must be at least 1"
    );
    let pool =
        prepare_database_with(&args.database.database_url, args.database_connections).await?;
    check_keys(&pool, &secrets).await?;
    let interrupted = outbound_persistence::imports::fail_all_abandoned(&pool)
        .await
        .context("cannot check for interrupted imports")?;
    if interrupted > 0 {
        tracing::warn!(
            imports = interrupted,
            "import jobs left unfinished by a stopped server were marked failed"
        );
    }
    let listener = TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"));
    let state = app_state(&args, pool, secrets, clock, public_url)?;
    let server = outbound_http::server::start(state, listener, !args.no_dispatcher)?;
    tracing::info!(%address, development = args.dev, "Outbound API listening");
    eprintln!(
        "Outbound API listening on http://{address}{}",
        if args.dev { " (development mode)" } else { "" }
    );
    if let Some(path) = &args.address_file {
        write_address_file(path, address)?;
    }
    wait_for_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    server.stop().await;
    Ok(())
}

/// Returns the system clock, or the accelerated test clock when --clock-start
/// is set.
fn clock_from(args: &ServeArgs) -> anyhow::Result<Clock> {
    let Some(start) = args.clock_start else {
        return Ok(Clock::System);
    };
    anyhow::ensure!(
        args.clock_speed.is_finite() && args.clock_speed > 0.0,
        "--clock-speed must be a positive number, got {}",
        args.clock_speed
    );
    tracing::warn!(%start, speed = args.clock_speed, "the dispatcher runs on an accelerated test clock, not the system time");
    Ok(Clock::accelerated(start, args.clock_speed))
}

/// Writes `address` to `path` through a temporary file and a rename, so a
/// reader never sees a partial address.
fn write_address_file(path: &Path, address: std::net::SocketAddr) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, address.to_string())
        .with_context(|| format!("cannot write the address file {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot write the address file {}", path.display()))?;
    Ok(())
}

pub async fn voice_sim(args: VoiceSimArgs) -> anyhow::Result<()> {
    init_logging("info");
    let faults = args.faults()?;
    let key_file = args
        .keys
        .key_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEV_KEY_FILE));
    let secrets = load_secrets(Some(&key_file), true)?;
    let secret = secrets
        .voice_platform_secret
        .context("the key file has no voice_platform_secret")?;
    let listener = TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let config = outbound_http::simulator::SimulatorConfig {
        secret: Arc::new(secret.to_vec()),
        call_duration_ms: (args.call_min_ms, args.call_max_ms),
        failure_rate: args.failure_rate,
    };
    tracing::info!(?faults, "simulated voice platform faults");
    let (address, handle, _) =
        outbound_http::server::start_simulator_with(config, faults, listener)?;
    eprintln!("simulated voice platform listening on http://{address}");
    wait_for_signal().await;
    handle.stop(true).await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
