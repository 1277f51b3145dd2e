//! The dispatcher: for each running campaign it claims due contacts, gates each
//! one with the eligibility engine, and hands allowed calls to the voice
//! platform.
//!
//! Claim and hand-over are two transactions. The first locks the campaign row
//! `FOR NO KEY UPDATE`, counts open attempts against capacity, claims contacts
//! with `SKIP LOCKED` and commits each new attempt as `handing_over`. The
//! second holds the row `FOR SHARE` while posting the call requests, so a
//! pause or cancel (which takes `FOR UPDATE`) waits for posts in flight and
//! none start after it returns. Recording a result holds the row
//! `FOR KEY SHARE`, which waits for a pause or cancel but not for a claim.
//! An attempt whose hand-over or result is lost stays open and keeps its
//! slot, because the call may be in progress. It becomes `unknown` after the
//! result timeout and counts against the contact, and it is never redialed
//! at once.
//!
//! A round that did work is followed by the next one at once. When a campaign
//! is at capacity, the loop waits until an eighth of its slots are free (or
//! 20 ms have passed), so claims come in batches. When there is nothing to
//! do, it sleeps 100 ms.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::{stream, StreamExt};
use outbound_domain::campaign::{apply, Transition};
use outbound_domain::eligibility::{Decision, Rules};
use outbound_domain::retry::Outcome;
use outbound_persistence::attempts::{self, ClaimedContact, Closing, GateRecord, NewAttempt};
use outbound_persistence::audit::{self, AuditEntry};
use outbound_persistence::campaigns::{self, Campaign};
use outbound_persistence::contacts::ContactRecord;
use outbound_persistence::crypto::Binding;
use sqlx::PgConnection;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::routes::webhooks::{close_and_settle, is_open};
use crate::signing::{sign, SIGNATURE_HEADER};
use crate::state::AppState;
use crate::voice::{CallAccepted, CallRequest, Disclosure};

/// Pause after a round that found nothing to do.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// Maximum wait for free slots when a campaign is at capacity, because results
/// recorded by other processes free slots without waking this one.
const FULL_TICK: Duration = Duration::from_millis(20);
/// Maximum contacts claimed per campaign per round.
const CLAIM_BATCH: i64 = 1_000;
/// Maximum call requests in flight at once from one process.
const HANDOVER_CONCURRENCY: usize = 64;
/// How often open attempts are checked for a lost result.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(500);

/// Results recorded in this process since the dispatcher last waited for
/// slots, and the signal that wakes it.
struct SlotsFreed {
    count: AtomicUsize,
    signal: Notify,
}

fn slots_freed() -> &'static SlotsFreed {
    static SLOTS: OnceLock<SlotsFreed> = OnceLock::new();
    SLOTS.get_or_init(|| SlotsFreed {
        count: AtomicUsize::new(0),
        signal: Notify::new(),
    })
}

/// Tells the dispatcher that an attempt closed, so a campaign at capacity may
/// have a free slot.
pub fn notify_slot_freed() {
    let slots = slots_freed();
    slots.count.fetch_add(1, Ordering::Relaxed);
    slots.signal.notify_one();
}

/// The work one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundActivity {
    /// Attempts opened and handed over, or tried.
    pub started: usize,
    /// Contacts deferred or finished by the gate.
    pub gated: usize,
    /// Open attempts recorded as `unknown` after the result timeout.
    pub expired: usize,
    /// Whether some campaign had no free slot left after its claim.
    pub at_capacity: bool,
    /// Slots worth waiting for before the next claim when at capacity: an
    /// eighth of the largest capacity that was reached, at least one.
    pub batch_target: usize,
}

impl RoundActivity {
    fn did_work(&self) -> bool {
        self.started > 0 || self.gated > 0 || self.expired > 0
    }
}

