//! The wash result file pipeline. A blocking thread reads `number,result`
//! rows and turns numbers into blind indexes. The caller's task applies them
//! to the campaign's contacts in batches inside the caller's transaction.
//! Numbers are never stored, matched or not.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use outbound_domain::contact_row::normalise_header;
use outbound_domain::evidence::RegistryStatus;
use outbound_domain::phone::{normalise, NumberPolicy};
use outbound_persistence::contacts;
use outbound_persistence::crypto::{blind_index_key, stored_index, BlindIndexHasher, Keyring};
use outbound_persistence::imports::IssueRecord;
use sqlx::PgConnection;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::contact_import::INLINE_ISSUES;
use crate::csv_input::{ByteSource, DeclaredEncoding, RecordLimits, RecordReader, TextDecoder};
use crate::problem::{ApiError, ApiResult};

/// Valid rows applied per statement.
const WASH_BATCH_ROWS: usize = 10_000;

/// The wash to apply and the campaign it applies to.
#[derive(Debug, Clone)]
pub struct WashPlan {
    pub campaign_id: Uuid,
    pub reference: String,
    pub received_at: DateTime<Utc>,
    pub declared_encoding: Option<DeclaredEncoding>,
    pub record_limits: RecordLimits,
}

/// Counts of a wash file once applied.
#[derive(Debug, Clone, Default)]
pub struct WashOutcome {
    pub rows_total: i32,
    /// Distinct valid numbers by result: registered, not registered, invalid.
    pub counts: [i32; 3],
    pub valid_numbers: i32,
    pub contacts_matched: i32,
    pub rows_rejected: i32,
    /// Rows whose number an earlier row lists with a different result.
    pub rows_conflicting: i32,
    /// The first [`INLINE_ISSUES`] row errors.
    pub errors: Vec<IssueRecord>,
}

struct WashBatch {
    indexes: Vec<Uuid>,
    statuses: Vec<&'static str>,
    /// Whether the contacts it updates count as matched. A batch of stricter
    /// results for numbers already sent updates contacts counted before.
    counted: bool,
}

impl WashBatch {
    fn new(counted: bool) -> Self {
        Self {
            indexes: Vec::with_capacity(WASH_BATCH_ROWS),
            statuses: Vec::with_capacity(WASH_BATCH_ROWS),
            counted,
        }
    }
}

fn count_slot(status: RegistryStatus) -> usize {
    match status {
        RegistryStatus::Registered => 0,
        RegistryStatus::NotRegistered => 1,
        RegistryStatus::Invalid => 2,
    }
}

/// A number's first row and current result, and the batch and position
/// where that result waits to be sent.
#[derive(Debug, Clone, Copy)]
struct Placed {
    first_row: i32,
    status: RegistryStatus,
    /// `false` for the batch of first results, `true` for stricter results.
    stricter: bool,
    batch: u32,
    position: usize,
}

/// Reads `source` and applies its results to the campaign's contacts through
/// `connection`, which must be inside the caller's transaction.
///
/// # Errors
/// File-level problems (`422`/`413`) and database errors; the caller rolls back.
pub async fn run<S: ByteSource + Send + 'static>(
    connection: &mut PgConnection,
    source: S,
    plan: WashPlan,
    keyring: Arc<Keyring>,
) -> ApiResult<WashOutcome> {
    let (sender, mut receiver) = mpsc::channel::<WashBatch>(2);
    let limits = plan.record_limits;
    let declared = plan.declared_encoding;
    let reader =
        tokio::task::spawn_blocking(move || read_wash(source, declared, limits, &keyring, &sender));
    let mut matched = 0u64;
    let mut written = Ok(());
    while let Some(batch) = receiver.recv().await {
        match contacts::apply_wash(
            &mut *connection,
            plan.campaign_id,
            &batch.indexes,
            &batch.statuses,
            plan.received_at,
            &plan.reference,
        )
        .await
        {
            Ok(rows) if batch.counted => matched += rows,
            Ok(_) => {}
            Err(error) => {
                written = Err(ApiError::from(error));
                break;
            }
        }
    }
    drop(receiver);
    let read = reader
        .await
        .map_err(|error| ApiError::internal(&format!("the wash reader stopped: {error}")))?;
    written?;
    let mut outcome = read?;
    outcome.contacts_matched = i32::try_from(matched).unwrap_or(i32::MAX);
    Ok(outcome)
}

fn row_error(row: i32, line: i32, column: &str, code: &str, message: String) -> IssueRecord {
    IssueRecord {
        severity: "error".into(),
        row_number: row,
        line,
        column_name: column.into(),
        code: code.into(),
        message,
    }
}

