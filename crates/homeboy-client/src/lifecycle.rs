//! `homeboy daemon start|stop|status`: find the daemon through its state file, ask it `/health`, spawn it
//! in the background, replace it when it is another build, stop it.
//!
//! Check-and-spawn runs under an advisory lock (`<config>/daemon/start.lock`), so concurrent `start` calls
//! produce exactly one daemon; the others find it healthy and leave it alone.
//!
//! A daemon started for an explicit address keeps its own directory (`daemon/<host>-<port>/`: state file,
//! locks, job store, log; see `Paths::for_daemon_at`), so several run side by side and each address has its
//! own start lock. [`status_all`] lists the default daemon and every per-address one. [`ensure_running`] is
//! what commands that need the local daemon call: it starts one when none runs (after an idle shutdown, for
//! instance) and otherwise uses the one that answers.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use homeboy_config::Paths;
use serde::Serialize;

use crate::ClientError;
use crate::client::DaemonClient;
use homeboy_build as build_info;
use homeboy_config::daemon_state::{self as state, DaemonState};
use homeboy_config::lock::FileLock;
use homeboy_config::private_file;
use homeboy_process as process;

/// How long `stop` waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
const HEALTH_TIMEOUT: Duration = Duration::from_millis(1500);

/// The daemon's condition as `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Healthy, and the same build as this binary.
    Running,
    /// Healthy, but another build.
    Outdated,
    /// Its process is alive but `/health` does not answer.
    Unresponsive,
    /// A state file names a process that is gone (or is not homeboy).
    Stale,
    /// No state file.
    NotRunning,
}

impl RunState {
    /// The words `status` prints.
    pub fn label(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Outdated => "outdated",
            RunState::Unresponsive => "unresponsive",
            RunState::Stale => "stale",
            RunState::NotRunning => "not running",
        }
    }
}

/// What `homeboy daemon status` shows, as JSON and as text.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonStatus {
    pub state: RunState,
    /// True when a daemon answers (running or outdated).
    pub running: bool,
    pub healthy: bool,
    pub pid: Option<u32>,
    pub addr: Option<String>,
    pub url: Option<String>,
    pub build_id: Option<String>,
    /// The build of the binary asking.
    pub current_build_id: String,
    pub version: Option<String>,
    pub started_at: Option<String>,
    pub log_path: Option<PathBuf>,
    pub state_path: PathBuf,
    /// `<host>-<port>` of a daemon kept apart for its address; `null` for the default daemon.
    pub instance: Option<String>,
}

/// Reads the state file and asks the daemon it names whether it is healthy.
pub async fn status(paths: &Paths, current_build: &str) -> Result<DaemonStatus, ClientError> {
    let recorded = state::read(paths)?;
    let mut status = DaemonStatus {
        state: RunState::NotRunning,
        running: false,
        healthy: false,
        pid: None,
        addr: None,
        url: None,
        build_id: None,
        current_build_id: current_build.to_string(),
        version: None,
        started_at: None,
        log_path: None,
        state_path: paths.daemon_state(),
        instance: paths.daemon_instance().map(str::to_string),
    };
    let Some(recorded) = recorded else {
        return Ok(status);
    };
    status.pid = Some(recorded.pid);
    status.addr = Some(recorded.addr.clone());
    status.url = Some(recorded.base_url());
    status.build_id = Some(recorded.build_id.clone());
    status.version = Some(recorded.version.clone());
    status.started_at = Some(recorded.started_at.clone());
    status.log_path = recorded.log_path.clone();
    if !is_recorded_daemon(&recorded) {
        status.state = RunState::Stale;
        return Ok(status);
    }
    match probe_health(&recorded).await {
        Some(build_id) => {
            status.healthy = true;
            status.running = true;
            status.build_id = Some(build_id.clone());
            status.state = if build_id == current_build {
                RunState::Running
            } else {
                RunState::Outdated
            };
        }
        None => status.state = RunState::Unresponsive,
    }
    Ok(status)
}

/// The status of the default daemon and of every per-address daemon that has a directory (those whose
/// state file is gone show as not running).
pub async fn status_all(
    paths: &Paths,
    current_build: &str,
) -> Result<Vec<DaemonStatus>, ClientError> {
    let mut all = vec![status(&paths.default_daemon(), current_build).await?];
    for instance in paths.daemon_instances() {
        all.push(status(&instance, current_build).await?);
    }
    Ok(all)
}

/// `/health` of the daemon the state file names: its build id if it answers as that pid.
async fn probe_health(recorded: &DaemonState) -> Option<String> {
    let client = DaemonClient::new(recorded.base_url()).ok()?;
    let health = client.get("/health", HEALTH_TIMEOUT).await.ok()?;
    let pid = health.get("pid").and_then(|p| p.as_u64())?;
    if pid != u64::from(recorded.pid) {
        return None;
    }
    health
        .get("build_id")
        .and_then(|b| b.as_str())
        .map(str::to_string)
}

