//! Contact CSV columns: matching headers and validating one record into a
//! [`ContactDraft`] or a list of row errors. Messages never contain the phone
//! number or a personalisation value.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::evidence::{ConsentType, Exemption, RegistryStatus, WASH_DAY_ZONE};
use crate::hours::CallType;
use crate::phone::{is_invisible, is_separator, normalise, NormalisedNumber, NumberPolicy};
use crate::zone::{parse_recipient_timezone, ExplicitZone};

pub const MAX_CONTACT_REF_CHARS: usize = 128;
pub const MAX_PERSONALISATION_CHARS: usize = 1024;
/// The wash reference a registry status comes from; the same limit as the
/// `wash_reference` of a wash result file.
pub const MAX_REGISTRY_EVIDENCE_CHARS: usize = 200;
/// A reference to the consent record; the same limit as the campaign's
/// free-text fields such as `exemption_evidence`.
pub const MAX_CONSENT_EVIDENCE_CHARS: usize = 500;
pub const DEFAULT_PRIORITY: u8 = 5;

/// The columns the importer reads, besides approved personalisation keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    ToNumber,
    ContactRef,
    RecipientTimezone,
    RegistryStatus,
    RegistryCheckedAt,
    RegistryEvidence,
    ConsentType,
    ConsentEvidence,
    ConsentGivenAt,
    ConsentExpiresAt,
    Exemption,
    CallType,
    Priority,
    MaxAttempts,
}

impl Column {
    pub const ALL: [Column; 14] = [
        Column::ToNumber,
        Column::ContactRef,
        Column::RecipientTimezone,
        Column::RegistryStatus,
        Column::RegistryCheckedAt,
        Column::RegistryEvidence,
        Column::ConsentType,
        Column::ConsentEvidence,
        Column::ConsentGivenAt,
        Column::ConsentExpiresAt,
        Column::Exemption,
        Column::CallType,
        Column::Priority,
        Column::MaxAttempts,
    ];

    /// Returns the longest value a free-text column takes, in characters;
    /// `None` for columns whose values are parsed and so bounded by their form.
    pub fn max_chars(self) -> Option<usize> {
        match self {
            Column::ContactRef => Some(MAX_CONTACT_REF_CHARS),
            Column::RegistryEvidence => Some(MAX_REGISTRY_EVIDENCE_CHARS),
            Column::ConsentEvidence => Some(MAX_CONSENT_EVIDENCE_CHARS),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Column::ToNumber => "to_number",
            Column::ContactRef => "contact_ref",
            Column::RecipientTimezone => "recipient_timezone",
            Column::RegistryStatus => "registry_status",
            Column::RegistryCheckedAt => "registry_checked_at",
            Column::RegistryEvidence => "registry_evidence",
            Column::ConsentType => "consent_type",
            Column::ConsentEvidence => "consent_evidence",
            Column::ConsentGivenAt => "consent_given_at",
            Column::ConsentExpiresAt => "consent_expires_at",
            Column::Exemption => "exemption",
            Column::CallType => "call_type",
            Column::Priority => "priority",
            Column::MaxAttempts => "max_attempts",
        }
    }
}

/// Normalises a header or a personalisation key: trimmed, lower case, with
/// space and `-` read as `_`.
pub fn normalise_header(header: &str) -> String {
    header
        .trim_matches(|c: char| c.is_whitespace() || is_invisible(c))
        .chars()
        .filter(|&c| !is_invisible(c))
        .map(|c| match c {
            '-' => '_',
            c if c.is_whitespace() => '_',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

/// Whether a header cell looks like a value (six or more digits, as a phone
/// number has) rather than a column name. Digits of any script count, so a
/// number typed in full-width digits is not echoed as a column name either.
fn looks_like_data(name: &str) -> bool {
    name.chars().filter(|c| c.is_numeric()).count() >= 6
}

/// What each position of a record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Known(Column),
    Personalisation(String),
    Dropped,
}

/// File-level header problems. Each fails the whole file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the required column to_number is missing")]
    MissingRequiredColumn,
    /// `to_number` is missing and the header has a column whose name usually
    /// labels phone numbers, such as `phone` or `mobile`.
    #[error("the required column to_number is missing; if column {0:?} holds the phone numbers, rename it to to_number")]
    MissingToNumberRename(String),
    #[error("column {0:?} appears more than once")]
    DuplicateColumn(String),
    #[error("column {0:?} is neither a contact column nor one of the campaign's personalisation_keys; add it to the campaign's personalisation_keys setting, or import with the query parameter ?drop_unknown_columns=true to drop unknown columns")]
    UnknownColumn(String),
    /// A header cell, at this 1-based position, contains what looks like a phone
    /// number while the header does name `to_number`. The cell is not echoed.
    #[error("header column {0} holds a value, not a column name; remove that column, or import with the query parameter ?drop_unknown_columns=true to drop it")]
    ValueInHeader(usize),
    /// A header cell contains what looks like a phone number: the file has no
    /// header row. The cell is not echoed.
    #[error("the first row looks like data, not a header; add a header row naming the columns, with to_number")]
    HeaderLooksLikeData,
}

impl HeaderError {
    pub fn code(&self) -> &'static str {
        match self {
            HeaderError::MissingRequiredColumn => "missing_required_column",
            HeaderError::MissingToNumberRename(_) => "missing_required_column",
            HeaderError::DuplicateColumn(_) => "duplicate_column",
            HeaderError::UnknownColumn(_) | HeaderError::ValueInHeader(_) => "unknown_column",
            HeaderError::HeaderLooksLikeData => "missing_required_column",
        }
    }
}

