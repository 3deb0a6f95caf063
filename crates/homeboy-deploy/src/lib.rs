//! Deployment recipes rendered from code, so they cannot drift from what the binaries do:
//! [`broker_config`] is `homeboy daemon broker-config` (the `homeboy-broker` systemd unit, private tunnel
//! examples, and nginx/Caddy sites that publish only the runner routes); [`multi_broker`] is its
//! several-brokers-one-database shape (`--store postgres://…`). Renders text; writes nothing.

pub mod broker_config;
mod error;
pub mod multi_broker;

pub use error::DeployError;
