//! Calling hours in UTC on and around each daylight-saving change of 2026 and
//! 2027. Daylight saving starts on the first Sunday of October and ends on the
//! first Sunday of April; Sydney and Adelaide shift by an hour, Lord Howe
//! Island by 30 minutes.
//!
//! State holidays are allowed in these tests, because Easter (April 2026) and
//! Labour Day (October) fall on these weekends; national holidays still block.

use outbound_domain::eligibility::BlockReason;
use outbound_domain::hours::CallType;

use crate::support::{explicit, minutes, unwashed, utc, washed, without_state_holidays};

/// The first and last allowed minute of one local day, in UTC.
struct Hours {
    first: &'static str,
    last: &'static str,
}

/// The hours around one change: research on the Saturday, the Sunday and the
/// next working day, telemarketing on the Saturday and that working day.
struct Changeover {
    zone: &'static str,
    research: [Hours; 3],
    telemarketing: [Hours; 2],
}

const fn hours(first: &'static str, last: &'static str) -> Hours {
    Hours { first, last }
}

fn check_hours(zone: &str, call_type: CallType, day: &Hours) {
    let zones = explicit(zone);
    let first = utc(day.first);
    let last = utc(day.last);
    let contact = match call_type {
        CallType::Telemarketing => washed(&zones, first - chrono::Duration::days(1)),
        _ => unwashed(&zones),
    };
    let campaign = without_state_holidays(call_type);
    let rules = outbound_domain::eligibility::Rules::default();
    let label = format!("{zone} {call_type} {}", day.first);

    assert!(
        rules.evaluate(&contact, &campaign, first).allowed(),
        "{label}: first minute {first}"
    );
    assert!(
        rules.evaluate(&contact, &campaign, last).allowed(),
        "{label}: last minute {last}"
    );
    let last_second = last + chrono::Duration::seconds(59);
    assert!(
        rules.evaluate(&contact, &campaign, last_second).allowed(),
        "{label}: {last_second}"
    );

    let early = rules.evaluate(&contact, &campaign, first - minutes(1));
    assert_eq!(
        early.blocked,
        Some(BlockReason::OutsideCallingWindow),
        "{label}: minute before"
    );
    assert_eq!(
        early.next_eligible_at,
        Some(first),
        "{label}: next after minute before"
    );

    let late = rules.evaluate(&contact, &campaign, last + minutes(1));
    assert_eq!(
        late.blocked,
        Some(BlockReason::OutsideCallingWindow),
        "{label}: minute after"
    );
}

fn check(changeover: &Changeover) {
    for day in &changeover.research {
        check_hours(changeover.zone, CallType::Research, day);
    }
    for day in &changeover.telemarketing {
        check_hours(changeover.zone, CallType::Telemarketing, day);
    }

    // After each research day closes, the next opening is the following day's.
    let zones = explicit(changeover.zone);
    let contact = unwashed(&zones);
    let research = without_state_holidays(CallType::Research);
    for pair in changeover.research.windows(2) {
        let closed = utc(pair[0].last) + minutes(1);
        let decision = crate::support::evaluate(&contact, &research, closed);
        assert_eq!(
            decision.next_eligible_at,
            Some(utc(pair[1].first)),
            "{} research after {}",
            changeover.zone,
            pair[0].last
        );
    }

    // Telemarketing has no Sunday hours: on Sunday morning it waits for the
    // working day.
    let [saturday, working_day] = &changeover.telemarketing;
    let sunday_open = utc(changeover.research[1].first);
    let contact = washed(&zones, utc(saturday.first));
    let telemarketing = without_state_holidays(CallType::Telemarketing);
    let decision = crate::support::evaluate(&contact, &telemarketing, sunday_open);
    assert_eq!(
        decision.blocked,
        Some(BlockReason::OutsideCallingWindow),
        "{} Sunday",
        changeover.zone
    );
    assert_eq!(
        decision.next_eligible_at,
        Some(utc(working_day.first)),
        "{} Sunday",
        changeover.zone
    );
}

// Sydney: UTC+11 in daylight saving, UTC+10 otherwise.