/// Returns whether a header name usually labels a column of phone numbers, such as
/// `phone`, `mobile_number` or `MSISDN`.
fn names_phone_column(name: &str) -> bool {
    const WORDS: [&str; 12] = [
        "phone",
        "telephone",
        "mobile",
        "mob",
        "number",
        "num",
        "no",
        "tel",
        "msisdn",
        "cell",
        "cellphone",
        "ph",
    ];
    // Whole words only: a first name such as "Marcella" in the header row of
    // a file without one must not be taken for a column name and repeated.
    name.split('_').any(|word| WORDS.contains(&word))
        || ["phone", "mobile", "msisdn"]
            .iter()
            .any(|stem| name.starts_with(stem) || name.ends_with(stem))
}

/// The meaning of each header position.
#[derive(Debug, Clone)]
pub struct HeaderMap {
    pub slots: Vec<Slot>,
    /// Normalised names of columns that were dropped as unknown.
    pub dropped: Vec<String>,
}

impl HeaderMap {
    /// Maps headers to columns.
    ///
    /// # Errors
    /// Fails on a missing `to_number`, a repeated column, and an unknown column
    /// unless `drop_unknown` is set.
    pub fn build(
        headers: &[&str],
        personalisation_keys: &[String],
        drop_unknown: bool,
    ) -> Result<Self, HeaderError> {
        let approved: Vec<String> = personalisation_keys
            .iter()
            .map(|k| normalise_header(k))
            .collect();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut slots = Vec::with_capacity(headers.len());
        let mut dropped = Vec::new();
        // The first unknown column, reported after the check for to_number.
        let mut unknown: Option<HeaderError> = None;
        // Whether a header cell contains what looks like a phone number.
        let mut data_like = false;
        for (index, header) in headers.iter().enumerate() {
            let name = normalise_header(header);
            if looks_like_data(&name) {
                // Never kept or echoed: it is an unknown column known only by
                // its position, or, without to_number, a sign of a missing header.
                data_like = true;
                if drop_unknown {
                    dropped.push(format!("(column {})", index + 1));
                } else {
                    unknown.get_or_insert(HeaderError::ValueInHeader(index + 1));
                }
                slots.push(Slot::Dropped);
                continue;
            }
            if name.is_empty() {
                // A trailing delimiter in a spreadsheet export leaves a blank header.
                slots.push(Slot::Dropped);
                continue;
            }
            if seen.insert(name.clone(), slots.len()).is_some() {
                return Err(HeaderError::DuplicateColumn(name));
            }
            let slot = if let Some(column) = Column::ALL.into_iter().find(|c| c.name() == name) {
                Slot::Known(column)
            } else if approved.contains(&name) {
                Slot::Personalisation(name)
            } else if drop_unknown {
                dropped.push(name);
                Slot::Dropped
            } else {
                unknown.get_or_insert(HeaderError::UnknownColumn(name));
                Slot::Dropped
            };
            slots.push(slot);
        }
        if !slots.contains(&Slot::Known(Column::ToNumber)) {
            if data_like {
                return Err(HeaderError::HeaderLooksLikeData);
            }
            let renamed = headers
                .iter()
                .map(|header| normalise_header(header))
                .find(|name| names_phone_column(name) && !approved.contains(name));
            return Err(match renamed {
                Some(name) => HeaderError::MissingToNumberRename(name),
                None => HeaderError::MissingRequiredColumn,
            });
        }
        if let Some(error) = unknown {
            return Err(error);
        }
        Ok(Self { slots, dropped })
    }

    pub fn position(&self, column: Column) -> Option<usize> {
        self.slots
            .iter()
            .position(|slot| *slot == Slot::Known(column))
    }
}

/// A row-level error or warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIssue {
    pub column: String,
    pub code: &'static str,
    pub message: String,
}

impl RowIssue {
    fn new(column: Column, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            column: column.name().to_owned(),
            code,
            message: message.into(),
        }
    }
}

