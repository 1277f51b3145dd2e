//! Fast conversions between UTC and a zone's local time for the rule engine.
//!
//! chrono-tz searches its transition table and builds offset values on every
//! conversion, which dominated the cost of an eligibility decision. This module
//! reads each zone's UTC offsets once from chrono-tz into a table of offset
//! changes between 2000 and 2100 and then converts with plain integer
//! arithmetic. Instants outside that range, and zones whose offsets change
//! too often for the table, use chrono-tz directly, so results always equal
//! chrono-tz's.
//!
//! Times are whole seconds: UTC seconds since the Unix epoch, and "local
//! seconds", the same count on the zone's wall clock.

use std::sync::OnceLock;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc, Weekday};
use chrono_tz::{Tz, TZ_VARIANTS};

pub const SECONDS_PER_DAY: i64 = 86_400;

/// Days from 0001-01-01 (day 1 in chrono's count) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// First and end (exclusive) UTC second of the tables: 2000-01-01 and 2100-01-01.
const TABLE_START: i64 = 946_684_800;
const TABLE_END: i64 = 4_102_444_800;

/// Buckets of 2^20 seconds (about 12 days) index the offset changes, so a
/// lookup scans at most a step or two.
const BUCKET_SHIFT: u32 = 20;

/// The shortest stretch between two offset changes that the table accepts.
/// Local-to-UTC conversion relies on it: the true offset period of a local
/// time is then at most one period away from the one found by treating the
/// local time as UTC. Real offsets are at most 14 hours.
const MIN_PERIOD_SECONDS: i64 = 2 * SECONDS_PER_DAY;

/// Returns the days since 1970-01-01 of a date.
pub fn day_number(date: NaiveDate) -> i64 {
    i64::from(chrono::Datelike::num_days_from_ce(&date)) - UNIX_EPOCH_DAYS_FROM_CE
}

/// Converts a day number from [`day_number`] back to its date.
pub fn date_of_day(day: i64) -> Option<NaiveDate> {
    let days_from_ce = i32::try_from(day + UNIX_EPOCH_DAYS_FROM_CE).ok()?;
    NaiveDate::from_num_days_from_ce_opt(days_from_ce)
}

/// Returns the weekday of a day number as an index, Monday = 0 to Sunday = 6.
pub fn weekday_index(day: i64) -> usize {
    // 1970-01-01 was a Thursday.
    (day + 3).rem_euclid(7) as usize
}

/// Returns the weekday of a day number.
pub fn weekday(day: i64) -> Weekday {
    const WEEKDAYS: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
    WEEKDAYS[weekday_index(day)]
}

/// The offsets of one zone between [`TABLE_START`] and [`TABLE_END`].
#[derive(Debug)]
struct OffsetTable {
    /// UTC second from which each offset applies; `starts[0]` is `TABLE_START`.
    starts: Vec<i64>,
    /// Seconds east of UTC, one per entry of `starts`.
    offsets: Vec<i32>,
    /// For each bucket of `2^BUCKET_SHIFT` seconds, the period in force at its start.
    buckets: Vec<u16>,
}

impl OffsetTable {
    fn build(zone: Tz) -> Option<Self> {
        let mut starts = vec![TABLE_START];
        let mut offsets = vec![chrono_offset(zone, TABLE_START)];
        // One probe a day finds every change, given at most one change a day.
        let mut probe = TABLE_START;
        while probe < TABLE_END {
            let next = (probe + SECONDS_PER_DAY).min(TABLE_END);
            let before = *offsets.last()?;
            let after = chrono_offset(zone, next);
            if after != before {
                // Bisect for the first second of the new offset.
                let (mut old, mut new) = (probe, next);
                while new - old > 1 {
                    let middle = old + (new - old) / 2;
                    if chrono_offset(zone, middle) == before {
                        old = middle;
                    } else {
                        new = middle;
                    }
                }
                if new - starts.last()? < MIN_PERIOD_SECONDS {
                    return None;
                }
                starts.push(new);
                offsets.push(after);
            }
            probe = next;
        }
        let bucket_count = ((TABLE_END - TABLE_START) >> BUCKET_SHIFT) as usize + 1;
        let mut buckets = Vec::with_capacity(bucket_count);
        let mut period = 0usize;
        for bucket in 0..bucket_count {
            let bucket_start = TABLE_START + ((bucket as i64) << BUCKET_SHIFT);
            while period + 1 < starts.len() && starts[period + 1] <= bucket_start {
                period += 1;
            }
            buckets.push(u16::try_from(period).ok()?);
        }
        Some(Self {
            starts,
            offsets,
            buckets,
        })
    }

