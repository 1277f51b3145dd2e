//! The signed webhook that receives call events from the voice platform.

use std::sync::Arc;

use actix_web::{post, web, HttpRequest};
use outbound_domain::retry::{NextStep, Outcome};
use outbound_persistence::attempts;
use outbound_persistence::contacts;

use crate::problem::{redact_digits, ApiError, ApiResult, Problem};
use crate::signing::{verify, SIGNATURE_HEADER};
use crate::state::AppState;
use crate::voice::{CallEvent, CallEventType, EventAck};

/// Largest event body accepted, in bytes.
const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Receive a call event from the voice platform.
///
/// The body must be signed: `X-Outbound-Signature: t=<unix>,v1=<hex HMAC-SHA256
/// of "<t>.<body>">` under the platform secret, within five minutes of now.
/// Repeated event ids are acknowledged once; events arriving out of order
/// never reopen an ended attempt.
#[utoipa::path(
    tag = "voice",
    request_body = CallEvent,
    params(("X-Outbound-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256>")),
    responses(
        (status = 200, description = "Event recorded or a duplicate", body = EventAck),
        (status = 400, description = "Malformed event", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Bad, stale or missing signature, or no webhook secret configured", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown attempt", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Event too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Ended event without an outcome", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/voice/events")]
pub async fn receive_event(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> ApiResult<web::Json<EventAck>> {
    if body.len() > MAX_EVENT_BYTES {
        return Err(ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the event body is too large",
        ));
    }
    let rejections = &crate::metrics::metrics().webhook_rejections;
    let Some(secret) = state.voice.secret.as_ref() else {
        rejections.with_label_values(&["no_secret"]).inc();
        tracing::warn!("webhook rejected: no voice platform secret is configured");
        return Err(ApiError::unauthorized(
            "webhooks are disabled: no voice platform secret is configured",
        ));
    };
    let header = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if let Err(error) = verify(secret, header, &body, chrono::Utc::now().timestamp()) {
        // The body is never logged: it contains call summaries.
        rejections.with_label_values(&["signature"]).inc();
        tracing::warn!(reason = %error, bytes = body.len(), "webhook rejected");
        return Err(ApiError::unauthorized(format!(
            "webhook signature rejected: {error}"
        )));
    }
    let mut event: CallEvent = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(
            "invalid_event",
            format!(
                "the event is not valid JSON of the expected shape (line {}, column {})",
                error.line(),
                error.column()
            ),
        )
    })?;
    // The platform's free text is shown in reports and exports, so a number
    // the recipient or the agent spoke is hidden before it is stored.
    if event.duration_seconds.is_some_and(|seconds| seconds < 0) {
        return Err(ApiError::unprocessable(
            "invalid_event",
            "duration_seconds must be zero or more",
        ));
    }
    if event.event_id.is_empty() || event.event_id.chars().count() > 200 {
        return Err(ApiError::unprocessable(
            "invalid_event",
            "event_id must be 1 to 200 characters",
        ));
    }
    event.summary = event.summary.as_deref().map(redact_digits);
    event.end_reason = event.end_reason.as_deref().map(redact_digits);
    let status = record_event(&state, event).await?;
    Ok(web::Json(EventAck {
        status: status.into(),
    }))
}

/// Records one event: in a batch with the events arriving at the same time
/// when it can, or else on its own in a transaction that locks its attempt.
async fn record_event(state: &AppState, event: CallEvent) -> ApiResult<&'static str> {
    let now = state.clock.now();
    let outcome = match event.event_type {
        CallEventType::Ended => Some(event.outcome.ok_or_else(|| {
            ApiError::unprocessable("missing_outcome", "an ended event needs an outcome")
        })?),
        _ => None,
    };
    let event = Arc::new(event);
    if event.event_type != CallEventType::OptOut {
        if let Some(recording) = state.event_batcher.record(event.clone(), now).await {
            if let (Some(outcome), attempts::EventRecording::Recorded) = (outcome, recording) {
                crate::metrics::metrics()
                    .attempts
                    .with_label_values(&[outcome.as_str()])
                    .inc();
                crate::dispatch::notify_slot_freed();
            }
            return recording_status(recording);
        }
    }
    record_event_locked(state, &event, now).await
}

