//! Contact CSV imports and DNCR wash result files.
//!
//! Upload → decode → parse → validate each record → match duplicates by blind
//! index → seal → insert, all in one transaction so an import is visible whole
//! or not at all.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use outbound_domain::contact_row::{
    parse_iso_date_or_time, validate_record, HeaderMap, RowContext,
};
use outbound_domain::evidence::RegistryStatus;
use outbound_domain::phone::{normalise, NumberPolicy};
use outbound_domain::zone::{stored_zone_key, ZoneGroup};
use outbound_persistence::audit::{self, AuditEntry};
use outbound_persistence::campaigns::{self, Campaign};
use outbound_persistence::contacts::{self, NewContact};
use outbound_persistence::crypto::{Binding, Keyring};
use outbound_persistence::imports::{self, IssueRecord, NewWash};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    decode_cursor, encode_cursor, idempotent, page_limit, parse_uuid, request_id, sha256_hex,
};
use crate::auth::Principal;
use crate::csv_input::{
    decode, detect_delimiter, reader, unterminated_quote_line, DeclaredEncoding,
};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;

/// Row issues returned inline in an import response; the rest are paged.
const INLINE_ISSUES: usize = 100;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ImportQuery {
    /// Drop columns that are neither contact columns nor approved
    /// personalisation keys instead of failing the file with `unknown_column`.
    #[serde(default)]
    pub drop_unknown_columns: bool,
    /// `windows-1252` for files without a byte order mark saved in that code
    /// page (also read from the Content-Type charset).
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

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportResult {
    pub import_id: Uuid,
    pub campaign_id: Uuid,
    /// `completed`: the accepted rows are stored.
    pub state: String,
    /// Data records read, empty records excluded.
    pub rows_processed: i32,
    pub rows_total: i32,
    pub rows_accepted: i32,
    pub rows_rejected: i32,
    pub rows_with_warnings: i32,
    pub dropped_columns: Vec<String>,
    /// SHA-256 of the uploaded bytes.
    pub file_sha256: String,
    /// The first row errors; page through all of them at `.../issues`.
    pub errors: Vec<RowIssueView>,
    /// The first row warnings.
    pub warnings: Vec<RowIssueView>,
}

/// Whether the campaign can take contacts or evidence now.
fn require_editable(campaign: &Campaign) -> ApiResult<()> {
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
            v.split(';')
                .find_map(|part| part.trim().strip_prefix("charset=").map(str::to_owned))
        });
    match query.map(str::to_owned).or(from_header) {
        None => Ok(None),
        Some(name) => DeclaredEncoding::parse(&name).map(Some).ok_or_else(|| {
            ApiError::unprocessable(
                "unsupported_encoding",
                "supported encodings are utf-8 and windows-1252 (UTF-16 needs a byte order mark)",
            )
        }),
    }
}

/// The body as text, after the size limit and decoding.
fn read_upload(
    state: &AppState,
    request: &HttpRequest,
    body: &[u8],
    encoding: Option<&str>,
) -> ApiResult<String> {
    if body.len() > state.limits.max_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!(
                "the file is larger than {} bytes; split it into smaller files",
                state.limits.max_bytes
            ),
        ));
    }
    if body.is_empty() {
        return Err(ApiError::unprocessable(
            "missing_required_column",
            "the file is empty; it needs a header row with to_number",
        ));
    }
    decode(body, declared_encoding(request, encoding)?)
}

fn malformed(line: u64, detail: &str) -> ApiError {
    ApiError::unprocessable("malformed_csv", format!("line {line}: {detail}")).with("line", line)
}

/// Everything an import produced, before it is stored.
struct ParsedImport {
    contacts: Vec<NewContact>,
    issues: Vec<IssueRecord>,
    rows_total: i32,
    rows_rejected: i32,
    rows_with_warnings: i32,
    dropped_columns: Vec<String>,
}

fn issue(
    severity: &str,
    row: i32,
    line: i32,
    column: &str,
    code: &str,
    message: String,
) -> IssueRecord {
    IssueRecord {
        severity: severity.to_owned(),
        row_number: row,
        line,
        column_name: column.to_owned(),
        code: code.to_owned(),
        message,
    }
}

