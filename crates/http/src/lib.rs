//! The Outbound REST API (actix-web, OpenAPI through utoipa), the dispatcher
//! that hands calls to the voice platform, and a simulated voice platform that
//! speaks the same signed HTTP contract.

pub mod auth;
pub mod clock;
pub mod contact_import;
pub mod csv_input;
pub mod dispatch;
pub mod event_batch;
pub mod import_jobs;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod signing;
pub mod simulator;
pub mod state;
pub mod upload;
pub mod voice;
pub mod wash_import;
