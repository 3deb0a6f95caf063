//! Store-level load for the job benchmarks, against any [`JobStore`] (the redb file and PostgreSQL run the
//! same loops): durable enqueue → claim → finish cycles, and enqueue and claim rates on an empty queue and
//! behind a backlog of queued jobs.
//!
//! The backlog comparison runs in alternating rounds — enqueue on both queues, then claim from both, the
//! order flipped every round — and compares medians, so the disk's drift on a shared machine (seen at 3×
//! within one run) lands on both sides instead of on whichever was measured second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use homeboy_jobs::{Actor, ClaimRequest, Executor, JobResult, JobStore, NewJob};

use super::report::{median, ratio, verdict};

/// Jobs queued ahead of the measured ones in the backlog rows.
pub const BACKLOG: usize = 100_000;
/// Jobs enqueued, then claimed, on each side in each round of the backlog measurement.
pub const MEASURED: usize = 2_000;
/// Rounds of the backlog measurement.
pub const ROUNDS: usize = 5;
/// Threads of the backlog measurements (and of the fill).
pub const THREADS: usize = 8;
/// The runner the backlog jobs are for.
const BACKLOG_RUNNER: &str = "bench";

fn runner_job(runner: &str) -> NewJob {
    NewJob {
        operation: "bench".into(),
        executor: Executor::Runner,
        request: serde_json::json!({"runner_id": runner, "command": ["true"]}),
        target_runner_id: Some(runner.to_string()),
        project_id: None,
        submission_key: None,
        max_attempts: None,
    }
}

/// Runs `work(thread)` on `threads` threads started together and returns the seconds until the last ended.
fn together(
    threads: usize,
    work: impl Fn(usize) -> anyhow::Result<u64> + Send + Sync + 'static,
) -> anyhow::Result<(u64, f64)> {
    let work = Arc::new(work);
    let start = Arc::new(std::sync::Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (work, start) = (work.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                work(t)
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut total = 0;
    for h in handles {
        total += h
            .join()
            .map_err(|_| anyhow::anyhow!("bench thread panicked"))??;
    }
    Ok((total, began.elapsed().as_secs_f64()))
}

/// Enqueue → claim → finish cycles per second with `threads` threads for `secs`, each thread on its own
/// runner's jobs, every step durable.
pub fn cycles(store: Arc<dyn JobStore>, threads: usize, secs: f64) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (cycles, elapsed) = together(threads, move |t| {
        let runner = format!("bench-{t}");
        let mut cycles = 0;
        while Instant::now() < deadline {
            store.enqueue(runner_job(&runner))?;
            let claimed = store
                .claim(ClaimRequest {
                    runner_id: runner.clone(),
                    project_id: None,
                    lease_ms: 30_000,
                })?
                .ok_or_else(|| anyhow::anyhow!("nothing to claim"))?;
            let actor = Actor::Runner {
                runner_id: runner.clone(),
                claim_id: claimed.job.claim_id.clone().unwrap_or_default(),
            };
            store.finish(&claimed.job.id, &actor, JobResult::default())?;
            cycles += 1;
        }
        Ok(cycles)
    })?;
    Ok(cycles as f64 / elapsed)
}

/// Enqueues `jobs` jobs with [`THREADS`] threads; returns jobs per second.
pub fn enqueue_rate(store: Arc<dyn JobStore>, jobs: usize) -> anyhow::Result<f64> {
    let (done, elapsed) = together(THREADS, move |t| {
        let mine = jobs / THREADS + usize::from(t < jobs % THREADS);
        for _ in 0..mine {
            store.enqueue(runner_job(BACKLOG_RUNNER))?;
        }
        Ok(mine as u64)
    })?;
    Ok(done as f64 / elapsed)
}

/// Claims `jobs` jobs (the oldest queued) with [`THREADS`] threads; returns claims per second.
pub fn claim_rate(store: Arc<dyn JobStore>, jobs: usize) -> anyhow::Result<f64> {
    let (done, elapsed) = together(THREADS, move |t| {
        let mine = jobs / THREADS + usize::from(t < jobs % THREADS);
        for _ in 0..mine {
            store
                .claim(ClaimRequest {
                    runner_id: BACKLOG_RUNNER.into(),
                    project_id: None,
                    lease_ms: 10 * 60 * 1000,
                })?
                .ok_or_else(|| anyhow::anyhow!("the queue ran dry"))?;
        }
        Ok(mine as u64)
    })?;
    Ok(done as f64 / elapsed)
}

/// Enqueue and claim rates (medians of [`ROUNDS`]) on an empty queue and behind [`BACKLOG`] queued jobs.
pub struct Backlog {
    pub empty_enqueue: f64,
    pub empty_claim: f64,
    pub full_enqueue: f64,
    pub full_claim: f64,
    pub fill_secs: f64,
}

/// Which queue a backlog round is measuring.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Empty,
    Full,
}

