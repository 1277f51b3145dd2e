//! The voice platform contract: the call request this service sends and the
//! call events it accepts on its webhook. Both directions are signed with
//! HMAC-SHA256 (see [`crate::signing`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use outbound_domain::retry::Outcome;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What an AI voice agent states at the start of every call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Disclosure {
    pub organisation: Option<String>,
    pub on_behalf_of: Option<String>,
    pub purpose: Option<String>,
    pub contact_for_questions: Option<String>,
}

/// `POST {platform}/v1/calls`, sent with `Idempotency-Key: <attempt_id>`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct CallRequest {
    /// Unique per attempt; the platform must place at most one call per id.
    pub attempt_id: Uuid,
    /// The recipient in E.164. Only the voice platform ever receives it.
    pub to: String,
    pub caller_id: String,
    pub call_type: String,
    pub disclosure: Disclosure,
    /// Approved personalisation values for the agent.
    pub personalisation: BTreeMap<String, String>,
    /// Where the platform posts call events.
    pub callback_url: String,
}

// The number and personalisation never reach a log line through Debug.
impl std::fmt::Debug for CallRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRequest")
            .field("attempt_id", &self.attempt_id)
            .finish_non_exhaustive()
    }
}

/// The platform's answer to a call request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallAccepted {
    pub call_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallEventType {
    Started,
    Answered,
    /// The call ended; `outcome` is required.
    Ended,
    /// The recipient asked not to be called again.
    OptOut,
}

impl CallEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            CallEventType::Started => "started",
            CallEventType::Answered => "answered",
            CallEventType::Ended => "ended",
            CallEventType::OptOut => "opt_out",
        }
    }
}

/// `POST {service}/v1/voice/events`, signed with the platform secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallEvent {
    /// Unique per event; repeats are acknowledged and ignored.
    #[schema(min_length = 1, max_length = 200)]
    pub event_id: String,
    pub attempt_id: Uuid,
    pub call_id: Option<String>,
    #[serde(rename = "type")]
    pub event_type: CallEventType,
    /// Required for `ended`.
    pub outcome: Option<Outcome>,
    pub end_reason: Option<String>,
    #[schema(minimum = 0)]
    pub duration_seconds: Option<i32>,
    /// A short call summary without transcripts or phone numbers.
    pub summary: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventAck {
    /// `recorded`, or `duplicate` for an event id seen before.
    pub status: String,
}
