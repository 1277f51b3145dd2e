//! `outbound eligibility`: checks whether one number may be called at an
//! instant, with the request given as flags or as JSON lines on standard
//! input. It uses the bundled holiday calendar and each call type's default
//! campaign settings (legal hours, state holidays blocked, no date limits).
//!
//! The output names zones, reasons and clearances, never the number.

use std::io::{self, BufRead, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use outbound_domain::contact_row::parse_iso_date_or_time;
use outbound_domain::eligibility::{CampaignRules, ContactFacts, Rules, ZoneExplanation};
use outbound_domain::evidence::{Consent, ConsentType, Exemption, RegistryStatus, WashResult};
use outbound_domain::hours::CallType;
use outbound_domain::phone::{normalise, NumberPolicy};
use outbound_domain::zone::{parse_recipient_timezone, recipient_zones};
use serde::{Deserialize, Serialize};

/// Exit code of a single request that is invalid.
const INVALID_REQUEST_EXIT_CODE: i32 = 2;

#[derive(Args)]
pub struct EligibilityArgs {
    /// The recipient's number, in any accepted form (0491 570 006, +61 491 570 006, (02) 5550 1234).
    #[arg(long, conflicts_with = "batch")]
    pub number: Option<String>,
    /// telemarketing, research or service.
    #[arg(long, conflicts_with = "batch")]
    pub call_type: Option<String>,
    /// The instant of the call, RFC 3339 (2026-12-07T10:00:00+11:00).
    #[arg(long, conflicts_with = "batch")]
    pub at: Option<String>,
    /// The recipient's IANA time zone or state code (Australia/Perth, NSW);
    /// without it the number's candidate zones apply.
    #[arg(long, conflicts_with = "batch")]
    pub timezone: Option<String>,
    /// Wash result: not_registered, registered or invalid (or N, Y, I).
    #[arg(long, conflicts_with = "batch")]
    pub registry_status: Option<String>,
    /// When the wash result was received: ISO date (read in Australia/Sydney) or RFC 3339 date-time.
    #[arg(long, conflicts_with = "batch")]
    pub registry_checked_at: Option<String>,
    /// express or inferred.
    #[arg(long, conflicts_with = "batch")]
    pub consent_type: Option<String>,
    /// When consent was given: ISO date or RFC 3339 date-time.
    #[arg(long, conflicts_with = "batch")]
    pub consent_given_at: Option<String>,
    /// The stated end of consent, inclusive: ISO date or RFC 3339 date-time.
    #[arg(long, conflicts_with = "batch")]
    pub consent_expires_at: Option<String>,
    /// Designated-call exemption: government, charity, political or education.
    #[arg(long, conflicts_with = "batch")]
    pub exemption: Option<String>,
    /// Read one JSON object per line from standard input, with the flags'
    /// names in snake_case as keys, and write one JSON line per request.
    #[arg(long)]
    pub batch: bool,
}

/// One request: the flags, or one line of a batch.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    number: Option<String>,
    call_type: Option<String>,
    at: Option<String>,
    timezone: Option<String>,
    registry_status: Option<String>,
    registry_checked_at: Option<String>,
    consent_type: Option<String>,
    consent_given_at: Option<String>,
    consent_expires_at: Option<String>,
    exemption: Option<String>,
}

const REQUEST_KEYS: &str =
    "number, call_type, at, timezone, registry_status, registry_checked_at, \
                            consent_type, consent_given_at, consent_expires_at, exemption";

/// The output for a valid request.
#[derive(Debug, Serialize)]
struct Response {
    allowed: bool,
    reason: Option<&'static str>,
    zones: Vec<ZoneExplanation>,
    zone_source: &'static str,
    next_eligible_at: Option<String>,
    clearance: Option<&'static str>,
}

/// The output for an invalid request.
#[derive(Debug, Serialize)]
struct ErrorResponse {
    allowed: bool,
    reason: Option<&'static str>,
    error: RequestError,
}

#[derive(Debug, Serialize)]
struct RequestError {
    code: &'static str,
    message: String,
}

impl RequestError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