/// Runs dispatcher rounds until `shutdown` turns true.
pub async fn run(state: actix_web::web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
    tracing::info!(
        accelerated_clock = state.clock.is_accelerated(),
        "dispatcher started"
    );
    if !platform_configured(&state) {
        tracing::warn!("no voice platform URL or secret is configured: this process claims no contact and hands over no call");
    }
    let mut last_expiry: Option<Instant> = None;
    loop {
        let expire = last_expiry.is_none_or(|at| at.elapsed() >= EXPIRY_INTERVAL);
        if expire {
            last_expiry = Some(Instant::now());
        }
        // Counted from before the round, so results recorded during it count.
        slots_freed().count.store(0, Ordering::Relaxed);
        let pause = match round(&state, expire).await {
            Ok(activity) if activity.at_capacity => Pause::ForSlots(activity.batch_target),
            Ok(activity) if activity.did_work() => Pause::None,
            Ok(_) => Pause::Idle,
            Err(error) => {
                tracing::error!(error = %error, "dispatcher round failed; retrying");
                Pause::Idle
            }
        };
        let stop = tokio::select! {
            _ = pause.wait() => false,
            _ = shutdown.changed() => true,
        };
        if stop || *shutdown.borrow() {
            break;
        }
    }
    tracing::info!("dispatcher stopped");
}

/// The dispatcher's wait before its next round.
enum Pause {
    /// The round did work: go on at once.
    None,
    /// Nothing to do: wait [`IDLE_TICK`].
    Idle,
    /// A campaign is at capacity: wait until this process has recorded this
    /// many results, or [`FULL_TICK`] for results recorded by other
    /// processes. Claiming freed slots in batches spreads each round's fixed
    /// cost over many calls.
    ForSlots(usize),
}

impl Pause {
    async fn wait(self) {
        match self {
            Pause::None => tokio::task::yield_now().await,
            Pause::Idle => tokio::time::sleep(IDLE_TICK).await,
            Pause::ForSlots(target) => {
                let deadline = tokio::time::Instant::now() + FULL_TICK;
                let slots = slots_freed();
                while slots.count.load(Ordering::Relaxed) < target {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => return,
                        _ = slots.signal.notified() => {}
                    }
                }
            }
        }
    }
}

/// Returns whether this process can hand calls over and receive their
/// results. A process without the platform's URL or secret would only fail
/// attempts and spend each contact's budget, so it claims nothing.
fn platform_configured(state: &AppState) -> bool {
    state.voice.platform_url.is_some() && state.voice.secret.is_some()
}

/// Runs one round over every running campaign, and looks for lost results
/// when `expire` is set.
pub async fn round(state: &AppState, expire: bool) -> anyhow::Result<RoundActivity> {
    let mut activity = RoundActivity::default();
    if expire {
        activity.expired = expire_lost_results(state).await?;
    }
    if !platform_configured(state) {
        return Ok(activity);
    }
    for campaign_id in campaigns::running_ids(&state.pool).await? {
        // One campaign's failure must not stop the others, so it is logged here.
        if let Err(error) = dispatch_campaign(state, campaign_id, &mut activity).await {
            tracing::error!(%campaign_id, error = %error, "dispatching a campaign failed; retrying next round");
        }
    }
    if state.clock.is_accelerated() && attempts::open_total(&state.pool).await? == 0 {
        if let Some(next) = attempts::earliest_due(&state.pool).await? {
            state.clock.skip_to(next);
        }
    }
    Ok(activity)
}

/// Claims and hands over one campaign's due calls, adding what it did to
/// `activity`.
async fn dispatch_campaign(
    state: &AppState,
    campaign_id: Uuid,
    activity: &mut RoundActivity,
) -> anyhow::Result<()> {
    let claimed = claim(state, campaign_id).await?;
    activity.gated += claimed.gated;
    if claimed.at_capacity {
        activity.at_capacity = true;
        activity.batch_target = activity.batch_target.max(claimed.capacity / 8).max(1);
    }
    if !claimed.started.is_empty() {
        activity.started += claimed.started.len();
        hand_over(state, campaign_id, claimed.started).await?;
    }
    Ok(())
}

