//! Builders for the rule tests: instants, zones, contacts and campaigns.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use outbound_domain::eligibility::{CampaignRules, ContactFacts, Decision, Rules};
use outbound_domain::evidence::{RegistryStatus, WashResult};
use outbound_domain::hours::CallType;
use outbound_domain::phone::{normalise, NumberPolicy};
use outbound_domain::zone::{
    candidates_for_number, parse_recipient_timezone, CandidateZone, RecipientZones,
};

/// Parses an RFC 3339 instant such as `2026-04-04T23:00:00Z`.
pub fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|error| panic!("invalid test instant {text}: {error}"))
        .with_timezone(&Utc)
}

/// Returns the instant of a local wall-clock time, the first one when it repeats.
pub fn local(zone: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    zone.with_ymd_and_hms(y, m, d, h, min, 0)
        .earliest()
        .unwrap_or_else(|| panic!("{y}-{m}-{d} {h}:{min} does not exist in {}", zone.name()))
        .with_timezone(&Utc)
}

pub fn sydney(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    local(Tz::Australia__Sydney, y, m, d, h, min)
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

pub fn minutes(count: i64) -> Duration {
    Duration::minutes(count)
}

/// Parses an explicit `recipient_timezone` (IANA name or state code) into its one candidate zone.
pub fn explicit(zone: &str) -> Vec<CandidateZone> {
    vec![parse_recipient_timezone(zone)
        .unwrap_or_else(|error| panic!("invalid test zone {zone}: {error}"))
        .candidate()]
}

/// Normalises a number and returns the candidate zones it implies when no zone is given.
pub fn zones_of_number(number: &str) -> RecipientZones {
    let number = normalise(number, NumberPolicy::default()).expect("valid test number");
    candidates_for_number(&number.e164, number.number_type)
}

pub fn zone_names(zones: &[CandidateZone]) -> Vec<&'static str> {
    zones.iter().map(|zone| zone.zone.name()).collect()
}

/// Builds a contact with a `not_registered` wash result received at `received`.
pub fn washed(zones: &[CandidateZone], received: DateTime<Utc>) -> ContactFacts<'_> {
    ContactFacts {
        zones,
        wash: Some(WashResult {
            status: RegistryStatus::NotRegistered,
            checked_at: received,
        }),
        consent: None,
        exemption: None,
        suppressed: false,
        attempts_made: 0,
        max_attempts: 3,
    }
}

/// Builds a contact with no register evidence, as research and service calls need none.
pub fn unwashed(zones: &[CandidateZone]) -> ContactFacts<'_> {
    ContactFacts {
        wash: None,
        ..washed(zones, utc("2026-01-01T00:00:00Z"))
    }
}

pub fn telemarketing() -> CampaignRules {
    CampaignRules::defaults(CallType::Telemarketing)
}

pub fn research() -> CampaignRules {
    CampaignRules::defaults(CallType::Research)
}

/// Builds the default rules of a call type with state holidays allowed, so a
/// test checks only national holidays and the days states substitute for them.
pub fn without_state_holidays(call_type: CallType) -> CampaignRules {
    CampaignRules {
        block_state_holidays: false,
        ..CampaignRules::defaults(call_type)
    }
}

pub fn evaluate(
    contact: &ContactFacts<'_>,
    campaign: &CampaignRules,
    at: DateTime<Utc>,
) -> Decision {
    Rules::default().evaluate(contact, campaign, at)
}
