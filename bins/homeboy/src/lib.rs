//! The `homeboy` command line: argument parsing and wiring only. Each area's subcommands live in their
//! own module and call library crates; this file picks the module and turns errors into exit codes.
//!
//! It is a library so that `cargo xtask man` and `homeboy completions` reach the clap definitions
//! ([`command`]); `main.rs` only installs the allocator and calls [`main`].

mod analysis_cmd;
mod askpass_cmd;
mod completions_cmd;
mod component_cmd;
mod daemon_cmd;
mod daemon_watch;
mod declaration_cmd;
mod jobs_cmd;
mod output;
mod progress;
mod rig_cmd;
mod runner_cmd;
mod runs_cmd;
mod server_cmd;
mod set_args;
mod ssh_cmd;
mod stack_cmd;
mod tunnel_cmd;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use homeboy_config::components::ToolKind;

/// Exit code for refused input (bad arguments, a non-loopback address): the same code clap uses.
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "homeboy",
    version,
    about = "Local automation, a loopback daemon, runners and private previews"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run and inspect the local-only homeboy HTTP API daemon
    #[command(subcommand)]
    Daemon(daemon_cmd::DaemonCommand),
    /// Inspect and cancel the daemon's jobs
    #[command(subcommand)]
    Jobs(jobs_cmd::JobsCommand),
    /// Configured SSH servers (servers/<id>.json) and their managed SSH sessions
    #[command(subcommand)]
    Server(server_cmd::ServerCommand),
    /// Run a command on a configured server over SSH (a shell without one); exits with its exit code
    Ssh(ssh_cmd::SshArgs),
    /// Runners: run jobs for a broker, manage broker credentials, and the runner capability of servers
    #[command(subcommand)]
    Runner(runner_cmd::RunnerCommand),
    /// Managed local services, the artifact origin, preview consumers and native public previews
    #[command(subcommand)]
    Tunnel(tunnel_cmd::TunnelCommand),
    /// Components: local git checkouts and the analysis tools they declare (components/<id>.json)
    #[command(subcommand)]
    Component(component_cmd::ComponentCommand),
    /// Rigs: sets of components and the checks that say they are up (rigs/<id>.json)
    #[command(subcommand)]
    Rig(rig_cmd::RigCommand),
    /// Stacks: ordered branches of a component and whether they land cleanly (stacks/<id>.json)
    #[command(subcommand)]
    Stack(stack_cmd::StackCommand),
    /// Recorded analysis runs, their artifacts and findings; compare two runs
    #[command(subcommand)]
    Runs(runs_cmd::RunsCommand),
    /// Run a component's lint command and record the run, artifacts and findings
    Lint(analysis_cmd::AnalysisArgs),
    /// Run a component's test command and record the run, artifacts and failures
    Test(analysis_cmd::AnalysisArgs),
    /// Run a component's audit command and record the run, artifacts and findings
    Audit(analysis_cmd::AnalysisArgs),
    /// Run a component's benchmark command and record the run, artifacts and metrics
    Bench(analysis_cmd::AnalysisArgs),
    /// Run a component's build command and record the run and artifacts
    Build(analysis_cmd::AnalysisArgs),
    /// Run a component's review command and record the run, artifacts and findings
    Review(analysis_cmd::AnalysisArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) generated from this command
    /// line; e.g. `source <(homeboy completions bash)`
    Completions(completions_cmd::CompletionsArgs),
}

/// The clap definition of the whole command line (for completions and man pages).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses the process's arguments, runs the command, and returns the exit code. Started by ssh as its
/// askpass helper, it answers ssh's question instead (see `homeboy_ssh::askpass`).
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(question) = homeboy_ssh::askpass::invoked(&args) {
        return askpass_cmd::run(&question);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Daemon(cmd) => daemon_cmd::run(cmd),
        Command::Jobs(cmd) => jobs_cmd::run(cmd),
        Command::Server(cmd) => server_cmd::run(cmd),
        Command::Ssh(args) => ssh_cmd::run(args),
        Command::Runner(cmd) => runner_cmd::run(cmd),
        Command::Tunnel(cmd) => tunnel_cmd::run(cmd),
        Command::Component(cmd) => component_cmd::run(cmd),
        Command::Rig(cmd) => rig_cmd::run(cmd),
        Command::Stack(cmd) => stack_cmd::run(cmd),
        Command::Runs(cmd) => runs_cmd::run(cmd),
        Command::Lint(args) => analysis_cmd::run(ToolKind::Lint, args),
        Command::Test(args) => analysis_cmd::run(ToolKind::Test, args),
        Command::Audit(args) => analysis_cmd::run(ToolKind::Audit, args),
        Command::Bench(args) => analysis_cmd::run(ToolKind::Bench, args),
        Command::Build(args) => analysis_cmd::run(ToolKind::Build, args),
        Command::Review(args) => analysis_cmd::run(ToolKind::Review, args),
        Command::Completions(args) => completions_cmd::run(args),
    };
    output::exit_code(result)
}