/// Attempts with no result after the timeout become `unknown` and follow the
/// retry policy for that outcome. Returns how many did.
async fn expire_lost_results(state: &AppState) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let cutoff = now - chrono::Duration::seconds(state.voice.result_timeout_seconds);
    let mut expired = 0;
    for attempt_id in attempts::stale_open(&state.pool, cutoff).await? {
        let mut transaction = state.pool.begin().await?;
        let Some(attempt) = attempts::lock_attempt(&mut transaction, attempt_id).await? else {
            continue;
        };
        if !is_open(&attempt.state) {
            continue;
        }
        // An attempt still `handing_over` never got the platform's response
        // to its call request. Any other open attempt got no result.
        let end_reason = if attempt.state == "handing_over" {
            "handover_lost"
        } else {
            "result_timeout"
        };
        let closing = Closing {
            state: "unknown",
            outcome: Outcome::Unknown.as_str(),
            end_reason: Some(end_reason),
            duration_seconds: None,
            summary: None,
            at: now,
        };
        close_and_settle(&mut transaction, &attempt, &closing, Outcome::Unknown, now).await?;
        transaction.commit().await?;
        expired += 1;
        notify_slot_freed();
        tracing::warn!(attempt_id = %attempt.id, campaign_id = %attempt.campaign_id, "attempt result lost; recorded as unknown");
    }
    Ok(expired)
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

/// A contact claimed this round and the attempt opened for it.
struct Started {
    attempt_id: Uuid,
    contact: ClaimedContact,
}

/// The result of one campaign's claim.
#[derive(Default)]
struct Claim {
    started: Vec<Started>,
    /// Contacts deferred or finished by the gate.
    gated: usize,
    /// Whether the campaign (or its partner) had no free slot left after
    /// this claim.
    at_capacity: bool,
    /// The campaign's capacity.
    capacity: usize,
}

/// Claims due contacts under the campaign lock and opens attempts for those
/// the rules allow now, up to the free capacity. Completes the campaign when
/// nothing is left to call.
async fn claim(state: &AppState, campaign_id: Uuid) -> anyhow::Result<Claim> {
    let now = state.clock.now();
    let mut transaction = state.pool.begin().await?;
    let Some(campaign) = campaigns::lock_by_id(&mut transaction, campaign_id, false).await? else {
        return Ok(Claim::default());
    };
    if campaign.state != "running" {
        return Ok(Claim::default());
    }
    // Counted after the lock is held, so no other claim can open attempts
    // between this count and the commit.
    let open = attempts::open_count(&mut *transaction, campaign_id).await?;
    let mut free = i64::from(campaign.capacity) - open;
    if let Some((cap, partner_open)) =
        attempts::partner_capacity(&mut transaction, campaign.partner_id).await?
    {
        free = free.min(cap - partner_open);
    }
    let mut result = Claim {
        at_capacity: free <= 0,
        capacity: usize::try_from(campaign.capacity).unwrap_or(0),
        ..Claim::default()
    };

    if free > 0 {
        let claimed =
            attempts::claim_due(&mut transaction, campaign_id, now, free.min(CLAIM_BATCH)).await?;
        let gated = gate_claimed(&campaign, claimed, now);
        result.at_capacity = gated.opened.len() as i64 >= free;
        attempts::start_all(&mut *transaction, campaign_id, &gated.opened, now).await?;
        attempts::defer_all(&mut *transaction, campaign_id, &gated.deferred).await?;
        attempts::finish_contacts(&mut *transaction, campaign_id, &gated.finished).await?;
        result.gated = gated.deferred.len() + gated.finished.len();
        result.started = gated.started;
    }

    if result.started.is_empty()
        && open == 0
        && !attempts::has_work_left(&mut *transaction, campaign_id).await?
    {
        complete(&mut transaction, &campaign).await?;
    }
    transaction.commit().await?;
    Ok(result)
}

