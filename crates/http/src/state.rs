//! Shared server state and configuration.

use std::sync::Arc;
use std::time::Duration;

use outbound_persistence::crypto::Keyring;
use sqlx::PgPool;
use zeroize::Zeroizing;

use crate::auth::Authenticator;
use crate::clock::Clock;

/// Limits on uploads, checked before any row is stored.
#[derive(Debug, Clone, Copy)]
pub struct ImportLimits {
    /// Largest accepted upload, in bytes (`413 file_too_large` above it).
    pub max_bytes: usize,
    /// Most data records in one file (`422 too_many_rows` above it).
    pub max_rows: usize,
    /// Contact files larger than this many bytes are imported as a job: the
    /// upload answers `202` once the body is received.
    pub async_bytes: usize,
    /// Longest field in bytes; a longer one fails the file (`422 malformed_csv`).
    pub max_field_bytes: usize,
    /// Import jobs one server runs at once; an upload that would start
    /// another is refused with `429 too_many_import_jobs` before its body is read.
    pub max_jobs: usize,
    /// Maximum wait for the next part of an upload's body. A client that
    /// sends nothing for this long gets `408 upload_timeout`, which frees its
    /// connection and memory.
    pub idle_timeout: std::time::Duration,
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_rows: 250_000,
            async_bytes: 8 * 1024 * 1024,
            max_field_bytes: 64 * 1024,
            max_jobs: 4,
            idle_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// How the service reaches the voice platform and how the platform calls back.
#[derive(Clone)]
pub struct VoiceSettings {
    /// Base URL of the voice platform, e.g. `http://127.0.0.1:8090`.
    pub platform_url: Option<String>,
    /// This service's public base URL; webhook callbacks go to
    /// `<public_url>/v1/voice/events`.
    pub public_url: String,
    /// Shared HMAC secret with the platform; without it every webhook is rejected.
    pub secret: Option<Arc<Zeroizing<Vec<u8>>>>,
    /// Seconds after which an open attempt with no result becomes `unknown`.
    pub result_timeout_seconds: i64,
    /// Time allowed for one call request to the platform. A request without
    /// a response by then may have placed the call, so its attempt becomes
    /// `unknown`.
    pub handover_timeout: Duration,
}

pub struct AppState {
    pub pool: PgPool,
    pub keyring: Arc<Keyring>,
    pub authenticator: Arc<Authenticator>,
    pub clock: Clock,
    pub voice: VoiceSettings,
    pub limits: ImportLimits,
    /// Slots of the import jobs this server runs, at most `limits.max_jobs`.
    pub import_jobs: Arc<crate::import_jobs::JobGate>,
    pub http: reqwest::Client,
    /// Per-caller request limits; `None` turns limiting off.
    pub rate_limits: Option<Arc<crate::rate_limit::RateLimits>>,
    /// Records webhook events in batches.
    pub event_batcher: crate::event_batch::EventBatcher,
}
