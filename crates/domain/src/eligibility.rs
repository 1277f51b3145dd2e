//! The one answer to "may this contact be called now?": launch validation, the
//! dispatcher and the contact list all ask [`evaluate`].

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use utoipa::ToSchema;

use crate::calendar::{HolidayCalendar, HolidayKind};
use crate::evidence::{Consent, ConsentProblem, Exemption, RegistryStatus, WashResult};
use crate::hours::{minute_of_day, CallType, CallingWindow};
use crate::zone::CandidateZone;

/// Why a contact may not be called at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockReason {
    OutsideCallingWindow,
    PublicHoliday,
    CampaignWindowClosed,
    CalendarNotLoaded,
    DncrRegistered,
    DncrUnwashed,
    DncrWashExpired,
    DncrInvalid,
    ConsentExpired,
    ConsentWithdrawn,
    Suppressed,
    AttemptsExhausted,
}

impl BlockReason {
    pub const ALL: [BlockReason; 12] = [
        BlockReason::OutsideCallingWindow,
        BlockReason::PublicHoliday,
        BlockReason::CampaignWindowClosed,
        BlockReason::CalendarNotLoaded,
        BlockReason::DncrRegistered,
        BlockReason::DncrUnwashed,
        BlockReason::DncrWashExpired,
        BlockReason::DncrInvalid,
        BlockReason::ConsentExpired,
        BlockReason::ConsentWithdrawn,
        BlockReason::Suppressed,
        BlockReason::AttemptsExhausted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::OutsideCallingWindow => "outside_calling_window",
            BlockReason::PublicHoliday => "public_holiday",
            BlockReason::CampaignWindowClosed => "campaign_window_closed",
            BlockReason::CalendarNotLoaded => "calendar_not_loaded",
            BlockReason::DncrRegistered => "dncr_registered",
            BlockReason::DncrUnwashed => "dncr_unwashed",
            BlockReason::DncrWashExpired => "dncr_wash_expired",
            BlockReason::DncrInvalid => "dncr_invalid",
            BlockReason::ConsentExpired => "consent_expired",
            BlockReason::ConsentWithdrawn => "consent_withdrawn",
            BlockReason::Suppressed => "suppressed",
            BlockReason::AttemptsExhausted => "attempts_exhausted",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        BlockReason::ALL.into_iter().find(|reason| reason.as_str() == value)
    }

    /// Reasons that time alone can clear.
    pub fn is_temporary(self) -> bool {
        matches!(
            self,
            BlockReason::OutsideCallingWindow
                | BlockReason::PublicHoliday
                | BlockReason::CampaignWindowClosed
        )
    }
}

/// What allowed a call under the register rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Clearance {
    /// The call type needs no wash.
    NotRequired,
    /// A current `not_registered` wash result.
    Wash,
    /// Valid consent.
    Consent,
    /// A designated-call exemption.
    Exemption,
}

impl Clearance {
    pub fn as_str(self) -> &'static str {
        match self {
            Clearance::NotRequired => "not_required",
            Clearance::Wash => "wash",
            Clearance::Consent => "consent",
            Clearance::Exemption => "exemption",
        }
    }
}

/// The campaign settings the rules read.
#[derive(Debug, Clone)]
pub struct CampaignRules {
    pub call_type: CallType,
    /// The campaign's window; it is intersected with the legal hours, so a
    /// wider setting can never widen a call.
    pub window: CallingWindow,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// Block each recipient state's own holidays too (the conservative default).
    pub block_state_holidays: bool,
    pub exemption: Option<Exemption>,
}

impl CampaignRules {
    /// Default settings for a call type: its legal hours, no date limits,
    /// state holidays blocked.
    pub fn defaults(call_type: CallType) -> Self {
        Self {
            call_type,
            window: call_type.default_window(),
            start_date: None,
            end_date: None,
            block_state_holidays: true,
            exemption: None,
        }
    }

