//! The register rules: wash currency, wash results, consent, exemptions,
//! suppression and attempts.

use outbound_domain::eligibility::{BlockReason, CampaignRules, Clearance, ContactFacts, Rules};
use outbound_domain::evidence::{Consent, ConsentType, Exemption, RegistryStatus, WashResult};
use outbound_domain::hours::CallType;

use crate::support::{
    date, explicit, local, research, sydney, telemarketing, unwashed, utc, washed,
};

fn with_status(contact: ContactFacts<'_>, status: RegistryStatus) -> ContactFacts<'_> {
    ContactFacts {
        wash: contact.wash.map(|wash| WashResult { status, ..wash }),
        ..contact
    }
}

fn express_consent(given: (i32, u32, u32)) -> Consent {
    Consent {
        consent_type: ConsentType::Express,
        given_on: Some(date(given.0, given.1, given.2)),
        expires_on: None,
        withdrawn_at: None,
    }
}

#[test]
fn wash_is_current_through_w_plus_28() {
    // Received on Friday 20 November 2026 (day W); W + 28 is Friday 18 December.
    let zones = explicit("Australia/Sydney");
    let contact = washed(&zones, sydney(2026, 11, 20, 10, 0));
    let rules = Rules::default();
    let last_day = rules.evaluate(&contact, &telemarketing(), sydney(2026, 12, 18, 19, 59));
    assert!(last_day.allowed());
    assert_eq!(last_day.clearance, Some(Clearance::Wash));
    let day_after = rules.evaluate(&contact, &telemarketing(), sydney(2026, 12, 19, 9, 0));
    assert_eq!(day_after.blocked, Some(BlockReason::DncrWashExpired));
    assert_eq!(day_after.next_eligible_at, None);
}

#[test]
fn wash_days_count_in_sydney() {
    // 19 November 2026 at 14:30 UTC is already 20 November in Sydney.
    let zones = explicit("Australia/Perth");
    let contact = washed(&zones, utc("2026-11-19T14:30:00Z"));
    let rules = Rules::default();
    // Friday 18 December 19:30 in Perth is 22:30 the same day in Sydney.
    let last_day = local(zones[0].zone, 2026, 12, 18, 19, 30);
    assert!(rules
        .evaluate(&contact, &telemarketing(), last_day)
        .allowed());
    // Saturday 19 December 09:00 in Perth is 12:00 in Sydney, day W + 29.
    let day_after = local(zones[0].zone, 2026, 12, 19, 9, 0);
    assert_eq!(
        rules
            .evaluate(&contact, &telemarketing(), day_after)
            .blocked,
        Some(BlockReason::DncrWashExpired)
    );
}

#[test]
fn next_opening_past_wash_expiry_is_never() {
    // Friday 18 December 20:30: the next telemarketing hours are on Saturday
    // 19 December, one day after the wash's last usable day.
    let zones = explicit("Australia/Sydney");
    let contact = washed(&zones, sydney(2026, 11, 20, 10, 0));
    let decision =
        Rules::default().evaluate(&contact, &telemarketing(), sydney(2026, 12, 18, 20, 30));
    assert_eq!(decision.blocked, Some(BlockReason::OutsideCallingWindow));
    assert_eq!(decision.next_eligible_at, None);
    // On Thursday evening the wash still covers Friday morning.
    let thursday =
        Rules::default().evaluate(&contact, &telemarketing(), sydney(2026, 12, 17, 20, 30));
    assert_eq!(thursday.next_eligible_at, Some(sydney(2026, 12, 18, 9, 0)));
}

#[test]
fn wash_received_after_call_day_does_not_count() {
    // Received on Tuesday 8 December 2026 at 15:00.
    let zones = explicit("Australia/Sydney");
    let contact = washed(&zones, sydney(2026, 12, 8, 15, 0));
    let rules = Rules::default();
    let day_before = rules.evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 10, 0));
    assert_eq!(day_before.blocked, Some(BlockReason::DncrUnwashed));
    // Earlier on the day the result arrives is inside the Act's 30-day period.
    let same_day = rules.evaluate(&contact, &telemarketing(), sydney(2026, 12, 8, 10, 0));
    assert!(same_day.allowed());
    assert_eq!(same_day.clearance, Some(Clearance::Wash));
}

