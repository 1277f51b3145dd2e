//! `outbound bench dispatch`: hand-overs per second of the dispatcher and
//! signed webhook events per second, measured against real server processes
//! of this binary, PostgreSQL and the simulated voice platform on loopback.
//!
//! The benchmark works in its own fresh database, which it drops at the end.
//! Its contacts are synthetic: numbers from ACMA's ranges for fictitious use,
//! stored only in that database.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use outbound_domain::eligibility::{CampaignRules, Rules};
use outbound_domain::hours::CallType;
use outbound_domain::retry::Outcome;
use outbound_domain::zone::ANYWHERE;
use outbound_http::signing::{sign, SIGNATURE_HEADER};
use outbound_http::simulator::{Faults, SimulatorConfig, SimulatorState};
use outbound_http::voice::{CallEvent, CallEventType};
use outbound_persistence::keys::KeyFile;
use outbound_persistence::tenancy;
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use uuid::Uuid;

use crate::runtime::{
    self, DatabaseArgs, DEFAULT_AUDIENCE, DEFAULT_DATABASE_CONNECTIONS, DEFAULT_ISSUER,
};

/// Concurrent calls of the benchmark campaign.
const CAPACITY: i64 = 500;
/// Fictitious numbers available: 9,000 mobiles (0491 571 000 to 0491 579 999)
/// and 80,000 landlines (5550 xxxx and 7010 xxxx in areas 02, 03, 07 and 08).
const MAX_CONTACTS: usize = 89_000;
/// Upper bound of every wait for the servers or the database.
const WAIT: Duration = Duration::from_secs(120);

#[derive(Args)]
pub struct DispatchBenchArgs {
    /// Server processes of this binary that dispatch the campaign, 1 to 3.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub processes: u8,
    /// Synthetic contacts in the campaign (at most 89,000). They must last
    /// through the warm-up, the hand-over window and the webhook calls.
    #[arg(long, default_value_t = 50_000)]
    pub contacts: usize,
    /// Seconds of dispatching before the hand-over window opens.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_seconds: f64,
    /// Length of the hand-over window, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Calls whose events the webhook load generator posts, three events each.
    #[arg(long, default_value_t = 10_000)]
    pub webhook_calls: usize,
    /// Concurrent connections of the webhook load generator.
    #[arg(long, default_value_t = 64)]
    pub webhook_connections: usize,
    /// PostgreSQL connections per server process.
    #[arg(long, default_value_t = DEFAULT_DATABASE_CONNECTIONS)]
    pub database_connections: u32,
    /// Keep the benchmark database and the server logs for inspection.
    #[arg(long)]
    pub keep: bool,
    /// PostgreSQL server to use; the benchmark creates its own database on it.
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Runs the benchmark on the current Tokio runtime, from a synchronous caller.
pub fn run(args: DispatchBenchArgs) -> anyhow::Result<()> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(run_async(args)))
}

async fn run_async(args: DispatchBenchArgs) -> anyhow::Result<()> {
    validate(&args)?;
    runtime::init_logging("warn");
    let rig = Rig::start(&args).await?;
    let result = measure(&rig, &args).await;
    rig.stop(args.keep).await;
    let figures = result?;

    println!(
        "  {:.0} hand-overs/s with {} server process(es), capacity {CAPACITY}",
        figures.handovers_per_sec, args.processes
    );
    println!(
        "  {:.0} webhook events/s from {} connections",
        figures.webhook_events_per_sec, args.webhook_connections
    );
    let summary = json!({
        "handovers_per_sec": figures.handovers_per_sec.round(),
        "webhook_events_per_sec": figures.webhook_events_per_sec.round(),
        "processes": args.processes,
        "capacity": CAPACITY,
        "handover_window_seconds": args.seconds,
        "webhook_events": figures.webhook_events,
        "webhook_connections": args.webhook_connections,
    });
    println!("{summary}");
    Ok(())
}

