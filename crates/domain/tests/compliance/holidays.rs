//! Public holidays: national dates, the recipient's local date, state
//! substitute days, state holidays and the campaign switch, and unknown states.

use outbound_domain::eligibility::{BlockReason, Rules};
use outbound_domain::hours::CallType;
use outbound_domain::zone::ANYWHERE;

use crate::support::{
    date, explicit, local, research, sydney, telemarketing, unwashed, utc, washed,
    without_state_holidays, zones_of_number,
};

/// The national holidays of 2026 and 2027 with their names in the calendar.
const NATIONAL_HOLIDAYS: [((i32, u32, u32), &str); 14] = [
    ((2026, 1, 1), "New Year's Day"),
    ((2026, 1, 26), "Australia Day"),
    ((2026, 4, 3), "Good Friday"),
    ((2026, 4, 6), "Easter Monday"),
    ((2026, 4, 25), "Anzac Day"),
    ((2026, 12, 25), "Christmas Day"),
    ((2026, 12, 26), "Boxing Day"),
    ((2027, 1, 1), "New Year's Day"),
    ((2027, 1, 26), "Australia Day"),
    ((2027, 3, 26), "Good Friday"),
    ((2027, 3, 29), "Easter Monday"),
    ((2027, 4, 25), "Anzac Day"),
    ((2027, 12, 25), "Christmas Day"),
    ((2027, 12, 26), "Boxing Day"),
];

/// Every mainland zone, Lord Howe and the Indian Ocean territories, by IANA name.
const ZONES: [&str; 12] = [
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
];

#[test]
fn national_holidays_are_in_the_calendar() {
    let calendar = Rules::default().calendar;
    for ((y, m, d), name) in NATIONAL_HOLIDAYS {
        let names = calendar.names_on(date(y, m, d));
        assert!(names.contains(&("AU", name)), "{y}-{m}-{d}: {names:?}");
    }
}

#[test]
fn national_holidays_block_every_call_type_everywhere() {
    for ((y, m, d), name) in NATIONAL_HOLIDAYS {
        for zone_name in ZONES {
            let zones = explicit(zone_name);
            let zone = zones[0].zone;
            // Noon local time is inside the hours of every call type and day,
            // except telemarketing on Sunday, where the holiday still ranks first.
            let at = local(zone, y, m, d, 12, 0);
            for call_type in [
                CallType::Telemarketing,
                CallType::Research,
                CallType::Service,
            ] {
                for campaign in [
                    outbound_domain::eligibility::CampaignRules::defaults(call_type),
                    without_state_holidays(call_type),
                ] {
                    let contact = washed(&zones, at - chrono::Duration::days(1));
                    let decision = Rules::default().evaluate(&contact, &campaign, at);
                    assert_eq!(
                        decision.blocked,
                        Some(BlockReason::PublicHoliday),
                        "{name} {y}-{m}-{d} in {zone_name} for {call_type}, state holidays {}",
                        campaign.block_state_holidays
                    );
                    let next = decision.next_eligible_at.expect("the holiday ends");
                    assert!(next > at, "{name} in {zone_name}: next {next}");
                }
            }
        }
    }
}

#[test]
fn mobiles_are_blocked_on_national_holidays() {
    for ((y, m, d), name) in NATIONAL_HOLIDAYS {
        // 14:00 in Sydney is inside the hours of every mainland zone that day.
        let at = sydney(y, m, d, 14, 0);
        let decision = Rules::default().evaluate(&unwashed(&ANYWHERE), &research(), at);
        assert_eq!(
            decision.blocked,
            Some(BlockReason::PublicHoliday),
            "{name} {y}-{m}-{d}"
        );
    }
}

#[test]
fn holiday_on_utc_date_only_does_not_block() {
    // Monday 26 January 2026 (Australia Day) at 22:00 UTC is Tuesday
    // 27 January 09:00 in Sydney.
    let zones = explicit("Australia/Sydney");
    let at = utc("2026-01-26T22:00:00Z");
    let decision = Rules::default().evaluate(&unwashed(&zones), &research(), at);
    assert!(decision.allowed(), "27 January is not a holiday in Sydney");
}

