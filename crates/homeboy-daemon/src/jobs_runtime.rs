//! The parts of the job contract that need the transport: the claim long poll (`wait_ms`), the Server-Sent
//! Events streams of `GET /jobs/:id/events?follow=true` (one job's events) and `GET /jobs/events?follow=true`
//! (every job's changes, for dashboards), and the daemon's job maintenance (lease expiry and pruning on a
//! timer).
//!
//! The job store calls an observer after every durable batch; here that becomes a [`Notify`] for "a job
//! became claimable" and a broadcast of changed job ids. Waiters always re-read the store through the
//! transport-free handler or the store itself, so a missed or lagged notification costs a re-read, never a
//! lost event.
//!
//! Stream frames (axum's `Sse`): each job event is `id: <sequence>`, `event: <kind>` (status, stdout, ...),
//! `data: <event JSON>`; the stream ends with `event: end`, or `event: stream_error` carrying an error
//! envelope; a `: keep-alive` comment every 15 s keeps proxies from closing an idle stream.
//!
//! `GET /runtime/jobs` reports how many claim long polls are parked (registered for a wake-up), so a
//! caller can know that an enqueue from now on wakes them rather than sleep and hope.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use homeboy_api::jobs::{ClaimBody, MAX_CLAIM_WAIT_MS, RuntimeJobs};
use homeboy_jobs::{JobEvent, JobStore, PrunePolicy};
use homeboy_service::{Api, ApiError, ApiRequest, ApiResponse, JsonAnswer};
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::time::Instant;

use crate::metrics::DaemonMetrics;

/// Events read per store call while streaming.
const STREAM_PAGE: usize = 500;
/// A comment line every this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often expired leases are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often finished jobs are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Change notifications of one daemon's job store.
#[derive(Clone)]
pub struct JobsRuntime {
    store: Arc<dyn JobStore>,
    queue: Arc<Notify>,
    changed: broadcast::Sender<Arc<Vec<String>>>,
    shutdown: watch::Receiver<bool>,
    /// Claim long polls waiting for the queue to grow.
    parked_claims: Arc<AtomicUsize>,
    /// Claims granted and leases expired are counted here.
    metrics: Arc<DaemonMetrics>,
}

/// Counts one parked claim long poll while it lives (a dropped request future counts out too).
struct Parked(Arc<AtomicUsize>);

impl Parked {
    fn enter(count: &Arc<AtomicUsize>) -> Parked {
        count.fetch_add(1, Ordering::SeqCst);
        Parked(count.clone())
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl JobsRuntime {
    /// Subscribes to `store`'s changes. `shutdown` flips to true when the daemon stops, ending streams and
    /// long polls.
    pub fn attach(store: Arc<dyn JobStore>, shutdown: watch::Receiver<bool>) -> Self {
        let queue = Arc::new(Notify::new());
        let (changed, _) = broadcast::channel(256);
        let observer_queue = queue.clone();
        let observer_changed = changed.clone();
        store.set_observer(Arc::new(move |changes| {
            if changes.queue_grew {
                observer_queue.notify_waiters();
            }
            if !changes.jobs.is_empty() {
                let _ = observer_changed.send(Arc::new(changes.jobs.clone()));
            }
        }));
        JobsRuntime {
            store,
            queue,
            changed,
            shutdown,
            parked_claims: Arc::new(AtomicUsize::new(0)),
            metrics: Arc::new(DaemonMetrics::default()),
        }
    }

    /// The daemon's metrics (claims and lease expiries are counted here; the HTTP app adds the rest).
    pub fn metrics(&self) -> Arc<DaemonMetrics> {
        self.metrics.clone()
    }

    /// The job store, for the job gauge of `GET /metrics`.
    pub fn store(&self) -> Arc<dyn JobStore> {
        self.store.clone()
    }

    /// `GET /runtime/jobs`: `{claim_waiters}`, the claim long polls parked right now. A waiter counts only
    /// once it is registered for the queue's wake-up, so a job enqueued after it is counted wakes it.
    pub fn runtime_view(&self) -> RuntimeJobs {
        RuntimeJobs {
            claim_waiters: self.parked_claims.load(Ordering::SeqCst),
        }
    }

    /// Notified whenever the queue grows (a job was enqueued or requeued): the analysis executor's wake-up.
    pub fn queue_signal(&self) -> Arc<Notify> {
        self.queue.clone()
    }

    /// Sweeps expired leases every second and prunes finished jobs every ten minutes until shutdown.
    pub fn spawn_maintenance(&self, prune: PrunePolicy) {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(SWEEP_EVERY);
            let mut prune_timer = tokio::time::interval(PRUNE_EVERY);
            loop {
                tokio::select! {
                    _ = sweep.tick() => {
                        let store = store.clone();
                        let result = tokio::task::spawn_blocking(move || store.expire_leases()).await;
                        match result {
                            Ok(Ok(expired)) => metrics.lease_expiries.inc_by(expired.len() as u64),
                            Ok(Err(e)) => tracing::error!("lease sweep failed: {e}"),
                            Err(_) => {}
                        }
                    }
                    _ = prune_timer.tick() => {
                        let store = store.clone();
                        let result = tokio::task::spawn_blocking(move || store.prune(&prune)).await;
                        if let Ok(Err(e)) = result {
                            tracing::error!("pruning finished jobs failed: {e}");
                        }
                    }
                    _ = shutdown.changed() => break,
                }
            }
        });
    }