    /// The hours calls are placed in: the campaign window cut to the legal hours.
    pub fn effective_window(&self) -> CallingWindow {
        match self.call_type.legal_window() {
            Some(legal) => self.window.intersect(&legal),
            None => self.window,
        }
    }
}

/// The facts about one contact that the rules read.
#[derive(Debug, Clone)]
pub struct ContactFacts<'a> {
    pub zones: &'a [CandidateZone],
    pub wash: Option<WashResult>,
    pub consent: Option<Consent>,
    pub exemption: Option<Exemption>,
    pub suppressed: bool,
    pub attempts_made: u32,
    pub max_attempts: u32,
}

/// The answer for one contact at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// `None` when the call is allowed.
    pub blocked: Option<BlockReason>,
    /// What cleared the register rules, when they were cleared.
    pub clearance: Option<Clearance>,
    /// The instant the call is allowed from: the query instant when allowed,
    /// a later one when time alone clears the block, `None` when it never will.
    pub next_eligible_at: Option<DateTime<Utc>>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.blocked.is_none()
    }
}

/// The rule engine with its calendar.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'c> {
    pub calendar: &'c HolidayCalendar,
}

impl Default for Rules<'static> {
    fn default() -> Self {
        Self { calendar: HolidayCalendar::bundled() }
    }
}

/// The outcome of the time checks in one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneVerdict {
    Open,
    Closed(BlockReason),
}

/// How far ahead [`Rules::next_open`] searches, in days.
const SEARCH_DAYS: i64 = 400;

