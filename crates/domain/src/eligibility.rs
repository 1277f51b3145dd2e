//! The one answer to "may this contact be called now?": launch validation, the
//! dispatcher and the contact list all ask [`evaluate`].

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use utoipa::ToSchema;

use crate::calendar::{state_mask, HolidayCalendar, HolidayKind};
use crate::evidence::{Consent, ConsentProblem, Exemption, RegistryStatus, WashResult};
use crate::hours::{CallType, CallingWindow, DayWindow};
use crate::local_time::{self, day_number, SECONDS_PER_DAY};
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
        BlockReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == value)
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
        Self {
            calendar: HolidayCalendar::bundled(),
        }
    }
}

/// The outcome of the time checks in one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneVerdict {
    Open,
    Closed(BlockReason),
}

/// Ranks a closed zone's reason for when zones disagree: the campaign's dates
/// first, then the calendar's coverage, then holidays, then hours.
fn time_reason_rank(reason: BlockReason) -> u8 {
    match reason {
        BlockReason::CampaignWindowClosed => 3,
        BlockReason::CalendarNotLoaded => 2,
        BlockReason::PublicHoliday => 1,
        _ => 0,
    }
}

/// One campaign's time rules prepared for fast checks: dates as day numbers
/// (days since 1970-01-01) and the window's minutes by weekday.
struct TimeRules<'c> {
    calendar: &'c HolidayCalendar,
    /// Start and end minute of each weekday's window, Monday first.
    days: [Option<(u16, u16)>; 7],
    start_day: Option<i64>,
    end_day: Option<i64>,
    block_state_holidays: bool,
}

impl<'c> TimeRules<'c> {
    fn new(
        calendar: &'c HolidayCalendar,
        campaign: &CampaignRules,
        window: &CallingWindow,
    ) -> Self {
        let minutes =
            |day: Option<DayWindow>| day.map(|day| (day.start_minute(), day.end_minute()));
        let weekdays = minutes(window.weekdays);
        Self {
            calendar,
            days: [
                weekdays,
                weekdays,
                weekdays,
                weekdays,
                weekdays,
                minutes(window.saturday),
                minutes(window.sunday),
            ],
            start_day: campaign.start_date.map(day_number),
            end_day: campaign.end_date.map(day_number),
            block_state_holidays: campaign.block_state_holidays,
        }
    }

    fn is_empty(&self) -> bool {
        self.days.iter().all(Option::is_none)
    }

    /// Why a zone's local day is closed all day, if it is: outside the
    /// campaign's dates, outside the loaded calendar or a public holiday.
    fn day_block(&self, day: i64, states: u8) -> Option<BlockReason> {
        if self.start_day.is_some_and(|start| day < start)
            || self.end_day.is_some_and(|end| day > end)
        {
            return Some(BlockReason::CampaignWindowClosed);
        }
        if !self.calendar.covers_day(day) {
            return Some(BlockReason::CalendarNotLoaded);
        }
        self.calendar
            .blocking_holiday_on_day(day, states, self.block_state_holidays)
            .map(|_: HolidayKind| BlockReason::PublicHoliday)
    }

    /// Checks the time rules of one zone at UTC second `at`.
    fn verdict(&self, zone: &CandidateZone, at: i64) -> ZoneVerdict {
        let local = local_time::to_local(zone.zone, at);
        let day = local.div_euclid(SECONDS_PER_DAY);
        if let Some(reason) = self.day_block(day, state_mask(zone.states)) {
            return ZoneVerdict::Closed(reason);
        }
        let minute = (local.rem_euclid(SECONDS_PER_DAY) / 60) as u16;
        match self.days[local_time::weekday_index(day)] {
            Some((start, end)) if start <= minute && minute < end => ZoneVerdict::Open,
            _ => ZoneVerdict::Closed(BlockReason::OutsideCallingWindow),
        }
    }

