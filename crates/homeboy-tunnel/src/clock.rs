//! Timestamps as homeboy writes them: RFC 3339, UTC, whole seconds (`homeboy_config::clock`).

pub use homeboy_config::clock::now_rfc3339;
