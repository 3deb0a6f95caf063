//! `homeboy runner status <server_id>`: the runner view of `servers::runner_status` — env values of
//! sensitive-looking names redacted, `secret_env` as references only; `--check-secrets` resolves each
//! reference on this machine and reports only whether it resolves.

use clap::Args;
use homeboy_api::servers::RunnerStatus;
use homeboy_config::Paths;
use homeboy_config::servers;

use crate::output::{Exit, Format, print_json};
use crate::server_cmd::load;

#[derive(Args)]
pub struct StatusArgs {
    /// Server id (also the runner id)
    id: String,
    /// Resolve every secret_env reference here, as the runner would at execution time, and report which
    /// resolve (never the values); exit 1 if any does not. Meaningful on the runner machine itself
    #[arg(long)]
    check_secrets: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    let server = load(&paths, &args.id)?;
    let Some(status) = servers::runner_status(&server, args.check_secrets) else {
        return Err(Exit {
            code: 1,
            message: format!(
                "server {} is not a runner; enable it with `homeboy runner enable {}`",
                server.id, server.id
            ),
        }
        .into());
    };
    match args.format {
        Format::Json => print_json(&status)?,
        Format::Text => print_text(&status),
    }
    let unresolved = status
        .secret_checks
        .iter()
        .flatten()
        .filter(|c| !c.resolves)
        .count();
    if unresolved > 0 {
        return Err(Exit {
            code: 1,
            message: format!("{unresolved} secret_env reference(s) do not resolve on this machine"),
        }
        .into());
    }
    Ok(())
}

/// The text form of a runner status (also printed by `runner enable`).
pub fn print_text(status: &RunnerStatus) {
    let runner = &status.runner;
    println!(
        "runner: {} ({}, {})",
        status.server_id, status.name, status.destination
    );
    println!("workspace_root: {}", runner.workspace_root);
    println!("homeboy_path: {}", runner.homeboy_path);
    println!("daemon: {}", runner.daemon);
    println!("concurrency_limit: {}", runner.concurrency_limit);
    println!("artifact_policy: {}", runner.artifact_policy);
    if !runner.policy.snapshot_excludes.is_empty() {
        println!(
            "snapshot_excludes: {}",
            runner.policy.snapshot_excludes.join(", ")
        );
    }
    if runner.env.is_empty() {
        println!("env: (none)");
    } else {
        println!("env:");
        for (name, value) in &runner.env {
            println!("  {name}={value}");
        }
    }
    if runner.secret_env.is_empty() {
        println!("secret_env: (none)");
    } else {
        println!("secret_env (references, read on the runner at execution time):");
        for (name, reference) in &runner.secret_env {
            let check = status
                .secret_checks
                .iter()
                .flatten()
                .find(|c| &c.name == name);
            match check {
                None => println!("  {name} <- {reference}"),
                Some(c) if c.resolves => println!("  {name} <- {reference}  [resolves here]"),
                Some(c) => println!(
                    "  {name} <- {reference}  [does not resolve here: {}]",
                    c.error.as_deref().unwrap_or("?")
                ),
            }
        }
    }
    if !runner.resources.is_empty() {
        println!(
            "resources: {}",
            serde_json::Value::Object(runner.resources.clone())
        );
    }
}
