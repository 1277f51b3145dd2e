//! Recipient zones: zones without daylight saving, odd offsets, numbers with
//! several candidate zones, and the calling-hours boundaries of each call type.

use outbound_domain::eligibility::{BlockReason, CampaignRules, Rules};
use outbound_domain::hours::{CallType, CallingWindow, DayWindow};
use outbound_domain::zone::{ZoneGroup, ZoneSource, ANYWHERE};

use crate::support::{
    explicit, local, minutes, research, sydney, telemarketing, unwashed, utc, washed, zone_names,
    zones_of_number,
};

/// Asserts the first and last allowed minute of a day in UTC, and that the
/// minutes either side are closed.
fn assert_day(
    zones: &[outbound_domain::zone::CandidateZone],
    campaign: &CampaignRules,
    first: &str,
    last: &str,
) {
    let first = utc(first);
    let last = utc(last);
    let contact = washed(zones, first - chrono::Duration::days(1));
    let rules = Rules::default();
    let names = zone_names(zones);
    assert!(
        rules.evaluate(&contact, campaign, first).allowed(),
        "{names:?} at {first}"
    );
    assert!(
        rules.evaluate(&contact, campaign, last).allowed(),
        "{names:?} at {last}"
    );
    let before = rules.evaluate(&contact, campaign, first - minutes(1));
    assert_eq!(
        before.blocked,
        Some(BlockReason::OutsideCallingWindow),
        "{names:?} before {first}"
    );
    assert_eq!(
        before.next_eligible_at,
        Some(first),
        "{names:?} before {first}"
    );
    let after = rules.evaluate(&contact, campaign, last + minutes(1));
    assert_eq!(
        after.blocked,
        Some(BlockReason::OutsideCallingWindow),
        "{names:?} after {last}"
    );
}

#[test]
fn brisbane_has_no_daylight_saving() {
    // 09:00-20:00 at UTC+10 all year: Monday 12 January, Monday 13 July and
    // Tuesday 6 October 2026 (after Sydney's change).
    let zones = explicit("Australia/Brisbane");
    assert_day(
        &zones,
        &telemarketing(),
        "2026-01-11T23:00:00Z",
        "2026-01-12T09:59:00Z",
    );
    assert_day(
        &zones,
        &telemarketing(),
        "2026-07-12T23:00:00Z",
        "2026-07-13T09:59:00Z",
    );
    assert_day(
        &zones,
        &telemarketing(),
        "2026-10-05T23:00:00Z",
        "2026-10-06T09:59:00Z",
    );
}

#[test]
fn perth_has_no_daylight_saving() {
    // 09:00-20:00 at UTC+8 all year.
    let zones = explicit("Australia/Perth");
    assert_day(
        &zones,
        &telemarketing(),
        "2026-01-12T01:00:00Z",
        "2026-01-12T11:59:00Z",
    );
    assert_day(
        &zones,
        &telemarketing(),
        "2026-07-13T01:00:00Z",
        "2026-07-13T11:59:00Z",
    );
}

#[test]
fn darwin_has_no_daylight_saving() {
    // 09:00-20:00 at UTC+9:30 all year.
    let zones = explicit("NT");
    assert_day(
        &zones,
        &telemarketing(),
        "2026-01-11T23:30:00Z",
        "2026-01-12T10:29:00Z",
    );
    assert_day(
        &zones,
        &telemarketing(),
        "2026-07-12T23:30:00Z",
        "2026-07-13T10:29:00Z",
    );
}

#[test]
fn eucla_is_utc_plus_8_45() {
    let zones = explicit("Australia/Eucla");
    assert_day(
        &zones,
        &telemarketing(),
        "2026-01-12T00:15:00Z",
        "2026-01-12T11:14:00Z",
    );
    assert_day(
        &zones,
        &research(),
        "2026-07-13T00:15:00Z",
        "2026-07-13T11:44:00Z",
    );
}

#[test]
fn broken_hill_uses_central_time() {
    // UTC+10:30 in January, UTC+9:30 in July, like Adelaide.
    let zones = explicit("Australia/Broken_Hill");
    assert_day(
        &zones,
        &telemarketing(),
        "2026-01-11T22:30:00Z",
        "2026-01-12T09:29:00Z",
    );
    assert_day(
        &zones,
        &telemarketing(),
        "2026-07-12T23:30:00Z",
        "2026-07-13T10:29:00Z",
    );
}

