//! Call types and calling hours in the recipient's local time.
//!
//! Legal hours come from the Telecommunications (Telemarketing and Research
//! Calls) Industry Standard 2017: telemarketing Monday to Friday 09:00–20:00 and
//! Saturday 09:00–17:00, no Sunday calls; research Monday to Friday 09:00–20:30,
//! Saturday and Sunday 09:00–17:00. Start is inclusive, end is exclusive.

use std::fmt;

use chrono::{NaiveTime, Timelike, Weekday};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

    /// The widest window the law allows; `None` for service calls, which use
    /// the campaign's own window.
    pub fn legal_window(self) -> Option<CallingWindow> {
        match self {
            CallType::Telemarketing => Some(CallingWindow::TELEMARKETING),
            CallType::Research => Some(CallingWindow::RESEARCH),
            CallType::Service => None,
        }
    }

    /// The window a campaign of this type uses when it sets none.
    pub fn default_window(self) -> CallingWindow {
        match self {
            CallType::Research => CallingWindow::RESEARCH,
            CallType::Telemarketing | CallType::Service => CallingWindow::TELEMARKETING,
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
    pub const TELEMARKETING: CallingWindow = CallingWindow {
        weekdays: Some(DayWindow::fixed(9 * 60, 20 * 60)),
        saturday: Some(DayWindow::fixed(9 * 60, 17 * 60)),
        sunday: None,
    };

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

/// Minutes after local midnight of a local time.
pub fn minute_of_day(time: NaiveTime) -> u16 {
    (time.hour() * 60 + time.minute()) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemarketing_hours_exclude_sunday() {
        let window = CallType::Telemarketing.default_window();
        assert_eq!(window.for_weekday(Weekday::Sun), None);
        assert_eq!(window.for_weekday(Weekday::Mon).map(DayWindow::end_text), Some("20:00".into()));
        assert_eq!(window.for_weekday(Weekday::Sat).map(DayWindow::end_text), Some("17:00".into()));
    }

    #[test]
    fn research_hours_run_later_and_include_sunday() {
        let window = CallType::Research.default_window();
        assert_eq!(window.for_weekday(Weekday::Fri).map(DayWindow::end_text), Some("20:30".into()));
        assert_eq!(window.for_weekday(Weekday::Sun).map(DayWindow::start_text), Some("09:00".into()));
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
        assert_eq!(DayWindow::parse("20:00", "09:00"), Err(WindowError::Overnight));
        assert_eq!(DayWindow::parse("09:00", "09:00"), Err(WindowError::Overnight));
        assert!(matches!(DayWindow::parse("9am", "5pm"), Err(WindowError::InvalidTime(_))));
        assert!(matches!(DayWindow::parse("09:00", "24:30"), Err(WindowError::InvalidTime(_))));
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
        let sunday = CallingWindow { sunday: Some(DayWindow::parse("10:00", "12:00").expect("valid")), ..narrow };
        assert!(!sunday.within(&CallingWindow::TELEMARKETING));
    }
}

/// One day's hours as sent and stored: `{"start": "09:00", "end": "17:00"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DayWindowSpec {
    #[schema(example = "09:00")]
    pub start: String,
    #[schema(example = "20:00")]
    pub end: String,
}

/// A calling window as sent and stored. A missing or null day means no calls
/// that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
            spec.as_ref().map(|d| DayWindow::parse(&d.start, &d.end)).transpose()
        };
        Ok(CallingWindow {
            weekdays: day(&self.weekdays)?,
            saturday: day(&self.saturday)?,
            sunday: day(&self.sunday)?,
        })
    }

    pub fn from_window(window: &CallingWindow) -> Self {
        let day = |d: Option<DayWindow>| d.map(|d| DayWindowSpec { start: d.start_text(), end: d.end_text() });
        Self { weekdays: day(window.weekdays), saturday: day(window.saturday), sunday: day(window.sunday) }
    }
}
