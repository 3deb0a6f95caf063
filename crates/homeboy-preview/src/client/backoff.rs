//! Reconnect delays: exponential from `base`, capped at `max`, with jitter (each delay is drawn between
//! half and all of the exponential step) so many clients that lost the same ingress do not return in step.

use std::time::Duration;

/// Capped exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(250),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, getrandom::u64().unwrap_or(u64::MAX / 2))
    }

    /// The delay for a given random draw (tests pass fixed draws).
    pub fn delay_with(&self, attempt: u32, random: u64) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        let half = step / 2;
        let fraction = (random % 1_000_001) as f64 / 1_000_000.0;
        half + half.mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_jitters() {
        let b = Backoff::default();
        assert_eq!(b.delay_with(0, 0), Duration::from_millis(125));
        assert_eq!(b.delay_with(0, 1_000_000), Duration::from_millis(250));
        assert_eq!(b.delay_with(2, 1_000_000), Duration::from_secs(1));
        assert_eq!(b.delay_with(30, 1_000_000), Duration::from_secs(10));
        assert_eq!(b.delay_with(30, 0), Duration::from_secs(5));
        for attempt in 0..40 {
            let d = b.delay(attempt);
            assert!(d <= b.max && d >= b.base / 2, "{attempt}: {d:?}");
        }
    }
}
