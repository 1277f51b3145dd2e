//! Recipient time zones: parsing an explicit `recipient_timezone`, and the set of
//! candidate zones a number implies when no zone is given.

use std::str::FromStr;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::phone::{NumberType, PhoneE164};

/// Australian states and territories with their own public-holiday calendars.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Nsw,
    Vic,
    Qld,
    Sa,
    Wa,
    Tas,
    Nt,
    Act,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Nsw,
        State::Vic,
        State::Qld,
        State::Sa,
        State::Wa,
        State::Tas,
        State::Nt,
        State::Act,
    ];

    pub fn code(self) -> &'static str {
        match self {
            State::Nsw => "NSW",
            State::Vic => "VIC",
            State::Qld => "QLD",
            State::Sa => "SA",
            State::Wa => "WA",
            State::Tas => "TAS",
            State::Nt => "NT",
            State::Act => "ACT",
        }
    }

    pub fn parse(code: &str) -> Option<State> {
        State::ALL
            .into_iter()
            .find(|state| state.code().eq_ignore_ascii_case(code))
    }

    /// The zone a state code maps to when it is given as `recipient_timezone`.
    pub fn zone(self) -> Tz {
        match self {
            State::Nsw | State::Act => Tz::Australia__Sydney,
            State::Vic => Tz::Australia__Melbourne,
            State::Qld => Tz::Australia__Brisbane,
            State::Sa => Tz::Australia__Adelaide,
            State::Wa => Tz::Australia__Perth,
            State::Tas => Tz::Australia__Hobart,
            State::Nt => Tz::Australia__Darwin,
        }
    }
}

/// Where a contact's zone came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ZoneSource {
    /// Given in the contact's `recipient_timezone`.
    Explicit,
    /// Derived from a geographic number's area code.
    Inferred,
    /// No location: every Australian mainland and Lord Howe zone applies.
    Unknown,
}

impl ZoneSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneSource::Explicit => "explicit",
            ZoneSource::Inferred => "inferred",
            ZoneSource::Unknown => "unknown",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "explicit" => ZoneSource::Explicit,
            "inferred" => ZoneSource::Inferred,
            "unknown" => ZoneSource::Unknown,
            _ => return None,
        })
    }
}

/// One zone a call must be allowed in, with the states whose holidays apply there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidateZone {
    pub zone: Tz,
    pub states: &'static [State],
}

/// The zones a call to one contact is checked in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientZones {
    pub source: ZoneSource,
    pub candidates: Vec<CandidateZone>,
}

/// An explicit `recipient_timezone` after parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExplicitZone {
    pub zone: Tz,
    /// Set when a state code was given; it narrows the holiday calendar to that state.
    pub state: Option<State>,
}

impl ExplicitZone {
    /// The stored form: the state code when one was given, else the canonical zone name.
    pub fn stored_form(&self) -> String {
        match self.state {
            Some(state) => state.code().to_owned(),
            None => self.zone.name().to_owned(),
        }
    }

    pub fn candidate(&self) -> CandidateZone {
        let states = match self.state {
            Some(state) => single_state(state),
            None => states_of_zone(self.zone),
        };
        CandidateZone {
            zone: self.zone,
            states,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    #[error("time zone abbreviations such as AEST are ambiguous and ignore daylight saving; use an IANA name such as Australia/Sydney or a state code")]
    Abbreviation,
    #[error("fixed UTC offsets ignore daylight saving; use an IANA name such as Australia/Adelaide or a state code")]
    FixedOffset,
    #[error(
        "not an Australian IANA time zone or state code (NSW, VIC, QLD, SA, WA, TAS, NT, ACT)"
    )]
    Unknown,
}

const ABBREVIATIONS: [&str; 12] = [
    "AEST", "AEDT", "ACST", "ACDT", "AWST", "AWDT", "ACWST", "LHST", "LHDT", "AET", "EST", "CST",
];