/// Consent as imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentDraft {
    pub consent_type: ConsentType,
    pub evidence: Option<String>,
    pub given_on: Option<NaiveDate>,
    pub expires_on: Option<NaiveDate>,
}

/// A validated contact, ready to encrypt and store.
#[derive(Debug, Clone)]
pub struct ContactDraft {
    pub number: NormalisedNumber,
    pub contact_ref: Option<String>,
    pub explicit_zone: Option<ExplicitZone>,
    pub registry_status: Option<RegistryStatus>,
    pub registry_checked_at: Option<DateTime<Utc>>,
    pub registry_evidence: Option<String>,
    pub consent: Option<ConsentDraft>,
    pub exemption: Option<Exemption>,
    pub priority: u8,
    pub max_attempts: Option<u8>,
    pub personalisation: Vec<(String, String)>,
    pub warnings: Vec<RowIssue>,
}

/// Campaign settings the row rules read.
#[derive(Debug, Clone, Copy)]
pub struct RowContext {
    pub call_type: CallType,
    pub number_policy: NumberPolicy,
}

/// Validates one record.
///
/// # Errors
/// Returns every problem found in the record; the record is then rejected.
pub fn validate_record(
    map: &HeaderMap,
    fields: &[&str],
    context: RowContext,
) -> Result<ContactDraft, Vec<RowIssue>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let field = |column: Column| -> Option<&str> {
        let value = fields.get(map.position(column)?)?.trim();
        (!value.is_empty()).then_some(value)
    };

    let number = match normalise(field(Column::ToNumber).unwrap_or(""), context.number_policy) {
        Ok(number) => {
            for warning in &number.warnings {
                warnings.push(RowIssue::new(
                    Column::ToNumber,
                    warning.code(),
                    warning.message(),
                ));
            }
            Some(number)
        }
        Err(error) => {
            errors.push(RowIssue::new(
                Column::ToNumber,
                error.code(),
                error.to_string(),
            ));
            None
        }
    };

    if fields
        .iter()
        .skip(map.slots.len())
        .any(|value| !value.trim().is_empty())
    {
        errors.push(RowIssue {
            column: String::new(),
            code: "too_many_fields",
            message: format!(
                "the record has {} fields but the header names {}; a value that contains the delimiter needs quotes",
                fields.len(),
                map.slots.len()
            ),
        });
    }

    for column in Column::ALL {
        let (Some(max), Some(value)) = (column.max_chars(), field(column)) else {
            continue;
        };
        if value.chars().count() > max {
            errors.push(RowIssue::new(
                column,
                "value_too_long",
                format!("{} is longer than {max} characters", column.name()),
            ));
        } else if contains_phone_number(value) {
            errors.push(RowIssue::new(
                column,
                "value_is_phone_number",
                format!(
                    "{} contains a phone number, which reports and exports would show unmasked; put the number in to_number only",
                    column.name()
                ),
            ));
        }
    }
    let contact_ref = field(Column::ContactRef).map(str::to_owned);

    let explicit_zone = match field(Column::RecipientTimezone).map(parse_recipient_timezone) {
        None => None,
        Some(Ok(zone)) => Some(zone),
        Some(Err(error)) => {
            errors.push(RowIssue::new(
                Column::RecipientTimezone,
                "invalid_recipient_timezone",
                error.to_string(),
            ));
            None
        }
    };

    let registry_status = match field(Column::RegistryStatus) {
        None => None,
        Some(value) => match RegistryStatus::parse(value) {
            Some(status) => Some(status),
            None => {
                errors.push(RowIssue::new(
                    Column::RegistryStatus,
                    "invalid_registry_status",
                    "registry_status must be not_registered, registered or invalid (or N, Y, I)",
                ));
                None
            }
        },
    };
    let registry_checked_at = parse_date_field(
        field(Column::RegistryCheckedAt),
        Column::RegistryCheckedAt,
        &mut errors,
    )
    .map(|(instant, _)| instant);
    if registry_status.is_some()
        && registry_checked_at.is_none()
        && field(Column::RegistryCheckedAt).is_none()
    {
        warnings.push(RowIssue::new(
            Column::RegistryCheckedAt,
            "missing_registry_checked_at",
            "registry_status has no registry_checked_at, so it cannot be shown current; attach a wash result",
        ));
    }
    let registry_evidence = field(Column::RegistryEvidence).map(str::to_owned);

    let consent = validate_consent(&field, &mut errors);

    let exemption = match field(Column::Exemption) {
        None => None,
        Some(value) => match Exemption::parse(value) {
            Some(exemption) => Some(exemption),
            None => {
                errors.push(RowIssue::new(
                    Column::Exemption,
                    "invalid_exemption",
                    "exemption must be government, charity, political or education",
                ));
                None
            }
        },
    };

    if let Some(value) = field(Column::CallType) {
        if CallType::parse(value) != Some(context.call_type) {
            errors.push(RowIssue::new(
                Column::CallType,
                "call_type_mismatch",
                format!(
                    "call_type must match the campaign's call type ({})",
                    context.call_type
                ),
            ));
        }
    }

    let priority = match field(Column::Priority) {
        None => DEFAULT_PRIORITY,
        Some(value) => match parse_bounded(value) {
            Some(priority) => priority,
            None => {
                errors.push(RowIssue::new(
                    Column::Priority,
                    "invalid_priority",
                    "priority must be a whole number from 1 to 10",
                ));
                DEFAULT_PRIORITY
            }
        },
    };
    let max_attempts = match field(Column::MaxAttempts) {
        None => None,
        Some(value) => {
            let parsed = parse_bounded(value);
            if parsed.is_none() {
                errors.push(RowIssue::new(
                    Column::MaxAttempts,
                    "invalid_max_attempts",
                    "max_attempts must be a whole number from 1 to 10",
                ));
            }
            parsed
        }
    };

    let mut personalisation = Vec::new();
    for (position, slot) in map.slots.iter().enumerate() {
        let Slot::Personalisation(key) = slot else {
            continue;
        };
        let value = fields.get(position).map(|v| v.trim()).unwrap_or("");
        if value.is_empty() {
            continue;
        }
        if value.chars().count() > MAX_PERSONALISATION_CHARS {
            errors.push(RowIssue {
                column: key.clone(),
                code: "value_too_long",
                message: format!("{key} is longer than {MAX_PERSONALISATION_CHARS} characters"),
            });
            continue;
        }
        personalisation.push((key.clone(), value.to_owned()));
    }

    match number {
        Some(number) if errors.is_empty() => Ok(ContactDraft {
            number,
            contact_ref,
            explicit_zone,
            registry_status,
            registry_checked_at,
            registry_evidence,
            consent,
            exemption,
            priority,
            max_attempts,
            personalisation,
            warnings,
        }),
        _ => Err(errors),
    }
}