    /// Finds the period in force at UTC second `utc`, which must lie inside the table.
    fn period(&self, utc: i64) -> usize {
        let bucket = ((utc - TABLE_START) >> BUCKET_SHIFT) as usize;
        let mut period = usize::from(self.buckets[bucket]);
        while period + 1 < self.starts.len() && self.starts[period + 1] <= utc {
            period += 1;
        }
        period
    }

    fn period_end(&self, period: usize) -> i64 {
        self.starts.get(period + 1).copied().unwrap_or(TABLE_END)
    }

    /// Converts a local second to a UTC second, or returns `None` so the caller
    /// falls back to chrono-tz. It follows [`chrono_local_to_utc`]: a repeated
    /// local time maps to its first occurrence, and a skipped one to the end
    /// of the gap.
    fn local_to_utc(&self, local: i64) -> Option<i64> {
        if !(TABLE_START + SECONDS_PER_DAY..TABLE_END - SECONDS_PER_DAY).contains(&local) {
            return None;
        }
        let guess = self.period(local);
        let first = guess.saturating_sub(1);
        let last = (guess + 1).min(self.starts.len() - 1);
        let mut earliest: Option<i64> = None;
        for period in first..=last {
            let utc = local - i64::from(self.offsets[period]);
            if self.starts[period] <= utc && utc < self.period_end(period) {
                earliest = Some(earliest.map_or(utc, |found| found.min(utc)));
            }
        }
        if earliest.is_some() {
            return earliest;
        }
        // A skipped local time: the clock jumped at the start of a period.
        (first.max(1)..=last).find_map(|period| {
            let change = self.starts[period];
            let jumped_from = change + i64::from(self.offsets[period - 1]);
            let jumped_to = change + i64::from(self.offsets[period]);
            (jumped_from <= local && local < jumped_to).then_some(change)
        })
    }
}

/// Returns the table of `zone`, built on first use, or `None` when the zone's
/// offsets change too often for a table.
fn table(zone: Tz) -> Option<&'static OffsetTable> {
    static TABLES: OnceLock<Box<[OnceLock<Option<OffsetTable>>]>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| TZ_VARIANTS.iter().map(|_| OnceLock::new()).collect());
    tables
        .get(zone as usize)?
        .get_or_init(|| OffsetTable::build(zone))
        .as_ref()
}

fn chrono_offset(zone: Tz, utc: i64) -> i32 {
    let instant = DateTime::from_timestamp(utc, 0).unwrap_or_default();
    zone.offset_from_utc_datetime(&instant.naive_utc())
        .fix()
        .local_minus_utc()
}

/// Returns the seconds east of UTC in `zone` at UTC second `utc`.
pub fn utc_offset(zone: Tz, utc: i64) -> i32 {
    match table(zone) {
        Some(table) if (TABLE_START..TABLE_END).contains(&utc) => table.offsets[table.period(utc)],
        _ => chrono_offset(zone, utc),
    }
}

/// Converts UTC second `utc` to local seconds in `zone`.
pub fn to_local(zone: Tz, utc: i64) -> i64 {
    utc + i64::from(utc_offset(zone, utc))
}

/// Converts local second `local` in `zone` to a UTC second. A repeated local
/// time maps to its first occurrence, and a time that a daylight-saving change
/// skips maps to the first instant after the gap.
pub fn to_utc(zone: Tz, local: i64) -> i64 {
    table(zone)
        .and_then(|table| table.local_to_utc(local))
        .unwrap_or_else(|| chrono_local_to_utc(zone, local))
}