#[test]
fn broken_hill_follows_nsw_holidays() {
    let zones = explicit("Australia/Broken_Hill");
    let zone = zones[0].zone;
    let rules = Rules::default();
    // Monday 5 October 2026 is Labour Day in NSW.
    let labour_day = local(zone, 2026, 10, 5, 10, 0);
    assert_eq!(
        rules
            .evaluate(&unwashed(&zones), &research(), labour_day)
            .blocked,
        Some(BlockReason::PublicHoliday)
    );
    // Monday 9 March 2026 is Adelaide Cup Day in South Australia only.
    let adelaide_cup = local(zone, 2026, 3, 9, 10, 0);
    assert!(rules
        .evaluate(&unwashed(&zones), &research(), adelaide_cup)
        .allowed());
    let adelaide = explicit("Australia/Adelaide");
    assert_eq!(
        rules
            .evaluate(&unwashed(&adelaide), &research(), adelaide_cup)
            .blocked,
        Some(BlockReason::PublicHoliday)
    );
}

#[test]
fn area_07_is_checked_in_brisbane_and_sydney() {
    let zones = zones_of_number("07 5550 3456");
    assert_eq!(zones.source, ZoneSource::Inferred);
    assert_eq!(
        zone_names(&zones.candidates),
        vec!["Australia/Brisbane", "Australia/Sydney"]
    );
    // In January, Sydney (UTC+11) closes an hour before Brisbane (UTC+10) and
    // Brisbane opens an hour after Sydney: 09:00-19:00 Brisbane time.
    assert_day(
        &zones.candidates,
        &telemarketing(),
        "2026-01-11T23:00:00Z",
        "2026-01-12T08:59:00Z",
    );
    // In July both are UTC+10.
    assert_day(
        &zones.candidates,
        &telemarketing(),
        "2026-07-12T23:00:00Z",
        "2026-07-13T09:59:00Z",
    );
}

#[test]
fn area_07_follows_queensland_and_nsw_holidays() {
    let zones = zones_of_number("07 7010 6543");
    let rules = Rules::default();
    // Wednesday 12 August 2026: Royal Queensland Show day in Brisbane.
    let show_day = sydney(2026, 8, 12, 12, 0);
    assert_eq!(
        rules
            .evaluate(&unwashed(&zones.candidates), &research(), show_day)
            .blocked,
        Some(BlockReason::PublicHoliday)
    );
    // Monday 9 March 2026: Canberra Day in the ACT only; the 07 range reaches
    // NSW (Tweed Heads) but not the ACT.
    let canberra_day = sydney(2026, 3, 9, 12, 0);
    assert!(rules
        .evaluate(&unwashed(&zones.candidates), &research(), canberra_day)
        .allowed());
}

#[test]
fn indian_ocean_zones_are_checked_together() {
    // The 08 9162 and 08 9164 exchanges: Christmas Island (UTC+7) and the
    // Cocos Islands (UTC+6:30).
    let group = ZoneGroup::IndianOcean;
    assert_eq!(group.source(), ZoneSource::Inferred);
    let zones = group.candidates();
    assert_eq!(zone_names(zones), vec!["Indian/Christmas", "Indian/Cocos"]);
    assert_day(
        zones,
        &telemarketing(),
        "2026-01-12T02:30:00Z",
        "2026-01-12T12:59:00Z",
    );
    // National holidays apply there too.
    let christmas = local(zones[0].zone, 2026, 12, 25, 12, 0);
    assert_eq!(
        Rules::default()
            .evaluate(&unwashed(zones), &research(), christmas)
            .blocked,
        Some(BlockReason::PublicHoliday)
    );
}

#[test]
fn explicit_indian_ocean_zone() {
    let zones = explicit("Indian/Christmas");
    assert_day(
        &zones,
        &telemarketing(),
        "2026-01-12T02:00:00Z",
        "2026-01-12T12:59:00Z",
    );
}

