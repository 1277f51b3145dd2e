//! Faults that operators report from real dialers, replayed against the
//! running product: lost hand-overs whose call goes ahead, results that race
//! a cancel, a second `ended` event, forwarded headers on the webhook and a
//! process without the platform's secret.
//!
//! Orders that matter are forced, never left to timing: a row lock held by
//! the test makes the webhook wait at a known point, and the test reads
//! `pg_stat_activity` to know that it waits. A voice platform run by the test
//! keeps chosen call requests waiting until the caller gives up. Every number is from
//! ACMA's list of fictitious numbers.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use outbound_http::clock::Clock;
use outbound_http::signing::{sign, verify, SIGNATURE_HEADER};
use outbound_http::voice::CallRequest;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::support::first_calling_minute;
use crate::support::{Options, TestApp, VOICE_SECRET};

/// Upper bound of every wait in these tests.
const WAIT: Duration = Duration::from_secs(30);

/// Time the dispatcher allows for one call request in these tests.
const HANDOVER_TIMEOUT: Duration = Duration::from_millis(300);

const OPEN_STATES: &str = "('handing_over', 'handed_over', 'connected')";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A contact file whose recipients were washed `not_registered` on the
/// Sydney date of `at`.
fn washed_csv(numbers: &[&str], at: DateTime<Utc>) -> String {
    let checked_on = at.with_timezone(&chrono_tz::Australia::Sydney).date_naive();
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

/// Starts a server whose dispatcher calls `platform` on a real-speed clock
/// from the next calling minute.
async fn dispatching_app(platform: &str, options: Options) -> (TestApp, DateTime<Utc>) {
    let start = first_calling_minute();
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        voice_platform_url: Some(platform.to_owned()),
        clock: Clock::accelerated(start, 1.0),
        handover_timeout: HANDOVER_TIMEOUT,
        ..options
    })
    .await;
    (app, start)
}

/// Creates a campaign of washed recipients and launches it; returns its id.
async fn launch(app: &TestApp, numbers: &[&str], start: DateTime<Utc>, capacity: i32) -> Uuid {
    let campaign = app
        .create_campaign(json!({ "capacity": capacity, "default_max_attempts": 3 }))
        .await;
    let (status, import) = app.import_csv(&campaign, &washed_csv(numbers, start)).await;
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
    Uuid::parse_str(&campaign).expect("campaign id")
}

/// A call event body with a new event id.
fn event(attempt_id: Uuid, kind: &str, outcome: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_id": Uuid::new_v4().to_string(),
        "attempt_id": attempt_id,
        "call_id": format!("ctl-{attempt_id}"),
        "type": kind,
        "outcome": outcome,
        "end_reason": outcome.map(|_| "completed"),
        "duration_seconds": outcome.map(|_| 42),
        "summary": outcome.map(|_| "Recipient listened to the offer."),
        "occurred_at": Utc::now(),
    }))
    .expect("serialise event")
}

/// Posts `body` to the webhook with a signature header and extra headers.
async fn post_event(
    app: &TestApp,
    body: &[u8],
    signature: Option<String>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url("/v1/voice/events"))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
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
        &[],
    )
    .await
}

/// Posts a signed event and expects it recorded.
async fn record(app: &TestApp, attempt_id: Uuid, kind: &str, outcome: Option<&str>) {
    let (status, body) = post_signed(app, &event(attempt_id, kind, outcome)).await;
    assert_eq!(status, 200, "{kind} event: {body}");
    assert_eq!(body["status"], "recorded", "{kind} event: {body}");
}

/// One attempt as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
struct AttemptRow {
    contact_id: Uuid,
    state: String,
    outcome: Option<String>,
    end_reason: Option<String>,
    ended_at: Option<DateTime<Utc>>,
}

async fn attempts_of(app: &TestApp, campaign: Uuid) -> Vec<AttemptRow> {
    sqlx::query_as(
        "SELECT contact_id, state, outcome, end_reason, ended_at FROM attempts
          WHERE campaign_id = $1 ORDER BY started_at, id",
    )
    .bind(campaign)
    .fetch_all(&app.pool)
    .await
    .expect("read attempts")
}

