//! Named tests of every calling rule and its edge cases, run against the
//! bundled calling hours and holiday calendar.

mod dates;
mod daylight_saving;
mod holidays;
mod register;
mod support;
mod zones;
