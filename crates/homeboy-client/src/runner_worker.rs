//! `homeboy runner work`: a runner that takes jobs from a broker over outbound HTTP.
//!
//! It registers a session, keeps `concurrency` claim long-polls open, and runs each claimed job's command
//! (argv, no shell) in its own process group under the workspace, with the job's environment. Output lines
//! are streamed as batched events (one request per batch, not per line); the lease is extended every
//! `lease/2`; a job cancelled on the broker is seen at the next heartbeat and its process group is killed;
//! the exit code is reported with `finish`. Broker outages are retried with capped exponential backoff and
//! jitter — the worker never exits on a transient error — and a refused credential stops it with a clear
//! error. On shutdown it stops claiming and kills its jobs' process groups without finishing them, so their
//! leases expire and the broker requeues them. What it does (its lines, each job it claims and finishes)
//! goes to [`WorkerOptions::events`] when set (the CLI shows the current job on a terminal), else stderr.
//!
//! The job's environment is the worker's own minus anything that looks secret (including the broker token
//! variable), plus the runner's `runner.env`, plus the job's `env`, plus each of `secret_env_names` resolved
//! at execution time by a [`SecretSource`] (normally the runner's `servers/<runner-id>.json`). Secret values
//! are never logged or sent back: every value injected under a sensitive name (the resolved secrets and the
//! `runner.env`/`env` values whose names look sensitive) goes into the job's
//! [`SecretMask`](crate::secret_mask::SecretMask), and each output pipe is masked as raw bytes straight off
//! the read — before it is split into lines, before a line is cut at 16 KiB, before the 4 KiB result tail
//! keeps its end, before events are batched — so nothing that cuts the output later can cut a secret in half
//! (see [`crate::secret_mask`] for what is masked and how the stream holds back only a possible secret's
//! beginning).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use homeboy_api::jobs::{
    ClaimAnswer, ClaimBody, ClaimRef, EventItem, EventsBody, FinishBody, HeartbeatAnswer,
    HeartbeatBody, JobResult, RunnerJobRequest, SessionAnswer, SessionRequest,
};
use homeboy_config::secrets::{is_sensitive_env, is_sensitive_name};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Notify, watch};

use crate::ClientError;
use crate::client::DaemonClient;
use crate::secret_mask::SecretMask;
use homeboy_build as build_info;
use homeboy_http::backoff::Backoff;

/// Where secret values come from at execution time.
pub trait SecretSource: Send + Sync {
    /// The value of secret `name`, or a message (never containing a value) saying why not.
    fn resolve(&self, name: &str) -> Result<String, String>;
}

/// Secrets from the runner's own server declaration: `runner.secret_env` of `servers/<runner-id>.json`.
pub struct ServerSecrets {
    server_id: String,
    secret_env: BTreeMap<String, homeboy_config::secret_env::SecretRef>,
}

impl ServerSecrets {
    pub fn new(
        server_id: String,
        secret_env: BTreeMap<String, homeboy_config::secret_env::SecretRef>,
    ) -> Self {
        ServerSecrets {
            server_id,
            secret_env,
        }
    }
}

impl SecretSource for ServerSecrets {
    fn resolve(&self, name: &str) -> Result<String, String> {
        match self.secret_env.get(name) {
            Some(reference) => {
                homeboy_config::secret_env::resolve(name, reference).map_err(|e| e.to_string())
            }
            None => Err(format!(
                "secret {name} is not in runner.secret_env of servers/{}.json",
                self.server_id
            )),
        }
    }
}

/// A source that has no secrets: jobs naming any fail with a clear error.
pub struct NoSecrets;

impl SecretSource for NoSecrets {
    fn resolve(&self, name: &str) -> Result<String, String> {
        Err(format!(
            "secret {name} is not configured for this runner (add it to runner.secret_env of its server config)"
        ))
    }
}

/// How the worker runs.
#[derive(Clone)]
pub struct WorkerOptions {
    pub broker_url: String,
    pub runner_id: String,
    pub token: Option<String>,
    /// The variable the token came from, removed from job environments.
    pub token_env: Option<String>,
    pub project_id: Option<String>,
    pub concurrency: usize,
    pub workspace: PathBuf,
    pub lease_ms: u64,
    pub claim_wait_ms: u64,
    /// How long output lines are gathered before they are sent as one batch.
    pub event_flush: Duration,
    pub secrets: Arc<dyn SecretSource>,
    /// Non-secret environment every job gets (`runner.env`).
    pub runner_env: BTreeMap<String, String>,
    /// Where the worker reports what it does; without one its lines go to stderr.
    pub events: Option<WorkerEvents>,
}