    /// Finds the first stretch `[open, close)` of UTC seconds in which one
    /// zone is open and that ends after `at`. The stretch contains `at` when
    /// the zone is open then. Returns `None` when the zone does not open again
    /// within the campaign's dates and the loaded calendar.
    ///
    /// NOTE: a window that ends inside the hour a daylight-saving change
    /// repeats (02:00–03:00 in most zones) closes at the first pass of that
    /// time, while [`Self::verdict`] also opens the repeated minutes. Legal
    /// hours start at 09:00, so only a service campaign's own window can do this.
    fn open_stretch(&self, zone: &CandidateZone, at: i64) -> Option<(i64, i64)> {
        let states = state_mask(zone.states);
        let (first_loaded, last_loaded) = self.calendar.coverage_days();
        let last_day = self.end_day.map_or(last_loaded, |end| end.min(last_loaded));
        let local_day = local_time::to_local(zone.zone, at).div_euclid(SECONDS_PER_DAY);
        let first_day = local_day
            .max(first_loaded)
            .max(self.start_day.unwrap_or(i64::MIN));
        for day in first_day..=last_day {
            let Some((start, end)) = self.days[local_time::weekday_index(day)] else {
                continue;
            };
            if self.day_block(day, states).is_some() {
                continue;
            }
            let midnight = day * SECONDS_PER_DAY;
            let close = local_time::to_utc(zone.zone, midnight + i64::from(end) * 60);
            if at < close {
                let open = local_time::to_utc(zone.zone, midnight + i64::from(start) * 60);
                return Some((open, close));
            }
        }
        None
    }

    /// Finds the earliest instant at or after `from` at which every zone is open.
    fn next_open(&self, zones: &[CandidateZone], from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_empty() || zones.is_empty() {
            return None;
        }

        let from_second = from.timestamp();
        // Each zone's current stretch, so a zone that is still open is not
        // recomputed. Zones past the first STRETCHES are recomputed each round.
        const STRETCHES: usize = 16;
        let mut stretches = [(0i64, i64::MIN); STRETCHES];
        let mut at = from_second;

        // Each round moves `at` to the latest opening of a closed zone; no
        // zone is open in between, so no common instant is skipped. `at`
        // only grows, and `open_stretch` ends at the last loaded day, so the
        // loop ends.
        loop {
            let mut latest_open = at;
            for (index, zone) in zones.iter().enumerate() {
                let (open, _) = match stretches.get(index) {
                    Some(&(open, close)) if close > at => (open, close),
                    _ => {
                        let stretch = self.open_stretch(zone, at)?;
                        if let Some(slot) = stretches.get_mut(index) {
                            *slot = stretch;
                        }
                        stretch
                    }
                };
                latest_open = latest_open.max(open);
            }
            if latest_open == at {
                break;
            }
            at = latest_open;
        }

        if at == from_second {
            // Every zone is open in the second of `from`, so at `from` itself.
            Some(from)
        } else {
            DateTime::from_timestamp(at, 0)
        }
    }
}

