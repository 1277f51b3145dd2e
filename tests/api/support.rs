//! Test harness: a fresh PostgreSQL database per test (cloned from a migrated
//! template), the real server on a loopback port, and helpers for tenants and
//! tokens.

use std::net::TcpListener;
use std::sync::Arc;

use outbound_http::auth::{mint_hs256, Authenticator, Claims};
use outbound_http::clock::Clock;
use outbound_http::server::{start, RunningServer};
use outbound_http::state::{AppState, ImportLimits, VoiceSettings};
use outbound_persistence::crypto::Keyring;
use outbound_persistence::{db, tenancy};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::OnceCell;
use uuid::Uuid;

pub const ISSUER: &str = "outbound-test";
pub const AUDIENCE: &str = "outbound-api";
pub const JWT_SECRET: &[u8] = b"test-secret-for-hs256-tokens-0123456789";
pub const VOICE_SECRET: &[u8] = b"test-voice-platform-secret-0123456789";

fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| db::DEFAULT_DATABASE_URL.to_owned())
}

fn options_for(database: &str) -> PgConnectOptions {
    let options: PgConnectOptions = server_url()
        .parse()
        .expect("DATABASE_URL is a valid PostgreSQL URL");
    options.database(database)
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// Creates (once per process, and only when missing) a migrated template
/// database and returns its name. Several test processes may run at once, so
/// the template is built under another name and renamed when complete, and
/// leftover test databases are dropped only when nobody is connected to them.
async fn template() -> String {
    TEMPLATE
        .get_or_init(|| async {
            // Named after the migrations' checksums, so a changed migration gets a new template.
            let fingerprint = db::MIGRATOR.iter().flat_map(|m| m.checksum.iter().copied()).fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
            let name = format!("outbound_test_template_{fingerprint:016x}");
            let mut admin = options_for("postgres").connect().await.expect("PostgreSQL is reachable");
            sqlx::query("SELECT pg_advisory_lock(874201)").execute(&mut admin).await.expect("lock");
            let stale: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database d
                  WHERE datname LIKE 'outbound\\_test\\_%' AND datname NOT LIKE 'outbound\\_test\\_template\\_%'
                    AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
            )
            .fetch_all(&mut admin)
            .await
            .expect("list databases");
            for database in stale {
                // Fails harmlessly when another process connected in the meantime.
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{database}\"")).execute(&mut admin).await;
            }
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut admin)
                .await
                .expect("query");
            if !exists {
                let building = format!("{name}_building");
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)")).execute(&mut admin).await;
                sqlx::query(&format!("CREATE DATABASE \"{building}\"")).execute(&mut admin).await.expect("create template");
                let pool = PgPool::connect_with(options_for(&building)).await.expect("connect template");
                db::migrate(&pool).await.expect("migrate template");
                pool.close().await;
                sqlx::query(&format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\"")).execute(&mut admin).await.expect("rename template");
            }
            sqlx::query("SELECT pg_advisory_unlock(874201)").execute(&mut admin).await.expect("unlock");
            name
        })
        .await
        .clone()
}

/// Creates a fresh database cloned from the migrated template.
pub async fn fresh_database() -> (String, PgPool) {
    let template = template().await;
    let name = format!("outbound_test_{}", Uuid::new_v4().simple());
    let mut admin = options_for("postgres")
        .connect()
        .await
        .expect("PostgreSQL is reachable");
    // Cloning one template from two sessions at once can fail, so clones take turns.
    sqlx::query("SELECT pg_advisory_lock(874202)")
        .execute(&mut admin)
        .await
        .expect("lock");
    sqlx::query(&format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
    ))
    .execute(&mut admin)
    .await
    .expect("clone template");
    sqlx::query("SELECT pg_advisory_unlock(874202)")
        .execute(&mut admin)
        .await
        .expect("unlock");
    admin.close().await.ok();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options_for(&name))
        .await
        .expect("connect test database");
    (name, pool)
}

pub fn test_keyring() -> Keyring {
    Keyring::new(&[("test1".into(), vec![11u8; 32])], "test1", vec![22u8; 32])
        .expect("valid test keys")
}

/// Writes a key file with the keys of [`test_keyring`] and the test secrets,
/// for tests that start `outbound serve` processes and mint their tokens.
pub fn write_test_key_file(path: &std::path::Path) {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;

    let key_file = outbound_persistence::keys::KeyFile {
        data_keys: [("test1".to_owned(), BASE64.encode([11u8; 32]))]
            .into_iter()
            .collect(),
        active_data_key: "test1".into(),
        blind_index_key: BASE64.encode([22u8; 32]),
        voice_platform_secret: Some(BASE64.encode(VOICE_SECRET)),
        jwt_hs256_secret: Some(BASE64.encode(JWT_SECRET)),
    };
    key_file.write_new(path).expect("write the key file");
}

/// Returns the URL of `database` on the test PostgreSQL server.
pub fn database_url(database: &str) -> String {
    let base = server_url();
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL names a database");
    format!("{server}/{database}")
}

/// Returns the first instant from now on when a mobile anywhere in Australia
/// may receive a telemarketing call, as the demo's clock does.
pub fn first_calling_minute() -> chrono::DateTime<chrono::Utc> {
    use outbound_domain::eligibility::{CampaignRules, Rules};
    use outbound_domain::hours::CallType;
    use outbound_domain::zone::ANYWHERE;

    let now = chrono::Utc::now();
    Rules::default()
        .next_open(
            &ANYWHERE,
            &CampaignRules::defaults(CallType::Telemarketing),
            now,
        )
        .unwrap_or(now)
}

