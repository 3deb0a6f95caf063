//! Components, rigs and stacks at work: what their declarations (in `homeboy-config`) point at, inspected
//! and exercised.
//!
//! - [`git`]: a checkout's status and changes, and the plumbing stacks need, through the `git` program.
//! - [`rig_check`], [`stack_status`]: a rig's check steps; a stack's entries against its target.
//! - [`views`]: the JSON answers shared by the HTTP routes and the CLI.
//! - [`tools`]: the typed tool allowlist and request validation.
//! - [`analysis`], [`command`], [`evidence`]: an analysis run — the declared argv in its own process group
//!   with a timeout, its evidence collected into the observation store, its result JSON — called by the
//!   daemon's executor and by `homeboy lint` alike.
//!
//! No HTTP and no async runtime: the contract crate calls into this one.

pub mod analysis;
pub mod command;
mod error;
pub mod evidence;
pub mod git;
pub mod rig_check;
pub mod stack_status;
pub mod tools;
pub mod views;

pub use error::ComponentError;

use homeboy_config::{ConfigError, Declaration, DeclarationDir};

/// Declaration `id` of `dir`, with a missing one as [`ComponentError::NotFound`].
pub fn load<T: Declaration>(dir: &DeclarationDir<T>, id: &str) -> Result<T, ComponentError> {
    dir.get(id).map_err(|e| match e {
        ConfigError::NotFound { kind, id } => ComponentError::NotFound { kind, id },
        other => ComponentError::Config(other),
    })
}

#[cfg(test)]
mod tests;
