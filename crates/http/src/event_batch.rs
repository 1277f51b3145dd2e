//! Batches of webhook events. Events that arrive together are recorded
//! together: one statement for each kind of event in a batch instead of one
//! or two per event, so a burst of events costs the database far fewer
//! statements and commits.
//!
//! Only the common cases are batched: `started` and `answered` events, and
//! `ended` events whose attempt is open. Every other event, and any event the
//! batch could not apply, is returned to the caller to record on its own in
//! a transaction that locks its attempt.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use outbound_domain::retry::Outcome;
use outbound_persistence::attempts::{self, EndedEvent, EventRecording, Progress, ProgressEvent};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::routes::webhooks::{closing_for, is_open, next_contact_step, short_summary};
use crate::voice::{CallEvent, CallEventType};

/// Maximum events in one batch.
const MAX_BATCH: usize = 128;
/// Batches recorded at once, each on its own database connection.
const WORKERS: usize = 4;

/// Records webhook events in batches; cloning shares the workers.
#[derive(Clone)]
pub struct EventBatcher {
    sender: mpsc::Sender<Job>,
}

struct Job {
    event: Arc<CallEvent>,
    at: DateTime<Utc>,
    /// `None` when the batch did not apply the event.
    reply: oneshot::Sender<Option<EventRecording>>,
}

impl EventBatcher {
    /// Starts the workers on the current Tokio runtime. They stop when the
    /// last clone of the batcher is dropped.
    pub fn start(pool: PgPool) -> Self {
        let (sender, receiver) = mpsc::channel(MAX_BATCH * WORKERS * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..WORKERS {
            tokio::spawn(work(pool.clone(), receiver.clone()));
        }
        Self { sender }
    }

    /// Records `event`, received at `at`, in the next batch. Returns `None`
    /// when the batch did not apply it, and the caller must then record it
    /// on its own. That happens to opt-outs, to a second event for one
    /// attempt in a batch, to attempts that changed or are no longer open,
    /// and on database errors.
    pub async fn record(&self, event: Arc<CallEvent>, at: DateTime<Utc>) -> Option<EventRecording> {
        let (reply, result) = oneshot::channel();
        self.sender.send(Job { event, at, reply }).await.ok()?;
        result.await.ok().flatten()
    }
}

/// Takes the jobs waiting, up to [`MAX_BATCH`], and records them; the next
/// batch fills while this one runs.
async fn work(pool: PgPool, receiver: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            jobs.push(first);
            while jobs.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        record_batch(&pool, jobs).await;
    }
}

async fn record_batch(pool: &PgPool, jobs: Vec<Job>) {
    let mut event_ids = HashSet::new();
    let mut attempt_ids = HashSet::new();
    let mut started = Vec::new();
    let mut answered = Vec::new();
    let mut ended = Vec::new();
    for job in jobs {
        // One statement may change a row once, so a second event for an
        // attempt, or a repeat of an event id, is recorded on its own.
        let first_for_attempt = attempt_ids.insert(job.event.attempt_id);
        let first_for_event = event_ids.insert(job.event.event_id.clone());
        if !(first_for_attempt && first_for_event) {
            let _ = job.reply.send(None);
            continue;
        }
        match job.event.event_type {
            CallEventType::Started => started.push(job),
            CallEventType::Answered => answered.push(job),
            CallEventType::Ended => ended.push(job),
            CallEventType::OptOut => {
                let _ = job.reply.send(None);
            }
        }
    }
    record_progress(pool, Progress::Started, started).await;
    record_progress(pool, Progress::Answered, answered).await;
    record_ended(pool, ended).await;
}

async fn record_progress(pool: &PgPool, progress: Progress, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let events: Vec<ProgressEvent<'_>> = jobs
        .iter()
        .map(|job| ProgressEvent {
            attempt_id: job.event.attempt_id,
            event_id: &job.event.event_id,
            call_id: job.event.call_id.as_deref(),
            at: job.at,
        })
        .collect();
    let results = attempts::record_progress_all(pool, progress, &events).await;
    drop(events);
    reply_all(jobs, results);
}

async fn record_ended(pool: &PgPool, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let ids: Vec<_> = jobs.iter().map(|job| job.event.attempt_id).collect();
    let expected = match attempts::read_attempts(pool, &ids).await {
        Ok(rows) => rows
            .into_iter()
            .map(|row| (row.id, row))
            .collect::<HashMap<_, _>>(),
        Err(error) => {
            tracing::warn!(error = %error, events = jobs.len(), "reading a batch of ended events failed; recording them one by one");
            for job in jobs {
                let _ = job.reply.send(None);
            }
            return;
        }
    };
    let mut batched = Vec::new();
    for job in jobs {
        let attempt = expected.get(&job.event.attempt_id);
        match (attempt, job.event.outcome) {
            (None, _) => {
                let _ = job.reply.send(Some(EventRecording::AttemptNotFound));
            }
            (Some(attempt), Some(_))
                if is_open(&attempt.state) && attempt.contact_state == "dialing" =>
            {
                batched.push(job);
            }
            // Late results and ended events without an outcome take the
            // locking path, which handles and reports them.
            (Some(_), _) => {
                let _ = job.reply.send(None);
            }
        }
    }
    let summaries: Vec<Option<String>> = batched
        .iter()
        .map(|job| short_summary(&job.event))
        .collect();
    let events: Vec<EndedEvent<'_>> = batched
        .iter()
        .zip(&summaries)
        .filter_map(|(job, summary)| {
            let attempt = expected.get(&job.event.attempt_id)?;
            let outcome = job.event.outcome?;
            Some(ended_event(
                &job.event,
                attempt,
                outcome,
                summary.as_deref(),
                job.at,
            ))
        })
        .collect();
    let results = attempts::record_ended_all(pool, &events).await;
    drop(events);
    reply_all(batched, results);
}

fn ended_event<'a>(
    event: &'a CallEvent,
    attempt: &'a attempts::AttemptWithContact,
    outcome: Outcome,
    summary: Option<&'a str>,
    at: DateTime<Utc>,
) -> EndedEvent<'a> {
    EndedEvent {
        expected: attempt,
        event_id: &event.event_id,
        closing: closing_for(event, outcome, summary, at),
        step: next_contact_step(attempt, outcome, at),
    }
}

/// Sends each job its result; `Changed` and errors send `None`.
fn reply_all(jobs: Vec<Job>, results: sqlx::Result<Vec<EventRecording>>) {
    match results {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let applied = (result != EventRecording::Changed).then_some(result);
                let _ = job.reply.send(applied);
            }
        }
        Err(error) => {
            tracing::warn!(error = %error, events = jobs.len(), "recording a batch of events failed; recording them one by one");
            for job in jobs {
                let _ = job.reply.send(None);
            }
        }
    }
}
