//! Timestamps as homeboy writes them: RFC 3339, UTC, whole seconds.

/// Now as an RFC 3339 UTC timestamp with second precision.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