#[test]
fn holiday_on_local_date_only_blocks() {
    // 24 December 2026 at 22:00 UTC is Christmas Day 09:00 in Sydney.
    let zones = explicit("Australia/Sydney");
    let at = utc("2026-12-24T22:00:00Z");
    let decision = Rules::default().evaluate(&unwashed(&zones), &research(), at);
    assert_eq!(decision.blocked, Some(BlockReason::PublicHoliday));
}

#[test]
fn christmas_starts_in_sydney_before_perth() {
    // 24 December 2026 at 14:00 UTC: Christmas Day 01:00 in Sydney, but still
    // 24 December 22:00 in Perth.
    let at = utc("2026-12-24T14:00:00Z");
    let rules = Rules::default();
    let sydney_zones = explicit("Australia/Sydney");
    let perth_zones = explicit("Australia/Perth");
    let in_sydney = rules.evaluate(&unwashed(&sydney_zones), &research(), at);
    assert_eq!(in_sydney.blocked, Some(BlockReason::PublicHoliday));
    let in_perth = rules.evaluate(&unwashed(&perth_zones), &research(), at);
    assert_eq!(in_perth.blocked, Some(BlockReason::OutsideCallingWindow));

    let explained = rules.explain_zones(&ANYWHERE, &research(), at);
    let sydney_zone = explained
        .iter()
        .find(|zone| zone.zone == "Australia/Sydney")
        .expect("Sydney");
    assert_eq!(sydney_zone.local_time, "2026-12-25T01:00:00+11:00");
    assert_eq!(sydney_zone.reason, Some(BlockReason::PublicHoliday));
    let perth_zone = explained
        .iter()
        .find(|zone| zone.zone == "Australia/Perth")
        .expect("Perth");
    assert_eq!(perth_zone.local_time, "2026-12-24T22:00:00+08:00");
    assert_eq!(perth_zone.reason, Some(BlockReason::OutsideCallingWindow));
}

#[test]
fn boxing_day_starts_in_sydney_on_christmas_utc() {
    // 25 December 2026 at 13:30 UTC is 26 December 00:30 in Sydney: the local
    // date is Boxing Day (Saturday), and Monday 28 December is the NSW
    // substitute day.
    let zones = explicit("Australia/Sydney");
    let at = utc("2026-12-25T13:30:00Z");
    let rules = Rules::default();
    let explained = rules.explain_zones(&zones, &research(), at);
    assert_eq!(explained[0].local_time, "2026-12-26T00:30:00+11:00");
    assert_eq!(explained[0].reason, Some(BlockReason::PublicHoliday));

    let research_decision = rules.evaluate(&unwashed(&zones), &research(), at);
    assert_eq!(research_decision.blocked, Some(BlockReason::PublicHoliday));
    // Research may call on Sunday 27 December.
    assert_eq!(
        research_decision.next_eligible_at,
        Some(sydney(2026, 12, 27, 9, 0))
    );

    let contact = washed(&zones, utc("2026-12-20T00:00:00Z"));
    let telemarketing_decision = rules.evaluate(&contact, &telemarketing(), at);
    assert_eq!(
        telemarketing_decision.blocked,
        Some(BlockReason::PublicHoliday)
    );
    assert_eq!(
        telemarketing_decision.next_eligible_at,
        Some(sydney(2026, 12, 29, 9, 0))
    );
}

#[test]
fn substitute_days_block_without_state_holidays() {
    // Mon 28 December 2026 is the substitute day for Boxing Day, and Mon 27
    // and Tue 28 December 2027 are those for Christmas Day and Boxing Day.
    // Every state gives them.
    let days = [(2026, 12, 28), (2027, 12, 27), (2027, 12, 28)];
    for code in ["NSW", "VIC", "QLD", "SA", "WA", "TAS", "NT", "ACT"] {
        let zones = explicit(code);
        for (y, m, d) in days {
            let at = local(zones[0].zone, y, m, d, 12, 0);
            let contact = washed(&zones, at - chrono::Duration::days(2));
            for campaign in [
                telemarketing(),
                without_state_holidays(CallType::Telemarketing),
            ] {
                let decision = Rules::default().evaluate(&contact, &campaign, at);
                assert_eq!(
                    decision.blocked,
                    Some(BlockReason::PublicHoliday),
                    "{code} {y}-{m}-{d}, state holidays {}",
                    campaign.block_state_holidays
                );
            }
        }
    }
}