/// How to start a background daemon.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub paths: Paths,
    /// The homeboy executable to run as `<exe> daemon serve ...`.
    pub exe: PathBuf,
    pub addr: SocketAddr,
    /// The build of the binary starting it.
    pub build_id: String,
    /// How long to wait for `/health`.
    pub wait: Duration,
    /// Extra arguments for `serve` (e.g. `--max-body-bytes`).
    pub extra_serve_args: Vec<OsString>,
    /// The daemon keeps its own directory for its address (`paths` are then that directory's).
    pub per_address: bool,
    /// Passed on as `serve --idle-timeout`.
    pub idle_timeout: Option<Duration>,
}

impl StartOptions {
    /// Defaults: `127.0.0.1:0`, this build, a 10 s wait.
    pub fn new(paths: Paths, exe: PathBuf) -> Self {
        StartOptions {
            paths,
            exe,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            build_id: build_info::BUILD_ID.to_string(),
            wait: Duration::from_secs(10),
            extra_serve_args: Vec::new(),
            per_address: false,
            idle_timeout: None,
        }
    }

    /// A daemon for `addr` kept apart from the default one: its state, locks, job store and log live under
    /// `daemon/<host>-<port>/`.
    pub fn apart_at(mut self, addr: SocketAddr) -> Self {
        self.paths = self.paths.for_daemon_at(addr);
        self.addr = addr;
        self.per_address = true;
        self
    }
}

/// What `start` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartOutcome {
    /// A healthy daemon of this build was already running; it was left alone.
    AlreadyRunning,
    /// A new daemon was spawned.
    Started,
    /// A daemon of another build (or an unresponsive one) was stopped and a new one spawned.
    Restarted,
}

/// Ensures a healthy daemon of this build runs, spawning or replacing one as needed. `notice` receives the
/// lines a person should see while it happens (`daemon outdated (build A -> B), restarting...`).
pub async fn start(
    options: &StartOptions,
    notice: &mut (dyn FnMut(&str) + Send),
) -> Result<(StartOutcome, DaemonStatus), ClientError> {
    start_showing(options, notice, &mut |_| {}).await
}

/// [`start`], telling `waiting` what it waits for while it does (for a progress display: these messages
/// are not for logs).
pub async fn start_showing(
    options: &StartOptions,
    notice: &mut (dyn FnMut(&str) + Send),
    waiting: &mut (dyn FnMut(&str) + Send),
) -> Result<(StartOutcome, DaemonStatus), ClientError> {
    let paths = &options.paths;
    let _lock = FileLock::exclusive(&paths.daemon_dir().join("start.lock"))?;
    if clear_unreadable_state(paths)? {
        notice("removing unreadable daemon state (no daemon serves this config dir)");
    }
    let current = status(paths, &options.build_id).await?;
    let outcome = match current.state {
        RunState::Running => return Ok((StartOutcome::AlreadyRunning, current)),
        RunState::NotRunning => StartOutcome::Started,
        RunState::Stale => {
            notice(&format!(
                "removing stale daemon state (pid {} is not running)",
                current.pid.unwrap_or_default()
            ));
            state::remove(paths)?;
            StartOutcome::Started
        }
        RunState::Outdated => {
            notice(&format!(
                "daemon outdated (build {} -> {}), restarting...",
                current.build_id.as_deref().unwrap_or("?"),
                options.build_id
            ));
            stop_recorded(paths, current.pid.unwrap_or_default());
            StartOutcome::Restarted
        }
        RunState::Unresponsive => {
            notice(&format!(
                "daemon (pid {}) does not answer /health, restarting...",
                current.pid.unwrap_or_default()
            ));
            stop_recorded(paths, current.pid.unwrap_or_default());
            StartOutcome::Restarted
        }
    };
    spawn_and_wait(options, waiting).await?;
    let started = status(paths, &options.build_id).await?;
    Ok((outcome, started))
}

/// A daemon that answers, for commands that need one: the running daemon when it answers `/health` (even
/// of another build: its jobs are left alone), else a new one started with `options` (none ran, or it
/// stopped after its idle timeout, or it died). Returns its status and what was done.
pub async fn ensure_running(
    options: &StartOptions,
    notice: &mut (dyn FnMut(&str) + Send),
    waiting: &mut (dyn FnMut(&str) + Send),
) -> Result<(Option<StartOutcome>, DaemonStatus), ClientError> {
    let current = status(&options.paths, &options.build_id).await?;
    if current.healthy {
        return Ok((None, current));
    }
    let (outcome, started) = start_showing(options, notice, waiting).await?;
    Ok((Some(outcome), started))
}