/// Australian zone links and their canonical zones (IANA tzdata `backward`).
const LINKS: [(&str, Tz); 12] = [
    ("Australia/ACT", Tz::Australia__Sydney),
    ("Australia/Canberra", Tz::Australia__Sydney),
    ("Australia/NSW", Tz::Australia__Sydney),
    ("Australia/North", Tz::Australia__Darwin),
    ("Australia/Queensland", Tz::Australia__Brisbane),
    ("Australia/South", Tz::Australia__Adelaide),
    ("Australia/Tasmania", Tz::Australia__Hobart),
    ("Australia/Victoria", Tz::Australia__Melbourne),
    ("Australia/West", Tz::Australia__Perth),
    ("Australia/Yancowinna", Tz::Australia__Broken_Hill),
    ("Australia/LHI", Tz::Australia__Lord_Howe),
    ("Australia/Currie", Tz::Australia__Hobart),
];

/// Canonical zones of Australia and its external territories that a contact may name.
const AUSTRALIAN_ZONES: [Tz; 17] = [
    Tz::Australia__Sydney,
    Tz::Australia__Melbourne,
    Tz::Australia__Brisbane,
    Tz::Australia__Lindeman,
    Tz::Australia__Adelaide,
    Tz::Australia__Broken_Hill,
    Tz::Australia__Darwin,
    Tz::Australia__Perth,
    Tz::Australia__Eucla,
    Tz::Australia__Hobart,
    Tz::Australia__Lord_Howe,
    Tz::Antarctica__Macquarie,
    Tz::Indian__Christmas,
    Tz::Indian__Cocos,
    Tz::Pacific__Norfolk,
    Tz::Antarctica__Casey,
    Tz::Antarctica__Mawson,
];

/// Parses a contact's `recipient_timezone`: an IANA name (trimmed, any case,
/// links accepted and stored in canonical form) or a state or territory code.
///
/// # Errors
/// Rejects abbreviations (`AEST`), fixed offsets (`+10:00`, `UTC+9.5`,
/// `Etc/GMT-10`) and anything that is not an Australian zone.
pub fn parse_recipient_timezone(input: &str) -> Result<ExplicitZone, ZoneError> {
    let text = input.trim();
    if let Some(state) = State::parse(text) {
        return Ok(ExplicitZone {
            zone: state.zone(),
            state: Some(state),
        });
    }
    if ABBREVIATIONS.iter().any(|a| a.eq_ignore_ascii_case(text)) {
        return Err(ZoneError::Abbreviation);
    }
    if looks_like_fixed_offset(text) {
        return Err(ZoneError::FixedOffset);
    }
    if let Some((_, zone)) = LINKS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
    {
        return Ok(ExplicitZone {
            zone: *zone,
            state: None,
        });
    }
    AUSTRALIAN_ZONES
        .into_iter()
        .find(|zone| zone.name().eq_ignore_ascii_case(text))
        .map(|zone| ExplicitZone { zone, state: None })
        .ok_or(ZoneError::Unknown)
}

fn looks_like_fixed_offset(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    let rest = upper
        .strip_prefix("ETC/")
        .unwrap_or(&upper)
        .trim_start_matches("UTC")
        .trim_start_matches("GMT");
    upper.starts_with("ETC/")
        || matches!(upper.as_str(), "UTC" | "GMT" | "Z")
        || (rest.starts_with(['+', '-']) && rest[1..].bytes().any(|b| b.is_ascii_digit()))
}

/// Parses a canonical zone name stored by this crate.
pub fn parse_stored_zone(name: &str) -> Option<Tz> {
    Tz::from_str(name).ok()
}

fn single_state(state: State) -> &'static [State] {
    match state {
        State::Nsw => &[State::Nsw],
        State::Vic => &[State::Vic],
        State::Qld => &[State::Qld],
        State::Sa => &[State::Sa],
        State::Wa => &[State::Wa],
        State::Tas => &[State::Tas],
        State::Nt => &[State::Nt],
        State::Act => &[State::Act],
    }
}