impl Rules<'_> {
    /// Decides whether a call to `contact` is allowed at `at`, and if not, why
    /// and from when.
    pub fn evaluate(
        &self,
        contact: &ContactFacts<'_>,
        campaign: &CampaignRules,
        at: DateTime<Utc>,
    ) -> Decision {
        if contact.suppressed {
            return never(BlockReason::Suppressed);
        }
        if contact.attempts_made >= contact.max_attempts {
            return never(BlockReason::AttemptsExhausted);
        }
        let clearance = match register_clearance(contact, campaign, at) {
            Ok(clearance) => clearance,
            Err(reason) => return never(reason),
        };
        let window = campaign.effective_window();
        for zone in contact.zones {
            if let ZoneVerdict::Closed(reason) = self.zone_verdict(zone, campaign, &window, at) {
                let next = self
                    .next_open(contact.zones, campaign, at)
                    .filter(|next| register_clearance(contact, campaign, *next).is_ok());
                return Decision { blocked: Some(reason), clearance: Some(clearance), next_eligible_at: next };
            }
        }
        Decision { blocked: None, clearance: Some(clearance), next_eligible_at: Some(at) }
    }

    /// The time checks for one zone at `at`: campaign dates, calendar coverage,
    /// holidays and hours, all on the zone's local date and time.
    pub fn zone_verdict(
        &self,
        zone: &CandidateZone,
        campaign: &CampaignRules,
        window: &CallingWindow,
        at: DateTime<Utc>,
    ) -> ZoneVerdict {
        let local = at.with_timezone(&zone.zone).naive_local();
        let date = local.date();
        if let Some(reason) = self.date_block(zone, campaign, date) {
            return ZoneVerdict::Closed(reason);
        }
        match window.for_weekday(date.weekday()) {
            Some(day) if day.contains_minute(minute_of_day(local.time())) => ZoneVerdict::Open,
            _ => ZoneVerdict::Closed(BlockReason::OutsideCallingWindow),
        }
    }

    fn date_block(
        &self,
        zone: &CandidateZone,
        campaign: &CampaignRules,
        date: NaiveDate,
    ) -> Option<BlockReason> {
        if campaign.start_date.is_some_and(|start| date < start)
            || campaign.end_date.is_some_and(|end| date > end)
        {
            return Some(BlockReason::CampaignWindowClosed);
        }
        if !self.calendar.covers(date) {
            return Some(BlockReason::CalendarNotLoaded);
        }
        self.calendar
            .blocking_holiday(date, zone.states, campaign.block_state_holidays)
            .map(|_: HolidayKind| BlockReason::PublicHoliday)
    }

    /// The earliest instant at or after `from` at which every zone is open, or
    /// `None` within [`SEARCH_DAYS`] (for example after the campaign's end date
    /// or past the loaded calendar).
    pub fn next_open(
        &self,
        zones: &[CandidateZone],
        campaign: &CampaignRules,
        from: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let window = campaign.effective_window();
        if window.is_empty() || zones.is_empty() {
            return None;
        }
        let mut at = from;
        // Each round moves `at` to the next opening of a zone that is closed;
        // once no zone moves it, all are open at `at`.
        for _ in 0..(zones.len() * 64) {
            let mut moved = false;
            for zone in zones {
                let open = self.zone_next_open(zone, campaign, &window, at)?;
                if open > at {
                    at = open;
                    moved = true;
                }
            }
            if !moved {
                return Some(at);
            }
        }
        None
    }

    /// The earliest instant at or after `from` at which one zone is open.
    fn zone_next_open(
        &self,
        zone: &CandidateZone,
        campaign: &CampaignRules,
        window: &CallingWindow,
        from: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let first_date = from.with_timezone(&zone.zone).date_naive();
        for offset in 0..SEARCH_DAYS {
            let date = first_date + chrono::Days::new(offset as u64);
            if campaign.end_date.is_some_and(|end| date > end) || date > self.calendar.coverage().1 {
                return None;
            }
            if self.date_block(zone, campaign, date).is_some() {
                continue;
            }
            let Some(day) = window.for_weekday(date.weekday()) else {
                continue;
            };
            let start = local_instant(zone.zone, date, day.start_minute());
            let end = local_instant(zone.zone, date, day.end_minute());
            if from < end {
                return Some(start.max(from));
            }
        }
        None
    }

    /// Local date, time and verdict in every candidate zone, for explanations.
    pub fn explain_zones(
        &self,
        zones: &[CandidateZone],
        campaign: &CampaignRules,
        at: DateTime<Utc>,
    ) -> Vec<ZoneExplanation> {
        let window = campaign.effective_window();
        zones
            .iter()
            .map(|zone| {
                let local = at.with_timezone(&zone.zone);
                let verdict = self.zone_verdict(zone, campaign, &window, at);
                ZoneExplanation {
                    zone: zone.zone.name(),
                    local_time: local.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                    allowed: verdict == ZoneVerdict::Open,
                    reason: match verdict {
                        ZoneVerdict::Open => None,
                        ZoneVerdict::Closed(reason) => Some(reason),
                    },
                }
            })
            .collect()
    }
}

/// One zone's part of an explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ZoneExplanation {
    pub zone: &'static str,
    pub local_time: String,
    pub allowed: bool,
    pub reason: Option<BlockReason>,
}

fn never(reason: BlockReason) -> Decision {
    Decision { blocked: Some(reason), clearance: None, next_eligible_at: None }
}

/// The register rules (DNCR Act s11): a telemarketing call without an
/// exemption needs valid consent or a current `not_registered` wash result.
fn register_clearance(
    contact: &ContactFacts<'_>,
    campaign: &CampaignRules,
    at: DateTime<Utc>,
) -> Result<Clearance, BlockReason> {
    if !campaign.call_type.needs_wash() {
        return Ok(Clearance::NotRequired);
    }
    if contact.exemption.is_some() || campaign.exemption.is_some() {
        return Ok(Clearance::Exemption);
    }
    let consent_problem = contact.consent.map(|consent| consent.problem_at(at));
    if consent_problem == Some(None) {
        return Ok(Clearance::Consent);
    }
    let Some(wash) = contact.wash else {
        return Err(consent_reason(consent_problem).unwrap_or(BlockReason::DncrUnwashed));
    };
    if !wash.is_current(at) {
        return Err(consent_reason(consent_problem).unwrap_or(BlockReason::DncrWashExpired));
    }
    match wash.status {
        RegistryStatus::NotRegistered => Ok(Clearance::Wash),
        RegistryStatus::Registered => {
            Err(consent_reason(consent_problem).unwrap_or(BlockReason::DncrRegistered))
        }
        RegistryStatus::Invalid => {
            Err(consent_reason(consent_problem).unwrap_or(BlockReason::DncrInvalid))
        }
    }
}

