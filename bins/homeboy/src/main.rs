//! The `homeboy` command line: argument parsing and wiring only. Each area's subcommands live in their
//! own module and call library crates; this file picks the module and turns errors into exit codes.

mod daemon_cmd;
mod jobs_cmd;
mod output;
mod runner_cmd;
mod server_cmd;
mod set_args;
mod ssh_cmd;
mod tunnel_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the daemon allocates small, short-lived buffers per request, where it is markedly cheaper than
/// the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Daemon(cmd) => daemon_cmd::run(cmd),
        Command::Jobs(cmd) => jobs_cmd::run(cmd),
        Command::Server(cmd) => server_cmd::run(cmd),
        Command::Ssh(args) => ssh_cmd::run(args),
        Command::Runner(cmd) => runner_cmd::run(cmd),
        Command::Tunnel(cmd) => tunnel_cmd::run(cmd),
    };
    output::exit_code(result)
}
