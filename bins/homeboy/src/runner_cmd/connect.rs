//! `homeboy runner connect <server_id>`: an SSH local forward to the runner's loopback daemon. Through a
//! running control master the forward is added to it and this command returns; otherwise this process
//! becomes the foreground ssh holding the forward until it is stopped. Non-loopback addresses are refused.

use std::os::unix::process::CommandExt;

use anyhow::Context;
use clap::Args;
use homeboy_config::Paths;
use homeboy_ssh::{LocalForward, RunnerConnect, Ssh};

use crate::output::{Format, print_json};
use crate::server_cmd::{load, ssh_error};

#[derive(Args)]
pub struct ConnectArgs {
    /// Server id (also the runner id)
    id: String,
    /// The runner daemon's loopback address on the server
    #[arg(long, default_value = "127.0.0.1:7421")]
    remote_addr: String,
    /// The loopback address to listen on here (default: the same as --remote-addr; the same port keeps the
    /// daemon's Host check satisfied)
    #[arg(long)]
    local_addr: Option<String>,
    /// Remove the forward from the server's control master instead
    #[arg(long)]
    cancel: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: ConnectArgs) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    let server = load(&paths, &args.id)?;
    let forward = LocalForward::new(args.local_addr.as_deref(), Some(&args.remote_addr))
        .map_err(ssh_error)?;
    let ssh = Ssh::from_env();
    if args.cancel {
        ssh.cancel_forward(&server, &forward).map_err(ssh_error)?;
        return report(
            &args,
            &forward,
            "cancelled",
            "forward removed from the control master",
        );
    }
    match ssh.runner_connect(&server, &forward).map_err(ssh_error)? {
        RunnerConnect::AttachedToMaster => report(
            &args,
            &forward,
            "attached",
            &format!(
                "forward added to the control master; it lasts until `homeboy server disconnect {id}` or `homeboy runner connect {id} --cancel`",
                id = server.id
            ),
        ),
        RunnerConnect::Foreground(mut command) => {
            eprintln!(
                "runner {}: {} -> {} on {} (ssh in the foreground; Ctrl-C stops it)",
                server.id,
                forward.local_url(),
                forward.remote,
                server.destination()
            );
            let error = command.exec();
            Err(error).with_context(|| {
                format!(
                    "cannot run {} (Debian: apt-get install openssh-client)",
                    ssh.program().to_string_lossy()
                )
            })
        }
    }
}

fn report(
    args: &ConnectArgs,
    forward: &LocalForward,
    outcome: &str,
    text: &str,
) -> anyhow::Result<()> {
    match args.format {
        Format::Json => print_json(&serde_json::json!({
            "server": args.id,
            "outcome": outcome,
            "forward": forward,
            "local_url": forward.local_url(),
        })),
        Format::Text => {
            println!(
                "runner {}: {} -> {}: {text}",
                args.id,
                forward.local_url(),
                forward.remote
            );
            Ok(())
        }
    }
}