/// What the worker reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEvent {
    /// A line for the operator (session, retries, a job's end).
    Line(String),
    /// Slot `slot` claimed a job and runs it now.
    Claimed { slot: usize, job_id: String },
    /// Slot `slot` is done with its job and waits for the next.
    Done { slot: usize, job_id: String },
}

/// Receives [`WorkerEvent`]s.
pub type WorkerEvents = Arc<dyn Fn(WorkerEvent) + Send + Sync>;

impl WorkerOptions {
    /// A line for the operator: to the event sink, else stderr.
    fn say(&self, line: String) {
        match &self.events {
            Some(events) => events(WorkerEvent::Line(line)),
            None => eprintln!("{line}"),
        }
    }

    fn report(&self, event: WorkerEvent) {
        if let Some(events) = &self.events {
            events(event);
        }
    }
}

impl WorkerOptions {
    pub fn new(broker_url: String, runner_id: String, workspace: PathBuf) -> Self {
        WorkerOptions {
            broker_url,
            runner_id,
            token: None,
            token_env: None,
            project_id: None,
            concurrency: 1,
            workspace,
            lease_ms: 30_000,
            claim_wait_ms: 20_000,
            event_flush: Duration::from_millis(200),
            secrets: Arc::new(NoSecrets),
            runner_env: BTreeMap::new(),
            events: None,
        }
    }
}

