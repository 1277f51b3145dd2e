//! Benchmarks of the hot paths, run with `outbound bench KIND`. Each prints
//! human-readable lines and then, as its last line, one JSON object with the
//! figures.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use clap::{Args, Subcommand};
use outbound_domain::eligibility::{CampaignRules, ContactFacts, Rules};
use outbound_domain::evidence::{Consent, ConsentType, Exemption, RegistryStatus, WashResult};
use outbound_domain::hours::CallType;
use outbound_domain::phone::{normalise, NumberPolicy};
use outbound_domain::zone::{
    candidates_for_number, parse_recipient_timezone, CandidateZone, ZoneGroup,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Decisions per second of the eligibility rules on one thread.
    Eligibility(EligibilityBenchArgs),
    /// Hand-overs per second of the dispatcher and signed webhook events per
    /// second, against server processes, PostgreSQL and the simulated platform.
    Dispatch(crate::bench_dispatch::DispatchBenchArgs),
    /// Contact rows per second imported over HTTP, against a PostgreSQL COPY floor.
    Import(crate::bench_import::ImportBenchArgs),
}

#[derive(Args)]
pub struct EligibilityBenchArgs {
    /// How long to run the timed loop, in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Seed of the random contact mix and instants, so runs are comparable.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Eligibility(args) => eligibility(&args),
        BenchCommand::Dispatch(args) => crate::bench_dispatch::run(args),
        BenchCommand::Import(args) => crate::bench_import::run_blocking(&args),
    }
}

/// How many distinct contacts the mix has.
const CONTACTS: usize = 4096;
/// How many prepared requests the timed loop cycles through.
const REQUESTS: usize = 1 << 16;
/// How many decisions run between two reads of the clock.
const DECISIONS_PER_CLOCK_READ: usize = 4096;

/// The source of a benchmark contact's zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ContactKind {
    MobileUnknownZone,
    MobileExplicitZone,
    MobileStateCode,
    Landline,
}

impl ContactKind {
    fn label(self) -> &'static str {
        match self {
            ContactKind::MobileUnknownZone => "mobiles with unknown zone",
            ContactKind::MobileExplicitZone => "mobiles with an explicit IANA zone",
            ContactKind::MobileStateCode => "mobiles with a state code",
            ContactKind::Landline => "landlines (every area code)",
        }
    }
}

/// The register evidence of a benchmark contact, which may or may not clear a telemarketing call.
#[derive(Debug, Clone, Copy)]
enum Register {
    /// Washed `not_registered`, `age_days` before the call.
    Washed { age_days: u64 },
    /// Washed `registered`, with express consent given `age_days` before the call.
    RegisteredWithConsent { age_days: u64 },
    /// Washed `registered` with no consent.
    Registered,
    /// A designated-call exemption on the contact.
    Exempt,
    /// No wash result.
    Unwashed,
}

struct BenchContact {
    kind: ContactKind,
    zones: Vec<CandidateZone>,
    register: Register,
    suppressed: bool,
    attempts_made: u32,
}

/// The last line of the eligibility benchmark's output.
#[derive(Serialize)]
struct Summary {
    decisions: u64,
    seconds: f64,
    decisions_per_sec: u64,
    threads: u32,
}

struct Request {
    contact: usize,
    campaign: usize,
    at: DateTime<Utc>,
}

/// Fictitious landlines of every area (ACMA's numbers for creative works),
/// plus the Lord Howe Island exchange, which the zone rules single out.
const LANDLINES: [&str; 9] = [
    "02 5550 1234",
    "02 7010 4321",
    "03 5550 2345",
    "03 7010 5432",
    "07 5550 3456",
    "07 7010 6543",
    "08 5550 4567",
    "08 7010 7654",
    "02 6563 7010",
];

const EXPLICIT_ZONES: [&str; 12] = [
    "Australia/Sydney",
    "Australia/Melbourne",
    "Australia/Brisbane",
    "Australia/Adelaide",
    "Australia/Perth",
    "Australia/Hobart",
    "Australia/Darwin",
    "Australia/Lord_Howe",
    "Australia/Eucla",
    "Australia/Broken_Hill",
    "Indian/Christmas",
    "Indian/Cocos",
];

