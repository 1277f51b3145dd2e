//! Dialing under faults across processes. Three `outbound serve` processes of
//! the real binary share one database and call a simulated voice platform
//! that adds latency, responds late or never, and drops, repeats and reorders
//! call events. The platform reaches the servers through a small proxy that
//! acts as a load balancer, so events still arrive when one server dies.
//!
//! While a campaign runs, the tests sample the database for calls in progress
//! above capacity, contacts with two open attempts and attempts beyond the
//! budget. One test pauses the campaign and checks that no hand-over follows
//! the pause response; the other kills a server with SIGKILL and checks that
//! the campaign completes without losing a result or calling a number twice
//! for one attempt.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use outbound_http::simulator::{Delivery, Faults, Ledger, SimulatorConfig, SimulatorState};
use rand::Rng;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{
    create_tenant, fresh_database, token_for, valid_campaign, Tenant, AUDIENCE, ISSUER,
    VOICE_SECRET,
};
use crate::support::{database_url, first_calling_minute, write_test_key_file};

/// Server processes sharing the database.
const PROCESSES: usize = 3;
/// Concurrent calls allowed for the campaign.
const CAPACITY: i64 = 4;
/// Attempts allowed per contact.
const MAX_ATTEMPTS: i64 = 3;
/// Contacts in the campaign.
const CONTACTS: usize = 36;
/// How many times faster than real time the servers' clocks run: one minute
/// of campaign time per real second.
const CLOCK_SPEED: f64 = 60.0;
/// Time a server allows for one call request, in real milliseconds.
const HANDOVER_TIMEOUT_MS: u64 = 800;
/// Campaign-clock seconds after which an open attempt becomes `unknown`: four
/// real seconds at [`CLOCK_SPEED`].
const RESULT_TIMEOUT_SECONDS: i64 = 240;
/// Upper bound of every wait in these tests.
const WAIT: Duration = Duration::from_secs(240);
/// Pause and resume cycles in the pause test.
const PAUSE_CYCLES: usize = 3;
/// Pause between database samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

const OPEN_STATES: &str = "('handing_over', 'handed_over', 'connected')";

/// Mobiles from ACMA's fictitious range 0491 572 000 onwards, washed on the
/// campaign clock's first day.
fn contacts_csv(start: DateTime<Utc>) -> String {
    let washed_on = start
        .with_timezone(&chrono_tz::Australia::Sydney)
        .date_naive();
    let mut csv = String::from("to_number,registry_status,registry_checked_at\n");
    for i in 0..CONTACTS {
        csv.push_str(&format!("0491 572 {i:03},not_registered,{washed_on}\n"));
    }
    csv
}

/// Latency, late and missing responses, lost, repeated and reordered events.
fn faults() -> Faults {
    Faults {
        latency_ms: (0, 150),
        late_response_rate: 0.05,
        late_response_ms: HANDOVER_TIMEOUT_MS + 400,
        no_response_rate: 0.03,
        drop_rate: 0.08,
        duplicate_rate: 0.15,
        reorder_events: true,
        results_only: false,
    }
}

// ---------------------------------------------------------------------------
// A proxy in front of the servers, standing in for a load balancer
// ---------------------------------------------------------------------------

/// Forwards each request to the next live server, and to the one after it
/// when a server does not respond. Webhook events are idempotent by event id,
/// so sending one again to another server is safe.
#[derive(Clone, Default)]
struct Proxy {
    backends: Arc<Mutex<Vec<String>>>,
    next: Arc<AtomicUsize>,
    http: reqwest::Client,
}

impl Proxy {
    fn set_backends(&self, backends: Vec<String>) {
        *self.backends.lock().expect("backends") = backends;
    }

    fn remove_backend(&self, base: &str) {
        self.backends
            .lock()
            .expect("backends")
            .retain(|b| b != base);
    }

