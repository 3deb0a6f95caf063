//! `homeboy-ingress`: the VPS side of native public preview, for a systemd unit. Argument parsing, wiring
//! and exit codes only (0 ok, 1 failure, 2 refused input); the ingress, the route table and their rules
//! live in `homeboy-preview`. The same commands exist as `homeboy tunnel preview-ingress ...`. A library so
//! that `cargo xtask man` reaches the clap definition ([`command`]); `main.rs` calls [`main`].

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use homeboy_config::Paths;
use homeboy_preview::PreviewError;
use homeboy_preview::cli::{IngressServeFlags, RouteFlags, listening_line};
use homeboy_preview::ingress;
use homeboy_preview::routes::RouteStore;

#[derive(Parser)]
#[command(
    name = "homeboy-ingress",
    version,
    about = "Route public preview hosts to homeboy preview sessions (the VPS-side preview ingress)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ingress in the foreground until SIGTERM or Ctrl-C (then drain in-flight requests)
    Serve(IngressServeFlags),
    /// Register or replace the direct route of a preview session
    Route(RouteFlags),
    /// Remove a preview route
    Unroute { session_id: String },
    /// List the route records (JSON)
    List,
    /// Each route's lifecycle state (JSON)
    Status,
}

/// The clap definition of the command line (for man pages).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses the process's arguments, runs the command, and returns the exit code.
pub fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homeboy-ingress: {e}");
            ExitCode::from(if e.is_refused_input() { 2 } else { 1 })
        }
    }
}

fn run(command: Command) -> Result<(), PreviewError> {
    let paths = Paths::from_env()?;
    let store = RouteStore::new(&paths);
    match command {
        Command::Serve(flags) => {
            flags.init_logging();
            let format = flags.format;
            ingress::serve(flags.options(paths)?, |addr, patterns| {
                println!("{}", listening_line(format, addr, patterns));
            })
        }
        Command::Route(flags) => print(&store.route(&flags.spec())?),
        Command::Unroute { session_id } => print(&store.unroute(&session_id)?),
        Command::List => print(&store.records()?),
        Command::Status => print(&store.status()?),
    }
}

fn print(value: &impl serde::Serialize) -> Result<(), PreviewError> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
    Ok(())
}
