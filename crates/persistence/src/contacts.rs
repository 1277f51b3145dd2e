//! Contact rows: inserting an import's contacts, reading them for the rules and
//! for listings, wash updates, exclusions and suppressions.

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use outbound_domain::eligibility::ContactFacts;
use outbound_domain::evidence::{Consent, ConsentType, Exemption, RegistryStatus, WashResult};
use outbound_domain::zone::{candidates_from_stored, CandidateZone};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::bulk::CopyBuffer;
use crate::crypto::{stored_index, BlindIndexMap};

/// A contact ready to insert: its number and personalisation already sealed.
#[derive(Debug, Clone)]
pub struct NewContact {
    pub id: Uuid,
    pub row_number: i32,
    pub phone_ciphertext: Vec<u8>,
    pub phone_index: [u8; 32],
    pub phone_masked: String,
    pub number_type: &'static str,
    pub personalisation_ciphertext: Option<Vec<u8>>,
    pub contact_ref: Option<String>,
    pub zone_source: &'static str,
    pub zone_key: String,
    pub registry_status: Option<&'static str>,
    pub registry_checked_at: Option<DateTime<Utc>>,
    pub registry_evidence: Option<String>,
    pub consent_type: Option<&'static str>,
    pub consent_evidence: Option<String>,
    pub consent_given_on: Option<NaiveDate>,
    pub consent_expires_on: Option<NaiveDate>,
    pub exemption: Option<&'static str>,
    pub priority: i32,
    pub max_attempts: i32,
}

/// The rows an import's contacts hang from, the same for every contact of it.
#[derive(Debug, Clone, Copy)]
pub struct ContactParents<'a> {
    pub campaign_id: Uuid,
    pub client_id: Uuid,
    pub import_id: Uuid,
    /// Id of the data key that sealed the ciphertexts.
    pub key_id: &'a str,
}

/// Columns of a contacts `COPY`, in the order [`encode_contact`] writes them.
const COPY_COLUMNS: &str = "id, campaign_id, client_id, import_id, key_id, row_number, phone_ciphertext,
    phone_index, phone_masked, number_type, personalisation_ciphertext, contact_ref, zone_source, zone_key,
    registry_status, registry_checked_at, registry_evidence, registry_source, consent_type, consent_evidence,
    consent_given_on, consent_expires_on, exemption, priority, max_attempts";

/// The table an import writes its contacts into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportTable {
    /// The campaign already has a partition: rows go through `contacts`,
    /// which updates its indexes row by row.
    Contacts,
    /// The campaign's first import: rows go into a new table without
    /// indexes, named here, which [`attach_partition`] indexes and attaches.
    NewPartition(String),
}

impl ImportTable {
    /// Returns the `COPY ... FROM STDIN (FORMAT binary)` statement for
    /// [`encode_contact`] payloads into this table. Run it inside the
    /// import's transaction, so the whole import becomes visible at once.
    pub fn copy_statement(&self) -> String {
        let table = match self {
            Self::Contacts => "contacts",
            Self::NewPartition(name) => name,
        };
        format!("COPY {table} ({COPY_COLUMNS}) FROM STDIN (FORMAT binary)")
    }
}

/// Returns the name of the partition of `contacts` that contains a campaign's contacts.
pub fn partition_name(campaign_id: Uuid) -> String {
    format!("contacts_{}", campaign_id.simple())
}

/// Chooses where an import into the campaign of `parents` writes, and
/// creates the table of a first import. Call it inside the import's
/// transaction with the campaign row locked, so the new table is seen by no
/// one else until commit.
///
/// The new table's check constraint requires every row to belong to the
/// campaign and its client. It is checked row by row as the rows arrive, so
/// attaching the table needs no scan of its own.
pub async fn prepare_import_table(
    connection: &mut PgConnection,
    parents: &ContactParents<'_>,
) -> sqlx::Result<ImportTable> {
    let (campaign, client) = (parents.campaign_id, parents.client_id);
    let name = partition_name(campaign);
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
                         WHERE i.inhparent = 'contacts'::regclass AND p.relname = $1)",
    )
    .bind(&name)
    .fetch_one(&mut *connection)
    .await?;
    if exists {
        return Ok(ImportTable::Contacts);
    }
    sqlx::query(&format!(
        "CREATE TABLE {name} (
             LIKE contacts INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
             CONSTRAINT {name}_owner CHECK (campaign_id = '{campaign}' AND client_id = '{client}'))"
    ))
    .execute(&mut *connection)
    .await?;
    Ok(ImportTable::NewPartition(name))
}