fn validate(args: &DispatchBenchArgs) -> anyhow::Result<()> {
    ensure!(
        args.contacts >= 1_000 && args.contacts <= MAX_CONTACTS,
        "--contacts must be from 1000 to {MAX_CONTACTS} (the fictitious numbers available), got {}",
        args.contacts
    );
    ensure!(
        args.warmup_seconds >= 0.0 && args.warmup_seconds <= 600.0,
        "--warmup-seconds must be from 0 to 600, got {}",
        args.warmup_seconds
    );
    ensure!(
        args.seconds > 0.0 && args.seconds <= 600.0,
        "--seconds must be above 0 and at most 600, got {}",
        args.seconds
    );
    ensure!(
        args.webhook_calls >= 100 && args.webhook_calls < args.contacts,
        "--webhook-calls must be at least 100 and below --contacts, got {}",
        args.webhook_calls
    );
    ensure!(
        (1..=1_024).contains(&args.webhook_connections),
        "--webhook-connections must be from 1 to 1024, got {}",
        args.webhook_connections
    );
    ensure!(
        args.database_connections > 0,
        "--database-connections must be at least 1"
    );
    Ok(())
}

/// Returns the `index`-th fictitious number: mobiles first, then landlines.
fn fictitious_number(index: usize) -> String {
    if index < 9_000 {
        return format!("0491 57{} {:03}", 1 + index / 1_000, index % 1_000);
    }
    let landline = index - 9_000;
    let area = ["02", "03", "07", "08"][landline / 20_000];
    let exchange = if landline % 20_000 < 10_000 {
        "5550"
    } else {
        "7010"
    };
    format!("{area} {exchange} {:04}", landline % 10_000)
}

/// Returns the first minute when a mobile anywhere in Australia may receive a
/// telemarketing call. The servers' clocks start there, so calling hours allow
/// every contact whenever the benchmark runs.
fn first_calling_minute() -> DateTime<Utc> {
    Rules::default()
        .next_open(
            &ANYWHERE,
            &CampaignRules::defaults(CallType::Telemarketing),
            Utc::now(),
        )
        .unwrap_or_else(Utc::now)
}

// ---------------------------------------------------------------------------
// Database, platform and servers
// ---------------------------------------------------------------------------

struct Rig {
    pool: PgPool,
    database: String,
    server_options: PgConnectOptions,
    work: PathBuf,
    servers: Vec<Child>,
    bases: Vec<String>,
    simulator: actix_web::web::Data<SimulatorState>,
    simulator_handle: actix_web::dev::ServerHandle,
    voice_secret: Vec<u8>,
    token: String,
    project: Uuid,
    clock_start: DateTime<Utc>,
    http: reqwest::Client,
}

impl Rig {
    async fn start(args: &DispatchBenchArgs) -> anyhow::Result<Self> {
        let server_options: PgConnectOptions = args
            .database
            .database_url
            .parse()
            .context("--database-url is not a valid PostgreSQL URL")?;
        let database = format!("outbound_bench_dispatch_{}", Uuid::new_v4().simple());
        let database_url = server_options
            .clone()
            .database(&database)
            .to_url_lossy()
            .to_string();
        let pool = runtime::prepare_database_with(&database_url, 5).await?;
        let work = std::env::temp_dir().join(&database);
        std::fs::create_dir_all(&work)
            .with_context(|| format!("cannot create {}", work.display()))?;
        let key_path = work.join("keys.json");
        KeyFile::generate().write_new(&key_path).with_context(|| {
            format!("cannot write the benchmark key file {}", key_path.display())
        })?;
        let secrets = runtime::load_secrets(Some(&key_path), true)?;
        let voice_secret = secrets
            .voice_platform_secret
            .as_ref()
            .context("the key file has no voice platform secret")?
            .to_vec();
        let jwt_secret = secrets
            .jwt_hs256_secret
            .as_ref()
            .context("the key file has no JWT secret")?
            .to_vec();

        let partner = tenancy::create_partner(&pool, "Benchmark Partner").await?;
        let client = tenancy::create_client(&pool, "Benchmark Client").await?;
        tenancy::assign_client(&pool, partner, client).await?;
        let project = tenancy::create_project(&pool, client, "Benchmark project").await?;
        let token = crate::operator::mint(
            &jwt_secret,
            "partner_admin",
            Some(partner),
            &[client],
            "bench",
            120,
            DEFAULT_ISSUER,
            DEFAULT_AUDIENCE,
        )?;

        // Instant responses: every call request is accepted at once and its
        // call ends at once, reported by its `ended` event alone (plus
        // `opt_out` for the calls that opt out).
        let config = SimulatorConfig {
            secret: Arc::new(voice_secret.clone()),
            call_duration_ms: (0, 0),
            failure_rate: 0.0,
        };
        let faults = Faults {
            results_only: true,
            ..Faults::default()
        };
        let (address, simulator_handle, simulator) = outbound_http::server::start_simulator_with(
            config,
            faults,
            TcpListener::bind("127.0.0.1:0")?,
        )?;

        let clock_start = first_calling_minute();
        let mut rig = Rig {
            pool,
            database,
            server_options,
            work,
            servers: Vec::new(),
            bases: Vec::new(),
            simulator,
            simulator_handle,
            voice_secret,
            token,
            project,
            clock_start,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(args.webhook_connections)
                .build()?,
        };
        if let Err(error) = rig
            .start_servers(args, &database_url, &key_path, &format!("http://{address}"))
            .await
        {
            rig.stop(true).await;
            return Err(error);
        }
        Ok(rig)
    }

