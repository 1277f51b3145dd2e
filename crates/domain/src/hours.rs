//! Call types and calling hours in the recipient's local time.
//!
//! The legal hours are data: `data/calling-hours.csv`, compiled into the
//! binary and parsed once. They come from the Telecommunications
//! (Telemarketing and Research Calls) Industry Standard 2017. Telemarketing
//! calls are allowed Monday to Friday 09:00–20:00 and Saturday 09:00–17:00,
//! with no Sunday calls. Research calls are allowed Monday to Friday
//! 09:00–20:30, and Saturday and Sunday 09:00–17:00. Start is inclusive, end
//! is exclusive.

use std::fmt;
use std::sync::OnceLock;

use chrono::{NaiveTime, Timelike, Weekday};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::calendar::split_record;

/// What a campaign's calls are for; it decides hours and whether a wash is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallType {
    /// Offers goods or services, or solicits donations.
    Telemarketing,
    /// Opinion polling or a standard questionnaire with no sales element.
    Research,
    /// Non-marketing calls: appointment reminders, recalls, payments, order follow-up.
    Service,
}

impl CallType {
    pub fn as_str(self) -> &'static str {
        match self {
            CallType::Telemarketing => "telemarketing",
            CallType::Research => "research",
            CallType::Service => "service",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "telemarketing" => Some(CallType::Telemarketing),
            "research" => Some(CallType::Research),
            "service" => Some(CallType::Service),
            _ => None,
        }
    }

    /// Whether a wash against the Do Not Call Register is needed (DNCR Act s11:
    /// telemarketing only; research is outside the Act).
    pub fn needs_wash(self) -> bool {
        self == CallType::Telemarketing
    }

    /// Returns the widest window the law allows, from the bundled calling-hours
    /// file, or `None` for service calls, which use the campaign's own window.
    pub fn legal_window(self) -> Option<CallingWindow> {
        LegalHours::bundled().window(self)
    }

    /// Returns the window a campaign of this type uses when it sets none: the
    /// legal hours, and the telemarketing hours for service calls.
    pub fn default_window(self) -> CallingWindow {
        let hours = LegalHours::bundled();
        match self {
            CallType::Research => hours.research,
            CallType::Telemarketing | CallType::Service => hours.telemarketing,
        }
    }
}

impl fmt::Display for CallType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hours of one day as minutes after local midnight, `start` inclusive and
/// `end` exclusive. `start < end` always holds: overnight windows are invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DayWindow {
    start: u16,
    end: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("invalid time {0:?}; use HH:MM in 24-hour form")]
    InvalidTime(String),
    #[error("a calling window must end after it starts on the same day; overnight windows are not allowed")]
    Overnight,
}

impl DayWindow {
    /// # Errors
    /// Returns [`WindowError::Overnight`] unless `start < end`, and
    /// [`WindowError::InvalidTime`] for a minute past 24:00.
    pub const fn new(start: u16, end: u16) -> Result<Self, WindowError> {
        if end > 24 * 60 {
            return Err(WindowError::Overnight);
        }
        if start >= end {
            return Err(WindowError::Overnight);
        }
        Ok(Self { start, end })
    }

    const fn fixed(start: u16, end: u16) -> Self {
        Self { start, end }
    }

    /// Parses `"09:00"` and `"20:30"` forms; `"24:00"` is accepted as an end.
    ///
    /// # Errors
    /// Returns the invalid value or an overnight error.
    pub fn parse(start: &str, end: &str) -> Result<Self, WindowError> {
        Self::new(parse_minute(start)?, parse_minute(end)?)
    }

    pub fn start_minute(self) -> u16 {
        self.start
    }

    pub fn end_minute(self) -> u16 {
        self.end
    }

    pub fn contains_minute(self, minute: u16) -> bool {
        minute >= self.start && minute < self.end
    }

    /// Whether `self` lies inside `outer`.
    pub fn within(self, outer: DayWindow) -> bool {
        self.start >= outer.start && self.end <= outer.end
    }