#[test]
fn mobile_window_in_daylight_saving() {
    // Monday 7 December 2026: Perth (UTC+8) opens at 12:00 Sydney time, and
    // Sydney, Melbourne, Hobart and Lord Howe (all UTC+11) close at 20:00.
    let zones = zones_of_number("0491 570 006");
    assert_eq!(zones.source, ZoneSource::Unknown);
    assert_eq!(zones.candidates, ANYWHERE.to_vec());
    assert_day(
        &zones.candidates,
        &telemarketing(),
        "2026-12-07T01:00:00Z",
        "2026-12-07T08:59:00Z",
    );
    assert_eq!(utc("2026-12-07T01:00:00Z"), sydney(2026, 12, 7, 12, 0));
    assert_eq!(utc("2026-12-07T08:59:00Z"), sydney(2026, 12, 7, 19, 59));

    let contact = washed(&zones.candidates, utc("2026-12-01T00:00:00Z"));
    let closed = Rules::default().evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 20, 0));
    assert_eq!(closed.next_eligible_at, Some(sydney(2026, 12, 8, 12, 0)));
}

#[test]
fn mobile_window_without_daylight_saving() {
    // Monday 13 July 2026: Perth opens at 11:00 Sydney time and Lord Howe
    // (UTC+10:30) closes at 19:30 Sydney time.
    let zones = zones_of_number("0491 570 157");
    assert_day(
        &zones.candidates,
        &telemarketing(),
        "2026-07-13T01:00:00Z",
        "2026-07-13T09:29:00Z",
    );
}

#[test]
fn telemarketing_boundary_minutes() {
    let zones = explicit("Australia/Sydney");
    let contact = washed(&zones, utc("2026-12-01T00:00:00Z"));
    let rules = Rules::default();
    let campaign = telemarketing();
    let cases = [
        // Monday 7 December: 09:00-20:00.
        (sydney(2026, 12, 7, 8, 59), false),
        (sydney(2026, 12, 7, 9, 0), true),
        (sydney(2026, 12, 7, 19, 59), true),
        (
            sydney(2026, 12, 7, 19, 59) + chrono::Duration::seconds(59),
            true,
        ),
        (sydney(2026, 12, 7, 20, 0), false),
        // Saturday 12 December: 09:00-17:00.
        (sydney(2026, 12, 12, 8, 59), false),
        (sydney(2026, 12, 12, 9, 0), true),
        (sydney(2026, 12, 12, 16, 59), true),
        (sydney(2026, 12, 12, 17, 0), false),
        // Sunday 13 December: no calls.
        (sydney(2026, 12, 13, 9, 0), false),
        (sydney(2026, 12, 13, 12, 0), false),
    ];
    for (at, allowed) in cases {
        assert_eq!(
            rules.evaluate(&contact, &campaign, at).allowed(),
            allowed,
            "{at}"
        );
    }
}

#[test]
fn research_boundary_minutes() {
    let zones = explicit("Australia/Sydney");
    let contact = unwashed(&zones);
    let rules = Rules::default();
    let campaign = research();
    let cases = [
        // Monday 7 December: 09:00-20:30.
        (sydney(2026, 12, 7, 8, 59), false),
        (sydney(2026, 12, 7, 9, 0), true),
        (sydney(2026, 12, 7, 20, 29), true),
        (sydney(2026, 12, 7, 20, 30), false),
        // Saturday 12 December: 09:00-17:00.
        (sydney(2026, 12, 12, 8, 59), false),
        (sydney(2026, 12, 12, 9, 0), true),
        (sydney(2026, 12, 12, 16, 59), true),
        (sydney(2026, 12, 12, 17, 0), false),
        // Sunday 13 December: 09:00-17:00.
        (sydney(2026, 12, 13, 8, 59), false),
        (sydney(2026, 12, 13, 9, 0), true),
        (sydney(2026, 12, 13, 16, 59), true),
        (sydney(2026, 12, 13, 17, 0), false),
    ];
    for (at, allowed) in cases {
        assert_eq!(
            rules.evaluate(&contact, &campaign, at).allowed(),
            allowed,
            "{at}"
        );
    }
}

