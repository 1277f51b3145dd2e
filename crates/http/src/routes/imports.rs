//! Contact CSV imports and DNCR wash result files.
//!
//! The body is read as it arrives and never held whole. A file up to the job
//! threshold streams through the reader while the request is open. A larger
//! one is kept encrypted in a temporary file and imported by a job that the
//! client polls. Either way the rows are written inside one transaction, so
//! an import is visible whole or not at all.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::stream;
use outbound_domain::contact_row::parse_iso_date_or_time;
use outbound_persistence::audit::{self, AuditEntry};
use outbound_persistence::campaigns::{self, Campaign};
use outbound_persistence::contacts;
use outbound_persistence::imports::{
    self, ImportRecord, IssueRecord, NewImport, NewWash, StoredResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{decode_cursor, encode_cursor, idempotency_key, page_limit, parse_uuid, request_id};
use crate::auth::Principal;
use crate::contact_import::{
    self, ImportOptions, ImportOutcome, ImportPlan, Progress, INLINE_ISSUES,
};
use crate::csv_input::{DeclaredEncoding, RecordLimits};
use crate::import_jobs::{self, JobRequest};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::reports::spreadsheet_safe;
use crate::state::AppState;
use crate::upload::{self, BodyDigest};
use crate::wash_import::{self, WashPlan};

/// Maximum number of fields in one record of an upload; more fail the file as `malformed_csv`.
const MAX_FIELDS: usize = 1024;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ImportQuery {
    /// Drop columns that are neither contact columns nor approved
    /// personalisation keys instead of failing the file with `unknown_column`.
    #[serde(default)]
    pub drop_unknown_columns: bool,
    /// `windows-1252` for files without a byte order mark saved in that code
    /// page, or `utf-16`, `utf-16le` or `utf-16be` for UTF-16 files, whose
    /// byte order mark must agree (also read from the Content-Type charset).
    pub encoding: Option<String>,
}

/// A row-level error or warning. Never contains a phone number or personalisation value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowIssueView {
    /// 1-based data record, header excluded.
    pub row: i32,
    /// Physical line where the record starts.
    pub line: i32,
    pub column: String,
    pub code: String,
    pub message: String,
}

impl From<&IssueRecord> for RowIssueView {
    fn from(issue: &IssueRecord) -> Self {
        Self {
            row: issue.row_number,
            line: issue.line,
            column: issue.column_name.clone(),
            code: issue.code.clone(),
            message: issue.message.clone(),
        }
    }
}

/// A contact or wash result file sent as a multipart/form-data form.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadFormBody {
    /// The CSV file. Other parts of the form are ignored; a second file part
    /// fails the upload with `multiple_files`.
    #[schema(content_media_type = "text/csv")]
    file: String,
}

/// The reason an import job failed. Nothing of the file was imported.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportFailure {
    /// The file-level code that a synchronous import would return:
    /// `malformed_csv`, `too_many_rows`, `unknown_column`, … or
    /// `import_interrupted` when the server stopped during the import.
    pub code: String,
    pub message: String,
    /// The line the problem was found on, when there is one.
    pub line: Option<i32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportResult {
    pub import_id: Uuid,
    pub campaign_id: Uuid,
    /// `processing` while a job runs, `completed` once the accepted rows are
    /// stored, `failed` when the file was refused and nothing was stored.
    pub state: String,
    /// Data records read so far, empty records excluded.
    pub rows_processed: i32,
    /// Data records in the file; `null` until the whole file has been read.
    pub rows_total: Option<i32>,
    pub rows_accepted: i32,
    pub rows_rejected: i32,
    pub rows_with_warnings: i32,
    pub dropped_columns: Vec<String>,
    /// SHA-256 of the uploaded bytes.
    pub file_sha256: String,
    /// Set when `state` is `failed`.
    pub error: Option<ImportFailure>,
    /// The first row errors; page through all of them at `.../issues`.
    pub errors: Vec<RowIssueView>,
    /// The first row warnings.
    pub warnings: Vec<RowIssueView>,
}

impl ImportResult {
    fn completed(import_id: Uuid, campaign_id: Uuid, outcome: &ImportOutcome, sha: String) -> Self {
        let counts = outcome.counts;
        Self {
            import_id,
            campaign_id,
            state: "completed".into(),
            rows_processed: counts.rows_total,
            rows_total: Some(counts.rows_total),
            rows_accepted: counts.rows_accepted,
            rows_rejected: counts.rows_rejected,
            rows_with_warnings: counts.rows_with_warnings,
            dropped_columns: outcome.dropped_columns.clone(),
            file_sha256: sha,
            error: None,
            errors: outcome.errors.iter().map(RowIssueView::from).collect(),
            warnings: outcome.warnings.iter().map(RowIssueView::from).collect(),
        }
    }