    fn intersect(self, other: DayWindow) -> Option<DayWindow> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start < end).then_some(DayWindow { start, end })
    }

    pub fn start_text(self) -> String {
        format_minute(self.start)
    }

    pub fn end_text(self) -> String {
        format_minute(self.end)
    }
}

fn parse_minute(text: &str) -> Result<u16, WindowError> {
    let invalid = || WindowError::InvalidTime(text.to_owned());
    let (hours, minutes) = text.trim().split_once(':').ok_or_else(invalid)?;
    let hours: u16 = hours.parse().map_err(|_| invalid())?;
    let minutes: u16 = minutes.parse().map_err(|_| invalid())?;
    if minutes >= 60 || hours > 24 || (hours == 24 && minutes != 0) || text.trim().len() != 5 {
        return Err(invalid());
    }
    Ok(hours * 60 + minutes)
}

fn format_minute(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// Calling hours for Monday–Friday, Saturday and Sunday; `None` means no calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallingWindow {
    pub weekdays: Option<DayWindow>,
    pub saturday: Option<DayWindow>,
    pub sunday: Option<DayWindow>,
}

impl CallingWindow {
    /// The documented telemarketing hours. The rules read the hours from
    /// `data/calling-hours.csv`, and a test checks that the file matches this.
    pub const TELEMARKETING: CallingWindow = CallingWindow {
        weekdays: Some(DayWindow::fixed(9 * 60, 20 * 60)),
        saturday: Some(DayWindow::fixed(9 * 60, 17 * 60)),
        sunday: None,
    };

    /// The documented research hours, checked against the file like
    /// [`CallingWindow::TELEMARKETING`].
    pub const RESEARCH: CallingWindow = CallingWindow {
        weekdays: Some(DayWindow::fixed(9 * 60, 20 * 60 + 30)),
        saturday: Some(DayWindow::fixed(9 * 60, 17 * 60)),
        sunday: Some(DayWindow::fixed(9 * 60, 17 * 60)),
    };

    pub fn for_weekday(&self, weekday: Weekday) -> Option<DayWindow> {
        match weekday {
            Weekday::Sat => self.saturday,
            Weekday::Sun => self.sunday,
            _ => self.weekdays,
        }
    }

    /// Whether every day of `self` lies inside the same day of `outer`.
    pub fn within(&self, outer: &CallingWindow) -> bool {
        let day_within = |inner: Option<DayWindow>, outer: Option<DayWindow>| match (inner, outer) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(inner), Some(outer)) => inner.within(outer),
        };
        day_within(self.weekdays, outer.weekdays)
            && day_within(self.saturday, outer.saturday)
            && day_within(self.sunday, outer.sunday)
    }

    /// The hours both windows allow.
    pub fn intersect(&self, other: &CallingWindow) -> CallingWindow {
        let both = |a: Option<DayWindow>, b: Option<DayWindow>| a?.intersect(b?);
        CallingWindow {
            weekdays: both(self.weekdays, other.weekdays),
            saturday: both(self.saturday, other.saturday),
            sunday: both(self.sunday, other.sunday),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.weekdays.is_none() && self.saturday.is_none() && self.sunday.is_none()
    }
}

/// The calling-hours file compiled into the binary; `data/README.md` describes it.
pub const CALLING_HOURS_CSV: &str = include_str!("../data/calling-hours.csv");

const CALLING_HOURS_HEADER: &str = "call_type,days,start,end,source";

/// The legal calling hours of each call type that has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegalHours {
    pub telemarketing: CallingWindow,
    pub research: CallingWindow,
}

/// A calling-hours file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursFileError {
    #[error("calling-hours file line {line}: {message}")]
    Invalid { line: usize, message: String },
    #[error("calling-hours file has no row for {call_type} on {days}; add one (empty start and end mean no calls)")]
    Missing {
        call_type: &'static str,
        days: &'static str,
    },
}

/// The day groups of a calling-hours row, in [`CallingWindow`] field order.
const DAY_GROUPS: [&str; 3] = ["Mon-Fri", "Sat", "Sun"];

