//! The dispatcher: for each running campaign it claims due contacts, gates each
//! one with the eligibility engine, and hands allowed calls to the voice
//! platform.
//!
//! Claim and hand-over are two transactions. The first locks the campaign row
//! `FOR UPDATE`, counts open attempts against capacity, claims contacts with
//! `SKIP LOCKED` and commits each new attempt as `handing_over`. The second
//! holds the row `FOR SHARE` while posting the call requests, so a pause or
//! cancel (which takes `FOR UPDATE`) waits for posts in flight and none start
//! after it returns. An attempt whose hand-over or result is lost becomes
//! `unknown` after the result timeout and counts against the contact; it is
//! never redialed at once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use outbound_domain::campaign::{apply, Transition};
use outbound_domain::eligibility::{Decision, Rules};
use outbound_domain::retry::Outcome;
use outbound_persistence::attempts::{self, GateRecord};
use outbound_persistence::audit::{self, AuditEntry};
use outbound_persistence::campaigns::{self, Campaign};
use outbound_persistence::contacts::ContactRecord;
use outbound_persistence::crypto::Binding;
use sqlx::PgConnection;
use tokio::sync::watch;
use uuid::Uuid;

use crate::routes::webhooks::settle_contact;
use crate::signing::{sign, SIGNATURE_HEADER};
use crate::state::AppState;
use crate::voice::{CallAccepted, CallRequest, Disclosure};

