//! The contact import pipeline. A blocking thread decodes, parses and
//! validates the upload, finds duplicates by blind index and seals accepted
//! rows. The caller's task writes them with binary `COPY` in batches inside
//! the caller's transaction, so an import becomes visible whole or not at all.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use outbound_domain::contact_row::{
    may_be_phone_number, normalise_header, validate_record, Column, ContactDraft, HeaderMap,
    RowContext, RowIssue,
};
use outbound_domain::evidence::RegistryStatus;
use outbound_domain::phone::is_invisible;
use outbound_domain::zone::{stored_zone_key, ZoneGroup};
use outbound_persistence::bulk::{self, CopyBuffer};
use outbound_persistence::campaigns::Campaign;
use outbound_persistence::contacts::{self, ContactParents, ImportTable, NewContact};
use outbound_persistence::crypto::{
    blind_index_key, stored_index, Binding, BlindIndexMap, Keyring,
};
use outbound_persistence::imports::{self, ImportCounts, IssueRecord, REJECTED_ROW_COLUMNS};
use rand::RngCore;
use sqlx::PgConnection;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::csv_input::{ByteSource, DeclaredEncoding, RecordLimits, RecordReader, TextDecoder};
use crate::problem::{ApiError, ApiResult};

/// Row errors, and separately row warnings, kept for the response; every
/// issue is stored and can be paged.
pub const INLINE_ISSUES: usize = 100;

/// Accepted rows per `COPY` of contacts. A batch into an existing partition
/// is sorted by blind index before it is written, so its unique index on the
/// blind index is updated in key order. With one million rows of `outbound
/// bench import` on PostgreSQL 15, that index then cost about half the CPU
/// time it cost with rows in file order.
const CONTACT_BATCH_ROWS: usize = 32 * 1024;

/// Bytes of row issues or rejected rows gathered before they are written.
const SIDE_BATCH_BYTES: usize = 1024 * 1024;

/// Batches waiting for the writer; the reader blocks when they are all full.
const BATCHES_IN_FLIGHT: usize = 2;

/// Bytes a contact takes in a `COPY` payload, for sizing buffers: about 370
/// with a short contact_ref and one personalisation value.
const CONTACT_COPY_BYTES: usize = 400;

/// The rules and options of one import: the campaign's rules and the request's options.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    pub import_id: Uuid,
    pub campaign_id: Uuid,
    pub client_id: Uuid,
    pub personalisation_keys: Vec<String>,
    pub context: RowContext,
    pub default_max_attempts: i32,
    pub drop_unknown_columns: bool,
    pub declared_encoding: Option<DeclaredEncoding>,
    pub max_rows: usize,
    pub record_limits: RecordLimits,
}

/// The request's choices and the server's limits for one import.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    pub drop_unknown_columns: bool,
    pub declared_encoding: Option<DeclaredEncoding>,
    pub max_rows: usize,
    pub record_limits: RecordLimits,
}

impl ImportPlan {
    /// Builds the plan for importing into `campaign`, from the campaign row
    /// locked by the import's transaction.
    pub fn new(campaign: &Campaign, import_id: Uuid, options: ImportOptions) -> Self {
        Self {
            import_id,
            campaign_id: campaign.id,
            client_id: campaign.client_id,
            personalisation_keys: campaign.personalisation_keys.clone(),
            context: RowContext {
                call_type: campaign.call_type(),
                number_policy: campaign.number_policy(),
            },
            default_max_attempts: campaign.default_max_attempts,
            drop_unknown_columns: options.drop_unknown_columns,
            declared_encoding: options.declared_encoding,
            max_rows: options.max_rows,
            record_limits: options.record_limits,
        }
    }
}

/// Counts an import updates as it reads, for progress reports of jobs.
#[derive(Debug, Default)]
pub struct Progress {
    pub rows_processed: AtomicI32,
    pub rows_accepted: AtomicI32,
    pub rows_rejected: AtomicI32,
}

/// The counts and first issues of a finished import, besides the stored rows.
#[derive(Debug, Clone, Default)]
pub struct ImportOutcome {
    pub counts: ImportCounts,
    pub dropped_columns: Vec<String>,
    /// The first [`INLINE_ISSUES`] row errors.
    pub errors: Vec<IssueRecord>,
    /// The first [`INLINE_ISSUES`] row warnings.
    pub warnings: Vec<IssueRecord>,
}