/// Memory for each index build of [`attach_partition`], taken only while the
/// index is built. A parallel build divides it between the leader and its two
/// workers. At 256 MB their sorts of a million contacts still spilled to disk
/// (seen with `trace_sort`), and at 512 MB the claim index built in 1.6-1.7 s
/// instead of 2.4 s.
const INDEX_BUILD_MEMORY: &str = "512MB";

/// Indexes the table of a campaign's first import and attaches it as the
/// campaign's partition of `contacts`.
///
/// Every index, including the claim index that only the dispatcher reads, is
/// built here, before the table is visible to other sessions. A build on an
/// attached partition takes a `SHARE` lock on it and keeps it until commit. On PostgreSQL
/// 15 a statement run with a generic plan locks every partition of
/// `contacts`, so that lock would hold up writes to every campaign's contacts.
///
/// The statement trigger that checks the references of new contacts does not
/// fire for this table, so the same check runs here once.
///
/// # Errors
/// Fails when the import, campaign and client do not exist together, and
/// with whatever PostgreSQL reports otherwise; the transaction is then aborted.
pub async fn attach_partition(
    connection: &mut PgConnection,
    parents: &ContactParents<'_>,
) -> sqlx::Result<()> {
    let references_exist: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM imports i JOIN campaigns c ON c.id = i.campaign_id
                         WHERE i.id = $1 AND c.id = $2 AND c.client_id = $3)",
    )
    .bind(parents.import_id)
    .bind(parents.campaign_id)
    .bind(parents.client_id)
    .fetch_one(&mut *connection)
    .await?;
    if !references_exist {
        return Err(sqlx::Error::Protocol(
            "the import, campaign and client of the new contacts do not exist together".into(),
        ));
    }

    let name = partition_name(parents.campaign_id);
    let campaign = parents.campaign_id;
    let statements = [
        format!("SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'"),
        format!("ALTER TABLE {name} ADD CONSTRAINT {name}_pkey PRIMARY KEY (id, campaign_id)"),
        format!("ALTER TABLE {name} ADD CONSTRAINT {name}_phone_key UNIQUE (phone_index, campaign_id)"),
        format!(
            "CREATE INDEX {name}_claim_idx
                 ON {name} (priority DESC, (COALESCE(next_attempt_at, '-infinity'::timestamptz)), row_number)
              WHERE state = 'pending'"
        ),
        format!("ALTER TABLE contacts ATTACH PARTITION {name} FOR VALUES IN ('{campaign}')"),
    ];
    for statement in statements {
        sqlx::query(&statement).execute(&mut *connection).await?;
    }
    Ok(())
}

/// Appends one contact to a payload of [`ImportTable::copy_statement`].
pub fn encode_contact(buffer: &mut CopyBuffer, parents: &ContactParents<'_>, contact: &NewContact) {
    buffer.start_tuple(25);
    buffer.uuid(contact.id);
    buffer.uuid(parents.campaign_id);
    buffer.uuid(parents.client_id);
    buffer.uuid(parents.import_id);
    buffer.text(parents.key_id);
    buffer.int4(contact.row_number);
    buffer.bytea(&contact.phone_ciphertext);
    buffer.uuid(stored_index(&contact.phone_index));
    buffer.text(&contact.phone_masked);
    buffer.text(contact.number_type);
    buffer.opt_bytea(contact.personalisation_ciphertext.as_deref());
    buffer.opt_text(contact.contact_ref.as_deref());
    buffer.text(contact.zone_source);
    buffer.text(&contact.zone_key);
    buffer.opt_text(contact.registry_status);
    buffer.opt_timestamptz(contact.registry_checked_at);
    buffer.opt_text(contact.registry_evidence.as_deref());
    buffer.opt_text(contact.registry_status.map(|_| "contact_file"));
    buffer.opt_text(contact.consent_type);
    buffer.opt_text(contact.consent_evidence.as_deref());
    buffer.opt_date(contact.consent_given_on);
    buffer.opt_date(contact.consent_expires_on);
    buffer.opt_text(contact.exemption);
    buffer.int4(contact.priority);
    buffer.int4(contact.max_attempts);
}

/// Reads the blind indexes already in a campaign, each with the row it came from.
pub async fn existing_indexes(
    connection: &mut PgConnection,
    campaign_id: Uuid,
) -> sqlx::Result<BlindIndexMap<i32>> {
    let mut indexes = BlindIndexMap::default();
    let mut rows = sqlx::query_as::<_, (Uuid, i32)>(
        "SELECT phone_index, row_number FROM contacts WHERE campaign_id = $1",
    )
    .bind(campaign_id)
    .fetch(connection);
    while let Some((index, row)) = rows.try_next().await? {
        // Each stored index is the first 16 bytes of the HMAC, which is also the map key.
        indexes.insert(index.into_bytes(), row);
    }
    Ok(indexes)
}

