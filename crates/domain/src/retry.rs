//! Call outcomes and the retry policy that decides what follows each one.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A person answered and the call ran to its end.
    Answered,
    /// The recipient asked not to be called again.
    OptedOut,
    Busy,
    NoAnswer,
    Voicemail,
    /// The platform could not place the call.
    Failed,
    /// The hand-over or its result was lost; the call may have happened.
    Unknown,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Answered,
        Outcome::OptedOut,
        Outcome::Busy,
        Outcome::NoAnswer,
        Outcome::Voicemail,
        Outcome::Failed,
        Outcome::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::OptedOut => "opted_out",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Voicemail => "voicemail",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Outcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == value)
    }

    /// Outcomes after which the contact is never called again by this campaign.
    pub fn is_final(self) -> bool {
        matches!(self, Outcome::Answered | Outcome::OptedOut)
    }
}

/// Minutes to wait before retrying after each outcome; `None` means no retry,
/// so a misspelt outcome name is rejected rather than read as missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub busy_minutes: Option<u32>,
    pub no_answer_minutes: Option<u32>,
    pub voicemail_minutes: Option<u32>,
    pub failed_minutes: Option<u32>,
    pub unknown_minutes: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            busy_minutes: Some(30),
            no_answer_minutes: Some(120),
            voicemail_minutes: Some(240),
            failed_minutes: Some(15),
            unknown_minutes: Some(240),
        }
    }
}

/// What happens to a contact after an attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Call again from this instant (the gate may move it to the next allowed minute).
    RetryAt(DateTime<Utc>),
    /// The contact is finished; the reason says why.
    Finish(&'static str),
}

impl RetryPolicy {
    fn delay(&self, outcome: Outcome) -> Option<u32> {
        match outcome {
            Outcome::Busy => self.busy_minutes,
            Outcome::NoAnswer => self.no_answer_minutes,
            Outcome::Voicemail => self.voicemail_minutes,
            Outcome::Failed => self.failed_minutes,
            Outcome::Unknown => self.unknown_minutes,
            Outcome::Answered | Outcome::OptedOut => None,
        }
    }

    /// Decides the next step after `outcome`, with `attempts_made` counting
    /// the attempt that just ended.
    pub fn next_step(
        &self,
        outcome: Outcome,
        attempts_made: u32,
        max_attempts: u32,
        ended_at: DateTime<Utc>,
    ) -> NextStep {
        if outcome.is_final() {
            return NextStep::Finish(outcome.as_str());
        }
        let Some(minutes) = self.delay(outcome) else {
            return NextStep::Finish("no_retry_for_outcome");
        };
        if attempts_made >= max_attempts {
            return NextStep::Finish("attempts_exhausted");
        }
        NextStep::RetryAt(ended_at + Duration::minutes(i64::from(minutes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn busy_retries_after_its_delay() {
        let step = RetryPolicy::default().next_step(Outcome::Busy, 1, 3, now());
        assert_eq!(step, NextStep::RetryAt(now() + Duration::minutes(30)));
    }

    #[test]
    fn retries_stop_at_max_attempts() {
        let step = RetryPolicy::default().next_step(Outcome::NoAnswer, 3, 3, now());
        assert_eq!(step, NextStep::Finish("attempts_exhausted"));
    }

    #[test]
    fn answered_and_opt_out_are_final() {
        assert_eq!(
            RetryPolicy::default().next_step(Outcome::Answered, 1, 3, now()),
            NextStep::Finish("answered")
        );
        assert_eq!(
            RetryPolicy::default().next_step(Outcome::OptedOut, 1, 3, now()),
            NextStep::Finish("opted_out")
        );
    }

    #[test]
    fn outcome_without_retry_finishes() {
        let policy = RetryPolicy {
            voicemail_minutes: None,
            ..RetryPolicy::default()
        };
        assert_eq!(
            policy.next_step(Outcome::Voicemail, 1, 3, now()),
            NextStep::Finish("no_retry_for_outcome")
        );
    }
}