/// Parses and validates every record, seals accepted ones and finds duplicates.
fn parse_contacts(
    text: &str,
    campaign: &Campaign,
    keyring: &Keyring,
    existing: &HashMap<Vec<u8>, i32>,
    drop_unknown: bool,
    max_rows: usize,
) -> ApiResult<ParsedImport> {
    let delimiter = detect_delimiter(text);
    if let Some(line) = unterminated_quote_line(text, delimiter) {
        return Err(malformed(line, "a quoted field is never closed"));
    }
    let mut csv = reader(text, delimiter);
    let mut records = csv.records();
    let header = match records.next() {
        Some(Ok(header)) => header,
        Some(Err(error)) => {
            return Err(malformed(
                error.position().map_or(1, |p| p.line()),
                "the header row cannot be read",
            ))
        }
        None => {
            return Err(ApiError::unprocessable(
                "missing_required_column",
                "the file has no header row",
            ))
        }
    };
    let headers: Vec<&str> = header.iter().collect();
    let map = HeaderMap::build(&headers, &campaign.personalisation_keys, drop_unknown)
        .map_err(|error| ApiError::unprocessable(error.code(), error.to_string()))?;
    let context = RowContext {
        call_type: campaign.call_type(),
        number_policy: campaign.number_policy(),
    };

    let mut parsed = ParsedImport {
        contacts: Vec::new(),
        issues: Vec::new(),
        rows_total: 0,
        rows_rejected: 0,
        rows_with_warnings: 0,
        dropped_columns: map.dropped.clone(),
    };
    let mut seen_in_file: HashMap<Vec<u8>, i32> = HashMap::new();
    for record in records {
        let record = record.map_err(|error| {
            let line = error.position().map_or(0, |p| p.line());
            malformed(line, "the record cannot be read")
        })?;
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        parsed.rows_total += 1;
        if parsed.rows_total as usize > max_rows {
            return Err(ApiError::unprocessable(
                "too_many_rows",
                format!("the file has more than {max_rows} rows; split it"),
            ));
        }
        let row = parsed.rows_total;
        let line = record.position().map_or(0, |p| p.line()) as i32;
        let fields: Vec<&str> = record.iter().collect();
        let draft = match validate_record(&map, &fields, context) {
            Ok(draft) => draft,
            Err(errors) => {
                parsed.rows_rejected += 1;
                for error in errors {
                    parsed.issues.push(issue(
                        "error",
                        row,
                        line,
                        &error.column,
                        error.code,
                        error.message,
                    ));
                }
                continue;
            }
        };
        let index = keyring.phone_index(draft.number.e164.as_str());
        let duplicate_of = seen_in_file
            .get(&index)
            .map(|r| (*r, "this file"))
            .or_else(|| existing.get(&index).map(|r| (*r, "an earlier import")));
        if let Some((first_row, source)) = duplicate_of {
            parsed.rows_rejected += 1;
            parsed.issues.push(issue(
                "error",
                row,
                line,
                "to_number",
                "duplicate_to_number",
                format!("the number duplicates row {first_row} of {source}"),
            ));
            continue;
        }
        seen_in_file.insert(index.clone(), row);
        if !draft.warnings.is_empty() {
            parsed.rows_with_warnings += 1;
        }
        for warning in &draft.warnings {
            parsed.issues.push(issue(
                "warning",
                row,
                line,
                &warning.column,
                warning.code,
                warning.message.clone(),
            ));
        }
        parsed.contacts.push(seal_contact(
            keyring,
            draft,
            index,
            row,
            campaign.default_max_attempts,
        ));
    }
    Ok(parsed)
}

fn seal_contact(
    keyring: &Keyring,
    draft: outbound_domain::contact_row::ContactDraft,
    index: Vec<u8>,
    row: i32,
    default_max_attempts: i32,
) -> NewContact {
    let id = Uuid::new_v4();
    let phone_ciphertext = keyring.seal(
        Binding {
            table: "contacts",
            row_id: id,
            column: "phone",
        },
        draft.number.e164.as_str().as_bytes(),
    );
    let personalisation_ciphertext = (!draft.personalisation.is_empty()).then(|| {
        let values: serde_json::Map<String, serde_json::Value> = draft
            .personalisation
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(&values).unwrap_or_default());
        keyring.seal(
            Binding {
                table: "contacts",
                row_id: id,
                column: "personalisation",
            },
            &plaintext,
        )
    });
    let group = ZoneGroup::of_number(&draft.number.e164, draft.number.number_type);
    let (zone_source, zone_key) = stored_zone_key(draft.explicit_zone.as_ref(), group);
    NewContact {
        id,
        row_number: row,
        phone_ciphertext,
        phone_index: index,
        phone_masked: draft.number.e164.masked(),
        number_type: draft.number.number_type.as_str(),
        personalisation_ciphertext,
        contact_ref: draft.contact_ref,
        zone_source: zone_source.as_str(),
        zone_key,
        registry_status: draft.registry_status.map(RegistryStatus::as_str),
        registry_checked_at: draft.registry_checked_at,
        registry_evidence: draft.registry_evidence,
        consent_type: draft.consent.as_ref().map(|c| c.consent_type.as_str()),
        consent_evidence: draft.consent.as_ref().and_then(|c| c.evidence.clone()),
        consent_given_on: draft.consent.as_ref().and_then(|c| c.given_on),
        consent_expires_on: draft.consent.as_ref().and_then(|c| c.expires_on),
        exemption: draft.exemption.map(|e| e.as_str()),
        priority: i32::from(draft.priority),
        max_attempts: draft.max_attempts.map_or(default_max_attempts, i32::from),
    }
}

