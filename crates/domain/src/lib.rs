//! Outbound's domain: the campaign state machine, contact and number
//! validation, and the Australian calling rules. Pure and fast: no I/O, no
//! clock (every rule takes the instant it is asked about).
//!
//! The data flow it serves: upload → parse ([`contact_row`]) → normalise
//! ([`phone`], [`zone`]) → store; store → schedule → gate ([`eligibility`]) →
//! hand over → record.

pub mod calendar;
pub mod campaign;
pub mod contact_row;
pub mod eligibility;
pub mod evidence;
pub mod hours;
pub mod local_time;
pub mod phone;
pub mod retry;
pub mod validation;
pub mod zone;