    async fn start_servers(
        &mut self,
        args: &DispatchBenchArgs,
        database_url: &str,
        key_path: &Path,
        platform: &str,
    ) -> anyhow::Result<()> {
        let binary = std::env::current_exe().context("cannot find this program's path")?;
        let mut address_files = Vec::new();
        for index in 0..args.processes {
            let address_file = self.work.join(format!("server-{index}.address"));
            let log_path = self.work.join(format!("server-{index}.log"));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("cannot create {}", log_path.display()))?;
            let child = Command::new(&binary)
                .arg("serve")
                .arg("--dev")
                .arg("--key-file")
                .arg(key_path)
                .args(["--listen", "127.0.0.1:0"])
                .arg("--address-file")
                .arg(&address_file)
                .args(["--voice-platform-url", platform])
                .args(["--rate-limit-per-second", "0"])
                .args([
                    "--database-connections",
                    &args.database_connections.to_string(),
                ])
                .args([
                    "--clock-start",
                    &self.clock_start.to_rfc3339(),
                    "--clock-speed",
                    "1",
                ])
                .env("DATABASE_URL", database_url)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("cannot start a server process")?;
            self.servers.push(child);
            address_files.push(address_file);
        }
        let deadline = Instant::now() + WAIT;
        for (index, address_file) in address_files.iter().enumerate() {
            let base = loop {
                if let Ok(address) = std::fs::read_to_string(address_file) {
                    break format!("http://{}", address.trim());
                }
                if let Some(status) = self.servers[index].try_wait()? {
                    bail!(
                        "server {index} exited with {status}; see {}",
                        self.work.join(format!("server-{index}.log")).display()
                    );
                }
                ensure!(
                    Instant::now() < deadline,
                    "server {index} did not start within {WAIT:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            loop {
                let ready = self
                    .http
                    .get(format!("{base}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if ready {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "server {index} was not ready within {WAIT:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.bases.push(base);
        }
        Ok(())
    }

    async fn api(&self, request: reqwest::RequestBuilder, expected: u16) -> anyhow::Result<Value> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .context("the server did not respond")?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        ensure!(
            status == expected,
            "the server answered {status}, expected {expected}: {body}"
        );
        Ok(body)
    }

    /// Kills the servers, stops the platform and drops the database unless `keep`.
    async fn stop(mut self, keep: bool) {
        for child in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.simulator_handle.stop(false).await;
        self.pool.close().await;
        if keep {
            eprintln!(
                "kept database {} and server logs in {}",
                self.database,
                self.work.display()
            );
            return;
        }
        let admin_options = self
            .server_options
            .clone()
            .database("postgres")
            .disable_statement_logging();
        if let Ok(mut admin) = admin_options.connect().await {
            let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database);
            if let Err(error) = sqlx::query(&statement).execute(&mut admin).await {
                eprintln!(
                    "could not drop the benchmark database {}: {error}",
                    self.database
                );
            }
            let _ = admin.close().await;
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

// ---------------------------------------------------------------------------
// CPU time of the processes involved
// ---------------------------------------------------------------------------

/// CPU time used so far by the servers, this process (load generator and
/// simulated platform) and the PostgreSQL sessions of the benchmark database,
/// in nanoseconds, from `/proc/PID/schedstat`. On a system without it every
/// figure reads zero.
#[derive(Debug, Default, Clone)]
struct CpuTimes {
    servers: u64,
    this_process: u64,
    /// By backend process id, so sessions opened later count from zero.
    database: std::collections::HashMap<i32, u64>,
}

/// CPU time of every thread of process `pid`, in nanoseconds.
fn schedstat_nanos(pid: u32) -> u64 {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    threads
        .filter_map(Result::ok)
        .filter_map(|thread| std::fs::read_to_string(thread.path().join("schedstat")).ok())
        .filter_map(|text| {
            text.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

impl CpuTimes {
    async fn read(rig: &Rig) -> anyhow::Result<Self> {
        let backends: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(&rig.pool)
        .await?;
        Ok(Self {
            servers: rig
                .servers
                .iter()
                .map(|child| schedstat_nanos(child.id()))
                .sum(),
            this_process: schedstat_nanos(std::process::id()),
            database: backends
                .into_iter()
                .map(|pid| (pid, u32::try_from(pid).map_or(0, schedstat_nanos)))
                .collect(),
        })
    }

    /// Microseconds of CPU per operation since `earlier`: servers, this
    /// process and the database sessions.
    fn per_operation(&self, earlier: &CpuTimes, operations: usize) -> (f64, f64, f64) {
        let database: u64 = self
            .database
            .iter()
            .map(|(pid, now)| now.saturating_sub(earlier.database.get(pid).copied().unwrap_or(0)))
            .sum();
        let per = |nanos: u64| nanos as f64 / 1_000.0 / operations.max(1) as f64;
        (
            per(self.servers.saturating_sub(earlier.servers)),
            per(self.this_process.saturating_sub(earlier.this_process)),
            per(database),
        )
    }
}

fn print_cpu(label: &str, (servers, this_process, database): (f64, f64, f64)) {
    println!(
        "  CPU per {label}: servers {servers:.0} us, PostgreSQL sessions {database:.0} us, platform and load generator {this_process:.0} us"
    );
}

// ---------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------

struct Figures {
    handovers_per_sec: f64,
    webhook_events_per_sec: f64,
    webhook_events: usize,
}

async fn measure(rig: &Rig, args: &DispatchBenchArgs) -> anyhow::Result<Figures> {
    println!(
        "dispatch benchmark: {} server process(es), capacity {CAPACITY}, {} synthetic contacts",
        args.processes, args.contacts
    );
    let campaign = create_campaign(rig, args.contacts).await?;
    let handovers_per_sec = measure_handovers(rig, args, campaign).await?;
    let (webhook_events, webhook_events_per_sec) = measure_webhooks(rig, args, campaign).await?;
    Ok(Figures {
        handovers_per_sec,
        webhook_events_per_sec,
        webhook_events,
    })
}

/// Creates the campaign through the API and imports its contacts, washed on
/// the servers' first day.
async fn create_campaign(rig: &Rig, contacts: usize) -> anyhow::Result<Uuid> {
    let base = &rig.bases[0];
    let campaign = rig
        .api(
            rig.http.post(format!("{base}/v1/campaigns")).json(&json!({
                "project_id": rig.project,
                "name": "Benchmark campaign",
                "call_type": "telemarketing",
                "capacity": CAPACITY,
                "default_max_attempts": 3,
                "caller_id": "1300 975 707",
                "organisation": "Example Outreach Pty Ltd",
                "on_behalf_of": "Example Energy Co",
                "purpose": "an offer on a new electricity plan",
                "contact_for_questions": "questions@example.com.au",
            })),
            201,
        )
        .await?;
    let id = campaign["id"]
        .as_str()
        .context("the campaign has no id")?
        .to_owned();

    let washed_on = rig
        .clock_start
        .with_timezone(&chrono_tz::Australia::Sydney)
        .date_naive();
    let mut csv = String::with_capacity(contacts * 40);
    csv.push_str("to_number,registry_status,registry_checked_at\n");
    for index in 0..contacts {
        csv.push_str(&format!(
            "{},not_registered,{washed_on}\n",
            fictitious_number(index)
        ));
    }
    let started = Instant::now();
    let import = rig
        .api(
            rig.http
                .post(format!("{base}/v1/campaigns/{id}/imports"))
                .header("Content-Type", "text/csv")
                .body(csv),
            201,
        )
        .await?;
    ensure!(
        import["rows_accepted"].as_u64() == Some(contacts as u64),
        "the import accepted {} of {contacts} rows",
        import["rows_accepted"]
    );
    println!(
        "  imported {contacts} contacts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Uuid::parse_str(&id).context("the campaign id is not a UUID")
}

/// Launches the campaign and counts calls the platform accepted over a
/// steady window after the warm-up; pauses the campaign afterwards.
async fn measure_handovers(
    rig: &Rig,
    args: &DispatchBenchArgs,
    campaign: Uuid,
) -> anyhow::Result<f64> {
    let base = &rig.bases[0];
    rig.api(
        rig.http
            .post(format!("{base}/v1/campaigns/{campaign}/launch"))
            .json(&json!({})),
        200,
    )
    .await?;
    let deadline = Instant::now() + WAIT;
    while rig.simulator.placed_calls() == 0 {
        ensure!(
            Instant::now() < deadline,
            "no call reached the platform within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup_seconds)).await;
    let first_cpu = CpuTimes::read(rig).await?;
    let (first_count, first_at) = (rig.simulator.placed_calls(), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    let (last_count, last_at) = (rig.simulator.placed_calls(), Instant::now());
    let last_cpu = CpuTimes::read(rig).await?;
    let rate = (last_count - first_count) as f64 / (last_at - first_at).as_secs_f64();

    rig.api(
        rig.http
            .post(format!("{base}/v1/campaigns/{campaign}/pause"))
            .json(&json!({})),
        200,
    )
    .await?;
    let never_tried: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts WHERE campaign_id = $1 AND state = 'pending' AND next_attempt_at IS NULL",
    )
    .bind(campaign)
    .fetch_one(&rig.pool)
    .await?;
    ensure!(
        never_tried as usize >= args.webhook_calls,
        "contacts ran out during the hand-over window ({never_tried} left, {} needed for the webhook calls); raise --contacts",
        args.webhook_calls
    );
    println!(
        "  hand-overs: {} calls accepted by the platform in {:.2} s after a {:.1} s warm-up",
        last_count - first_count,
        (last_at - first_at).as_secs_f64(),
        args.warmup_seconds
    );
    print_cpu(
        "hand-over",
        last_cpu.per_operation(&first_cpu, last_count - first_count),
    );
    Ok(rate)
}

/// Opens `webhook_calls` attempts as handed over, then posts the events of an
/// answered call for each (`started`, `answered`, `ended`) from many
/// connections, each connection posting one call's events in order.
async fn measure_webhooks(
    rig: &Rig,
    args: &DispatchBenchArgs,
    campaign: Uuid,
) -> anyhow::Result<(usize, f64)> {
    let preparing = Instant::now();
    wait_for_no_open_attempts(rig, campaign).await?;
    let drained = preparing.elapsed();
    let attempt_ids = open_fixture_attempts(rig, campaign, args.webhook_calls).await?;
    println!(
        "  webhooks: calls drained {:.1} s after the pause; {} attempts opened for the events in {:.1} s",
        drained.as_secs_f64(),
        attempt_ids.len(),
        (preparing.elapsed() - drained).as_secs_f64()
    );
    let signed_at = Utc::now().timestamp();
    let calls: Vec<Vec<(Vec<u8>, String)>> = attempt_ids
        .iter()
        .map(|attempt_id| {
            call_events(*attempt_id)
                .into_iter()
                .map(|event| {
                    let body = serde_json::to_vec(&event).expect("a call event serialises");
                    let signature = sign(&rig.voice_secret, signed_at, &body);
                    (body, signature)
                })
                .collect()
        })
        .collect();
    let events: usize = calls.iter().map(Vec::len).sum();
    let calls = Arc::new(calls);
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{}/v1/voice/events", rig.bases[0]);

    let first_cpu = CpuTimes::read(rig).await?;
    let started = Instant::now();
    let mut workers = Vec::with_capacity(args.webhook_connections);
    for _ in 0..args.webhook_connections {
        let (calls, next, url, http) = (calls.clone(), next.clone(), url.clone(), rig.http.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = 0usize;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(call) = calls.get(index) else {
                    return failures;
                };
                for (body, signature) in call {
                    let response = http
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .header(SIGNATURE_HEADER, signature)
                        .body(body.clone())
                        .send()
                        .await;
                    if !response.is_ok_and(|r| r.status().is_success()) {
                        failures += 1;
                    }
                }
            }
        }));
    }
    let mut failures = 0;
    for worker in workers {
        failures += worker.await.context("a load generator task failed")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let last_cpu = CpuTimes::read(rig).await?;
    ensure!(
        failures == 0,
        "{failures} of {events} webhook events were not acknowledged with 2xx"
    );
    let ended: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts WHERE id = ANY($1) AND state = 'ended' AND outcome = 'answered'")
        .bind(&attempt_ids)
        .fetch_one(&rig.pool)
        .await?;
    ensure!(
        ended as usize == attempt_ids.len(),
        "{ended} of {} attempts were recorded as answered",
        attempt_ids.len()
    );
    println!(
        "  webhooks: {events} signed events for {} calls in {seconds:.2} s from {} connections, all recorded",
        attempt_ids.len(),
        args.webhook_connections
    );
    print_cpu("webhook event", last_cpu.per_operation(&first_cpu, events));
    Ok((events, events as f64 / seconds))
}

/// The events of one answered call, as the platform sends them.
fn call_events(attempt_id: Uuid) -> Vec<CallEvent> {
    let call_id = format!("bench-{attempt_id}");
    let event = |event_type: CallEventType| CallEvent {
        event_id: Uuid::new_v4().to_string(),
        attempt_id,
        call_id: Some(call_id.clone()),
        event_type,
        outcome: None,
        end_reason: None,
        duration_seconds: None,
        summary: None,
        occurred_at: Utc::now(),
    };
    let mut ended = event(CallEventType::Ended);
    ended.outcome = Some(Outcome::Answered);
    ended.end_reason = Some("completed".into());
    ended.duration_seconds = Some(95);
    ended.summary = Some("Recipient confirmed the appointment time.".into());
    vec![
        event(CallEventType::Started),
        event(CallEventType::Answered),
        ended,
    ]
}

async fn wait_for_no_open_attempts(rig: &Rig, campaign: Uuid) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state IN ('handing_over', 'handed_over', 'connected')",
        )
        .bind(campaign)
        .fetch_one(&rig.pool)
        .await?;
        if open == 0 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{open} calls were still open {WAIT:?} after the pause"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens attempts in `handed_over` for `count` contacts never called of the
/// paused campaign, as if the dispatcher had handed them over just before the
/// pause. Returns their ids.
async fn open_fixture_attempts(
    rig: &Rig,
    campaign: Uuid,
    count: usize,
) -> anyhow::Result<Vec<Uuid>> {
    // The servers' clock reads about the latest attempt's start, so these
    // attempts are not taken for lost results during the measurement.
    let clock: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT max(started_at) FROM attempts WHERE campaign_id = $1")
            .bind(campaign)
            .fetch_one(&rig.pool)
            .await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "WITH picked AS (
            SELECT id FROM contacts
             WHERE campaign_id = $1 AND state = 'pending' AND next_attempt_at IS NULL
             LIMIT $2 FOR UPDATE
         ), opened AS (
            INSERT INTO attempts (id, campaign_id, contact_id, attempt_number, state, call_type, caller_id,
                                  zone_checked, local_time_checked, clearance, platform_call_id, started_at,
                                  handed_over_at)
            SELECT gen_random_uuid(), $1, picked.id,
                   COALESCE((SELECT max(a.attempt_number) FROM attempts a WHERE a.contact_id = picked.id), 0) + 1,
                   'handed_over', 'telemarketing', '1300975707', 'Australia/Sydney', 'benchmark fixture', 'wash',
                   'bench-' || picked.id, $3, $3
              FROM picked
            RETURNING id, contact_id
         ), dialing AS (
            UPDATE contacts SET state = 'dialing', attempts_made = contacts.attempts_made + 1
              FROM opened WHERE contacts.id = opened.contact_id
         )
         SELECT id FROM opened",
    )
    .bind(campaign)
    .bind(i64::try_from(count)?)
    .bind(clock.unwrap_or(rig.clock_start))
    .fetch_all(&rig.pool)
    .await?;
    ensure!(
        ids.len() == count,
        "only {} of {count} fixture attempts could be opened",
        ids.len()
    );
    Ok(ids)
}
