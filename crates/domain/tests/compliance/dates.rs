//! Campaign dates, the loaded calendar's coverage, and the order of reasons
//! when candidate zones are closed for different reasons.

use chrono_tz::Tz;
use outbound_domain::calendar::HolidayCalendar;
use outbound_domain::eligibility::{BlockReason, CampaignRules, Rules};
use outbound_domain::hours::CallType;
use outbound_domain::zone::{CandidateZone, ANYWHERE};

use crate::support::{
    date, explicit, local, research, sydney, telemarketing, unwashed, utc, washed,
};

fn between(start: (i32, u32, u32), end: (i32, u32, u32), call_type: CallType) -> CampaignRules {
    CampaignRules {
        start_date: Some(date(start.0, start.1, start.2)),
        end_date: Some(date(end.0, end.1, end.2)),
        ..CampaignRules::defaults(call_type)
    }
}

#[test]
fn before_start_waits_for_first_open_minute() {
    // The campaign runs from Wednesday 9 December 2026.
    let campaign = between((2026, 12, 9), (2026, 12, 18), CallType::Telemarketing);
    let sydney_zones = explicit("Australia/Sydney");
    let contact = washed(&sydney_zones, sydney(2026, 12, 1, 9, 0));
    let rules = Rules::default();
    let decision = rules.evaluate(&contact, &campaign, sydney(2026, 12, 7, 10, 0));
    assert_eq!(decision.blocked, Some(BlockReason::CampaignWindowClosed));
    assert_eq!(decision.next_eligible_at, Some(sydney(2026, 12, 9, 9, 0)));
    // A mobile opens when Perth does: 12:00 Sydney time.
    let mobile = washed(&ANYWHERE, sydney(2026, 12, 1, 9, 0));
    let decision = rules.evaluate(&mobile, &campaign, sydney(2026, 12, 7, 10, 0));
    assert_eq!(decision.blocked, Some(BlockReason::CampaignWindowClosed));
    assert_eq!(decision.next_eligible_at, Some(sydney(2026, 12, 9, 12, 0)));
}

#[test]
fn start_on_holiday_waits_for_next_open_day() {
    // Starting on Christmas Day 2026 (Friday): Boxing Day is Saturday,
    // Sunday has no telemarketing hours and Monday is the substitute day.
    let campaign = between((2026, 12, 25), (2027, 1, 15), CallType::Telemarketing);
    let zones = explicit("NSW");
    let contact = washed(&zones, sydney(2026, 12, 20, 9, 0));
    let decision = Rules::default().evaluate(&contact, &campaign, sydney(2026, 12, 21, 10, 0));
    assert_eq!(decision.next_eligible_at, Some(sydney(2026, 12, 29, 9, 0)));
}

#[test]
fn start_far_ahead_is_found() {
    // Monday 5 June 2028 is more than two years after the query.
    let campaign = between((2028, 6, 5), (2028, 6, 30), CallType::Research);
    let zones = explicit("NSW");
    let decision =
        Rules::default().evaluate(&unwashed(&zones), &campaign, sydney(2026, 1, 5, 10, 0));
    assert_eq!(decision.blocked, Some(BlockReason::CampaignWindowClosed));
    assert_eq!(decision.next_eligible_at, Some(sydney(2028, 6, 5, 9, 0)));
}

#[test]
fn after_end_is_never_eligible() {
    let campaign = between((2026, 12, 9), (2026, 12, 10), CallType::Research);
    let zones = explicit("Australia/Sydney");
    let rules = Rules::default();
    let after = rules.evaluate(&unwashed(&zones), &campaign, sydney(2026, 12, 11, 10, 0));
    assert_eq!(after.blocked, Some(BlockReason::CampaignWindowClosed));
    assert_eq!(after.next_eligible_at, None);
    // After hours on the last day there is no later opening either.
    let last_evening = rules.evaluate(&unwashed(&zones), &campaign, sydney(2026, 12, 10, 21, 0));
    assert_eq!(
        last_evening.blocked,
        Some(BlockReason::OutsideCallingWindow)
    );
    assert_eq!(last_evening.next_eligible_at, None);
}

