//! A simulated voice platform for demos and tests. It speaks the same signed
//! HTTP contract as a real platform: it accepts `POST /v1/calls`, answers
//! `202` with a call id, and later posts signed call events to the request's
//! callback URL with a realistic mix of outcomes.
//!
//! [`Faults`] make it misbehave the way real platforms do (slow or missing
//! responses, lost, repeated and reordered events), and its [`Ledger`] records
//! every request and call so tests can compare the service's records with
//! what the platform did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use outbound_domain::retry::Outcome;
use rand::Rng;
use uuid::Uuid;

use crate::signing::{sign, verify, SIGNATURE_HEADER};
use crate::voice::{CallAccepted, CallEvent, CallEventType, CallRequest};

/// Simulator settings.
#[derive(Clone)]
pub struct SimulatorConfig {
    pub secret: Arc<Vec<u8>>,
    /// Shortest and longest real time from request to the ended event, in milliseconds.
    pub call_duration_ms: (u64, u64),
    /// Share of call requests answered with a 503 and never placed, 0.0 to 1.0.
    pub failure_rate: f64,
}

/// Departures from a well-behaved platform. The default has none, so the
/// simulator responds at once and delivers every event once, in order.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Shortest and longest extra delay before responding to a call request, in milliseconds.
    pub latency_ms: (u64, u64),
    /// Share of call requests, 0.0 to 1.0, whose call is placed but whose
    /// `202` is sent only `late_response_ms` after the request.
    pub late_response_rate: f64,
    /// Delay of a late response, in milliseconds. Set it above the caller's
    /// hand-over timeout so the caller gives up first.
    pub late_response_ms: u64,
    /// Share of call requests, 0.0 to 1.0, whose call is placed but which get
    /// no response: the request is held until the caller disconnects.
    pub no_response_rate: f64,
    /// Share of call events, 0.0 to 1.0, that are never sent.
    pub drop_rate: f64,
    /// Share of call events, 0.0 to 1.0, sent twice at once with the same event id.
    pub duplicate_rate: f64,
    /// Sends each call's events in a random order.
    pub reorder_events: bool,
    /// Sends only the `ended` and `opt_out` events, like a platform that
    /// reports results alone.
    pub results_only: bool,
}

/// The delivery state of a placed call's `ended` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Not sent yet.
    Pending,
    /// The service acknowledged it with a 2xx status.
    Delivered,
    /// Dropped on purpose by [`Faults::drop_rate`].
    Dropped,
    /// The service rejected it with a 4xx status.
    Rejected(u16),
    /// Every try failed (no connection, timeout or a 5xx status).
    Undeliverable,
}

/// One call the simulator placed.
#[derive(Debug, Clone)]
pub struct PlacedCall {
    pub attempt_id: Uuid,
    /// The number called, in E.164.
    pub to: String,
    pub outcome: Outcome,
    pub ended: Delivery,
}

/// One call request as received, after its signature was verified.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub attempt_id: Uuid,
    pub to: String,
    pub received_at: Instant,
}

/// Everything the simulator received and did, kept in memory.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Every verified call request in order of arrival, repeats included.
    pub requests: Vec<ReceivedRequest>,
    /// Placed calls by attempt id; a repeated request places no second call.
    pub calls: HashMap<Uuid, PlacedCall>,
}

pub struct SimulatorState {
    config: SimulatorConfig,
    faults: Faults,
    http: reqwest::Client,
    /// Call ids by attempt id: a repeated request gets the first call id back.
    calls: Mutex<HashMap<Uuid, String>>,
    ledger: Mutex<Ledger>,
}

impl SimulatorState {
    pub fn new(config: SimulatorConfig) -> Self {
        Self::with_faults(config, Faults::default())
    }

    pub fn with_faults(config: SimulatorConfig, faults: Faults) -> Self {
        Self {
            config,
            faults,
            http: reqwest::Client::new(),
            calls: Mutex::new(HashMap::new()),
            ledger: Mutex::new(Ledger::default()),
        }
    }