/// The non-personal columns of a contact: enough for the rules, listings and reports.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRecord {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub import_id: Uuid,
    pub row_number: i32,
    pub phone_masked: String,
    pub number_type: String,
    pub contact_ref: Option<String>,
    pub zone_source: String,
    pub zone_key: String,
    pub registry_status: Option<String>,
    pub registry_checked_at: Option<DateTime<Utc>>,
    pub registry_evidence: Option<String>,
    pub registry_source: Option<String>,
    pub consent_type: Option<String>,
    pub consent_evidence: Option<String>,
    pub consent_given_on: Option<NaiveDate>,
    pub consent_expires_on: Option<NaiveDate>,
    pub consent_withdrawn_at: Option<DateTime<Utc>>,
    pub exemption: Option<String>,
    pub priority: i32,
    pub max_attempts: i32,
    pub state: String,
    pub attempts_made: i32,
    pub last_outcome: Option<String>,
    pub final_reason: Option<String>,
    pub excluded_reason: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub suppressed: bool,
}

pub const RECORD_COLUMNS: &str = "c.id, c.campaign_id, c.import_id, c.row_number, c.phone_masked, c.number_type,
    c.contact_ref, c.zone_source, c.zone_key, c.registry_status, c.registry_checked_at, c.registry_evidence,
    c.registry_source, c.consent_type, c.consent_evidence, c.consent_given_on, c.consent_expires_on,
    c.consent_withdrawn_at, c.exemption, c.priority, c.max_attempts, c.state, c.attempts_made, c.last_outcome,
    c.final_reason, c.excluded_reason, c.next_attempt_at,
    EXISTS (SELECT 1 FROM suppressions s WHERE s.client_id = c.client_id AND s.phone_index = c.phone_index AND s.removed_at IS NULL) AS suppressed";

impl ContactRecord {
    /// Candidate zones from the stored key; an unreadable key falls back to
    /// every zone, the strictest reading.
    pub fn zones(&self) -> Vec<CandidateZone> {
        candidates_from_stored(&self.zone_key)
            .unwrap_or_else(|| outbound_domain::zone::ANYWHERE.to_vec())
    }

    pub fn wash(&self) -> Option<WashResult> {
        let status = RegistryStatus::parse(self.registry_status.as_deref()?)?;
        Some(WashResult {
            status,
            checked_at: self.registry_checked_at?,
        })
    }

    pub fn consent(&self) -> Option<Consent> {
        Some(Consent {
            consent_type: ConsentType::parse(self.consent_type.as_deref()?)?,
            given_on: self.consent_given_on,
            expires_on: self.consent_expires_on,
            withdrawn_at: self.consent_withdrawn_at,
        })
    }

    /// The facts the eligibility engine reads, borrowing `zones`.
    pub fn facts<'z>(&self, zones: &'z [CandidateZone]) -> ContactFacts<'z> {
        ContactFacts {
            zones,
            wash: self.wash(),
            consent: self.consent(),
            exemption: self.exemption.as_deref().and_then(Exemption::parse),
            suppressed: self.suppressed,
            attempts_made: u32::try_from(self.attempts_made).unwrap_or(0),
            max_attempts: u32::try_from(self.max_attempts).unwrap_or(0),
        }
    }

    /// Whether the contact's calling is over (finished, excluded or cancelled).
    pub fn is_closed(&self) -> bool {
        matches!(self.state.as_str(), "done" | "excluded" | "cancelled")
    }
}

/// Every contact of a campaign in id order, which is import order, then row order.
pub async fn all_for_campaign(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
) -> sqlx::Result<Vec<ContactRecord>> {
    let query =
        format!("SELECT {RECORD_COLUMNS} FROM contacts c WHERE c.campaign_id = $1 ORDER BY c.id");
    sqlx::query_as(&query)
        .bind(campaign_id)
        .fetch_all(executor)
        .await
}

/// A page of contacts in id order after the `(row_number, id)` cursor; only
/// its id places the page.
pub async fn page(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    after: Option<(i32, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<ContactRecord>> {
    let query = format!(
        "SELECT {RECORD_COLUMNS} FROM contacts c
          WHERE c.campaign_id = $1 AND ($2::int IS NULL OR c.id > $3)
          ORDER BY c.id LIMIT $4"
    );
    sqlx::query_as(&query)
        .bind(campaign_id)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1).unwrap_or_default())
        .bind(limit)
        .fetch_all(executor)
        .await
}