async fn spawn_and_wait(
    options: &StartOptions,
    waiting: &mut (dyn FnMut(&str) + Send),
) -> Result<(), ClientError> {
    let paths = &options.paths;
    let log_path = paths.daemon_log();
    let log = open_log(&log_path)?;
    let log_err = log
        .try_clone()
        .map_err(|e| ClientError::io("duplicate the log handle", e))?;
    let mut cmd = Command::new(&options.exe);
    cmd.arg("daemon")
        .arg("serve")
        .arg("--addr")
        .arg(options.addr.to_string())
        .arg("--log-path")
        .arg(&log_path)
        .args(&options.extra_serve_args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    if options.per_address {
        cmd.arg("--state-per-address");
    }
    if let Some(idle) = options.idle_timeout {
        cmd.arg("--idle-timeout")
            .arg(format!("{}ms", idle.as_millis().max(1)));
    }
    process::new_session(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| ClientError::io(format!("spawn {}", options.exe.display()), e))?;
    let started = Instant::now();
    waiting(&format!(
        "waiting for the daemon (pid {}) to answer /health on {}",
        child.id(),
        options.addr
    ));
    loop {
        if let Ok(Some(exit)) = child.try_wait() {
            return Err(ClientError::StartFailed {
                status: exit.to_string(),
                log_tail: log_tail(&log_path, 20),
                log: log_path,
            });
        }
        if let Some(recorded) = state::read(paths).ok().flatten()
            && recorded.pid == child.id()
            && probe_health(&recorded).await.is_some()
        {
            return Ok(());
        }
        if started.elapsed() >= options.wait {
            process::terminate(child.id(), Duration::from_secs(1));
            let _ = child.wait();
            return Err(ClientError::StartTimeout {
                waited_ms: started.elapsed().as_millis(),
                log_tail: log_tail(&log_path, 20),
                log: log_path,
            });
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

/// What `stop` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StopOutcome {
    /// There was no state file.
    NotRunning,
    /// The state file named a dead (or foreign) process; it was removed.
    StaleCleaned { pid: u32 },
    /// The daemon was stopped; `forced` when SIGTERM was not enough.
    Stopped { pid: u32, forced: bool },
}

/// Stops the daemon the state file names: SIGTERM, up to 5 s, then SIGKILL; removes the state file.
pub fn stop(paths: &Paths) -> Result<StopOutcome, ClientError> {
    let _lock = FileLock::exclusive(&paths.daemon_dir().join("start.lock"))?;
    clear_unreadable_state(paths)?;
    let Some(recorded) = state::read(paths)? else {
        return Ok(StopOutcome::NotRunning);
    };
    if !is_recorded_daemon(&recorded) {
        state::remove(paths)?;
        return Ok(StopOutcome::StaleCleaned { pid: recorded.pid });
    }
    let forced = stop_recorded(paths, recorded.pid);
    Ok(StopOutcome::Stopped {
        pid: recorded.pid,
        forced,
    })
}

/// Removes a state file that does not parse when no daemon holds `serve.lock` (damaged or tampered debris
/// that would otherwise make every `start` and `stop` fail). Returns whether it did. While a daemon serves
/// the config dir, the file is left for the error to name.
fn clear_unreadable_state(paths: &Paths) -> Result<bool, ClientError> {
    if !matches!(
        state::read(paths),
        Err(homeboy_config::ConfigError::InvalidJson { .. })
    ) {
        return Ok(false);
    }
    let Some(_nobody_serves) = FileLock::try_exclusive(&paths.daemon_dir().join("serve.lock"))?
    else {
        return Ok(false);
    };
    state::remove(paths)?;
    Ok(true)
}

fn stop_recorded(paths: &Paths, pid: u32) -> bool {
    let forced = process::terminate(pid, STOP_GRACE);
    let _ = state::remove_if_owned(paths, pid);
    forced
}

/// Whether the process the state file names is still that daemon: alive, running a homeboy binary, and
/// started when the daemon did (where the state recorded it). A stale pid the kernel has since handed to
/// another process (another homeboy command included) is never signalled.
fn is_recorded_daemon(recorded: &DaemonState) -> bool {
    process::same_process_alive(recorded.pid, recorded.process_started)
        && process::runs_program(recorded.pid, "homeboy")
}

fn open_log(path: &Path) -> Result<std::fs::File, ClientError> {
    if let Some(dir) = path.parent() {
        private_file::create_dir_all(dir)
            .map_err(|e| ClientError::io(format!("create {}", dir.display()), e))?;
    }
    // The daemon rotates its log as it fills; a full one left by the last daemon is moved aside first.
    let _ = homeboy_http::logging::rotate_if_full(path, homeboy_http::logging::LogCap::default());
    // `0600`: the log can name jobs, paths and the detail of internal errors.
    private_file::open(private_file::options().create(true).append(true), path)
        .map_err(|e| ClientError::io(format!("open {}", path.display()), e))
}

/// The last `lines` lines of a log file (at most the last 8 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::from("(no log file)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(8192)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
