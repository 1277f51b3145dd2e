//! Public-holiday calendar loaded from `data/holidays-au.csv`: national holidays,
//! the substitute days each state declares for them, and each state's own
//! holidays.

use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate};

use crate::local_time::day_number;
use crate::zone::State;

/// The calendar file compiled into the binary; its README names the sources.
pub const HOLIDAYS_CSV: &str = include_str!("../data/holidays-au.csv");

/// What kind of public holiday blocks a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolidayKind {
    /// One of the seven national holidays, on its date, everywhere.
    National,
    /// A state's substitute or additional day for a national holiday.
    Substitute,
    /// A state's own public holiday.
    State,
}

#[derive(Debug, Clone, Copy, Default)]
struct DayFlags {
    national: bool,
    substitute: u8,
    state: u8,
}

fn state_bit(state: State) -> u8 {
    1 << (state as u8)
}

/// Sets one bit per state of `states`, as [`HolidayCalendar::blocking_holiday_on_day`] reads them.
pub(crate) fn state_mask(states: &[State]) -> u8 {
    states
        .iter()
        .fold(0u8, |mask, state| mask | state_bit(*state))
}

/// Holidays by date, for a contiguous range of whole years.
#[derive(Debug, Clone)]
pub struct HolidayCalendar {
    first: NaiveDate,
    last: NaiveDate,
    /// `first` and `last` as day numbers (days since 1970-01-01).
    first_day: i64,
    last_day: i64,
    days: Vec<DayFlags>,
    names: Vec<(NaiveDate, String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("holiday calendar line {line}: {message}")]
    Invalid { line: usize, message: String },
    #[error("holiday calendar is empty")]
    Empty,
}

impl HolidayCalendar {
    /// The calendar shipped with the binary.
    pub fn bundled() -> &'static HolidayCalendar {
        static CALENDAR: OnceLock<HolidayCalendar> = OnceLock::new();
        CALENDAR.get_or_init(|| {
            HolidayCalendar::parse(HOLIDAYS_CSV).expect("the bundled holiday calendar is valid")
        })
    }

    /// Parses `date,jurisdiction,name,kind,source` rows. Coverage runs from
    /// 1 January of the first year to 31 December of the last year present.
    ///
    /// # Errors
    /// Returns the line of the first malformed row.
    pub fn parse(text: &str) -> Result<Self, CalendarError> {
        let mut rows = Vec::new();
        for (index, line) in text.lines().enumerate().skip(1) {
            let line_number = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            let invalid = |message: &str| CalendarError::Invalid {
                line: line_number,
                message: message.to_owned(),
            };
            let fields = split_record(line);
            let mut fields = fields.iter().map(String::as_str);
            let date = fields.next().unwrap_or_default();
            let jurisdiction = fields
                .next()
                .ok_or_else(|| invalid("missing jurisdiction"))?;
            let name = fields.next().ok_or_else(|| invalid("missing name"))?;
            let kind = fields.next().ok_or_else(|| invalid("missing kind"))?;
            let date =
                NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| invalid("invalid date"))?;
            let kind = match kind {
                "national" => HolidayKind::National,
                "substitute" => HolidayKind::Substitute,
                "state" => HolidayKind::State,
                _ => return Err(invalid("kind must be national, substitute or state")),
            };
            let state = match jurisdiction {
                "AU" => None,
                code => Some(State::parse(code).ok_or_else(|| invalid("unknown jurisdiction"))?),
            };
            if (kind == HolidayKind::National) != state.is_none() {
                return Err(invalid("national rows use AU, other rows a state code"));
            }
            rows.push((date, state, kind, name.to_owned(), jurisdiction.to_owned()));
        }
        let first_year = rows
            .iter()
            .map(|r| r.0.year())
            .min()
            .ok_or(CalendarError::Empty)?;
        let last_year = rows
            .iter()
            .map(|r| r.0.year())
            .max()
            .ok_or(CalendarError::Empty)?;
        let first = NaiveDate::from_ymd_opt(first_year, 1, 1).ok_or(CalendarError::Empty)?;
        let last = NaiveDate::from_ymd_opt(last_year, 12, 31).ok_or(CalendarError::Empty)?;
        let mut days = vec![DayFlags::default(); (last - first).num_days() as usize + 1];
        let mut names = Vec::with_capacity(rows.len());
        for (date, state, kind, name, jurisdiction) in rows {
            let flags = &mut days[(date - first).num_days() as usize];
            match (kind, state) {
                (HolidayKind::National, _) => flags.national = true,
                (HolidayKind::Substitute, Some(state)) => flags.substitute |= state_bit(state),
                (HolidayKind::State, Some(state)) => flags.state |= state_bit(state),
                _ => {}
            }
            names.push((date, jurisdiction, name));
        }
        Ok(Self {
            first,
            last,
            first_day: day_number(first),
            last_day: day_number(last),
            days,
            names,
        })
    }

    /// First and last date the calendar covers.
    pub fn coverage(&self) -> (NaiveDate, NaiveDate) {
        (self.first, self.last)
    }

    pub fn covers(&self, date: NaiveDate) -> bool {
        date >= self.first && date <= self.last
    }

    /// NOTE: part-day holidays (Christmas Eve and New Year's Eve from 18:00 or
    /// 19:00 in some states) block the whole day; that is stricter than the law.
    ///
    /// The holiday that blocks calls on `date` for a recipient in one of
    /// `states`, or `None`. National holidays block everywhere, including
    /// territories without a state calendar. State holidays block only when
    /// `block_state_holidays` is set.
    pub fn blocking_holiday(
        &self,
        date: NaiveDate,
        states: &[State],
        block_state_holidays: bool,
    ) -> Option<HolidayKind> {
        self.blocking_holiday_on_day(day_number(date), state_mask(states), block_state_holidays)
    }

    /// Finds the holiday like [`Self::blocking_holiday`], for a day number
    /// (days since 1970-01-01) and the states as a [`state_mask`].
    pub(crate) fn blocking_holiday_on_day(
        &self,
        day: i64,
        states: u8,
        block_state_holidays: bool,
    ) -> Option<HolidayKind> {
        if !self.covers_day(day) {
            return None;
        }
        let flags = self.days[(day - self.first_day) as usize];
        if flags.national {
            return Some(HolidayKind::National);
        }
        if flags.substitute & states != 0 {
            return Some(HolidayKind::Substitute);
        }
        if block_state_holidays && flags.state & states != 0 {
            return Some(HolidayKind::State);
        }
        None
    }

    /// Checks whether the calendar covers a day number (days since 1970-01-01).
    pub(crate) fn covers_day(&self, day: i64) -> bool {
        day >= self.first_day && day <= self.last_day
    }

    /// Returns the first and last day the calendar covers, as day numbers.
    pub(crate) fn coverage_days(&self) -> (i64, i64) {
        (self.first_day, self.last_day)
    }

    /// Names of the holidays on `date`, as `(jurisdiction, name)` pairs.
    pub fn names_on(&self, date: NaiveDate) -> Vec<(&str, &str)> {
        self.names
            .iter()
            .filter(|(d, _, _)| *d == date)
            .map(|(_, jurisdiction, name)| (jurisdiction.as_str(), name.as_str()))
            .collect()
    }
}