impl LegalHours {
    /// Returns the hours shipped with the binary, parsed on first use.
    pub fn bundled() -> &'static LegalHours {
        static HOURS: OnceLock<LegalHours> = OnceLock::new();
        HOURS.get_or_init(|| {
            LegalHours::parse(CALLING_HOURS_CSV).expect("the bundled calling-hours file is valid")
        })
    }

    /// Parses `call_type,days,start,end,source` rows. Each of `telemarketing`
    /// and `research` must list `Mon-Fri`, `Sat` and `Sun` once; a row with an
    /// empty start and end means no calls that day.
    ///
    /// # Errors
    /// Returns the line of the first invalid row, or the first missing row.
    pub fn parse(text: &str) -> Result<Self, HoursFileError> {
        let mut lines = text.lines().enumerate();
        let header = lines
            .next()
            .map(|(_, line)| line.trim_start_matches('\u{feff}'));
        if header != Some(CALLING_HOURS_HEADER) {
            return Err(HoursFileError::Invalid {
                line: 1,
                message: format!("the header must be {CALLING_HOURS_HEADER}"),
            });
        }
        // Rows by call type (telemarketing, research) and day group.
        let mut days: [[Option<Option<DayWindow>>; 3]; 2] = [[None; 3]; 2];
        for (index, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let invalid = |message: String| HoursFileError::Invalid {
                line: index + 1,
                message,
            };
            let fields = split_record(line);
            if fields.len() != 5 {
                return Err(invalid(format!(
                    "expected 5 fields ({CALLING_HOURS_HEADER}), found {}",
                    fields.len()
                )));
            }
            let type_index = match CallType::parse(&fields[0]) {
                Some(CallType::Telemarketing) => 0,
                Some(CallType::Research) => 1,
                Some(CallType::Service) => {
                    return Err(invalid(
                        "service calls use the campaign's own window and have no legal hours"
                            .into(),
                    ))
                }
                None => {
                    return Err(invalid(format!(
                        "unknown call type {:?}; use telemarketing or research",
                        fields[0]
                    )))
                }
            };
            let day_index = DAY_GROUPS
                .iter()
                .position(|group| *group == fields[1])
                .ok_or_else(|| {
                    invalid(format!(
                        "unknown days {:?}; use Mon-Fri, Sat or Sun",
                        fields[1]
                    ))
                })?;
            let window = match (fields[2].trim(), fields[3].trim()) {
                ("", "") => None,
                ("", _) | (_, "") => {
                    return Err(invalid(
                        "start and end must both be set, or both be empty for no calls".into(),
                    ))
                }
                (start, end) => {
                    Some(DayWindow::parse(start, end).map_err(|error| invalid(error.to_string()))?)
                }
            };
            if fields[4].trim().is_empty() {
                return Err(invalid(
                    "source is empty; name the rule the hours come from".into(),
                ));
            }
            let slot = &mut days[type_index][day_index];
            if slot.is_some() {
                return Err(invalid(format!(
                    "a second row for {} on {}",
                    fields[0], fields[1]
                )));
            }
            *slot = Some(window);
        }
        let window_of = |type_index: usize| -> Result<CallingWindow, HoursFileError> {
            let day = |day_index: usize| {
                days[type_index][day_index].ok_or(HoursFileError::Missing {
                    call_type: ["telemarketing", "research"][type_index],
                    days: DAY_GROUPS[day_index],
                })
            };
            Ok(CallingWindow {
                weekdays: day(0)?,
                saturday: day(1)?,
                sunday: day(2)?,
            })
        };
        Ok(Self {
            telemarketing: window_of(0)?,
            research: window_of(1)?,
        })
    }

    /// Returns the legal hours of `call_type`, or `None` for service calls.
    pub fn window(&self, call_type: CallType) -> Option<CallingWindow> {
        match call_type {
            CallType::Telemarketing => Some(self.telemarketing),
            CallType::Research => Some(self.research),
            CallType::Service => None,
        }
    }
}