fn validate_consent<'a>(
    field: &impl Fn(Column) -> Option<&'a str>,
    errors: &mut Vec<RowIssue>,
) -> Option<ConsentDraft> {
    let given_on = parse_date_field(
        field(Column::ConsentGivenAt),
        Column::ConsentGivenAt,
        errors,
    )
    .map(|(_, date)| date);
    let expires_on = parse_date_field(
        field(Column::ConsentExpiresAt),
        Column::ConsentExpiresAt,
        errors,
    )
    .map(|(_, date)| date);
    let evidence = field(Column::ConsentEvidence).map(str::to_owned);
    let Some(type_text) = field(Column::ConsentType) else {
        if given_on.is_some() || expires_on.is_some() || evidence.is_some() {
            errors.push(RowIssue::new(
                Column::ConsentType,
                "invalid_consent",
                "consent details are given without consent_type (express or inferred)",
            ));
        }
        return None;
    };
    let Some(consent_type) = ConsentType::parse(type_text) else {
        errors.push(RowIssue::new(
            Column::ConsentType,
            "invalid_consent",
            "consent_type must be express or inferred",
        ));
        return None;
    };
    if let (Some(given), Some(expires)) = (given_on, expires_on) {
        if expires < given {
            errors.push(RowIssue::new(
                Column::ConsentExpiresAt,
                "invalid_consent",
                "consent_expires_at is before consent_given_at",
            ));
            return None;
        }
    }
    if consent_type == ConsentType::Express && given_on.is_none() && expires_on.is_none() {
        errors.push(RowIssue::new(
            Column::ConsentGivenAt,
            "invalid_consent",
            "express consent needs consent_given_at (or consent_expires_at) so its period can be checked",
        ));
        return None;
    }
    Some(ConsentDraft {
        consent_type,
        evidence,
        given_on,
        expires_on,
    })
}

/// Returns whether a free-text value is a phone number written out in full: a
/// mobile or landline with its trunk 0 or country code. Nine-digit and
/// six-digit references (`412345678`, `131234`) are not taken for numbers.
pub fn is_phone_number(value: &str) -> bool {
    normalise(value, NumberPolicy::default()).is_ok_and(|number| number.warnings.is_empty())
}