/// The states whose holidays apply in a zone when only the zone is known.
/// Sydney covers both NSW and ACT; the Indian Ocean and Norfolk territories have
/// no state calendar here, so only national holidays apply there.
pub fn states_of_zone(zone: Tz) -> &'static [State] {
    match zone {
        Tz::Australia__Sydney => &[State::Nsw, State::Act],
        Tz::Australia__Broken_Hill | Tz::Australia__Lord_Howe => &[State::Nsw],
        Tz::Australia__Melbourne => &[State::Vic],
        Tz::Australia__Brisbane | Tz::Australia__Lindeman => &[State::Qld],
        Tz::Australia__Adelaide => &[State::Sa],
        Tz::Australia__Darwin => &[State::Nt],
        Tz::Australia__Perth | Tz::Australia__Eucla => &[State::Wa],
        Tz::Australia__Hobart | Tz::Antarctica__Macquarie => &[State::Tas],
        _ => &[],
    }
}

const fn candidate(zone: Tz, states: &'static [State]) -> CandidateZone {
    CandidateZone { zone, states }
}

const LORD_HOWE: [CandidateZone; 1] = [candidate(Tz::Australia__Lord_Howe, &[State::Nsw])];
const EASTERN_02: [CandidateZone; 1] =
    [candidate(Tz::Australia__Sydney, &[State::Nsw, State::Act])];
const SOUTH_EASTERN_03: [CandidateZone; 2] = [
    candidate(Tz::Australia__Melbourne, &[State::Vic]),
    candidate(Tz::Australia__Hobart, &[State::Tas]),
];
const NORTH_EASTERN_07: [CandidateZone; 2] = [
    candidate(Tz::Australia__Brisbane, &[State::Qld]),
    candidate(Tz::Australia__Sydney, &[State::Nsw]),
];
const INDIAN_OCEAN: [CandidateZone; 2] = [
    candidate(Tz::Indian__Christmas, &[]),
    candidate(Tz::Indian__Cocos, &[]),
];
const CENTRAL_WEST_08: [CandidateZone; 5] = [
    candidate(Tz::Australia__Perth, &[State::Wa]),
    candidate(Tz::Australia__Eucla, &[State::Wa]),
    candidate(Tz::Australia__Darwin, &[State::Nt]),
    candidate(Tz::Australia__Adelaide, &[State::Sa]),
    candidate(Tz::Australia__Broken_Hill, &[State::Nsw]),
];
/// No location: every mainland zone and Lord Howe. External territories need an
/// explicit zone.
pub const ANYWHERE: [CandidateZone; 10] = [
    candidate(Tz::Australia__Perth, &[State::Wa]),
    candidate(Tz::Australia__Eucla, &[State::Wa]),
    candidate(Tz::Australia__Darwin, &[State::Nt]),
    candidate(Tz::Australia__Adelaide, &[State::Sa]),
    candidate(Tz::Australia__Broken_Hill, &[State::Nsw]),
    candidate(Tz::Australia__Brisbane, &[State::Qld]),
    candidate(Tz::Australia__Sydney, &[State::Nsw, State::Act]),
    candidate(Tz::Australia__Melbourne, &[State::Vic]),
    candidate(Tz::Australia__Hobart, &[State::Tas]),
    candidate(Tz::Australia__Lord_Howe, &[State::Nsw]),
];

/// The candidate-zone sets numbers fall into, stored on a contact by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneGroup {
    LordHowe,
    Area02,
    Area03,
    Area07,
    IndianOcean,
    Area08,
    Anywhere,
}

impl ZoneGroup {
    pub const ALL: [ZoneGroup; 7] = [
        ZoneGroup::LordHowe,
        ZoneGroup::Area02,
        ZoneGroup::Area03,
        ZoneGroup::Area07,
        ZoneGroup::IndianOcean,
        ZoneGroup::Area08,
        ZoneGroup::Anywhere,
    ];

