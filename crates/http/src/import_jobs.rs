//! Contact imports that run as background jobs.
//!
//! A job runs on its own thread and runtime, so it survives the HTTP workers
//! during a graceful shutdown. Its database session holds an advisory lock for
//! as long as the job lives: an import left `processing` without that lock
//! belongs to a server that stopped, and is then reported as failed. Progress
//! is written through a second connection, because the import's own
//! transaction stays open until the last row is stored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use outbound_persistence::audit::{self, AuditEntry};
use outbound_persistence::campaigns;
use outbound_persistence::contacts;
use outbound_persistence::imports::{self, NewImport};
use outbound_persistence::tenancy::Scope;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::{oneshot, Notify};
use uuid::Uuid;

use crate::contact_import::{self, ImportOptions, ImportOutcome, ImportPlan, Progress};
use crate::problem::{ApiError, ApiResult};
use crate::routes::imports::require_editable;
use crate::state::AppState;
use crate::upload::{Spool, SpoolSource};

/// How often a running job writes its progress.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// Everything a job needs from the request that started it.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub import_id: Uuid,
    pub campaign_id: Uuid,
    pub scope: Scope,
    pub options: ImportOptions,
    pub actor: String,
    pub request_id: Option<String>,
    pub file_sha256: String,
}

/// Jobs running in this process, for a graceful shutdown.
struct RunningJobs {
    count: AtomicUsize,
    finished: Notify,
}

static RUNNING_JOBS: RunningJobs = RunningJobs {
    count: AtomicUsize::new(0),
    finished: Notify::const_new(),
};

/// Decrements the running-job count when a job thread ends, however it ends.
struct JobSlot;

impl JobSlot {
    fn take() -> Self {
        RUNNING_JOBS.count.fetch_add(1, Ordering::SeqCst);
        JobSlot
    }
}

impl Drop for JobSlot {
    fn drop(&mut self) {
        RUNNING_JOBS.count.fetch_sub(1, Ordering::SeqCst);
        RUNNING_JOBS.finished.notify_waiters();
    }
}

/// Waits until no import job runs in this process, or `timeout` passes;
/// returns whether all jobs finished. Jobs still running at exit leave their
/// import uncommitted, and it is later reported as `import_interrupted`.
pub async fn wait_for_jobs(timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let finished = RUNNING_JOBS.finished.notified();
        let running = RUNNING_JOBS.count.load(Ordering::SeqCst);
        if running == 0 {
            return true;
        }
        tracing::info!(running, "waiting for import jobs to finish");
        if tokio::time::timeout_at(deadline, finished).await.is_err() {
            tracing::warn!(
                running = RUNNING_JOBS.count.load(Ordering::SeqCst),
                "import jobs still running at shutdown; their imports will be reported as interrupted"
            );
            return false;
        }
    }
}

/// Seconds a client is asked to wait when every job slot is taken.
pub const JOBS_RETRY_AFTER_SECONDS: u64 = 30;

/// Counts the import jobs of one server, from the moment an upload is taken
/// as a job (before its body is read) until the job ends.
#[derive(Debug, Default)]
pub struct JobGate {
    running: AtomicUsize,
}

/// A job slot, freed when dropped.
#[derive(Debug)]
pub struct JobPermit {
    gate: Arc<JobGate>,
}

impl Drop for JobPermit {
    fn drop(&mut self) {
        self.gate.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl JobGate {
    /// Takes a slot if fewer than `max` jobs hold one.
    ///
    /// # Errors
    /// `429 too_many_import_jobs` with `Retry-After` when all slots are taken.
    pub fn try_acquire(self: &Arc<Self>, max: usize) -> ApiResult<JobPermit> {
        self.running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |running| {
                (running < max).then_some(running + 1)
            })
            .map_err(|_| {
                let mut error = ApiError::new(
                    actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                    "too_many_import_jobs",
                    format!(
                        "the server is already importing its maximum of {max} large files at once. Send this file again in {JOBS_RETRY_AFTER_SECONDS} seconds"
                    ),
                )
                .with("max_import_jobs", max);
                error.retry_after = Some(JOBS_RETRY_AFTER_SECONDS);
                error
            })?;
        Ok(JobPermit { gate: self.clone() })
    }
}

/// Records the import as `processing` and starts its job. Returns once the
/// job holds its lock, so a poll right after the response finds it running.
///
/// # Errors
/// `500` when the job's thread, runtime or database session cannot start.
pub async fn start(
    state: web::Data<AppState>,
    request: JobRequest,
    spool: Spool,
    permit: JobPermit,
) -> ApiResult<()> {
    let source = spool.into_source()?;
    let (started_sender, started) = oneshot::channel();
    let slot = JobSlot::take();
    let import_id = request.import_id;
    std::thread::Builder::new()
        .name(format!("import-{import_id}"))
        .spawn(move || {
            let _slot = slot;
            let _permit = permit;
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = started_sender.send(Err(ApiError::internal(&format!(
                        "cannot start an import job runtime: {error}"
                    ))));
                    return;
                }
            };
            runtime.block_on(run(state, request, source, started_sender));
        })
        .map_err(|error| {
            ApiError::internal(&format!("cannot start an import job thread: {error}"))
        })?;
    started
        .await
        .map_err(|_| ApiError::internal(&"the import job stopped before it started"))?
}

async fn open_session(state: &AppState) -> sqlx::Result<PgConnection> {
    state
        .pool
        .connect_options()
        .as_ref()
        .clone()
        .connect()
        .await
}