    fn processing(import_id: Uuid, campaign_id: Uuid, sha: String) -> Self {
        Self {
            import_id,
            campaign_id,
            state: "processing".into(),
            rows_processed: 0,
            rows_total: None,
            rows_accepted: 0,
            rows_rejected: 0,
            rows_with_warnings: 0,
            dropped_columns: Vec::new(),
            file_sha256: sha,
            error: None,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn stored(
        record: &ImportRecord,
        errors: &[(i32, IssueRecord)],
        warnings: &[(i32, IssueRecord)],
    ) -> Self {
        let finished = record.state != "processing";
        Self {
            import_id: record.id,
            campaign_id: record.campaign_id,
            state: record.state.clone(),
            rows_processed: record.rows_processed,
            rows_total: finished.then_some(record.rows_total),
            rows_accepted: record.rows_accepted,
            rows_rejected: record.rows_rejected,
            rows_with_warnings: record.rows_with_warnings,
            dropped_columns: record.dropped_columns.clone(),
            file_sha256: record.file_sha256.clone(),
            error: record.error_code.as_ref().map(|code| ImportFailure {
                code: code.clone(),
                message: record.error_message.clone().unwrap_or_default(),
                line: record.error_line,
            }),
            errors: errors.iter().map(|(_, i)| RowIssueView::from(i)).collect(),
            warnings: warnings
                .iter()
                .map(|(_, i)| RowIssueView::from(i))
                .collect(),
        }
    }
}

/// Whether the campaign can take contacts or evidence now.
pub(crate) fn require_editable(campaign: &Campaign) -> ApiResult<()> {
    if campaign.state().accepts_changes() {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "campaign_not_editable",
            format!(
                "contacts and evidence can be added only in draft or paused; the campaign is {}",
                campaign.state()
            ),
        )
        .with("state", campaign.state()))
    }
}

fn declared_encoding(
    request: &HttpRequest,
    query: Option<&str>,
) -> ApiResult<Option<DeclaredEncoding>> {
    let from_header = request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // Parameter names are case-insensitive (RFC 9110 section 5.6.6).
            v.split(';').find_map(|part| {
                let (name, value) = part.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("charset")
                    .then(|| value.trim().to_owned())
            })
        });
    match query.map(str::to_owned).or(from_header) {
        None => Ok(None),
        Some(name) => DeclaredEncoding::parse(&name).map(Some).ok_or_else(|| {
            ApiError::unprocessable(
                "unsupported_encoding",
                "supported encodings are utf-8, windows-1252 and utf-16 (also utf-16le and utf-16be), which needs a byte order mark",
            )
        }),
    }
}

fn record_limits(state: &AppState) -> RecordLimits {
    RecordLimits {
        max_field_bytes: state.limits.max_field_bytes,
        max_fields: MAX_FIELDS,
    }
}

/// `Idempotency-Key` handling for uploads. Their request fingerprint contains
/// the body's digest, so it is known only once the body is read.
struct UploadKey {
    scoped_key: Option<String>,
    partner_id: Uuid,
}

impl UploadKey {
    fn new(request: &HttpRequest, partner_id: Uuid) -> ApiResult<Self> {
        let scoped_key = idempotency_key(request)?.map(|key| format!("{}:{key}", request.path()));
        Ok(Self {
            scoped_key,
            partner_id,
        })
    }

    async fn stored(&self, executor: impl PgExecutor<'_>) -> ApiResult<Option<StoredResponse>> {
        match &self.scoped_key {
            Some(key) => Ok(imports::find_response(executor, self.partner_id, key).await?),
            None => Ok(None),
        }
    }

    fn request_hash(request: &HttpRequest, fingerprint: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(request.method().as_str());
        hasher.update(request.path());
        hasher.update(fingerprint.as_bytes());
        hex::encode(hasher.finalize())
    }

