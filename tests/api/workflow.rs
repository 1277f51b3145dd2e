//! Workflow, dispatcher, webhook and data-safety tests.
//!
//! The full workflow and the pause test run the dispatcher against the
//! simulated voice platform on an accelerated clock. The webhook, opt-out and
//! cancel tests use a recording platform instead: it accepts every call
//! request and sends no events, so the test sends each call event itself.
//! Every number is from ACMA's list of fictitious numbers.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use outbound_http::clock::Clock;
use outbound_http::server::start_simulator;
use outbound_http::signing::{sign, verify, SIGNATURE_HEADER};
use outbound_http::simulator::SimulatorConfig;
use outbound_http::voice::CallRequest;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::first_calling_minute;
use crate::support::{create_tenant, token_for, valid_campaign, Options, TestApp, VOICE_SECRET};

/// How long a campaign may take to finish on the accelerated clock.
const COMPLETION_WAIT: Duration = Duration::from_secs(120);
/// How long to wait for the dispatcher to place a first call.
const DISPATCH_WAIT: Duration = Duration::from_secs(30);

/// Recipients called in the full workflow: as written in the CSV, and their
/// national digits. The forms differ on purpose, and the nine-digit form gets
/// an import warning.
const CALLED: [(&str, &str); 11] = [
    ("0491 570 006", "0491570006"),
    ("+61 491 570 156", "0491570156"),
    ("61491570157", "0491570157"),
    ("0491570158", "0491570158"),
    ("+61491570159", "0491570159"),
    ("491 570 110", "0491570110"),
    ("0491-570-313", "0491570313"),
    ("0491 570 737", "0491570737"),
    ("0491 571 234", "0491571234"),
    ("(02) 5550 1234", "0255501234"),
    ("08 7010 4567", "0870104567"),
];

/// A recipient on the Do Not Call Register without consent.
const REGISTERED: (&str, &str) = ("0491 572 468", "0491572468");

/// A recipient whose row is rejected for an invalid registry status.
const REJECTED: (&str, &str) = ("0491 573 737", "0491573737");

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Formats the Australia/Sydney date of `at` as `YYYY-MM-DD`.
fn sydney_date(at: DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Australia::Sydney)
        .date_naive()
        .to_string()
}

/// Builds a contact file whose recipients were washed `not_registered` on `checked_on`.
fn washed_csv(numbers: &[&str], checked_on: &str) -> String {
    let mut csv = String::from(
        "to_number,first_name,registry_status,registry_checked_at,registry_evidence\n",
    );
    for (index, number) in numbers.iter().enumerate() {
        csv.push_str(&format!(
            "\"{number}\",Recipient{index},not_registered,{checked_on},WASH-TEST-1\n"
        ));
    }
    csv
}

/// Lists the forms of a number that must never appear. The national significant
/// number is part of `+61…`, `61…` and `0…`, and the grouped forms are part of
/// `0491 570 006`, `+61 491 570 006` and `(02) 5550 1234`.
fn number_forms(national: &str) -> Vec<String> {
    let significant = &national[1..];
    let mut forms = vec![significant.to_owned()];
    for separator in [" ", "-", "."] {
        if significant.starts_with('4') {
            forms.push(format!(
                "{}{separator}{}{separator}{}",
                &significant[..3],
                &significant[3..6],
                &significant[6..]
            ));
        } else {
            forms.push(format!(
                "{}{separator}{}",
                &significant[1..5],
                &significant[5..]
            ));
        }
    }
    if !significant.starts_with('4') {
        forms.push(significant[1..].to_owned());
    }
    forms
}

/// Returns the forms of `nationals` that `text` contains.
fn leaks(text: &str, nationals: &[&str]) -> Vec<String> {
    nationals
        .iter()
        .flat_map(|national| number_forms(national))
        .filter(|form| text.contains(form.as_str()))
        .collect()
}

/// Lists the national digits of every recipient in the full workflow.
fn all_nationals() -> Vec<&'static str> {
    CALLED
        .iter()
        .map(|(_, national)| *national)
        .chain([REGISTERED.1, REJECTED.1])
        .collect()
}

/// Lists the state changes in a report's timeline, oldest first. Creation has
/// no earlier state, so it is left out.
fn transitions(report: &Value) -> Vec<(&str, &str)> {
    report["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|entry| Some((entry["from_state"].as_str()?, entry["to_state"].as_str()?)))
        .collect()
}

/// Polls the report until the campaign is in `state`, and fails after `within`.
async fn wait_for_state(app: &TestApp, campaign: &str, state: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, report) = app
            .get(&format!("/v1/campaigns/{campaign}/report"), &app.admin())
            .await;
        assert_eq!(status, 200, "report: {report}");
        if report["state"] == state {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "the campaign did not become {state} within {within:?}. Last report: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Lists every contact of a campaign with its attempts.
async fn contacts(app: &TestApp, campaign: &str) -> Vec<Value> {
    let (status, page) = app
        .get(
            &format!("/v1/campaigns/{campaign}/contacts?limit=500"),
            &app.admin(),
        )
        .await;
    assert_eq!(status, 200, "contacts: {page}");
    assert!(page["next"].is_null(), "every contact fits on one page");
    page["items"].as_array().expect("items").clone()
}

/// Finds the contact whose masked number ends with the last three digits of `national`.
fn contact_for<'a>(items: &'a [Value], national: &str) -> &'a Value {
    let suffix = &national[national.len() - 3..];
    let matching: Vec<&Value> = items
        .iter()
        .filter(|c| {
            c["masked_number"]
                .as_str()
                .is_some_and(|m| m.ends_with(suffix))
        })
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one contact ends with {suffix}: {items:?}"
    );
    matching[0]
}

