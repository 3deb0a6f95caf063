//! The daemon's analysis executor: runs the daemon-executed jobs that `POST /lint` and `POST /tools/:id/run`
//! enqueue, at most `concurrency` at a time.
//!
//! It takes work with `start_next_daemon_job()` (woken by the job store's "queue grew" notification, with
//! a slow timer as a backstop), runs each job on the blocking pool through the same library function as
//! `homeboy lint` (`homeboy_components::analysis`), streams the tool's output as `stdout`/`stderr` job
//! events in small batches (`append_events` as [`Actor::Daemon`]), appends a `result` event whose data is the
//! run's result JSON, and finishes the job with the tool's exit code. A job cancelled while it runs is
//! noticed at the next batch or within half a second, and its tool's process group is stopped. When the
//! daemon stops, running tools are stopped the same way and their runs recorded as `error`; jobs still
//! running in the store when the process dies are failed as stale by the store on the next start.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use homeboy_components::analysis::{self, Recorder};
use homeboy_components::command::{Control, Stream, Watcher};
use homeboy_components::tools::AnalysisRequest;
use homeboy_config::Paths;
use homeboy_jobs::{Actor, Claimed, EventKind, JobError, JobResult, JobStatus, JobStore, NewEvent};
use homeboy_observations::ObservationStore;
use homeboy_observations::owner::Owner;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, watch};

/// Default number of analysis jobs run at once.
pub const DEFAULT_CONCURRENCY: usize = 2;
/// Output lines are sent as events at least this often...
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// ...or when this many are waiting.
const FLUSH_LINES: usize = 200;
/// How often a quiet job is checked for cancellation.
const CANCEL_CHECK: Duration = Duration::from_millis(500);
/// The queue is looked at this often even without a notification.
const BACKSTOP: Duration = Duration::from_secs(2);
/// How long a stopping daemon waits for running jobs to wind down.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the executor needs.
pub struct ExecutorParts {
    pub jobs: Arc<dyn JobStore>,
    pub observations: Arc<ObservationStore>,
    pub paths: Paths,
    pub concurrency: usize,
    /// Notified when the queue grows.
    pub wake: Arc<Notify>,
    pub shutdown: watch::Receiver<bool>,
}

/// A running executor.
pub struct Executor {
    task: tokio::task::JoinHandle<()>,
}

impl Executor {
    /// Starts taking jobs.
    pub fn spawn(parts: ExecutorParts) -> Executor {
        Executor {
            task: tokio::spawn(run(parts)),
        }
    }

    /// Waits (up to [`STOP_TIMEOUT`]) for the executor to stop after shutdown was signalled.
    pub async fn stopped(self) {
        let _ = tokio::time::timeout(STOP_TIMEOUT, self.task).await;
    }
}

async fn run(parts: ExecutorParts) {
    let ExecutorParts {
        jobs,
        observations,
        paths,
        concurrency,
        wake,
        mut shutdown,
    } = parts;
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let stopping = Arc::new(AtomicBool::new(false));
    let mut running = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let store = jobs.clone();
        let next = tokio::task::spawn_blocking(move || store.start_next_daemon_job()).await;
        match next {
            Ok(Ok(Some(claimed))) => {
                let job = JobContext {
                    jobs: jobs.clone(),
                    observations: observations.clone(),
                    paths: paths.clone(),
                    stopping: stopping.clone(),
                };
                running.spawn_blocking(move || {
                    job.execute(claimed);
                    drop(permit);
                });
                // Reap finished ones so the set does not grow.
                while running.try_join_next().is_some() {}
                continue;
            }
            Ok(Ok(None)) => drop(permit),
            Ok(Err(e)) => {
                drop(permit);
                tracing::error!("taking an analysis job failed: {e}");
            }
            Err(_) => drop(permit),
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(BACKSTOP) => {}
            _ = shutdown.changed() => break,
        }
    }
    stopping.store(true, Ordering::SeqCst);
    while running.join_next().await.is_some() {}
}

/// One job's execution context.
struct JobContext {
    jobs: Arc<dyn JobStore>,
    observations: Arc<ObservationStore>,
    paths: Paths,
    stopping: Arc<AtomicBool>,
}