pub fn run(args: EligibilityArgs) -> anyhow::Result<()> {
    if args.batch {
        return run_batch();
    }
    let request = Request {
        number: args.number,
        call_type: args.call_type,
        at: args.at,
        timezone: args.timezone,
        registry_status: args.registry_status,
        registry_checked_at: args.registry_checked_at,
        consent_type: args.consent_type,
        consent_given_at: args.consent_given_at,
        consent_expires_at: args.consent_expires_at,
        exemption: args.exemption,
    };
    let result = evaluate_request(&request);
    let mut stdout = io::stdout().lock();
    match result {
        Ok(response) => {
            serde_json::to_writer(&mut stdout, &response)?;
            writeln!(stdout)?;
            stdout.flush()?;
            Ok(())
        }
        Err(error) => {
            serde_json::to_writer(&mut stdout, &error_response(error))?;
            writeln!(stdout)?;
            stdout.flush()?;
            std::process::exit(INVALID_REQUEST_EXIT_CODE);
        }
    }
}

/// Evaluates each non-blank line of standard input and writes one output
/// line for it, in order. An invalid line gets an error line and the batch
/// continues.
fn run_batch() -> anyhow::Result<()> {
    let stdin = io::stdin().lock();
    let mut stdout = io::stdout().lock();
    for (index, line) in stdin.lines().enumerate() {
        let line = line.map_err(|error| {
            anyhow::anyhow!("cannot read line {} of standard input: {error}", index + 1)
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str::<Request>(&line)
            .map_err(|error| {
                // serde's message can quote the value, which may be a number.
                RequestError::new(
                    "invalid_request",
                    format!(
                        "line {} is not a JSON object of strings or nulls (problem at column {}); the keys are {REQUEST_KEYS}",
                        index + 1,
                        error.column()
                    ),
                )
            })
            .and_then(|request| evaluate_request(&request));
        match result {
            Ok(response) => serde_json::to_writer(&mut stdout, &response)?,
            Err(error) => serde_json::to_writer(&mut stdout, &error_response(error))?,
        }
        writeln!(stdout)?;
        // Flushed per line, so a caller can send one request and wait for its answer.
        stdout.flush()?;
    }
    Ok(())
}

fn error_response(error: RequestError) -> ErrorResponse {
    ErrorResponse {
        allowed: false,
        reason: None,
        error,
    }
}

fn evaluate_request(request: &Request) -> Result<Response, RequestError> {
    let number_text = request.number.as_deref().unwrap_or("");
    let number = normalise(number_text, NumberPolicy::default())
        .map_err(|error| RequestError::new(error.code(), error.to_string()))?;
    let call_type = parse_call_type(request.call_type.as_deref())?;
    let at = parse_at(request.at.as_deref())?;
    let explicit = request
        .timezone
        .as_deref()
        .map(|zone| {
            parse_recipient_timezone(zone).map_err(|error| {
                RequestError::new("invalid_recipient_timezone", format!("timezone: {error}"))
            })
        })
        .transpose()?;
    let wash = parse_wash(request)?;
    let consent = parse_consent(request)?;
    let exemption = request
        .exemption
        .as_deref()
        .map(|value| {
            Exemption::parse(value).ok_or_else(|| {
                RequestError::new(
                    "invalid_exemption",
                    "exemption must be government, charity, political or education",
                )
            })
        })
        .transpose()?;

    let zones = recipient_zones(explicit.as_ref(), &number.e164, number.number_type);
    let facts = ContactFacts {
        zones: &zones.candidates,
        wash,
        consent,
        exemption,
        suppressed: false,
        attempts_made: 0,
        max_attempts: 1,
    };
    let campaign = CampaignRules::defaults(call_type);
    let rules = Rules::default();
    let decision = rules.evaluate(&facts, &campaign, at);
    Ok(Response {
        allowed: decision.allowed(),
        reason: decision.blocked.map(|reason| reason.as_str()),
        zones: rules.explain_zones(&zones.candidates, &campaign, at),
        zone_source: zones.source.as_str(),
        next_eligible_at: decision.next_eligible_at.map(format_instant),
        clearance: decision.clearance.map(|clearance| clearance.as_str()),
    })
}

fn format_instant(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_call_type(value: Option<&str>) -> Result<CallType, RequestError> {
    let Some(value) = value else {
        return Err(RequestError::new(
            "invalid_call_type",
            "call_type is missing; use telemarketing, research or service",
        ));
    };
    CallType::parse(value).ok_or_else(|| {
        RequestError::new(
            "invalid_call_type",
            "call_type must be telemarketing, research or service",
        )
    })
}

fn parse_at(value: Option<&str>) -> Result<DateTime<Utc>, RequestError> {
    let Some(value) = value else {
        return Err(RequestError::new(
            "invalid_date",
            "at is missing; give the call's instant in RFC 3339, such as 2026-12-07T10:00:00+11:00",
        ));
    };
    DateTime::parse_from_rfc3339(value.trim())
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|_| RequestError::new("invalid_date", "at must be an RFC 3339 date-time with an offset, such as 2026-12-07T10:00:00+11:00"))
}

/// Parses an ISO date or date-time field the way the contact importer does.
fn parse_date_field(
    name: &str,
    value: Option<&str>,
) -> Result<Option<(DateTime<Utc>, chrono::NaiveDate)>, RequestError> {
    value
        .map(|value| {
            parse_iso_date_or_time(value).ok_or_else(|| {
                RequestError::new(
                    "invalid_date",
                    format!(
                        "{name} must be an ISO 8601 date (YYYY-MM-DD) or an RFC 3339 date-time"
                    ),
                )
            })
        })
        .transpose()
}

fn parse_wash(request: &Request) -> Result<Option<WashResult>, RequestError> {
    let checked_at = parse_date_field(
        "registry_checked_at",
        request.registry_checked_at.as_deref(),
    )?;
    let Some(status_text) = request.registry_status.as_deref() else {
        if checked_at.is_some() {
            return Err(RequestError::new(
                "invalid_registry_status",
                "registry_checked_at is given without registry_status",
            ));
        }
        return Ok(None);
    };
    let status = RegistryStatus::parse(status_text).ok_or_else(|| {
        RequestError::new(
            "invalid_registry_status",
            "registry_status must be not_registered, registered or invalid (or N, Y, I)",
        )
    })?;
    let Some((checked_at, _)) = checked_at else {
        return Err(RequestError::new(
            "missing_registry_checked_at",
            "registry_status needs registry_checked_at, because a wash result counts only through the 28th day after it was received",
        ));
    };
    Ok(Some(WashResult { status, checked_at }))
}

/// Consent as the contact importer accepts it: a type, and for express
/// consent a date given or a stated end.
fn parse_consent(request: &Request) -> Result<Option<Consent>, RequestError> {
    let given_on = parse_date_field("consent_given_at", request.consent_given_at.as_deref())?
        .map(|(_, date)| date);
    let expires_on = parse_date_field("consent_expires_at", request.consent_expires_at.as_deref())?
        .map(|(_, date)| date);
    let Some(type_text) = request.consent_type.as_deref() else {
        if given_on.is_some() || expires_on.is_some() {
            return Err(RequestError::new(
                "invalid_consent",
                "consent dates are given without consent_type (express or inferred)",
            ));
        }
        return Ok(None);
    };
    let consent_type = ConsentType::parse(type_text).ok_or_else(|| {
        RequestError::new(
            "invalid_consent",
            "consent_type must be express or inferred",
        )
    })?;
    if let (Some(given), Some(expires)) = (given_on, expires_on) {
        if expires < given {
            return Err(RequestError::new(
                "invalid_consent",
                "consent_expires_at is before consent_given_at",
            ));
        }
    }
    if consent_type == ConsentType::Express && given_on.is_none() && expires_on.is_none() {
        return Err(RequestError::new(
            "invalid_consent",
            "express consent needs consent_given_at (or consent_expires_at) so its period can be checked",
        ));
    }
    Ok(Some(Consent {
        consent_type,
        given_on,
        expires_on,
        withdrawn_at: None,
    }))
}
