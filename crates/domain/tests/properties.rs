//! Property tests of number normalisation and the eligibility rules.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use outbound_domain::calendar::HolidayCalendar;
use outbound_domain::eligibility::{BlockReason, CampaignRules, ContactFacts, Rules};
use outbound_domain::evidence::{Exemption, RegistryStatus, WashResult};
use outbound_domain::hours::{CallType, CallingWindow};
use outbound_domain::phone::{normalise, NumberPolicy, NumberType, NumberWarning};
use outbound_domain::zone::{parse_recipient_timezone, CandidateZone, ZoneGroup};
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/// Characters that may separate digit groups: spaces, dots, hyphens, Unicode
/// dashes, non-breaking and thin spaces, brackets, slashes and tabs.
const SEPARATORS: [char; 21] = [
    ' ', '.', '-', '(', ')', '/', '\t', '\u{00a0}', '\u{2007}', '\u{2009}', '\u{202f}', '\u{2010}',
    '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2015}', '\u{2212}', '\u{fe58}', '\u{fe63}',
    '\u{ff0d}',
];

/// National significant numbers (without the trunk 0) from ACMA's fictitious
/// ranges: mobiles 0491 570 006, 156-159, 110, 313, 737 and 0491 571 000 to
/// 0491 579 999; landlines (02|03|07|08) 5550 xxxx and 7010 xxxx.
fn fictitious_number() -> impl Strategy<Value = String> {
    prop_oneof![
        select(&["006", "156", "157", "158", "159", "110", "313", "737"][..])
            .prop_map(|last| format!("491570{last}")),
        (1u32..=9, 0u32..1000).prop_map(|(block, last)| format!("49157{block}{last:03}")),
        (
            select(&["2", "3", "7", "8"][..]),
            select(&["5550", "7010"][..]),
            0u32..10_000
        )
            .prop_map(|(area, exchange, line)| format!("{area}{exchange}{line:04}")),
    ]
}

/// Writes the number in one accepted style, before separators are added.
fn styled(nsn: &str, style: usize) -> String {
    match style {
        0 => format!("0{nsn}"),
        1 => format!("+61{nsn}"),
        2 => format!("61{nsn}"),
        3 => format!("0061{nsn}"),
        4 => format!("0011 61{nsn}"),
        5 => format!("+61(0){nsn}"),
        6 => format!("+610{nsn}"),
        // The area code or the mobile prefix in brackets: (02) 5550 1234, (0491) 571 234.
        _ => {
            let split = if nsn.starts_with('4') { 3 } else { 1 };
            format!("(0{}){}", &nsn[..split], &nsn[split..])
        }
    }
}

/// Inserts a run of separators after the characters chosen by `gaps`, and
/// pads with whitespace. A dot never goes right before the last digit,
/// because `…12.0` is read as a spreadsheet's trailing `.0`.
fn with_separators(text: &str, gaps: &[(usize, Vec<char>)]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::from(" ");
    for (index, c) in chars.iter().enumerate() {
        out.push(*c);
        if index + 1 == chars.len() {
            break;
        }
        for (position, run) in gaps {
            if *position % chars.len() == index {
                for separator in run {
                    if *separator == '.' && index + 2 == chars.len() {
                        continue;
                    }
                    out.push(*separator);
                }
            }
        }
    }
    out.push('\u{00a0}');
    out
}