/// How a test server runs.
#[derive(Clone)]
pub struct Options {
    pub dispatcher: bool,
    pub clock: Clock,
    pub voice_platform_url: Option<String>,
    pub voice_secret: Option<Vec<u8>>,
    pub limits: ImportLimits,
    /// Requests a second and burst per caller; `None` turns limits off.
    pub rate_limits: Option<(u32, u32)>,
    /// Time allowed for one call request to the voice platform.
    pub handover_timeout: std::time::Duration,
    /// Clock seconds after which an open attempt becomes `unknown`.
    pub result_timeout_seconds: i64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            dispatcher: false,
            clock: Clock::System,
            voice_platform_url: None,
            voice_secret: Some(VOICE_SECRET.to_vec()),
            limits: ImportLimits::default(),
            rate_limits: None,
            handover_timeout: std::time::Duration::from_secs(5),
            result_timeout_seconds: 900,
        }
    }
}

/// A tenant: a partner with one assigned client and a project.
#[derive(Debug, Clone, Copy)]
pub struct Tenant {
    pub partner: Uuid,
    pub client: Uuid,
    pub project: Uuid,
}

#[allow(dead_code)]
pub struct TestApp {
    pub base: String,
    pub pool: PgPool,
    pub database: String,
    pub http: reqwest::Client,
    pub tenant: Tenant,
    server: Option<RunningServer>,
}

#[allow(dead_code)]
impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        let (database, pool) = fresh_database().await;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("local address");
        // The check `outbound serve` runs before it listens: it records the
        // test keys' fingerprints, which readiness compares.
        let keyring = test_keyring();
        outbound_persistence::key_check::verify_and_record(&pool, &keyring)
            .await
            .expect("the test keys match the fresh database");
        let state = AppState {
            event_batcher: outbound_http::event_batch::EventBatcher::start(pool.clone()),
            pool: pool.clone(),
            keyring: Arc::new(keyring),
            authenticator: Arc::new(Authenticator::hs256(JWT_SECRET, ISSUER, AUDIENCE)),
            clock: options.clock.clone(),
            voice: VoiceSettings {
                platform_url: options.voice_platform_url.clone(),
                public_url: format!("http://{address}"),
                secret: options
                    .voice_secret
                    .clone()
                    .map(|s| Arc::new(zeroize::Zeroizing::new(s))),
                result_timeout_seconds: options.result_timeout_seconds,
                handover_timeout: options.handover_timeout,
            },
            limits: options.limits,
            import_jobs: Arc::default(),
            http: reqwest::Client::new(),
            rate_limits: options.rate_limits.map(|(rate, burst)| {
                Arc::new(outbound_http::rate_limit::RateLimits::new(rate, burst))
            }),
        };
        let server = start(state, listener, options.dispatcher).expect("server starts");
        let tenant = create_tenant(&pool, "Test Partner").await;
        Self {
            base: format!("http://{address}"),
            pool,
            database,
            http: reqwest::Client::new(),
            tenant,
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A token for the home tenant with `role`.
    pub fn token(&self, role: &str) -> String {
        token_for(role, Some(self.tenant.partner), &[self.tenant.client], 60)
    }

    pub fn admin(&self) -> String {
        self.token("partner_admin")
    }

    /// Creates a campaign with valid defaults merged with `overrides`; returns its id.
    pub async fn create_campaign(&self, overrides: serde_json::Value) -> String {
        let mut body = valid_campaign(self.tenant.project);
        if let (Some(target), serde_json::Value::Object(extra)) = (body.as_object_mut(), overrides)
        {
            target.extend(extra);
        }
        let response = self
            .http
            .post(self.url("/v1/campaigns"))
            .bearer_auth(self.admin())
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201, "campaign should be created");
        let body: serde_json::Value = response.json().await.expect("json");
        body["id"].as_str().expect("id").to_owned()
    }

    pub async fn import_csv(&self, campaign: &str, csv: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(self.url(&format!("/v1/campaigns/{campaign}/imports")))
            .bearer_auth(self.admin())
            .header("Content-Type", "text/csv")
            .body(csv.to_owned())
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Stops the server and drops the database.
    pub async fn finish(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        self.pool.close().await;
        drop_database(&self.database).await;
    }
}

/// Drops a test database, ending its sessions.
pub async fn drop_database(name: &str) {
    if let Ok(mut admin) = options_for("postgres").connect().await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

pub async fn create_tenant(pool: &PgPool, name: &str) -> Tenant {
    let partner = tenancy::create_partner(pool, name).await.expect("partner");
    let client = tenancy::create_client(pool, &format!("{name} client"))
        .await
        .expect("client");
    tenancy::assign_client(pool, partner, client)
        .await
        .expect("assign");
    let project = tenancy::create_project(pool, client, &format!("{name} project"))
        .await
        .expect("project");
    Tenant {
        partner,
        client,
        project,
    }
}

pub fn token_for(role: &str, partner: Option<Uuid>, clients: &[Uuid], ttl_minutes: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: format!("test-{role}"),
        role: role.to_owned(),
        partner_id: partner,
        client_ids: clients.to_vec(),
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        exp: now + ttl_minutes * 60,
        nbf: now - 60,
        iat: now - 60,
    };
    mint_hs256(JWT_SECRET, &claims).expect("token")
}

/// A telemarketing campaign body that passes every settings check.
pub fn valid_campaign(project: Uuid) -> serde_json::Value {
    serde_json::json!({
        "project_id": project,
        "name": "Test campaign",
        "call_type": "telemarketing",
        "personalisation_keys": ["first_name"],
        "capacity": 5,
        "caller_id": "1300 975 707",
        "organisation": "Example Outreach Pty Ltd",
        "on_behalf_of": "Example Energy Co",
        "purpose": "an offer on a new electricity plan",
        "contact_for_questions": "questions@example.com.au",
    })
}
