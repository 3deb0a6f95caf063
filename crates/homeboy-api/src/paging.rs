//! The paging bounds every listing shares (`limit`, `cursor`).

/// Largest `limit` of any listing (`/jobs`, `/jobs/:id/events`, `/runs`, `/runs/:id/findings`, ...).
pub const MAX_PAGE: u64 = 1000;