fn separator_gaps() -> impl Strategy<Value = Vec<(usize, Vec<char>)>> {
    prop::collection::vec(
        (
            0usize..32,
            prop::collection::vec(select(&SEPARATORS[..]), 1..3),
        ),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_accepted_style_normalises_alike(
        nsn in fictitious_number(),
        styles in prop::collection::vec(0usize..8, 2..5),
        gaps in separator_gaps(),
    ) {
        let expected = format!("+61{nsn}");
        let expected_type = if nsn.starts_with('4') { NumberType::Mobile } else { NumberType::Geographic };
        for style in styles {
            let text = with_separators(&styled(&nsn, style), &gaps);
            let number = normalise(&text, NumberPolicy::default());
            prop_assert!(number.is_ok(), "{text:?} rejected: {number:?}");
            let number = number.expect("checked above");
            prop_assert_eq!(number.e164.as_str(), expected.as_str(), "{:?}", text);
            prop_assert_eq!(number.number_type, expected_type, "{:?}", text);
            prop_assert!(number.warnings.is_empty(), "{text:?}: {:?}", number.warnings);
        }
    }

    #[test]
    fn dropped_trunk_zero_is_restored(nsn in fictitious_number(), gaps in separator_gaps()) {
        let text = with_separators(&nsn, &gaps);
        let number = normalise(&text, NumberPolicy::default());
        prop_assert!(number.is_ok(), "{text:?} rejected: {number:?}");
        let number = number.expect("checked above");
        prop_assert_eq!(number.e164.as_str(), format!("+61{nsn}"));
        prop_assert_eq!(number.warnings, vec![NumberWarning::TrunkZeroRestored]);
    }

    #[test]
    fn normalise_never_panics(text in any::<String>(), allow_non_geographic in any::<bool>()) {
        check_normalise_output(&text, allow_non_geographic)?;
    }

    #[test]
    fn normalise_never_panics_on_number_like_text(
        text in "[0-9+()\\-. eE\u{00a0}\u{2013}\u{feff}a-c]{0,24}",
        allow_non_geographic in any::<bool>(),
    ) {
        check_normalise_output(&text, allow_non_geographic)?;
    }
}

/// Checks that, whatever the input, the result is an error or a `+61` number of digits.
fn check_normalise_output(text: &str, allow_non_geographic: bool) -> Result<(), TestCaseError> {
    if let Ok(number) = normalise(
        text,
        NumberPolicy {
            allow_non_geographic,
        },
    ) {
        let digits = number.e164.as_str().strip_prefix("+61");
        prop_assert!(
            digits.is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit())),
            "{text:?}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Eligibility
// ---------------------------------------------------------------------------

const EXPLICIT_ZONES: [&str; 20] = [
    "Australia/Sydney",
    "Australia/Melbourne",
    "Australia/Brisbane",
    "Australia/Adelaide",
    "Australia/Broken_Hill",
    "Australia/Darwin",
    "Australia/Perth",
    "Australia/Eucla",
    "Australia/Hobart",
    "Australia/Lord_Howe",
    "Indian/Christmas",
    "Indian/Cocos",
    "NSW",
    "VIC",
    "QLD",
    "SA",
    "WA",
    "TAS",
    "NT",
    "ACT",
];

/// Generates a candidate-zone set: one of the number groups or an explicit zone.
fn candidate_set() -> impl Strategy<Value = Vec<CandidateZone>> {
    prop_oneof![
        select(&ZoneGroup::ALL[..]).prop_map(|group| group.candidates().to_vec()),
        select(&EXPLICIT_ZONES[..]).prop_map(|name| {
            vec![parse_recipient_timezone(name)
                .expect("valid zone")
                .candidate()]
        }),
    ]
}

/// Generates an instant in 2026-2028, to the second.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2026-01-01T00:00:00Z to 2029-01-01T00:00:00Z.
    (1_767_225_600i64..1_861_920_000)
        .prop_map(|second| DateTime::from_timestamp(second, 0).expect("in range"))
}

fn call_type() -> impl Strategy<Value = CallType> {
    select(
        &[
            CallType::Telemarketing,
            CallType::Research,
            CallType::Service,
        ][..],
    )
}

/// Default rules, sometimes without state holidays and sometimes limited to
/// a stretch of dates.
fn campaign() -> impl Strategy<Value = CampaignRules> {
    (
        call_type(),
        any::<bool>(),
        prop::option::weighted(0.3, (0u64..1096, 0u64..60)),
    )
        .prop_map(|(call_type, block_state_holidays, dates)| {
            let first = NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid");
            let (start_date, end_date) = match dates {
                Some((offset, length)) => {
                    let start = first + chrono::Days::new(offset);
                    (Some(start), Some(start + chrono::Days::new(length)))
                }
                None => (None, None),
            };
            CampaignRules {
                block_state_holidays,
                start_date,
                end_date,
                ..CampaignRules::defaults(call_type)
            }
        })
}

fn rank(reason: BlockReason) -> u8 {
    match reason {
        BlockReason::CampaignWindowClosed => 3,
        BlockReason::CalendarNotLoaded => 2,
        BlockReason::PublicHoliday => 1,
        _ => 0,
    }
}

/// Returns the documented legal hours, written out here rather than read
/// from the crate's data file.
fn documented_window(call_type: CallType) -> CallingWindow {
    match call_type {
        CallType::Research => CallingWindow::RESEARCH,
        CallType::Telemarketing | CallType::Service => CallingWindow::TELEMARKETING,
    }
}

/// Computes the time checks of one zone with chrono-tz and the calendar's
/// holiday names only.
fn oracle_zone(
    calendar: &HolidayCalendar,
    zone: &CandidateZone,
    campaign: &CampaignRules,
    at: DateTime<Utc>,
) -> Option<BlockReason> {
    let local = at.with_timezone(&zone.zone).naive_local();
    let date = local.date();
    if campaign.start_date.is_some_and(|start| date < start)
        || campaign.end_date.is_some_and(|end| date > end)
    {
        return Some(BlockReason::CampaignWindowClosed);
    }
    if !calendar.covers(date) {
        return Some(BlockReason::CalendarNotLoaded);
    }
    let holiday = calendar
        .names_on(date)
        .into_iter()
        .any(|(jurisdiction, name)| {
            let in_state = zone.states.iter().any(|state| state.code() == jurisdiction);
            let substitute = calendar_kind(jurisdiction, name, date) == "substitute";
            jurisdiction == "AU" || (in_state && (substitute || campaign.block_state_holidays))
        });
    if holiday {
        return Some(BlockReason::PublicHoliday);
    }
    let minute = (local.hour() * 60 + local.minute()) as u16;
    match documented_window(campaign.call_type).for_weekday(date.weekday()) {
        Some(day) if day.start_minute() <= minute && minute < day.end_minute() => None,
        _ => Some(BlockReason::OutsideCallingWindow),
    }
}

/// Reads the `kind` column of a holiday row from the bundled file.
fn calendar_kind(jurisdiction: &str, name: &str, date: NaiveDate) -> &'static str {
    let prefix = format!("{date},{jurisdiction},");
    let line = outbound_domain::calendar::HOLIDAYS_CSV
        .lines()
        .find(|line| line.starts_with(&prefix) && line.contains(name.trim_matches('"')))
        .unwrap_or_default();
    if line.contains(",substitute,") {
        "substitute"
    } else if line.contains(",national,") {
        "national"
    } else {
        "state"
    }
}