/// One batch for the writer: a `COPY` payload, or the registry results that
/// later rows of the file made stricter for contacts already written.
enum Batch {
    Contacts(Vec<u8>),
    Issues(Vec<u8>),
    RejectedRows(Vec<u8>),
    StricterRegistry(Vec<RegistryUpdate>),
}

/// A stricter registry result for a contact of this import, with the
/// `registry_checked_at` and `registry_evidence` of the row it came from.
#[derive(Debug, Clone)]
struct RegistryUpdate {
    phone_index: [u8; 32],
    status: RegistryStatus,
    checked_at: Option<chrono::DateTime<chrono::Utc>>,
    evidence: Option<String>,
}

/// The first row of a number in the file and the registry status its contact has.
#[derive(Debug, Clone, Copy)]
struct FirstRow {
    row: i32,
    registry_status: Option<RegistryStatus>,
}

/// Writes one batch inside the import's transaction.
async fn write_batch(
    connection: &mut PgConnection,
    table: &ImportTable,
    campaign_id: Uuid,
    import_id: Uuid,
    batch: Batch,
) -> sqlx::Result<()> {
    match batch {
        Batch::Contacts(payload) => {
            bulk::copy_in(connection, &table.copy_statement(), &payload).await?;
        }
        Batch::Issues(payload) => {
            bulk::copy_in(connection, imports::ISSUE_BLOCKS_COPY, &payload).await?;
        }
        Batch::RejectedRows(payload) => {
            bulk::copy_in(connection, imports::REJECTED_ROWS_COPY, &payload).await?;
        }
        Batch::StricterRegistry(updates) => {
            let indexes: Vec<Uuid> = updates
                .iter()
                .map(|update| stored_index(&update.phone_index))
                .collect();
            let statuses: Vec<&str> = updates
                .iter()
                .map(|update| update.status.as_str())
                .collect();
            let checked_at: Vec<_> = updates.iter().map(|update| update.checked_at).collect();
            let evidence: Vec<_> = updates
                .iter()
                .map(|update| update.evidence.clone())
                .collect();
            contacts::apply_file_registry_results(
                connection,
                campaign_id,
                import_id,
                &indexes,
                &statuses,
                &checked_at,
                &evidence,
            )
            .await?;
        }
    }
    Ok(())
}

/// Imports `source` into the campaign of `plan` through `connection`, which
/// must be inside the transaction that also records the import. Nothing is
/// committed here.
///
/// `existing` maps the blind index of every contact already in the campaign
/// to its row number.
///
/// # Errors
/// File-level problems (`422`/`413` with their stable codes) stop the import
/// at the record where they are found; the caller rolls back. Database errors
/// are `500`.
pub async fn run<S: ByteSource + Send + 'static>(
    connection: &mut PgConnection,
    source: S,
    plan: ImportPlan,
    keyring: Arc<Keyring>,
    existing: BlindIndexMap<i32>,
    progress: Arc<Progress>,
) -> ApiResult<ImportOutcome> {
    // The reference check on contacts reads each COPY's new rows from a
    // transition table, which spills to a temporary file above work_mem. A
    // batch is about 13 MB, so 32 MB keeps it in memory until the commit.
    sqlx::query("SET LOCAL work_mem = '32MB'")
        .execute(&mut *connection)
        .await?;

    let (campaign_id, import_id) = (plan.campaign_id, plan.import_id);
    let key_id = keyring.active_key_id().to_owned();
    let parents = ContactParents {
        campaign_id,
        client_id: plan.client_id,
        import_id,
        key_id: &key_id,
    };
    let table = contacts::prepare_import_table(connection, &parents).await?;
    let sort_by_index = table == ImportTable::Contacts;
    let (sender, mut receiver) = mpsc::channel(BATCHES_IN_FLIGHT);
    let reader = tokio::task::spawn_blocking(move || {
        Processor::new(plan, keyring, existing, progress, sender, sort_by_index).run(source)
    });
    // Stricter registry results update contacts by blind index, which a new
    // partition can look up only once its indexes are built.
    let mut deferred = Vec::new();
    let mut written = Ok(());
    while let Some(batch) = receiver.recv().await {
        if matches!(table, ImportTable::NewPartition(_))
            && matches!(batch, Batch::StricterRegistry(_))
        {
            deferred.push(batch);
            continue;
        }
        if let Err(error) = write_batch(connection, &table, campaign_id, import_id, batch).await {
            written = Err(ApiError::from(error));
            break;
        }
    }
    drop(receiver);
    let read = reader
        .await
        .map_err(|error| ApiError::internal(&format!("the import reader stopped: {error}")))?;
    written?;
    let outcome = read?;
    if matches!(table, ImportTable::NewPartition(_)) {
        contacts::attach_partition(connection, &parents).await?;
        for batch in deferred {
            write_batch(
                connection,
                &ImportTable::Contacts,
                campaign_id,
                import_id,
                batch,
            )
            .await?;
        }
    }
    Ok(outcome)
}

