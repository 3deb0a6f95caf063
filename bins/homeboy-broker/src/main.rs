//! `homeboy-broker`: the homeboy daemon with broker defaults — a stable loopback address that a systemd
//! unit and a reverse proxy can point at, and broker tokens required on `/runner/*`. Argument parsing and
//! wiring only: the flags are the daemon's own (`homeboy_daemon::serve_args`).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use homeboy_config::Paths;
use homeboy_daemon::DaemonError;
use homeboy_daemon::serve_args::ServeFlags;
use homeboy_daemon::server;

/// mimalloc: the daemon allocates small, short-lived buffers per request, where it is markedly cheaper than
/// the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The broker's default address.
const BROKER_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7421);

#[derive(Parser)]
#[command(
    name = "homeboy-broker",
    version,
    about = "Run the homeboy daemon as a durable reverse-runner broker (default 127.0.0.1:7421, broker tokens required)"
)]
struct Cli {
    #[command(flatten)]
    serve: ServeFlags,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homeboy-broker: {e:#}");
            match e.downcast_ref::<DaemonError>() {
                Some(DaemonError::NonLoopbackAddress { .. } | DaemonError::UnsafeOptions(_)) => {
                    ExitCode::from(2)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    cli.serve.init_logging();
    let options = cli.serve.options(Paths::from_env()?, BROKER_ADDR);
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