#[test]
fn service_boundary_minutes_follow_campaign_window() {
    let zones = explicit("Australia/Sydney");
    let contact = unwashed(&zones);
    let rules = Rules::default();
    // By default a service campaign uses the telemarketing hours.
    let default_service = CampaignRules::defaults(CallType::Service);
    assert_eq!(default_service.window, CallingWindow::TELEMARKETING);
    assert!(!rules
        .evaluate(&contact, &default_service, sydney(2026, 12, 7, 8, 59))
        .allowed());
    assert!(rules
        .evaluate(&contact, &default_service, sydney(2026, 12, 7, 9, 0))
        .allowed());
    assert!(rules
        .evaluate(&contact, &default_service, sydney(2026, 12, 7, 19, 59))
        .allowed());
    assert!(!rules
        .evaluate(&contact, &default_service, sydney(2026, 12, 7, 20, 0))
        .allowed());
    // Its own window is not cut to legal hours, because none apply.
    let own_window = CampaignRules {
        window: CallingWindow {
            weekdays: Some(DayWindow::parse("08:00", "21:00").expect("valid window")),
            saturday: None,
            sunday: None,
        },
        ..default_service
    };
    assert!(!rules
        .evaluate(&contact, &own_window, sydney(2026, 12, 7, 7, 59))
        .allowed());
    assert!(rules
        .evaluate(&contact, &own_window, sydney(2026, 12, 7, 8, 0))
        .allowed());
    assert!(rules
        .evaluate(&contact, &own_window, sydney(2026, 12, 7, 20, 59))
        .allowed());
    assert!(!rules
        .evaluate(&contact, &own_window, sydney(2026, 12, 7, 21, 0))
        .allowed());
    assert!(!rules
        .evaluate(&contact, &own_window, sydney(2026, 12, 12, 10, 0))
        .allowed());
}

#[test]
fn wider_campaign_window_is_cut_to_legal_hours() {
    let zones = explicit("Australia/Sydney");
    let contact = washed(&zones, utc("2026-12-01T00:00:00Z"));
    let wide = CampaignRules {
        window: CallingWindow {
            weekdays: Some(DayWindow::parse("07:00", "22:00").expect("valid window")),
            saturday: Some(DayWindow::parse("07:00", "22:00").expect("valid window")),
            sunday: Some(DayWindow::parse("10:00", "12:00").expect("valid window")),
        },
        ..telemarketing()
    };
    let rules = Rules::default();
    assert!(!rules
        .evaluate(&contact, &wide, sydney(2026, 12, 7, 8, 30))
        .allowed());
    assert!(!rules
        .evaluate(&contact, &wide, sydney(2026, 12, 7, 20, 30))
        .allowed());
    assert!(!rules
        .evaluate(&contact, &wide, sydney(2026, 12, 12, 17, 30))
        .allowed());
    assert!(!rules
        .evaluate(&contact, &wide, sydney(2026, 12, 13, 11, 0))
        .allowed());
    assert!(rules
        .evaluate(&contact, &wide, sydney(2026, 12, 7, 19, 59))
        .allowed());
}

#[test]
fn narrower_campaign_window_is_kept() {
    let zones = explicit("Australia/Sydney");
    let contact = washed(&zones, utc("2026-12-01T00:00:00Z"));
    let narrow = CampaignRules {
        window: CallingWindow {
            weekdays: Some(DayWindow::parse("10:00", "16:00").expect("valid window")),
            saturday: None,
            sunday: None,
        },
        ..telemarketing()
    };
    let rules = Rules::default();
    let early = rules.evaluate(&contact, &narrow, sydney(2026, 12, 7, 9, 30));
    assert_eq!(early.next_eligible_at, Some(sydney(2026, 12, 7, 10, 0)));
    let late = rules.evaluate(&contact, &narrow, sydney(2026, 12, 11, 16, 0));
    // Friday 16:00: no Saturday hours, so Monday 10:00.
    assert_eq!(late.next_eligible_at, Some(sydney(2026, 12, 14, 10, 0)));
}

#[test]
fn narrow_window_waits_for_zones_to_overlap() {
    // 09:00-10:00 in Brisbane and in Sydney overlaps only when both are
    // UTC+10: the next such Monday after Saturday 12 December 2026 is the
    // first working day after daylight saving ends on 4 April 2027.
    let zones = zones_of_number("07 5550 3456");
    let contact = unwashed(&zones.candidates);
    let narrow = CampaignRules {
        window: CallingWindow {
            weekdays: Some(DayWindow::parse("09:00", "10:00").expect("valid window")),
            saturday: None,
            sunday: None,
        },
        ..CampaignRules::defaults(CallType::Service)
    };
    let decision = Rules::default().evaluate(&contact, &narrow, sydney(2026, 12, 12, 12, 0));
    assert_eq!(decision.blocked, Some(BlockReason::OutsideCallingWindow));
    assert_eq!(decision.next_eligible_at, Some(utc("2027-04-04T23:00:00Z")));
}