/// Contact ids in the UUID version 7 layout that follow the file within one
/// import: the import's start time in milliseconds, 4 random bytes, then the
/// row number. A campaign's contacts listed by id are in import order, then
/// file order, and a later import's ids sort after an earlier one's as long
/// as the servers' clocks agree to the millisecond.
struct ContactIds {
    millis: u64,
    random: [u8; 4],
}

impl ContactIds {
    fn new() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        let mut random = [0u8; 4];
        rand::thread_rng().fill_bytes(&mut random);
        Self { millis, random }
    }

    fn for_row(&self, row: i32) -> Uuid {
        let mut bytes = [0u8; 10];
        bytes[..4].copy_from_slice(&self.random);
        bytes[6..].copy_from_slice(&row.to_be_bytes());
        uuid::Builder::from_unix_timestamp_millis(self.millis, &bytes).into_uuid()
    }
}

/// An accepted row waiting for its batch to be sealed and written.
struct PendingContact {
    index: [u8; 32],
    row: i32,
    draft: ContactDraft,
}

/// The reading side of an import, run on a blocking thread.
struct Processor {
    plan: ImportPlan,
    keyring: Arc<Keyring>,
    existing: BlindIndexMap<i32>,
    in_file: BlindIndexMap<FirstRow>,
    /// Stricter registry results for contacts already sent to the writer.
    /// They are sent after the last batch of contacts.
    stricter_registry: BlindIndexMap<RegistryUpdate>,
    progress: Arc<Progress>,
    sender: mpsc::Sender<Batch>,
    ids: ContactIds,
    /// Whether batches go into `contacts` in blind-index order (see
    /// [`CONTACT_BATCH_ROWS`]). A new partition's indexes are built once its
    /// rows are in, by sorting, which is faster when the rows are in id
    /// order, so its batches keep file order.
    sort_by_index: bool,
    pending: Vec<PendingContact>,
    /// Issues not yet in a block, the first of them numbered `block_first_seq`.
    issue_block: Vec<IssueRecord>,
    block_first_seq: i32,
    /// Blocks of issues not yet sent.
    issues: CopyBuffer,
    rejected_rows: CopyBuffer,
    outcome: ImportOutcome,
}

fn writer_stopped() -> ApiError {
    // The writer has already failed with the real cause, which the caller returns.
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the server failed to store the import; try again later",
    )
}

impl Processor {
    fn new(
        plan: ImportPlan,
        keyring: Arc<Keyring>,
        existing: BlindIndexMap<i32>,
        progress: Arc<Progress>,
        sender: mpsc::Sender<Batch>,
        sort_by_index: bool,
    ) -> Self {
        Self {
            plan,
            keyring,
            existing,
            in_file: BlindIndexMap::default(),
            stricter_registry: BlindIndexMap::default(),
            progress,
            sender,
            ids: ContactIds::new(),
            sort_by_index,
            pending: Vec::with_capacity(CONTACT_BATCH_ROWS),
            issue_block: Vec::with_capacity(imports::ISSUE_BLOCK_LEN),
            block_first_seq: 0,
            issues: CopyBuffer::with_capacity(SIDE_BATCH_BYTES),
            rejected_rows: CopyBuffer::with_capacity(SIDE_BATCH_BYTES),
            outcome: ImportOutcome::default(),
        }
    }

