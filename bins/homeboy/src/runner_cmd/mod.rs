//! `homeboy runner ...`: running jobs for a broker (`work`), enqueueing
//! commands for them (`submit`), pairing broker credentials (`broker`), and the
//! runner capability of a configured server (`enable`, `status`, `connect`). One submodule per subcommand;
//! this file holds only the subcommand enum and its dispatch.

mod broker;
mod connect;
mod enable;
mod status;
mod submit;
mod work;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum RunnerCommand {
    /// Take jobs from a broker and run them (long-polling claims over outbound HTTP)
    Work(work::WorkArgs),
    /// Enqueue a command for a runner on a daemon or broker (needs a `submit` token)
    Submit(submit::SubmitArgs),
    /// Pair, list and revoke broker credentials (runs on the broker machine)
    #[command(subcommand)]
    Broker(broker::BrokerCommand),
    /// Make a server runner-capable (adds `runner` with defaults), or change its runner settings
    Enable(enable::EnableArgs),
    /// Show a server's runner config: sensitive env values redacted, secret_env as references only
    Status(status::StatusArgs),
    /// Forward a loopback port here to the runner's loopback daemon over SSH
    Connect(connect::ConnectArgs),
}

pub fn run(cmd: RunnerCommand) -> anyhow::Result<()> {
    match cmd {
        RunnerCommand::Work(args) => work::run(args),
        RunnerCommand::Submit(args) => submit::run(args),
        RunnerCommand::Broker(cmd) => broker::run(cmd),
        RunnerCommand::Enable(args) => enable::run(args),
        RunnerCommand::Status(args) => status::run(args),
        RunnerCommand::Connect(args) => connect::run(args),
    }
}