/// Reads `number,result` rows into batches of blind indexes and statuses. A
/// number that appears twice counts once. When its results differ, the later
/// row gets a `conflicting_wash_result` issue naming the first row, and the
/// stricter result is applied (see [`RegistryStatus::strictness`]).
fn read_wash<S: ByteSource>(
    source: S,
    declared: Option<DeclaredEncoding>,
    limits: RecordLimits,
    keyring: &Keyring,
    sender: &mpsc::Sender<WashBatch>,
) -> ApiResult<WashOutcome> {
    let mut reader = RecordReader::open(TextDecoder::new(source, declared), limits)?;
    let names: Vec<String> = match reader.next_record()? {
        Some(header) => header.fields().into_iter().map(normalise_header).collect(),
        None => {
            return Err(ApiError::unprocessable(
                "missing_required_column",
                "the wash file needs a header row: number,result",
            ))
        }
    };
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

    let policy = NumberPolicy {
        allow_non_geographic: true,
    };
    let mut outcome = WashOutcome::default();
    let mut seen: HashMap<[u8; 16], Placed, BuildHasherDefault<BlindIndexHasher>> =
        HashMap::default();
    // Results for numbers seen first, and stricter results for numbers whose
    // first result was sent already; each batch has a number at most once.
    let mut batch = WashBatch::new(true);
    let mut stricter = WashBatch::new(false);
    let (mut batch_no, mut stricter_no) = (0u32, 0u32);
    let send = |batch: WashBatch| {
        sender.blocking_send(batch).map_err(|_| {
            ApiError::new(
                actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the server failed to store the wash result; try again later",
            )
        })
    };
    while let Some(record) = reader.next_record()? {
        let fields = record.fields();
        if fields.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        outcome.rows_total += 1;
        let row = outcome.rows_total;
        let line = i32::try_from(record.line).unwrap_or(i32::MAX);
        let number = normalise(fields.get(number_at).copied().unwrap_or(""), policy);
        let status = RegistryStatus::parse(fields.get(result_at).copied().unwrap_or(""));
        let (number, status) = match (number, status) {
            (Ok(number), Some(status)) => (number, status),
            (Err(error), _) => {
                outcome.rows_rejected += 1;
                if outcome.errors.len() < INLINE_ISSUES {
                    outcome.errors.push(row_error(
                        row,
                        line,
                        "number",
                        error.code(),
                        error.to_string(),
                    ));
                }
                continue;
            }
            (_, None) => {
                outcome.rows_rejected += 1;
                if outcome.errors.len() < INLINE_ISSUES {
                    outcome.errors.push(row_error(
                        row,
                        line,
                        "result",
                        "invalid_registry_status",
                        "result must be Y, N or I (or registered, not_registered, invalid)".into(),
                    ));
                }
                continue;
            }
        };
        let index = keyring.phone_index_array(number.e164.as_str());
        let key = blind_index_key(&index);
        if let Some(placed) = seen.get(&key).copied() {
            if status == placed.status {
                continue;
            }
            let resolved = placed.status.stricter(status);
            outcome.rows_conflicting += 1;
            if outcome.errors.len() < INLINE_ISSUES {
                outcome.errors.push(row_error(
                    row,
                    line,
                    "result",
                    "conflicting_wash_result",
                    format!(
                        "the number is also on row {} with a different result; the stricter result, {}, is kept (registered, then invalid, then not_registered)",
                        placed.first_row,
                        resolved.as_str()
                    ),
                ));
            }
            if resolved == placed.status {
                continue;
            }
            outcome.counts[count_slot(placed.status)] -= 1;
            outcome.counts[count_slot(resolved)] += 1;
            let mut updated = Placed {
                status: resolved,
                ..placed
            };
            if !placed.stricter && placed.batch == batch_no {
                batch.statuses[placed.position] = resolved.as_str();
            } else if placed.stricter && placed.batch == stricter_no {
                stricter.statuses[placed.position] = resolved.as_str();
            } else {
                updated.stricter = true;
                updated.batch = stricter_no;
                updated.position = stricter.indexes.len();
                stricter.indexes.push(stored_index(&index));
                stricter.statuses.push(resolved.as_str());
            }
            seen.insert(key, updated);
            if stricter.indexes.len() >= WASH_BATCH_ROWS {
                // Every number in it was first sent in an earlier batch.
                send(std::mem::replace(&mut stricter, WashBatch::new(false)))?;
                stricter_no += 1;
            }
            continue;
        }
        seen.insert(
            key,
            Placed {
                first_row: row,
                status,
                stricter: false,
                batch: batch_no,
                position: batch.indexes.len(),
            },
        );
        outcome.counts[count_slot(status)] += 1;
        outcome.valid_numbers += 1;
        batch.indexes.push(stored_index(&index));
        batch.statuses.push(status.as_str());
        if batch.indexes.len() >= WASH_BATCH_ROWS {
            send(std::mem::replace(&mut batch, WashBatch::new(true)))?;
            batch_no += 1;
        }
    }
    if !batch.indexes.is_empty() {
        send(batch)?;
    }
    // Stricter results go last, so they replace the first results sent above.
    if !stricter.indexes.is_empty() {
        send(stricter)?;
    }
    Ok(outcome)
}