const STATE_CODES: [&str; 8] = ["NSW", "VIC", "QLD", "SA", "WA", "TAS", "NT", "ACT"];

fn build_contacts(rng: &mut StdRng) -> anyhow::Result<Vec<BenchContact>> {
    let mut contacts = Vec::with_capacity(CONTACTS);
    for _ in 0..CONTACTS {
        let roll = rng.gen_range(0..100);
        let (kind, zones) = if roll < 60 {
            (
                ContactKind::MobileUnknownZone,
                ZoneGroup::Anywhere.candidates().to_vec(),
            )
        } else if roll < 70 {
            let name = EXPLICIT_ZONES[rng.gen_range(0..EXPLICIT_ZONES.len())];
            let zone = parse_recipient_timezone(name)?;
            (ContactKind::MobileExplicitZone, vec![zone.candidate()])
        } else if roll < 75 {
            let code = STATE_CODES[rng.gen_range(0..STATE_CODES.len())];
            let zone = parse_recipient_timezone(code)?;
            (ContactKind::MobileStateCode, vec![zone.candidate()])
        } else {
            let text = LANDLINES[rng.gen_range(0..LANDLINES.len())];
            let number = normalise(text, NumberPolicy::default())?;
            let zones = candidates_for_number(&number.e164, number.number_type);
            (ContactKind::Landline, zones.candidates)
        };
        let roll = rng.gen_range(0..100);
        let register = if roll < 60 {
            Register::Washed {
                age_days: rng.gen_range(0..28),
            }
        } else if roll < 70 {
            // Stale: received more than 28 days before the call.
            Register::Washed {
                age_days: rng.gen_range(29..90),
            }
        } else if roll < 85 {
            Register::RegisteredWithConsent {
                age_days: rng.gen_range(0..120),
            }
        } else if roll < 90 {
            Register::Registered
        } else if roll < 95 {
            Register::Exempt
        } else {
            Register::Unwashed
        };
        contacts.push(BenchContact {
            kind,
            zones,
            register,
            suppressed: rng.gen_bool(0.01),
            attempts_made: if rng.gen_bool(0.02) { 3 } else { 0 },
        });
    }
    Ok(contacts)
}

/// Campaign settings of the mix: each call type's defaults, one with state
/// holidays allowed and one limited to a few weeks of 2026.
fn build_campaigns() -> Vec<CampaignRules> {
    let mut campaigns = vec![
        CampaignRules::defaults(CallType::Telemarketing),
        CampaignRules::defaults(CallType::Telemarketing),
        CampaignRules::defaults(CallType::Telemarketing),
        CampaignRules::defaults(CallType::Research),
        CampaignRules::defaults(CallType::Service),
    ];
    campaigns[1].block_state_holidays = false;
    campaigns[2].start_date = NaiveDate::from_ymd_opt(2026, 11, 2);
    campaigns[2].end_date = NaiveDate::from_ymd_opt(2026, 12, 24);
    campaigns
}

fn build_requests(rng: &mut StdRng, campaigns: usize) -> Vec<Request> {
    let first = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .map(|at| at.timestamp())
        .unwrap_or_default();
    let last = Utc
        .with_ymd_and_hms(2028, 1, 1, 0, 0, 0)
        .single()
        .map(|at| at.timestamp())
        .unwrap_or_default();
    (0..REQUESTS)
        .map(|_| Request {
            contact: rng.gen_range(0..CONTACTS),
            campaign: rng.gen_range(0..campaigns),
            at: DateTime::from_timestamp(rng.gen_range(first..last), 0).unwrap_or_default(),
        })
        .collect()
}

