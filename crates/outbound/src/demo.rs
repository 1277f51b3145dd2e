//! `outbound demo`: the whole workflow over HTTP against a real server,
//! PostgreSQL and the simulated voice platform.
//!
//! The dispatcher's clock starts at the next minute when a mobile anywhere in
//! Australia may receive a telemarketing call, runs faster than real time, and
//! skips idle hours, so a demo at night still places calls.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use outbound_domain::eligibility::{CampaignRules, Rules};
use outbound_domain::hours::CallType;
use outbound_domain::zone::ANYWHERE;
use outbound_http::clock::Clock;
use outbound_persistence::keys::Secrets;
use outbound_persistence::{db, tenancy};
use serde_json::{json, Value};

use crate::runtime::{
    self, prepare_database, DatabaseArgs, KeyArgs, ServeArgs, DEFAULT_AUDIENCE, DEFAULT_ISSUER,
};

#[derive(Args)]
pub struct DemoArgs {
    /// The contact CSV file to import.
    #[arg(long, default_value = "examples/contacts-au-demo.csv")]
    pub csv: PathBuf,
    /// The DNCR wash result file (`number,result`) to attach.
    #[arg(long)]
    pub wash: Option<PathBuf>,
    /// Write the final report as JSON to this file.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// How many times faster than real time the dispatcher's clock runs.
    #[arg(long, default_value_t = 120.0)]
    pub speed: f64,
    /// Concurrent calls for the demo campaign.
    #[arg(long, default_value_t = 50)]
    pub capacity: i32,
    /// Use a running server at this URL instead of starting one (it must use
    /// the same key file and database).
    #[arg(long)]
    pub server: Option<String>,
    /// Use a running voice platform at this URL instead of starting the simulator.
    #[arg(long)]
    pub voice_platform: Option<String>,
    /// Give up waiting for the campaign to complete after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout_seconds: u64,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// A minimal API client for the demo.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        expected: &[u16],
    ) -> anyhow::Result<Value> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .context("the API request failed")?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !expected.contains(&status) {
            bail!(
                "the API responded {status}: {}",
                body.get("detail")
                    .and_then(Value::as_str)
                    .unwrap_or("(no detail)")
            );
        }
        Ok(body)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)), &[200])
            .await
    }

    async fn post_json(&self, path: &str, body: &Value, expected: &[u16]) -> anyhow::Result<Value> {
        self.send(
            self.http.post(format!("{}{path}", self.base)).json(body),
            expected,
        )
        .await
    }

    async fn post_csv(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<Value> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "text/csv")
            .body(bytes);
        self.send(request, &[201]).await
    }
}

/// The first instant at or after `now` when a mobile with no known location
/// may receive a telemarketing call under the default rules.
fn first_calling_minute(now: DateTime<Utc>) -> DateTime<Utc> {
    let rules = CampaignRules::defaults(CallType::Telemarketing);
    Rules::default()
        .next_open(&ANYWHERE, &rules, now)
        .unwrap_or(now)
}

fn print_counts(title: &str, counts: Option<&Value>) {
    let Some(Value::Object(map)) = counts else {
        return;
    };
    if map.is_empty() {
        return;
    }
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  {title}: {}", parts.join(", "));
}

