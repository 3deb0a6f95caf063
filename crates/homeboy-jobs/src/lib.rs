//! The durable job queue of the daemon and the broker: jobs, their leases and their event logs, on an
//! embedded store. Nothing here knows about HTTP.
//!
//! - [`model`]: the job model of the wire contract (states, events, inputs and outputs of operations).
//! - [`JobStore`]: the operations, as a trait so another backend can be added without touching callers.
//! - [`machine`]: the state machine every backend applies (transitions, events, refusals), written once.
//! - `suite` (feature `suite`): the store test suite every backend runs against itself.
//! - [`RedbJobStore`]: the embedded default — redb for state and indexes, a write-ahead log and one writer
//!   thread for group commit (see `docs/decisions/0001-embedded-store.md`).

mod engine;
mod error;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod lease_tests;
pub mod machine;
pub mod model;
mod store;
#[cfg(any(test, feature = "suite"))]
#[path = "store_tests.rs"]
pub mod suite;
mod tables;
mod wal;

pub use engine::{Changes, Clock, Observer, system_clock};
pub use error::JobError;
pub use model::*;
pub use store::{JobStore, RedbJobStore};
