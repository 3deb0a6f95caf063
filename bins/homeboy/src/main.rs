//! The `homeboy` command line: argument parsing and wiring only. Each area's subcommands live in their
//! own module and call library crates; this file picks the module and turns errors into exit codes.

mod daemon_cmd;
mod output;
mod tunnel_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for refused input (bad arguments, a non-loopback address): the same code clap uses.
/// mimalloc: the daemon allocates small, short-lived buffers per request, where it is markedly cheaper than
/// the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Native public previews: the preview client and the VPS-side preview ingress
    #[command(subcommand)]
    Tunnel(tunnel_cmd::TunnelCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Daemon(cmd) => daemon_cmd::run(cmd),
        Command::Tunnel(cmd) => tunnel_cmd::run(cmd),
    };
    output::exit_code(result)
}
