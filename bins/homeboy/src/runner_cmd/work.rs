//! `homeboy runner work`: wiring to `homeboy_client::runner_worker`. On a terminal a spinner shows the
//! job each slot runs (or that the worker waits for one); elsewhere the worker's lines go to stderr as
//! they always did.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use homeboy_client::runner_worker::{
    self, NoSecrets, ServerSecrets, WorkerEvent, WorkerEvents, WorkerOptions,
};
use homeboy_config::{Paths, servers};
use homeboy_daemon::server;

use crate::daemon_cmd::runtime;
use crate::output::{Format, usage_error};
use crate::progress::Progress;

#[derive(Args)]
pub struct WorkArgs {
    /// Broker base URL, e.g. http://127.0.0.1:7421
    #[arg(long)]
    broker: String,
    /// This runner's id (the broker token must be paired for it)
    #[arg(long)]
    runner_id: String,
    /// Environment variable holding the broker token (scope `work`)
    #[arg(long, default_value = "HOMEBOY_BROKER_TOKEN")]
    token_env: String,
    /// Jobs run at once
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Directory jobs run in (their `cwd` is relative to it); default: runner.workspace_root of the
    /// runner's server config, else ./homeboy-runner-workspace
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Only claim jobs of this project
    #[arg(long)]
    project_id: Option<String>,
    /// Lease asked for each claim, in milliseconds (heartbeats renew it at half this)
    #[arg(long, default_value_t = 30_000)]
    lease_ms: u64,
}

pub fn run(args: WorkArgs) -> anyhow::Result<()> {
    if !(args.broker.starts_with("http://") || args.broker.starts_with("https://")) {
        return Err(usage_error(format!(
            "--broker must be an http(s) URL, got {:?}",
            args.broker
        )));
    }
    if args.concurrency == 0 {
        return Err(usage_error("--concurrency must be at least 1"));
    }
    let token = std::env::var(&args.token_env)
        .ok()
        .filter(|t| !t.is_empty());
    // The runner's own server declaration (the server id is the runner id) supplies env and secrets.
    let paths = Paths::from_env()?;
    let runner = servers::store(&paths)
        .get_opt(&args.runner_id)?
        .and_then(|server| server.runner);
    let workspace = match (args.workspace, &runner) {
        (Some(dir), _) => dir,
        (None, Some(runner)) => expand_home(&runner.workspace_root),
        (None, None) => std::env::current_dir()?.join("homeboy-runner-workspace"),
    };
    let mut options = WorkerOptions::new(args.broker, args.runner_id.clone(), workspace);
    options.token = token;
    options.token_env = Some(args.token_env);
    options.concurrency = args.concurrency;
    options.project_id = args.project_id;
    options.lease_ms = args.lease_ms.max(1000);
    options.secrets = Arc::new(NoSecrets);
    if let Some(runner) = runner {
        options.runner_env = runner.env;
        options.secrets = Arc::new(ServerSecrets::new(args.runner_id, runner.secret_env));
    }
    let waiting = format!("waiting for a job from {}", options.broker_url);
    let progress = Arc::new(Progress::start(Format::Text, waiting.clone()));
    options.events = Some(show_jobs(progress.clone(), waiting));
    runtime()?.block_on(async {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            server::shutdown_signal().await;
            let _ = stop.send(true);
        });
        runner_worker::run(options, stopped).await?;
        Ok(())
    })
}

/// The worker's events on the spinner: the jobs running now, or that it waits for one.
fn show_jobs(progress: Arc<Progress>, waiting: String) -> WorkerEvents {
    let running = std::sync::Mutex::new(std::collections::BTreeMap::<usize, String>::new());
    Arc::new(move |event| {
        let mut running = running.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            WorkerEvent::Line(line) => return progress.line(&line),
            WorkerEvent::Claimed { slot, job_id } => {
                running.insert(slot, job_id);
            }
            WorkerEvent::Done { slot, .. } => {
                running.remove(&slot);
            }
        }
        if running.is_empty() {
            progress.set(waiting.clone());
        } else {
            let jobs: Vec<&str> = running.values().map(String::as_str).collect();
            progress.set(format!("running job {}", jobs.join(", ")));
        }
    })
}

/// `~/x` → `$HOME/x`.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}
