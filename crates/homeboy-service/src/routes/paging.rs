//! The `limit` query parameter every listing shares: a default per route, at least 1, at most
//! [`MAX_PAGE`].

use crate::ApiError;

/// Largest `limit` of any listing (`/jobs`, `/jobs/:id/events`, `/runs`, `/runs/:id/findings`, ...).
pub(crate) const MAX_PAGE: u64 = 1000;

/// The page size a listing asked for (`None`: the route's `default`); 0 and more than [`MAX_PAGE`] are
/// refused as `validation.invalid_argument` on `limit`.
pub(crate) fn page_limit(limit: Option<u64>, default: u64) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default as usize),
        Some(0) => Err(ApiError::invalid_argument("limit", "must be at least 1")),
        Some(n) if n > MAX_PAGE => Err(ApiError::invalid_argument(
            "limit",
            format!("must be at most {MAX_PAGE}"),
        )),
        Some(n) => Ok(n as usize),
    }
}