/// Opens the job's session, takes its lock and records the import.
async fn begin(state: &AppState, request: &JobRequest) -> ApiResult<PgConnection> {
    let mut session = open_session(state).await?;
    imports::hold_job_lock(&mut session, request.import_id).await?;
    imports::insert_processing(
        &mut session,
        &NewImport {
            id: request.import_id,
            campaign_id: request.campaign_id,
            idempotency_key: None,
            file_sha256: &request.file_sha256,
            created_by: &request.actor,
        },
    )
    .await?;
    Ok(session)
}

async fn run(
    state: web::Data<AppState>,
    request: JobRequest,
    source: SpoolSource,
    started: oneshot::Sender<ApiResult<()>>,
) {
    let mut session = match begin(&state, &request).await {
        Ok(session) => session,
        Err(error) => {
            let _ = started.send(Err(error));
            return;
        }
    };
    let _ = started.send(Ok(()));
    let import_id = request.import_id;
    tracing::info!(%import_id, campaign_id = %request.campaign_id, "import job started");

    match import(&state, &request, &mut session, source).await {
        Ok(outcome) => tracing::info!(
            %import_id,
            campaign_id = %request.campaign_id,
            rows_accepted = outcome.counts.rows_accepted,
            rows_rejected = outcome.counts.rows_rejected,
            "import job completed"
        ),
        Err(error) => {
            tracing::warn!(%import_id, code = error.code, detail = %error.detail, "import job failed");
            let line = error
                .extensions
                .get("line")
                .and_then(serde_json::Value::as_i64)
                .and_then(|line| i32::try_from(line).ok());
            if let Err(store_error) =
                imports::fail(&mut session, import_id, error.code, &error.detail, line).await
            {
                tracing::error!(%import_id, error = %store_error, "cannot record the failure of an import job");
            }
        }
    }
    // Closing the session releases the job lock.
    if let Err(error) = session.close().await {
        tracing::warn!(%import_id, %error, "closing an import job's session failed");
    }
}

/// Imports the file in one transaction that commits every row or none.
async fn import(
    state: &AppState,
    request: &JobRequest,
    session: &mut PgConnection,
    source: SpoolSource,
) -> ApiResult<ImportOutcome> {
    let mut transaction = session.begin().await?;
    let campaign =
        campaigns::find_for_update(&mut transaction, &request.scope, request.campaign_id)
            .await?
            .ok_or_else(|| ApiError::not_found("campaign"))?;
    require_editable(&campaign)?;
    let existing = contacts::existing_indexes(&mut transaction, campaign.id).await?;
    let plan = ImportPlan::new(&campaign, request.import_id, request.options);
    let progress = Arc::new(Progress::default());
    let reporter = ProgressReporter::start(state, request.import_id, progress.clone());
    let outcome = contact_import::run(
        &mut transaction,
        source,
        plan,
        state.keyring.clone(),
        existing,
        progress,
    )
    .await;
    reporter.stop().await;
    let outcome = outcome?;

    imports::complete(
        &mut *transaction,
        request.import_id,
        outcome.counts,
        &outcome.dropped_columns,
        &request.file_sha256,
    )
    .await?;
    audit::record(
        &mut *transaction,
        AuditEntry {
            partner_id: Some(request.scope.partner_id),
            campaign_id: Some(campaign.id),
            actor: &request.actor,
            action: "contacts.import",
            from_state: None,
            to_state: None,
            details: serde_json::json!({
                "import_id": request.import_id,
                "rows_total": outcome.counts.rows_total,
                "rows_accepted": outcome.counts.rows_accepted,
                "rows_rejected": outcome.counts.rows_rejected,
                "file_sha256": request.file_sha256,
                "job": true,
            }),
            request_id: request.request_id.as_deref(),
        },
    )
    .await?;
    transaction.commit().await?;
    Ok(outcome)
}

/// Writes a job's progress on its own session every [`PROGRESS_INTERVAL`],
/// and once more when it stops.
struct ProgressReporter {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The progress writer's session, opened on first use and again after an error.
struct ProgressWriter {
    import_id: Uuid,
    options: Arc<sqlx::postgres::PgConnectOptions>,
    session: Option<PgConnection>,
    written: (i32, i32, i32),
}

impl ProgressWriter {
    async fn write(&mut self, progress: &Progress) {
        let import_id = self.import_id;
        let current = (
            progress.rows_processed.load(Ordering::Relaxed),
            progress.rows_accepted.load(Ordering::Relaxed),
            progress.rows_rejected.load(Ordering::Relaxed),
        );
        if current == self.written {
            return;
        }
        if self.session.is_none() {
            match self.options.as_ref().clone().connect().await {
                Ok(opened) => self.session = Some(opened),
                Err(error) => {
                    tracing::warn!(%import_id, %error, "cannot open a session for import progress");
                    return;
                }
            }
        }
        let Some(connection) = self.session.as_mut() else {
            return;
        };
        let (processed, accepted, rejected) = current;
        match imports::record_progress(connection, import_id, processed, accepted, rejected).await {
            Ok(()) => self.written = current,
            Err(error) => {
                tracing::warn!(%import_id, %error, "cannot record import progress");
                self.session = None;
            }
        }
    }

    async fn close(self) {
        if let Some(connection) = self.session {
            let _ = connection.close().await;
        }
    }
}

impl ProgressReporter {
    fn start(state: &AppState, import_id: Uuid, progress: Arc<Progress>) -> Self {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let mut writer = ProgressWriter {
            import_id,
            options: state.pool.connect_options(),
            session: None,
            written: (0, 0, 0),
        };
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(PROGRESS_INTERVAL);
            interval.tick().await;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = interval.tick() => writer.write(&progress).await,
                }
            }
            writer.write(&progress).await;
            writer.close().await;
        });
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