#[test]
fn substitute_day_blocks_until_tuesday() {
    let zones = explicit("NSW");
    let at = sydney(2026, 12, 28, 10, 0);
    let contact = washed(&zones, utc("2026-12-20T00:00:00Z"));
    let decision = Rules::default().evaluate(&contact, &telemarketing(), at);
    assert_eq!(decision.next_eligible_at, Some(sydney(2026, 12, 29, 9, 0)));
}

#[test]
fn state_holiday_follows_campaign_switch() {
    // Monday 9 March 2026 is Labour Day in Victoria, not a holiday in NSW.
    let melbourne = explicit("VIC");
    let nsw = explicit("NSW");
    let at = local(melbourne[0].zone, 2026, 3, 9, 10, 0);
    let rules = Rules::default();

    let blocked = rules.evaluate(&unwashed(&melbourne), &research(), at);
    assert_eq!(blocked.blocked, Some(BlockReason::PublicHoliday));
    assert_eq!(
        blocked.next_eligible_at,
        Some(local(melbourne[0].zone, 2026, 3, 10, 9, 0))
    );

    let switched_off = without_state_holidays(CallType::Research);
    assert!(rules
        .evaluate(&unwashed(&melbourne), &switched_off, at)
        .allowed());
    assert!(rules.evaluate(&unwashed(&nsw), &research(), at).allowed());
}

#[test]
fn western_australia_day_blocks_perth_only() {
    // Monday 1 June 2026.
    let perth = explicit("WA");
    let sydney_zones = explicit("NSW");
    let at = local(perth[0].zone, 2026, 6, 1, 12, 0);
    let rules = Rules::default();
    assert_eq!(
        rules.evaluate(&unwashed(&perth), &research(), at).blocked,
        Some(BlockReason::PublicHoliday)
    );
    assert!(rules
        .evaluate(&unwashed(&sydney_zones), &research(), at)
        .allowed());
}

#[test]
fn unknown_state_blocks_any_candidate_states_holiday() {
    // Monday 9 March 2026: Labour Day (VIC), Eight Hours Day (TAS), Adelaide
    // Cup Day (SA) and Canberra Day (ACT). 14:00 in Sydney is inside the
    // hours of every zone.
    let at = sydney(2026, 3, 9, 14, 0);
    let rules = Rules::default();
    let mobile = rules.evaluate(&unwashed(&ANYWHERE), &research(), at);
    assert_eq!(
        mobile.blocked,
        Some(BlockReason::PublicHoliday),
        "a mobile could be in any state"
    );
    assert_eq!(mobile.next_eligible_at, Some(sydney(2026, 3, 10, 12, 0)));

    let switched_off = without_state_holidays(CallType::Research);
    assert!(rules
        .evaluate(&unwashed(&ANYWHERE), &switched_off, at)
        .allowed());

    // An 02 number on Sydney time could be in the ACT, so Canberra Day blocks it.
    let area_02 = zones_of_number("02 5550 4321");
    assert_eq!(
        rules
            .evaluate(&unwashed(&area_02.candidates), &research(), at)
            .blocked,
        Some(BlockReason::PublicHoliday)
    );
    // An 03 number could be in Victoria or Tasmania.
    let area_03 = zones_of_number("03 7010 4321");
    assert_eq!(
        rules
            .evaluate(&unwashed(&area_03.candidates), &research(), at)
            .blocked,
        Some(BlockReason::PublicHoliday)
    );
    // The state code NSW narrows the calendar to New South Wales.
    let nsw = explicit("NSW");
    assert!(rules.evaluate(&unwashed(&nsw), &research(), at).allowed());
    // The zone name Australia/Sydney covers NSW and the ACT.
    let sydney_zone = explicit("Australia/Sydney");
    assert_eq!(
        rules
            .evaluate(&unwashed(&sydney_zone), &research(), at)
            .blocked,
        Some(BlockReason::PublicHoliday)
    );
}

#[test]
fn western_australia_day_blocks_mobiles() {
    let at = sydney(2026, 6, 1, 14, 0);
    let decision = Rules::default().evaluate(&unwashed(&ANYWHERE), &research(), at);
    assert_eq!(decision.blocked, Some(BlockReason::PublicHoliday));
}