fn recording_status(recording: attempts::EventRecording) -> ApiResult<&'static str> {
    match recording {
        attempts::EventRecording::Recorded => Ok("recorded"),
        attempts::EventRecording::Duplicate => Ok("duplicate"),
        attempts::EventRecording::AttemptNotFound => Err(ApiError::not_found("attempt")),
        // The batcher hands changed attempts back to the locking path, so
        // this response only requests that the platform send the event again.
        attempts::EventRecording::Changed => Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "attempt_changed",
            "the attempt changed while the event was recorded; send the event again",
        )),
    }
}

/// Returns the call summary, cut to 2,000 characters.
pub(crate) fn short_summary(event: &CallEvent) -> Option<String> {
    event
        .summary
        .as_deref()
        .map(|s| s.chars().take(2_000).collect::<String>())
}

/// Builds the values an ended event closes its attempt with.
pub(crate) fn closing_for<'a>(
    event: &'a CallEvent,
    outcome: Outcome,
    summary: Option<&'a str>,
    now: chrono::DateTime<chrono::Utc>,
) -> attempts::Closing<'a> {
    attempts::Closing {
        state: if outcome == Outcome::Failed {
            "failed"
        } else {
            "ended"
        },
        outcome: outcome.as_str(),
        end_reason: event.end_reason.as_deref(),
        duration_seconds: event.duration_seconds,
        summary,
        at: now,
    }
}

/// Records one event in one transaction that locks the attempt and its
/// contact: the event id and the row locks are taken by one statement.
async fn record_event_locked(
    state: &AppState,
    event: &CallEvent,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<&'static str> {
    let mut transaction = state.pool.begin().await?;
    let target = attempts::lock_attempt_for_event(
        &mut transaction,
        event.attempt_id,
        &event.event_id,
        event.event_type.as_str(),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("attempt"))?;
    if !target.first_delivery {
        return Ok("duplicate");
    }
    let attempt = target.attempt;
    let open = is_open(&attempt.state);
    let mut slot_freed = false;
    match event.event_type {
        CallEventType::Started => {
            if attempt.state == "handing_over" {
                attempts::mark_handed_over(
                    &mut *transaction,
                    attempt.id,
                    event.call_id.as_deref(),
                    now,
                )
                .await?;
            }
        }
        CallEventType::Answered => {
            if open {
                attempts::mark_connected(&mut *transaction, attempt.id, now).await?
            }
        }
        CallEventType::OptOut => {
            contacts::suppress(
                &mut *transaction,
                attempt.client_id,
                attempt.phone_index,
                "opt_out",
                Some(attempt.id),
            )
            .await?;
            sqlx::query("UPDATE contacts SET consent_withdrawn_at = COALESCE(consent_withdrawn_at, $2) WHERE id = $1 AND campaign_id = $3")
                .bind(attempt.contact_id)
                .bind(now)
                .bind(attempt.campaign_id)
                .execute(&mut *transaction)
                .await?;
            tracing::info!(attempt_id = %attempt.id, campaign_id = %attempt.campaign_id, "opt-out recorded; number suppressed for the client");
        }
        CallEventType::Ended => {
            let outcome = event.outcome.ok_or_else(|| {
                ApiError::unprocessable("missing_outcome", "an ended event needs an outcome")
            })?;
            let summary = short_summary(event);
            let closing = closing_for(event, outcome, summary.as_deref(), now);
            if open {
                crate::metrics::metrics()
                    .attempts
                    .with_label_values(&[outcome.as_str()])
                    .inc();
                close_and_settle(&mut transaction, &attempt, &closing, outcome, now).await?;
                slot_freed = true;
            } else if attempt.state != "unknown" {
                // The attempt already has its result (a second `ended` under
                // another event id, or an event for a withdrawn or refused
                // attempt), so the first result is kept.
                tracing::info!(attempt_id = %attempt.id, campaign_id = %attempt.campaign_id, state = %attempt.state, "ended event for an attempt that already has its result; ignored");
            } else {
                // A late result for an attempt already given up as unknown: keep
                // the truth on the attempt, and never call a contact again
                // after an answered or opted-out call.
                attempts::close(&mut *transaction, attempt.id, &closing).await?;
                if outcome.is_final() {
                    sqlx::query("UPDATE contacts SET state = 'done', last_outcome = $2, final_reason = $2, next_attempt_at = NULL WHERE id = $1 AND campaign_id = $3 AND state = 'pending'")
                        .bind(attempt.contact_id)
                        .bind(outcome.as_str())
                        .bind(attempt.campaign_id)
                        .execute(&mut *transaction)
                        .await?;
                    // A contact already dialling again keeps its open attempt,
                    // and the reason set here makes that attempt's result
                    // finish the contact instead of scheduling a retry.
                    sqlx::query(
                        "UPDATE contacts SET final_reason = $2 WHERE id = $1 AND campaign_id = $3 AND state = 'dialing'",
                    )
                    .bind(attempt.contact_id)
                    .bind(outcome.as_str())
                    .bind(attempt.campaign_id)
                    .execute(&mut *transaction)
                    .await?;
                }
            }
        }
    }
    transaction.commit().await?;
    if slot_freed {
        crate::dispatch::notify_slot_freed();
    }
    Ok("recorded")
}