#[test]
fn end_date_counts_in_each_zone() {
    // The campaign ends on Thursday 10 December. At 2026-12-10T14:00Z it is
    // already 11 December 01:00 in Sydney, but 10 December 22:00 in Perth.
    let campaign = between((2026, 12, 9), (2026, 12, 10), CallType::Research);
    let decision =
        Rules::default().evaluate(&unwashed(&ANYWHERE), &campaign, utc("2026-12-10T14:00:00Z"));
    assert_eq!(decision.blocked, Some(BlockReason::CampaignWindowClosed));
    assert_eq!(decision.next_eligible_at, None);
}

#[test]
fn dates_past_calendar_are_not_loaded() {
    let zones = explicit("Australia/Sydney");
    let rules = Rules::default();
    let (_, last) = rules.calendar.coverage();
    assert_eq!(last, date(2028, 12, 31));
    let decision = rules.evaluate(&unwashed(&zones), &research(), sydney(2029, 1, 10, 10, 0));
    assert_eq!(decision.blocked, Some(BlockReason::CalendarNotLoaded));
    assert_eq!(decision.next_eligible_at, None);
}

#[test]
fn last_loaded_weekend_has_no_later_opening() {
    // Saturday 30 December 2028 is the last telemarketing day the calendar
    // covers: Sunday has no hours and 2029 is not loaded.
    let zones = explicit("NSW");
    let contact = washed(&zones, sydney(2028, 12, 20, 9, 0));
    let rules = Rules::default();
    let friday = rules.evaluate(&contact, &telemarketing(), sydney(2028, 12, 29, 21, 0));
    assert_eq!(friday.next_eligible_at, Some(sydney(2028, 12, 30, 9, 0)));
    let saturday = rules.evaluate(&contact, &telemarketing(), sydney(2028, 12, 30, 17, 0));
    assert_eq!(saturday.blocked, Some(BlockReason::OutsideCallingWindow));
    assert_eq!(saturday.next_eligible_at, None);
}

#[test]
fn dates_before_calendar_wait_for_it() {
    let zones = explicit("NSW");
    let decision =
        Rules::default().evaluate(&unwashed(&zones), &research(), sydney(2025, 12, 30, 10, 0));
    assert_eq!(decision.blocked, Some(BlockReason::CalendarNotLoaded));
    // 1 January 2026 is New Year's Day.
    assert_eq!(decision.next_eligible_at, Some(sydney(2026, 1, 2, 9, 0)));
}

#[test]
fn campaign_dates_rank_before_calendar() {
    // At 2028-12-31T14:00Z Sydney is in 2029, past the calendar, while Perth
    // is still on 31 December 2028, before the campaign's start.
    let campaign = between((2029, 1, 1), (2029, 1, 31), CallType::Research);
    let zones = [
        explicit("Australia/Sydney")[0],
        explicit("Australia/Perth")[0],
    ];
    let rules = Rules::default();
    let at = utc("2028-12-31T14:00:00Z");
    let explained = rules.explain_zones(&zones, &campaign, at);
    assert_eq!(explained[0].reason, Some(BlockReason::CalendarNotLoaded));
    assert_eq!(explained[1].reason, Some(BlockReason::CampaignWindowClosed));
    let decision = rules.evaluate(&unwashed(&zones), &campaign, at);
    assert_eq!(decision.blocked, Some(BlockReason::CampaignWindowClosed));
    assert_eq!(decision.next_eligible_at, None);
}

