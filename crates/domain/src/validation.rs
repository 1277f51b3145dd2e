//! Launch validation: every check a campaign must pass before it launches or
//! resumes, with the contacts each check affects.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use crate::calendar::HolidayCalendar;
use crate::eligibility::BlockReason;
use crate::hours::{CallType, CallingWindow};
use crate::phone::{normalise, NumberPolicy, NumberType};

/// How many contact ids a check lists as examples.
pub const SAMPLE_SIZE: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Warning,
    Blocker,
}

/// The checks of launch validation, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    Contacts,
    RegistryWash,
    RegistryStatus,
    ConsentExemption,
    CallingControls,
    Capacity,
    CliDisclosure,
}

/// A contact that a check counts, named by id and import row, never by number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ContactSample {
    pub contact_id: String,
    pub row: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Check {
    pub name: CheckName,
    pub status: CheckStatus,
    pub message: String,
    pub affected_contacts: u64,
    /// Block reasons that the affected contacts have, with counts; exclude
    /// contacts by these reasons to resolve a blocker.
    pub reasons: BTreeMap<String, u64>,
    pub samples: Vec<ContactSample>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ValidationReport {
    /// True when no check is a blocker.
    pub ready: bool,
    pub checks: Vec<Check>,
    pub contacts_total: u64,
    pub contacts_callable: u64,
    pub contacts_excluded: u64,
}

/// The campaign settings validation reads.
#[derive(Debug, Clone)]
pub struct CampaignSettings<'a> {
    pub call_type: CallType,
    pub window: CallingWindow,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub capacity: i32,
    pub caller_id: Option<&'a str>,
    pub organisation: Option<&'a str>,
    pub on_behalf_of: Option<&'a str>,
    pub purpose: Option<&'a str>,
    pub contact_for_questions: Option<&'a str>,
}

/// One contact as validation sees it: the block reason the eligibility engine
/// gave at validation time, ignoring the time of day.
#[derive(Debug, Clone)]
pub struct ContactStatus {
    pub contact_id: String,
    pub row: Option<i64>,
    pub excluded: bool,
    /// Whether the contact has already reached a final state (called, opted out).
    pub finished: bool,
    pub blocked: Option<BlockReason>,
    pub consent_without_evidence: bool,
}

#[derive(Default)]
struct Tally {
    count: u64,
    reasons: BTreeMap<String, u64>,
    samples: Vec<ContactSample>,
}

impl Tally {
    fn add(&mut self, contact: &ContactStatus, reason: Option<BlockReason>) {
        self.count += 1;
        if let Some(reason) = reason {
            *self.reasons.entry(reason.as_str().to_owned()).or_default() += 1;
        }
        if self.samples.len() < SAMPLE_SIZE {
            self.samples.push(ContactSample {
                contact_id: contact.contact_id.clone(),
                row: contact.row,
            });
        }
    }

    fn check(self, name: CheckName, status: CheckStatus, message: String) -> Check {
        Check {
            name,
            status,
            message,
            affected_contacts: self.count,
            reasons: self.reasons,
            samples: self.samples,
        }
    }
}