/// Pause between dispatcher rounds.
const TICK: Duration = Duration::from_millis(100);
/// Most contacts examined per campaign per round.
const CLAIM_BATCH: i64 = 200;
/// Time allowed for one call request to the platform.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs dispatcher rounds until `shutdown` turns true.
pub async fn run(state: actix_web::web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
    tracing::info!(
        accelerated_clock = state.clock.is_accelerated(),
        "dispatcher started"
    );
    loop {
        if let Err(error) = round(&state).await {
            tracing::error!(error = %error, "dispatcher round failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
    tracing::info!("dispatcher stopped");
}

/// One round over every running campaign.
pub async fn round(state: &AppState) -> anyhow::Result<()> {
    expire_lost_results(state).await?;
    for campaign_id in campaigns::running_ids(&state.pool).await? {
        // One campaign's failure must not stop the others, so it is logged here.
        if let Err(error) = dispatch_campaign(state, campaign_id).await {
            tracing::error!(%campaign_id, error = %error, "dispatching a campaign failed; retrying next round");
        }
    }
    if state.clock.is_accelerated() && attempts::open_total(&state.pool).await? == 0 {
        if let Some(next) = attempts::earliest_due(&state.pool).await? {
            state.clock.skip_to(next);
        }
    }
    Ok(())
}

/// Claims and hands over one campaign's due calls.
async fn dispatch_campaign(state: &AppState, campaign_id: Uuid) -> anyhow::Result<()> {
    let started = claim(state, campaign_id).await?;
    if !started.is_empty() {
        hand_over(state, campaign_id, started).await?;
    }
    Ok(())
}

/// Attempts with no result after the timeout become `unknown` and follow the
/// retry policy for that outcome.
async fn expire_lost_results(state: &AppState) -> anyhow::Result<()> {
    let now = state.clock.now();
    let cutoff = now - chrono::Duration::seconds(state.voice.result_timeout_seconds);
    for attempt_id in attempts::stale_open(&state.pool, cutoff).await? {
        let mut transaction = state.pool.begin().await?;
        let Some(attempt) = attempts::lock_attempt(&mut transaction, attempt_id).await? else {
            continue;
        };
        if !matches!(
            attempt.state.as_str(),
            "handing_over" | "handed_over" | "connected"
        ) {
            continue;
        }
        attempts::close(
            &mut *transaction,
            attempt.id,
            "unknown",
            Outcome::Unknown.as_str(),
            Some("result_timeout"),
            None,
            None,
            now,
        )
        .await?;
        settle_contact(&mut transaction, &attempt, Outcome::Unknown, now).await?;
        transaction.commit().await?;
        tracing::warn!(attempt_id = %attempt.id, campaign_id = %attempt.campaign_id, "attempt result lost; recorded as unknown");
    }
    Ok(())
}

/// Zone and local time of the gate check, for the attempt record.
fn gate_record(
    campaign: &Campaign,
    contact: &ContactRecord,
    decision: &Decision,
    now: DateTime<Utc>,
) -> GateRecord {
    let zones = contact.zones();
    let zone_checked = zones
        .iter()
        .map(|z| z.zone.name())
        .collect::<Vec<_>>()
        .join(",");
    let local_time_checked = zones
        .iter()
        .map(|z| {
            now.with_timezone(&z.zone)
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(",");
    let clearance = decision
        .clearance
        .map_or("not_required", |c| c.as_str())
        .to_owned();
    let clearance_reference = match clearance.as_str() {
        "wash" => contact.registry_evidence.clone(),
        "consent" => contact
            .consent_evidence
            .clone()
            .or_else(|| Some("consent".into())),
        "exemption" => contact
            .exemption
            .clone()
            .or_else(|| campaign.exemption.clone()),
        _ => None,
    };
    GateRecord {
        call_type: campaign.call_type.clone(),
        caller_id: campaign.caller_id.clone().unwrap_or_default(),
        zone_checked,
        local_time_checked,
        clearance,
        clearance_reference,
    }
}

/// Claims due contacts under the campaign lock and opens attempts for those
/// the rules allow now, up to the free capacity. Completes the campaign when
/// nothing is left to call.
async fn claim(state: &AppState, campaign_id: Uuid) -> anyhow::Result<Vec<(Uuid, Uuid)>> {
    let now = state.clock.now();
    let mut transaction = state.pool.begin().await?;
    let Some(campaign) = campaigns::lock_by_id(&mut transaction, campaign_id, false).await? else {
        return Ok(Vec::new());
    };
    if campaign.state != "running" {
        return Ok(Vec::new());
    }
    let open = attempts::open_count(&mut *transaction, campaign_id).await?;
    let mut free = i64::from(campaign.capacity) - open;
    if let Some((cap, partner_open)) =
        attempts::partner_capacity(&mut transaction, campaign.partner_id).await?
    {
        free = free.min(cap - partner_open);
    }
    let mut started = Vec::new();
    if free > 0 {
        let rules = Rules::default();
        let campaign_rules = campaign.rules();
        for contact in attempts::claim_due(&mut transaction, campaign_id, now, CLAIM_BATCH).await? {
            if free <= 0 {
                break;
            }
            let zones = contact.zones();
            let decision = rules.evaluate(&contact.facts(&zones), &campaign_rules, now);
            match (decision.blocked, decision.next_eligible_at) {
                (None, _) => {
                    let gate = gate_record(&campaign, &contact, &decision, now);
                    let attempt_id =
                        attempts::start(&mut transaction, campaign_id, &contact, &gate, now)
                            .await?;
                    started.push((attempt_id, contact.id));
                    free -= 1;
                }
                (Some(reason), Some(next)) => {
                    attempts::defer(&mut *transaction, contact.id, next, reason.as_str()).await?
                }
                (Some(reason), None) => {
                    attempts::finish_contact(&mut *transaction, contact.id, reason.as_str()).await?
                }
            }
        }
    }
    if started.is_empty()
        && open == 0
        && !attempts::has_work_left(&mut *transaction, campaign_id).await?
    {
        complete(&mut transaction, &campaign).await?;
    }
    transaction.commit().await?;
    Ok(started)
}

async fn complete(transaction: &mut PgConnection, campaign: &Campaign) -> anyhow::Result<()> {
    let from = campaign.state();
    let to = apply(from, Transition::Complete)?;
    campaigns::set_state(&mut *transaction, campaign.id, to).await?;
    audit::record(
        &mut *transaction,
        AuditEntry {
            partner_id: Some(campaign.partner_id),
            campaign_id: Some(campaign.id),
            actor: "system:dispatcher",
            action: "campaign.complete",
            from_state: Some(from.as_str()),
            to_state: Some(to.as_str()),
            details: serde_json::json!({ "reason": "no contact left to call" }),
            request_id: None,
        },
    )
    .await?;
    tracing::info!(campaign_id = %campaign.id, "campaign completed: no contact left to call");
    Ok(())
}

/// How a call request ended.
enum Handover {
    Accepted(String),
    /// The platform certainly did not take the call.
    Rejected(&'static str),
    /// The platform may have taken the call.
    Lost(&'static str),
}

/// Posts the call requests while holding the campaign row `FOR SHARE`.
async fn hand_over(
    state: &AppState,
    campaign_id: Uuid,
    started: Vec<(Uuid, Uuid)>,
) -> anyhow::Result<()> {
    let mut transaction = state.pool.begin().await?;
    let campaign = campaigns::lock_by_id(&mut transaction, campaign_id, true).await?;
    let Some(campaign) = campaign.filter(|c| c.state == "running") else {
        // Paused or cancelled between claim and hand-over: nothing was sent,
        // so the attempts do not count.
        for (attempt_id, contact_id) in &started {
            withdraw(&mut transaction, *attempt_id, *contact_id).await?;
        }
        transaction.commit().await?;
        return Ok(());
    };
    let mut requests = Vec::with_capacity(started.len());
    for (attempt_id, contact_id) in &started {
        requests.push((
            *attempt_id,
            build_request(state, &mut transaction, &campaign, *attempt_id, *contact_id).await?,
        ));
    }
    let results = join_all(
        requests
            .into_iter()
            .map(|(attempt_id, request)| async move {
                let result = match request {
                    Some(request) => post_call(state, &request).await,
                    None => Handover::Rejected("contact_unreadable"),
                };
                (attempt_id, result)
            }),
    )
    .await;
    let now = state.clock.now();
    for (attempt_id, result) in results {
        match result {
            Handover::Accepted(call_id) => {
                crate::metrics::metrics()
                    .handovers
                    .with_label_values(&["accepted"])
                    .inc();
                attempts::mark_handed_over(&mut *transaction, attempt_id, Some(&call_id), now)
                    .await?
            }
            Handover::Rejected(reason) | Handover::Lost(reason) => {
                let outcome = if matches!(result, Handover::Rejected(_)) {
                    Outcome::Failed
                } else {
                    Outcome::Unknown
                };
                let state_name = if outcome == Outcome::Failed {
                    "failed"
                } else {
                    "unknown"
                };
                crate::metrics::metrics()
                    .handovers
                    .with_label_values(&[state_name])
                    .inc();
                tracing::warn!(%attempt_id, %campaign_id, reason, outcome = outcome.as_str(), "hand-over to the voice platform failed");
                if let Some(attempt) = attempts::lock_attempt(&mut transaction, attempt_id).await? {
                    attempts::close(
                        &mut *transaction,
                        attempt_id,
                        state_name,
                        outcome.as_str(),
                        Some(reason),
                        None,
                        None,
                        now,
                    )
                    .await?;
                    settle_contact(&mut transaction, &attempt, outcome, now).await?;
                }
            }
        }
    }
    transaction.commit().await?;
    Ok(())
}

/// Undoes an attempt that was never sent.
async fn withdraw(
    transaction: &mut PgConnection,
    attempt_id: Uuid,
    contact_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE attempts SET state = 'failed', outcome = 'not_placed', end_reason = 'campaign_not_running' WHERE id = $1 AND state = 'handing_over'")
        .bind(attempt_id)
        .execute(&mut *transaction)
        .await?;
    sqlx::query(
        "UPDATE contacts SET state = CASE WHEN (SELECT state FROM campaigns WHERE id = contacts.campaign_id) = 'cancelled' THEN 'cancelled' ELSE 'pending' END,
                final_reason = CASE WHEN (SELECT state FROM campaigns WHERE id = contacts.campaign_id) = 'cancelled' THEN 'campaign_cancelled' ELSE final_reason END,
                attempts_made = attempts_made - 1
          WHERE id = $1 AND state = 'dialing'",
    )
    .bind(contact_id)
    .execute(&mut *transaction)
    .await?;
    Ok(())
}

/// Decrypts the number and personalisation into a call request; `None` when
/// they cannot be decrypted (for example a retired key), which is logged by id.
async fn build_request(
    state: &AppState,
    transaction: &mut PgConnection,
    campaign: &Campaign,
    attempt_id: Uuid,
    contact_id: Uuid,
) -> anyhow::Result<Option<CallRequest>> {
    let sealed = attempts::sealed_contact(&mut *transaction, contact_id).await?;
    let phone = state.keyring.open(
        &sealed.key_id,
        Binding {
            table: "contacts",
            row_id: sealed.id,
            column: "phone",
        },
        &sealed.phone_ciphertext,
    );
    let phone = match phone {
        Ok(phone) => String::from_utf8_lossy(&phone).into_owned(),
        Err(error) => {
            tracing::error!(%contact_id, %attempt_id, error = %error, "contact number cannot be decrypted");
            return Ok(None);
        }
    };
    let mut personalisation = BTreeMap::new();
    if let Some(ciphertext) = &sealed.personalisation_ciphertext {
        let binding = Binding {
            table: "contacts",
            row_id: sealed.id,
            column: "personalisation",
        };
        match state.keyring.open(&sealed.key_id, binding, ciphertext) {
            Ok(plain) => personalisation = serde_json::from_slice(&plain).unwrap_or_default(),
            Err(error) => {
                tracing::error!(%contact_id, error = %error, "personalisation cannot be decrypted; calling without it")
            }
        }
    }
    Ok(Some(CallRequest {
        attempt_id,
        to: phone,
        caller_id: campaign.caller_id.clone().unwrap_or_default(),
        call_type: campaign.call_type.clone(),
        disclosure: Disclosure {
            organisation: campaign.organisation.clone(),
            on_behalf_of: campaign.on_behalf_of.clone(),
            purpose: campaign.purpose.clone(),
            contact_for_questions: campaign.contact_for_questions.clone(),
        },
        personalisation,
        callback_url: format!(
            "{}/v1/voice/events",
            state.voice.public_url.trim_end_matches('/')
        ),
    }))
}

async fn post_call(state: &AppState, request: &CallRequest) -> Handover {
    let (Some(base), Some(secret)) = (&state.voice.platform_url, &state.voice.secret) else {
        return Handover::Rejected("voice_platform_not_configured");
    };
    let Ok(body) = serde_json::to_vec(request) else {
        return Handover::Rejected("request_not_serialisable");
    };
    let signature = sign(secret, Utc::now().timestamp(), &body);
    let response = state
        .http
        .post(format!("{}/v1/calls", base.trim_end_matches('/')))
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", request.attempt_id.to_string())
        .header(SIGNATURE_HEADER, signature)
        .timeout(HANDOVER_TIMEOUT)
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) if response.status().is_success() => {
            match response.json::<CallAccepted>().await {
                Ok(accepted) => Handover::Accepted(accepted.call_id),
                Err(_) => Handover::Lost("platform_answer_unreadable"),
            }
        }
        Ok(response) if response.status().is_client_error() => {
            Handover::Rejected("platform_rejected_request")
        }
        Ok(_) => Handover::Lost("platform_server_error"),
        Err(error) if error.is_connect() => Handover::Rejected("platform_unreachable"),
        Err(error) if error.is_timeout() => Handover::Lost("platform_timeout"),
        Err(_) => Handover::Lost("platform_transport_error"),
    }
}
