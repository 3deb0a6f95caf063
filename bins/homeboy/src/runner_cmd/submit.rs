//! `homeboy runner submit`: enqueue a command for a runner on a daemon or broker (`POST /runner/jobs`, with
//! a `submit`-scoped token from the environment). It returns once the job is queued; follow it with
//! `homeboy jobs show|events` or the dashboard.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use homeboy_api::jobs::{RUNNER_EXEC, SubmitAnswer, SubmitRequest};
use homeboy_client::client::DaemonClient;
use homeboy_config::Paths;
use serde_json::Map;

use crate::daemon_cmd::runtime;
use crate::output::{Format, print_json, usage_error};

#[derive(Args)]
pub struct SubmitArgs {
    /// The runner that runs the command
    #[arg(long)]
    runner_id: String,
    /// Daemon or broker URL (default: the local daemon from its state file)
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// Environment variable holding the token (scope `submit`); unset: no Authorization header
    #[arg(long, default_value = "HOMEBOY_BROKER_TOKEN")]
    token_env: String,
    /// Only runners claiming for this project take it
    #[arg(long)]
    project_id: Option<String>,
    /// Directory to run in, relative to the runner's workspace
    #[arg(long)]
    cwd: Option<String>,
    /// A secret the runner resolves from its own `runner.secret_env` (repeatable; values never travel)
    #[arg(long = "secret-env", value_name = "NAME")]
    secret_env_names: Vec<String>,
    /// Attempts before the job fails for good
    #[arg(long)]
    max_attempts: Option<u32>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// The command, after `--` (argv, no shell)
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn run(args: SubmitArgs) -> anyhow::Result<()> {
    if args.max_attempts == Some(0) {
        return Err(usage_error("--max-attempts must be at least 1"));
    }
    let token = std::env::var(&args.token_env)
        .ok()
        .filter(|t| !t.is_empty());
    let client = match &args.broker {
        Some(url) => DaemonClient::new(url.clone())?,
        None => DaemonClient::for_local_daemon(&Paths::from_env()?)?,
    }
    .with_bearer(token);
    let request = SubmitRequest {
        runner_id: args.runner_id,
        project_id: args.project_id,
        operation: RUNNER_EXEC.to_string(),
        command: args.command,
        cwd: args.cwd,
        env: BTreeMap::new(),
        secret_env_names: args.secret_env_names,
        metadata: None,
        max_attempts: args.max_attempts,
        other: Map::new(),
    };
    let answer: SubmitAnswer =
        runtime()?.block_on(client.post_as("/runner/jobs", &request, Duration::from_secs(30)))?;
    match args.format {
        Format::Json => print_json(&answer),
        Format::Text => {
            println!(
                "queued job {} for runner {} (follow: homeboy jobs events {} --follow)",
                answer.job.id, request.runner_id, answer.job.id
            );
            Ok(())
        }
    }
}