#[test]
fn calendar_ranks_before_holiday() {
    // At 2028-12-31T13:30Z it is 1 January 2029 00:30 in Sydney, past the
    // calendar, and 31 December 23:00 in Darwin, a New Year's Eve holiday there.
    let zones = [
        explicit("Australia/Darwin")[0],
        explicit("Australia/Sydney")[0],
    ];
    let rules = Rules::default();
    let at = utc("2028-12-31T13:30:00Z");
    let explained = rules.explain_zones(&zones, &research(), at);
    assert_eq!(explained[0].local_time, "2028-12-31T23:00:00+09:30");
    assert_eq!(explained[0].reason, Some(BlockReason::PublicHoliday));
    assert_eq!(explained[1].reason, Some(BlockReason::CalendarNotLoaded));
    let decision = rules.evaluate(&unwashed(&zones), &research(), at);
    assert_eq!(decision.blocked, Some(BlockReason::CalendarNotLoaded));
}

#[test]
fn holiday_ranks_before_hours() {
    // 24 December 2026 at 14:00 UTC: Christmas Day in Sydney, 22:00 on
    // Christmas Eve in Perth.
    let at = utc("2026-12-24T14:00:00Z");
    let rules = Rules::default();
    let decision = rules.evaluate(&unwashed(&ANYWHERE), &research(), at);
    assert_eq!(decision.blocked, Some(BlockReason::PublicHoliday));
    // The zones' order does not matter.
    let mut reversed: Vec<CandidateZone> = ANYWHERE.to_vec();
    reversed.reverse();
    assert_eq!(
        rules
            .evaluate(&unwashed(&reversed), &research(), at)
            .blocked,
        Some(BlockReason::PublicHoliday)
    );
    let perth_first = [
        explicit("Australia/Perth")[0],
        explicit("Australia/Sydney")[0],
    ];
    assert_eq!(
        rules
            .evaluate(&unwashed(&perth_first), &research(), at)
            .blocked,
        Some(BlockReason::PublicHoliday)
    );
}

#[test]
fn campaign_dates_rank_before_holiday() {
    // The campaign starts on 26 December 2026; at 2026-12-24T14:00Z Perth is
    // still before it and Sydney is on Christmas Day.
    let campaign = between((2026, 12, 26), (2027, 1, 31), CallType::Research);
    let zones = [
        explicit("Australia/Sydney")[0],
        explicit("Australia/Perth")[0],
    ];
    let decision =
        Rules::default().evaluate(&unwashed(&zones), &campaign, utc("2026-12-24T14:00:00Z"));
    assert_eq!(decision.blocked, Some(BlockReason::CampaignWindowClosed));
}

#[test]
fn next_eligible_skips_holiday_in_one_zone() {
    // Monday 9 March 2026 is Labour Day in Victoria: an 03 number (Melbourne
    // or Hobart) waits for Tuesday, when both are open.
    let zones = crate::support::zones_of_number("03 5550 2345");
    let decision = Rules::default().evaluate(
        &unwashed(&zones.candidates),
        &research(),
        sydney(2026, 3, 8, 18, 0),
    );
    assert_eq!(
        decision.next_eligible_at,
        Some(local(Tz::Australia__Melbourne, 2026, 3, 10, 9, 0))
    );
}

#[test]
fn custom_calendar_bounds_the_search() {
    let calendar = HolidayCalendar::parse(
        "date,jurisdiction,name,kind,source\n2026-12-25,AU,Christmas Day,national,test\n",
    )
    .expect("valid calendar");
    let rules = Rules {
        calendar: &calendar,
    };
    let zones = explicit("NSW");
    let friday = rules.evaluate(&unwashed(&zones), &research(), sydney(2026, 12, 31, 21, 0));
    assert_eq!(friday.next_eligible_at, None, "2027 is not loaded");
    let decision = rules.evaluate(&unwashed(&zones), &research(), sydney(2027, 1, 4, 10, 0));
    assert_eq!(decision.blocked, Some(BlockReason::CalendarNotLoaded));
}

#[test]
fn contact_without_zones_is_blocked() {
    let decision =
        Rules::default().evaluate(&unwashed(&[]), &research(), sydney(2026, 12, 7, 10, 0));
    assert_eq!(decision.blocked, Some(BlockReason::OutsideCallingWindow));
    assert_eq!(decision.next_eligible_at, None);
}