async fn attempt(app: &TestApp, attempt_id: Uuid) -> AttemptRow {
    sqlx::query_as(
        "SELECT contact_id, state, outcome, end_reason, ended_at FROM attempts WHERE id = $1",
    )
    .bind(attempt_id)
    .fetch_one(&app.pool)
    .await
    .expect("read the attempt")
}

/// One contact as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
struct ContactRow {
    state: String,
    attempts_made: i32,
    final_reason: Option<String>,
    next_attempt_at: Option<DateTime<Utc>>,
}

async fn contact(app: &TestApp, contact_id: Uuid) -> ContactRow {
    sqlx::query_as(
        "SELECT state, attempts_made, final_reason, next_attempt_at FROM contacts WHERE id = $1",
    )
    .bind(contact_id)
    .fetch_one(&app.pool)
    .await
    .expect("read the contact")
}

async fn open_attempts(app: &TestApp, campaign: Uuid) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state IN {OPEN_STATES}"
    ))
    .bind(campaign)
    .fetch_one(&app.pool)
    .await
    .expect("count open attempts")
}

/// Polls until the attempt is in `state`, and fails after [`WAIT`].
async fn wait_for_attempt_state(app: &TestApp, attempt_id: Uuid, state: &str) -> AttemptRow {
    let deadline = Instant::now() + WAIT;
    loop {
        let row = attempt(app, attempt_id).await;
        if row.state == state {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "attempt {attempt_id} did not become {state} within {WAIT:?}: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------
// A voice platform run by the test
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Received {
    attempt_id: Uuid,
    to: String,
    callback_url: String,
}

#[derive(Default)]
struct PlatformState {
    requests: Mutex<Vec<Received>>,
    /// Numbers (E.164) whose call requests are placed but never answered.
    hold: Mutex<HashSet<String>>,
}

async fn accept_call(
    state: web::Data<PlatformState>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let header = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if verify(VOICE_SECRET, header, &body, Utc::now().timestamp()).is_err() {
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(call) = serde_json::from_slice::<CallRequest>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    state
        .requests
        .lock()
        .expect("requests lock")
        .push(Received {
            attempt_id: call.attempt_id,
            to: call.to.clone(),
            callback_url: call.callback_url.clone(),
        });
    let hold = state.hold.lock().expect("hold lock").contains(&call.to);
    if hold {
        // The call is placed, but its answer never leaves.
        std::future::pending::<()>().await;
    }
    HttpResponse::Accepted().json(json!({ "call_id": format!("ctl-{}", call.attempt_id) }))
}

struct Platform {
    url: String,
    state: web::Data<PlatformState>,
    handle: actix_web::dev::ServerHandle,
}

impl Platform {
    /// Starts the platform; requests for `hold` (E.164) are never answered.
    fn start(hold: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("local address");
        let state = web::Data::new(PlatformState::default());
        state
            .hold
            .lock()
            .expect("hold lock")
            .extend(hold.iter().map(|n| (*n).to_owned()));
        let data = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/calls", web::post().to(accept_call))
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
            state,
            handle,
        }
    }

    fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().expect("requests lock").clone()
    }

    /// Waits for the first request to `to` (E.164).
    async fn wait_for_request(&self, to: &str) -> Received {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(found) = self.requests().into_iter().find(|r| r.to == to) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no call request to a number ending {} within {WAIT:?}",
                &to[to.len() - 3..]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a request to `to` (E.164) for another attempt than `other`.
    async fn wait_for_other_attempt(&self, to: &str, other: Uuid) -> Received {
        let deadline = Instant::now() + WAIT;
        loop {
            let requests = self.requests();
            if let Some(found) = requests
                .into_iter()
                .find(|r| r.to == to && r.attempt_id != other)
            {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no second attempt to a number ending {} within {WAIT:?}",
                &to[to.len() - 3..]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Answers requests to `to` (E.164) from now on.
    fn release(&self, to: &str) {
        self.state.hold.lock().expect("hold lock").remove(to);
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

// ---------------------------------------------------------------------------
// Lost hand-overs
// ---------------------------------------------------------------------------

/// The platform places the call but its answer is lost: the dispatcher's
/// request times out. The call goes ahead, so the attempt must keep holding
/// the campaign's only slot until its result arrives, and the next contact
/// is called only after that.
#[tokio::test]
async fn dialing_lost_handover_keeps_slot() {
    let platform = Platform::start(&["+61491570006"]);
    let (app, start) = dispatching_app(&platform.url, Options::default()).await;
    let campaign = launch(&app, &["0491 570 006", "0491 570 156"], start, 1).await;

    let lost = platform.wait_for_request("+61491570006").await;
    // A second campaign launched now is first claimed by a later dispatcher
    // round, so its call request proves that the round which lost the
    // hand-over has given up on it and finished recording it.
    launch(&app, &["0491 570 157"], start, 1).await;
    platform.wait_for_request("+61491570157").await;

    let row = attempt(&app, lost.attempt_id).await;
    assert!(
        ["handing_over", "handed_over"].contains(&row.state.as_str()),
        "a lost hand-over may have placed the call, so the attempt stays open: {row:?}"
    );
    assert_eq!(
        attempts_of(&app, campaign).await.len(),
        1,
        "the campaign's only slot is still taken: no second contact is claimed"
    );

    // The late success: the call started and ends answered.
    record(&app, lost.attempt_id, "started", None).await;
    let row = attempt(&app, lost.attempt_id).await;
    assert_eq!(row.state, "handed_over", "{row:?}");
    assert_eq!(open_attempts(&app, campaign).await, 1);
    record(&app, lost.attempt_id, "ended", Some("answered")).await;
    let row = attempt(&app, lost.attempt_id).await;
    assert_eq!(row.state, "ended", "{row:?}");
    assert_eq!(row.outcome.as_deref(), Some("answered"), "{row:?}");
    let first = contact(&app, row.contact_id).await;
    assert_eq!(first.state, "done", "{first:?}");
    assert_eq!(first.final_reason.as_deref(), Some("answered"), "{first:?}");
    assert_eq!(first.attempts_made, 1, "{first:?}");

    // The slot, released once, goes to the next contact.
    platform.wait_for_request("+61491570156").await;
    let sent_006 = platform
        .requests()
        .iter()
        .filter(|r| r.to == "+61491570006")
        .count();
    assert_eq!(sent_006, 1, "the answered contact is never called again");
    app.finish().await;
    platform.stop().await;
}

/// A lost hand-over that no event ever explains becomes `unknown` after the
/// result timeout, counts against the contact and is not redialed at once. A
/// result that arrives after that is kept on the attempt, and a second
/// `ended` under another event id changes nothing.
#[tokio::test]
async fn dialing_lost_handover_expires_unknown() {
    let platform = Platform::start(&["+61491570006"]);
    let (app, start) = dispatching_app(
        &platform.url,
        Options {
            result_timeout_seconds: 2,
            ..Options::default()
        },
    )
    .await;
    launch(&app, &["0491 570 006", "0491 570 156"], start, 1).await;
    let lost = platform.wait_for_request("+61491570006").await;

    let row = wait_for_attempt_state(&app, lost.attempt_id, "unknown").await;
    assert_eq!(row.outcome.as_deref(), Some("unknown"), "{row:?}");
    assert_eq!(row.end_reason.as_deref(), Some("handover_lost"), "{row:?}");
    let first = contact(&app, row.contact_id).await;
    assert_eq!(first.state, "pending", "{first:?}");
    assert_eq!(
        first.attempts_made, 1,
        "the unknown attempt counts: {first:?}"
    );
    let retry_at = first.next_attempt_at.expect("a retry is scheduled");
    let ended_at = row.ended_at.expect("ended_at");
    assert!(
        retry_at >= ended_at + chrono::Duration::minutes(240),
        "no silent redial: the retry waits for the unknown delay ({retry_at} after {ended_at})"
    );

    // The slot freed by the timeout goes to the next contact.
    let next = platform.wait_for_request("+61491570156").await;
    record(&app, next.attempt_id, "ended", Some("busy")).await;

    // The late result of the lost hand-over arrives, then a contradicting one.
    record(&app, lost.attempt_id, "ended", Some("answered")).await;
    let (status, body) =
        post_signed(&app, &event(lost.attempt_id, "ended", Some("no_answer"))).await;
    assert_eq!(status, 200, "second ended event: {body}");
    let row = attempt(&app, lost.attempt_id).await;
    assert_eq!(row.state, "ended", "{row:?}");
    assert_eq!(
        row.outcome.as_deref(),
        Some("answered"),
        "the late result is kept, and a second one does not replace it: {row:?}"
    );
    let first = contact(&app, row.contact_id).await;
    assert_eq!(
        first.state, "done",
        "never called again after an answer: {first:?}"
    );
    assert_eq!(first.final_reason.as_deref(), Some("answered"), "{first:?}");
    // Only this contact's attempts: the test clock skips ahead to the busy
    // contact's retry, which may already be open.
    let open_for_contact: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM attempts WHERE contact_id = $1 AND state IN {OPEN_STATES}"
    ))
    .bind(row.contact_id)
    .fetch_one(&app.pool)
    .await
    .expect("count the contact's open attempts");
    assert_eq!(
        open_for_contact, 0,
        "no attempt of the answered contact is open"
    );
    let sent_006 = platform
        .requests()
        .iter()
        .filter(|r| r.to == "+61491570006")
        .count();
    assert_eq!(sent_006, 1, "the lost hand-over was never sent again");
    app.finish().await;
    platform.stop().await;
}

/// The lost hand-over's call was answered, but its result arrives only
/// while the retry's call is in progress. The retry's own result must then
/// end the contact as answered instead of scheduling another call.
#[tokio::test]
async fn dialing_late_answer_stops_retries() {
    let platform = Platform::start(&["+61491570006"]);
    let (app, start) = dispatching_app(
        &platform.url,
        Options {
            result_timeout_seconds: 2,
            ..Options::default()
        },
    )
    .await;
    let campaign = launch(&app, &["0491 570 006"], start, 1).await;
    let lost = platform.wait_for_request("+61491570006").await;
    // The first request stays unanswered; the retry's is answered. The test
    // clock skips to the retry's due time once the first attempt expires.
    platform.release("+61491570006");
    let row = wait_for_attempt_state(&app, lost.attempt_id, "unknown").await;
    let retry = platform
        .wait_for_other_attempt("+61491570006", lost.attempt_id)
        .await;
    wait_for_attempt_state(&app, retry.attempt_id, "handed_over").await;

    record(&app, lost.attempt_id, "ended", Some("answered")).await;
    record(&app, retry.attempt_id, "ended", Some("no_answer")).await;

    let first = attempt(&app, lost.attempt_id).await;
    assert_eq!(first.outcome.as_deref(), Some("answered"), "{first:?}");
    let ended = contact(&app, row.contact_id).await;
    assert_eq!(ended.state, "done", "no call after an answer: {ended:?}");
    assert_eq!(ended.final_reason.as_deref(), Some("answered"), "{ended:?}");
    assert_eq!(ended.next_attempt_at, None, "no retry scheduled: {ended:?}");
    assert_eq!(ended.attempts_made, 2, "{ended:?}");
    assert_eq!(open_attempts(&app, campaign).await, 0);
    app.finish().await;
    platform.stop().await;
}

// ---------------------------------------------------------------------------
// Out-of-order, repeated and contradicting events
// ---------------------------------------------------------------------------

/// `ended` before `started`, a repeated `ended` under a new event id, and
/// events for unknown attempts: the first result is kept, the slot is
/// released once and nothing reopens.
#[tokio::test]
async fn dialing_events_keep_first_result() {
    let platform = Platform::start(&[]);
    let (app, start) = dispatching_app(&platform.url, Options::default()).await;
    let campaign = launch(&app, &["0491 570 006", "0491 570 156"], start, 1).await;
    let first = platform.wait_for_request("+61491570006").await;
    wait_for_attempt_state(&app, first.attempt_id, "handed_over").await;

    // The result overtakes the start of the call.
    record(&app, first.attempt_id, "ended", Some("answered")).await;
    let ended_at = attempt(&app, first.attempt_id).await.ended_at;
    record(&app, first.attempt_id, "started", None).await;
    record(&app, first.attempt_id, "answered", None).await;
    // A platform that reports the end twice, with another outcome.
    let (status, body) =
        post_signed(&app, &event(first.attempt_id, "ended", Some("no_answer"))).await;
    assert_eq!(status, 200, "second ended event: {body}");
    let row = attempt(&app, first.attempt_id).await;
    assert_eq!(row.state, "ended", "nothing reopens the attempt: {row:?}");
    assert_eq!(
        row.outcome.as_deref(),
        Some("answered"),
        "the first result is kept: {row:?}"
    );
    assert_eq!(row.ended_at, ended_at, "the end time is kept: {row:?}");
    let done = contact(&app, row.contact_id).await;
    assert_eq!(done.state, "done", "{done:?}");
    assert_eq!(done.final_reason.as_deref(), Some("answered"), "{done:?}");

    // An event for an attempt that does not exist.
    let (status, _) = post_signed(&app, &event(Uuid::new_v4(), "ended", Some("busy"))).await;
    assert_eq!(status, 404);

    // The slot was released once: the second contact is called, and the
    // campaign never has two calls open.
    let second = platform.wait_for_request("+61491570156").await;
    assert_eq!(open_attempts(&app, campaign).await, 1);
    record(&app, second.attempt_id, "ended", Some("answered")).await;
    assert_eq!(open_attempts(&app, campaign).await, 0);
    assert_eq!(platform.requests().len(), 2, "one call request per contact");
    app.finish().await;
    platform.stop().await;
}

// ---------------------------------------------------------------------------
// Cancel while a result is being recorded
// ---------------------------------------------------------------------------

/// Counts other sessions of the test database that wait for a lock.
async fn lock_waiters(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("read pg_stat_activity")
}

/// A call ends `no_answer` (which would schedule a retry) at the moment the
/// campaign is cancelled. The webhook reads the campaign as running, then
/// waits for a row lock that the test took, and the cancel is sent meanwhile. Once
/// both are done, no contact of the cancelled campaign may be left pending
/// with a retry.
#[tokio::test]
async fn dialing_cancel_drops_racing_retry() {
    let platform = Platform::start(&[]);
    let (app, start) = dispatching_app(&platform.url, Options::default()).await;
    let campaign = launch(&app, &["0491 570 006", "0491 570 156"], start, 1).await;
    let call = platform.wait_for_request("+61491570006").await;
    wait_for_attempt_state(&app, call.attempt_id, "handed_over").await;

    let mut holder = PgConnection::connect_with(&app.pool.connect_options())
        .await
        .expect("connect");
    let mut lock = holder.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM attempts WHERE id = $1 FOR UPDATE")
        .bind(call.attempt_id)
        .execute(&mut *lock)
        .await
        .expect("lock the attempt");

    let webhook = {
        let (http, url) = (app.http.clone(), app.url("/v1/voice/events"));
        let body = event(call.attempt_id, "ended", Some("no_answer"));
        tokio::spawn(async move {
            let signature = sign(VOICE_SECRET, Utc::now().timestamp(), &body);
            let response = http
                .post(url)
                .header("Content-Type", "application/json")
                .header(SIGNATURE_HEADER, signature)
                .body(body)
                .send()
                .await
                .expect("webhook request");
            response.status().as_u16()
        })
    };
    let deadline = Instant::now() + WAIT;
    while lock_waiters(&app).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the webhook did not reach the locked attempt"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let cancel = {
        let (http, url, token) = (
            app.http.clone(),
            app.url(&format!("/v1/campaigns/{campaign}/cancel")),
            app.admin(),
        );
        tokio::spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .expect("cancel request");
            response.status().as_u16()
        })
    };
    // The cancel either finishes or waits behind the webhook's statement.
    let deadline = Instant::now() + WAIT;
    while !cancel.is_finished() && lock_waiters(&app).await < 2 {
        assert!(
            Instant::now() < deadline,
            "the cancel neither ran nor waited"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lock.commit().await.expect("release the attempt");
    holder.close().await.ok();

    assert_eq!(cancel.await.expect("cancel task"), 200, "cancel");
    assert_eq!(webhook.await.expect("webhook task"), 200, "ended event");

    let row = attempt(&app, call.attempt_id).await;
    assert_eq!(row.outcome.as_deref(), Some("no_answer"), "{row:?}");
    let called = contact(&app, row.contact_id).await;
    assert!(
        called.state != "pending" && called.next_attempt_at.is_none(),
        "a cancelled campaign keeps no retry: {called:?}"
    );
    assert_eq!(
        called.final_reason.as_deref(),
        Some("campaign_cancelled"),
        "{called:?}"
    );
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts WHERE campaign_id = $1 AND state IN ('pending', 'dialing')",
    )
    .bind(campaign)
    .fetch_one(&app.pool)
    .await
    .expect("count contacts");
    assert_eq!(
        pending, 0,
        "every contact of the cancelled campaign is closed"
    );
    let (_, report) = app
        .get(&format!("/v1/campaigns/{campaign}/report"), &app.admin())
        .await;
    assert_eq!(report["state"], "cancelled", "{report}");
    assert_eq!(
        report["contacts_by_final_reason"]["campaign_cancelled"], 2,
        "{report}"
    );
    app.finish().await;
    platform.stop().await;
}

// ---------------------------------------------------------------------------
// Webhook and configuration
// ---------------------------------------------------------------------------

/// Forwarded headers neither admit a bad request nor move the callback: the
/// call request names the configured public URL, a valid signature is valid
/// whatever the headers claim, and a stale or foreign one is refused.
#[tokio::test]
async fn dialing_webhook_ignores_forwarded_headers() {
    let platform = Platform::start(&[]);
    let (app, start) = dispatching_app(&platform.url, Options::default()).await;
    let campaign = app
        .create_campaign(json!({ "capacity": 1, "default_max_attempts": 3 }))
        .await;
    let (status, import) = app
        .import_csv(&campaign, &washed_csv(&["0491 570 006"], start))
        .await;
    assert_eq!(status, 201, "import: {import}");
    let launched = app
        .http
        .post(app.url(&format!("/v1/campaigns/{campaign}/launch")))
        .bearer_auth(app.admin())
        .header("X-Forwarded-Host", "attacker.invalid")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "host=attacker.invalid;proto=https")
        .json(&json!({}))
        .send()
        .await
        .expect("launch");
    assert_eq!(launched.status(), 200);
    let call = platform.wait_for_request("+61491570006").await;
    assert_eq!(
        call.callback_url,
        format!("{}/v1/voice/events", app.base),
        "the callback is the configured public URL"
    );

    let forwarded = [
        ("X-Forwarded-Host", "attacker.invalid"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-For", "127.0.0.1"),
        (
            "Forwarded",
            "for=127.0.0.1;host=attacker.invalid;proto=https",
        ),
    ];
    let body = event(call.attempt_id, "ended", Some("opted_out"));
    let now = Utc::now().timestamp();
    let foreign_url = format!("https://attacker.invalid/v1/voice/events{}", now);
    let rejected = [
        ("no signature", None),
        (
            "stale timestamp",
            Some(sign(VOICE_SECRET, now - 301, &body)),
        ),
        (
            "signature over the URL the forwarded headers name",
            Some(sign(VOICE_SECRET, now, foreign_url.as_bytes())),
        ),
        (
            "another secret",
            Some(sign(b"another-platform", now, &body)),
        ),
    ];
    for (label, signature) in rejected {
        let (status, problem) = post_event(&app, &body, signature, &forwarded).await;
        assert_eq!(status, 401, "{label}: {problem}");
    }
    let row = attempt(&app, call.attempt_id).await;
    assert!(
        row.outcome.is_none(),
        "rejected events change nothing: {row:?}"
    );
    let suppressed: i64 = sqlx::query_scalar("SELECT count(*) FROM suppressions")
        .fetch_one(&app.pool)
        .await
        .expect("count suppressions");
    assert_eq!(suppressed, 0, "a rejected opt-out suppresses nothing");

    let started = event(call.attempt_id, "started", None);
    let signature = sign(VOICE_SECRET, Utc::now().timestamp(), &started);
    let (status, ack) = post_event(&app, &started, Some(signature), &forwarded).await;
    assert_eq!(
        status, 200,
        "a valid signature is valid whatever the headers: {ack}"
    );
    app.finish().await;
    platform.stop().await;
}

/// A server without the platform secret logs a warning, rejects every
/// webhook and claims no contact. Failing its calls would spend each
/// contact's attempts on calls that never happen.
#[tokio::test]
async fn dialing_without_secret_claims_nothing() {
    let platform = Platform::start(&[]);
    let start = first_calling_minute();
    // A fast clock, so a dispatcher that failed calls would use up each
    // contact's three attempts within the wait below.
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        voice_platform_url: Some(platform.url.clone()),
        voice_secret: None,
        clock: Clock::accelerated(start, 3_600.0),
        ..Options::default()
    })
    .await;
    let campaign = launch(&app, &["0491 570 006"], start, 1).await;
    let (status, problem) = post_signed(&app, &event(Uuid::new_v4(), "started", None)).await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no voice platform secret")),
        "the refusal says why: {problem}"
    );

    // No event marks a round that claimed nothing, so the test waits ten
    // idle ticks of the dispatcher.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let attempts = attempts_of(&app, campaign).await;
    assert!(attempts.is_empty(), "no attempt is opened: {attempts:?}");
    assert!(platform.requests().is_empty(), "no call is requested");
    app.finish().await;
    platform.stop().await;
}

// ---------------------------------------------------------------------------
// The simulator's command line
// ---------------------------------------------------------------------------

/// `outbound voice-sim` exposes the simulator's faults and refuses rates
/// outside 0.0 to 1.0 before it listens.
#[test]
fn dialing_voice_sim_fault_flags() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_outbound"))
        .args(["voice-sim", "--help"])
        .output()
        .expect("run outbound voice-sim --help");
    assert!(help.status.success(), "voice-sim --help");
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--latency-min-ms",
        "--latency-max-ms",
        "--failure-rate",
        "--late-response-rate",
        "--late-response-ms",
        "--no-response-rate",
        "--drop-rate",
        "--duplicate-rate",
        "--reorder-events",
        "--results-only",
    ] {
        assert!(text.contains(flag), "help lists {flag}: {text}");
    }
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_outbound"))
        .args([
            "voice-sim",
            "--listen",
            "127.0.0.1:0",
            "--duplicate-rate",
            "1.5",
        ])
        .output()
        .expect("run outbound voice-sim");
    assert!(!refused.status.success(), "a rate above 1.0 is refused");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--duplicate-rate must be between 0.0 and 1.0"),
        "the error names the flag: {stderr}"
    );
}

