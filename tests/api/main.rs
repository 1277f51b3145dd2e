//! Black-box tests of the API over real HTTP against a fresh PostgreSQL
//! database per test.

mod api_keys;
mod authorization_matrix;
mod campaigns;
mod cli;
mod client_text;
mod demo;
mod dialing_breaks;
mod dialing_faults;
mod dispatch;
mod eligibility_cli;
mod import_jobs;
mod import_kill;
mod imports;
mod key_fingerprint;
mod openapi;
mod reports;
mod roles;
mod support;
mod suppressions;
mod upload_forms;
mod workflow;
