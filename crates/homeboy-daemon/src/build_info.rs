//! What build this is: the crate version and the build id stamped by `build.rs`.

/// The homeboy version (workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git short hash of the build, or `version+timestamp` for builds outside git.
pub const BUILD_ID: &str = env!("HOMEBOY_BUILD_ID");

/// Now as an RFC 3339 UTC timestamp with second precision.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The build id a binary reports: [`BUILD_ID`], unless `HOMEBOY_BUILD_ID_OVERRIDE` is set. The override
/// exists so tests can play an older build; only binaries call this.
pub fn build_id_from_env() -> String {
    std::env::var("HOMEBOY_BUILD_ID_OVERRIDE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| BUILD_ID.to_string())
}
