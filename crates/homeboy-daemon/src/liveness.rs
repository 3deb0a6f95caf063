//! Idle shutdown and the watch over work the daemon keeps an eye on but does not own.
//!
//! [`Activity`] counts requests in flight and remembers when the last one ended; every request passes
//! through it (two atomic operations). With `--idle-timeout`, [`idle_expired`] resolves once the daemon has
//! been quiet that long: no request in flight or answered within the timeout, no queued or running job, and
//! no [`Watched`] work busy. Jobs and watched work count as activity: the quiet period starts when the last
//! of them ended.
//!
//! [`Watched`] is how work that lives in a crate of the daemon's own layer (managed tunnel services, in
//! `homeboy-tunnel`) reaches the daemon without a dependency between the two: the binary wires an
//! implementation in. The daemon cleans what a reboot left behind once at start ([`Watched::clean_stale`]),
//! reaps every [`REAP_EVERY`] ([`Watched::reap`]: record what ended, within a second), and asks
//! [`Watched::busy`] before idling out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use homeboy_jobs::{JobStatus, JobStore};
use tokio::sync::watch;

/// How often watched work is reaped.
pub const REAP_EVERY: Duration = Duration::from_millis(250);

/// Work the daemon watches over: managed services started outside it, for instance.
pub trait Watched: Send + Sync {
    /// What it is, for log lines (`managed services`).
    fn name(&self) -> &'static str;
    /// Removes records that a reboot left behind (their processes cannot be ours any more). Returns how
    /// many were cleaned.
    fn clean_stale(&self) -> Result<usize, String>;
    /// Records whatever ended since the last call (an exit code, an end time). Returns how many.
    fn reap(&self) -> Result<usize, String>;
    /// Whether anything of it still runs (which keeps an idle daemon up).
    fn busy(&self) -> bool;
}

/// The watched work of one daemon (printable for the options' `Debug`).
#[derive(Clone, Default)]
pub struct Watchers(pub Vec<Arc<dyn Watched>>);

impl std::fmt::Debug for Watchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|w| w.name()))
            .finish()
    }
}

impl Watchers {
    /// Runs every watcher's `clean_stale`, logging what it did.
    pub fn clean_stale(&self) {
        for watched in &self.0 {
            match watched.clean_stale() {
                Ok(0) => {}
                Ok(n) => tracing::info!("{}: cleaned {n} records left by a reboot", watched.name()),
                Err(e) => tracing::warn!("{}: cleaning stale records failed: {e}", watched.name()),
            }
        }
    }

    fn reap(&self) {
        for watched in &self.0 {
            match watched.reap() {
                Ok(0) => {}
                Ok(n) => tracing::info!("{}: {n} ended", watched.name()),
                Err(e) => tracing::warn!("{}: reaping failed: {e}", watched.name()),
            }
        }
    }

    /// The name of the first watched work that is busy.
    fn busy(&self) -> Option<&'static str> {
        self.0.iter().find(|w| w.busy()).map(|w| w.name())
    }

    /// Reaps every [`REAP_EVERY`] on the blocking pool until `shutdown` flips.
    pub fn spawn_reaper(&self, mut shutdown: watch::Receiver<bool>) {
        if self.0.is_empty() {
            return;
        }
        let watchers = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REAP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let watchers = watchers.clone();
                        let _ = tokio::task::spawn_blocking(move || watchers.reap()).await;
                    }
                    _ = shutdown.changed() => break,
                }
            }
        });
    }
}

/// Requests in flight and the end of the last one.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when the daemon was last busy.
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }
}

/// A request in flight; counted out (and the time noted) when dropped.
pub struct ActiveRequest<'a>(&'a Activity);

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    /// Counts a request in until the guard drops.
    pub fn enter(&self) -> ActiveRequest<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        ActiveRequest(self)
    }

    /// Notes that the daemon is busy now.
    pub fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::AcqRel);
    }

    /// How long nothing has been in flight, or `None` while a request is.
    pub fn quiet_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        Some(Duration::from_millis(
            now.saturating_sub(self.last_ms.load(Ordering::Acquire)),
        ))
    }
}

/// Resolves once the daemon has been idle for `timeout` (see the module docs). Checks at most every second.
pub async fn idle_expired(
    timeout: Duration,
    activity: Arc<Activity>,
    jobs: Arc<dyn JobStore>,
    watchers: Watchers,
) {
    let every = (timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        let Some(quiet) = activity.quiet_for() else {
            continue;
        };
        if quiet < timeout {
            continue;
        }
        let (jobs, watchers) = (jobs.clone(), watchers.clone());
        let busy = tokio::task::spawn_blocking(move || busy_with(&*jobs, &watchers))
            .await
            .unwrap_or(Some("the idle check"));
        match busy {
            Some(what) => {
                tracing::debug!(
                    "quiet for {}, but {what} keep the daemon up",
                    humantime::format_duration(Duration::from_millis(quiet.as_millis() as u64))
                );
                activity.touch();
            }
            None => {
                // A request may have arrived while the stores were asked.
                if activity.quiet_for().is_some_and(|q| q >= timeout) {
                    return;
                }
            }
        }
    }
}

/// What keeps the daemon busy, if anything: queued or running jobs, or watched work.
fn busy_with(jobs: &dyn JobStore, watchers: &Watchers) -> Option<&'static str> {
    match jobs.count_by_status() {
        Ok(counts) => {
            let active = counts.iter().any(|(status, n)| {
                matches!(status, JobStatus::Queued | JobStatus::Running) && *n > 0
            });
            if active {
                return Some("jobs");
            }
        }
        // A store that cannot answer is no reason to stop serving.
        Err(_) => return Some("jobs"),
    }
    watchers.busy()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_in_flight_are_never_quiet() {
        let activity = Activity::default();
        let guard = activity.enter();
        assert_eq!(activity.quiet_for(), None);
        let nested = activity.enter();
        drop(guard);
        assert_eq!(activity.quiet_for(), None);
        drop(nested);
        let quiet = activity.quiet_for().unwrap();
        assert!(quiet < Duration::from_secs(1), "{quiet:?}");
    }
}