/// Minutes after local midnight of a local time.
pub fn minute_of_day(time: NaiveTime) -> u16 {
    (time.hour() * 60 + time.minute()) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day_text(day: Option<DayWindow>) -> Option<String> {
        day.map(|day| format!("{}-{}", day.start_text(), day.end_text()))
    }

    #[test]
    fn calling_hours_file_lists_documented_hours() {
        let hours = LegalHours::parse(CALLING_HOURS_CSV).expect("bundled file is valid");
        let telemarketing = hours.telemarketing;
        assert_eq!(
            day_text(telemarketing.weekdays).as_deref(),
            Some("09:00-20:00")
        );
        assert_eq!(
            day_text(telemarketing.saturday).as_deref(),
            Some("09:00-17:00")
        );
        assert_eq!(day_text(telemarketing.sunday), None);
        let research = hours.research;
        assert_eq!(day_text(research.weekdays).as_deref(), Some("09:00-20:30"));
        assert_eq!(day_text(research.saturday).as_deref(), Some("09:00-17:00"));
        assert_eq!(day_text(research.sunday).as_deref(), Some("09:00-17:00"));
        assert_eq!(telemarketing, CallingWindow::TELEMARKETING);
        assert_eq!(research, CallingWindow::RESEARCH);
    }

    #[test]
    fn call_types_read_bundled_hours() {
        let hours = LegalHours::bundled();
        assert_eq!(
            CallType::Telemarketing.legal_window(),
            Some(hours.telemarketing)
        );
        assert_eq!(CallType::Research.legal_window(), Some(hours.research));
        assert_eq!(CallType::Service.legal_window(), None);
        assert_eq!(CallType::Service.default_window(), hours.telemarketing);
    }

    #[test]
    fn calling_hours_file_names_its_source() {
        for line in CALLING_HOURS_CSV.lines().skip(1) {
            let fields = split_record(line);
            assert_eq!(
                fields[4],
                "Telecommunications (Telemarketing and Research Calls) Industry Standard 2017, as summarised by ACMA",
                "{line}"
            );
        }
    }

    fn parse_error(rows: &str) -> HoursFileError {
        let text = format!("{CALLING_HOURS_HEADER}\n{rows}");
        LegalHours::parse(&text).expect_err("file should be rejected")
    }

    const VALID_ROWS: &str = "telemarketing,Mon-Fri,09:00,20:00,s\n\
                              telemarketing,Sat,09:00,17:00,s\n\
                              telemarketing,Sun,,,s\n\
                              research,Mon-Fri,09:00,20:30,s\n\
                              research,Sat,09:00,17:00,s\n\
                              research,Sun,09:00,17:00,s\n";

    #[test]
    fn calling_hours_file_with_missing_row_is_rejected() {
        let rows = VALID_ROWS.replace("research,Sun,09:00,17:00,s\n", "");
        assert_eq!(
            parse_error(&rows),
            HoursFileError::Missing {
                call_type: "research",
                days: "Sun"
            }
        );
    }

    #[test]
    fn calling_hours_file_with_bad_rows_is_rejected() {
        let cases = [
            ("service,Mon-Fri,09:00,20:00,s\n", 2),
            ("telemarketing,Weekdays,09:00,20:00,s\n", 2),
            ("telemarketing,Mon-Fri,20:00,09:00,s\n", 2),
            ("telemarketing,Mon-Fri,09:00,,s\n", 2),
            ("telemarketing,Mon-Fri,09:00,20:00,\n", 2),
            ("telemarketing,Mon-Fri,09:00,20:00\n", 2),
            ("telemarketing,Mon-Fri,9am,20:00,s\n", 2),
        ];
        for (row, line) in cases {
            assert!(
                matches!(parse_error(row), HoursFileError::Invalid { line: l, .. } if l == line),
                "{row:?}"
            );
        }
        let duplicate = format!("{VALID_ROWS}telemarketing,Sat,10:00,12:00,s\n");
        assert!(matches!(
            parse_error(&duplicate),
            HoursFileError::Invalid { line: 8, .. }
        ));
        assert!(matches!(
            LegalHours::parse(&format!("type,days,start,end,source\n{VALID_ROWS}")),
            Err(HoursFileError::Invalid { line: 1, .. })
        ));
        assert!(LegalHours::parse(&format!("{CALLING_HOURS_HEADER}\n{VALID_ROWS}")).is_ok());
    }

    #[test]
    fn telemarketing_hours_exclude_sunday() {
        let window = CallType::Telemarketing.default_window();
        assert_eq!(window.for_weekday(Weekday::Sun), None);
        assert_eq!(
            window.for_weekday(Weekday::Mon).map(DayWindow::end_text),
            Some("20:00".into())
        );
        assert_eq!(
            window.for_weekday(Weekday::Sat).map(DayWindow::end_text),
            Some("17:00".into())
        );
    }

    #[test]
    fn research_hours_run_later_and_include_sunday() {
        let window = CallType::Research.default_window();
        assert_eq!(
            window.for_weekday(Weekday::Fri).map(DayWindow::end_text),
            Some("20:30".into())
        );
        assert_eq!(
            window.for_weekday(Weekday::Sun).map(DayWindow::start_text),
            Some("09:00".into())
        );
    }

    #[test]
    fn window_start_inclusive_end_exclusive() {
        let day = DayWindow::parse("09:00", "20:00").expect("valid window");
        assert!(!day.contains_minute(8 * 60 + 59));
        assert!(day.contains_minute(9 * 60));
        assert!(day.contains_minute(19 * 60 + 59));
        assert!(!day.contains_minute(20 * 60));
    }

    #[test]
    fn overnight_window_is_invalid() {
        assert_eq!(
            DayWindow::parse("20:00", "09:00"),
            Err(WindowError::Overnight)
        );
        assert_eq!(
            DayWindow::parse("09:00", "09:00"),
            Err(WindowError::Overnight)
        );
        assert!(matches!(
            DayWindow::parse("9am", "5pm"),
            Err(WindowError::InvalidTime(_))
        ));
        assert!(matches!(
            DayWindow::parse("09:00", "24:30"),
            Err(WindowError::InvalidTime(_))
        ));
    }

    #[test]
    fn narrower_window_is_within_legal_hours() {
        let narrow = CallingWindow {
            weekdays: Some(DayWindow::parse("10:00", "18:00").expect("valid")),
            saturday: None,
            sunday: None,
        };
        assert!(narrow.within(&CallingWindow::TELEMARKETING));
        let wide = CallingWindow {
            weekdays: Some(DayWindow::parse("08:00", "18:00").expect("valid")),
            saturday: None,
            sunday: None,
        };
        assert!(!wide.within(&CallingWindow::TELEMARKETING));
        let sunday = CallingWindow {
            sunday: Some(DayWindow::parse("10:00", "12:00").expect("valid")),
            ..narrow
        };
        assert!(!sunday.within(&CallingWindow::TELEMARKETING));
    }
}