#[test]
fn sydney_daylight_saving_ends_2026() {
    // Sunday 5 April 2026 (Easter Sunday); Easter Monday is a national
    // holiday, so the working day is Tuesday 7 April.
    check(&Changeover {
        zone: "Australia/Sydney",
        research: [
            hours("2026-04-03T22:00:00Z", "2026-04-04T05:59:00Z"),
            hours("2026-04-04T23:00:00Z", "2026-04-05T06:59:00Z"),
            hours("2026-04-06T23:00:00Z", "2026-04-07T10:29:00Z"),
        ],
        telemarketing: [
            hours("2026-04-03T22:00:00Z", "2026-04-04T05:59:00Z"),
            hours("2026-04-06T23:00:00Z", "2026-04-07T09:59:00Z"),
        ],
    });
}

#[test]
fn sydney_daylight_saving_starts_2026() {
    // Sunday 4 October 2026.
    check(&Changeover {
        zone: "Australia/Sydney",
        research: [
            hours("2026-10-02T23:00:00Z", "2026-10-03T06:59:00Z"),
            hours("2026-10-03T22:00:00Z", "2026-10-04T05:59:00Z"),
            hours("2026-10-04T22:00:00Z", "2026-10-05T09:29:00Z"),
        ],
        telemarketing: [
            hours("2026-10-02T23:00:00Z", "2026-10-03T06:59:00Z"),
            hours("2026-10-04T22:00:00Z", "2026-10-05T08:59:00Z"),
        ],
    });
}

#[test]
fn sydney_daylight_saving_ends_2027() {
    // Sunday 4 April 2027.
    check(&Changeover {
        zone: "Australia/Sydney",
        research: [
            hours("2027-04-02T22:00:00Z", "2027-04-03T05:59:00Z"),
            hours("2027-04-03T23:00:00Z", "2027-04-04T06:59:00Z"),
            hours("2027-04-04T23:00:00Z", "2027-04-05T10:29:00Z"),
        ],
        telemarketing: [
            hours("2027-04-02T22:00:00Z", "2027-04-03T05:59:00Z"),
            hours("2027-04-04T23:00:00Z", "2027-04-05T09:59:00Z"),
        ],
    });
}

#[test]
fn sydney_daylight_saving_starts_2027() {
    // Sunday 3 October 2027.
    check(&Changeover {
        zone: "Australia/Sydney",
        research: [
            hours("2027-10-01T23:00:00Z", "2027-10-02T06:59:00Z"),
            hours("2027-10-02T22:00:00Z", "2027-10-03T05:59:00Z"),
            hours("2027-10-03T22:00:00Z", "2027-10-04T09:29:00Z"),
        ],
        telemarketing: [
            hours("2027-10-01T23:00:00Z", "2027-10-02T06:59:00Z"),
            hours("2027-10-03T22:00:00Z", "2027-10-04T08:59:00Z"),
        ],
    });
}

// Adelaide: UTC+10:30 in daylight saving, UTC+9:30 otherwise.

#[test]
fn adelaide_daylight_saving_ends_2026() {
    check(&Changeover {
        zone: "Australia/Adelaide",
        research: [
            hours("2026-04-03T22:30:00Z", "2026-04-04T06:29:00Z"),
            hours("2026-04-04T23:30:00Z", "2026-04-05T07:29:00Z"),
            hours("2026-04-06T23:30:00Z", "2026-04-07T10:59:00Z"),
        ],
        telemarketing: [
            hours("2026-04-03T22:30:00Z", "2026-04-04T06:29:00Z"),
            hours("2026-04-06T23:30:00Z", "2026-04-07T10:29:00Z"),
        ],
    });
}

#[test]
fn adelaide_daylight_saving_starts_2026() {
    check(&Changeover {
        zone: "Australia/Adelaide",
        research: [
            hours("2026-10-02T23:30:00Z", "2026-10-03T07:29:00Z"),
            hours("2026-10-03T22:30:00Z", "2026-10-04T06:29:00Z"),
            hours("2026-10-04T22:30:00Z", "2026-10-05T09:59:00Z"),
        ],
        telemarketing: [
            hours("2026-10-02T23:30:00Z", "2026-10-03T07:29:00Z"),
            hours("2026-10-04T22:30:00Z", "2026-10-05T09:29:00Z"),
        ],
    });
}

#[test]
fn adelaide_daylight_saving_ends_2027() {
    check(&Changeover {
        zone: "Australia/Adelaide",
        research: [
            hours("2027-04-02T22:30:00Z", "2027-04-03T06:29:00Z"),
            hours("2027-04-03T23:30:00Z", "2027-04-04T07:29:00Z"),
            hours("2027-04-04T23:30:00Z", "2027-04-05T10:59:00Z"),
        ],
        telemarketing: [
            hours("2027-04-02T22:30:00Z", "2027-04-03T06:29:00Z"),
            hours("2027-04-04T23:30:00Z", "2027-04-05T10:29:00Z"),
        ],
    });
}

