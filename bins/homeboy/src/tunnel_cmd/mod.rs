//! `homeboy tunnel ...`: the tunnel areas and their dispatch. Each area's arguments and wiring live in its
//! own file; this one only lists them.

mod artifact_origin;
mod errors;
mod preview_client;
mod preview_consumer;
mod preview_ingress;
mod service;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum TunnelCommand {
    /// Declare private services; start, check and stop managed local services
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Serve the artifact root as a static CORS-enabled origin, or inspect its public URL mapping
    #[command(subcommand)]
    ArtifactOrigin(artifact_origin::ArtifactOriginCommand),
    /// Run a configured consumer command against a public preview URL and record its evidence
    #[command(subcommand)]
    PreviewConsumer(preview_consumer::PreviewConsumerCommand),
    /// Connect a local preview origin to a homeboy preview ingress over an outbound reverse channel
    #[command(subcommand)]
    PreviewClient(preview_client::PreviewClientCommand),
    /// The VPS-side preview ingress: route table, the ingress daemon, install plans
    #[command(subcommand)]
    PreviewIngress(preview_ingress::PreviewIngressCommand),
}

pub fn run(cmd: TunnelCommand) -> anyhow::Result<()> {
    match cmd {
        TunnelCommand::Service(cmd) => service::run(cmd),
        TunnelCommand::ArtifactOrigin(cmd) => artifact_origin::run(cmd),
        TunnelCommand::PreviewConsumer(cmd) => preview_consumer::run(cmd),
        TunnelCommand::PreviewClient(cmd) => preview_client::run(cmd),
        TunnelCommand::PreviewIngress(cmd) => preview_ingress::run(cmd),
    }
}