    /// The group a number falls into, from its type and area code.
    pub fn of_number(number: &PhoneE164, number_type: NumberType) -> ZoneGroup {
        let nsn = number.national_significant();
        if number_type != NumberType::Geographic {
            ZoneGroup::Anywhere
        } else if nsn.starts_with("26563") {
            ZoneGroup::LordHowe
        } else if nsn.starts_with('2') {
            ZoneGroup::Area02
        } else if nsn.starts_with('3') {
            ZoneGroup::Area03
        } else if nsn.starts_with('7') {
            ZoneGroup::Area07
        } else if nsn.starts_with("89162") || nsn.starts_with("89164") {
            ZoneGroup::IndianOcean
        } else if nsn.starts_with('8') {
            ZoneGroup::Area08
        } else {
            ZoneGroup::Anywhere
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            ZoneGroup::LordHowe => "area:02-6563",
            ZoneGroup::Area02 => "area:02",
            ZoneGroup::Area03 => "area:03",
            ZoneGroup::Area07 => "area:07",
            ZoneGroup::IndianOcean => "area:08-9162",
            ZoneGroup::Area08 => "area:08",
            ZoneGroup::Anywhere => "anywhere",
        }
    }

    pub fn parse(key: &str) -> Option<ZoneGroup> {
        ZoneGroup::ALL.into_iter().find(|group| group.key() == key)
    }

    pub fn candidates(self) -> &'static [CandidateZone] {
        match self {
            ZoneGroup::LordHowe => &LORD_HOWE,
            ZoneGroup::Area02 => &EASTERN_02,
            ZoneGroup::Area03 => &SOUTH_EASTERN_03,
            ZoneGroup::Area07 => &NORTH_EASTERN_07,
            ZoneGroup::IndianOcean => &INDIAN_OCEAN,
            ZoneGroup::Area08 => &CENTRAL_WEST_08,
            ZoneGroup::Anywhere => &ANYWHERE,
        }
    }

    pub fn source(self) -> ZoneSource {
        match self {
            ZoneGroup::Anywhere => ZoneSource::Unknown,
            _ => ZoneSource::Inferred,
        }
    }
}

/// The candidate zones a number implies, from its area code.
pub fn candidates_for_number(number: &PhoneE164, number_type: NumberType) -> RecipientZones {
    let group = ZoneGroup::of_number(number, number_type);
    RecipientZones {
        source: group.source(),
        candidates: group.candidates().to_vec(),
    }
}

/// A contact's zone as stored: the explicit zone's stored form, or a group key.
pub fn stored_zone_key(explicit: Option<&ExplicitZone>, group: ZoneGroup) -> (ZoneSource, String) {
    match explicit {
        Some(zone) => (ZoneSource::Explicit, zone.stored_form()),
        None => (group.source(), group.key().to_owned()),
    }
}

/// Rebuilds candidate zones from a stored key.
pub fn candidates_from_stored(key: &str) -> Option<Vec<CandidateZone>> {
    if let Some(group) = ZoneGroup::parse(key) {
        return Some(group.candidates().to_vec());
    }
    parse_recipient_timezone(key)
        .ok()
        .map(|zone| vec![zone.candidate()])
}

