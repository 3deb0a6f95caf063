//! `homeboy tunnel ...`: the tunnel area's subcommands, one module each. This file is the enum and the
//! dispatch only.

mod preview_client;
mod preview_ingress;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum TunnelCommand {
    /// Connect a local preview origin to a homeboy preview ingress over an outbound reverse channel
    #[command(subcommand)]
    PreviewClient(preview_client::PreviewClientCommand),
    /// The VPS-side preview ingress: route table, the ingress daemon, install plans
    #[command(subcommand)]
    PreviewIngress(preview_ingress::PreviewIngressCommand),
}

pub fn run(cmd: TunnelCommand) -> anyhow::Result<()> {
    match cmd {
        TunnelCommand::PreviewClient(cmd) => preview_client::run(cmd),
        TunnelCommand::PreviewIngress(cmd) => preview_ingress::run(cmd),
    }
}