    fn run<S: ByteSource>(mut self, source: S) -> ApiResult<ImportOutcome> {
        let decoder = TextDecoder::new(source, self.plan.declared_encoding);
        let mut reader = RecordReader::open(decoder, self.plan.record_limits)?;
        let header: Option<Vec<String>> = reader
            .next_record()?
            .map(|record| record.fields().into_iter().map(str::to_owned).collect());
        let Some(header) = header else {
            let detail = if reader.bytes_read() == 0 {
                "the file is empty; it needs a header row with to_number"
            } else {
                "the file has no header row"
            };
            return Err(ApiError::unprocessable("missing_required_column", detail));
        };
        let names: Vec<&str> = header.iter().map(String::as_str).collect();
        let map = HeaderMap::build(
            &names,
            &self.plan.personalisation_keys,
            self.plan.drop_unknown_columns,
        )
        .map_err(|error| ApiError::unprocessable(error.code(), error.to_string()))?;
        self.outcome.dropped_columns = map.dropped.clone();
        let non_personal_positions = REJECTED_ROW_COLUMNS.map(|name| {
            Column::ALL
                .into_iter()
                .find(|column| column.name() == name)
                .and_then(|column| map.position(column))
        });

        let header_names: Vec<String> = names.iter().map(|name| normalise_header(name)).collect();
        // Columns with a blank header: a spreadsheet's trailing delimiters
        // leave them empty, but one that contains values is an unknown column.
        let unnamed: Vec<usize> = header_names
            .iter()
            .enumerate()
            .filter(|(_, name)| name.is_empty())
            .map(|(position, _)| position)
            .collect();
        let mut unnamed_dropped = vec![false; unnamed.len()];
        while let Some(record) = reader.next_record()? {
            let fields = record.fields();
            if fields.iter().all(|field| is_blank(field)) {
                continue;
            }
            for (index, &position) in unnamed.iter().enumerate() {
                if fields.get(position).is_none_or(|field| is_blank(field)) {
                    continue;
                }
                if !self.plan.drop_unknown_columns {
                    return Err(ApiError::unprocessable(
                        "unknown_column",
                        format!(
                            "line {}: column {} has no name in the header but contains a value; name it as a contact column or personalisation key, delete it, or import with the query parameter ?drop_unknown_columns=true to drop it",
                            record.line,
                            position + 1
                        ),
                    )
                    .with("line", record.line));
                }
                if !unnamed_dropped[index] {
                    unnamed_dropped[index] = true;
                    self.outcome
                        .dropped_columns
                        .push(format!("(column {})", position + 1));
                }
            }
            self.outcome.counts.rows_total += 1;
            let row = self.outcome.counts.rows_total;
            if row as usize > self.plan.max_rows {
                return Err(ApiError::unprocessable(
                    "too_many_rows",
                    format!(
                        "the file has more than {} rows; split it",
                        self.plan.max_rows
                    ),
                )
                .with("max_rows", self.plan.max_rows));
            }
            let line = i32::try_from(record.line).unwrap_or(i32::MAX);
            let non_personal: [Option<&str>; 13] = non_personal_positions.map(|position| {
                position
                    .and_then(|position| fields.get(position))
                    .map(|value| value.trim())
                    .filter(|value| !value.is_empty())
            });
            if fields.len() >= header_names.len()
                && fields
                    .iter()
                    .zip(&header_names)
                    .all(|(field, name)| normalise_header(field) == *name)
            {
                // Files joined together keep the header of each one.
                self.add_issue(
                    "error",
                    row,
                    line,
                    "",
                    "repeated_header",
                    "the record repeats the header row; remove it (joining files keeps each file's header)".into(),
                )?;
                self.reject(row, line, &[None; 13])?;
            } else {
                self.process_row(&map, row, line, &fields, &non_personal)?;
            }
            self.progress.rows_processed.store(row, Ordering::Relaxed);
        }
        self.flush_contacts()?;
        if !self.stricter_registry.is_empty() {
            let updates = std::mem::take(&mut self.stricter_registry)
                .into_values()
                .collect();
            self.send(Batch::StricterRegistry(updates))?;
        }
        self.flush_side_batches()?;
        Ok(self.outcome)
    }

