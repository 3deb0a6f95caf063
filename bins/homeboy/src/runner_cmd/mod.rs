//! `homeboy runner ...`: running jobs for a broker (`work`) and pairing broker credentials (`broker`).
//! Each subcommand's arguments live in their own module; this file is the enum and the dispatch.

mod broker;
mod work;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum RunnerCommand {
    /// Take jobs from a broker and run them (long-polling claims over outbound HTTP)
    Work(work::WorkArgs),
    /// Pair, list and revoke broker credentials (runs on the broker machine)
    #[command(subcommand)]
    Broker(broker::BrokerCommand),
}

pub fn run(cmd: RunnerCommand) -> anyhow::Result<()> {
    match cmd {
        RunnerCommand::Work(args) => work::run(args),
        RunnerCommand::Broker(cmd) => broker::run(cmd),
    }
}