    async fn forward(&self, request: HttpRequest, body: web::Bytes) -> HttpResponse {
        let backends = self.backends.lock().expect("backends").clone();
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        for _ in 0..backends.len().max(1) * 2 {
            let Some(base) =
                backends.get(self.next.fetch_add(1, Ordering::Relaxed) % backends.len().max(1))
            else {
                break;
            };
            let mut forwarded = self
                .http
                .post(format!("{base}{path}"))
                .timeout(Duration::from_secs(10))
                .body(body.clone());
            for name in ["content-type", "x-outbound-signature"] {
                if let Some(value) = request.headers().get(name) {
                    forwarded = forwarded.header(name, value.as_bytes());
                }
            }
            if let Ok(response) = forwarded.send().await {
                let status = actix_web::http::StatusCode::from_u16(response.status().as_u16())
                    .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
                let bytes = response.bytes().await.unwrap_or_default();
                return HttpResponse::build(status)
                    .content_type("application/json")
                    .body(bytes);
            }
        }
        HttpResponse::BadGateway().finish()
    }

    fn start(&self) -> (String, actix_web::dev::ServerHandle) {
        let proxy = self.clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("proxy address");
        let server = HttpServer::new(move || {
            let proxy = proxy.clone();
            App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
                let proxy = proxy.clone();
                async move { proxy.forward(request, body).await }
            }))
        })
        .listen(listener)
        .expect("proxy listens")
        .disable_signals()
        .workers(2)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        (format!("http://{address}"), handle)
    }
}

// ---------------------------------------------------------------------------
// Server processes
// ---------------------------------------------------------------------------

/// The server processes; dropping it kills any still running, so a failed
/// test leaves none behind.
struct Servers {
    children: Vec<Option<Child>>,
    bases: Vec<String>,
    logs: PathBuf,
}

