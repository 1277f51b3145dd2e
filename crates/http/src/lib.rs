//! The Outbound REST API (actix-web, OpenAPI through utoipa), the dispatcher
//! that hands calls to the voice platform, and a simulated voice platform that
//! speaks the same signed HTTP contract.

pub mod auth;
pub mod clock;
pub mod csv_input;
pub mod dispatch;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod signing;
pub mod simulator;
pub mod state;
pub mod voice;