    /// Returns the first response again, or `422 idempotency_key_reused` when
    /// the key came with another request.
    fn replay(
        request: &HttpRequest,
        stored: &StoredResponse,
        fingerprint: &str,
    ) -> ApiResult<HttpResponse> {
        if stored.request_hash != Self::request_hash(request, fingerprint) {
            return Err(ApiError::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request; use a new key",
            ));
        }
        let status = StatusCode::from_u16(stored.status as u16).unwrap_or(StatusCode::OK);
        Ok(HttpResponse::build(status)
            .insert_header(("Idempotent-Replayed", "true"))
            .json(&stored.body))
    }

    /// Stores the response under the key, if there is one. Returns the
    /// response to send, or `None` when a concurrent request with the same
    /// key stored its response first.
    async fn store(
        &self,
        executor: impl PgExecutor<'_>,
        request: &HttpRequest,
        fingerprint: &str,
        status: StatusCode,
        body: impl Serialize,
    ) -> ApiResult<Option<HttpResponse>> {
        let body: Value = serde_json::to_value(body).map_err(|e| ApiError::internal(&e))?;
        if let Some(key) = &self.scoped_key {
            let stored = imports::store_response(
                executor,
                self.partner_id,
                key,
                &Self::request_hash(request, fingerprint),
                i32::from(status.as_u16()),
                &body,
            )
            .await?;
            if !stored {
                return Ok(None);
            }
        }
        Ok(Some(HttpResponse::build(status).json(body)))
    }

    /// Replays the response that a concurrent request with the same key
    /// stored, after [`UploadKey::store`] found the key taken.
    async fn replay_concurrent(
        &self,
        pool: &PgPool,
        request: &HttpRequest,
        fingerprint: &str,
    ) -> ApiResult<HttpResponse> {
        match self.stored(pool).await? {
            Some(stored) => Self::replay(request, &stored, fingerprint),
            None => Err(ApiError::internal(
                &"a stored Idempotency-Key response vanished",
            )),
        }
    }

    /// Removes the key's stored response after the work it promised failed
    /// to start.
    async fn forget(&self, pool: &PgPool) {
        if let Some(key) = &self.scoped_key {
            if let Err(error) = imports::delete_response(pool, self.partner_id, key).await {
                tracing::warn!(%error, "an Idempotency-Key of a failed upload could not be removed");
            }
        }
    }
}

/// Reads the rest of a body and drops it, so an early error response does
/// not cut off a client that is still sending.
async fn discard_body(body: &mut upload::Body, start: Bytes) {
    let _ = upload::digest(body, start).await;
}