/// Converts like [`to_utc`], through chrono-tz alone.
fn chrono_local_to_utc(zone: Tz, local: i64) -> i64 {
    let naive: NaiveDateTime = DateTime::from_timestamp(local, 0)
        .unwrap_or_default()
        .naive_utc();
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(instant) => instant.timestamp(),
        LocalResult::Ambiguous(first, _) => first.timestamp(),
        LocalResult::None => {
            // Walk forward minute by minute out of the gap, which lasts at
            // most an hour in Australia, and give up after three.
            let mut probe = naive;
            for _ in 0..180 {
                probe += chrono::Duration::minutes(1);
                if let Some(instant) = zone.from_local_datetime(&probe).earliest() {
                    return instant.timestamp();
                }
            }
            Utc.from_utc_datetime(&naive).timestamp()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONES: [Tz; 13] = [
        Tz::Australia__Sydney,
        Tz::Australia__Melbourne,
        Tz::Australia__Brisbane,
        Tz::Australia__Adelaide,
        Tz::Australia__Broken_Hill,
        Tz::Australia__Darwin,
        Tz::Australia__Perth,
        Tz::Australia__Eucla,
        Tz::Australia__Hobart,
        Tz::Australia__Lord_Howe,
        Tz::Indian__Christmas,
        Tz::Indian__Cocos,
        Tz::Pacific__Norfolk,
    ];

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("valid UTC time")
            .timestamp()
    }

    #[test]
    fn day_numbers_and_weekdays() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 25).expect("valid");
        let day = day_number(date);
        assert_eq!(day, utc(2026, 12, 25, 0, 0) / SECONDS_PER_DAY);
        assert_eq!(date_of_day(day), Some(date));
        assert_eq!(weekday(day), Weekday::Fri);
        assert_eq!(weekday(0), Weekday::Thu);
        assert_eq!(weekday(-1), Weekday::Wed);
    }

    #[test]
    fn australian_zones_use_a_table() {
        for zone in ZONES {
            assert!(table(zone).is_some(), "{}", zone.name());
        }
    }

    #[test]
    fn offsets_match_chrono_tz_every_15_minutes_of_2026_to_2028() {
        for zone in ZONES {
            let mut at = utc(2026, 1, 1, 0, 0);
            while at < utc(2029, 1, 1, 0, 0) {
                assert_eq!(
                    utc_offset(zone, at),
                    chrono_offset(zone, at),
                    "{} at {at}",
                    zone.name()
                );
                at += 15 * 60;
            }
        }
    }

    #[test]
    fn local_to_utc_matches_chrono_tz_every_minute_of_changeover_days() {
        // The days daylight saving starts and ends in 2026 and 2027, with the
        // minutes a change skips or repeats.
        let days = [(2026, 4, 5), (2026, 10, 4), (2027, 4, 4), (2027, 10, 3)];
        for zone in ZONES {
            for (y, m, d) in days {
                let midnight = utc(y, m, d, 0, 0);
                for minute in 0..(24 * 60) {
                    let local = midnight + minute * 60;
                    assert_eq!(
                        to_utc(zone, local),
                        chrono_local_to_utc(zone, local),
                        "{} local {y}-{m}-{d} minute {minute}",
                        zone.name()
                    );
                }
            }
        }
    }

    #[test]
    fn skipped_local_time_maps_to_end_of_gap() {
        // Sydney jumps from 02:00 to 03:00 on 4 October 2026 (16:00 UTC on the 3rd).
        let local = utc(2026, 10, 4, 2, 30);
        assert_eq!(
            to_utc(Tz::Australia__Sydney, local),
            utc(2026, 10, 3, 16, 0)
        );
        // Lord Howe jumps from 02:00 to 02:30 (15:30 UTC on the 3rd).
        let local = utc(2026, 10, 4, 2, 15);
        assert_eq!(
            to_utc(Tz::Australia__Lord_Howe, local),
            utc(2026, 10, 3, 15, 30)
        );
    }

    #[test]
    fn repeated_local_time_maps_to_first_occurrence() {
        // Sydney repeats 02:00-03:00 on 5 April 2026; the first 02:30 is UTC+11.
        let local = utc(2026, 4, 5, 2, 30);
        assert_eq!(
            to_utc(Tz::Australia__Sydney, local),
            utc(2026, 4, 4, 15, 30)
        );
    }

    #[test]
    fn instants_outside_the_table_use_chrono_tz() {
        let early = utc(1990, 1, 15, 3, 0);
        assert_eq!(utc_offset(Tz::Australia__Sydney, early), 11 * 3600);
        let late = utc(2150, 7, 1, 0, 0);
        assert_eq!(
            utc_offset(Tz::Australia__Sydney, late),
            chrono_offset(Tz::Australia__Sydney, late)
        );
        assert_eq!(to_utc(Tz::Australia__Perth, late + 8 * 3600), late);
    }
}
