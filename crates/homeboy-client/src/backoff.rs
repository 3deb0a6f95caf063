//! Capped exponential backoff with full jitter, for clients that must keep trying through outages.

use std::time::Duration;

/// Delays that double from `base` up to `cap`, each drawn uniformly from `[base/2, current]` so a fleet of
/// runners does not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            current: base,
        }
    }

    /// The next delay (and doubles the window for the one after).
    pub fn next_delay(&mut self) -> Duration {
        let low = self.base.as_millis() as u64 / 2;
        let high = (self.current.as_millis() as u64).max(low + 1);
        self.current = (self.current * 2).min(self.cap);
        Duration::from_millis(fastrand::u64(low..=high))
    }

    /// Back to the shortest delay after a success.
    pub fn reset(&mut self) {
        self.current = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_millis(50) && *d <= Duration::from_secs(2))
        );
        assert!(
            delays[10..].iter().any(|d| *d > Duration::from_millis(400)),
            "{delays:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