/// Claimed contacts sorted by the rules' decision at `now`.
struct Gated {
    started: Vec<Started>,
    opened: Vec<NewAttempt>,
    /// `(contact id, next eligible instant, block reason)`.
    deferred: Vec<(Uuid, DateTime<Utc>, &'static str)>,
    /// `(contact id, block reason)` of contacts no time will clear.
    finished: Vec<(Uuid, &'static str)>,
}

/// Opens an attempt for each claimed contact the rules allow at `now`, and
/// defers or finishes the others.
fn gate_claimed(campaign: &Campaign, claimed: Vec<ClaimedContact>, now: DateTime<Utc>) -> Gated {
    let rules = Rules::default();
    let campaign_rules = campaign.rules();
    let mut gated = Gated {
        started: Vec::new(),
        opened: Vec::new(),
        deferred: Vec::new(),
        finished: Vec::new(),
    };
    for contact in claimed {
        let zones = contact.record.zones();
        let decision = rules.evaluate(&contact.record.facts(&zones), &campaign_rules, now);
        match (decision.blocked, decision.next_eligible_at) {
            (None, _) => {
                let attempt = NewAttempt {
                    id: Uuid::new_v4(),
                    contact_id: contact.record.id,
                    gate: gate_record(campaign, &contact.record, &decision, now),
                };
                gated.started.push(Started {
                    attempt_id: attempt.id,
                    contact,
                });
                gated.opened.push(attempt);
            }
            (Some(reason), Some(next)) => {
                gated
                    .deferred
                    .push((contact.record.id, next, reason.as_str()))
            }
            (Some(reason), None) => gated.finished.push((contact.record.id, reason.as_str())),
        }
    }
    gated
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

/// The end of a call request.
enum Handover {
    Accepted(String),
    /// The platform certainly did not take the call.
    Rejected(&'static str),
    /// The platform may have taken the call.
    Lost(&'static str),
}

/// Posts the call requests while holding the campaign row `FOR SHARE`, at
/// most [`HANDOVER_CONCURRENCY`] at once.
async fn hand_over(
    state: &AppState,
    campaign_id: Uuid,
    started: Vec<Started>,
) -> anyhow::Result<()> {
    let mut transaction = state.pool.begin().await?;
    let campaign = campaigns::lock_by_id(&mut transaction, campaign_id, true).await?;
    let Some(campaign) = campaign.filter(|c| c.state == "running") else {
        // Paused or cancelled between claim and hand-over: nothing was sent,
        // so the attempts do not count.
        for started in &started {
            withdraw(
                &mut transaction,
                started.attempt_id,
                campaign_id,
                started.contact.record.id,
            )
            .await?;
        }
        transaction.commit().await?;
        return Ok(());
    };
    let requests: Vec<(Uuid, Option<CallRequest>)> = started
        .iter()
        .map(|s| (s.attempt_id, build_request(state, &campaign, s)))
        .collect();
    drop(started);
    let results: Vec<(Uuid, Handover)> = stream::iter(requests)
        .map(|(attempt_id, request)| async move {
            let result = match request {
                Some(request) => post_call(state, &request).await,
                None => Handover::Rejected("contact_unreadable"),
            };
            (attempt_id, result)
        })
        .buffer_unordered(HANDOVER_CONCURRENCY)
        .collect()
        .await;

    let now = state.clock.now();
    let mut accepted = Vec::with_capacity(results.len());
    let mut failed = Vec::new();
    for (attempt_id, result) in results {
        match result {
            Handover::Accepted(call_id) => accepted.push((attempt_id, call_id)),
            Handover::Rejected(reason) => failed.push((attempt_id, reason)),
            // The platform may have placed the call, so the attempt stays
            // open and keeps its slot until an event or the result timeout
            // closes it. Closing it now would free the slot while the call
            // may be in progress.
            Handover::Lost(reason) => {
                crate::metrics::metrics()
                    .handovers
                    .with_label_values(&["lost"])
                    .inc();
                tracing::warn!(%attempt_id, %campaign_id, reason, "the voice platform's response to a call request was lost; the attempt stays open until an event arrives or the result timeout passes");
            }
        }
    }
    attempts::mark_all_handed_over(&mut *transaction, &accepted, now).await?;
    crate::metrics::metrics()
        .handovers
        .with_label_values(&["accepted"])
        .inc_by(accepted.len() as u64);
    transaction.commit().await?;
    // Each failure in its own transaction, so this one never holds many
    // attempt locks while waiting for another.
    for (attempt_id, reason) in failed {
        let mut transaction = state.pool.begin().await?;
        record_failed_handover(&mut transaction, campaign_id, attempt_id, reason, now).await?;
        transaction.commit().await?;
    }
    Ok(())
}

/// Closes an attempt whose call request the platform certainly did not take,
/// unless an event already moved it on. A `started` or `ended` event proves
/// that the platform took the call, so its result comes by webhook or the
/// result timeout.
async fn record_failed_handover(
    transaction: &mut PgConnection,
    campaign_id: Uuid,
    attempt_id: Uuid,
    reason: &'static str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let outcome = Outcome::Failed;
    let state_name = "failed";
    crate::metrics::metrics()
        .handovers
        .with_label_values(&[state_name])
        .inc();
    tracing::warn!(%attempt_id, %campaign_id, reason, outcome = outcome.as_str(), "hand-over to the voice platform failed");
    let Some(attempt) = attempts::lock_attempt(&mut *transaction, attempt_id).await? else {
        return Ok(());
    };
    if attempt.state != "handing_over" {
        tracing::info!(%attempt_id, %campaign_id, state = %attempt.state, "an event arrived before the failed hand-over was recorded; keeping the attempt's state");
        return Ok(());
    }
    let closing = Closing {
        state: state_name,
        outcome: outcome.as_str(),
        end_reason: Some(reason),
        duration_seconds: None,
        summary: None,
        at: now,
    };
    close_and_settle(&mut *transaction, &attempt, &closing, outcome, now).await?;
    notify_slot_freed();
    Ok(())
}

/// Undoes an attempt that was never sent.
async fn withdraw(
    transaction: &mut PgConnection,
    attempt_id: Uuid,
    campaign_id: Uuid,
    contact_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE attempts SET state = 'failed', outcome = 'not_placed', end_reason = 'campaign_not_running' WHERE id = $1 AND state = 'handing_over'")
        .bind(attempt_id)
        .execute(&mut *transaction)
        .await?;
    sqlx::query(
        // A final reason on a dialling contact comes from an earlier
        // attempt's late answer or opt-out, which ends the contact.
        "UPDATE contacts SET state = CASE WHEN (SELECT state FROM campaigns WHERE id = contacts.campaign_id) = 'cancelled' THEN 'cancelled'
                                          WHEN final_reason IN ('answered', 'opted_out') THEN 'done' ELSE 'pending' END,
                final_reason = CASE WHEN (SELECT state FROM campaigns WHERE id = contacts.campaign_id) = 'cancelled' THEN 'campaign_cancelled' ELSE final_reason END,
                attempts_made = attempts_made - 1
          WHERE id = $1 AND campaign_id = $2 AND state = 'dialing'",
    )
    .bind(contact_id)
    .bind(campaign_id)
    .execute(&mut *transaction)
    .await?;
    Ok(())
}

/// Decrypts the number and personalisation into a call request; `None` when
/// they cannot be decrypted (for example a retired key), which is logged by id.
fn build_request(state: &AppState, campaign: &Campaign, started: &Started) -> Option<CallRequest> {
    let attempt_id = started.attempt_id;
    let contact = &started.contact;
    let contact_id = contact.record.id;
    let phone = state.keyring.open(
        &contact.key_id,
        Binding {
            table: "contacts",
            row_id: contact_id,
            column: "phone",
        },
        &contact.phone_ciphertext,
    );
    let phone = match phone {
        Ok(phone) => String::from_utf8_lossy(&phone).into_owned(),
        Err(error) => {
            tracing::error!(%contact_id, %attempt_id, error = %error, "contact number cannot be decrypted");
            return None;
        }
    };
    let mut personalisation = BTreeMap::new();
    if let Some(ciphertext) = &contact.personalisation_ciphertext {
        let binding = Binding {
            table: "contacts",
            row_id: contact_id,
            column: "personalisation",
        };
        match state.keyring.open(&contact.key_id, binding, ciphertext) {
            Ok(plain) => personalisation = serde_json::from_slice(&plain).unwrap_or_default(),
            Err(error) => {
                tracing::error!(%contact_id, error = %error, "personalisation cannot be decrypted; calling without it")
            }
        }
    }
    Some(CallRequest {
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
    })
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
        .timeout(state.voice.handover_timeout)
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