/// Builds the contact's facts at the request's instant. Wash and consent ages
/// count back from the instant, so a share of washes is current at any time.
fn facts_at<'z>(contact: &'z BenchContact, at: DateTime<Utc>) -> ContactFacts<'z> {
    let days_before = |age_days: u64| at.checked_sub_days(Days::new(age_days)).unwrap_or(at);
    let (wash, consent, exemption) = match contact.register {
        Register::Washed { age_days } => (
            Some(WashResult {
                status: RegistryStatus::NotRegistered,
                checked_at: days_before(age_days),
            }),
            None,
            None,
        ),
        Register::RegisteredWithConsent { age_days } => (
            Some(WashResult {
                status: RegistryStatus::Registered,
                checked_at: days_before(1),
            }),
            Some(Consent {
                consent_type: ConsentType::Express,
                given_on: Some(days_before(age_days).date_naive()),
                expires_on: None,
                withdrawn_at: None,
            }),
            None,
        ),
        Register::Registered => (
            Some(WashResult {
                status: RegistryStatus::Registered,
                checked_at: days_before(3),
            }),
            None,
            None,
        ),
        Register::Exempt => (None, None, Some(Exemption::Charity)),
        Register::Unwashed => (None, None, None),
    };
    ContactFacts {
        zones: &contact.zones,
        wash,
        consent,
        exemption,
        suppressed: contact.suppressed,
        attempts_made: contact.attempts_made,
        max_attempts: 3,
    }
}

fn eligibility(args: &EligibilityBenchArgs) -> anyhow::Result<()> {
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        anyhow::bail!(
            "--seconds must be above 0 and at most 3600, got {}",
            args.seconds
        );
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let contacts = build_contacts(&mut rng)?;
    let campaigns = build_campaigns();
    let requests = build_requests(&mut rng, campaigns.len());
    // The facts are built before the timed loop, so it measures `evaluate` alone.
    let facts: Vec<ContactFacts<'_>> = requests
        .iter()
        .map(|request| facts_at(&contacts[request.contact], request.at))
        .collect();
    let rules = Rules::default();

    let mut kinds: BTreeMap<ContactKind, usize> = BTreeMap::new();
    for contact in &contacts {
        *kinds.entry(contact.kind).or_default() += 1;
    }
    println!(
        "eligibility benchmark: {} contacts, {} prepared requests over 2026-2027, seed {}",
        contacts.len(),
        requests.len(),
        args.seed
    );
    for (kind, count) in &kinds {
        println!("  {count:>5} {}", kind.label());
    }

    // One untimed pass warms the caches and counts the outcomes of the mix.
    let mut outcomes: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (request, facts) in requests.iter().zip(&facts) {
        let decision = rules.evaluate(facts, &campaigns[request.campaign], request.at);
        let label = decision.blocked.map_or("allowed", |reason| reason.as_str());
        *outcomes.entry(label).or_default() += 1;
    }
    let outcome_text: Vec<String> = outcomes
        .iter()
        .map(|(label, count)| {
            format!(
                "{label} {:.1}%",
                100.0 * *count as f64 / requests.len() as f64
            )
        })
        .collect();
    println!("  outcomes: {}", outcome_text.join(", "));

    let budget = Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut decisions: u64 = 0;
    let mut allowed: u64 = 0;
    let mut index = 0;
    loop {
        for _ in 0..DECISIONS_PER_CLOCK_READ {
            let request = &requests[index];
            let decision = rules.evaluate(
                black_box(&facts[index]),
                &campaigns[request.campaign],
                black_box(request.at),
            );
            allowed += u64::from(black_box(decision).allowed());
            index = (index + 1) % requests.len();
        }
        decisions += DECISIONS_PER_CLOCK_READ as u64;
        if started.elapsed() >= budget {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = decisions as f64 / seconds;
    println!(
        "  {decisions} decisions in {seconds:.3} s on 1 thread: {rate:.0} decisions/s ({:.0} ns each, {allowed} allowed)",
        1e9 / rate
    );
    let summary = Summary {
        decisions,
        seconds: (seconds * 1000.0).round() / 1000.0,
        decisions_per_sec: rate.round() as u64,
        threads: 1,
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