/// Returns whether free text contains a phone number written out in full,
/// alone or among other words, as in `Mob: 0491 570 157`. Each run of digits
/// and the separators the number parser accepts is tried in parts split at
/// spaces, so digits before the number (`REF 12 0491 570 157`) do not hide
/// it. A date such as `02/03/2026` ends a run, so that a date and an hour
/// (`02/03/2026 08:15`) are not read as a landline.
pub fn contains_phone_number(value: &str) -> bool {
    if is_phone_number(value) {
        return true;
    }
    let mut run = String::new();
    // A letter at the end closes the last run.
    for c in value.chars().chain(std::iter::once('x')) {
        if c.is_numeric() || c == '+' || is_separator(c) {
            run.push(c);
            continue;
        }
        if run_contains_phone_number(&run) {
            return true;
        }
        run.clear();
    }
    false
}

/// The maximum number of space-separated parts a number is tried in, enough
/// for a mobile typed one digit at a time.
const MAX_NUMBER_PARTS: usize = 12;

fn run_contains_phone_number(run: &str) -> bool {
    if run.chars().filter(|c| c.is_numeric()).count() < 8 {
        return false;
    }
    // Parts without a digit, such as a lone dash, are left out. A date splits
    // the run into segments, and a number is not read across them.
    let mut segments: Vec<Vec<(&str, usize)>> = vec![Vec::new()];
    for part in run.split(char::is_whitespace) {
        let digits = part.chars().filter(|c| c.is_numeric()).count();
        if is_date(part) {
            segments.push(Vec::new());
        } else if digits > 0 {
            if let Some(segment) = segments.last_mut() {
                segment.push((part, digits));
            }
        }
    }
    segments.iter().any(|parts| {
        (0..parts.len()).any(|first| {
            if !may_start_number(parts[first].0) {
                return false;
            }
            let mut digits = 0;
            for end in first + 1..=parts.len().min(first + MAX_NUMBER_PARTS) {
                digits += parts[end - 1].1;
                if digits > 16 {
                    return false;
                }
                if digits >= 8 {
                    let candidate: Vec<&str> =
                        parts[first..end].iter().map(|(part, _)| *part).collect();
                    if is_phone_number(&candidate.join(" ")) {
                        return true;
                    }
                }
            }
            false
        })
    })
}

/// Returns whether a part may begin a written-out number: with `+`, or with
/// a first digit of 0 (trunk prefix, `0011`) or 6 (country code 61).
fn may_start_number(part: &str) -> bool {
    part.starts_with('+')
        || part
            .chars()
            .find(|c| c.is_numeric())
            .is_some_and(|c| matches!(c, '0' | '6' | '\u{ff10}' | '\u{ff16}'))
}

/// Returns whether a word is a date written with `/`, `.` or `-`: day, month
/// and a year of two or four digits (`02/03/2026`), or an ISO date
/// (`2026-03-02`).
fn is_date(word: &str) -> bool {
    let Some(separator) = word.chars().find(|c| matches!(c, '/' | '.' | '-')) else {
        return false;
    };
    let groups: Vec<&str> = word.split(separator).collect();
    if groups.len() != 3
        || !groups
            .iter()
            .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let lengths = [groups[0].len(), groups[1].len(), groups[2].len()];
    matches!(lengths, [1 | 2, 1 | 2, 2 | 4] | [4, 1 | 2, 1 | 2])
}

/// Returns whether a value could be read as a phone number in any accepted form. Values
/// like this are left out of the rejected-rows download, because a row whose
/// columns shifted may carry its number in a column that is otherwise shown.
pub fn may_be_phone_number(value: &str) -> bool {
    let policy = NumberPolicy {
        allow_non_geographic: true,
    };
    normalise(value, policy).is_ok()
}

/// Parses an ISO 8601 date (`2026-11-20`) or date-time (`2026-11-20T10:15:00+11:00`,
/// or without an offset, read as Australia/Sydney time). Dates without a time are
/// read as the start of that day in Australia/Sydney. Years outside
/// [`DATE_YEARS`] are refused: they are typing or spreadsheet mistakes, and
/// some are beyond what PostgreSQL can store.
pub fn parse_iso_date_or_time(value: &str) -> Option<(DateTime<Utc>, NaiveDate)> {
    parse_any_year(value).filter(|(_, date)| DATE_YEARS.contains(&date.year()))
}

/// The years a date in a contact or wash file may fall in.
pub const DATE_YEARS: std::ops::RangeInclusive<i32> = 1900..=2999;

fn parse_any_year(value: &str) -> Option<(DateTime<Utc>, NaiveDate)> {
    let value = value.trim();
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let start = WASH_DAY_ZONE
            .from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
            .earliest()?;
        return Some((start.with_timezone(&Utc), date));
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(value) {
        let utc = instant.with_timezone(&Utc);
        return Some((utc, instant.date_naive()));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(value, format) {
            let instant = WASH_DAY_ZONE.from_local_datetime(&local).earliest()?;
            return Some((instant.with_timezone(&Utc), local.date()));
        }
    }
    None
}

