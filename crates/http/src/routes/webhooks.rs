//! The signed webhook that receives call events from the voice platform.

use actix_web::{post, web, HttpRequest};
use outbound_domain::retry::{NextStep, Outcome};
use outbound_persistence::attempts;
use outbound_persistence::contacts;

use crate::problem::{ApiError, ApiResult, Problem};
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
    let event: CallEvent = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(
            "invalid_event",
            format!(
                "the event is not valid JSON of the expected shape (line {}, column {})",
                error.line(),
                error.column()
            ),
        )
    })?;
    let status = record_event(&state, &event).await?;
    Ok(web::Json(EventAck {
        status: status.into(),
    }))
}

async fn record_event(state: &AppState, event: &CallEvent) -> ApiResult<&'static str> {
    let now = state.clock.now();
    let mut transaction = state.pool.begin().await?;
    let attempt = attempts::lock_attempt(&mut transaction, event.attempt_id)
        .await?
        .ok_or_else(|| ApiError::not_found("attempt"))?;
    if !attempts::record_event(
        &mut *transaction,
        &event.event_id,
        attempt.id,
        event.event_type.as_str(),
    )
    .await?
    {
        return Ok("duplicate");
    }
    let open = matches!(
        attempt.state.as_str(),
        "handing_over" | "handed_over" | "connected"
    );
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
            attempts::mark_connected(&mut *transaction, attempt.id, now).await?
        }
        CallEventType::OptOut => {
            contacts::suppress(
                &mut *transaction,
                attempt.client_id,
                &attempt.phone_index,
                "opt_out",
                Some(attempt.id),
            )
            .await?;
            sqlx::query("UPDATE contacts SET consent_withdrawn_at = COALESCE(consent_withdrawn_at, $2) WHERE id = $1")
                .bind(attempt.contact_id)
                .bind(now)
                .execute(&mut *transaction)
                .await?;
            tracing::info!(attempt_id = %attempt.id, campaign_id = %attempt.campaign_id, "opt-out recorded; number suppressed for the client");
        }
        CallEventType::Ended => {
            let outcome = event.outcome.ok_or_else(|| {
                ApiError::unprocessable("missing_outcome", "an ended event needs an outcome")
            })?;
            let summary = event
                .summary
                .as_deref()
                .map(|s| s.chars().take(2_000).collect::<String>());
            let closed_state = if outcome == Outcome::Failed {
                "failed"
            } else {
                "ended"
            };
            if open {
                crate::metrics::metrics()
                    .attempts
                    .with_label_values(&[outcome.as_str()])
                    .inc();
                attempts::close(
                    &mut *transaction,
                    attempt.id,
                    closed_state,
                    outcome.as_str(),
                    event.end_reason.as_deref(),
                    event.duration_seconds,
                    summary.as_deref(),
                    now,
                )
                .await?;
                settle_contact(&mut transaction, &attempt, outcome, now).await?;
            } else {
                // A late result for an attempt already given up as unknown: keep
                // the truth on the attempt, and never call a contact again
                // after an answered or opted-out call.
                attempts::close(
                    &mut *transaction,
                    attempt.id,
                    closed_state,
                    outcome.as_str(),
                    event.end_reason.as_deref(),
                    event.duration_seconds,
                    summary.as_deref(),
                    now,
                )
                .await?;
                if outcome.is_final() {
                    sqlx::query("UPDATE contacts SET state = 'done', last_outcome = $2, final_reason = $2, next_attempt_at = NULL WHERE id = $1 AND state = 'pending'")
                        .bind(attempt.contact_id)
                        .bind(outcome.as_str())
                        .execute(&mut *transaction)
                        .await?;
                }
            }
        }
    }
    transaction.commit().await?;
    Ok("recorded")
}

/// Decides what follows an ended attempt for its contact.
pub async fn settle_contact(
    transaction: &mut sqlx::PgConnection,
    attempt: &attempts::AttemptWithContact,
    outcome: Outcome,
    now: chrono::DateTime<chrono::Utc>,
) -> sqlx::Result<()> {
    let suppressed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM suppressions WHERE client_id = $1 AND phone_index = $2 AND removed_at IS NULL)",
    )
    .bind(attempt.client_id)
    .bind(&attempt.phone_index)
    .fetch_one(&mut *transaction)
    .await?;
    let campaign_state: String = sqlx::query_scalar("SELECT state FROM campaigns WHERE id = $1")
        .bind(attempt.campaign_id)
        .fetch_one(&mut *transaction)
        .await?;
    let step = if suppressed && !outcome.is_final() {
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
        NextStep::RetryAt(_) if campaign_state == "cancelled" => {
            attempts::close_contact(
                &mut *transaction,
                attempt.contact_id,
                outcome.as_str(),
                "campaign_cancelled",
            )
            .await
        }
        NextStep::RetryAt(at) => {
            attempts::requeue_contact(&mut *transaction, attempt.contact_id, outcome.as_str(), at)
                .await
        }
        NextStep::Finish(reason) => {
            attempts::close_contact(
                &mut *transaction,
                attempt.contact_id,
                outcome.as_str(),
                reason,
            )
            .await
        }
    }
}