    fn process_row(
        &mut self,
        map: &HeaderMap,
        row: i32,
        line: i32,
        fields: &[&str],
        non_personal: &[Option<&str>; 13],
    ) -> ApiResult<()> {
        let draft = match validate_record(map, fields, self.plan.context) {
            Ok(draft) => draft,
            Err(errors) => {
                let kept = kept_values(non_personal, &errors);
                for error in errors {
                    self.add_issue("error", row, line, &error.column, error.code, error.message)?;
                }
                return self.reject(row, line, &kept);
            }
        };

        let index = self.keyring.phone_index_array(draft.number.e164.as_str());
        let key = blind_index_key(&index);
        if let Some(first) = self.in_file.get(&key).copied() {
            if let (Some(first_status), Some(status)) =
                (first.registry_status, draft.registry_status)
            {
                if first_status != status {
                    return self.keep_stricter_registry(
                        (key, index),
                        (first.row, first_status),
                        &draft,
                        (row, line),
                        non_personal,
                    );
                }
            }
        }
        let duplicate_of = self
            .in_file
            .get(&key)
            .map(|first| (first.row, "this file"))
            .or_else(|| {
                self.existing
                    .get(&key)
                    .map(|first| (*first, "an earlier import"))
            });
        if let Some((first_row, source)) = duplicate_of {
            self.add_issue(
                "error",
                row,
                line,
                "to_number",
                "duplicate_to_number",
                format!("the number duplicates row {first_row} of {source}"),
            )?;
            return self.reject(row, line, &kept_values(non_personal, &[]));
        }

        self.in_file.insert(
            key,
            FirstRow {
                row,
                registry_status: draft.registry_status,
            },
        );
        if !draft.warnings.is_empty() {
            self.outcome.counts.rows_with_warnings += 1;
        }
        for warning in &draft.warnings {
            self.add_issue(
                "warning",
                row,
                line,
                &warning.column,
                warning.code,
                warning.message.clone(),
            )?;
        }

        self.outcome.counts.rows_accepted += 1;
        self.progress
            .rows_accepted
            .store(self.outcome.counts.rows_accepted, Ordering::Relaxed);
        self.pending.push(PendingContact { index, row, draft });
        if self.pending.len() >= CONTACT_BATCH_ROWS {
            self.flush_contacts()?;
        }
        Ok(())
    }

    /// Rejects a row whose number is on an earlier row of the file with another
    /// registry status. The contact of the earlier row keeps the stricter
    /// status, with the checked time and evidence of the row it came from.
    fn keep_stricter_registry(
        &mut self,
        (key, index): ([u8; 16], [u8; 32]),
        (first_row, first_status): (i32, RegistryStatus),
        draft: &ContactDraft,
        (row, line): (i32, i32),
        non_personal: &[Option<&str>; 13],
    ) -> ApiResult<()> {
        let resolved = draft
            .registry_status
            .map_or(first_status, |status| first_status.stricter(status));
        self.add_issue(
            "error",
            row,
            line,
            "registry_status",
            "conflicting_registry_status",
            format!(
                "the number duplicates row {} of this file, which has a different registry_status; the contact keeps the stricter status, {} (registered, then invalid, then not_registered)",
                first_row,
                resolved.as_str()
            ),
        )?;
        if resolved != first_status {
            self.in_file.insert(
                key,
                FirstRow {
                    row: first_row,
                    registry_status: Some(resolved),
                },
            );
            // Pending contacts are in row order until a batch is sealed.
            match self
                .pending
                .binary_search_by_key(&first_row, |pending| pending.row)
            {
                Ok(position) => {
                    let pending = &mut self.pending[position].draft;
                    pending.registry_status = Some(resolved);
                    pending.registry_checked_at = draft.registry_checked_at;
                    pending.registry_evidence = draft.registry_evidence.clone();
                }
                Err(_) => {
                    self.stricter_registry.insert(
                        key,
                        RegistryUpdate {
                            phone_index: index,
                            status: resolved,
                            checked_at: draft.registry_checked_at,
                            evidence: draft.registry_evidence.clone(),
                        },
                    );
                }
            }
        }
        self.reject(row, line, &kept_values(non_personal, &[]))
    }

    fn reject(&mut self, row: i32, line: i32, non_personal: &[Option<&str>; 13]) -> ApiResult<()> {
        self.outcome.counts.rows_rejected += 1;
        self.progress
            .rows_rejected
            .store(self.outcome.counts.rows_rejected, Ordering::Relaxed);
        imports::encode_rejected_row(
            &mut self.rejected_rows,
            self.plan.import_id,
            row,
            line,
            non_personal,
        );
        if self.rejected_rows.len() >= SIDE_BATCH_BYTES {
            let full = std::mem::replace(
                &mut self.rejected_rows,
                CopyBuffer::with_capacity(SIDE_BATCH_BYTES),
            );
            self.send(Batch::RejectedRows(full.finish()))?;
        }
        Ok(())
    }