/// Runs every check over the campaign and its contacts.
pub fn validate<'c>(
    settings: &CampaignSettings<'_>,
    calendar: &HolidayCalendar,
    contacts: impl IntoIterator<Item = &'c ContactStatus>,
) -> ValidationReport {
    let mut total = 0;
    let mut excluded = 0;
    let mut callable = Tally::default();
    let mut wash = Tally::default();
    let mut status = Tally::default();
    let mut consent = Tally::default();
    let mut consent_evidence = Tally::default();
    let mut other_blocked = Tally::default();

    for contact in contacts {
        total += 1;
        if contact.excluded {
            excluded += 1;
            continue;
        }
        if contact.finished {
            continue;
        }
        if contact.consent_without_evidence {
            consent_evidence.add(contact, None);
        }
        match contact.blocked {
            None => callable.add(contact, None),
            Some(reason) if reason.is_temporary() => callable.add(contact, Some(reason)),
            Some(reason @ (BlockReason::DncrUnwashed | BlockReason::DncrWashExpired)) => {
                wash.add(contact, Some(reason))
            }
            Some(reason @ (BlockReason::DncrRegistered | BlockReason::DncrInvalid)) => {
                status.add(contact, Some(reason))
            }
            Some(reason @ (BlockReason::ConsentExpired | BlockReason::ConsentWithdrawn)) => {
                consent.add(contact, Some(reason))
            }
            Some(reason) => other_blocked.add(contact, Some(reason)),
        }
    }

    let callable_count = callable.count;
    let mut checks = Vec::with_capacity(7);

    let contacts_check = if callable_count == 0 {
        callable.check(
            CheckName::Contacts,
            CheckStatus::Blocker,
            "no contact can be called; import contacts or resolve the blockers below".into(),
        )
    } else {
        let message = format!(
            "{callable_count} contacts can be called; {} are suppressed or have no attempts left",
            other_blocked.count
        );
        callable.check(CheckName::Contacts, CheckStatus::Pass, message)
    };
    checks.push(contacts_check);

    checks.push(if !settings.call_type.needs_wash() {
        wash.check(
            CheckName::RegistryWash,
            CheckStatus::Pass,
            format!("{} calls are outside the Do Not Call Register Act; no wash is needed", settings.call_type),
        )
    } else if wash.count > 0 {
        let count = wash.count;
        wash.check(
            CheckName::RegistryWash,
            CheckStatus::Blocker,
            format!("{count} contacts have no current wash result (received within the last 28 days); attach a wash result file or exclude them"),
        )
    } else {
        wash.check(CheckName::RegistryWash, CheckStatus::Pass, "every contact to be called has a current wash result, consent or exemption".into())
    });

    checks.push(if status.count > 0 {
        let count = status.count;
        status.check(
            CheckName::RegistryStatus,
            CheckStatus::Blocker,
            format!("{count} contacts are registered or invalid on the Do Not Call Register without consent or an exemption; exclude them"),
        )
    } else {
        status.check(CheckName::RegistryStatus, CheckStatus::Pass, "no registered number would be called without consent or an exemption".into())
    });

    checks.push(if consent.count > 0 {
        let count = consent.count;
        consent.check(
            CheckName::ConsentExemption,
            CheckStatus::Blocker,
            format!("{count} contacts rely on consent that has expired or was withdrawn; exclude them or import current consent"),
        )
    } else if consent_evidence.count > 0 {
        let count = consent_evidence.count;
        consent_evidence.check(
            CheckName::ConsentExemption,
            CheckStatus::Warning,
            format!("{count} contacts rely on consent without a consent_evidence reference"),
        )
    } else {
        consent.check(CheckName::ConsentExemption, CheckStatus::Pass, "every consent or exemption relied on is current".into())
    });

    checks.push(calling_controls(settings, calendar));
    checks.push(capacity(settings));
    checks.push(cli_disclosure(settings));

    let ready = checks
        .iter()
        .all(|check| check.status != CheckStatus::Blocker);
    ValidationReport {
        ready,
        checks,
        contacts_total: total,
        contacts_callable: callable_count,
        contacts_excluded: excluded,
    }
}

fn settings_check(
    name: CheckName,
    problems: Vec<String>,
    warnings: Vec<String>,
    pass: &str,
) -> Check {
    let (status, message) = if !problems.is_empty() {
        (CheckStatus::Blocker, problems.join("; "))
    } else if !warnings.is_empty() {
        (CheckStatus::Warning, warnings.join("; "))
    } else {
        (CheckStatus::Pass, pass.to_owned())
    };
    Check {
        name,
        status,
        message,
        affected_contacts: 0,
        reasons: BTreeMap::new(),
        samples: Vec::new(),
    }
}

