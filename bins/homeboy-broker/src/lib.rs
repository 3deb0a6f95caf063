//! `homeboy-broker`: the homeboy daemon with broker defaults — a stable loopback address that a systemd
//! unit and a reverse proxy can point at, and broker tokens required on `/runner/*` — plus `migrate`, which
//! applies the PostgreSQL job store's schema migrations. Argument parsing and wiring only: the flags are the
//! daemon's own (`homeboy_daemon::serve_args`).
//!
//! Exit codes: 0 done, 1 failure, 2 refused input (a non-loopback address, a bad `--store`), 3 the
//! database's schema does not fit this binary (newer, or older with `--no-migrate`).
//!
//! A library so that `cargo xtask man` reaches the clap definition ([`command`]); `main.rs` calls [`main`].

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use homeboy_config::Paths;
use homeboy_daemon::DaemonError;
use homeboy_daemon::serve_args::{ServeFlags, StoreFlags};
use homeboy_daemon::server::{self, StoreChoice};
use homeboy_jobs::JobError;

/// The broker's default address.
const BROKER_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7421);

/// Exit code of a schema that does not fit this binary.
const EXIT_SCHEMA: u8 = 3;

#[derive(Parser)]
#[command(
    name = "homeboy-broker",
    version,
    about = "Run the homeboy daemon as a durable reverse-runner broker (default 127.0.0.1:7421, broker tokens required)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeFlags,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending schema migrations to the PostgreSQL job store (under an advisory lock; safe while
    /// other brokers run) and exit
    Migrate {
        #[command(flatten)]
        store: StoreFlags,
    },
}

/// The clap definition of the command line (for man pages).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses the process's arguments, serves (or migrates), and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Migrate { store }) => migrate(&store),
        None => run(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homeboy-broker: {e:#}");
            let job_error = e.downcast_ref::<JobError>().or(match e.downcast_ref() {
                Some(DaemonError::JobStore(inner)) => Some(inner),
                _ => None,
            });
            match (e.downcast_ref::<DaemonError>(), job_error) {
                (_, Some(inner)) if homeboy_jobs_pg::schema::is_schema_refusal(inner) => {
                    ExitCode::from(EXIT_SCHEMA)
                }
                (_, Some(JobError::Invalid { .. })) => ExitCode::from(2),
                (
                    Some(DaemonError::NonLoopbackAddress { .. } | DaemonError::UnsafeOptions(_)),
                    _,
                ) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn migrate(flags: &StoreFlags) -> anyhow::Result<()> {
    let Some(options) = flags.pg_options()? else {
        return Err(JobError::Invalid {
            field: "store".into(),
            problem: "is needed: migrate applies to a PostgreSQL job store (--store postgres://... or HOMEBOY_JOB_STORE_URL); the embedded store needs no migrations".into(),
        }
        .into());
    };
    let shown = options.dsn.to_string();
    let migrated = homeboy_jobs_pg::migrate(&options)?;
    let _ = writeln!(
        std::io::stdout(),
        "{shown}: schema version {} -> {}{}",
        migrated.from,
        migrated.to,
        if migrated.applied.is_empty() {
            " (already current)".to_string()
        } else {
            format!(
                " (applied {})",
                migrated
                    .applied
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(())
}

fn run(serve: ServeFlags) -> anyhow::Result<()> {
    serve.init_logging();
    let paths = Paths::from_env()?;
    let options = serve.options(paths.clone(), BROKER_ADDR)?;
    let store = match &options.store {
        StoreChoice::Redb => "redb".to_string(),
        shown => shown.describe(&paths),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?
        .block_on(async {
            let bound = server::bind(options).await?;
            let state = bound.state();
            let _ = writeln!(
                std::io::stdout(),
                "homeboy-broker listening on http://{} (pid {}, build {}, store {store})",
                state.addr,
                state.pid,
                state.build_id
            );
            bound.run(server::shutdown_signal()).await?;
            Ok(())
        })
}