impl Rules<'_> {
    /// Decides whether a call to `contact` is allowed at `at`, and if not, why
    /// and from when.
    ///
    /// The contact's own blocks come first: suppression, attempts, then the
    /// register rules. When those pass and a candidate zone is closed, the
    /// reason depends on the closed zones. It is `campaign_window_closed` if
    /// any zone is outside the campaign's dates, else `calendar_not_loaded` if
    /// any zone's local date is outside the loaded calendar. Otherwise it is
    /// `public_holiday` if any zone's local date is a blocking holiday, and
    /// `outside_calling_window` if none is.
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
        let time_rules = TimeRules::new(self.calendar, campaign, &window);
        let at_second = at.timestamp();
        let mut blocked: Option<BlockReason> = None;
        for zone in contact.zones {
            if let ZoneVerdict::Closed(reason) = time_rules.verdict(zone, at_second) {
                if blocked.is_none_or(|worst| time_reason_rank(reason) > time_reason_rank(worst)) {
                    blocked = Some(reason);
                }
            }
        }
        if blocked.is_none() && !contact.zones.is_empty() {
            return Decision {
                blocked: None,
                clearance: Some(clearance),
                next_eligible_at: Some(at),
            };
        }

        // A contact without zones cannot be checked against any local time.
        let blocked = blocked.unwrap_or(BlockReason::OutsideCallingWindow);
        // Wash currency and consent only lapse as time passes. So if the
        // clearance is still valid at the next opening, it is valid at every
        // instant up to it.
        let next = time_rules
            .next_open(contact.zones, at)
            .filter(|next| register_clearance(contact, campaign, *next).is_ok());
        Decision {
            blocked: Some(blocked),
            clearance: Some(clearance),
            next_eligible_at: next,
        }
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
        TimeRules::new(self.calendar, campaign, window).verdict(zone, at.timestamp())
    }

    /// Finds the earliest instant at or after `from` at which every zone is
    /// open. Returns `None` if there is none within the campaign's dates and
    /// the loaded calendar.
    pub fn next_open(
        &self,
        zones: &[CandidateZone],
        campaign: &CampaignRules,
        from: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let window = campaign.effective_window();
        TimeRules::new(self.calendar, campaign, &window).next_open(zones, from)
    }

    /// Local date, time and verdict in every candidate zone, for explanations.
    pub fn explain_zones(
        &self,
        zones: &[CandidateZone],
        campaign: &CampaignRules,
        at: DateTime<Utc>,
    ) -> Vec<ZoneExplanation> {
        let window = campaign.effective_window();
        let time_rules = TimeRules::new(self.calendar, campaign, &window);
        zones
            .iter()
            .map(|zone| {
                let local = at.with_timezone(&zone.zone);
                let verdict = time_rules.verdict(zone, at.timestamp());
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
    Decision {
        blocked: Some(reason),
        clearance: None,
        next_eligible_at: None,
    }
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
    // A result received after the day of the call cannot have cleared it.
    let Some(wash) = contact.wash.filter(|wash| wash.received_by(at)) else {
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
    let local = day_number(date) * SECONDS_PER_DAY + i64::from(minute) * 60;
    DateTime::from_timestamp(local_time::to_utc(zone, local), 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::ConsentType;
    use crate::zone::{State, ANYWHERE};
    use chrono::TimeZone;

    fn at_local(zone: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        zone.with_ymd_and_hms(y, m, d, h, min, 0)
            .earliest()
            .expect("valid local time")
            .with_timezone(&Utc)
    }

    fn sydney(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        at_local(Tz::Australia__Sydney, y, m, d, h, min)
    }

    const SYDNEY: [CandidateZone; 1] = [CandidateZone {
        zone: Tz::Australia__Sydney,
        states: &[State::Nsw],
    }];

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
        let decision = rules().evaluate(
            &washed(&SYDNEY),
            &telemarketing(),
            sydney(2026, 12, 7, 10, 0),
        );
        assert!(decision.allowed());
        assert_eq!(decision.clearance, Some(Clearance::Wash));
    }

    #[test]
    fn boundary_minutes_start_inclusive_end_exclusive() {
        let contact = washed(&SYDNEY);
        let campaign = telemarketing();
        assert!(!rules()
            .evaluate(&contact, &campaign, sydney(2026, 12, 7, 8, 59))
            .allowed());
        assert!(rules()
            .evaluate(&contact, &campaign, sydney(2026, 12, 7, 9, 0))
            .allowed());
        assert!(rules()
            .evaluate(&contact, &campaign, sydney(2026, 12, 7, 19, 59))
            .allowed());
        let after = rules().evaluate(&contact, &campaign, sydney(2026, 12, 7, 20, 0));
        assert_eq!(after.blocked, Some(BlockReason::OutsideCallingWindow));
        assert_eq!(after.next_eligible_at, Some(sydney(2026, 12, 8, 9, 0)));
    }

    #[test]
    fn sunday_telemarketing_waits_for_monday() {
        let decision = rules().evaluate(
            &washed(&SYDNEY),
            &telemarketing(),
            sydney(2026, 12, 6, 11, 0),
        );
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
        assert!(rules()
            .evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 19, 59))
            .allowed());
        assert!(!rules()
            .evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 20, 0))
            .allowed());
    }

    #[test]
    fn registered_number_needs_consent() {
        let mut contact = washed(&SYDNEY);
        contact.wash = contact.wash.map(|w| WashResult {
            status: RegistryStatus::Registered,
            ..w
        });
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
        let decision = rules().evaluate(
            &washed(&SYDNEY),
            &telemarketing(),
            sydney(2026, 12, 18, 20, 30),
        );
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
        assert!(
            decision.allowed(),
            "research may call on Sunday 09:00–17:00"
        );
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
        let lord_howe = [CandidateZone {
            zone: Tz::Australia__Lord_Howe,
            states: &[State::Nsw],
        }];
        // In December Lord Howe is UTC+11, so 09:00 there is 22:00 UTC the day before.
        let open = at_local(Tz::Australia__Lord_Howe, 2026, 12, 7, 9, 0);
        assert_eq!(open.format("%H:%M").to_string(), "22:00");
        assert!(rules()
            .evaluate(&washed(&lord_howe), &telemarketing(), open)
            .allowed());
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