fn consent_reason(problem: Option<Option<ConsentProblem>>) -> Option<BlockReason> {
    match problem.flatten()? {
        ConsentProblem::Withdrawn => Some(BlockReason::ConsentWithdrawn),
        ConsentProblem::Expired | ConsentProblem::NotYetGiven => Some(BlockReason::ConsentExpired),
    }
}

/// The UTC instant of a local wall-clock minute. A minute that a daylight-saving
/// change skips maps to the first instant after the gap; a repeated minute maps
/// to its first occurrence.
pub fn local_instant(zone: Tz, date: NaiveDate, minute: u16) -> DateTime<Utc> {
    let midnight: NaiveDateTime = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    let local = midnight + chrono::Duration::minutes(i64::from(minute));
    match zone.from_local_datetime(&local) {
        LocalResult::Single(instant) => instant.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Walk forward minute by minute out of the gap (at most 60 minutes in Australia).
            let mut probe = local;
            for _ in 0..180 {
                probe += chrono::Duration::minutes(1);
                if let Some(instant) = zone.from_local_datetime(&probe).earliest() {
                    return instant.with_timezone(&Utc);
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::ConsentType;
    use crate::zone::{State, ANYWHERE};

    fn at_local(zone: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        zone.with_ymd_and_hms(y, m, d, h, min, 0)
            .earliest()
            .expect("valid local time")
            .with_timezone(&Utc)
    }

    fn sydney(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        at_local(Tz::Australia__Sydney, y, m, d, h, min)
    }

    const SYDNEY: [CandidateZone; 1] =
        [CandidateZone { zone: Tz::Australia__Sydney, states: &[State::Nsw] }];

    fn washed(zones: &[CandidateZone]) -> ContactFacts<'_> {
        ContactFacts {
            zones,
            wash: Some(WashResult {
                status: RegistryStatus::NotRegistered,
                checked_at: sydney(2026, 11, 20, 9, 0),
            }),
            consent: None,
            exemption: None,
            suppressed: false,
            attempts_made: 0,
            max_attempts: 3,
        }
    }

    fn telemarketing() -> CampaignRules {
        CampaignRules::defaults(CallType::Telemarketing)
    }

    fn rules() -> Rules<'static> {
        Rules::default()
    }

    #[test]
    fn weekday_inside_hours_is_allowed_by_wash() {
        let decision = rules().evaluate(&washed(&SYDNEY), &telemarketing(), sydney(2026, 12, 7, 10, 0));
        assert!(decision.allowed());
        assert_eq!(decision.clearance, Some(Clearance::Wash));
    }

    #[test]
    fn boundary_minutes_start_inclusive_end_exclusive() {
        let contact = washed(&SYDNEY);
        let campaign = telemarketing();
        assert!(!rules().evaluate(&contact, &campaign, sydney(2026, 12, 7, 8, 59)).allowed());
        assert!(rules().evaluate(&contact, &campaign, sydney(2026, 12, 7, 9, 0)).allowed());
        assert!(rules().evaluate(&contact, &campaign, sydney(2026, 12, 7, 19, 59)).allowed());
        let after = rules().evaluate(&contact, &campaign, sydney(2026, 12, 7, 20, 0));
        assert_eq!(after.blocked, Some(BlockReason::OutsideCallingWindow));
        assert_eq!(after.next_eligible_at, Some(sydney(2026, 12, 8, 9, 0)));
    }

    #[test]
    fn sunday_telemarketing_waits_for_monday() {
        let decision = rules().evaluate(&washed(&SYDNEY), &telemarketing(), sydney(2026, 12, 6, 11, 0));
        assert_eq!(decision.blocked, Some(BlockReason::OutsideCallingWindow));
        assert_eq!(decision.next_eligible_at, Some(sydney(2026, 12, 7, 9, 0)));
    }

    #[test]
    fn christmas_day_is_a_public_holiday() {
        let mut contact = washed(&SYDNEY);
        contact.wash = Some(WashResult {
            status: RegistryStatus::NotRegistered,
            checked_at: sydney(2026, 12, 20, 9, 0),
        });
        let decision = rules().evaluate(&contact, &telemarketing(), sydney(2026, 12, 25, 11, 0));
        assert_eq!(decision.blocked, Some(BlockReason::PublicHoliday));
        // Boxing Day is Saturday, Sunday has no telemarketing hours and NSW
        // observes Boxing Day again on Monday 28 December.
        assert_eq!(decision.next_eligible_at, Some(sydney(2026, 12, 29, 9, 0)));
    }

    #[test]
    fn mobile_during_daylight_saving_opens_at_noon_sydney() {
        let contact = washed(&ANYWHERE);
        let decision = rules().evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 10, 0));
        assert_eq!(decision.blocked, Some(BlockReason::OutsideCallingWindow));
        // 09:00 in Perth (UTC+8) is 12:00 in Sydney (UTC+11) in December.
        assert_eq!(decision.next_eligible_at, Some(sydney(2026, 12, 7, 12, 0)));
        assert!(rules().evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 19, 59)).allowed());
        assert!(!rules().evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 20, 0)).allowed());
    }

    #[test]
    fn registered_number_needs_consent() {
        let mut contact = washed(&SYDNEY);
        contact.wash = contact.wash.map(|w| WashResult { status: RegistryStatus::Registered, ..w });
        let at = sydney(2026, 12, 7, 10, 0);
        let decision = rules().evaluate(&contact, &telemarketing(), at);
        assert_eq!(decision.blocked, Some(BlockReason::DncrRegistered));
        assert_eq!(decision.next_eligible_at, None);

        contact.consent = Some(Consent {
            consent_type: ConsentType::Express,
            given_on: NaiveDate::from_ymd_opt(2026, 10, 1),
            expires_on: None,
            withdrawn_at: None,
        });
        let decision = rules().evaluate(&contact, &telemarketing(), at);
        assert_eq!(decision.clearance, Some(Clearance::Consent));
        assert!(decision.allowed());
    }

    #[test]
    fn stale_wash_blocks_after_day_w_plus_28() {
        let contact = washed(&SYDNEY);
        let decision = rules().evaluate(&contact, &telemarketing(), sydney(2026, 12, 21, 10, 0));
        assert_eq!(decision.blocked, Some(BlockReason::DncrWashExpired));
        assert_eq!(decision.next_eligible_at, None);
    }

    #[test]
    fn next_eligible_beyond_wash_expiry_is_none() {
        // Friday 18 December 20:30 is after hours; the next window is Saturday
        // 19 December, one day past the wash's last usable day.
        let decision = rules().evaluate(&washed(&SYDNEY), &telemarketing(), sydney(2026, 12, 18, 20, 30));
        assert_eq!(decision.blocked, Some(BlockReason::OutsideCallingWindow));
        assert_eq!(decision.next_eligible_at, None);
    }

    #[test]
    fn research_needs_no_wash() {
        let mut contact = washed(&SYDNEY);
        contact.wash = None;
        let decision = rules().evaluate(
            &contact,
            &CampaignRules::defaults(CallType::Research),
            sydney(2026, 12, 6, 11, 0),
        );
        assert!(decision.allowed(), "research may call on Sunday 09:00–17:00");
        assert_eq!(decision.clearance, Some(Clearance::NotRequired));
    }

    #[test]
    fn unwashed_telemarketing_is_blocked() {
        let mut contact = washed(&SYDNEY);
        contact.wash = None;
        let decision = rules().evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 10, 0));
        assert_eq!(decision.blocked, Some(BlockReason::DncrUnwashed));
    }

    #[test]
    fn exemption_clears_registered_number() {
        let mut contact = washed(&SYDNEY);
        contact.wash = None;
        contact.exemption = Some(Exemption::Charity);
        let decision = rules().evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 10, 0));
        assert_eq!(decision.clearance, Some(Clearance::Exemption));
        assert!(decision.allowed());
    }

    #[test]
    fn suppressed_and_exhausted_never_eligible() {
        let mut contact = washed(&SYDNEY);
        contact.suppressed = true;
        let decision = rules().evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 10, 0));
        assert_eq!(decision.blocked, Some(BlockReason::Suppressed));
        contact.suppressed = false;
        contact.attempts_made = 3;
        let decision = rules().evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 10, 0));
        assert_eq!(decision.blocked, Some(BlockReason::AttemptsExhausted));
        assert_eq!(decision.next_eligible_at, None);
    }

    #[test]
    fn campaign_dates_close_the_window() {
        let mut campaign = telemarketing();
        campaign.start_date = NaiveDate::from_ymd_opt(2026, 12, 9);
        campaign.end_date = NaiveDate::from_ymd_opt(2026, 12, 10);
        let before = rules().evaluate(&washed(&SYDNEY), &campaign, sydney(2026, 12, 7, 10, 0));
        assert_eq!(before.blocked, Some(BlockReason::CampaignWindowClosed));
        assert_eq!(before.next_eligible_at, Some(sydney(2026, 12, 9, 9, 0)));
        let after = rules().evaluate(&washed(&SYDNEY), &campaign, sydney(2026, 12, 11, 10, 0));
        assert_eq!(after.blocked, Some(BlockReason::CampaignWindowClosed));
        assert_eq!(after.next_eligible_at, None);
    }

    #[test]
    fn lord_howe_half_hour_daylight_saving() {
        let lord_howe = [CandidateZone { zone: Tz::Australia__Lord_Howe, states: &[State::Nsw] }];
        // In December Lord Howe is UTC+11, so 09:00 there is 22:00 UTC the day before.
        let open = at_local(Tz::Australia__Lord_Howe, 2026, 12, 7, 9, 0);
        assert_eq!(open.format("%H:%M").to_string(), "22:00");
        assert!(rules().evaluate(&washed(&lord_howe), &telemarketing(), open).allowed());
        // In July it is UTC+10:30, so 09:00 there is 22:30 UTC.
        let mut contact = washed(&lord_howe);
        contact.wash = None;
        let research = CampaignRules::defaults(CallType::Research);
        let winter = at_local(Tz::Australia__Lord_Howe, 2027, 7, 5, 9, 0);
        assert_eq!(winter.format("%H:%M").to_string(), "22:30");
        assert!(rules().evaluate(&contact, &research, winter).allowed());
        let early = rules().evaluate(&contact, &research, winter - chrono::Duration::minutes(1));
        assert_eq!(early.next_eligible_at, Some(winter));
    }

    #[test]
    fn local_instant_skips_daylight_saving_gap() {
        // Sydney clocks jump from 02:00 to 03:00 on 4 October 2026.
        let date = NaiveDate::from_ymd_opt(2026, 10, 4).expect("valid");
        let instant = local_instant(Tz::Australia__Sydney, date, 2 * 60 + 30);
        assert_eq!(instant, sydney(2026, 10, 4, 3, 0));
    }
}
