//! What build this is: the homeboy version and the build id `build.rs` stamps (the git short hash, or
//! `version+timestamp` outside git). The daemon reports them on `/health`; `homeboy daemon start` compares
//! them with a running daemon's to decide whether to replace it. A crate of its own so that only what
//! reports the build recompiles when HEAD moves.

/// The homeboy version (workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git short hash of the build, or `version+timestamp` for builds outside git.
pub const BUILD_ID: &str = env!("HOMEBOY_BUILD_ID");

/// The build id a binary reports: [`BUILD_ID`], unless `HOMEBOY_BUILD_ID_OVERRIDE` is set. The override
/// exists so tests can play an older build; only binaries call this.
pub fn build_id_from_env() -> String {
    std::env::var("HOMEBOY_BUILD_ID_OVERRIDE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| BUILD_ID.to_string())
}