fn parse_date_field(
    value: Option<&str>,
    column: Column,
    errors: &mut Vec<RowIssue>,
) -> Option<(DateTime<Utc>, NaiveDate)> {
    let value = value?;
    let parsed = parse_iso_date_or_time(value);
    if parsed.is_none() {
        errors.push(RowIssue::new(
            column,
            "invalid_date",
            format!(
                "{} must be an ISO 8601 date (YYYY-MM-DD) or date-time, in the years {} to {}",
                column.name(),
                DATE_YEARS.start(),
                DATE_YEARS.end()
            ),
        ));
    }
    parsed
}

fn parse_bounded(value: &str) -> Option<u8> {
    let value = value.trim();
    let value = value.strip_suffix(".0").unwrap_or(value);
    value.parse::<u8>().ok().filter(|n| (1..=10).contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RowContext {
        RowContext {
            call_type: CallType::Telemarketing,
            number_policy: NumberPolicy::default(),
        }
    }

    fn map(headers: &[&str]) -> HeaderMap {
        HeaderMap::build(headers, &["first_name".to_owned()], false).expect("valid headers")
    }

    fn codes(result: Result<ContactDraft, Vec<RowIssue>>) -> Vec<&'static str> {
        result
            .expect_err("row should be rejected")
            .into_iter()
            .map(|issue| issue.code)
            .collect()
    }

    #[test]
    fn headers_match_case_and_separators() {
        let map = map(&[" To Number ", "Contact-Ref", "FIRST NAME"]);
        assert_eq!(map.slots[0], Slot::Known(Column::ToNumber));
        assert_eq!(map.slots[1], Slot::Known(Column::ContactRef));
        assert_eq!(map.slots[2], Slot::Personalisation("first_name".into()));
    }

    #[test]
    fn header_errors_have_stable_codes() {
        let keys = Vec::new();
        let missing = HeaderMap::build(&["contact_ref"], &keys, false).map(|_| ());
        assert_eq!(
            missing.map_err(|e| e.code()),
            Err("missing_required_column")
        );
        let duplicate = HeaderMap::build(&["to_number", "To Number"], &keys, false).map(|_| ());
        assert_eq!(duplicate.map_err(|e| e.code()), Err("duplicate_column"));
        let unknown = HeaderMap::build(&["to_number", "nickname"], &keys, false).map(|_| ());
        assert_eq!(unknown.map_err(|e| e.code()), Err("unknown_column"));
        let renamed = HeaderMap::build(&["phone", "first_name"], &keys, false).map(|_| ());
        assert_eq!(
            renamed,
            Err(HeaderError::MissingToNumberRename("phone".into()))
        );
        assert_eq!(
            renamed.map_err(|e| e.code()),
            Err("missing_required_column")
        );
        let other = HeaderMap::build(&["contact_ref", "nickname"], &keys, false).map(|_| ());
        assert_eq!(other, Err(HeaderError::MissingRequiredColumn));
        let dropped = HeaderMap::build(&["to_number", "nickname"], &keys, true).expect("dropped");
        assert_eq!(dropped.dropped, vec!["nickname".to_owned()]);
    }

    #[test]
    fn rename_hint_needs_whole_word() {
        let keys = Vec::new();
        for (headers, hint) in [
            (&["Mobile Phone", "first_name"][..], Some("mobile_phone")),
            (&["Contact No", "first_name"], Some("contact_no")),
            (&["HomePhone"], Some("homephone")),
            (&["MSISDN"], Some("msisdn")),
            (&["", "Marcella", "Smith"], None),
            (&["Telford", "Cellini"], None),
        ] {
            let error = HeaderMap::build(headers, &keys, false)
                .map(|_| ())
                .expect_err("no to_number");
            let expected = match hint {
                Some(name) => HeaderError::MissingToNumberRename(name.into()),
                None => HeaderError::MissingRequiredColumn,
            };
            assert_eq!(error, expected, "{headers:?}");
        }
    }

    #[test]
    fn headerless_file_does_not_echo_number() {
        let keys = Vec::new();
        let error = HeaderMap::build(&["0491570006", "Noah"], &keys, false)
            .map(|_| ())
            .expect_err("no header row");
        assert_eq!(error, HeaderError::HeaderLooksLikeData);
        assert_eq!(error.code(), "missing_required_column");
        assert!(!error.to_string().contains("0491570006"));
    }

    #[test]
    fn valid_row_becomes_draft() {
        let map = map(&[
            "to_number",
            "first_name",
            "priority",
            "registry_status",
            "registry_checked_at",
        ]);
        let draft = validate_record(
            &map,
            &["0491 570 006", "Zoë", "7", "N", "2026-11-20"],
            context(),
        )
        .expect("valid row");
        assert_eq!(draft.number.e164.as_str(), "+61491570006");
        assert_eq!(draft.priority, 7);
        assert_eq!(draft.registry_status, Some(RegistryStatus::NotRegistered));
        assert_eq!(
            draft.personalisation,
            vec![("first_name".to_owned(), "Zoë".to_owned())]
        );
    }

    #[test]
    fn row_codes_for_each_invalid_column() {
        let map = map(&[
            "to_number",
            "recipient_timezone",
            "registry_status",
            "registry_checked_at",
            "priority",
            "max_attempts",
            "exemption",
            "call_type",
        ]);
        let row = [
            "0491 570 006",
            "AEST",
            "maybe",
            "20/11/2026",
            "high",
            "11",
            "church",
            "research",
        ];
        assert_eq!(
            codes(validate_record(&map, &row, context())),
            vec![
                "invalid_recipient_timezone",
                "invalid_registry_status",
                "invalid_date",
                "invalid_exemption",
                "call_type_mismatch",
                "invalid_priority",
                "invalid_max_attempts",
            ]
        );
    }

    #[test]
    fn errors_never_echo_the_number_or_personalisation() {
        let map = map(&["to_number", "first_name"]);
        let long_name = "x".repeat(MAX_PERSONALISATION_CHARS + 1);
        let issues =
            validate_record(&map, &["0491 57A 632", &long_name], context()).expect_err("rejected");
        for issue in issues {
            assert!(!issue.message.contains("57A"), "{}", issue.message);
            assert!(!issue.message.contains("xxxx"), "{}", issue.message);
        }
    }

    #[test]
    fn missing_number_is_reported() {
        let map = map(&["to_number", "contact_ref"]);
        assert_eq!(
            codes(validate_record(&map, &["", "CRM-1"], context())),
            vec!["missing_to_number"]
        );
    }

    #[test]
    fn consent_rules() {
        let map = map(&[
            "to_number",
            "consent_type",
            "consent_given_at",
            "consent_expires_at",
        ]);
        let bad_type = validate_record(
            &map,
            &["0491 570 006", "verbal", "2026-10-01", ""],
            context(),
        );
        assert_eq!(codes(bad_type), vec!["invalid_consent"]);
        let reversed = validate_record(
            &map,
            &["0491 570 006", "express", "2026-10-01", "2026-09-01"],
            context(),
        );
        assert_eq!(codes(reversed), vec!["invalid_consent"]);
        let valid = validate_record(
            &map,
            &["0491 570 006", "express", "2026-10-01", ""],
            context(),
        )
        .expect("valid consent");
        assert_eq!(
            valid.consent.map(|c| c.consent_type),
            Some(ConsentType::Express)
        );
    }

    #[test]
    fn contact_ref_longer_than_limit() {
        let map = map(&["to_number", "contact_ref"]);
        let long_ref = "R".repeat(MAX_CONTACT_REF_CHARS + 1);
        assert_eq!(
            codes(validate_record(
                &map,
                &["0491 570 006", &long_ref],
                context()
            )),
            vec!["value_too_long"]
        );
    }

    #[test]
    fn free_text_columns_have_limits() {
        let map = map(&["to_number", "registry_evidence", "consent_evidence"]);
        let row = |registry: &str, consent: &str| {
            validate_record(&map, &["0491 570 006", registry, consent], context())
        };
        let long = row(&"W".repeat(MAX_REGISTRY_EVIDENCE_CHARS + 1), "");
        let issues = long.expect_err("too long");
        assert_eq!(issues[0].code, "value_too_long");
        assert_eq!(issues[0].column, "registry_evidence");
        assert!(issues[0].message.contains("200"));
        assert!(!issues[0].message.contains("WW"));
        assert!(row(&"W".repeat(MAX_REGISTRY_EVIDENCE_CHARS), "").is_ok());
        let consent = row("", &"C".repeat(MAX_CONSENT_EVIDENCE_CHARS + 1));
        assert_eq!(consent.expect_err("too long")[0].column, "consent_evidence");
    }

    #[test]
    fn more_fields_than_header_rejected() {
        let map = map(&["to_number", "first_name", "contact_ref"]);
        assert_eq!(
            codes(validate_record(
                &map,
                &["0491 570 006", "Smith", " John", "R-1"],
                context()
            )),
            vec!["too_many_fields"]
        );
        assert!(validate_record(&map, &["0491 570 006", "Zoë", "R-1", " ", ""], context()).is_ok());
    }

    #[test]
    fn phone_number_in_free_text_rejected() {
        let map = map(&["to_number", "contact_ref"]);
        for reference in ["0491 570 156", "+61 2 5550 1234", "tel:0491570006"] {
            let issues = validate_record(&map, &["0491 570 006", reference], context())
                .expect_err("phone number in contact_ref");
            assert_eq!(issues[0].code, "value_is_phone_number", "{reference:?}");
            assert!(!issues[0].message.contains("570"), "{reference:?}");
        }
        for reference in [
            "Mob: 0491 570 157",
            "CUST 0491 570 157",
            "ref 0491570159",
            "rec 0491-570-158",
            "REF 12 0491 570 157",
            "call (02) 5550 1234 after 5",
            "A/0491570006/B",
            "Mob 0491/570/157",
            "Mob 0491\u{2009}570\u{202f}157",
            "Mob 0491 57\u{200b}0 157",
            "Mob 0491\t570\t157",
            "Mob 0491\u{ff0d}570\u{ff0d}157",
            "Mob 0 4 9 1 5 7 0 1 5 7",
            "Mob 04 9 1 5 7 0 1 5 7",
            "Mob 0491\u{ff0e}570\u{ff0e}157",
            "Mob \u{ff08}0491\u{ff09}570157",
            "Mob 0491\u{fe63}570\u{fe63}157",
            "Mob 0491\u{fe58}570\u{fe58}157",
            "Mob \u{ff10}\u{ff14}\u{ff19}\u{ff11} 570 157",
            "Mob 0 - 4 - 9 - 1 - 5 - 7 - 0 - 1 - 5 - 7",
            "ph (02) 5550-1234",
        ] {
            let issues = validate_record(&map, &["0491 570 006", reference], context())
                .expect_err("phone number inside contact_ref");
            assert_eq!(issues[0].code, "value_is_phone_number", "{reference:?}");
        }
        for reference in [
            "412345678",
            "131234",
            "CRM-0491",
            "REF 10023456",
            "INV-2026-000123",
            "WASH 2026-12-01 12:00",
            "ACC 20261201 0491",
            "due 20/11/2026",
            "ABN 51 824 753 556",
            "Web form signed 02/03/2026 08:15 AEST",
            "Consent given 04/09/2026 11am at store",
            "DNCR wash 02/12/2026 12:00",
            "Created 08/11/2026 09:12",
            "01/03/2026 - 07/03/2026",
            "wash 02.12.2026 12:00",
            "from 02-12-2026 12:00",
        ] {
            assert!(
                validate_record(&map, &["0491 570 006", reference], context()).is_ok(),
                "{reference:?}"
            );
        }
    }

    #[test]
    fn header_value_beside_to_number() {
        let keys = Vec::new();
        let error = HeaderMap::build(&["to_number", "0491 570 156"], &keys, false)
            .map(|_| ())
            .expect_err("a value is not a column name");
        assert_eq!(error, HeaderError::ValueInHeader(2));
        assert_eq!(error.code(), "unknown_column");
        assert!(!error.to_string().contains("570"));
        let dropped = HeaderMap::build(&["To Number", "0491570156"], &keys, true).expect("dropped");
        assert_eq!(dropped.dropped, vec!["(column 2)".to_owned()]);
        assert_eq!(dropped.slots[1], Slot::Dropped);
    }

    #[test]
    fn header_spaces_of_any_kind_match() {
        let map = map(&["\u{feff}To\u{a0}Number", "Contact\u{200b} Ref"]);
        assert_eq!(map.slots[0], Slot::Known(Column::ToNumber));
        assert_eq!(map.slots[1], Slot::Known(Column::ContactRef));
        let keys = Vec::new();
        let full_width = HeaderMap::build(
            &["\u{ff10}\u{ff14}\u{ff19}\u{ff11}\u{ff15}\u{ff17}"],
            &keys,
            false,
        );
        assert_eq!(
            full_width.map(|_| ()),
            Err(HeaderError::HeaderLooksLikeData)
        );
    }

    #[test]
    fn iso_dates_read_in_sydney() {
        let (instant, date) = parse_iso_date_or_time("2026-11-20").expect("valid date");
        assert_eq!(date, NaiveDate::from_ymd_opt(2026, 11, 20).expect("valid"));
        assert_eq!(instant.to_rfc3339(), "2026-11-19T13:00:00+00:00");
        assert!(parse_iso_date_or_time("2026-11-20T10:00:00Z").is_some());
        assert!(parse_iso_date_or_time("20/11/2026").is_none());
    }

    #[test]
    fn dates_outside_years_rejected() {
        for value in [
            "-4800-01-01",
            "-5000-01-01T00:00:00Z",
            "0001-01-01",
            "1899-12-31",
            "3000-01-01",
            "+12026-11-20",
            "99999-01-01T00:00:00",
        ] {
            assert!(parse_iso_date_or_time(value).is_none(), "{value}");
        }
        for value in ["1900-01-01", "2999-12-31T23:59:59+11:00"] {
            assert!(parse_iso_date_or_time(value).is_some(), "{value}");
        }
    }
}
