//! `homeboy-broker`: the homeboy daemon with broker defaults — a stable loopback address that a systemd
//! unit and a reverse proxy can point at. Argument parsing and wiring only.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use homeboy_config::Paths;
use homeboy_daemon::server::{self, ServeOptions};
use homeboy_daemon::{DaemonError, build_info};

/// mimalloc: the daemon allocates small, short-lived buffers per request, where it is markedly cheaper than
/// the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "homeboy-broker",
    version,
    about = "Run the homeboy daemon as a durable reverse-runner broker"
)]
struct Cli {
    /// Loopback address to listen on (stable, so proxies and tunnels can point at it)
    #[arg(long, default_value = "127.0.0.1:7421", value_parser = server::parse_listen_addr)]
    addr: SocketAddr,
    /// Largest accepted request body in bytes
    #[arg(long, default_value_t = homeboy_daemon::http::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Log file to record in the state file (the service manager captures output)
    #[arg(long)]
    log_path: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homeboy-broker: {e:#}");
            match e.downcast_ref::<DaemonError>() {
                Some(DaemonError::NonLoopbackAddress { .. }) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut options = ServeOptions::new(Paths::from_env()?);
    options.addr = cli.addr;
    options.build_id = build_info::build_id_from_env();
    options.http.max_body_bytes = cli.max_body_bytes;
    options.log_path = cli.log_path;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let bound = server::bind(options).await?;
            let state = bound.state();
            let _ = writeln!(
                std::io::stdout(),
                "homeboy-broker listening on http://{} (pid {}, build {})",
                state.addr,
                state.pid,
                state.build_id
            );
            bound.run(server::shutdown_signal()).await?;
            Ok(())
        })
}