    /// `POST /runner/jobs/claim` with `wait_ms`: answers at once when a job is claimed or the request is
    /// refused; otherwise waits for a job to become claimable (or `wait_ms` to pass) and tries again.
    pub async fn claim_long_poll(&self, api: Arc<Api>, req: ApiRequest) -> ApiResponse {
        let wait_ms = req
            .json_body::<ClaimBody>()
            .ok()
            .and_then(|b| b.wait_ms)
            .filter(|w| *w <= MAX_CLAIM_WAIT_MS)
            .unwrap_or(0);
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        let mut shutdown = self.shutdown.clone();
        loop {
            // Register interest before looking, so a job enqueued in between is not missed.
            let notified = self.queue.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let answer = run_blocking(api.clone(), req.clone()).await;
            let empty = answer.status == 200 && answer.body["data"]["claim"].is_null();
            if answer.status == 200 && !empty {
                self.metrics.claims.inc();
            }
            if !empty || Instant::now() >= deadline || *shutdown.borrow() {
                return answer;
            }
            let _parked = Parked::enter(&self.parked_claims);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// `GET /jobs/:id/events?follow=true`: the events after the cursor (`Last-Event-ID`, else `after`), then new
    /// ones as they happen, as Server-Sent Events; the stream ends after the job's terminal status event.
    pub fn event_stream(&self, job_id: String, after: u64) -> Response {
        let (frames, body) = mpsc::channel::<Event>(64);
        let runtime = self.clone();
        tokio::spawn(async move { runtime.pump_events(job_id, after, frames).await });
        sse_response(body)
    }

    /// `GET /jobs/events?follow=true`: every job's changes as Server-Sent Events. `event: ready` first (the
    /// stream is subscribed: a listing read after it misses nothing), then `event: job` with the job as it is
    /// now each time one changes; `ready` again after the stream fell behind (the reader lists again).
    pub fn job_changes(&self) -> Response {
        let (frames, body) = mpsc::channel::<Event>(64);
        let runtime = self.clone();
        let changes = self.changed.subscribe();
        tokio::spawn(async move { runtime.pump_changes(changes, frames).await });
        sse_response(body)
    }

    async fn pump_changes(
        &self,
        mut changes: broadcast::Receiver<Arc<Vec<String>>>,
        frames: mpsc::Sender<Event>,
    ) {
        let mut shutdown = self.shutdown.clone();
        let ready = || Event::default().event("ready").data("{}");
        if frames.send(ready()).await.is_err() {
            return;
        }
        loop {
            let ids = tokio::select! {
                changed = changes.recv() => match changed {
                    Ok(ids) => ids,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if frames.send(ready()).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = frames.closed() => return,
                _ = shutdown.changed() => return,
            };
            let store = self.store.clone();
            let read = tokio::task::spawn_blocking(move || {
                ids.iter()
                    .filter_map(|id| store.get(id).ok().flatten())
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            for job in read {
                let data = serde_json::to_string(&job).unwrap_or_else(|_| "{}".into());
                if frames
                    .send(Event::default().event("job").data(data))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }

    async fn pump_events(&self, job_id: String, mut cursor: u64, frames: mpsc::Sender<Event>) {
        let mut changes = self.changed.subscribe();
        let mut shutdown = self.shutdown.clone();
        if frames
            .send(Event::default().retry(Duration::from_millis(2000)))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let store = self.store.clone();
            let id = job_id.clone();
            let read = tokio::task::spawn_blocking(move || {
                let events = store.events(&id, cursor, STREAM_PAGE)?;
                let job = store.get(&id)?;
                Ok::<_, homeboy_jobs::JobError>((events, job))
            })
            .await;
            let (events, job) = match read {
                Ok(Ok((events, Some(job)))) => (events, job),
                Ok(Ok((_, None))) | Ok(Err(homeboy_jobs::JobError::NotFound(_))) => {
                    let _ = frames
                        .send(error_frame(
                            "not_found.job",
                            "the job does not exist (or was pruned)",
                        ))
                        .await;
                    return;
                }
                _ => {
                    let _ = frames
                        .send(error_frame("internal", "reading the job's events failed"))
                        .await;
                    return;
                }
            };
            let full_page = events.len() == STREAM_PAGE;
            for event in &events {
                cursor = event.sequence;
                if frames.send(event_frame(event)).await.is_err() {
                    return; // The client went away.
                }
            }
            if job.status.is_terminal() && cursor >= job.last_sequence {
                let _ = frames.send(Event::default().event("end").data("{}")).await;
                return;
            }
            if full_page {
                continue;
            }
            // Wait for this job to change (the Sse layer keeps the connection alive meanwhile).
            loop {
                tokio::select! {
                    changed = changes.recv() => match changed {
                        Ok(ids) if !ids.contains(&job_id) => continue,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    () = frames.closed() => return,
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// The frames of `body` as a Server-Sent Events response, with a keep-alive comment every 15 s.
fn sse_response(body: mpsc::Receiver<Event>) -> Response {
    let stream = futures_util::stream::unfold(body, |mut body| async move {
        body.recv()
            .await
            .map(|frame| (Ok::<_, Infallible>(frame), body))
    });
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"));
    let mut response = sse.into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn event_frame(event: &JobEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    Event::default()
        .id(event.sequence.to_string())
        .event(event.kind.as_str())
        .data(data)
}

fn error_frame(code: &str, message: &str) -> Event {
    let error = ApiError::new(homeboy_api::ErrorKind::NotFound, code.to_string(), message);
    let data = homeboy_api::error_body(&error).to_string();
    Event::default().event("stream_error").data(data)
}

/// Runs the handler on the blocking pool, answering with the serialised envelope.
pub async fn run_blocking_json(api: Arc<Api>, req: ApiRequest) -> JsonAnswer {
    tokio::task::spawn_blocking(move || api.handle_json(&req))
        .await
        .unwrap_or_else(|_| {
            JsonAnswer::from(ApiResponse::error(&ApiError::internal(
                "the request handler failed",
            )))
        })
}

/// Runs the handler on the blocking pool.
pub async fn run_blocking(api: Arc<Api>, req: ApiRequest) -> ApiResponse {
    tokio::task::spawn_blocking(move || api.handle(&req))
        .await
        .unwrap_or_else(|_| ApiResponse::error(&ApiError::internal("the request handler failed")))
}