    fn add_issue(
        &mut self,
        severity: &str,
        row: i32,
        line: i32,
        column: &str,
        code: &str,
        message: String,
    ) -> ApiResult<()> {
        let issue = IssueRecord {
            severity: severity.to_owned(),
            row_number: row,
            line,
            column_name: column.to_owned(),
            code: code.to_owned(),
            message,
        };
        let inline = if severity == "error" {
            &mut self.outcome.errors
        } else {
            &mut self.outcome.warnings
        };
        if inline.len() < INLINE_ISSUES {
            inline.push(issue.clone());
        }
        self.issue_block.push(issue);
        if self.issue_block.len() >= imports::ISSUE_BLOCK_LEN {
            self.close_issue_block();
            if self.issues.len() >= SIDE_BATCH_BYTES {
                let full = std::mem::replace(
                    &mut self.issues,
                    CopyBuffer::with_capacity(SIDE_BATCH_BYTES),
                );
                self.send(Batch::Issues(full.finish()))?;
            }
        }
        Ok(())
    }

    /// Moves the open block of issues into the payload of blocks.
    fn close_issue_block(&mut self) {
        if self.issue_block.is_empty() {
            return;
        }
        imports::encode_issue_block(
            &mut self.issues,
            self.plan.import_id,
            self.block_first_seq,
            &self.issue_block,
        );
        self.block_first_seq += self.issue_block.len() as i32;
        self.issue_block.clear();
    }

    fn send(&self, batch: Batch) -> ApiResult<()> {
        self.sender
            .blocking_send(batch)
            .map_err(|_| writer_stopped())
    }

    /// Seals the pending contacts and sends them.
    fn flush_contacts(&mut self) -> ApiResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.sort_by_index {
            self.pending.sort_unstable_by_key(|pending| pending.index);
        }
        let parents = ContactParents {
            campaign_id: self.plan.campaign_id,
            client_id: self.plan.client_id,
            import_id: self.plan.import_id,
            key_id: self.keyring.active_key_id(),
        };
        let mut buffer = CopyBuffer::with_capacity(self.pending.len() * CONTACT_COPY_BYTES);
        for pending in self.pending.drain(..) {
            let id = self.ids.for_row(pending.row);
            let contact = seal_contact(&self.keyring, id, pending, self.plan.default_max_attempts);
            contacts::encode_contact(&mut buffer, &parents, &contact);
        }
        self.send(Batch::Contacts(buffer.finish()))
    }

    fn flush_side_batches(&mut self) -> ApiResult<()> {
        self.close_issue_block();
        if !self.issues.is_empty() {
            let issues = std::mem::replace(&mut self.issues, CopyBuffer::with_capacity(0));
            self.send(Batch::Issues(issues.finish()))?;
        }
        if !self.rejected_rows.is_empty() {
            let rows = std::mem::replace(&mut self.rejected_rows, CopyBuffer::with_capacity(0));
            self.send(Batch::RejectedRows(rows.finish()))?;
        }
        Ok(())
    }
}

/// Returns whether a field is empty once blanks, invisible characters and the
/// Ctrl-Z that old DOS tools put at the end of a file are removed.
fn is_blank(field: &str) -> bool {
    field
        .chars()
        .all(|c| c.is_whitespace() || is_invisible(c) || c == '\u{1a}')
}

/// Returns the values of a rejected row that its rejected-rows line may show. A
/// record with more fields than the header has its values shifted, so any of
/// them may be a number or a personalisation value and none is kept. A value
/// too long for its column, or one that reads as or contains a phone number, is
/// left out.
fn kept_values<'a>(values: &[Option<&'a str>; 13], errors: &[RowIssue]) -> [Option<&'a str>; 13] {
    if errors.iter().any(|error| error.code == "too_many_fields") {
        return [None; 13];
    }
    let mut kept = *values;
    for (value, name) in kept.iter_mut().zip(REJECTED_ROW_COLUMNS) {
        let withheld = errors.iter().any(|error| {
            error.column == name
                && (error.code == "value_too_long" || error.code == "value_is_phone_number")
        });
        if withheld || value.is_some_and(may_be_phone_number) {
            *value = None;
        }
    }
    kept
}

/// Seals a validated row's number and personalisation under the contact's id.
fn seal_contact(
    keyring: &Keyring,
    id: Uuid,
    pending: PendingContact,
    default_max_attempts: i32,
) -> NewContact {
    let PendingContact { index, row, draft } = pending;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_ids_follow_the_rows_of_an_import() {
        let ids = ContactIds::new();
        let first = ids.for_row(2);
        let later = ids.for_row(10);
        assert!(later > first);
        assert_ne!(ids.for_row(2), ids.for_row(3));
        assert_eq!(first.get_version_num(), 7);
        assert_eq!(first.get_variant(), uuid::Variant::RFC4122);
    }
}
