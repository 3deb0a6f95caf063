//! The shapes of text the contract validates, written once as JSON Schema patterns (ECMA 262 syntax, which
//! Python's `re` reads the same way) so the OpenAPI document states exactly what the servers accept.
//! Each one mirrors a check in the code that is named next to it.

/// A declaration id (components, rigs, stacks, tunnel services): a letter or digit, then letters, digits,
/// `.`, `_` or `-`; at most 128 bytes (`homeboy_config::declarations::validate_id`).
pub const ID: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";

/// Text that is not empty once trimmed: it has a character that is not Unicode `White_Space` (what Rust's
/// `str::trim` removes).
pub const NOT_BLANK: &str = "[^\\t\\n\\u000B\\u000C\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]";

/// An environment variable name: ASCII letters, digits and `_`, not starting with a digit (the broker's
/// `is_env_name`).
pub const ENV_NAME: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// A name that looks like it holds a secret: it contains TOKEN, SECRET, PASSWORD, PASSWD, KEY or CREDENTIAL
/// in any case (`homeboy_config::secrets::is_sensitive_name`). The broker refuses such `env` names.
pub const SENSITIVE_NAME: &str = "[Tt][Oo][Kk][Ee][Nn]|[Ss][Ee][Cc][Rr][Ee][Tt]|[Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd]|[Pp][Aa][Ss][Ss][Ww][Dd]|[Kk][Ee][Yy]|[Cc][Rr][Ee][Dd][Ee][Nn][Tt][Ii][Aa][Ll]";