/// Import contacts from a CSV file sent as the raw request body
/// (`Content-Type: text/csv`) or as the file part of a multipart/form-data form.
///
/// Valid rows are added atomically; invalid rows are reported with their row,
/// line, column and a stable code, and never echo a number or personalisation
/// value. A number already in the campaign, in any format, is a
/// `duplicate_to_number`. A number repeated in the file with another
/// `registry_status` is rejected as `conflicting_registry_status`, and the
/// contact keeps the stricter status (registered, then invalid, then
/// not_registered). Allowed in `draft` and `paused`.
///
/// A body larger than the job threshold (8 MiB unless the server is
/// configured otherwise) is answered `202` once received and imported in the
/// background; poll `GET .../imports/{import_id}` until `state` is
/// `completed` or `failed`. A server runs at most 4 such jobs at once unless
/// configured otherwise. While all are busy, a file that needs a job is
/// rejected with `429 too_many_import_jobs` and `Retry-After` before its
/// body is read.
#[utoipa::path(
    tag = "imports",
    params(
        ("campaign_id" = String, Path, description = "Campaign id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first result and imports nothing"),
        ImportQuery
    ),
    request_body(description = "The contact file, as the raw request body or as the file part of a multipart/form-data form; header row required, to_number the only required column. A raw body's Content-Type may be text/csv, application/csv, text/plain, text/tab-separated-values, application/vnd.ms-excel or application/octet-stream, with an optional charset parameter; any other or none is rejected with 415 unsupported_media_type before the body is read. In a form, the file is the first part with a filename, or the part named file", content(
        (String = "text/csv"),
        (inline(UploadFormBody) = "multipart/form-data"),
    )),
    responses(
        (status = 201, description = "Imported", body = ImportResult),
        (status = 202, description = "Received; the import runs as a job whose progress is at GET .../imports/{import_id}", body = ImportResult),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not import", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Campaign is not in draft or paused", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "File too large (checked against Content-Length before the body is read)", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The multipart/form-data form cannot be read (`invalid_multipart`), or the Idempotency-Key is not 1 to 255 visible characters (`invalid_idempotency_key`)", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The client sent nothing for the upload idle timeout, 30 seconds unless configured otherwise (`upload_timeout`); nothing imported", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is missing or neither a CSV type nor multipart/form-data, or the form's file is a spreadsheet workbook (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "File-level failure; nothing imported", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A file large enough for a job arrived while the server runs its maximum number of import jobs (`too_many_import_jobs`), with Retry-After. It is rejected before the body is read when the jobs are busy as it arrives, or once it is received when they filled up meanwhile", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/campaigns/{campaign_id}/imports")]
pub async fn import_contacts(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let scope = principal.write_scope()?;
    // Checked before the body is read, so a JSON upload is not parsed as CSV.
    let form = upload::require_upload_content_type(&request)?;
    let mut body = upload::Body::new(
        &request,
        payload,
        form,
        state.limits.idle_timeout,
        state.limits.max_bytes,
    );
    let campaign_id = parse_uuid(&path, "campaign")?;
    let campaign = campaigns::find(&state.pool, &scope, campaign_id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let declared = declared_encoding(&request, query.encoding.as_deref())?;
    let limits = state.limits;
    let length = upload::declared_length(&request, limits.max_bytes)?;
    let key = UploadKey::new(&request, scope.partner_id)?;
    let fingerprint = |sha: &str| {
        format!(
            "{sha}:{}:{}",
            query.drop_unknown_columns,
            declared.map_or("", DeclaredEncoding::as_str)
        )
    };
    let options = ImportOptions {
        drop_unknown_columns: query.drop_unknown_columns,
        declared_encoding: declared,
        max_rows: limits.max_rows,
        record_limits: record_limits(&state),
    };

    // Without Content-Length, the start of the body shows whether it is
    // small enough to import while the request waits.
    let inline_limit = limits.async_bytes.min(limits.max_bytes);
    let (start, as_job) = match length {
        Some(length) => (Bytes::new(), length > limits.async_bytes as u64),
        None => {
            let start = upload::read_start(&mut body, inline_limit).await?;
            if !start.complete && limits.async_bytes >= limits.max_bytes {
                return Err(upload::file_too_large(limits.max_bytes));
            }
            (start.bytes, !start.complete)
        }
    };

    if as_job {
        if let Some(stored) = key.stored(&state.pool).await? {
            let digest = upload::digest(&mut body, start).await?;
            return UploadKey::replay(&request, &stored, &fingerprint(&digest.sha256));
        }
        // Both rejections happen before the body is read. The job checks the
        // campaign's state again in its own transaction.
        require_editable(&campaign)?;
        // A free job slot is checked for before the body is read, but taken
        // only once it is, so slow uploads cannot hold every slot.
        drop(state.import_jobs.try_acquire(limits.max_jobs)?);
        let spool = upload::spool(&mut body, start).await?;
        let sha = spool.digest.sha256.clone();
        if let Some(stored) = key.stored(&state.pool).await? {
            return UploadKey::replay(&request, &stored, &fingerprint(&sha));
        }
        let permit = state.import_jobs.try_acquire(limits.max_jobs)?;
        let import_id = Uuid::new_v4();
        // The key is stored before the job starts, so a concurrent upload
        // with the same key replays this response instead of starting another.
        let result = ImportResult::processing(import_id, campaign_id, sha.clone());
        let Some(response) = key
            .store(
                &state.pool,
                &request,
                &fingerprint(&sha),
                StatusCode::ACCEPTED,
                result,
            )
            .await?
        else {
            return key
                .replay_concurrent(&state.pool, &request, &fingerprint(&sha))
                .await;
        };
        let job = JobRequest {
            import_id,
            campaign_id,
            scope,
            options,
            actor: principal.actor(),
            request_id: request_id(&request),
            file_sha256: sha.clone(),
        };
        if let Err(error) = import_jobs::start(state.clone(), job, spool, permit).await {
            key.forget(&state.pool).await;
            return Err(error);
        }
        tracing::info!(%campaign_id, %import_id, bytes = length, "contact import accepted as a job");
        return Ok(response);
    }

    if let Some(stored) = key.stored(&state.pool).await? {
        let digest = upload::digest(&mut body, start).await?;
        return UploadKey::replay(&request, &stored, &fingerprint(&digest.sha256));
    }
    // Refused before the campaign's lock is taken, because a running
    // campaign's lock is wanted by the dispatcher.
    if let Err(error) = require_editable(&campaign) {
        discard_body(&mut body, start).await;
        return Err(error);
    }
    // The whole file is received before the campaign is locked, so a slow or
    // stalled client never holds the campaign. A file imported while the
    // request waits is at most the job threshold, so this memory is bounded.
    let start = if length.is_some() {
        let read = upload::read_start(&mut body, inline_limit).await?;
        if !read.complete {
            return Err(upload::file_too_large(inline_limit));
        }
        read.bytes
    } else {
        start
    };
    let mut transaction = state.pool.begin().await?;
    let campaign = campaigns::find_for_update(&mut transaction, &scope, campaign_id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    // A request with the same key may have finished while this one waited
    // for the campaign.
    if let Some(stored) = key.stored(&mut *transaction).await? {
        drop(transaction);
        let digest = upload::digest(&mut body, start).await?;
        return UploadKey::replay(&request, &stored, &fingerprint(&digest.sha256));
    }
    if let Err(error) = require_editable(&campaign) {
        drop(transaction);
        discard_body(&mut body, start).await;
        return Err(error);
    }
    let import_id = Uuid::new_v4();
    let actor = principal.actor();
    imports::insert_processing(
        &mut *transaction,
        &NewImport {
            id: import_id,
            campaign_id,
            idempotency_key: None,
            file_sha256: "",
            created_by: &actor,
        },
    )
    .await?;
    let existing = contacts::existing_indexes(&mut transaction, campaign_id).await?;
    let plan = ImportPlan::new(&campaign, import_id, options);
    let (sender, source) = upload::channel();
    let (fed, outcome) = futures_util::join!(
        upload::feed(&mut body, start, sender),
        contact_import::run(
            &mut transaction,
            source,
            plan,
            state.keyring.clone(),
            existing,
            Arc::new(Progress::default()),
        )
    );
    let outcome = outcome?;
    let BodyDigest { sha256: sha, .. } = fed?;

    imports::complete(
        &mut *transaction,
        import_id,
        outcome.counts,
        &outcome.dropped_columns,
        &sha,
    )
    .await?;
    audit::record(
        &mut *transaction,
        AuditEntry {
            partner_id: Some(scope.partner_id),
            campaign_id: Some(campaign_id),
            actor: &actor,
            action: "contacts.import",
            from_state: None,
            to_state: None,
            details: serde_json::json!({
                "import_id": import_id,
                "rows_total": outcome.counts.rows_total,
                "rows_accepted": outcome.counts.rows_accepted,
                "rows_rejected": outcome.counts.rows_rejected,
                "file_sha256": sha,
            }),
            request_id: request_id(&request).as_deref(),
        },
    )
    .await?;
    // Stored with the import, so the key and the contacts commit together.
    let result = ImportResult::completed(import_id, campaign_id, &outcome, sha.clone());
    let stored = key
        .store(
            &mut *transaction,
            &request,
            &fingerprint(&sha),
            StatusCode::CREATED,
            result,
        )
        .await?;
    let Some(response) = stored else {
        // A job-sized upload with the same key, which does not wait for the
        // campaign, stored its response first: this import is rolled back.
        drop(transaction);
        return key
            .replay_concurrent(&state.pool, &request, &fingerprint(&sha))
            .await;
    };
    transaction.commit().await?;
    tracing::info!(
        %campaign_id, %import_id,
        rows_accepted = outcome.counts.rows_accepted, rows_rejected = outcome.counts.rows_rejected,
        "contacts imported"
    );
    Ok(response)
}

/// Get an import: its state, counts and first row issues. While a job runs,
/// the counts are its progress so far.
#[utoipa::path(
    tag = "imports",
    params(("campaign_id" = String, Path, description = "Campaign id"), ("import_id" = String, Path, description = "Import id")),
    responses(
        (status = 200, description = "The import", body = ImportResult),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role has no campaign access", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/campaigns/{campaign_id}/imports/{import_id}")]
pub async fn get_import(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<ImportResult>> {
    let scope = principal.read_scope()?;
    let campaign_id = parse_uuid(&path.0, "campaign")?;
    let import_id = parse_uuid(&path.1, "import")?;
    campaigns::find(&state.pool, &scope, campaign_id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let record = current_import(&state, campaign_id, import_id).await?;
    // Issues commit with the import, so only a completed import has any. A
    // poll of a running job would otherwise walk past every uncommitted
    // issue entry in the index.
    let (errors, warnings) = if record.state == "completed" {
        let inline = INLINE_ISSUES as i64;
        (
            imports::issues(&state.pool, import_id, -1, Some("error"), inline).await?,
            imports::issues(&state.pool, import_id, -1, Some("warning"), inline).await?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(web::Json(ImportResult::stored(&record, &errors, &warnings)))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuePage {
    pub items: Vec<RowIssueSeverityView>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowIssueSeverityView {
    /// `error` (row rejected) or `warning` (row accepted after a fix).
    pub severity: String,
    #[serde(flatten)]
    pub issue: RowIssueView,
}

/// Reads an import, first marking it `failed` with `import_interrupted` when
/// it is `processing` but no server is running it any more.
async fn current_import(
    state: &AppState,
    campaign_id: Uuid,
    import_id: Uuid,
) -> ApiResult<imports::ImportRecord> {
    let record = imports::find_import(&state.pool, campaign_id, import_id)
        .await?
        .ok_or_else(|| ApiError::not_found("import"))?;
    if record.state != "processing" {
        return Ok(record);
    }
    let mut connection = state.pool.acquire().await?;
    if !imports::fail_if_abandoned(&mut connection, import_id).await? {
        return Ok(record);
    }
    tracing::warn!(%campaign_id, %import_id, "an import job was interrupted; marked failed");
    imports::find_import(&mut *connection, campaign_id, import_id)
        .await?
        .ok_or_else(|| ApiError::not_found("import"))
}

/// Page through every row error and warning of an import.
#[utoipa::path(
    tag = "imports",
    params(
        ("campaign_id" = String, Path, description = "Campaign id"),
        ("import_id" = String, Path, description = "Import id"),
        super::campaigns::PageQuery
    ),
    responses(
        (status = 200, description = "A page of issues", body = IssuePage),
        (status = 400, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role has no campaign access", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/campaigns/{campaign_id}/imports/{import_id}/issues")]
pub async fn list_import_issues(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
    query: web::Query<super::campaigns::PageQuery>,
) -> ApiResult<web::Json<IssuePage>> {
    let scope = principal.read_scope()?;
    let campaign_id = parse_uuid(&path.0, "campaign")?;
    let import_id = parse_uuid(&path.1, "import")?;
    let limit = page_limit(query.limit)?;
    campaigns::find(&state.pool, &scope, campaign_id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    imports::find_import(&state.pool, campaign_id, import_id)
        .await?
        .ok_or_else(|| ApiError::not_found("import"))?;
    let after = match &query.cursor {
        None => -1,
        Some(cursor) => decode_cursor(cursor, 1)?[0].parse().map_err(|_| {
            ApiError::bad_request(
                "invalid_cursor",
                "the cursor is invalid; use the `next` value of the previous page",
            )
        })?,
    };
    let rows = imports::issues(&state.pool, import_id, after, None, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next = match (more, rows.last()) {
        (true, Some((seq, _))) => Some(encode_cursor(&[seq.to_string()])),
        _ => None,
    };
    let items = rows
        .iter()
        .map(|(_, issue)| RowIssueSeverityView {
            severity: issue.severity.clone(),
            issue: RowIssueView::from(issue),
        })
        .collect();
    Ok(web::Json(IssuePage { items, next }))
}

/// Row errors read per page while the rejected-rows CSV is written.
const REJECTED_PAGE: i64 = 2_000;

/// Returns the header of the rejected-rows CSV.
fn rejected_csv_header() -> Vec<&'static str> {
    let mut header = vec!["row", "line", "column", "code", "message"];
    header.extend(imports::REJECTED_ROW_COLUMNS);
    header
}

/// Writes one page of the rejected-rows CSV.
fn rejected_csv_page(page: &[imports::RejectedIssue], header: bool) -> Result<Bytes, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(page.len() * 160 + 256));
    if header {
        writer.write_record(rejected_csv_header())?;
    }
    for issue in page {
        let mut cells = vec![
            issue.row_number.to_string(),
            issue.line.to_string(),
            issue.column_name.clone(),
            issue.code.clone(),
            issue.message.clone(),
        ];
        cells.extend(
            issue
                .values
                .iter()
                .map(|value| value.clone().unwrap_or_default()),
        );
        writer.write_record(cells.iter().map(|cell| spreadsheet_safe(cell)))?;
    }
    let bytes = writer.into_inner().map_err(|error| error.into_error())?;
    Ok(bytes.into())
}

/// Download the rejected rows of a finished import as CSV.
///
/// One line per row error: `row`, `line`, `column`, `code` and `message`,
/// then the row's values of the columns that are not personal (contact_ref,
/// recipient_timezone, registry and consent fields, exemption, call_type,
/// priority, max_attempts). The phone number and personalisation values are
/// never included. Cells a spreadsheet would run as a formula (starting with
/// `=`, `+`, `-`, `@`, tab or carriage return) are prefixed with `'`.
#[utoipa::path(
    tag = "imports",
    params(("campaign_id" = String, Path, description = "Campaign id"), ("import_id" = String, Path, description = "Import id")),
    responses(
        (status = 200, description = "The rejected rows as CSV", body = String, content_type = "text/csv"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role has no campaign access", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The import is still processing", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/campaigns/{campaign_id}/imports/{import_id}/rejected.csv")]
pub async fn rejected_rows_csv(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let scope = principal.read_scope()?;
    let campaign_id = parse_uuid(&path.0, "campaign")?;
    let import_id = parse_uuid(&path.1, "import")?;
    campaigns::find(&state.pool, &scope, campaign_id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let record = current_import(&state, campaign_id, import_id).await?;
    if record.state == "processing" {
        return Err(ApiError::conflict(
            "import_not_finished",
            "the import is still processing; fetch its rejected rows once its state is completed",
        ));
    }

    struct Cursor {
        pool: PgPool,
        after: i32,
        header: bool,
        done: bool,
    }
    let cursor = Cursor {
        pool: state.pool.clone(),
        after: -1,
        header: true,
        done: false,
    };
    let body = stream::unfold(cursor, move |mut cursor| async move {
        if cursor.done {
            return None;
        }
        let page = match imports::rejected_issues(
            &cursor.pool,
            import_id,
            cursor.after,
            REJECTED_PAGE,
        )
        .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(%import_id, %error, "reading rejected rows failed mid-download");
                cursor.done = true;
                return Some((
                    Err(actix_web::error::ErrorInternalServerError("rejected rows")),
                    cursor,
                ));
            }
        };
        if page.len() < REJECTED_PAGE as usize {
            cursor.done = true;
        }
        if let Some(last) = page.last() {
            cursor.after = last.seq;
        }
        let chunk = rejected_csv_page(&page, cursor.header).map_err(|error| {
            tracing::error!(%import_id, %error, "writing rejected rows failed mid-download");
            actix_web::error::ErrorInternalServerError("rejected rows")
        });
        cursor.header = false;
        Some((chunk, cursor))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"import-{import_id}-rejected.csv\""),
        ))
        .streaming(body))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct WashQuery {
    /// The wash reference from the register.
    pub wash_reference: String,
    /// The DNCR account the list was washed under.
    pub account: Option<String>,
    /// When the result was received: RFC 3339 date-time or ISO date
    /// (Australia/Sydney). Defaults to now.
    pub received_at: Option<String>,
    pub encoding: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WashResultView {
    pub wash_id: Uuid,
    pub register: String,
    pub wash_reference: String,
    pub received_at: DateTime<Utc>,
    /// SHA-256 of the uploaded file; the file itself is not stored.
    pub file_sha256: String,
    pub rows_total: i32,
    pub registered: i32,
    pub not_registered: i32,
    pub invalid: i32,
    /// Campaign contacts whose registry status was set from this file.
    pub contacts_matched: i32,
    /// Valid rows whose number is not a contact of this campaign; not stored.
    pub numbers_unmatched: i32,
    pub rows_rejected: i32,
    /// Rows that list a number an earlier row lists with a different result.
    /// Each has a `conflicting_wash_result` error naming that row; the stricter
    /// result is kept, so a number registered anywhere in the file is registered.
    pub rows_conflicting: i32,
    pub errors: Vec<RowIssueView>,
}

/// Attach a DNCR wash result file (`number,result` with Y, N or I), sent as
/// the raw request body with `Content-Type: text/csv`.
///
/// Numbers are matched to the campaign's contacts through the blind index and
/// set their registry status; unmatched numbers are counted, never stored.
/// The file's SHA-256 digest and counts are kept as the wash evidence.
#[utoipa::path(
    tag = "imports",
    params(
        ("campaign_id" = String, Path, description = "Campaign id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first result"),
        WashQuery
    ),
    request_body(description = "Wash result file with number and result columns, as the raw request body or as the file part of a multipart/form-data form. A raw body's Content-Type may be text/csv, application/csv, text/plain, text/tab-separated-values, application/vnd.ms-excel or application/octet-stream, with an optional charset parameter; any other or none is rejected with 415 unsupported_media_type before the body is read. In a form, the file is the first part with a filename, or the part named file", content(
        (String = "text/csv"),
        (inline(UploadFormBody) = "multipart/form-data"),
    )),
    responses(
        (status = 201, description = "Attached", body = WashResultView),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not attach evidence", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Campaign is not in draft or paused", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "File too large", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The multipart/form-data form cannot be read (`invalid_multipart`), or the Idempotency-Key is not 1 to 255 visible characters (`invalid_idempotency_key`)", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The client sent nothing for the upload idle timeout, 30 seconds unless configured otherwise (`upload_timeout`); nothing imported", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is missing or neither a CSV type nor multipart/form-data, or the form's file is a spreadsheet workbook (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "File-level failure; nothing attached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/campaigns/{campaign_id}/wash-results")]
pub async fn attach_wash(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<WashQuery>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let scope = principal.write_scope()?;
    // Checked before the body is read, so a JSON upload is not parsed as CSV.
    let form = upload::require_upload_content_type(&request)?;
    let mut body = upload::Body::new(
        &request,
        payload,
        form,
        state.limits.idle_timeout,
        state.limits.max_bytes,
    );
    let campaign_id = parse_uuid(&path, "campaign")?;
    let campaign = campaigns::find(&state.pool, &scope, campaign_id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let reference = query.wash_reference.trim().to_owned();
    if reference.is_empty() || reference.len() > 200 {
        return Err(ApiError::unprocessable(
            "invalid_wash_reference",
            "wash_reference must be 1 to 200 characters",
        ));
    }
    let received_at = match query.received_at.as_deref() {
        None => state.clock.now(),
        Some(value) => parse_iso_date_or_time(value)
            .map(|(instant, _)| instant)
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_date",
                    "received_at must be an RFC 3339 date-time or an ISO date",
                )
            })?,
    };
    if received_at > state.clock.now() + chrono::Duration::minutes(5) {
        return Err(ApiError::unprocessable(
            "invalid_date",
            "received_at is in the future",
        ));
    }
    let declared = declared_encoding(&request, query.encoding.as_deref())?;
    upload::declared_length(&request, state.limits.max_bytes)?;
    let key = UploadKey::new(&request, scope.partner_id)?;
    let fingerprint = |sha: &str| {
        format!(
            "{sha}:{reference}:{:?}:{:?}:{}",
            query.account,
            // As sent: the default, the time of the request, differs on a repeat.
            query.received_at,
            declared.map_or("", DeclaredEncoding::as_str)
        )
    };

    if let Some(stored) = key.stored(&state.pool).await? {
        let digest = upload::digest(&mut body, Bytes::new()).await?;
        return UploadKey::replay(&request, &stored, &fingerprint(&digest.sha256));
    }
    // As for contact files: refused before the campaign's lock is taken, and
    // the whole file is received (into an encrypted temporary file) before
    // the campaign is locked.
    if let Err(error) = require_editable(&campaign) {
        discard_body(&mut body, Bytes::new()).await;
        return Err(error);
    }
    let spool = upload::spool(&mut body, Bytes::new()).await?;
    let sha = spool.digest.sha256.clone();
    let mut transaction = state.pool.begin().await?;
    let campaign = campaigns::find_for_update(&mut transaction, &scope, campaign_id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    if let Some(stored) = key.stored(&mut *transaction).await? {
        return UploadKey::replay(&request, &stored, &fingerprint(&sha));
    }
    require_editable(&campaign)?;
    let plan = WashPlan {
        campaign_id,
        reference: reference.clone(),
        received_at,
        declared_encoding: declared,
        record_limits: record_limits(&state),
    };
    let outcome = wash_import::run(
        &mut transaction,
        spool.into_source()?,
        plan,
        state.keyring.clone(),
    )
    .await?;

    let wash_id = Uuid::new_v4();
    let actor = principal.actor();
    let unmatched = outcome.valid_numbers - outcome.contacts_matched;
    let record = NewWash {
        id: wash_id,
        campaign_id,
        wash_reference: &reference,
        account: query.account.as_deref(),
        received_at,
        file_sha256: &sha,
        rows_total: outcome.rows_total,
        registered: outcome.counts[0],
        not_registered: outcome.counts[1],
        invalid: outcome.counts[2],
        matched: outcome.contacts_matched,
        unmatched,
        rejected_rows: outcome.rows_rejected,
        created_by: &actor,
    };
    imports::insert_wash(&mut *transaction, &record).await?;
    audit::record(
        &mut *transaction,
        AuditEntry {
            partner_id: Some(scope.partner_id),
            campaign_id: Some(campaign_id),
            actor: &actor,
            action: "wash.attach",
            from_state: None,
            to_state: None,
            details: serde_json::json!({
                "wash_id": wash_id, "wash_reference": reference, "file_sha256": sha,
                "contacts_matched": outcome.contacts_matched, "rows_total": outcome.rows_total,
                "rows_conflicting": outcome.rows_conflicting,
            }),
            request_id: request_id(&request).as_deref(),
        },
    )
    .await?;
    let view = WashResultView {
        wash_id,
        register: "AU_DNCR".into(),
        wash_reference: reference.clone(),
        received_at,
        file_sha256: sha.clone(),
        rows_total: outcome.rows_total,
        registered: outcome.counts[0],
        not_registered: outcome.counts[1],
        invalid: outcome.counts[2],
        contacts_matched: outcome.contacts_matched,
        numbers_unmatched: unmatched,
        rows_rejected: outcome.rows_rejected,
        rows_conflicting: outcome.rows_conflicting,
        errors: outcome.errors.iter().map(RowIssueView::from).collect(),
    };
    let stored = key
        .store(
            &mut *transaction,
            &request,
            &fingerprint(&sha),
            StatusCode::CREATED,
            view,
        )
        .await?;
    let Some(response) = stored else {
        drop(transaction);
        return key
            .replay_concurrent(&state.pool, &request, &fingerprint(&sha))
            .await;
    };
    transaction.commit().await?;
    tracing::info!(%campaign_id, %wash_id, contacts_matched = outcome.contacts_matched, "wash result attached");
    Ok(response)
}