/// Splits one CSV line into fields, honouring double quotes (`""` inside a
/// quoted field is a literal quote).
pub(crate) fn split_record(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(field) = fields.last_mut() {
                    field.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    #[test]
    fn every_national_holiday_of_2026_and_2027_blocks() {
        let calendar = HolidayCalendar::bundled();
        let dates = [
            date(2026, 1, 1),
            date(2026, 1, 26),
            date(2026, 4, 3),
            date(2026, 4, 6),
            date(2026, 4, 25),
            date(2026, 12, 25),
            date(2026, 12, 26),
            date(2027, 1, 1),
            date(2027, 1, 26),
            date(2027, 3, 26),
            date(2027, 3, 29),
            date(2027, 4, 25),
            date(2027, 12, 25),
            date(2027, 12, 26),
        ];
        for day in dates {
            assert_eq!(
                calendar.blocking_holiday(day, &[], false),
                Some(HolidayKind::National),
                "{day}"
            );
        }
    }

    #[test]
    fn ordinary_day_is_not_a_holiday() {
        let calendar = HolidayCalendar::bundled();
        assert_eq!(
            calendar.blocking_holiday(date(2026, 12, 7), &State::ALL, true),
            None
        );
    }

    #[test]
    fn state_holiday_blocks_only_when_switched_on() {
        let text = "date,jurisdiction,name,kind,source\n\
                    2026-03-09,VIC,Labour Day,state,test\n\
                    2026-12-28,NSW,Boxing Day (substitute),substitute,test\n";
        let calendar = HolidayCalendar::parse(text).expect("valid calendar");
        assert_eq!(
            calendar.blocking_holiday(date(2026, 3, 9), &[State::Vic], true),
            Some(HolidayKind::State)
        );
        assert_eq!(
            calendar.blocking_holiday(date(2026, 3, 9), &[State::Vic], false),
            None
        );
        assert_eq!(
            calendar.blocking_holiday(date(2026, 3, 9), &[State::Nsw], true),
            None
        );
        assert_eq!(
            calendar.blocking_holiday(date(2026, 12, 28), &[State::Nsw], false),
            Some(HolidayKind::Substitute)
        );
        assert_eq!(
            calendar.blocking_holiday(date(2026, 12, 28), &[State::Wa], true),
            None
        );
    }

    #[test]
    fn quoted_fields_keep_their_commas() {
        assert_eq!(
            split_record(r#"2026-12-24,SA,"Christmas Eve (part day, from 19:00)",state,"a ""b"""#),
            vec![
                "2026-12-24",
                "SA",
                "Christmas Eve (part day, from 19:00)",
                "state",
                "a \"b\""
            ]
        );
    }

    #[test]
    fn malformed_row_names_its_line() {
        let text = "date,jurisdiction,name,kind,source\n2026-13-01,AU,Bad,national,test\n";
        assert_eq!(
            HolidayCalendar::parse(text).map(|_| ()),
            Err(CalendarError::Invalid {
                line: 2,
                message: "invalid date".into()
            })
        );
    }
}