#[test]
fn only_not_registered_clears() {
    let zones = explicit("Australia/Sydney");
    let at = sydney(2026, 12, 7, 10, 0);
    let received = sydney(2026, 12, 1, 9, 0);
    let rules = Rules::default();
    let cases = [
        (RegistryStatus::NotRegistered, None),
        (
            RegistryStatus::Registered,
            Some(BlockReason::DncrRegistered),
        ),
        (RegistryStatus::Invalid, Some(BlockReason::DncrInvalid)),
    ];
    for (status, blocked) in cases {
        let contact = with_status(washed(&zones, received), status);
        let decision = rules.evaluate(&contact, &telemarketing(), at);
        assert_eq!(decision.blocked, blocked, "{}", status.as_str());
        if blocked.is_some() {
            assert_eq!(decision.next_eligible_at, None, "{}", status.as_str());
            assert_eq!(decision.clearance, None, "{}", status.as_str());
        }
    }
    let missing = rules.evaluate(&unwashed(&zones), &telemarketing(), at);
    assert_eq!(missing.blocked, Some(BlockReason::DncrUnwashed));
    let stale = rules.evaluate(
        &washed(&zones, sydney(2026, 10, 1, 9, 0)),
        &telemarketing(),
        at,
    );
    assert_eq!(stale.blocked, Some(BlockReason::DncrWashExpired));
}

#[test]
fn research_and_service_need_no_wash() {
    let zones = explicit("Australia/Sydney");
    let at = sydney(2026, 12, 7, 10, 0);
    let registered = with_status(
        washed(&zones, sydney(2026, 12, 1, 9, 0)),
        RegistryStatus::Registered,
    );
    for campaign in [research(), CampaignRules::defaults(CallType::Service)] {
        for contact in [unwashed(&zones), registered.clone()] {
            let decision = Rules::default().evaluate(&contact, &campaign, at);
            assert!(decision.allowed(), "{}", campaign.call_type);
            assert_eq!(decision.clearance, Some(Clearance::NotRequired));
        }
    }
}

#[test]
fn consent_clears_registered_number() {
    let zones = explicit("Australia/Sydney");
    let mut contact = with_status(
        washed(&zones, sydney(2026, 12, 1, 9, 0)),
        RegistryStatus::Registered,
    );
    contact.consent = Some(express_consent((2026, 10, 1)));
    let decision =
        Rules::default().evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 10, 0));
    assert!(decision.allowed());
    assert_eq!(decision.clearance, Some(Clearance::Consent));
}

#[test]
fn express_consent_lapses_after_three_months() {
    // Given on 1 October 2026: covers calls through 31 December 2026.
    let zones = explicit("Australia/Sydney");
    let mut contact = unwashed(&zones);
    contact.consent = Some(express_consent((2026, 10, 1)));
    let rules = Rules::default();
    let last_day = rules.evaluate(&contact, &telemarketing(), sydney(2026, 12, 31, 19, 59));
    assert!(last_day.allowed());
    assert_eq!(last_day.clearance, Some(Clearance::Consent));
    let lapsed = rules.evaluate(&contact, &telemarketing(), sydney(2027, 1, 4, 10, 0));
    assert_eq!(lapsed.blocked, Some(BlockReason::ConsentExpired));
    assert_eq!(lapsed.next_eligible_at, None);
    // After hours on the last day, the next opening (Saturday 2 January) is
    // past the lapse.
    let evening = rules.evaluate(&contact, &telemarketing(), sydney(2026, 12, 31, 20, 0));
    assert_eq!(evening.blocked, Some(BlockReason::OutsideCallingWindow));
    assert_eq!(evening.next_eligible_at, None);
}

#[test]
fn stated_consent_period_replaces_three_months() {
    let zones = explicit("Australia/Sydney");
    let mut contact = unwashed(&zones);
    contact.consent = Some(Consent {
        expires_on: Some(date(2027, 6, 30)),
        ..express_consent((2026, 10, 1))
    });
    let rules = Rules::default();
    assert!(rules
        .evaluate(&contact, &telemarketing(), sydney(2027, 6, 30, 19, 0))
        .allowed());
    assert_eq!(
        rules
            .evaluate(&contact, &telemarketing(), sydney(2027, 7, 1, 10, 0))
            .blocked,
        Some(BlockReason::ConsentExpired)
    );
}

#[test]
fn inferred_consent_has_no_three_month_lapse() {
    let zones = explicit("Australia/Sydney");
    let mut contact = unwashed(&zones);
    contact.consent = Some(Consent {
        consent_type: ConsentType::Inferred,
        ..express_consent((2026, 10, 1))
    });
    let decision = Rules::default().evaluate(&contact, &telemarketing(), sydney(2027, 3, 1, 10, 0));
    assert_eq!(decision.clearance, Some(Clearance::Consent));
}

#[test]
fn consent_not_yet_given_does_not_clear() {
    let zones = explicit("Australia/Sydney");
    let mut contact = unwashed(&zones);
    contact.consent = Some(express_consent((2026, 12, 8)));
    let decision =
        Rules::default().evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 10, 0));
    assert_eq!(decision.blocked, Some(BlockReason::ConsentExpired));
}