const TAIL_BYTES: usize = 4096;
const MAX_LINE: usize = 16 * 1024;
/// Bytes asked of an output pipe per read.
const READ_CHUNK: usize = 8 * 1024;
const MAX_BATCH: usize = 500;
const MAX_BUFFERED: usize = 20_000;
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long output pipes may stay open after the job's process group is gone.
const PIPE_DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs until `shutdown` flips to true. Errors only for a refused credential or bad options.
pub async fn run(
    options: WorkerOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let client = DaemonClient::new(options.broker_url.clone())?.with_bearer(options.token.clone());
    std::fs::create_dir_all(&options.workspace).map_err(|e| {
        ClientError::io(
            format!("create workspace {}", options.workspace.display()),
            e,
        )
    })?;
    let options = Arc::new(options);
    register(&client, &options, shutdown.clone()).await?;
    let mut slots = Vec::new();
    for slot in 0..options.concurrency.max(1) {
        let (client, options, shutdown) = (client.clone(), options.clone(), shutdown.clone());
        slots.push(tokio::spawn(async move {
            claim_loop(slot, client, options, shutdown).await
        }));
    }
    let mut first_error = None;
    for slot in slots {
        if let Ok(Err(e)) = slot.await {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A refused credential is not transient: the worker stops with the broker's explanation.
fn fatal(error: &ClientError) -> bool {
    matches!(error, ClientError::Api(e) if e.status() == 401 || e.status() == 403)
}

async fn register(
    client: &DaemonClient,
    options: &WorkerOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let body = SessionRequest {
        runner_id: options.runner_id.clone(),
        controller_id: None,
        homeboy_version: Some(build_info::VERSION.to_string()),
        build_id: Some(build_info::BUILD_ID.to_string()),
        worker_pid: Some(u64::from(std::process::id())),
    };
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10)).retries();
    loop {
        match client
            .post_as::<SessionAnswer>("/runner/sessions", &body, Duration::from_secs(10))
            .await
        {
            Ok(answer) => {
                options.say(format!(
                    "homeboy runner {}: session {} on {}",
                    options.runner_id,
                    answer.session.id,
                    client.base_url()
                ));
                return Ok(());
            }
            Err(e) if fatal(&e) => return Err(e),
            Err(e) => {
                options.say(format!(
                    "homeboy runner {}: broker not reachable ({e}); retrying",
                    options.runner_id
                ));
                if sleep_or_shutdown(backoff.next_delay(), &mut shutdown).await {
                    return Ok(());
                }
            }
        }
    }
}

/// Sleeps; true if shutdown came first.
async fn sleep_or_shutdown(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

async fn claim_loop(
    slot: usize,
    client: DaemonClient,
    options: Arc<WorkerOptions>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10)).retries();
    let body = ClaimBody {
        runner_id: options.runner_id.clone(),
        project_id: options.project_id.clone(),
        lease_ms: Some(options.lease_ms),
        wait_ms: Some(options.claim_wait_ms),
    };
    let timeout = Duration::from_millis(options.claim_wait_ms) + Duration::from_secs(15);
    while !*shutdown.borrow() {
        let claimed = tokio::select! {
            result = client.post_as::<ClaimAnswer>("/runner/jobs/claim", &body, timeout) => result,
            _ = shutdown.changed() => break,
        };
        match claimed {
            Ok(answer) => {
                backoff.reset();
                let Some(claim) = answer.claim else {
                    continue;
                };
                let attempt = claim.job.attempt;
                let job = Job {
                    id: claim.job.id,
                    claim_id: claim.job.claim_id.unwrap_or_default(),
                    // A request this worker cannot read runs nothing: the job fails on its empty command.
                    request: serde_json::from_value(claim.request).unwrap_or_default(),
                };
                options.say(format!(
                    "homeboy runner {} [{slot}]: claimed job {} (attempt {attempt})",
                    options.runner_id, job.id
                ));
                let job_id = job.id.clone();
                options.report(WorkerEvent::Claimed {
                    slot,
                    job_id: job_id.clone(),
                });
                let ran = run_job(&client, &options, job, shutdown.clone()).await;
                options.report(WorkerEvent::Done { slot, job_id });
                ran?;
            }
            Err(e) if fatal(&e) => return Err(e),
            Err(e) => {
                options.say(format!(
                    "homeboy runner {} [{slot}]: claim failed ({e}); retrying",
                    options.runner_id
                ));
                if sleep_or_shutdown(backoff.next_delay(), &mut shutdown).await {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// A claimed job as the worker needs it.
struct Job {
    id: String,
    claim_id: String,
    request: RunnerJobRequest,
}

/// Why a job stopped before its process exited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abandon {
    /// The broker cancelled it.
    Cancelled,
    /// The lease or claim is gone (expired, mismatched, job no longer running).
    ClaimLost,
    /// The worker is shutting down.
    Shutdown,
}

/// The claim as every claim-scoped call names it.
fn claim_ref(options: &WorkerOptions, job: &Job) -> ClaimRef {
    ClaimRef {
        runner_id: options.runner_id.clone(),
        claim_id: job.claim_id.clone(),
    }
}

async fn run_job(
    client: &DaemonClient,
    options: &Arc<WorkerOptions>,
    job: Job,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let spawned = prepare(options, &job).and_then(|(mut cmd, mask)| {
        cmd.spawn()
            .map(|child| (child, mask))
            .map_err(|e| format!("cannot start {:?}: {e}", job.request.command.first()))
    });
    let (mut child, mask) = match spawned {
        Ok(spawned) => spawned,
        Err(problem) => {
            // Not a crash of the worker: the job fails with the reason.
            let events = EventBuffer::default();
            events.push("error", problem.clone());
            flush_events(client, options, &job, &events).await;
            finish(client, options, &job, 127, "", &problem, &mut shutdown).await?;
            return Ok(());
        }
    };
    let pgid = child.id().unwrap_or_default();
    let events = Arc::new(EventBuffer::default());
    let stdout_tail = Arc::new(Mutex::new(Tail::default()));
    let stderr_tail = Arc::new(Mutex::new(Tail::default()));
    let readers = [
        child.stdout.take().map(|out| {
            tokio::spawn(pump_lines(
                out,
                "stdout",
                events.clone(),
                stdout_tail.clone(),
                mask.clone(),
            ))
        }),
        child.stderr.take().map(|err| {
            tokio::spawn(pump_lines(
                err,
                "stderr",
                events.clone(),
                stderr_tail.clone(),
                mask.clone(),
            ))
        }),
    ];
    let (stop_tx, stop_rx) = watch::channel(false);
    let flusher = {
        let (client, options, events) = (client.clone(), options.clone(), events.clone());
        let job_ref = Job {
            id: job.id.clone(),
            claim_id: job.claim_id.clone(),
            request: RunnerJobRequest::default(),
        };
        let stop_rx = stop_rx.clone();
        tokio::spawn(async move { event_pump(&client, &options, &job_ref, &events, stop_rx).await })
    };
    let mut heartbeat =
        tokio::time::interval(Duration::from_millis((options.lease_ms / 2).max(100)));
    heartbeat.tick().await;
    let outcome = loop {
        tokio::select! {
            status = child.wait() => break Ok(status),
            _ = heartbeat.tick() => {
                if let Some(reason) = beat(client, options, &job).await {
                    break Err(reason);
                }
            }
            _ = shutdown.changed() => if *shutdown.borrow() { break Err(Abandon::Shutdown) },
            () = events.lost.notified() => break Err(Abandon::ClaimLost),
        }
    };
    let exit_code = match outcome {
        Ok(Ok(status)) => exit_code(status),
        Ok(Err(_)) => -1,
        Err(reason) => {
            let _ = tokio::task::spawn_blocking(move || {
                homeboy_process::terminate_group(pgid, KILL_GRACE)
            })
            .await;
            let _ = child.wait().await;
            let _ = stop_tx.send(true);
            let _ = flusher.await;
            options.say(format!(
                "homeboy runner {}: job {} stopped ({reason:?})",
                options.runner_id, job.id
            ));
            return Ok(());
        }
    };
    // The leader exited; make sure nothing of its group lingers, then drain its output.
    let _ = tokio::task::spawn_blocking(move || {
        homeboy_process::terminate_group(pgid, Duration::from_millis(500))
    })
    .await;
    // A process that left the group (`setsid`) may hold the pipes open for ever: keep what was read by then.
    // No heartbeat runs meanwhile, so the wait stays well inside the lease.
    let drain = PIPE_DRAIN_GRACE.min(Duration::from_millis(options.lease_ms / 4));
    let drained_by = tokio::time::Instant::now() + drain;
    for mut reader in readers.into_iter().flatten() {
        if tokio::time::timeout_at(drained_by, &mut reader)
            .await
            .is_err()
        {
            reader.abort();
        }
    }
    let _ = stop_tx.send(true);
    let _ = flusher.await;
    flush_events(client, options, &job, &events).await;
    // The tails hold masked output already.
    let stdout = stdout_tail.lock().map(|t| t.text()).unwrap_or_default();
    let stderr = stderr_tail.lock().map(|t| t.text()).unwrap_or_default();
    finish(
        client,
        options,
        &job,
        exit_code,
        &stdout,
        &stderr,
        &mut shutdown,
    )
    .await?;
    options.say(format!(
        "homeboy runner {}: job {} exited with {exit_code}",
        options.runner_id, job.id
    ));
    Ok(())
}

/// Builds the job's command: argv, working directory inside the workspace, environment. Also returns the
/// mask for every value it injects under a sensitive name.
fn prepare(
    options: &WorkerOptions,
    job: &Job,
) -> Result<(tokio::process::Command, SecretMask), String> {
    let request = &job.request;
    let Some((program, args)) = request.command.split_first() else {
        return Err("the job has no command".into());
    };
    let cwd = inside(&options.workspace, request.cwd.as_deref().unwrap_or(""))?;
    std::fs::create_dir_all(&cwd).map_err(|e| format!("cannot create the job directory: {e}"))?;
    let mut env: BTreeMap<String, String> = std::env::vars()
        .filter(|(name, _)| !is_sensitive_name(name) && Some(name) != options.token_env.as_ref())
        .collect();
    env.extend(options.runner_env.clone());
    env.extend(request.env.clone());
    let mut secrets: Vec<String> = options
        .runner_env
        .iter()
        .chain(&request.env)
        // The rule `server show` redacts by: a sensitive name, or a value that is a URL with user info.
        .filter(|(name, value)| is_sensitive_env(name, value))
        .map(|(_, value)| value.clone())
        .collect();
    for name in &request.secret_env_names {
        let value = options.secrets.resolve(name)?;
        secrets.push(value.clone());
        env.insert(name.to_string(), value);
    }
    let mask = SecretMask::new(secrets.iter().map(String::as_str))?;
    env.insert("HOMEBOY_JOB_ID".into(), job.id.clone());
    env.insert("HOMEBOY_RUNNER_ID".into(), options.runner_id.clone());
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    Ok((cmd, mask))
}

/// `workspace/relative`, refusing absolute paths and `..` that would leave the workspace.
fn inside(workspace: &Path, relative: &str) -> Result<PathBuf, String> {
    let relative = Path::new(relative);
    let mut out = workspace.to_path_buf();
    for part in relative.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "cwd {:?} must be a relative path inside the workspace",
                    relative.display().to_string()
                ));
            }
        }
    }
    Ok(out)
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// One heartbeat; `Some` when the job must stop.
async fn beat(client: &DaemonClient, options: &WorkerOptions, job: &Job) -> Option<Abandon> {
    let body = HeartbeatBody {
        claim: claim_ref(options, job),
        lease_ms: Some(options.lease_ms),
    };
    match client
        .post_as::<HeartbeatAnswer>(
            &format!("/runner/jobs/{}/heartbeat", job.id),
            &body,
            Duration::from_secs(10),
        )
        .await
    {
        Ok(answer) if answer.cancelled => Some(Abandon::Cancelled),
        Ok(_) => None,
        Err(ClientError::Api(e)) if e.status() == 409 || e.status() == 404 => {
            Some(Abandon::ClaimLost)
        }
        // A transient failure: the next beat may get through before the lease ends.
        Err(_) => None,
    }
}

