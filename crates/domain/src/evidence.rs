//! Do Not Call Register wash results, consent and designated-call exemptions.

use chrono::{DateTime, Days, Months, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::local_time;

/// The zone whose calendar days count for wash currency.
pub const WASH_DAY_ZONE: Tz = Tz::Australia__Sydney;

/// A result received on day W (Australia/Sydney) is usable through day W + 28.
///
/// DNCR Act 2006 s11(3) protects a call only when the register was checked
/// within the 30 days that end at the end of the day of the call; 28 days
/// keeps a margin for the day the result was received and zone differences.
pub const WASH_VALID_DAYS: u64 = 28;

/// Returns the Australia/Sydney day of an instant as a day number.
fn wash_day(at: DateTime<Utc>) -> i64 {
    let local = local_time::to_local(WASH_DAY_ZONE, at.timestamp());
    local.div_euclid(local_time::SECONDS_PER_DAY)
}

/// Express consent given without a stated period lapses after three months.
pub const EXPRESS_CONSENT_MONTHS: u32 = 3;

/// A number's result from a register wash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegistryStatus {
    NotRegistered,
    Registered,
    Invalid,
}

impl RegistryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryStatus::NotRegistered => "not_registered",
            RegistryStatus::Registered => "registered",
            RegistryStatus::Invalid => "invalid",
        }
    }

    /// Parses the stored names, the wash file letters (`N`, `Y`, `I`) and words.
    pub fn parse(value: &str) -> Option<Self> {
        match value
            .trim()
            .to_ascii_lowercase()
            .replace([' ', '-'], "_")
            .as_str()
        {
            "not_registered" | "n" | "no" | "notregistered" => Some(RegistryStatus::NotRegistered),
            "registered" | "y" | "yes" => Some(RegistryStatus::Registered),
            "invalid" | "i" => Some(RegistryStatus::Invalid),
            _ => None,
        }
    }

    /// Ranks a result by how strict it is for compliance: `registered`, then
    /// `invalid`, then `not_registered`. Only `not_registered` clears a call,
    /// and a number registered anywhere in a file is registered.
    pub fn strictness(self) -> u8 {
        match self {
            RegistryStatus::NotRegistered => 0,
            RegistryStatus::Invalid => 1,
            RegistryStatus::Registered => 2,
        }
    }

    /// Returns the stricter of two results for one number (see [`Self::strictness`]).
    pub fn stricter(self, other: Self) -> Self {
        if other.strictness() > self.strictness() {
            other
        } else {
            self
        }
    }
}

/// A wash result for one contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WashResult {
    pub status: RegistryStatus,
    /// When the result was received from the register.
    pub checked_at: DateTime<Utc>,
}

impl WashResult {
    /// The last Australia/Sydney day on which this result may be relied on.
    pub fn last_usable_day(&self) -> NaiveDate {
        let received = self.checked_at.with_timezone(&WASH_DAY_ZONE).date_naive();
        received + Days::new(WASH_VALID_DAYS)
    }

    /// Checks whether the result is current at `at`, that is whether `at`
    /// falls on day W through W + 28 (Australia/Sydney). A result received on
    /// a later day than the call is outside the 30-day period that ends with
    /// the day of the call, so it does not count.
    pub fn is_current(&self, at: DateTime<Utc>) -> bool {
        self.received_by(at) && wash_day(at) - wash_day(self.checked_at) <= WASH_VALID_DAYS as i64
    }

    /// Checks whether the result was received on or before the Australia/Sydney
    /// day of `at`, so a call at `at` may rely on it.
    pub fn received_by(&self, at: DateTime<Utc>) -> bool {
        wash_day(self.checked_at) <= wash_day(at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentType {
    Express,
    Inferred,
}

impl ConsentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentType::Express => "express",
            ConsentType::Inferred => "inferred",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "express" => Some(ConsentType::Express),
            "inferred" => Some(ConsentType::Inferred),
            _ => None,
        }
    }
}

/// A consent record a call may rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent {
    pub consent_type: ConsentType,
    pub given_on: Option<NaiveDate>,
    /// The stated end of the consent, inclusive.
    pub expires_on: Option<NaiveDate>,
    pub withdrawn_at: Option<DateTime<Utc>>,
}

/// Why a consent record cannot be relied on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentProblem {
    Expired,
    Withdrawn,
    NotYetGiven,
}

impl Consent {
    /// The last Australia/Sydney day the consent covers, if it lapses.
    pub fn last_covered_day(&self) -> Option<NaiveDate> {
        if let Some(expires) = self.expires_on {
            return Some(expires);
        }
        match (self.consent_type, self.given_on) {
            (ConsentType::Express, Some(given)) => given
                .checked_add_months(Months::new(EXPRESS_CONSENT_MONTHS))
                .and_then(|lapse| lapse.pred_opt()),
            _ => None,
        }
    }