impl Servers {
    /// Starts `PROCESSES` servers and waits until each is ready.
    async fn start(
        work: &Path,
        database: &str,
        platform: &str,
        public_url: &str,
        clock_start: DateTime<Utc>,
    ) -> Self {
        let key_file = work.join("keys.json");
        write_test_key_file(&key_file);
        let mut children = Vec::new();
        let mut address_files = Vec::new();
        for index in 0..PROCESSES {
            let address_file = work.join(format!("server-{index}.address"));
            let log = std::fs::File::create(work.join(format!("server-{index}.log")))
                .expect("create a log file");
            let child = Command::new(env!("CARGO_BIN_EXE_outbound"))
                .arg("serve")
                .arg("--dev")
                .arg("--key-file")
                .arg(&key_file)
                .args(["--listen", "127.0.0.1:0"])
                .arg("--address-file")
                .arg(&address_file)
                .args(["--public-url", public_url])
                .args(["--voice-platform-url", platform])
                .args(["--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE])
                .args([
                    "--result-timeout-seconds",
                    &RESULT_TIMEOUT_SECONDS.to_string(),
                ])
                .args(["--handover-timeout-ms", &HANDOVER_TIMEOUT_MS.to_string()])
                .args([
                    "--rate-limit-per-second",
                    "0",
                    "--database-connections",
                    "8",
                ])
                .args([
                    "--clock-start",
                    &clock_start.to_rfc3339(),
                    "--clock-speed",
                    &CLOCK_SPEED.to_string(),
                ])
                .env("DATABASE_URL", database_url(database))
                .env("RUST_LOG", "warn")
                .env_remove("OUTBOUND_KEY_FILE")
                .env_remove("OUTBOUND_DATA_KEYS")
                .env_remove("OUTBOUND_VOICE_SECRET")
                .current_dir(work)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start outbound serve");
            children.push(Some(child));
            address_files.push(address_file);
        }
        let mut servers = Servers {
            children,
            bases: Vec::new(),
            logs: work.to_owned(),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        for (index, address_file) in address_files.iter().enumerate() {
            let base = loop {
                if let Ok(address) = std::fs::read_to_string(address_file) {
                    break format!("http://{}", address.trim());
                }
                if let Some(Some(child)) = servers.children.get_mut(index) {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "server {index} exited with {status} before listening; see {}",
                            servers.logs.display()
                        );
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "server {index} did not write its address; see {}",
                    servers.logs.display()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            loop {
                let ready = http
                    .get(format!("{base}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if ready {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "server {index} did not become ready; see {}",
                    servers.logs.display()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            servers.bases.push(base);
        }
        servers
    }

    /// Kills server `index` with SIGKILL and waits for it to exit.
    fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            child.kill().expect("SIGKILL the server");
            child.wait().expect("the killed server exits");
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The whole set-up: database, platform, proxy and servers
// ---------------------------------------------------------------------------

struct Rig {
    pool: PgPool,
    database: String,
    work: PathBuf,
    tenant: Tenant,
    servers: Servers,
    proxy: Proxy,
    proxy_handle: actix_web::dev::ServerHandle,
    simulator: web::Data<SimulatorState>,
    simulator_handle: actix_web::dev::ServerHandle,
    http: reqwest::Client,
    token: String,
    clock_start: DateTime<Utc>,
}

impl Rig {
    async fn start() -> Self {
        let (database, pool) = fresh_database().await;
        let tenant = create_tenant(&pool, "Fault Partner").await;
        let work = std::env::temp_dir().join(format!("outbound-faults-{database}"));
        std::fs::create_dir_all(&work).expect("create the work folder");

        let config = SimulatorConfig {
            secret: Arc::new(VOICE_SECRET.to_vec()),
            call_duration_ms: (100, 400),
            failure_rate: 0.05,
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let (address, simulator_handle, simulator) =
            outbound_http::server::start_simulator_with(config, faults(), listener)
                .expect("simulator starts");
        let proxy = Proxy::default();
        let (proxy_url, proxy_handle) = proxy.start();

        let clock_start = first_calling_minute();
        let servers = Servers::start(
            &work,
            &database,
            &format!("http://{address}"),
            &proxy_url,
            clock_start,
        )
        .await;
        proxy.set_backends(servers.bases.clone());
        let token = token_for("partner_admin", Some(tenant.partner), &[tenant.client], 60);
        Self {
            pool,
            database,
            work,
            tenant,
            servers,
            proxy,
            proxy_handle,
            simulator,
            simulator_handle,
            http: reqwest::Client::new(),
            token,
            clock_start,
        }
    }

    async fn post(&self, server: usize, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.servers.bases[server]))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates, fills and launches the campaign; returns its id.
    async fn launch(&self) -> Uuid {
        let mut body = valid_campaign(self.tenant.project);
        let settings = json!({
            "capacity": CAPACITY,
            "default_max_attempts": MAX_ATTEMPTS,
            "retry_policy": {
                "busy_minutes": 1,
                "no_answer_minutes": 1,
                "voicemail_minutes": 1,
                "failed_minutes": 1,
                "unknown_minutes": 1,
            },
        });
        if let (Some(target), Value::Object(extra)) = (body.as_object_mut(), settings) {
            target.extend(extra);
        }
        let (status, campaign) = self.post(0, "/v1/campaigns", body).await;
        assert_eq!(status, 201, "create campaign: {campaign}");
        let id = campaign["id"].as_str().expect("campaign id").to_owned();

        let response = self
            .http
            .post(format!(
                "{}/v1/campaigns/{id}/imports",
                self.servers.bases[1]
            ))
            .bearer_auth(&self.token)
            .header("Content-Type", "text/csv")
            .body(contacts_csv(self.clock_start))
            .send()
            .await
            .expect("import request");
        let status = response.status().as_u16();
        let import: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 201, "import: {import}");
        assert_eq!(
            import["rows_accepted"], CONTACTS,
            "every contact is accepted: {import}"
        );

        let (status, launched) = self
            .post(2, &format!("/v1/campaigns/{id}/launch"), json!({}))
            .await;
        assert_eq!(status, 200, "launch: {launched}");
        Uuid::parse_str(&id).expect("campaign id is a UUID")
    }

    async fn attempt_count(&self, campaign: Uuid) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM attempts WHERE campaign_id = $1")
            .bind(campaign)
            .fetch_one(&self.pool)
            .await
            .expect("count attempts")
    }

    async fn campaign_state(&self, campaign: Uuid) -> String {
        sqlx::query_scalar("SELECT state FROM campaigns WHERE id = $1")
            .bind(campaign)
            .fetch_one(&self.pool)
            .await
            .expect("campaign state")
    }

    async fn wait_for_attempts(&self, campaign: Uuid, at_least: i64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let count = self.attempt_count(campaign).await;
            if count >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {count} of {at_least} attempts within {WAIT:?}; logs in {}",
                self.work.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_for_completion(&self, campaign: Uuid) {
        let deadline = Instant::now() + WAIT;
        loop {
            let state = self.campaign_state(campaign).await;
            if state == "completed" {
                return;
            }
            let contacts: Vec<(String, i64)> =
                sqlx::query_as("SELECT state, count(*) FROM contacts WHERE campaign_id = $1 GROUP BY state ORDER BY state")
                    .bind(campaign)
                    .fetch_all(&self.pool)
                    .await
                    .expect("contacts by state");
            assert!(
                Instant::now() < deadline,
                "the campaign is still {state} after {WAIT:?}; contacts by state {contacts:?}; logs in {}",
                self.work.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops everything and drops the database.
    async fn finish(self) {
        let Rig {
            pool,
            database,
            work,
            servers,
            proxy_handle,
            simulator_handle,
            ..
        } = self;
        drop(servers);
        proxy_handle.stop(false).await;
        simulator_handle.stop(false).await;
        pool.close().await;
        crate::support::drop_database(&database).await;
        std::fs::remove_dir_all(&work).ok();
    }
}

// ---------------------------------------------------------------------------
// Sampling the invariants while the campaign runs
// ---------------------------------------------------------------------------

/// The worst values seen by the sampler.
#[derive(Debug, Default, Clone, Copy)]
struct Worst {
    samples: u64,
    open: i64,
    contacts_with_two_open: i64,
    contacts_over_budget: i64,
}

/// Samples the database until `stop` turns true. Each sample is one
/// statement, so its three figures come from one snapshot.
fn start_sampler(
    pool: PgPool,
    campaign: Uuid,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Worst> {
    tokio::spawn(async move {
        let query = format!(
            "SELECT
               (SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state IN {OPEN_STATES}),
               (SELECT count(*) FROM (SELECT contact_id FROM attempts
                                       WHERE campaign_id = $1 AND state IN {OPEN_STATES}
                                       GROUP BY contact_id HAVING count(*) > 1) twice),
               (SELECT count(*) FROM contacts c
                 WHERE c.campaign_id = $1
                   AND (c.attempts_made > c.max_attempts
                        OR (SELECT count(*) FROM attempts a
                             WHERE a.contact_id = c.id AND a.outcome IS DISTINCT FROM 'not_placed') > c.max_attempts))"
        );
        let mut worst = Worst::default();
        while !stop.load(Ordering::Relaxed) {
            let (open, twice, over): (i64, i64, i64) = sqlx::query_as(&query)
                .bind(campaign)
                .fetch_one(&pool)
                .await
                .expect("sample the invariants");
            worst.samples += 1;
            worst.open = worst.open.max(open);
            worst.contacts_with_two_open = worst.contacts_with_two_open.max(twice);
            worst.contacts_over_budget = worst.contacts_over_budget.max(over);
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        worst
    })
}

fn assert_sampled_limits(worst: Worst) {
    assert!(worst.samples >= 10, "the sampler ran: {worst:?}");
    assert!(
        worst.open >= 1,
        "calls were in progress at some sample: {worst:?}"
    );
    assert!(
        worst.open <= CAPACITY,
        "calls in progress stayed within the capacity of {CAPACITY}: {worst:?}"
    );
    assert_eq!(
        worst.contacts_with_two_open, 0,
        "no contact had two open attempts: {worst:?}"
    );
    assert_eq!(
        worst.contacts_over_budget, 0,
        "no contact went over {MAX_ATTEMPTS} attempts: {worst:?}"
    );
}

// ---------------------------------------------------------------------------
// Checks after the campaign completed
// ---------------------------------------------------------------------------

/// Checks every contact's end, the attempt budget, and the service's records
/// against the platform's ledger.
async fn assert_final_records(pool: &PgPool, campaign: Uuid, ledger: &Ledger) {
    let unfinished: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, state FROM contacts WHERE campaign_id = $1 AND (state <> 'done' OR final_reason IS NULL)")
            .bind(campaign)
            .fetch_all(pool)
            .await
            .expect("unfinished contacts");
    assert!(
        unfinished.is_empty(),
        "every contact ends done with a reason: {unfinished:?}"
    );

    let open: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state IN {OPEN_STATES}"
    ))
    .bind(campaign)
    .fetch_one(pool)
    .await
    .expect("open attempts");
    assert_eq!(open, 0, "no attempt is left open");

    let attempts: Vec<(Uuid, Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT id, contact_id, state, outcome FROM attempts WHERE campaign_id = $1",
    )
    .bind(campaign)
    .fetch_all(pool)
    .await
    .expect("attempts");
    let by_id: HashMap<Uuid, (String, Option<String>)> = attempts
        .iter()
        .map(|(id, _, state, outcome)| (*id, (state.clone(), outcome.clone())))
        .collect();
    let mut placed_per_contact: HashMap<Uuid, i64> = HashMap::new();
    for (_, contact, _, outcome) in &attempts {
        if outcome.as_deref() != Some("not_placed") {
            *placed_per_contact.entry(*contact).or_default() += 1;
        }
    }
    for (contact, count) in &placed_per_contact {
        assert!(
            *count <= MAX_ATTEMPTS,
            "contact {contact} has {count} attempts, above {MAX_ATTEMPTS}"
        );
    }

    let mut requests_per_attempt: HashMap<Uuid, usize> = HashMap::new();
    for request in &ledger.requests {
        *requests_per_attempt.entry(request.attempt_id).or_default() += 1;
        let record = by_id.get(&request.attempt_id);
        assert!(
            record.is_some(),
            "the platform got a call request for attempt {} that the service has no record of",
            request.attempt_id
        );
        assert_ne!(
            record.and_then(|r| r.1.as_deref()),
            Some("not_placed"),
            "attempt {} was withdrawn as never sent, yet the platform got its request",
            request.attempt_id
        );
    }
    for (attempt, count) in &requests_per_attempt {
        assert_eq!(
            *count, 1,
            "attempt {attempt} was sent to the platform {count} times"
        );
    }

    let mut calls_per_number: HashMap<&str, i64> = HashMap::new();
    for call in ledger.calls.values() {
        *calls_per_number.entry(call.to.as_str()).or_default() += 1;
        let (state, outcome) = by_id.get(&call.attempt_id).cloned().unwrap_or_default();
        match call.ended {
            Delivery::Delivered => assert_eq!(
                outcome.as_deref(),
                Some(call.outcome.as_str()),
                "attempt {} ends with the outcome the platform delivered (state {state})",
                call.attempt_id
            ),
            Delivery::Dropped | Delivery::Undeliverable => assert_eq!(
                outcome.as_deref(),
                Some("unknown"),
                "attempt {} whose result never arrived is unknown (state {state})",
                call.attempt_id
            ),
            other => panic!(
                "attempt {}: the ended event was {other:?} when the campaign completed",
                call.attempt_id
            ),
        }
    }
    let outcomes: Vec<(Option<String>, i64)> =
        sqlx::query_as("SELECT outcome, count(*) FROM attempts WHERE campaign_id = $1 GROUP BY outcome ORDER BY outcome")
            .bind(campaign)
            .fetch_all(pool)
            .await
            .expect("outcome counts");
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for call in ledger.calls.values() {
        *deliveries.entry(format!("{:?}", call.ended)).or_default() += 1;
    }
    eprintln!(
        "{} call requests, {} calls placed, ended events {deliveries:?}, attempts by outcome {outcomes:?}",
        ledger.requests.len(),
        ledger.calls.len()
    );
    for (number, calls) in &calls_per_number {
        assert!(
            *calls <= MAX_ATTEMPTS,
            "a number got {calls} calls, above {MAX_ATTEMPTS} (ends {})",
            &number[number.len() - 3..]
        );
    }
}

/// Waits until the platform has settled every placed call's `ended` event.
async fn wait_for_ledger(simulator: &SimulatorState) -> Ledger {
    let deadline = Instant::now() + WAIT;
    loop {
        let ledger = simulator.ledger();
        let pending = ledger
            .calls
            .values()
            .filter(|c| c.ended == Delivery::Pending)
            .count();
        if pending == 0 {
            return ledger;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} calls still have their ended event pending after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pauses through `server`, then checks for a while that no attempt opens and
/// the platform gets no call request, while calls in progress finish.
async fn pause_and_check(rig: &Rig, campaign: Uuid, server: usize) {
    let (status, paused) = rig
        .post(
            server,
            &format!("/v1/campaigns/{campaign}/pause"),
            json!({}),
        )
        .await;
    let paused_at = Instant::now();
    assert_eq!(status, 200, "pause: {paused}");
    let attempts_at_pause = rig.attempt_count(campaign).await;

    // Watch for longer than a hand-over may take, so a late one would show.
    let watch_until = Instant::now() + Duration::from_millis(2 * HANDOVER_TIMEOUT_MS + 500);
    while Instant::now() < watch_until {
        assert_eq!(
            rig.attempt_count(campaign).await,
            attempts_at_pause,
            "no attempt opens after the pause returned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let late: Vec<Uuid> = rig
        .simulator
        .ledger()
        .requests
        .iter()
        .filter(|r| r.received_at > paused_at)
        .map(|r| r.attempt_id)
        .collect();
    assert!(
        late.is_empty(),
        "the platform got call requests after the pause returned: {late:?}"
    );
    assert_eq!(rig.campaign_state(campaign).await, "paused");
}

/// Sends two resumes at once through two servers and checks that exactly one
/// took effect, the `resumes`-th of the run.
async fn resume_twice_at_once(
    rig: &Rig,
    campaign: Uuid,
    first_server: usize,
    second_server: usize,
    resumes: i64,
) {
    let path = format!("/v1/campaigns/{campaign}/resume");
    let (first, second) = tokio::join!(
        rig.post(first_server, &path, json!({})),
        rig.post(second_server, &path, json!({}))
    );
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 409],
        "one resume succeeds and the other finds the campaign running: {first:?} {second:?}"
    );
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE campaign_id = $1 AND action = 'campaign.resume'",
    )
    .bind(campaign)
    .fetch_one(&rig.pool)
    .await
    .expect("count resumes");
    assert_eq!(recorded, resumes, "the audit log has one resume per cycle");
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_keep_limits_and_pause_holds() {
    let rig = Rig::start().await;
    let campaign = rig.launch().await;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = start_sampler(rig.pool.clone(), campaign, stop.clone());

    // Each cycle pauses through another server at a different point of the
    // run, then resumes through the other two at once.
    for cycle in 0..PAUSE_CYCLES {
        rig.wait_for_attempts(campaign, (cycle as i64 + 1) * CONTACTS as i64 / 4)
            .await;
        pause_and_check(&rig, campaign, cycle % PROCESSES).await;
        resume_twice_at_once(
            &rig,
            campaign,
            (cycle + 1) % PROCESSES,
            (cycle + 2) % PROCESSES,
            cycle as i64 + 1,
        )
        .await;
    }

    rig.wait_for_completion(campaign).await;
    stop.store(true, Ordering::Relaxed);
    let worst = sampler.await.expect("sampler task");
    assert_sampled_limits(worst);
    let ledger = wait_for_ledger(&rig.simulator).await;
    assert!(!ledger.calls.is_empty(), "the platform placed calls");
    assert_final_records(&rig.pool, campaign, &ledger).await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_loses_no_result() {
    let mut rig = Rig::start().await;
    let campaign = rig.launch().await;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = start_sampler(rig.pool.clone(), campaign, stop.clone());

    // Kill at a random point of the run, while calls are in progress.
    let (kill_after, victim) = {
        let mut rng = rand::thread_rng();
        (
            rng.gen_range(4..CONTACTS as i64 / 2),
            rng.gen_range(0..PROCESSES),
        )
    };
    rig.wait_for_attempts(campaign, kill_after).await;
    let victim_base = rig.servers.bases[victim].clone();
    rig.servers.kill(victim);
    rig.proxy.remove_backend(&victim_base);

    rig.wait_for_completion(campaign).await;
    stop.store(true, Ordering::Relaxed);
    let worst = sampler.await.expect("sampler task");
    assert_sampled_limits(worst);
    let ledger = wait_for_ledger(&rig.simulator).await;
    assert!(!ledger.calls.is_empty(), "the platform placed calls");
    assert_final_records(&rig.pool, campaign, &ledger).await;
    rig.finish().await;
}