    /// Returns a copy of the ledger as it is now.
    pub fn ledger(&self) -> Ledger {
        self.lock_ledger().clone()
    }

    /// Returns the number of calls placed so far, without copying the ledger.
    pub fn placed_calls(&self) -> usize {
        self.lock_ledger().calls.len()
    }

    fn lock_ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record_ended(&self, attempt_id: Uuid, delivery: Delivery) {
        if let Some(call) = self.lock_ledger().calls.get_mut(&attempt_id) {
            call.ended = delivery;
        }
    }
}

/// Draws `true` with probability `rate`, clamped to 0.0 to 1.0.
fn chance(rate: f64) -> bool {
    rate > 0.0 && rand::thread_rng().gen_bool(rate.clamp(0.0, 1.0))
}

/// The simulator's response to one call request.
enum Reply {
    Now,
    After(Duration),
    Never,
}

/// Outcome shares of the simulated calls, in percent.
const OUTCOME_MIX: [(Outcome, u32); 6] = [
    (Outcome::Answered, 45),
    (Outcome::NoAnswer, 22),
    (Outcome::Busy, 10),
    (Outcome::Voicemail, 14),
    (Outcome::OptedOut, 5),
    (Outcome::Failed, 4),
];

const SUMMARIES: [&str; 5] = [
    "Recipient listened to the offer and asked for details by email.",
    "Recipient confirmed the appointment time.",
    "Recipient was not interested and the call ended politely.",
    "Recipient asked to be called back next week about the plan.",
    "Recipient agreed to review the information sent after the call.",
];

fn pick_outcome(rng: &mut impl Rng) -> Outcome {
    let mut roll = rng.gen_range(0..100);
    for (outcome, share) in OUTCOME_MIX {
        if roll < share {
            return outcome;
        }
        roll -= share;
    }
    Outcome::Answered
}