/// Reports whether an attempt in `state` still waits for its result.
pub fn is_open(state: &str) -> bool {
    matches!(state, "handing_over" | "handed_over" | "connected")
}

/// Decides what follows an ended attempt for its contact: a suppressed number
/// is never called again, a cancelled campaign drops its retries, and
/// otherwise the campaign's retry policy decides.
pub fn next_contact_step(
    attempt: &attempts::AttemptWithContact,
    outcome: Outcome,
    now: chrono::DateTime<chrono::Utc>,
) -> attempts::ContactStep<'static> {
    let earlier_final = attempt
        .earlier_final_outcome
        .as_deref()
        .and_then(|earlier| Outcome::ALL.into_iter().find(|o| o.as_str() == earlier));
    let step = if let Some(earlier) = earlier_final.filter(|_| !outcome.is_final()) {
        // An earlier attempt's late result showed the call was answered or
        // the recipient opted out: the contact is not called again.
        NextStep::Finish(earlier.as_str())
    } else if attempt.suppressed && !outcome.is_final() {
        NextStep::Finish("suppressed")
    } else {
        attempt.retry_policy.0.next_step(
            outcome,
            u32::try_from(attempt.attempts_made).unwrap_or(0),
            u32::try_from(attempt.max_attempts).unwrap_or(0),
            now,
        )
    };
    match step {
        NextStep::RetryAt(_) if attempt.campaign_state == "cancelled" => {
            attempts::ContactStep::Finish("campaign_cancelled")
        }
        NextStep::RetryAt(at) => attempts::ContactStep::Requeue(at),
        NextStep::Finish(reason) => attempts::ContactStep::Finish(reason),
    }
}

/// Closes a locked attempt and moves its contact on by [`next_contact_step`].
pub async fn close_and_settle(
    transaction: &mut sqlx::PgConnection,
    attempt: &attempts::AttemptWithContact,
    closing: &attempts::Closing<'_>,
    outcome: Outcome,
    now: chrono::DateTime<chrono::Utc>,
) -> sqlx::Result<()> {
    let step = next_contact_step(attempt, outcome, now);
    attempts::close_and_settle(
        &mut *transaction,
        attempt.id,
        attempt.campaign_id,
        attempt.contact_id,
        closing,
        step,
    )
    .await
}