/// Reports the exit code, retrying through outages until the broker answers definitively.
async fn finish(
    client: &DaemonClient,
    options: &WorkerOptions,
    job: &Job,
    exit_code: i32,
    stdout: &str,
    stderr: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let body = FinishBody {
        claim: claim_ref(options, job),
        result: JobResult {
            exit_code,
            stdout: Some(stdout.to_string()),
            stderr: Some(stderr.to_string()),
            data: None,
            artifacts: Vec::new(),
        },
    };
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10)).retries();
    loop {
        match client
            .post_as::<serde_json::Value>(
                &format!("/runner/jobs/{}/finish", job.id),
                &body,
                Duration::from_secs(15),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if fatal(&e) => return Err(e),
            Err(ClientError::Api(e)) if e.status() < 500 => {
                options.say(format!(
                    "homeboy runner {}: finish of job {} refused: {}",
                    options.runner_id, job.id, e.message
                ));
                return Ok(());
            }
            Err(e) => {
                options.say(format!(
                    "homeboy runner {}: finish of job {} failed ({e}); retrying",
                    options.runner_id, job.id
                ));
                if sleep_or_shutdown(backoff.next_delay(), shutdown).await {
                    return Ok(());
                }
            }
        }
    }
}

/// Output lines waiting to be sent, and a signal that the claim was lost while sending them.
#[derive(Default)]
struct EventBuffer {
    pending: Mutex<Vec<EventItem>>,
    dropped: Mutex<u64>,
    ready: Notify,
    lost: Notify,
}

