//! Retry delays for every client that must keep trying through outages (the runner worker, the preview
//! client): exponential from `base`, capped at `max`, each drawn between half and all of the exponential
//! step, so a fleet that lost the same server does not return in step. Ours rather than a retry crate's:
//! `backon` (the well-kept choice) adds jitter of at most the *minimum* delay, which leaves a fleet at the cap
//! almost in lockstep; see `docs/decisions/0004-backoff.md`.

use std::time::Duration;

/// Capped exponential backoff with proportional jitter.
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
    /// Delays from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

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

    /// A retry loop's state: the next delay each time, back to the shortest after a success.
    pub fn retries(self) -> Retries {
        Retries {
            backoff: self,
            attempt: 0,
        }
    }
}

/// The attempts of one retry loop (see [`Backoff::retries`]).
#[derive(Debug, Clone)]
pub struct Retries {
    backoff: Backoff,
    attempt: u32,
}

impl Retries {
    /// The delay before the next attempt (and a longer one after it).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.backoff.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Back to the shortest delay after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
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

    #[test]
    fn retries_grow_and_reset() {
        let mut r = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).retries();
        let delays: Vec<Duration> = (0..8).map(|_| r.next_delay()).collect();
        assert!(delays[7] >= Duration::from_secs(1), "{delays:?}");
        r.reset();
        assert!(r.next_delay() <= Duration::from_millis(100));
    }
}
