//! Campaign states and the transitions between them.
//!
//! ```text
//! draft ──launch──▶ running ──pause──▶ paused ──resume──▶ running
//! running ──(no contact left to call)──▶ completed
//! draft | running | paused ──cancel──▶ cancelled
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Draft,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Completed => "completed",
            CampaignState::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "draft" => CampaignState::Draft,
            "running" => CampaignState::Running,
            "paused" => CampaignState::Paused,
            "completed" => CampaignState::Completed,
            "cancelled" => CampaignState::Cancelled,
            _ => return None,
        })
    }

    /// Whether contacts may still be added, evidence attached and settings changed.
    pub fn accepts_changes(self) -> bool {
        matches!(self, CampaignState::Draft | CampaignState::Paused)
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator's request to change a campaign's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Launch,
    Pause,
    Resume,
    Cancel,
    /// Made by the dispatcher when no contact is left to call.
    Complete,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Launch => "launch",
            Transition::Pause => "pause",
            Transition::Resume => "resume",
            Transition::Cancel => "cancel",
            Transition::Complete => "complete",
        }
    }

    /// Whether the transition must pass launch validation first.
    pub fn needs_validation(self) -> bool {
        matches!(self, Transition::Launch | Transition::Resume)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a campaign that is {}", .transition.as_str(), .from.as_str())]
pub struct InvalidTransition {
    pub from: CampaignState,
    pub transition: Transition,
}

/// The state a transition leads to from `from`.
///
/// # Errors
/// Returns [`InvalidTransition`] for any move the state diagram does not show.
pub fn apply(
    from: CampaignState,
    transition: Transition,
) -> Result<CampaignState, InvalidTransition> {
    use CampaignState::*;
    let to = match (from, transition) {
        (Draft, Transition::Launch) => Running,
        (Running, Transition::Pause) => Paused,
        (Paused, Transition::Resume) => Running,
        (Running, Transition::Complete) => Completed,
        (Draft | Running | Paused, Transition::Cancel) => Cancelled,
        _ => return Err(InvalidTransition { from, transition }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CampaignState::*;

    #[test]
    fn allowed_transitions_follow_the_diagram() {
        assert_eq!(apply(Draft, Transition::Launch), Ok(Running));
        assert_eq!(apply(Running, Transition::Pause), Ok(Paused));
        assert_eq!(apply(Paused, Transition::Resume), Ok(Running));
        assert_eq!(apply(Running, Transition::Complete), Ok(Completed));
        for from in [Draft, Running, Paused] {
            assert_eq!(apply(from, Transition::Cancel), Ok(Cancelled), "{from}");
        }
    }

    #[test]
    fn every_other_transition_is_rejected() {
        let states = [Draft, Running, Paused, Completed, Cancelled];
        let transitions = [
            Transition::Launch,
            Transition::Pause,
            Transition::Resume,
            Transition::Cancel,
            Transition::Complete,
        ];
        let allowed = [
            (Draft, Transition::Launch),
            (Running, Transition::Pause),
            (Paused, Transition::Resume),
            (Running, Transition::Complete),
            (Draft, Transition::Cancel),
            (Running, Transition::Cancel),
            (Paused, Transition::Cancel),
        ];
        for from in states {
            for transition in transitions {
                if !allowed.contains(&(from, transition)) {
                    assert_eq!(
                        apply(from, transition),
                        Err(InvalidTransition { from, transition }),
                        "{from} {}",
                        transition.as_str()
                    );
                }
            }
        }
    }

    #[test]
    fn terminal_states_accept_no_changes() {
        assert!(Draft.accepts_changes());
        assert!(Paused.accepts_changes());
        assert!(!Running.accepts_changes());
        assert!(!Completed.accepts_changes());
        assert!(!Cancelled.accepts_changes());
    }
}