/// Returns the default server's URL with a database of the demo's own,
/// named after the blind-index key's public fingerprint. Each key file gets
/// its own database, so a demo run from a new clone, which generates new
/// development keys, never meets contacts sealed under other keys.
fn demo_database_url(secrets: &Secrets) -> String {
    let fingerprint = secrets.keyring.blind_index_fingerprint();
    let suffix: String = fingerprint[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let base = db::DEFAULT_DATABASE_URL
        .rsplit_once('/')
        .map_or(db::DEFAULT_DATABASE_URL, |(server, _)| server);
    format!("{base}/outbound_demo_{suffix}")
}

/// Returns the database name at the end of a PostgreSQL URL, without
/// credentials or parameters.
fn database_name(url: &str) -> &str {
    let path = url.rsplit_once('/').map_or(url, |(_, name)| name);
    path.split('?').next().unwrap_or(path)
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    runtime::init_logging("warn");
    let csv = std::fs::read(&args.csv)
        .with_context(|| format!("cannot read the contact file {}", args.csv.display()))?;
    let wash = match &args.wash {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read the wash file {}", path.display()))?,
        ),
        None => None,
    };

    println!("Outbound demo");
    let key_file = args
        .keys
        .key_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(runtime::DEV_KEY_FILE));
    let secrets = runtime::load_secrets(Some(&key_file), true)?;
    let mut args = args;
    if args.server.is_none() && args.database.database_url == db::DEFAULT_DATABASE_URL {
        args.database.database_url = demo_database_url(&secrets);
    }
    let pool = prepare_database(&args.database.database_url).await?;
    println!(
        "- database {} ready (migrated)",
        database_name(&args.database.database_url)
    );
    runtime::check_keys(&pool, &secrets).await?;
    let jwt_secret = secrets
        .jwt_hs256_secret
        .as_ref()
        .context("the key file has no jwt_hs256_secret")?
        .to_vec();
    let voice_secret = secrets
        .voice_platform_secret
        .as_ref()
        .context("the key file has no voice_platform_secret")?
        .to_vec();

    let partner = tenancy::create_partner(&pool, "Demo Partner").await?;
    let client = tenancy::create_client(&pool, "Demo Client").await?;
    tenancy::assign_client(&pool, partner, client).await?;
    let project = tenancy::create_project(&pool, client, "Demo project").await?;
    println!("- operator bootstrap: partner {partner}, client {client}, project {project}");
    let token = crate::operator::mint(
        &jwt_secret,
        "partner_admin",
        Some(partner),
        &[client],
        "demo",
        120,
        DEFAULT_ISSUER,
        DEFAULT_AUDIENCE,
    )?;

    let mut simulator = None;
    let voice_url = match &args.voice_platform {
        Some(url) => url.clone(),
        None => {
            let config = outbound_http::simulator::SimulatorConfig {
                secret: Arc::new(voice_secret.clone()),
                call_duration_ms: (150, 900),
                failure_rate: 0.0,
            };
            let (address, handle) =
                outbound_http::server::start_simulator(config, TcpListener::bind("127.0.0.1:0")?)?;
            simulator = Some(handle);
            println!("- simulated voice platform on http://{address}");
            format!("http://{address}")
        }
    };

    let mut server = None;
    let base = match &args.server {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let start = first_calling_minute(Utc::now());
            let clock = Clock::accelerated(start, args.speed);
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let address = listener.local_addr()?;
            let serve = ServeArgs {
                listen: address.to_string(),
                dev: true,
                database: args.database.clone(),
                keys: KeyArgs {
                    key_file: Some(key_file.clone()),
                },
                public_url: None,
                voice_platform_url: Some(voice_url.clone()),
                jwt_public_key_file: None,
                jwt_algorithm: "EdDSA".into(),
                jwt_issuer: DEFAULT_ISSUER.into(),
                jwt_audience: DEFAULT_AUDIENCE.into(),
                result_timeout_seconds: 900,
                max_upload_bytes: outbound_http::state::ImportLimits::default().max_bytes,
                max_import_rows: outbound_http::state::ImportLimits::default().max_rows,
                async_import_bytes: outbound_http::state::ImportLimits::default().async_bytes,
                max_import_field_bytes: outbound_http::state::ImportLimits::default()
                    .max_field_bytes,
                max_import_jobs: outbound_http::state::ImportLimits::default().max_jobs,
                upload_idle_seconds: outbound_http::state::ImportLimits::default()
                    .idle_timeout
                    .as_secs(),
                no_dispatcher: false,
                rate_limit_per_second: 0,
                rate_limit_burst: 0,
                handover_timeout_ms: 5_000,
                database_connections: runtime::DEFAULT_DATABASE_CONNECTIONS,
                address_file: None,
                clock_start: None,
                clock_speed: 1.0,
            };
            let secrets = runtime::load_secrets(Some(&key_file), true)?;
            let state = runtime::app_state(
                &serve,
                pool.clone(),
                secrets,
                clock,
                format!("http://{address}"),
            )?;
            server = Some(outbound_http::server::start(state, listener, true)?);
            let sydney = start.with_timezone(&chrono_tz::Australia::Sydney);
            println!("- API server on http://{address} with the dispatcher");
            println!(
                "- demo clock: the dispatcher's clock starts at {} (Sydney), inside telemarketing hours for every Australian zone, runs {}x faster than real time and skips idle hours",
                sydney.format("%a %d %b %Y %H:%M %Z"),
                args.speed
            );
            format!("http://{address}")
        }
    };
    let api = Api {
        http: reqwest::Client::new(),
        base: base.clone(),
        token,
    };

    let start_date = first_calling_minute(Utc::now())
        .with_timezone(&chrono_tz::Australia::Sydney)
        .date_naive();
    let campaign = api
        .post_json(
            "/v1/campaigns",
            &json!({
                "project_id": project,
                "name": "Demo: energy plan offer",
                "call_type": "telemarketing",
                "start_date": start_date,
                "end_date": start_date + chrono::Days::new(21),
                "personalisation_keys": ["first_name"],
                "capacity": args.capacity,
                "default_max_attempts": 3,
                "caller_id": "1300 975 707",
                "organisation": "Example Outreach Pty Ltd",
                "on_behalf_of": "Example Energy Co",
                "purpose": "an offer on a new electricity plan",
                "contact_for_questions": "questions@example.com.au",
            }),
            &[201],
        )
        .await?;
    let campaign_id = campaign["id"]
        .as_str()
        .context("campaign id missing")?
        .to_owned();
    println!(
        "\n1. Created campaign {campaign_id} (telemarketing, state {})",
        campaign["state"]
    );

    let import = api
        .post_csv(&format!("/v1/campaigns/{campaign_id}/imports"), csv)
        .await?;
    println!(
        "2. Imported {}: {} rows, {} accepted, {} rejected, {} with warnings",
        args.csv.display(),
        import["rows_total"],
        import["rows_accepted"],
        import["rows_rejected"],
        import["rows_with_warnings"]
    );
    for error in import["errors"].as_array().into_iter().flatten() {
        println!(
            "   row {:>4} (line {:>4}) {:<20} {:<28} {}",
            error["row"],
            error["line"],
            error["column"].as_str().unwrap_or(""),
            error["code"].as_str().unwrap_or(""),
            error["message"].as_str().unwrap_or("")
        );
    }
    let mut warning_codes: BTreeMap<String, u64> = BTreeMap::new();
    for warning in import["warnings"].as_array().into_iter().flatten() {
        *warning_codes
            .entry(warning["code"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    if !warning_codes.is_empty() {
        println!("   warnings: {warning_codes:?}");
    }

    let mut wash_result = Value::Null;
    if let Some(bytes) = wash {
        wash_result = api.post_csv(&format!("/v1/campaigns/{campaign_id}/wash-results?wash_reference=DEMO-WASH-1&account=DEMO-ACCOUNT"), bytes).await?;
        println!(
            "3. Attached wash result: {} rows ({} registered, {} not registered, {} invalid), {} contacts matched, {} numbers unmatched, {} rows rejected; digest {}",
            wash_result["rows_total"], wash_result["registered"], wash_result["not_registered"], wash_result["invalid"],
            wash_result["contacts_matched"], wash_result["numbers_unmatched"], wash_result["rows_rejected"],
            wash_result["file_sha256"].as_str().unwrap_or("")
        );
    } else {
        println!(
            "3. No wash result file given (--wash); contacts rely on registry columns in the CSV"
        );
    }

    let report = api
        .post_json(
            &format!("/v1/campaigns/{campaign_id}/validation"),
            &json!({}),
            &[200],
        )
        .await?;
    println!("4. Validation: ready = {}", report["ready"]);
    let mut reasons = Vec::new();
    for check in report["checks"].as_array().into_iter().flatten() {
        println!(
            "   {:<18} {:<8} {} (affects {})",
            check["name"].as_str().unwrap_or(""),
            check["status"].as_str().unwrap_or(""),
            check["message"].as_str().unwrap_or(""),
            check["affected_contacts"]
        );
        if check["status"] == "blocker" {
            if let Some(Value::Object(map)) = check.get("reasons") {
                reasons.extend(map.keys().cloned());
            }
        }
    }

    let mut exclusions = Value::Null;
    if !reasons.is_empty() {
        exclusions = api
            .post_json(
                &format!("/v1/campaigns/{campaign_id}/exclusions"),
                &json!({ "reasons": reasons }),
                &[200],
            )
            .await?;
        println!(
            "5. Excluded {} contacts that block validation: {}",
            exclusions["excluded"], exclusions["by_reason"]
        );
        let again = api
            .post_json(
                &format!("/v1/campaigns/{campaign_id}/validation"),
                &json!({}),
                &[200],
            )
            .await?;
        println!("   revalidated: ready = {}", again["ready"]);
    } else {
        println!("5. Nothing to exclude");
    }

    let launched = api
        .post_json(
            &format!("/v1/campaigns/{campaign_id}/launch"),
            &json!({}),
            &[200],
        )
        .await?;
    println!("6. Launched: state {}", launched["state"]);

    let started = Instant::now();
    let mut last_line = String::new();
    let final_report = loop {
        let report = api
            .get(&format!("/v1/campaigns/{campaign_id}/report"))
            .await?;
        let state = report["state"].as_str().unwrap_or("").to_owned();
        let line = format!(
            "   clock {} | attempts {} | contacts {}",
            report["as_of"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t
                    .with_timezone(&chrono_tz::Australia::Sydney)
                    .format("%a %H:%M")
                    .to_string())
                .unwrap_or_default(),
            report["attempts_made"],
            report["contacts_by_state"]
        );
        if line != last_line {
            println!("{line}");
            last_line = line;
        }
        if state == "completed" || state == "cancelled" {
            break report;
        }
        if started.elapsed() > Duration::from_secs(args.timeout_seconds) {
            bail!(
                "the campaign did not complete within {} seconds",
                args.timeout_seconds
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    println!(
        "\n7. Final report: campaign {} is {}",
        campaign_id, final_report["state"]
    );
    println!("  contacts: {}", final_report["contacts_total"]);
    print_counts("by state", final_report.get("contacts_by_state"));
    print_counts("why finished", final_report.get("contacts_by_final_reason"));
    print_counts("last outcome", final_report.get("contacts_by_last_outcome"));
    print_counts("excluded", final_report.get("excluded_by_reason"));
    print_counts("registry results", final_report.get("registry_results"));
    println!("  attempts made: {}", final_report["attempts_made"]);
    print_counts(
        "attempts by outcome",
        final_report.get("attempts_by_outcome"),
    );
    println!(
        "  suppressed numbers: {}",
        final_report["suppressed_contacts"]
    );
    for entry in final_report["timeline"].as_array().into_iter().flatten() {
        println!(
            "  {} {} -> {} by {}",
            entry["at"].as_str().unwrap_or(""),
            entry["from_state"].as_str().unwrap_or("-"),
            entry["to_state"].as_str().unwrap_or("-"),
            entry["actor"].as_str().unwrap_or("")
        );
    }

    if let Some(path) = &args.report_json {
        let mut document = final_report.clone();
        if let Value::Object(map) = &mut document {
            map.insert("import".into(), import.clone());
            map.insert("wash".into(), wash_result.clone());
            map.insert("exclusions".into(), exclusions.clone());
        }
        std::fs::write(path, serde_json::to_string_pretty(&document)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("\nwrote the final report to {}", path.display());
    }

    if let Some(server) = server {
        server.stop().await;
    }
    if let Some(simulator) = simulator {
        simulator.stop(true).await;
    }
    Ok(())
}
