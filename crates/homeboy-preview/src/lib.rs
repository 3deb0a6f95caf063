//! Native public preview: the VPS-side ingress that routes public hosts to preview sessions, the local
//! preview client that holds an outbound authenticated reverse channel, the native preview auth policy
//! both sides meet at, the durable route table, and the plan-first install of the ingress on a VPS.
//!
//! Modules: [`routes`] (route records and their lifecycle), [`auth`] (claim checks against
//! `policy.native_preview_auth`), [`ingress`] (the HTTP daemon), [`channel`] (the reverse channel's
//! transports, ingress side, and the JSON both sides speak), [`client`] (the preview client), [`install`]
//! (install plans and install status). The CLI and `homeboy-ingress` only parse arguments and call these.

pub mod auth;
pub mod body;
pub mod channel;
pub mod cli;
pub mod client;
pub mod clock;
mod error;
pub mod headers;
pub mod host;
#[cfg(test)]
mod host_proptests;
pub mod ingress;
pub mod install;
pub mod pool;
pub mod routes;
pub mod signal;
pub mod splice;

pub use error::PreviewError;
