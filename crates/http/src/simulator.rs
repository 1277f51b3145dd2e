//! A simulated voice platform for demos and tests. It speaks the same signed
//! HTTP contract as a real platform: it accepts `POST /v1/calls`, answers
//! `202` with a call id, and later posts signed call events to the request's
//! callback URL with a realistic mix of outcomes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

pub struct SimulatorState {
    config: SimulatorConfig,
    http: reqwest::Client,
    /// Call ids by attempt id: a repeated request gets the first call id back.
    calls: Mutex<HashMap<Uuid, String>>,
}

impl SimulatorState {
    pub fn new(config: SimulatorConfig) -> Self {
        Self {
            config,
            http: reqwest::Client::new(),
            calls: Mutex::new(HashMap::new()),
        }
    }
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
    let (call_id, first) = {
        let mut calls = state
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match calls.get(&call.attempt_id) {
            Some(existing) => (existing.clone(), false),
            None => {
                if rand::thread_rng().gen_bool(state.config.failure_rate.clamp(0.0, 1.0)) {
                    return HttpResponse::ServiceUnavailable().finish();
                }
                let id = format!("sim-{}", Uuid::new_v4());
                calls.insert(call.attempt_id, id.clone());
                (id, true)
            }
        }
    };
    if first {
        let state = state.clone();
        let call_id = call_id.clone();
        tokio::spawn(async move { play_call(state, call, call_id).await });
    }
    HttpResponse::Accepted().json(CallAccepted { call_id })
}

/// Sends the events of one simulated call.
async fn play_call(state: web::Data<SimulatorState>, call: CallRequest, call_id: String) {
    let (outcome, total_ms, summary_index) = {
        let mut rng = rand::thread_rng();
        let (low, high) = state.config.call_duration_ms;
        (
            pick_outcome(&mut rng),
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

    for (delay, mut event) in events {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        event.occurred_at = Utc::now();
        send_event(&state, &call.callback_url, &event).await;
    }
}

async fn send_event(state: &SimulatorState, url: &str, event: &CallEvent) {
    let Ok(body) = serde_json::to_vec(event) else {
        return;
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
            Ok(response)
                if response.status().is_success() || response.status().is_client_error() =>
            {
                return
            }
            _ => tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await,
        }
    }
    tracing::warn!(attempt_id = %event.attempt_id, "simulator gave up delivering an event");
}

/// Mounts the simulator's routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(accept_call);
}
