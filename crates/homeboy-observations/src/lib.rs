//! The observation store: what homeboy saw when it ran a component's tools — runs, the artifacts they left
//! and the findings in them — kept in one redb file, plus the pure functions around that evidence.
//!
//! - [`ObservationStore`]: runs, artifact records and findings with range-scan indexes for every reader
//!   filter; shared between the daemon and CLI processes (redb `MultiWriter`, see [`store`]).
//! - [`model`]: the wire contract's `Run`, `Artifact` (with its byte retrieval contract) and `Finding`.
//! - [`findings`]: SARIF 2.1.0, JUnit XML and checkstyle XML parsers and stable fingerprints.
//! - [`artifacts`], [`artifact_path`]: keeping an artifact's bytes under the artifact root, and the one
//!   function that opens them again, refusing paths that leave the root.
//! - [`owner`]: the `status_note` of a running run whose owner process is gone.
//! - [`compare`]: two runs side by side (status, findings by fingerprint, metric deltas).
//!
//! Nothing here knows about HTTP, jobs or how tools are started.

pub mod artifact_path;
pub mod artifacts;
pub mod compare;
mod error;
mod file_stamp;
pub mod findings;
mod keys;
pub mod model;
pub mod owner;
pub mod store;
#[cfg(test)]
mod store_fault_tests;

pub use error::{ArtifactAccess, ObservationError};
pub use model::*;
pub use store::ObservationStore;

/// A new time-ordered id (UUIDv7), for runs and artifacts.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether `text` is an id as [`new_id`] writes it (a UUID, lower-case and hyphenated): what a run listing's
/// cursor must be.
pub fn is_id(text: &str) -> bool {
    uuid::Uuid::try_parse(text).is_ok_and(|id| id.hyphenated().to_string() == text)
}

/// Now as RFC 3339 UTC with milliseconds (`2026-01-01T12:00:00.123Z`): runs are timed to the millisecond.
pub use homeboy_config::clock::now_rfc3339_ms as now_rfc3339;
pub use homeboy_config::clock::{format_ms, now_ms};

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_and_ids() {
        assert_eq!(
            super::format_ms(1_767_225_600_123),
            "2026-01-01T00:00:00.123Z"
        );
        let a = super::new_id();
        let b = super::new_id();
        assert!(a < b, "ids sort in creation order");
        assert!(super::is_id(&a));
        for bad in [
            "garbage",
            "",
            &a.to_uppercase(),
            &a.replace('-', ""),
            &format!("{{{a}}}"),
            &format!("{a}x"),
        ] {
            assert!(!super::is_id(bad), "{bad}");
        }
    }
}