#[test]
fn adelaide_daylight_saving_starts_2027() {
    check(&Changeover {
        zone: "Australia/Adelaide",
        research: [
            hours("2027-10-01T23:30:00Z", "2027-10-02T07:29:00Z"),
            hours("2027-10-02T22:30:00Z", "2027-10-03T06:29:00Z"),
            hours("2027-10-03T22:30:00Z", "2027-10-04T09:59:00Z"),
        ],
        telemarketing: [
            hours("2027-10-01T23:30:00Z", "2027-10-02T07:29:00Z"),
            hours("2027-10-03T22:30:00Z", "2027-10-04T09:29:00Z"),
        ],
    });
}

// Lord Howe Island: UTC+11 in daylight saving, UTC+10:30 otherwise.

#[test]
fn lord_howe_daylight_saving_ends_2026() {
    check(&Changeover {
        zone: "Australia/Lord_Howe",
        research: [
            hours("2026-04-03T22:00:00Z", "2026-04-04T05:59:00Z"),
            hours("2026-04-04T22:30:00Z", "2026-04-05T06:29:00Z"),
            hours("2026-04-06T22:30:00Z", "2026-04-07T09:59:00Z"),
        ],
        telemarketing: [
            hours("2026-04-03T22:00:00Z", "2026-04-04T05:59:00Z"),
            hours("2026-04-06T22:30:00Z", "2026-04-07T09:29:00Z"),
        ],
    });
}

#[test]
fn lord_howe_daylight_saving_starts_2026() {
    check(&Changeover {
        zone: "Australia/Lord_Howe",
        research: [
            hours("2026-10-02T22:30:00Z", "2026-10-03T06:29:00Z"),
            hours("2026-10-03T22:00:00Z", "2026-10-04T05:59:00Z"),
            hours("2026-10-04T22:00:00Z", "2026-10-05T09:29:00Z"),
        ],
        telemarketing: [
            hours("2026-10-02T22:30:00Z", "2026-10-03T06:29:00Z"),
            hours("2026-10-04T22:00:00Z", "2026-10-05T08:59:00Z"),
        ],
    });
}

#[test]
fn lord_howe_daylight_saving_ends_2027() {
    check(&Changeover {
        zone: "Australia/Lord_Howe",
        research: [
            hours("2027-04-02T22:00:00Z", "2027-04-03T05:59:00Z"),
            hours("2027-04-03T22:30:00Z", "2027-04-04T06:29:00Z"),
            hours("2027-04-04T22:30:00Z", "2027-04-05T09:59:00Z"),
        ],
        telemarketing: [
            hours("2027-04-02T22:00:00Z", "2027-04-03T05:59:00Z"),
            hours("2027-04-04T22:30:00Z", "2027-04-05T09:29:00Z"),
        ],
    });
}

#[test]
fn lord_howe_daylight_saving_starts_2027() {
    check(&Changeover {
        zone: "Australia/Lord_Howe",
        research: [
            hours("2027-10-01T22:30:00Z", "2027-10-02T06:29:00Z"),
            hours("2027-10-02T22:00:00Z", "2027-10-03T05:59:00Z"),
            hours("2027-10-03T22:00:00Z", "2027-10-04T09:29:00Z"),
        ],
        telemarketing: [
            hours("2027-10-01T22:30:00Z", "2027-10-02T06:29:00Z"),
            hours("2027-10-03T22:00:00Z", "2027-10-04T08:59:00Z"),
        ],
    });
}

#[test]
fn lord_howe_number_is_checked_on_island_time() {
    // The Lord Howe exchange (02 6563) is the one 02 range not on Sydney time.
    let zones = crate::support::zones_of_number("02 6563 7010");
    assert_eq!(
        crate::support::zone_names(&zones.candidates),
        vec!["Australia/Lord_Howe"]
    );
    let contact = unwashed(&zones.candidates);
    let research = without_state_holidays(CallType::Research);
    // Monday 5 July 2027, UTC+10:30: 09:00 on the island is 22:30 UTC, when
    // Sydney (UTC+10) is already at 08:30.
    let decision = crate::support::evaluate(&contact, &research, utc("2027-07-04T22:29:00Z"));
    assert_eq!(decision.next_eligible_at, Some(utc("2027-07-04T22:30:00Z")));
}
