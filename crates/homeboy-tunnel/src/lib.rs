//! `homeboy tunnel` on the local side: service declarations, managed services (a supervised process group
//! with logs, readiness and an optional provider-neutral public tunnel backend), the `homeboy/preview-url/v1`
//! artifact, the static artifact origin, and the preview consumer.
//!
//! Binaries call these functions and print what they return; nothing here parses command lines or prints.
//! The preview ingress and the reverse preview client live in `homeboy-preview`, not here.

mod clock;
pub mod consumer;
pub mod declarations;
mod error;
pub mod origin;
pub mod preview_artifact;
pub mod service;

pub use error::TunnelError;