fn split_issues(
    import_id: Uuid,
    campaign_id: Uuid,
    parsed: &ParsedImport,
    sha: String,
) -> ImportResult {
    let pick = |severity: &str| -> Vec<RowIssueView> {
        parsed
            .issues
            .iter()
            .filter(|i| i.severity == severity)
            .take(INLINE_ISSUES)
            .map(RowIssueView::from)
            .collect()
    };
    ImportResult {
        import_id,
        campaign_id,
        state: "completed".into(),
        rows_processed: parsed.rows_total,
        rows_total: parsed.rows_total,
        rows_accepted: parsed.contacts.len() as i32,
        rows_rejected: parsed.rows_rejected,
        rows_with_warnings: parsed.rows_with_warnings,
        dropped_columns: parsed.dropped_columns.clone(),
        file_sha256: sha,
        errors: pick("error"),
        warnings: pick("warning"),
    }
}

/// Import contacts from a CSV file sent as the request body (`text/csv`).
///
/// Valid rows are added atomically; invalid rows are reported with their row,
/// line, column and a stable code, and never echo a number or personalisation
/// value. A number already in the campaign, in any format, is a
/// `duplicate_to_number`. Allowed in `draft` and `paused`.
#[utoipa::path(
    tag = "imports",
    params(
        ("campaign_id" = String, Path, description = "Campaign id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first result and imports nothing"),
        ImportQuery
    ),
    request_body(content = String, content_type = "text/csv", description = "The contact file; header row required, to_number the only required column"),
    responses(
        (status = 201, description = "Imported", body = ImportResult),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not import", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Campaign is not in draft or paused", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "File too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "File-level failure; nothing imported", body = Problem, content_type = "application/problem+json"),
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
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let scope = principal.write_scope()?;
    let campaign_id = parse_uuid(&path, "campaign")?;
    campaigns::find(&state.pool, &scope, campaign_id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let sha = sha256_hex(&body);
    let fingerprint = format!("{sha}:{}:{:?}", query.drop_unknown_columns, query.encoding);
    idempotent(
        &state,
        &request,
        scope.partner_id,
        fingerprint.as_bytes(),
        async {
            let text = read_upload(&state, &request, &body, query.encoding.as_deref())?;
            let mut transaction = state.pool.begin().await?;
            let campaign = campaigns::find_for_update(&mut transaction, &scope, campaign_id)
                .await?
                .ok_or_else(|| ApiError::not_found("campaign"))?;
            require_editable(&campaign)?;
            let existing = contacts::existing_indexes(&mut *transaction, campaign.id).await?;
            let parsed = parse_contacts(
                &text,
                &campaign,
                &state.keyring,
                &existing,
                query.drop_unknown_columns,
                state.limits.max_rows,
            )?;

            let import_id = Uuid::new_v4();
            let counts = (
                parsed.rows_total,
                parsed.contacts.len() as i32,
                parsed.rows_rejected,
                parsed.rows_with_warnings,
            );
            let actor = principal.actor();
            imports::insert_import(
                &mut transaction,
                import_id,
                campaign.id,
                None,
                &sha,
                counts,
                &parsed.dropped_columns,
                &actor,
            )
            .await?;
            contacts::insert_batch(
                &mut transaction,
                campaign.id,
                campaign.client_id,
                import_id,
                state.keyring.active_key_id(),
                &parsed.contacts,
            )
            .await?;
            imports::insert_issues(&mut transaction, import_id, &parsed.issues).await?;
            let result = split_issues(import_id, campaign.id, &parsed, sha.clone());
            audit::record(
                &mut *transaction,
                AuditEntry {
                    partner_id: Some(scope.partner_id),
                    campaign_id: Some(campaign.id),
                    actor: &actor,
                    action: "contacts.import",
                    from_state: None,
                    to_state: None,
                    details: serde_json::json!({
                        "import_id": import_id,
                        "rows_total": result.rows_total,
                        "rows_accepted": result.rows_accepted,
                        "rows_rejected": result.rows_rejected,
                        "file_sha256": sha,
                    }),
                    request_id: request_id(&request).as_deref(),
                },
            )
            .await?;
            transaction.commit().await?;
            tracing::info!(
                campaign_id = %campaign.id, %import_id,
                rows_accepted = result.rows_accepted, rows_rejected = result.rows_rejected,
                "contacts imported"
            );
            Ok((StatusCode::CREATED, result))
        },
    )
    .await
}

/// Get an import's counts and its first row issues.
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
    let record = imports::find_import(&state.pool, campaign_id, import_id)
        .await?
        .ok_or_else(|| ApiError::not_found("import"))?;
    let issues = imports::issues(&state.pool, import_id, -1, (INLINE_ISSUES * 4) as i64).await?;
    let pick = |severity: &str| -> Vec<RowIssueView> {
        issues
            .iter()
            .filter(|(_, i)| i.severity == severity)
            .take(INLINE_ISSUES)
            .map(|(_, i)| RowIssueView::from(i))
            .collect()
    };
    Ok(web::Json(ImportResult {
        import_id,
        campaign_id,
        state: record.state.clone(),
        rows_processed: record.rows_total,
        rows_total: record.rows_total,
        rows_accepted: record.rows_accepted,
        rows_rejected: record.rows_rejected,
        rows_with_warnings: record.rows_with_warnings,
        dropped_columns: record.dropped_columns.clone(),
        file_sha256: record.file_sha256.clone(),
        errors: pick("error"),
        warnings: pick("warning"),
    }))
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
    let rows = imports::issues(&state.pool, import_id, after, limit + 1).await?;
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
    pub errors: Vec<RowIssueView>,
}