/// Accept a call request (simulated).
#[post("/v1/calls")]
pub async fn accept_call(
    state: web::Data<SimulatorState>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let header = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if let Err(error) = verify(&state.config.secret, header, &body, Utc::now().timestamp()) {
        tracing::warn!(reason = %error, "simulator rejected a call request");
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(call) = serde_json::from_slice::<CallRequest>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    state.lock_ledger().requests.push(ReceivedRequest {
        attempt_id: call.attempt_id,
        to: call.to.clone(),
        received_at: Instant::now(),
    });

    let faults = &state.faults;
    let (low, high) = faults.latency_ms;
    if high > 0 {
        let delay = rand::thread_rng().gen_range(low..=high.max(low));
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }

    let (call_id, first) = {
        let mut calls = state
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match calls.get(&call.attempt_id) {
            Some(existing) => (existing.clone(), false),
            None => {
                if chance(state.config.failure_rate) {
                    return HttpResponse::ServiceUnavailable().finish();
                }
                let id = format!("sim-{}", Uuid::new_v4());
                calls.insert(call.attempt_id, id.clone());
                (id, true)
            }
        }
    };
    let reply = if !first {
        Reply::Now
    } else if chance(faults.no_response_rate) {
        Reply::Never
    } else if chance(faults.late_response_rate) {
        Reply::After(Duration::from_millis(faults.late_response_ms))
    } else {
        Reply::Now
    };
    if first {
        start_call(&state, call, call_id.clone());
    }

    match reply {
        Reply::Now => {}
        Reply::After(delay) => tokio::time::sleep(delay).await,
        // Held until the caller gives up and closes the connection, which
        // drops this future.
        Reply::Never => std::future::pending::<()>().await,
    }
    HttpResponse::Accepted().json(CallAccepted { call_id })
}

/// Records a newly placed call in the ledger and plays its events in the
/// background.
fn start_call(state: &web::Data<SimulatorState>, call: CallRequest, call_id: String) {
    let outcome = pick_outcome(&mut rand::thread_rng());
    state.lock_ledger().calls.insert(
        call.attempt_id,
        PlacedCall {
            attempt_id: call.attempt_id,
            to: call.to.clone(),
            outcome,
            ended: Delivery::Pending,
        },
    );
    let state = state.clone();
    tokio::spawn(async move { play_call(state, call, call_id, outcome).await });
}

/// Sends the events of one simulated call.
async fn play_call(
    state: web::Data<SimulatorState>,
    call: CallRequest,
    call_id: String,
    outcome: Outcome,
) {
    let (total_ms, summary_index) = {
        let mut rng = rand::thread_rng();
        let (low, high) = state.config.call_duration_ms;
        (
            rng.gen_range(low..=high.max(low)),
            rng.gen_range(0..SUMMARIES.len()),
        )
    };
    let event = |event_type: CallEventType| CallEvent {
        event_id: Uuid::new_v4().to_string(),
        attempt_id: call.attempt_id,
        call_id: Some(call_id.clone()),
        event_type,
        outcome: None,
        end_reason: None,
        duration_seconds: None,
        summary: None,
        occurred_at: Utc::now(),
    };
    let mut events = vec![(total_ms / 4, event(CallEventType::Started))];
    let answered = matches!(outcome, Outcome::Answered | Outcome::OptedOut);
    if answered {
        events.push((total_ms / 4, event(CallEventType::Answered)));
    }
    if outcome == Outcome::OptedOut {
        events.push((total_ms / 4, event(CallEventType::OptOut)));
    }
    let mut ended = event(CallEventType::Ended);
    ended.outcome = Some(outcome);
    ended.end_reason = Some(match outcome {
        Outcome::Answered => "completed".into(),
        Outcome::OptedOut => "recipient_requested_end".into(),
        Outcome::Failed => "network_error".into(),
        other => other.as_str().into(),
    });
    ended.duration_seconds = Some(if answered {
        30 + (total_ms % 240) as i32
    } else {
        0
    });
    ended.summary = match outcome {
        Outcome::Answered => Some(SUMMARIES[summary_index].into()),
        Outcome::OptedOut => {
            Some("Recipient asked not to be called again; the call ended at once.".into())
        }
        _ => None,
    };
    events.push((total_ms / 4, ended));

    let faults = &state.faults;
    if faults.results_only {
        events.retain(|(_, event)| {
            matches!(
                event.event_type,
                CallEventType::Ended | CallEventType::OptOut
            )
        });
    }
    if faults.reorder_events {
        use rand::seq::SliceRandom;
        events.shuffle(&mut rand::thread_rng());
    }
    for (delay, mut event) in events {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let is_ended = event.event_type == CallEventType::Ended;
        if chance(faults.drop_rate) {
            if is_ended {
                state.record_ended(call.attempt_id, Delivery::Dropped);
            }
            continue;
        }
        event.occurred_at = Utc::now();
        let delivery = if chance(faults.duplicate_rate) {
            let (first, second) = futures_util::future::join(
                send_event(&state, &call.callback_url, &event),
                send_event(&state, &call.callback_url, &event),
            )
            .await;
            if first == Delivery::Delivered {
                first
            } else {
                second
            }
        } else {
            send_event(&state, &call.callback_url, &event).await
        };
        if is_ended {
            state.record_ended(call.attempt_id, delivery);
        }
    }
}

/// Posts one event, trying again on connection errors and 5xx statuses.
async fn send_event(state: &SimulatorState, url: &str, event: &CallEvent) -> Delivery {
    let Ok(body) = serde_json::to_vec(event) else {
        return Delivery::Undeliverable;
    };
    for attempt in 0..5 {
        let signature = sign(&state.config.secret, Utc::now().timestamp(), &body);
        let result = state
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .timeout(Duration::from_secs(10))
            .body(body.clone())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => return Delivery::Delivered,
            Ok(response) if response.status().is_client_error() => {
                tracing::warn!(attempt_id = %event.attempt_id, status = response.status().as_u16(), "the service rejected a simulated call event");
                return Delivery::Rejected(response.status().as_u16());
            }
            _ => tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await,
        }
    }
    tracing::warn!(attempt_id = %event.attempt_id, "simulator gave up delivering an event");
    Delivery::Undeliverable
}

/// Mounts the simulator's routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(accept_call);
}