impl EventBuffer {
    fn push(&self, kind: &str, message: String) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if pending.len() >= MAX_BUFFERED {
            pending.remove(0);
            if let Ok(mut dropped) = self.dropped.lock() {
                *dropped += 1;
            }
        }
        pending.push(EventItem {
            kind: kind.to_string(),
            message: Some(message),
            data: None,
        });
        if pending.len() >= MAX_BATCH {
            self.ready.notify_one();
        }
    }

    fn take(&self, max: usize) -> Vec<EventItem> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        let n = pending.len().min(max);
        pending.drain(..n).collect()
    }

    fn put_back(&self, batch: Vec<EventItem>) {
        if let Ok(mut pending) = self.pending.lock() {
            let rest = std::mem::take(&mut *pending);
            *pending = batch;
            pending.extend(rest);
        }
    }
}

/// Sends batches every `event_flush` (or sooner when a batch fills) until told to stop.
async fn event_pump(
    client: &DaemonClient,
    options: &WorkerOptions,
    job: &Job,
    events: &EventBuffer,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(options.event_flush) => {}
            () = events.ready.notified() => {}
            _ = stop.changed() => return,
        }
        if !send_batches(client, options, job, events).await {
            return;
        }
    }
}

/// Sends everything buffered; false when the claim is gone.
async fn send_batches(
    client: &DaemonClient,
    options: &WorkerOptions,
    job: &Job,
    events: &EventBuffer,
) -> bool {
    loop {
        let batch = events.take(MAX_BATCH);
        if batch.is_empty() {
            return true;
        }
        let body = EventsBody {
            claim: claim_ref(options, job),
            single: None,
            events: Some(batch.clone()),
        };
        match client
            .post_as::<serde_json::Value>(
                &format!("/runner/jobs/{}/events", job.id),
                &body,
                Duration::from_secs(15),
            )
            .await
        {
            Ok(_) => {}
            Err(ClientError::Api(e)) if e.status() == 409 || e.status() == 404 => {
                events.lost.notify_one();
                return false;
            }
            Err(_) => {
                // Transient: keep the lines for the next attempt.
                events.put_back(batch);
                return true;
            }
        }
    }
}