/// Lists the attempt ids and start times of a campaign, oldest first.
/// `placed_only` leaves out attempts withdrawn before their hand-over.
async fn attempt_rows(
    app: &TestApp,
    campaign: &str,
    placed_only: bool,
) -> Vec<(Uuid, DateTime<Utc>)> {
    let filter = if placed_only {
        "AND (state <> 'failed' OR outcome <> 'not_placed')"
    } else {
        ""
    };
    sqlx::query_as(&format!("SELECT id, started_at FROM attempts WHERE campaign_id = $1 {filter} ORDER BY started_at, id"))
        .bind(Uuid::parse_str(campaign).expect("campaign id"))
        .fetch_all(&app.pool)
        .await
        .expect("read attempts")
}

/// Polls until the campaign has at least `at_least` placed attempts, and fails after `within`.
async fn wait_for_attempts(app: &TestApp, campaign: &str, at_least: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while attempt_rows(app, campaign, true).await.len() < at_least {
        assert!(
            Instant::now() < deadline,
            "the dispatcher placed fewer than {at_least} attempts within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Creates a campaign, imports washed recipients and launches it.
async fn launch_washed(app: &TestApp, numbers: &[&str], checked_on: &str, capacity: i32) -> String {
    let campaign = app
        .create_campaign(json!({ "capacity": capacity, "default_max_attempts": 3 }))
        .await;
    let (status, import) = app
        .import_csv(&campaign, &washed_csv(numbers, checked_on))
        .await;
    assert_eq!(status, 201, "import: {import}");
    assert_eq!(import["rows_accepted"], numbers.len(), "import: {import}");
    let (status, launched) = app
        .post(
            &format!("/v1/campaigns/{campaign}/launch"),
            &app.admin(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "launch: {launched}");
    assert_eq!(launched["state"], "running");
    campaign
}

/// Starts the simulated voice platform on a loopback port.
fn simulator(call_duration_ms: (u64, u64)) -> (String, actix_web::dev::ServerHandle) {
    let config = SimulatorConfig {
        secret: Arc::new(VOICE_SECRET.to_vec()),
        call_duration_ms,
        failure_rate: 0.0,
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let (address, handle) = start_simulator(config, listener).expect("simulator starts");
    (format!("http://{address}"), handle)
}

/// Starts a test server whose dispatcher calls `platform` on an accelerated
/// clock that starts at the next calling minute.
async fn dispatching_app(platform: &str, speed: f64) -> (TestApp, DateTime<Utc>) {
    let start = first_calling_minute();
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        voice_platform_url: Some(platform.to_owned()),
        clock: Clock::accelerated(start, speed),
        ..Options::default()
    })
    .await;
    (app, start)
}

// ---------------------------------------------------------------------------
// A voice platform that records call requests and sends no events
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RecordedCall {
    attempt_id: Uuid,
    to: String,
    /// Whether the request carried a valid signature under the platform secret.
    signed: bool,
}

type Calls = web::Data<Mutex<Vec<RecordedCall>>>;

/// Records a call request and accepts it with a call id.
async fn record_call(calls: Calls, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let header = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let signed = verify(VOICE_SECRET, header, &body, Utc::now().timestamp()).is_ok();
    let Ok(call) = serde_json::from_slice::<CallRequest>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    calls.lock().expect("calls lock").push(RecordedCall {
        attempt_id: call.attempt_id,
        to: call.to.clone(),
        signed,
    });
    HttpResponse::Accepted().json(json!({ "call_id": format!("rec-{}", call.attempt_id) }))
}

/// A voice platform on a loopback port that records call requests and sends no events.
struct RecordingPlatform {
    url: String,
    calls: Calls,
    handle: actix_web::dev::ServerHandle,
}

impl RecordingPlatform {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("local address");
        let calls: Calls = web::Data::new(Mutex::new(Vec::new()));
        let data = calls.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/calls", web::post().to(record_call))
        })
        .listen(listener)
        .expect("listen")
        .workers(1)
        .disable_signals()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://{address}"),
            calls,
            handle,
        }
    }

    /// Returns the call requests received so far.
    fn calls(&self) -> Vec<RecordedCall> {
        self.calls.lock().expect("calls lock").clone()
    }

    /// Waits until at least `count` call requests arrived.
    async fn wait_for_calls(&self, count: usize) -> Vec<RecordedCall> {
        let deadline = Instant::now() + DISPATCH_WAIT;
        loop {
            let calls = self.calls();
            if calls.len() >= count {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {count} call requests arrived within {DISPATCH_WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

// ---------------------------------------------------------------------------
// Webhook events
// ---------------------------------------------------------------------------

/// Builds a call event body with a new event id.
fn event(attempt_id: Uuid, kind: &str, outcome: Option<&str>) -> Vec<u8> {
    let body = json!({
        "event_id": Uuid::new_v4().to_string(),
        "attempt_id": attempt_id,
        "call_id": format!("rec-{attempt_id}"),
        "type": kind,
        "outcome": outcome,
        "end_reason": outcome.map(|_| "completed"),
        "duration_seconds": outcome.map(|_| 42),
        "summary": outcome.map(|_| "Recipient listened to the offer."),
        "occurred_at": Utc::now(),
    });
    serde_json::to_vec(&body).expect("serialise event")
}

/// Polls until the attempt is in `state`, and fails after [`DISPATCH_WAIT`].
async fn wait_for_attempt_state(app: &TestApp, campaign: &str, attempt_id: Uuid, state: &str) {
    let deadline = Instant::now() + DISPATCH_WAIT;
    loop {
        let (_, attempt) = attempt_view(app, campaign, attempt_id).await;
        if attempt["state"] == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "attempt {attempt_id} did not become {state} within {DISPATCH_WAIT:?}: {attempt}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Posts `body` to the webhook with `signature` as the signature header.
async fn post_event(app: &TestApp, body: &[u8], signature: Option<String>) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url("/v1/voice/events"))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Posts `body` signed now under the platform secret.
async fn post_signed(app: &TestApp, body: &[u8]) -> (u16, Value) {
    post_event(
        app,
        body,
        Some(sign(VOICE_SECRET, Utc::now().timestamp(), body)),
    )
    .await
}

/// Posts a signed event and expects it recorded.
async fn record(app: &TestApp, attempt_id: Uuid, kind: &str, outcome: Option<&str>) {
    let (status, body) = post_signed(app, &event(attempt_id, kind, outcome)).await;
    assert_eq!(status, 200, "{kind} event: {body}");
    assert_eq!(body["status"], "recorded", "{kind} event: {body}");
}

/// Reads an attempt and its contact through the API.
async fn attempt_view(app: &TestApp, campaign: &str, attempt_id: Uuid) -> (Value, Value) {
    for contact in contacts(app, campaign).await {
        for attempt in contact["attempts"].as_array().expect("attempts") {
            if attempt["attempt_id"] == attempt_id.to_string() {
                return (contact.clone(), attempt.clone());
            }
        }
    }
    panic!("attempt {attempt_id} is not listed");
}

// ---------------------------------------------------------------------------
// The full workflow
// ---------------------------------------------------------------------------

/// A finished full workflow: the app (still running), the campaign, and every
/// response body it produced.
struct Workflow {
    app: TestApp,
    simulator: actix_web::dev::ServerHandle,
    campaign: String,
    report: Value,
    contacts: Vec<Value>,
    audit: Vec<Value>,
    responses: Vec<(String, String)>,
}

impl Workflow {
    async fn finish(self) {
        self.app.finish().await;
        self.simulator.stop(true).await;
    }
}

/// Runs the whole workflow: create, import, validate, exclude, launch, and wait
/// until the dispatcher completes the campaign against the simulator.
async fn run_full_workflow() -> Workflow {
    let (platform, simulator) = simulator((20, 100));
    let (app, start) = dispatching_app(&platform, 120.0).await;
    let admin = app.admin();
    let mut responses = Vec::new();

    let campaign = app
        .create_campaign(json!({ "capacity": 3, "default_max_attempts": 3 }))
        .await;

    let mut csv = washed_csv(&CALLED.map(|(number, _)| number), &sydney_date(start));
    let checked_on = sydney_date(start);
    csv.push_str(&format!(
        "\"{}\",Registered,registered,{checked_on},WASH-TEST-1\n",
        REGISTERED.0
    ));
    csv.push_str(&format!(
        "\"{}\",Rejected,maybe,{checked_on},WASH-TEST-1\n",
        REJECTED.0
    ));
    let response = app
        .http
        .post(app.url(&format!("/v1/campaigns/{campaign}/imports")))
        .bearer_auth(&admin)
        .header("Content-Type", "text/csv")
        .header("Idempotency-Key", "workflow-import-1")
        .body(csv)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let import: Value = response.json().await.expect("json");
    assert_eq!(
        import["rows_accepted"],
        CALLED.len() + 1,
        "import: {import}"
    );
    assert_eq!(import["rows_rejected"], 1, "import: {import}");
    assert_eq!(import["rows_with_warnings"], 1, "import: {import}");
    assert_eq!(
        import["errors"][0]["code"], "invalid_registry_status",
        "import: {import}"
    );
    assert_eq!(
        import["warnings"][0]["column"], "to_number",
        "import: {import}"
    );
    let import_id = import["import_id"].as_str().expect("import id").to_owned();
    responses.push(("import".to_owned(), import.to_string()));
    let (status, issues) = app
        .get(
            &format!("/v1/campaigns/{campaign}/imports/{import_id}/issues"),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "issues: {issues}");
    responses.push(("import issues".to_owned(), issues.to_string()));

    let (status, validation) = app
        .post(
            &format!("/v1/campaigns/{campaign}/validation"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "validation: {validation}");
    assert_eq!(
        validation["ready"], false,
        "the registered contact blocks: {validation}"
    );
    let registry = validation["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|check| check["name"] == "registry_status")
        .expect("registry_status check")
        .clone();
    assert_eq!(registry["status"], "blocker", "registry_status: {registry}");
    assert_eq!(
        registry["reasons"]["dncr_registered"], 1,
        "registry_status: {registry}"
    );
    responses.push(("validation".to_owned(), validation.to_string()));

    let (status, excluded) = app
        .post(
            &format!("/v1/campaigns/{campaign}/exclusions"),
            &admin,
            json!({ "reasons": ["dncr_registered"] }),
        )
        .await;
    assert_eq!(status, 200, "exclusions: {excluded}");
    assert_eq!(excluded["excluded"], 1, "exclusions: {excluded}");
    responses.push(("exclusions".to_owned(), excluded.to_string()));

    let (status, validation) = app
        .post(
            &format!("/v1/campaigns/{campaign}/validation"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        validation["ready"], true,
        "validation after the exclusion: {validation}"
    );
    responses.push((
        "validation after exclusion".to_owned(),
        validation.to_string(),
    ));

    let (status, launched) = app
        .post(
            &format!("/v1/campaigns/{campaign}/launch"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "launch: {launched}");
    assert_eq!(launched["state"], "running");
    responses.push(("launch".to_owned(), launched.to_string()));

    let report = wait_for_state(&app, &campaign, "completed", COMPLETION_WAIT).await;
    assert_eq!(
        report["validation"]["checked"], false,
        "validation no longer applies to a completed campaign: {}",
        report["validation"]
    );
    responses.push(("report".to_owned(), report.to_string()));
    let contacts = contacts(&app, &campaign).await;
    responses.push((
        "contacts".to_owned(),
        Value::Array(contacts.clone()).to_string(),
    ));
    let (status, audit) = app
        .get(&format!("/v1/campaigns/{campaign}/audit?limit=500"), &admin)
        .await;
    assert_eq!(status, 200, "audit: {audit}");
    assert!(audit["next"].is_null(), "the audit trail fits on one page");
    responses.push(("audit".to_owned(), audit.to_string()));
    let (status, view) = app.get(&format!("/v1/campaigns/{campaign}"), &admin).await;
    assert_eq!(status, 200);
    responses.push(("campaign".to_owned(), view.to_string()));
    let audit = audit["items"].as_array().expect("items").clone();

    Workflow {
        app,
        simulator,
        campaign,
        report,
        contacts,
        audit,
        responses,
    }
}

/// Checks whether `local` (RFC 3339 with offset) is inside the legal
/// telemarketing hours: weekdays 09:00–20:00, Saturday 09:00–17:00, no Sunday.
fn within_telemarketing_hours(local: &str) -> bool {
    let Ok(at) = DateTime::parse_from_rfc3339(local) else {
        return false;
    };
    let minute = at.hour() * 60 + at.minute();
    match at.weekday() {
        Weekday::Sun => false,
        Weekday::Sat => (9 * 60..17 * 60).contains(&minute),
        _ => (9 * 60..20 * 60).contains(&minute),
    }
}

#[tokio::test]
async fn full_workflow_completes_within_rules() {
    let run = run_full_workflow().await;
    let report = &run.report;

    assert_eq!(
        report["contacts_total"],
        CALLED.len() + 1,
        "report: {report}"
    );
    assert_eq!(
        report["contacts_by_state"]["done"],
        CALLED.len(),
        "report: {report}"
    );
    assert_eq!(
        report["contacts_by_state"]["excluded"], 1,
        "report: {report}"
    );
    assert_eq!(
        report["excluded_by_reason"]["dncr_registered"], 1,
        "report: {report}"
    );

    let mut attempts_total = 0;
    for contact in &run.contacts {
        let attempts = contact["attempts"].as_array().expect("attempts");
        let max_attempts = contact["max_attempts"].as_u64().expect("max_attempts");
        let attempts_made = contact["attempts_made"].as_u64().expect("attempts_made");
        if contact["excluded_reason"] == "dncr_registered" {
            assert_eq!(contact["state"], "excluded", "excluded contact: {contact}");
            assert!(
                attempts.is_empty(),
                "an excluded contact is never called: {contact}"
            );
            assert_eq!(
                attempts_made, 0,
                "an excluded contact is never called: {contact}"
            );
            continue;
        }
        assert_eq!(
            contact["state"], "done",
            "every contact not excluded is done: {contact}"
        );
        assert!(
            contact["final_reason"].is_string(),
            "a done contact has a final reason: {contact}"
        );
        assert!(attempts_made >= 1, "a done contact was called: {contact}");
        assert!(
            attempts_made <= max_attempts,
            "attempts_made is at most max_attempts: {contact}"
        );
        assert_eq!(
            attempts.len() as u64,
            attempts_made,
            "one attempt row per attempt made: {contact}"
        );
        for attempt in attempts {
            let zones = attempt["zone_checked"].as_str().expect("zone_checked");
            let times = attempt["local_time_checked"]
                .as_str()
                .expect("local_time_checked");
            assert!(!zones.is_empty(), "the gate recorded the zone: {attempt}");
            assert!(
                !times.is_empty(),
                "the gate recorded the local time: {attempt}"
            );
            assert_eq!(
                zones.split(',').count(),
                times.split(',').count(),
                "one local time per zone: {attempt}"
            );
            for local in times.split(',') {
                assert!(
                    within_telemarketing_hours(local),
                    "attempt placed outside telemarketing hours at {local}: {attempt}"
                );
            }
            assert_eq!(
                attempt["clearance"], "wash",
                "cleared by the wash result: {attempt}"
            );
            assert!(
                attempt["outcome"].is_string(),
                "every attempt has ended: {attempt}"
            );
            assert!(
                attempt["ended_at"].is_string(),
                "every attempt has ended: {attempt}"
            );
        }
        if contact["number_type"] == "mobile" {
            let zones = attempts[0]["zone_checked"].as_str().unwrap_or_default();
            assert!(
                zones.contains("Australia/Perth"),
                "a mobile is checked in every zone: {zones}"
            );
            assert!(
                zones.contains("Australia/Sydney"),
                "a mobile is checked in every zone: {zones}"
            );
        }
        let last = attempts.last().expect("an attempt");
        match contact["final_reason"].as_str() {
            Some(reason @ ("answered" | "opted_out")) => {
                assert_eq!(last["outcome"], reason, "{contact}")
            }
            Some("attempts_exhausted") => assert_eq!(attempts_made, max_attempts, "{contact}"),
            _ => {}
        }
        attempts_total += attempts_made;
    }
    assert_eq!(
        report["attempts_made"], attempts_total,
        "report counts every attempt: {report}"
    );

    let transition = |action: &str| {
        run.audit
            .iter()
            .find(|entry| entry["action"] == action)
            .cloned()
    };
    let launch = transition("campaign.launch").expect("launch in the audit trail");
    assert_eq!(launch["from_state"], "draft", "{launch}");
    assert_eq!(launch["to_state"], "running", "{launch}");
    let complete = transition("campaign.complete").expect("complete in the audit trail");
    assert_eq!(complete["from_state"], "running", "{complete}");
    assert_eq!(complete["to_state"], "completed", "{complete}");
    assert_eq!(complete["actor"], "system:dispatcher", "{complete}");
    assert!(
        launch["id"].as_i64() < complete["id"].as_i64(),
        "launch precedes completion"
    );
    assert!(
        transition("contacts.exclude").is_some(),
        "the exclusion is audited"
    );

    assert_eq!(
        transitions(report),
        [("draft", "running"), ("running", "completed")],
        "timeline: {}",
        report["timeline"]
    );
    assert_eq!(report["campaign_id"], run.campaign.as_str(), "{report}");
    run.finish().await;
}

// ---------------------------------------------------------------------------
// Launch rejection and invalid transitions
// ---------------------------------------------------------------------------

#[tokio::test]
async fn launch_with_blocker_is_rejected() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let today = sydney_date(Utc::now());
    let campaign = app.create_campaign(json!({})).await;
    let mut csv = washed_csv(&["0491 570 006"], &today);
    csv.push_str(&format!(
        "\"0491 570 156\",Registered,registered,{today},WASH-TEST-1\n"
    ));
    let (status, import) = app.import_csv(&campaign, &csv).await;
    assert_eq!(status, 201, "import: {import}");

    let response = app
        .http
        .post(app.url(&format!("/v1/campaigns/{campaign}/launch")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 409);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type}"
    );
    let problem: Value = response.json().await.expect("json");
    assert_eq!(problem["code"], "validation_failed", "{problem}");
    assert_eq!(problem["state"], "draft", "{problem}");
    assert_eq!(problem["validation"]["ready"], false, "{problem}");
    let registry = problem["validation"]["checks"]
        .as_array()
        .expect("the problem contains the validation report")
        .iter()
        .find(|check| check["name"] == "registry_status")
        .expect("registry_status check")
        .clone();
    assert_eq!(registry["status"], "blocker", "{registry}");
    assert_eq!(registry["reasons"]["dncr_registered"], 1, "{registry}");
    assert!(
        leaks(&problem.to_string(), &["0491570006", "0491570156"]).is_empty(),
        "no number in the problem: {problem}"
    );

    let (status, view) = app.get(&format!("/v1/campaigns/{campaign}"), &admin).await;
    assert_eq!(status, 200);
    assert_eq!(
        view["state"], "draft",
        "a rejected launch leaves the campaign in draft"
    );
    let (_, audit) = app
        .get(&format!("/v1/campaigns/{campaign}/audit"), &admin)
        .await;
    let launched = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|entry| entry["action"] == "campaign.launch");
    assert!(
        !launched,
        "a rejected launch is not audited as a launch: {audit}"
    );

    for action in ["resume", "pause"] {
        let (status, problem) = app
            .post(
                &format!("/v1/campaigns/{campaign}/{action}"),
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(status, 409, "{action} of a draft: {problem}");
        assert_eq!(
            problem["code"], "invalid_transition",
            "{action} of a draft: {problem}"
        );
        assert_eq!(problem["state"], "draft", "{action} of a draft: {problem}");
    }

    let (status, cancelled) = app
        .post(
            &format!("/v1/campaigns/{campaign}/cancel"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "cancel of a draft: {cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    for action in ["launch", "resume", "pause", "cancel"] {
        let (status, problem) = app
            .post(
                &format!("/v1/campaigns/{campaign}/{action}"),
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(status, 409, "{action} of a cancelled campaign: {problem}");
        assert_eq!(
            problem["code"], "invalid_transition",
            "{action} of a cancelled campaign: {problem}"
        );
        assert_eq!(
            problem["state"], "cancelled",
            "{action} of a cancelled campaign: {problem}"
        );
    }
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Pause, resume and cancel
// ---------------------------------------------------------------------------

#[tokio::test]
async fn pause_stops_calls_until_resume() {
    let (platform, simulator) = simulator((300, 600));
    let (app, start) = dispatching_app(&platform, 120.0).await;
    let admin = app.admin();
    let numbers: Vec<&str> = CALLED.iter().map(|(number, _)| *number).collect();
    let campaign = launch_washed(&app, &numbers, &sydney_date(start), 2).await;

    // A pause may land between a claim and its hand-over; the withdrawn
    // attempts are called after the resume (see resume_calls_withdrawn_contacts).
    wait_for_attempts(&app, &campaign, 1, DISPATCH_WAIT).await;
    let (status, paused) = app
        .post(
            &format!("/v1/campaigns/{campaign}/pause"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "pause: {paused}");
    assert_eq!(paused["state"], "paused");
    let all_at_pause: BTreeSet<Uuid> = attempt_rows(&app, &campaign, false)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let placed_at_pause: BTreeSet<Uuid> = attempt_rows(&app, &campaign, true)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let (_, report) = app
        .get(&format!("/v1/campaigns/{campaign}/report"), &admin)
        .await;
    let clock_at_pause: DateTime<Utc> =
        serde_json::from_value(report["as_of"].clone()).expect("as_of");

    tokio::time::sleep(Duration::from_secs(2)).await;

    let all_later = attempt_rows(&app, &campaign, false).await;
    let placed_later: BTreeSet<Uuid> = attempt_rows(&app, &campaign, true)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let ids_later: BTreeSet<Uuid> = all_later.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids_later, all_at_pause,
        "no attempt row is created while paused"
    );
    assert!(
        placed_later.is_subset(&placed_at_pause),
        "no call is placed while paused"
    );
    for (id, started_at) in &all_later {
        assert!(
            *started_at <= clock_at_pause,
            "attempt {id} started at {started_at}, after the pause at {clock_at_pause}"
        );
    }
    let (_, report) = app
        .get(&format!("/v1/campaigns/{campaign}/report"), &admin)
        .await;
    assert_eq!(report["state"], "paused", "{report}");

    let (status, resumed) = app
        .post(
            &format!("/v1/campaigns/{campaign}/resume"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "resume: {resumed}");
    assert_eq!(resumed["state"], "running");
    let report = wait_for_state(&app, &campaign, "completed", COMPLETION_WAIT).await;
    assert_eq!(
        report["contacts_by_state"]["done"],
        numbers.len(),
        "report: {report}"
    );
    for contact in contacts(&app, &campaign).await {
        assert_eq!(contact["state"], "done", "{contact}");
        assert!(contact["final_reason"].is_string(), "{contact}");
        assert!(
            contact["attempts_made"].as_i64() <= contact["max_attempts"].as_i64(),
            "{contact}"
        );
    }
    assert_eq!(
        transitions(&report),
        [
            ("draft", "running"),
            ("running", "paused"),
            ("paused", "running"),
            ("running", "completed")
        ],
        "timeline: {}",
        report["timeline"]
    );
    app.finish().await;
    simulator.stop(true).await;
}

/// Checks that a resume calls the contacts whose attempts were withdrawn
/// because a pause committed between claim and hand-over. A trigger pauses
/// the campaign inside the claim's transaction, which fixes that order; two
/// waiting transactions would not, because PostgreSQL does not order waiters.
#[tokio::test]
async fn resume_calls_withdrawn_contacts() {
    let platform = RecordingPlatform::start();
    let (app, start) = dispatching_app(&platform.url, 1.0).await;
    let admin = app.admin();
    let numbers = ["0491 570 006", "0491 570 156", "0491 570 157"];
    let campaign = app.create_campaign(json!({ "capacity": 3 })).await;
    let campaign_id = Uuid::parse_str(&campaign).expect("campaign id");
    let (status, import) = app
        .import_csv(&campaign, &washed_csv(&numbers, &sydney_date(start)))
        .await;
    assert_eq!(status, 201, "import: {import}");

    for statement in [
        "CREATE FUNCTION pause_after_claim() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             UPDATE campaigns SET state = 'paused', version = version + 1, updated_at = now()
              WHERE id = NEW.campaign_id AND state = 'running';
             RETURN NULL;
         END $$",
        "CREATE TRIGGER pause_after_claim AFTER INSERT ON attempts
         FOR EACH ROW EXECUTE FUNCTION pause_after_claim()",
    ] {
        sqlx::query(statement)
            .execute(&app.pool)
            .await
            .expect("install the pausing trigger");
    }
    let (status, launched) = app
        .post(
            &format!("/v1/campaigns/{campaign}/launch"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "launch: {launched}");

    let deadline = Instant::now() + DISPATCH_WAIT;
    let withdrawn = loop {
        let withdrawn: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state = 'failed' AND outcome = 'not_placed'",
        )
        .bind(campaign_id)
        .fetch_one(&app.pool)
        .await
        .expect("count withdrawn attempts");
        let handing_over: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state = 'handing_over'",
        )
        .bind(campaign_id)
        .fetch_one(&app.pool)
        .await
        .expect("count open attempts");
        if handing_over == 0 && withdrawn >= numbers.len() as i64 {
            break withdrawn;
        }
        assert!(
            Instant::now() < deadline,
            "{withdrawn} attempts withdrawn and {handing_over} still handing over after {DISPATCH_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        withdrawn,
        numbers.len() as i64,
        "the trigger made the pause land between claim and hand-over"
    );
    assert!(
        platform.calls().is_empty(),
        "no call was requested before the pause"
    );

    sqlx::query("DROP TRIGGER pause_after_claim ON attempts")
        .execute(&app.pool)
        .await
        .expect("remove the pausing trigger");

    let (status, resumed) = app
        .post(
            &format!("/v1/campaigns/{campaign}/resume"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "resume: {resumed}");
    let deadline = Instant::now() + DISPATCH_WAIT;
    while platform.calls().len() < numbers.len() {
        if Instant::now() >= deadline {
            let (_, page) = app
                .get(&format!("/v1/campaigns/{campaign}/contacts"), &admin)
                .await;
            panic!(
                "after the resume {} of {} contacts were called within {DISPATCH_WAIT:?}. Contacts: {page}",
                platform.calls().len(),
                numbers.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for contact in contacts(&app, &campaign).await {
        assert_eq!(
            contact["attempts_made"], 1,
            "the withdrawn attempt does not count: {contact}"
        );
    }
    app.finish().await;
    platform.stop().await;
}

#[tokio::test]
async fn cancel_closes_pending_contacts() {
    let platform = RecordingPlatform::start();
    let (app, start) = dispatching_app(&platform.url, 1.0).await;
    let admin = app.admin();
    let numbers = [
        "0491 570 006",
        "0491 570 156",
        "0491 570 157",
        "0491 570 158",
    ];
    let campaign = launch_washed(&app, &numbers, &sydney_date(start), 1).await;

    let calls = platform.wait_for_calls(1).await;
    let open_attempt = calls[0].attempt_id;
    let (status, cancelled) = app
        .post(
            &format!("/v1/campaigns/{campaign}/cancel"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "cancel: {cancelled}");
    assert_eq!(cancelled["state"], "cancelled");

    let items = contacts(&app, &campaign).await;
    let dialing: Vec<&Value> = items.iter().filter(|c| c["state"] == "dialing").collect();
    assert_eq!(
        dialing.len(),
        1,
        "the call in progress continues: {items:?}"
    );
    for contact in items.iter().filter(|c| c["state"] != "dialing") {
        assert_eq!(contact["state"], "cancelled", "{contact}");
        assert_eq!(contact["final_reason"], "campaign_cancelled", "{contact}");
        assert!(
            contact["attempts"].as_array().expect("attempts").is_empty(),
            "{contact}"
        );
    }

    // The call in progress ends with an outcome that would normally retry.
    record(&app, open_attempt, "started", None).await;
    record(&app, open_attempt, "ended", Some("no_answer")).await;
    let (contact, attempt) = attempt_view(&app, &campaign, open_attempt).await;
    assert_eq!(attempt["outcome"], "no_answer", "{attempt}");
    assert_ne!(
        contact["state"], "pending",
        "a cancelled campaign never requeues: {contact}"
    );
    assert_ne!(contact["state"], "dialing", "{contact}");
    assert_eq!(contact["final_reason"], "campaign_cancelled", "{contact}");

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        platform.calls().len(),
        1,
        "no call is requested after the cancel"
    );
    assert_eq!(
        attempt_rows(&app, &campaign, false).await.len(),
        1,
        "no attempt is opened after the cancel"
    );
    let (_, report) = app
        .get(&format!("/v1/campaigns/{campaign}/report"), &admin)
        .await;
    assert_eq!(report["state"], "cancelled", "{report}");
    assert_eq!(
        report["contacts_by_final_reason"]["campaign_cancelled"],
        numbers.len(),
        "{report}"
    );
    assert_eq!(
        transitions(&report),
        [("draft", "running"), ("running", "cancelled")],
        "{report}"
    );
    app.finish().await;
    platform.stop().await;
}

// ---------------------------------------------------------------------------
// Webhook security
// ---------------------------------------------------------------------------

/// A campaign with one recipient whose call the recording platform accepted.
struct OpenCall {
    app: TestApp,
    platform: RecordingPlatform,
    campaign: String,
    call: RecordedCall,
}

impl OpenCall {
    /// Launches the campaign and waits until its call is handed over.
    async fn start() -> Self {
        let platform = RecordingPlatform::start();
        let (app, start) = dispatching_app(&platform.url, 1.0).await;
        let campaign = launch_washed(&app, &["0491 570 006"], &sydney_date(start), 1).await;
        let call = platform.wait_for_calls(1).await[0].clone();
        wait_for_attempt_state(&app, &campaign, call.attempt_id, "handed_over").await;
        Self {
            app,
            platform,
            campaign,
            call,
        }
    }

    async fn finish(self) {
        self.app.finish().await;
        self.platform.stop().await;
    }
}

/// Posts a signed event and returns the status and the acknowledged status.
async fn acknowledge(app: &TestApp, body: &[u8]) -> (u16, String) {
    let (status, ack) = post_signed(app, body).await;
    (
        status,
        ack["status"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn webhook_rejects_bad_signatures() {
    let open = OpenCall::start().await;
    let app = &open.app;
    let attempt_id = open.call.attempt_id;
    assert!(
        open.call.signed,
        "the call request is signed with the platform secret"
    );
    assert_eq!(
        open.call.to, "+61491570006",
        "the platform receives the number in E.164"
    );

    // A forged end of the call with an opt-out must change nothing.
    let forged = event(attempt_id, "ended", Some("opted_out"));
    let now = Utc::now().timestamp();
    let other_body = event(attempt_id, "started", None);
    let rejected = [
        ("no signature", None),
        ("empty signature", Some(String::new())),
        ("malformed signature", Some("t=abc,v1=zz".to_owned())),
        (
            "wrong secret",
            Some(sign(b"not-the-platform-secret", now, &forged)),
        ),
        (
            "signature of another body",
            Some(sign(VOICE_SECRET, now, &other_body)),
        ),
        (
            "timestamp 301 s old",
            Some(sign(VOICE_SECRET, now - 301, &forged)),
        ),
        (
            "timestamp an hour old",
            Some(sign(VOICE_SECRET, now - 3_600, &forged)),
        ),
        (
            "timestamp 400 s ahead",
            Some(sign(VOICE_SECRET, now + 400, &forged)),
        ),
    ];
    for (label, signature) in rejected {
        let (status, problem) = post_event(app, &forged, signature).await;
        assert_eq!(status, 401, "{label}: {problem}");
        assert_eq!(problem["code"], "unauthorized", "{label}: {problem}");
    }

    let (contact, attempt) = attempt_view(app, &open.campaign, attempt_id).await;
    assert_eq!(
        attempt["state"], "handed_over",
        "rejected events change nothing: {attempt}"
    );
    assert!(
        attempt["outcome"].is_null(),
        "rejected events change nothing: {attempt}"
    );
    assert_eq!(
        contact["suppressed"], false,
        "a rejected opt-out suppresses nothing: {contact}"
    );
    assert_eq!(contact["state"], "dialing", "{contact}");
    open.finish().await;
}

#[tokio::test]
async fn webhook_events_are_idempotent_and_ordered() {
    let open = OpenCall::start().await;
    let app = &open.app;
    let campaign = &open.campaign;
    let attempt_id = open.call.attempt_id;

    let (status, problem) = post_signed(app, &event(Uuid::new_v4(), "started", None)).await;
    assert_eq!(status, 404, "unknown attempt: {problem}");
    assert_eq!(problem["code"], "not_found", "unknown attempt: {problem}");
    let (status, problem) = post_signed(app, b"{\"event_id\":").await;
    assert_eq!(status, 400, "malformed event: {problem}");
    let (status, problem) = post_signed(app, &event(attempt_id, "ended", None)).await;
    assert_eq!(status, 422, "ended without an outcome: {problem}");
    assert_eq!(problem["code"], "missing_outcome", "{problem}");

    let started = event(attempt_id, "started", None);
    assert_eq!(
        acknowledge(app, &started).await,
        (200, "recorded".to_owned())
    );
    assert_eq!(
        acknowledge(app, &started).await,
        (200, "duplicate".to_owned()),
        "a repeated event id"
    );

    record(app, attempt_id, "answered", None).await;
    let (_, attempt) = attempt_view(app, campaign, attempt_id).await;
    assert_eq!(attempt["state"], "connected", "{attempt}");

    let ended = event(attempt_id, "ended", Some("answered"));
    assert_eq!(acknowledge(app, &ended).await, (200, "recorded".to_owned()));
    assert_eq!(
        acknowledge(app, &ended).await,
        (200, "duplicate".to_owned()),
        "a repeated end"
    );

    // Late events arrive out of order after the end.
    record(app, attempt_id, "answered", None).await;
    record(app, attempt_id, "started", None).await;
    let (contact, attempt) = attempt_view(app, campaign, attempt_id).await;
    assert_eq!(
        attempt["state"], "ended",
        "a late answered event does not reopen the attempt: {attempt}"
    );
    assert_eq!(attempt["outcome"], "answered", "{attempt}");
    assert_eq!(contact["state"], "done", "{contact}");
    assert_eq!(contact["final_reason"], "answered", "{contact}");
    assert_eq!(contact["attempts_made"], 1, "{contact}");

    let report = wait_for_state(app, campaign, "completed", DISPATCH_WAIT).await;
    assert_eq!(report["attempts_made"], 1, "{report}");
    assert_eq!(open.platform.calls().len(), 1, "one call request in all");
    open.finish().await;
}

#[tokio::test]
async fn webhook_without_secret_rejects_events() {
    let app = TestApp::spawn_with(Options {
        voice_secret: None,
        ..Options::default()
    })
    .await;
    let (status, problem) = post_signed(&app, &event(Uuid::new_v4(), "started", None)).await;
    assert_eq!(status, 401, "{problem}");
    assert_eq!(problem["code"], "unauthorized", "{problem}");
    let (status, _) = post_event(&app, &event(Uuid::new_v4(), "started", None), None).await;
    assert_eq!(status, 401);
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Opt-out
// ---------------------------------------------------------------------------

#[tokio::test]
async fn opt_out_suppresses_number_for_client() {
    let platform = RecordingPlatform::start();
    let (app, start) = dispatching_app(&platform.url, 1.0).await;
    let admin = app.admin();
    let today = sydney_date(start);
    let campaign = launch_washed(&app, &["0491 570 156", "0491 570 157"], &today, 2).await;

    let calls = platform.wait_for_calls(2).await;
    let opting_out = calls
        .iter()
        .find(|c| c.to == "+61491570156")
        .expect("a call to the first recipient")
        .attempt_id;
    record(&app, opting_out, "started", None).await;
    record(&app, opting_out, "answered", None).await;
    record(&app, opting_out, "opt_out", None).await;
    record(&app, opting_out, "ended", Some("opted_out")).await;

    let items = contacts(&app, &campaign).await;
    let opted = contact_for(&items, "0491570156");
    assert_eq!(opted["suppressed"], true, "{opted}");
    assert_eq!(opted["state"], "done", "{opted}");
    assert_eq!(opted["final_reason"], "opted_out", "{opted}");
    assert_eq!(opted["last_outcome"], "opted_out", "{opted}");
    let other = contact_for(&items, "0491570157");
    assert_eq!(
        other["suppressed"], false,
        "only the number that opted out is suppressed: {other}"
    );
    let (_, report) = app
        .get(&format!("/v1/campaigns/{campaign}/report"), &admin)
        .await;
    assert_eq!(report["suppressed_contacts"], 1, "{report}");

    // A later campaign of the same client, with the number in another format.
    let second = app
        .create_campaign(json!({ "name": "Second campaign" }))
        .await;
    let (status, import) = app
        .import_csv(
            &second,
            &washed_csv(&["+61 (0)491 570 156", "0491570157"], &today),
        )
        .await;
    assert_eq!(status, 201, "import: {import}");
    assert_eq!(import["rows_accepted"], 2, "import: {import}");
    let items = contacts(&app, &second).await;
    let blocked = contact_for(&items, "0491570156");
    assert_eq!(blocked["suppressed"], true, "{blocked}");
    assert_eq!(blocked["blocked_reason"], "suppressed", "{blocked}");
    assert!(
        blocked["next_eligible_at"].is_null(),
        "a suppressed number is never eligible: {blocked}"
    );
    let other = contact_for(&items, "0491570157");
    assert_ne!(other["blocked_reason"], "suppressed", "{other}");

    // Suppression belongs to the client: another client's campaign may call the number.
    let tenant = create_tenant(&app.pool, "Other Partner").await;
    let token = token_for("partner_admin", Some(tenant.partner), &[tenant.client], 60);
    let (status, created) = app
        .post("/v1/campaigns", &token, valid_campaign(tenant.project))
        .await;
    assert_eq!(status, 201, "{created}");
    let foreign = created["id"].as_str().expect("id").to_owned();
    let response = app
        .http
        .post(app.url(&format!("/v1/campaigns/{foreign}/imports")))
        .bearer_auth(&token)
        .header("Content-Type", "text/csv")
        .body(washed_csv(&["0491 570 156"], &today))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let (status, page) = app
        .get(&format!("/v1/campaigns/{foreign}/contacts"), &token)
        .await;
    assert_eq!(status, 200, "{page}");
    let contact = &page["items"][0];
    assert_eq!(
        contact["suppressed"], false,
        "another client's list is separate: {contact}"
    );
    assert_ne!(contact["blocked_reason"], "suppressed", "{contact}");
    app.finish().await;
    platform.stop().await;
}

// ---------------------------------------------------------------------------
// Data safety
// ---------------------------------------------------------------------------

#[tokio::test]
async fn numbers_never_stored_or_returned() {
    let run = run_full_workflow().await;
    let nationals = all_nationals();

    for (label, body) in &run.responses {
        let found = leaks(body, &nationals);
        assert!(found.is_empty(), "the {label} response contains {found:?}");
    }
    assert!(
        run.contacts
            .iter()
            .all(|c| c["masked_number"].as_str().is_some_and(|m| m.contains('*'))),
        "every listed number is masked"
    );

    let url = run.app.url("");
    let database = run.app.database.clone();
    let database_name = database.clone();
    let dump = tokio::task::spawn_blocking(move || {
        std::process::Command::new("pg_dump")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "--no-password",
                &database,
            ])
            .output()
    })
    .await
    .expect("pg_dump task")
    .expect("pg_dump is installed and on PATH");
    assert!(
        dump.status.success(),
        "pg_dump of {database_name} failed (is PostgreSQL reachable at 127.0.0.1 as postgres?): {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(
        text.contains("COPY public.contacts"),
        "the dump contains the contacts table"
    );
    assert!(
        text.contains("COPY public.attempts"),
        "the dump contains the attempts table"
    );
    assert!(
        text.contains("+61 ******006"),
        "the dump contains the workflow's masked numbers"
    );
    let found = leaks(&text, &nationals);
    assert!(
        found.is_empty(),
        "the database of {url} contains recipient numbers in clear: {found:?}"
    );
    run.finish().await;
}