fn exempt(zones: &[CandidateZone]) -> ContactFacts<'_> {
    ContactFacts {
        zones,
        wash: None,
        consent: None,
        exemption: Some(Exemption::Charity),
        suppressed: false,
        attempts_made: 0,
        max_attempts: 3,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn allowed_exactly_when_every_zone_is_open(
        zones in candidate_set(),
        campaign in campaign(),
        at in instant(),
    ) {
        let rules = Rules::default();
        let decision = rules.evaluate(&exempt(&zones), &campaign, at);
        let reasons: Vec<Option<BlockReason>> =
            zones.iter().map(|zone| oracle_zone(rules.calendar, zone, &campaign, at)).collect();
        let expected = reasons.iter().flatten().copied().max_by_key(|reason| rank(*reason));
        prop_assert_eq!(decision.blocked, expected, "{} {:?} zones {:?}", at, campaign, reasons);
        if decision.allowed() {
            prop_assert_eq!(decision.next_eligible_at, Some(at));
            for zone in &zones {
                let local = at.with_timezone(&zone.zone);
                let day = documented_window(campaign.call_type).for_weekday(local.weekday());
                let minute = (local.hour() * 60 + local.minute()) as u16;
                prop_assert!(day.is_some_and(|day| day.contains_minute(minute)), "{} in {}", at, zone.zone.name());
                let names = rules.calendar.names_on(local.date_naive());
                prop_assert!(!names.iter().any(|(jurisdiction, _)| *jurisdiction == "AU"), "{} holiday {:?}", at, names);
            }
        }
    }
}

/// Generates a contact's wash age in days, or `None` for an exemption. A wash
/// may lapse within days of the query.
fn register_facts() -> impl Strategy<Value = Option<u64>> {
    prop::option::weighted(0.7, 0u64..35)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn next_eligible_is_the_first_allowed_minute(
        zones in candidate_set(),
        campaign in campaign(),
        at in instant(),
        wash_age_days in register_facts(),
    ) {
        let rules = Rules::default();
        let mut contact = exempt(&zones);
        if let Some(age) = wash_age_days {
            contact.exemption = None;
            contact.wash = Some(WashResult {
                status: RegistryStatus::NotRegistered,
                checked_at: at - Duration::days(age as i64),
            });
        }
        let decision = rules.evaluate(&contact, &campaign, at);
        if decision.allowed() {
            prop_assert_eq!(decision.next_eligible_at, Some(at));
            return Ok(());
        }
        let first_minute = at.with_second(0).expect("valid") + Duration::minutes(1);
        match decision.next_eligible_at {
            Some(next) => {
                prop_assert!(next > at, "{} next {}", at, next);
                prop_assert_eq!(next.second(), 0, "next {} is a whole minute", next);
                prop_assert!(rules.evaluate(&contact, &campaign, next).allowed(), "{} next {} not allowed", at, next);
                if next - at <= Duration::days(4) {
                    let mut minute = first_minute;
                    while minute < next {
                        prop_assert!(
                            !rules.evaluate(&contact, &campaign, minute).allowed(),
                            "{} next {} but {} is allowed", at, next, minute
                        );
                        minute += Duration::minutes(1);
                    }
                }
            }
            None => {
                let mut minute = first_minute;
                while minute <= at + Duration::days(1) {
                    prop_assert!(
                        !rules.evaluate(&contact, &campaign, minute).allowed(),
                        "{} never eligible but {} is allowed", at, minute
                    );
                    minute += Duration::minutes(1);
                }
            }
        }
    }
}
