//! Wall-clock time as the preview records show it: RFC 3339 in UTC, whole seconds (`homeboy_config::clock`).

pub use homeboy_config::clock::{now, now_rfc3339, parse_rfc3339 as parse, rfc3339};
