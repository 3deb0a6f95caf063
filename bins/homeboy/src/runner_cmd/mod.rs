//! `homeboy runner ...`: the runner capability of a configured server. One submodule per subcommand; this
//! file holds only the subcommand enum and its dispatch.

mod connect;
mod enable;
mod status;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum RunnerCommand {
    /// Make a server runner-capable (adds `runner` with defaults), or change its runner settings
    Enable(enable::EnableArgs),
    /// Show a server's runner config: sensitive env values redacted, secret_env as references only
    Status(status::StatusArgs),
    /// Forward a loopback port here to the runner's loopback daemon over SSH
    Connect(connect::ConnectArgs),
}

pub fn run(cmd: RunnerCommand) -> anyhow::Result<()> {
    match cmd {
        RunnerCommand::Enable(args) => enable::run(args),
        RunnerCommand::Status(args) => status::run(args),
        RunnerCommand::Connect(args) => connect::run(args),
    }
}