fn calling_controls(settings: &CampaignSettings<'_>, calendar: &HolidayCalendar) -> Check {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if let Some(legal) = settings.call_type.legal_window() {
        if !settings.window.within(&legal) {
            problems.push(format!(
                "the calling window is wider than the legal {} hours; narrow it",
                settings.call_type
            ));
        }
    }
    if settings.window.is_empty() {
        problems.push("the calling window allows no day of the week".into());
    }
    let (first, last) = calendar.coverage();
    match (settings.start_date, settings.end_date) {
        (Some(start), Some(end)) if end < start => {
            problems.push("end_date is before start_date".into());
        }
        _ => {}
    }
    if settings.end_date.is_some_and(|end| end > last) {
        problems.push(format!(
            "the campaign runs past the public-holiday calendar, which ends on {last}; set an earlier end_date"
        ));
    }
    if settings.start_date.is_some_and(|start| start < first) {
        problems.push(format!(
            "the campaign starts before the public-holiday calendar, which begins on {first}"
        ));
    }
    if settings.end_date.is_none() {
        warnings.push(format!(
            "no end_date: calls stop when the public-holiday calendar ends on {last}"
        ));
    }
    settings_check(
        CheckName::CallingControls,
        problems,
        warnings,
        "calling window, holiday calendar and recipient time zones cover the campaign's dates",
    )
}

fn capacity(settings: &CampaignSettings<'_>) -> Check {
    let problems = if settings.capacity > 0 {
        Vec::new()
    } else {
        vec!["capacity (concurrent calls) must be above zero".to_owned()]
    };
    settings_check(
        CheckName::Capacity,
        problems,
        Vec::new(),
        "capacity is configured",
    )
}

/// Whether a caller ID is a withheld or private marker instead of a number.
fn is_withheld(caller_id: &str) -> bool {
    let lower = caller_id.trim().to_ascii_lowercase();
    [
        "private",
        "withheld",
        "anonymous",
        "unknown",
        "restricted",
        "blocked",
        "hidden",
    ]
    .iter()
    .any(|marker| lower.contains(marker))
}