/// A call summary or end reason that repeats a number the recipient spoke is
/// stored with the number hidden, because reports and exports show both.
#[tokio::test]
async fn dialing_summary_hides_spoken_numbers() {
    let platform = Platform::start(&[]);
    let (app, start) = dispatching_app(&platform.url, Options::default()).await;
    launch(&app, &["0491 570 006"], start, 1).await;
    let call = platform.wait_for_request("+61491570006").await;
    wait_for_attempt_state(&app, call.attempt_id, "handed_over").await;

    let body = serde_json::to_vec(&json!({
        "event_id": Uuid::new_v4().to_string(),
        "attempt_id": call.attempt_id,
        "call_id": format!("ctl-{}", call.attempt_id),
        "type": "ended",
        "outcome": "answered",
        "end_reason": "callback 0491570158",
        "duration_seconds": 42,
        "summary": "Asked to be called on 0491 570 157 or +61 491 570 159 after 5pm.",
        "occurred_at": Utc::now(),
    }))
    .expect("serialise event");
    let (status, reply) = post_signed(&app, &body).await;
    assert_eq!(status, 200, "{reply}");

    let (summary, end_reason): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT summary, end_reason FROM attempts WHERE id = $1")
            .bind(call.attempt_id)
            .fetch_one(&app.pool)
            .await
            .expect("read the attempt");
    let summary = summary.expect("summary stored");
    let end_reason = end_reason.expect("end reason stored");
    for text in [&summary, &end_reason] {
        assert!(!text.contains("570"), "a number is stored: {text}");
        assert!(text.contains("[hidden]"), "{text}");
    }
    assert!(summary.contains("after 5pm"), "the rest is kept: {summary}");
    app.finish().await;
    platform.stop().await;
}

/// Events with a negative duration or an event id over 200 characters are
/// rejected before any attempt is looked up.
#[tokio::test]
async fn dialing_event_bad_fields_rejected() {
    let app = TestApp::spawn_with(Options::default()).await;
    for (field, value) in [
        ("duration_seconds", json!(-50)),
        ("event_id", json!("e".repeat(201))),
    ] {
        let mut event: Value =
            serde_json::from_slice(&event(Uuid::new_v4(), "ended", Some("answered")))
                .expect("event json");
        event[field] = value;
        let body = serde_json::to_vec(&event).expect("serialise event");
        let (status, reply) = post_signed(&app, &body).await;
        assert_eq!(status, 422, "{field}: {reply}");
        assert_eq!(reply["code"], "invalid_event", "{field}: {reply}");
    }
    app.finish().await;
}