struct WashRows {
    indexes: Vec<Vec<u8>>,
    statuses: Vec<&'static str>,
    counts: [i32; 3],
    rows_total: i32,
    errors: Vec<RowIssueView>,
}

/// Reads `number,result` rows; numbers are matched by blind index and never kept.
fn parse_wash(text: &str, keyring: &Keyring) -> ApiResult<WashRows> {
    let delimiter = detect_delimiter(text);
    if let Some(line) = unterminated_quote_line(text, delimiter) {
        return Err(malformed(line, "a quoted field is never closed"));
    }
    let mut csv = reader(text, delimiter);
    let mut records = csv.records();
    let header = match records.next() {
        Some(Ok(header)) => header,
        _ => {
            return Err(ApiError::unprocessable(
                "missing_required_column",
                "the wash file needs a header row: number,result",
            ))
        }
    };
    let names: Vec<String> = header
        .iter()
        .map(outbound_domain::contact_row::normalise_header)
        .collect();
    let find = |candidates: &[&str]| names.iter().position(|n| candidates.contains(&n.as_str()));
    let number_at = find(&["number", "phone", "phone_number", "to_number"]).ok_or_else(|| {
        ApiError::unprocessable(
            "missing_required_column",
            "the wash file needs a number column",
        )
    })?;
    let result_at =
        find(&["result", "status", "registry_status", "dncr_result"]).ok_or_else(|| {
            ApiError::unprocessable(
                "missing_required_column",
                "the wash file needs a result column",
            )
        })?;

    let mut rows = WashRows {
        indexes: Vec::new(),
        statuses: Vec::new(),
        counts: [0; 3],
        rows_total: 0,
        errors: Vec::new(),
    };
    let mut seen = HashMap::new();
    let policy = NumberPolicy {
        allow_non_geographic: true,
    };
    for record in records {
        let record = record.map_err(|error| {
            malformed(
                error.position().map_or(0, |p| p.line()),
                "the record cannot be read",
            )
        })?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        rows.rows_total += 1;
        let row = rows.rows_total;
        let line = record.position().map_or(0, |p| p.line()) as i32;
        let number = normalise(record.get(number_at).unwrap_or(""), policy);
        let status = RegistryStatus::parse(record.get(result_at).unwrap_or(""));
        let (number, status) = match (number, status) {
            (Ok(number), Some(status)) => (number, status),
            (Err(error), _) => {
                rows.errors.push(RowIssueView {
                    row,
                    line,
                    column: "number".into(),
                    code: error.code().into(),
                    message: error.to_string(),
                });
                continue;
            }
            (_, None) => {
                rows.errors.push(RowIssueView {
                    row,
                    line,
                    column: "result".into(),
                    code: "invalid_registry_status".into(),
                    message: "result must be Y, N or I (or registered, not_registered, invalid)"
                        .into(),
                });
                continue;
            }
        };
        let index = keyring.phone_index(number.e164.as_str());
        if seen.insert(index.clone(), row).is_some() {
            continue;
        }
        rows.counts[match status {
            RegistryStatus::Registered => 0,
            RegistryStatus::NotRegistered => 1,
            RegistryStatus::Invalid => 2,
        }] += 1;
        rows.indexes.push(index);
        rows.statuses.push(status.as_str());
    }
    Ok(rows)
}