fn cli_disclosure(settings: &CampaignSettings<'_>) -> Check {
    let mut problems = Vec::new();
    match settings.caller_id.map(str::trim).filter(|c| !c.is_empty()) {
        None => problems
            .push("caller_id is missing; calling line identification must be shown".to_owned()),
        Some(caller_id) if is_withheld(caller_id) => problems.push(
            "caller_id is withheld or private; a number the recipient can call back is required"
                .into(),
        ),
        Some(caller_id) => match normalise(
            caller_id,
            NumberPolicy {
                allow_non_geographic: true,
            },
        ) {
            Ok(number) if number.number_type != NumberType::Special => {}
            _ => problems.push(
                "caller_id is not a valid Australian number the recipient can call back".into(),
            ),
        },
    }
    let required = [
        ("organisation", settings.organisation, true),
        (
            "on_behalf_of",
            settings.on_behalf_of,
            settings.call_type != CallType::Research,
        ),
        ("purpose", settings.purpose, true),
        (
            "contact_for_questions",
            settings.contact_for_questions,
            true,
        ),
    ];
    for (field, value, needed) in required {
        if needed && value.is_none_or(|v| v.trim().is_empty()) {
            problems.push(format!("disclosure field {field} is missing"));
        }
    }
    settings_check(
        CheckName::CliDisclosure,
        problems,
        Vec::new(),
        "caller ID and disclosure fields are present and valid",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CampaignSettings<'static> {
        CampaignSettings {
            call_type: CallType::Telemarketing,
            window: CallingWindow::TELEMARKETING,
            start_date: NaiveDate::from_ymd_opt(2026, 12, 7),
            end_date: NaiveDate::from_ymd_opt(2026, 12, 18),
            capacity: 10,
            caller_id: Some("02 5550 1234"),
            organisation: Some("Example Calls Pty Ltd"),
            on_behalf_of: Some("Example Energy"),
            purpose: Some("energy plan offer"),
            contact_for_questions: Some("1800 160 401"),
        }
    }

    fn contact(id: &str, blocked: Option<BlockReason>) -> ContactStatus {
        ContactStatus {
            contact_id: id.into(),
            row: Some(1),
            excluded: false,
            finished: false,
            blocked,
            consent_without_evidence: false,
        }
    }

    fn status_of(report: &ValidationReport, name: CheckName) -> CheckStatus {
        report
            .checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.status)
            .expect("check present")
    }

    #[test]
    fn clean_campaign_is_ready() {
        let contacts = [
            contact("a", None),
            contact("b", Some(BlockReason::OutsideCallingWindow)),
        ];
        let report = validate(&settings(), HolidayCalendar::bundled(), &contacts);
        assert!(report.ready, "{report:?}");
        assert_eq!(report.contacts_callable, 2);
        assert_eq!(report.checks.len(), 7);
    }

    #[test]
    fn registered_contacts_block_until_excluded() {
        let mut contacts = vec![
            contact("a", None),
            contact("b", Some(BlockReason::DncrRegistered)),
        ];
        let report = validate(&settings(), HolidayCalendar::bundled(), &contacts);
        assert!(!report.ready);
        assert_eq!(
            status_of(&report, CheckName::RegistryStatus),
            CheckStatus::Blocker
        );
        let check = report
            .checks
            .iter()
            .find(|c| c.name == CheckName::RegistryStatus)
            .expect("present");
        assert_eq!(check.affected_contacts, 1);
        assert_eq!(check.reasons.get("dncr_registered"), Some(&1));
        assert_eq!(check.samples[0].contact_id, "b");

        contacts[1].excluded = true;
        let report = validate(&settings(), HolidayCalendar::bundled(), &contacts);
        assert!(report.ready);
        assert_eq!(report.contacts_excluded, 1);
    }

    #[test]
    fn unwashed_contacts_block_telemarketing_only() {
        let contacts = [
            contact("a", None),
            contact("b", Some(BlockReason::DncrUnwashed)),
        ];
        let report = validate(&settings(), HolidayCalendar::bundled(), &contacts);
        assert_eq!(
            status_of(&report, CheckName::RegistryWash),
            CheckStatus::Blocker
        );
    }

    #[test]
    fn no_callable_contact_blocks() {
        let report = validate(&settings(), HolidayCalendar::bundled(), &[]);
        assert_eq!(
            status_of(&report, CheckName::Contacts),
            CheckStatus::Blocker
        );
    }

    #[test]
    fn wider_window_is_a_blocker() {
        let mut wide = settings();
        wide.window.weekdays = crate::hours::DayWindow::parse("08:00", "20:00").ok();
        let report = validate(&wide, HolidayCalendar::bundled(), &[contact("a", None)]);
        assert_eq!(
            status_of(&report, CheckName::CallingControls),
            CheckStatus::Blocker
        );
    }

    #[test]
    fn dates_past_calendar_are_a_blocker() {
        let mut late = settings();
        late.end_date = NaiveDate::from_ymd_opt(2031, 1, 1);
        let report = validate(&late, HolidayCalendar::bundled(), &[contact("a", None)]);
        assert_eq!(
            status_of(&report, CheckName::CallingControls),
            CheckStatus::Blocker
        );
    }

    #[test]
    fn zero_capacity_is_a_blocker() {
        let mut none = settings();
        none.capacity = 0;
        let report = validate(&none, HolidayCalendar::bundled(), &[contact("a", None)]);
        assert_eq!(
            status_of(&report, CheckName::Capacity),
            CheckStatus::Blocker
        );
    }

    #[test]
    fn withheld_caller_id_and_missing_disclosure_block() {
        for caller_id in [
            None,
            Some("PRIVATE"),
            Some("Withheld"),
            Some("0491 57A 632"),
            Some("000"),
        ] {
            let mut bad = settings();
            bad.caller_id = caller_id;
            let report = validate(&bad, HolidayCalendar::bundled(), &[contact("a", None)]);
            assert_eq!(
                status_of(&report, CheckName::CliDisclosure),
                CheckStatus::Blocker,
                "{caller_id:?}"
            );
        }
        let mut missing = settings();
        missing.purpose = None;
        let report = validate(&missing, HolidayCalendar::bundled(), &[contact("a", None)]);
        assert_eq!(
            status_of(&report, CheckName::CliDisclosure),
            CheckStatus::Blocker
        );
    }

    #[test]
    fn research_needs_no_on_behalf_of() {
        let mut research = settings();
        research.call_type = CallType::Research;
        research.window = CallingWindow::RESEARCH;
        research.on_behalf_of = None;
        let report = validate(&research, HolidayCalendar::bundled(), &[contact("a", None)]);
        assert_eq!(
            status_of(&report, CheckName::CliDisclosure),
            CheckStatus::Pass
        );
    }
}