/// Marks contacts excluded with a reason; returns how many changed.
pub async fn exclude(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    ids: &[Uuid],
    reasons: &[String],
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "UPDATE contacts c SET state = 'excluded', excluded_reason = u.reason, updated_at = now()
           FROM UNNEST($2::uuid[], $3::text[]) AS u(id, reason)
          WHERE c.id = u.id AND c.campaign_id = $1 AND c.state = 'pending'",
    )
    .bind(campaign_id)
    .bind(ids)
    .bind(reasons)
    .execute(executor)
    .await?;
    Ok(result.rows_affected())
}

/// Applies wash results to the campaign's contacts by blind index; returns how
/// many contacts matched.
pub async fn apply_wash(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    indexes: &[Uuid],
    statuses: &[&str],
    received_at: DateTime<Utc>,
    reference: &str,
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "UPDATE contacts c SET registry_status = u.status, registry_checked_at = $3, registry_evidence = $4,
                registry_source = 'wash_file', updated_at = now()
           FROM UNNEST($2::uuid[], $5::text[]) AS u(phone_index, status)
          WHERE c.campaign_id = $1 AND c.phone_index = u.phone_index",
    )
    .bind(campaign_id)
    .bind(indexes)
    .bind(received_at)
    .bind(reference)
    .bind(statuses)
    .execute(executor)
    .await?;
    Ok(result.rows_affected())
}

/// Applies registry results from later rows of a contact file to contacts of
/// the same import, by blind index. The source stays `contact_file`. Returns
/// how many contacts changed.
pub async fn apply_file_registry_results(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    import_id: Uuid,
    indexes: &[Uuid],
    statuses: &[&str],
    checked_at: &[Option<DateTime<Utc>>],
    evidence: &[Option<String>],
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "UPDATE contacts c SET registry_status = u.status, registry_checked_at = u.checked_at,
                registry_evidence = u.evidence, updated_at = now()
           FROM UNNEST($3::uuid[], $4::text[], $5::timestamptz[], $6::text[])
                AS u(phone_index, status, checked_at, evidence)
          WHERE c.campaign_id = $1 AND c.import_id = $2 AND c.phone_index = u.phone_index",
    )
    .bind(campaign_id)
    .bind(import_id)
    .bind(indexes)
    .bind(statuses)
    .bind(checked_at)
    .bind(evidence)
    .execute(executor)
    .await?;
    Ok(result.rows_affected())
}

/// Counts of contacts by one column, for reports.
pub async fn count_by(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    column: &'static str,
) -> sqlx::Result<Vec<(Option<String>, i64)>> {
    let query = format!(
        "SELECT {column}, count(*) FROM contacts WHERE campaign_id = $1 GROUP BY {column} ORDER BY {column}"
    );
    sqlx::query_as(&query)
        .bind(campaign_id)
        .fetch_all(executor)
        .await
}

/// Adds a number to a client's suppression list. Adding a number that is
/// already suppressed keeps the first entry; adding one that was removed
/// suppresses it again.
pub async fn suppress(
    executor: impl PgExecutor<'_>,
    client_id: Uuid,
    phone_index: Uuid,
    source: &str,
    attempt_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO suppressions (id, client_id, phone_index, source, attempt_id, phone_masked)
         VALUES ($1, $2, $3, $4, $5, COALESCE(
             -- The attempt's contact, found by key. Only without an attempt
             -- does the lookup scan the client's contacts.
             (SELECT c.phone_masked FROM attempts a JOIN contacts c ON c.id = a.contact_id AND c.campaign_id = a.campaign_id
               WHERE a.id = $5),
             (SELECT phone_masked FROM contacts WHERE client_id = $2 AND phone_index = $3 LIMIT 1)))
         ON CONFLICT (client_id, phone_index) DO UPDATE
            SET removed_at = NULL, removed_by = NULL, removed_reason = NULL, source = EXCLUDED.source,
                attempt_id = EXCLUDED.attempt_id, created_at = now()
          WHERE suppressions.removed_at IS NOT NULL",
    )
    .bind(Uuid::new_v4())
    .bind(client_id)
    .bind(phone_index)
    .bind(source)
    .bind(attempt_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Suppressed numbers among a campaign's contacts.
pub async fn count_suppressed(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM contacts c
          WHERE c.campaign_id = $1
            AND EXISTS (SELECT 1 FROM suppressions s WHERE s.client_id = c.client_id AND s.phone_index = c.phone_index AND s.removed_at IS NULL)",
    )
    .bind(campaign_id)
    .fetch_one(executor)
    .await
}