/// One day's hours as sent and stored: `{"start": "09:00", "end": "17:00"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DayWindowSpec {
    #[schema(example = "09:00")]
    pub start: String,
    #[schema(example = "20:00")]
    pub end: String,
}

/// A calling window as sent and stored. A missing or null day means no calls
/// that day, so a misspelt day name is rejected rather than read as missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallingWindowSpec {
    pub weekdays: Option<DayWindowSpec>,
    pub saturday: Option<DayWindowSpec>,
    pub sunday: Option<DayWindowSpec>,
}

impl CallingWindowSpec {
    /// # Errors
    /// Returns the first invalid or overnight day.
    pub fn parse(&self) -> Result<CallingWindow, WindowError> {
        let day = |spec: &Option<DayWindowSpec>| {
            spec.as_ref()
                .map(|d| DayWindow::parse(&d.start, &d.end))
                .transpose()
        };
        Ok(CallingWindow {
            weekdays: day(&self.weekdays)?,
            saturday: day(&self.saturday)?,
            sunday: day(&self.sunday)?,
        })
    }

    pub fn from_window(window: &CallingWindow) -> Self {
        let day = |d: Option<DayWindow>| {
            d.map(|d| DayWindowSpec {
                start: d.start_text(),
                end: d.end_text(),
            })
        };
        Self {
            weekdays: day(window.weekdays),
            saturday: day(window.saturday),
            sunday: day(window.sunday),
        }
    }
}