/// Attach a DNCR wash result file (`number,result` with Y, N or I).
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
    request_body(content = String, content_type = "text/csv", description = "Wash result file with number and result columns"),
    responses(
        (status = 201, description = "Attached", body = WashResultView),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not attach evidence", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Campaign is not in draft or paused", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "File too large", body = Problem, content_type = "application/problem+json"),
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
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let scope = principal.write_scope()?;
    let campaign_id = parse_uuid(&path, "campaign")?;
    campaigns::find(&state.pool, &scope, campaign_id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let reference = query.wash_reference.trim();
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
    let sha = sha256_hex(&body);
    let fingerprint = format!("{sha}:{reference}:{:?}:{received_at}", query.account);
    idempotent(&state, &request, scope.partner_id, fingerprint.as_bytes(), async {
        let text = read_upload(&state, &request, &body, query.encoding.as_deref())?;
        let rows = parse_wash(&text, &state.keyring)?;
        let mut transaction = state.pool.begin().await?;
        let campaign = campaigns::find_for_update(&mut transaction, &scope, campaign_id)
            .await?
            .ok_or_else(|| ApiError::not_found("campaign"))?;
        require_editable(&campaign)?;
        let matched = contacts::apply_wash(&mut *transaction, campaign.id, &rows.indexes, &rows.statuses, received_at, reference).await? as i32;
        let valid_rows = rows.indexes.len() as i32;
        let wash_id = Uuid::new_v4();
        let actor = principal.actor();
        let record = NewWash {
            id: wash_id,
            campaign_id: campaign.id,
            wash_reference: reference,
            account: query.account.as_deref(),
            received_at,
            file_sha256: &sha,
            rows_total: rows.rows_total,
            registered: rows.counts[0],
            not_registered: rows.counts[1],
            invalid: rows.counts[2],
            matched,
            unmatched: valid_rows - matched,
            rejected_rows: rows.errors.len() as i32,
            created_by: &actor,
        };
        imports::insert_wash(&mut *transaction, &record).await?;
        audit::record(
            &mut *transaction,
            AuditEntry {
                partner_id: Some(scope.partner_id),
                campaign_id: Some(campaign.id),
                actor: &actor,
                action: "wash.attach",
                from_state: None,
                to_state: None,
                details: serde_json::json!({
                    "wash_id": wash_id, "wash_reference": reference, "file_sha256": sha,
                    "contacts_matched": matched, "rows_total": rows.rows_total,
                }),
                request_id: request_id(&request).as_deref(),
            },
        )
        .await?;
        transaction.commit().await?;
        tracing::info!(campaign_id = %campaign.id, %wash_id, contacts_matched = matched, "wash result attached");
        Ok((
            StatusCode::CREATED,
            WashResultView {
                wash_id,
                register: "AU_DNCR".into(),
                wash_reference: reference.to_owned(),
                received_at,
                file_sha256: sha.clone(),
                rows_total: rows.rows_total,
                registered: rows.counts[0],
                not_registered: rows.counts[1],
                invalid: rows.counts[2],
                contacts_matched: matched,
                numbers_unmatched: valid_rows - matched,
                rows_rejected: rows.errors.len() as i32,
                errors: rows.errors.into_iter().take(INLINE_ISSUES).collect(),
            },
        ))
    })
    .await
}