/// Sends what is left, retrying a few times (the finish carries the tails anyway).
async fn flush_events(
    client: &DaemonClient,
    options: &WorkerOptions,
    job: &Job,
    events: &EventBuffer,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).retries();
    for _ in 0..5 {
        if !send_batches(client, options, job, events).await {
            return;
        }
        if events.pending.lock().map(|p| p.is_empty()).unwrap_or(true) {
            return;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// The last few KiB of a stream (masked), for the finish result.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        if self.bytes.len() > TAIL_BYTES {
            let cut = self.bytes.len() - TAIL_BYTES;
            self.bytes.drain(..cut);
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Splits masked output into lines, keeping at most [`MAX_LINE`] bytes of each.
#[derive(Default)]
struct Lines {
    current: Vec<u8>,
    /// Whether the current line has bytes beyond what is kept.
    cut: bool,
}

impl Lines {
    /// Feeds bytes; calls `line` for every line they complete.
    fn feed(&mut self, mut bytes: &[u8], mut line: impl FnMut(String)) {
        while !bytes.is_empty() {
            let (part, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            let room = MAX_LINE.saturating_sub(self.current.len());
            self.current
                .extend_from_slice(&part[..part.len().min(room)]);
            self.cut |= part.len() > room;
            bytes = &bytes[part.len() + usize::from(ended)..];
            if ended {
                line(self.take());
            }
        }
    }

    /// The stream ended: the last line, if it did not end with a newline.
    fn finish(&mut self) -> Option<String> {
        (!self.current.is_empty() || self.cut).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.current)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        self.current.clear();
        self.cut = false;
        text
    }
}

/// Reads one output pipe to its end: masks the raw bytes as they arrive, then keeps the tail and streams
/// the lines of what was masked.
async fn pump_lines(
    mut stream: impl AsyncRead + Unpin,
    kind: &'static str,
    events: Arc<EventBuffer>,
    tail: Arc<Mutex<Tail>>,
    mask: SecretMask,
) {
    let mut masker = mask.stream();
    let mut lines = Lines::default();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut masked = Vec::new();
    let deliver = |masked: &[u8], lines: &mut Lines| {
        if let Ok(mut tail) = tail.lock() {
            tail.push(masked);
        }
        lines.feed(masked, |line| events.push(kind, line));
    };
    loop {
        let read = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        masked.clear();
        masker.push(&chunk[..read], &mut masked);
        deliver(&masked, &mut lines);
    }
    masked.clear();
    masker.finish(&mut masked);
    deliver(&masked, &mut lines);
    if let Some(line) = lines.finish() {
        events.push(kind, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cwd_stays_inside_the_workspace() {
        let ws = Path::new("/ws");
        assert_eq!(inside(ws, "").unwrap(), PathBuf::from("/ws"));
        assert_eq!(inside(ws, "a/./b").unwrap(), PathBuf::from("/ws/a/b"));
        assert!(inside(ws, "../etc").is_err());
        assert!(inside(ws, "a/../../x").is_err());
        assert!(inside(ws, "/etc").is_err());
    }

    #[test]
    fn lines_are_split_and_cut_after_masking() {
        let mut lines = Lines::default();
        let mut seen = Vec::new();
        let long = "x".repeat(MAX_LINE + 10);
        lines.feed(b"a\r\nb", |l| seen.push(l));
        lines.feed(format!("c\n{long}\nend").as_bytes(), |l| seen.push(l));
        seen.extend(lines.finish());
        assert_eq!(seen.len(), 4);
        assert_eq!((seen[0].as_str(), seen[1].as_str()), ("a", "bc"));
        assert_eq!(seen[2], "x".repeat(MAX_LINE));
        assert_eq!(seen[3], "end");
        assert_eq!(lines.finish(), None);
    }

    #[test]
    fn tails_keep_the_end() {
        let mut tail = Tail::default();
        for i in 0..2000 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        let text = tail.text();
        assert!(text.len() <= TAIL_BYTES);
        assert!(text.ends_with("line 1999\n"));
    }
}