impl JobContext {
    fn execute(self, claimed: Claimed) {
        let job_id = claimed.job.id.clone();
        let prepared = AnalysisRequest::from_json(&claimed.request)
            .map_err(|refusal| format!("the job's request is not an analysis request: {refusal:?}"))
            .and_then(|request| analysis::prepare(&self.paths, request).map_err(|e| e.to_string()));
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(message) => return self.fail(&job_id, &message),
        };
        let artifact_root: PathBuf = self.paths.artifact_root().to_path_buf();
        let recorder = Recorder {
            store: &self.observations,
            artifact_root: &artifact_root,
            owner: Owner::this_process("daemon"),
            job_id: Some(job_id.clone()),
        };
        let mut sink = EventSink::new(self.jobs.clone(), job_id.clone(), self.stopping.clone());
        let outcome = analysis::run(&prepared, &recorder, &mut sink);
        sink.flush();
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => return self.fail(&job_id, &e.to_string()),
        };
        let result_event = NewEvent {
            kind: EventKind::Result,
            message: Some("analysis result".into()),
            data: Some(outcome.result.clone()),
        };
        if self
            .jobs
            .append_events(&job_id, &Actor::Daemon, vec![result_event])
            .is_err()
        {
            return; // Cancelled meanwhile: the run is recorded, the job stays cancelled.
        }
        let artifacts: Vec<Value> = outcome.result["artifacts"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|a| json!({"id": a["id"], "name": a["name"], "content_url": a["content_url"]}))
                    .collect()
            })
            .unwrap_or_default();
        let result = JobResult {
            exit_code: outcome.exit_code,
            stdout: None,
            stderr: None,
            data: Some(json!({"run_id": outcome.run.id, "status": outcome.run.status})),
            artifacts,
        };
        if let Err(e) = self.jobs.finish(&job_id, &Actor::Daemon, result) {
            log_unless_cancelled(&job_id, &e);
        }
    }

    /// Ends a job that could not run, with an `error` event saying why.
    fn fail(&self, job_id: &str, message: &str) {
        let event = NewEvent {
            kind: EventKind::Stderr,
            message: Some(message.to_string()),
            data: None,
        };
        let _ = self.jobs.append_events(job_id, &Actor::Daemon, vec![event]);
        let result = JobResult {
            exit_code: 1,
            stderr: Some(message.to_string()),
            ..JobResult::default()
        };
        if let Err(e) = self.jobs.finish(job_id, &Actor::Daemon, result) {
            log_unless_cancelled(job_id, &e);
        }
    }
}

fn log_unless_cancelled(job_id: &str, error: &JobError) {
    if !matches!(error, JobError::NotRunning { .. }) {
        tracing::error!(%job_id, "finishing an analysis job failed: {error}");
    }
}

/// Streams a tool's output as job events and stops it when the job is cancelled or the daemon stops.
struct EventSink {
    jobs: Arc<dyn JobStore>,
    job_id: String,
    stopping: Arc<AtomicBool>,
    pending: Vec<NewEvent>,
    last_flush: Instant,
    last_cancel_check: Instant,
    cancelled: bool,
}

impl EventSink {
    fn new(jobs: Arc<dyn JobStore>, job_id: String, stopping: Arc<AtomicBool>) -> Self {
        EventSink {
            jobs,
            job_id,
            stopping,
            pending: Vec::new(),
            last_flush: Instant::now(),
            last_cancel_check: Instant::now(),
            cancelled: false,
        }
    }

    fn flush(&mut self) {
        self.last_flush = Instant::now();
        if self.pending.is_empty() || self.cancelled {
            self.pending.clear();
            return;
        }
        let events = std::mem::take(&mut self.pending);
        if let Err(e) = self
            .jobs
            .append_events(&self.job_id, &Actor::Daemon, events)
        {
            // Not running any more: cancelled (or failed by someone else). Stop the tool.
            self.cancelled = true;
            if !matches!(e, JobError::NotRunning { .. }) {
                tracing::error!(job_id = %self.job_id, "streaming a job's output failed: {e}");
            }
        }
    }

    fn control(&mut self) -> Control {
        if self.cancelled || self.stopping.load(Ordering::SeqCst) {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

impl Watcher for EventSink {
    fn line(&mut self, stream: Stream, text: &str) -> Control {
        let kind = match stream {
            Stream::Stdout => EventKind::Stdout,
            Stream::Stderr => EventKind::Stderr,
        };
        self.pending.push(NewEvent {
            kind,
            message: Some(text.to_string()),
            data: None,
        });
        if self.pending.len() >= FLUSH_LINES || self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
        self.control()
    }

    fn tick(&mut self) -> Control {
        if !self.pending.is_empty() && self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
        if self.last_cancel_check.elapsed() >= CANCEL_CHECK {
            self.last_cancel_check = Instant::now();
            if let Ok(Some(job)) = self.jobs.get(&self.job_id)
                && job.status != JobStatus::Running
            {
                self.cancelled = true;
            }
        }
        self.control()
    }
}