#[test]
fn withdrawn_consent_no_longer_clears() {
    let zones = explicit("Australia/Sydney");
    let mut contact = with_status(
        washed(&zones, sydney(2026, 12, 1, 9, 0)),
        RegistryStatus::Registered,
    );
    contact.consent = Some(Consent {
        withdrawn_at: Some(sydney(2026, 12, 7, 11, 0)),
        ..express_consent((2026, 10, 1))
    });
    let rules = Rules::default();
    let before = rules.evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 10, 59));
    assert_eq!(before.clearance, Some(Clearance::Consent));
    assert!(before.allowed());
    let after = rules.evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 11, 0));
    assert_eq!(after.blocked, Some(BlockReason::ConsentWithdrawn));
    assert_eq!(after.next_eligible_at, None);
    // Before the withdrawal, but outside hours: the next opening comes after it.
    let evening = rules.evaluate(&contact, &telemarketing(), sydney(2026, 12, 6, 21, 0));
    assert_eq!(evening.blocked, Some(BlockReason::OutsideCallingWindow));
    assert_eq!(evening.next_eligible_at, Some(sydney(2026, 12, 7, 9, 0)));
}

#[test]
fn campaign_exemption_clears_registered_number() {
    let zones = explicit("Australia/Sydney");
    let contact = with_status(
        washed(&zones, sydney(2026, 12, 1, 9, 0)),
        RegistryStatus::Registered,
    );
    let campaign = CampaignRules {
        exemption: Some(Exemption::Political),
        ..telemarketing()
    };
    let rules = Rules::default();
    let decision = rules.evaluate(&contact, &campaign, sydney(2026, 12, 7, 10, 0));
    assert!(decision.allowed());
    assert_eq!(decision.clearance, Some(Clearance::Exemption));
    // An exemption lifts the register rules, not the calling hours.
    let evening = rules.evaluate(&contact, &campaign, sydney(2026, 12, 7, 20, 0));
    assert_eq!(evening.blocked, Some(BlockReason::OutsideCallingWindow));
    assert_eq!(evening.clearance, Some(Clearance::Exemption));
}

#[test]
fn contact_exemption_clears_unwashed_number() {
    let zones = explicit("Australia/Sydney");
    let mut contact = unwashed(&zones);
    contact.exemption = Some(Exemption::Education);
    let rules = Rules::default();
    let decision = rules.evaluate(&contact, &telemarketing(), sydney(2026, 12, 7, 10, 0));
    assert!(decision.allowed());
    assert_eq!(decision.clearance, Some(Clearance::Exemption));
    let sunday = rules.evaluate(&contact, &telemarketing(), sydney(2026, 12, 13, 10, 0));
    assert_eq!(sunday.blocked, Some(BlockReason::OutsideCallingWindow));
}

#[test]
fn suppressed_contact_is_never_eligible() {
    let zones = explicit("Australia/Sydney");
    let mut contact = unwashed(&zones);
    contact.suppressed = true;
    contact.exemption = Some(Exemption::Charity);
    for campaign in [telemarketing(), research()] {
        let decision = Rules::default().evaluate(&contact, &campaign, sydney(2026, 12, 7, 10, 0));
        assert_eq!(
            decision.blocked,
            Some(BlockReason::Suppressed),
            "{}",
            campaign.call_type
        );
        assert_eq!(decision.next_eligible_at, None);
        assert_eq!(decision.clearance, None);
    }
}

#[test]
fn exhausted_attempts_are_never_eligible() {
    let zones = explicit("Australia/Sydney");
    let mut contact = unwashed(&zones);
    contact.attempts_made = 2;
    contact.max_attempts = 3;
    let at = sydney(2026, 12, 7, 10, 0);
    assert!(Rules::default()
        .evaluate(&contact, &research(), at)
        .allowed());
    contact.attempts_made = 3;
    let decision = Rules::default().evaluate(&contact, &research(), at);
    assert_eq!(decision.blocked, Some(BlockReason::AttemptsExhausted));
    assert_eq!(decision.next_eligible_at, None);
}

#[test]
fn contact_blocks_rank_before_register_and_time() {
    // Suppression outranks exhausted attempts, which outrank the register
    // rules, which outrank the time of day.
    let zones = explicit("Australia/Sydney");
    let mut contact = unwashed(&zones);
    let sunday = sydney(2026, 12, 13, 10, 0);
    let rules = Rules::default();
    assert_eq!(
        rules.evaluate(&contact, &telemarketing(), sunday).blocked,
        Some(BlockReason::DncrUnwashed)
    );
    contact.attempts_made = 3;
    assert_eq!(
        rules.evaluate(&contact, &telemarketing(), sunday).blocked,
        Some(BlockReason::AttemptsExhausted)
    );
    contact.suppressed = true;
    assert_eq!(
        rules.evaluate(&contact, &telemarketing(), sunday).blocked,
        Some(BlockReason::Suppressed)
    );
}