/// The zones a contact is checked in: its explicit zone when it has one, else
/// the candidates from its number.
pub fn recipient_zones(
    explicit: Option<&ExplicitZone>,
    number: &PhoneE164,
    number_type: NumberType,
) -> RecipientZones {
    match explicit {
        Some(zone) => RecipientZones {
            source: ZoneSource::Explicit,
            candidates: vec![zone.candidate()],
        },
        None => candidates_for_number(number, number_type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::{normalise, NumberPolicy};

    fn zones_of(number: &str) -> RecipientZones {
        let parsed = normalise(number, NumberPolicy::default()).expect("valid test number");
        candidates_for_number(&parsed.e164, parsed.number_type)
    }

    fn names(zones: &RecipientZones) -> Vec<&'static str> {
        zones.candidates.iter().map(|c| c.zone.name()).collect()
    }

    #[test]
    fn iana_names_are_trimmed_and_case_folded() {
        let zone = parse_recipient_timezone("  australia/perth ").expect("valid zone");
        assert_eq!(zone.zone, Tz::Australia__Perth);
        assert_eq!(zone.stored_form(), "Australia/Perth");
    }

    #[test]
    fn links_are_stored_in_canonical_form() {
        let zone = parse_recipient_timezone("Australia/Canberra").expect("valid link");
        assert_eq!(zone.stored_form(), "Australia/Sydney");
        let zone = parse_recipient_timezone("Australia/Yancowinna").expect("valid link");
        assert_eq!(zone.zone, Tz::Australia__Broken_Hill);
    }

    #[test]
    fn state_codes_map_to_their_zones() {
        let cases = [
            ("NSW", Tz::Australia__Sydney),
            ("act", Tz::Australia__Sydney),
            ("VIC", Tz::Australia__Melbourne),
            ("TAS", Tz::Australia__Hobart),
            ("QLD", Tz::Australia__Brisbane),
            ("SA", Tz::Australia__Adelaide),
            ("NT", Tz::Australia__Darwin),
            ("WA", Tz::Australia__Perth),
        ];
        for (code, zone) in cases {
            let parsed = parse_recipient_timezone(code).expect("valid state code");
            assert_eq!(parsed.zone, zone, "{code}");
            assert_eq!(
                parsed.state.map(State::code),
                Some(code.to_uppercase().as_str())
            );
        }
    }

    #[test]
    fn abbreviations_and_offsets_are_rejected() {
        assert_eq!(
            parse_recipient_timezone("AEST"),
            Err(ZoneError::Abbreviation)
        );
        assert_eq!(
            parse_recipient_timezone("aedt"),
            Err(ZoneError::Abbreviation)
        );
        for offset in ["+10:00", "UTC+9.5", "GMT+10", "Etc/GMT-10", "UTC"] {
            assert_eq!(
                parse_recipient_timezone(offset),
                Err(ZoneError::FixedOffset),
                "{offset}"
            );
        }
        assert_eq!(
            parse_recipient_timezone("Europe/London"),
            Err(ZoneError::Unknown)
        );
        assert_eq!(parse_recipient_timezone("Sydney"), Err(ZoneError::Unknown));
    }

    #[test]
    fn lord_howe_exchange_is_inferred() {
        assert_eq!(
            names(&zones_of("02 6563 1234")),
            vec!["Australia/Lord_Howe"]
        );
    }

    #[test]
    fn area_codes_give_documented_candidates() {
        assert_eq!(names(&zones_of("02 5550 1234")), vec!["Australia/Sydney"]);
        assert_eq!(
            names(&zones_of("03 7010 1234")),
            vec!["Australia/Melbourne", "Australia/Hobart"]
        );
        assert_eq!(
            names(&zones_of("07 7010 1234")),
            vec!["Australia/Brisbane", "Australia/Sydney"]
        );
        assert_eq!(
            names(&zones_of("08 9162 1234")),
            vec!["Indian/Christmas", "Indian/Cocos"]
        );
        assert_eq!(
            names(&zones_of("08 5550 1234")),
            vec![
                "Australia/Perth",
                "Australia/Eucla",
                "Australia/Darwin",
                "Australia/Adelaide",
                "Australia/Broken_Hill"
            ]
        );
        assert_eq!(zones_of("08 5550 1234").source, ZoneSource::Inferred);
    }

    #[test]
    fn stored_keys_round_trip() {
        for group in ZoneGroup::ALL {
            assert_eq!(
                candidates_from_stored(group.key()).as_deref(),
                Some(group.candidates())
            );
        }
        let explicit = parse_recipient_timezone("ACT").expect("valid");
        let (source, key) = stored_zone_key(Some(&explicit), ZoneGroup::Anywhere);
        assert_eq!(source, ZoneSource::Explicit);
        assert_eq!(
            candidates_from_stored(&key),
            Some(vec![explicit.candidate()])
        );
    }

    #[test]
    fn mobiles_have_no_location() {
        let zones = zones_of("0491 570 006");
        assert_eq!(zones.source, ZoneSource::Unknown);
        assert_eq!(zones.candidates.len(), 10);
    }
}