/// The alternating rounds: each enqueues [`MEASURED`] jobs on both sides, then claims as many from both,
/// the order flipped every round. `enqueue` and `claim` return the rate of one such step.
pub fn rounds(
    fill_secs: f64,
    mut enqueue: impl FnMut(Side, usize) -> anyhow::Result<f64>,
    mut claim: impl FnMut(Side, usize) -> anyhow::Result<f64>,
) -> anyhow::Result<Backlog> {
    let mut rates: [Vec<f64>; 4] = Default::default();
    let index = |side: Side, op: usize| op * 2 + usize::from(side == Side::Full);
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [Side::Empty, Side::Full]
        } else {
            [Side::Full, Side::Empty]
        };
        for side in order {
            rates[index(side, 0)].push(enqueue(side, MEASURED)?);
        }
        for side in order {
            rates[index(side, 1)].push(claim(side, MEASURED)?);
        }
    }
    let [mut ee, mut fe, mut ec, mut fc] = rates;
    Ok(Backlog {
        empty_enqueue: median(&mut ee),
        full_enqueue: median(&mut fe),
        empty_claim: median(&mut ec),
        full_claim: median(&mut fc),
        fill_secs,
    })
}

/// [`rounds`] at the store: `full` is filled with [`BACKLOG`] jobs first, then `settle` runs (a chance to
/// let the fill's own after-effects — flushing, vacuum — finish before measuring).
pub fn backlog(
    empty: Arc<dyn JobStore>,
    full: Arc<dyn JobStore>,
    settle: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Backlog> {
    let began = Instant::now();
    enqueue_rate(full.clone(), BACKLOG)?;
    let fill_secs = began.elapsed().as_secs_f64();
    settle()?;
    let pick = |side: Side| match side {
        Side::Empty => empty.clone(),
        Side::Full => full.clone(),
    };
    rounds(
        fill_secs,
        |side, jobs| enqueue_rate(pick(side), jobs),
        |side, jobs| claim_rate(pick(side), jobs),
    )
}

impl Backlog {
    /// Table rows: enqueue and claim, empty vs backlog, with the ≥ 0.8× target.
    pub fn rows(&self, label: &str) -> Vec<Vec<String>> {
        let row = |what: &str, empty: f64, full: f64| {
            vec![
                format!("{label}: {what}/s, {THREADS} threads"),
                format!("{empty:.0}"),
                format!("{full:.0}"),
                ratio(full, empty),
                ">= 0.8x".into(),
                verdict(full >= 0.8 * empty),
            ]
        };
        vec![
            row("enqueue", self.empty_enqueue, self.full_enqueue),
            row("claim", self.empty_claim, self.full_claim),
        ]
    }
}

/// The header of [`Backlog::rows`].
pub fn backlog_header() -> Vec<&'static str> {
    vec![
        "measurement",
        "empty queue (median)",
        "100,000 queued (median)",
        "ratio",
        "target",
        "verdict",
    ]
}