    /// Checks the consent at `at`; days count in Australia/Sydney.
    pub fn problem_at(&self, at: DateTime<Utc>) -> Option<ConsentProblem> {
        if self.withdrawn_at.is_some_and(|withdrawn| withdrawn <= at) {
            return Some(ConsentProblem::Withdrawn);
        }
        let today = local_time::date_of_day(wash_day(at)).unwrap_or(NaiveDate::MAX);
        if self.given_on.is_some_and(|given| given > today) {
            return Some(ConsentProblem::NotYetGiven);
        }
        match self.last_covered_day() {
            Some(last) if today > last => Some(ConsentProblem::Expired),
            _ => None,
        }
    }
}

/// Designated telemarketing calls exempt from the register (DNCR Act Schedule 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Exemption {
    Government,
    Charity,
    Political,
    Education,
}

impl Exemption {
    pub fn as_str(self) -> &'static str {
        match self {
            Exemption::Government => "government",
            Exemption::Charity => "charity",
            Exemption::Political => "political",
            Exemption::Education => "education",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "government" => Some(Exemption::Government),
            "charity" => Some(Exemption::Charity),
            "political" => Some(Exemption::Political),
            "education" => Some(Exemption::Education),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sydney(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        WASH_DAY_ZONE
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("unambiguous local time")
            .with_timezone(&Utc)
    }

    #[test]
    fn wash_usable_through_day_w_plus_28() {
        let wash = WashResult {
            status: RegistryStatus::NotRegistered,
            checked_at: sydney(2026, 11, 20, 10, 0),
        };
        assert!(wash.is_current(sydney(2026, 12, 18, 23, 59)));
        assert!(!wash.is_current(sydney(2026, 12, 19, 0, 0)));
    }

    #[test]
    fn wash_received_after_the_call_day_is_not_current() {
        let wash = WashResult {
            status: RegistryStatus::NotRegistered,
            checked_at: sydney(2026, 11, 20, 10, 0),
        };
        assert!(!wash.is_current(sydney(2026, 11, 19, 23, 59)));
        // Earlier on the day the result arrives is inside the Act's period.
        assert!(wash.is_current(sydney(2026, 11, 20, 9, 0)));
    }

    #[test]
    fn wash_day_counts_in_sydney_not_utc() {
        // 2026-11-19 14:30 UTC is already 20 November in Sydney (UTC+11).
        let checked_at = Utc
            .with_ymd_and_hms(2026, 11, 19, 14, 30, 0)
            .single()
            .expect("valid");
        let wash = WashResult {
            status: RegistryStatus::NotRegistered,
            checked_at,
        };
        assert_eq!(
            wash.last_usable_day(),
            NaiveDate::from_ymd_opt(2026, 12, 18).expect("valid")
        );
    }

    #[test]
    fn express_consent_lapses_after_three_months() {
        let consent = Consent {
            consent_type: ConsentType::Express,
            given_on: NaiveDate::from_ymd_opt(2026, 10, 1),
            expires_on: None,
            withdrawn_at: None,
        };
        assert_eq!(consent.problem_at(sydney(2026, 12, 31, 12, 0)), None);
        assert_eq!(
            consent.problem_at(sydney(2027, 1, 1, 12, 0)),
            Some(ConsentProblem::Expired)
        );
    }

    #[test]
    fn stated_expiry_overrides_three_months() {
        let consent = Consent {
            consent_type: ConsentType::Express,
            given_on: NaiveDate::from_ymd_opt(2026, 10, 1),
            expires_on: NaiveDate::from_ymd_opt(2027, 6, 30),
            withdrawn_at: None,
        };
        assert_eq!(consent.problem_at(sydney(2027, 6, 30, 12, 0)), None);
        assert_eq!(
            consent.problem_at(sydney(2027, 7, 1, 9, 0)),
            Some(ConsentProblem::Expired)
        );
    }

    #[test]
    fn withdrawn_consent_is_not_relied_on() {
        let consent = Consent {
            consent_type: ConsentType::Inferred,
            given_on: NaiveDate::from_ymd_opt(2026, 10, 1),
            expires_on: None,
            withdrawn_at: Some(sydney(2026, 11, 1, 9, 0)),
        };
        assert_eq!(
            consent.problem_at(sydney(2026, 11, 2, 9, 0)),
            Some(ConsentProblem::Withdrawn)
        );
    }

    #[test]
    fn registry_status_letters_and_words() {
        assert_eq!(
            RegistryStatus::parse("N"),
            Some(RegistryStatus::NotRegistered)
        );
        assert_eq!(RegistryStatus::parse("y"), Some(RegistryStatus::Registered));
        assert_eq!(RegistryStatus::parse("I"), Some(RegistryStatus::Invalid));
        assert_eq!(
            RegistryStatus::parse("Not Registered"),
            Some(RegistryStatus::NotRegistered)
        );
        assert_eq!(RegistryStatus::parse("maybe"), None);
    }
}
