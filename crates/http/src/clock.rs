//! The dispatcher's clock: real time in service, or an accelerated clock in the
//! demo that starts inside calling hours and runs faster than real time.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone)]
pub enum Clock {
    System,
    Accelerated(Arc<Mutex<Accelerated>>),
}

#[derive(Debug)]
pub struct Accelerated {
    base: DateTime<Utc>,
    real_base: Instant,
    speed: f64,
}

impl Clock {
    /// A clock that reads `start` now and advances `speed` times faster than real time.
    pub fn accelerated(start: DateTime<Utc>, speed: f64) -> Self {
        Clock::Accelerated(Arc::new(Mutex::new(Accelerated {
            base: start,
            real_base: Instant::now(),
            speed,
        })))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Accelerated(state) => {
                let state = state
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let elapsed = state.real_base.elapsed().as_secs_f64() * state.speed;
                state.base + Duration::milliseconds((elapsed * 1000.0) as i64)
            }
        }
    }

    pub fn is_accelerated(&self) -> bool {
        matches!(self, Clock::Accelerated(_))
    }

    /// Moves an accelerated clock forward to `at` when nothing happens before
    /// then; the system clock ignores this.
    pub fn skip_to(&self, at: DateTime<Utc>) {
        if let Clock::Accelerated(state) = self {
            let mut state = state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let elapsed = state.real_base.elapsed().as_secs_f64() * state.speed;
            let now = state.base + Duration::milliseconds((elapsed * 1000.0) as i64);
            if at > now {
                state.base = at;
                state.real_base = Instant::now();
            }
        }
    }
}
