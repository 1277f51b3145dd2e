//! PostgreSQL storage for Outbound through sqlx. Phone numbers and
//! personalisation values are sealed with AES-256-GCM ([`crypto`]) before they
//! reach any query here; matching uses an HMAC-SHA256 blind index.

pub mod api_keys;
pub mod attempts;
pub mod audit;
pub mod bulk;
pub mod campaigns;
pub mod contacts;
pub mod crypto;
pub mod db;
pub mod imports;
pub mod key_check;
pub mod keys;
pub mod suppressions;
pub mod tenancy;
