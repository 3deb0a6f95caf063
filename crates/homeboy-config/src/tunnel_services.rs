//! Tunnel service declarations, `<config>/tunnel/services/<id>.json`: a private service reachable on a
//! loopback port (optionally of a configured server), how clients must authenticate to it, when public
//! preview artifacts are wanted, and the native preview auth policy that the preview ingress enforces.
//!
//! A declaration never holds a token value: auth names the environment variable a token is read from at
//! use time, and native preview auth stores only SHA-256 digests. Unknown fields (a stray `token`) are
//! refused.

use serde::{Deserialize, Serialize};

use crate::declarations::{Declaration, FieldError};

/// One declared service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelService {
    pub id: String,
    /// The configured server (`servers/<id>.json`) the service lives on; `None` for this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Loopback host of the service on its machine.
    #[serde(default = "default_remote_host")]
    pub remote_host: String,
    pub remote_port: u16,
    /// How clients authenticate to the service (required: there is no implicit default).
    pub auth: ServiceAuth,
    /// Client ids allowed to use the service.
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    /// When public preview artifacts are produced for runs of this service.
    #[serde(default)]
    pub preview: PreviewPolicy,
    #[serde(default)]
    pub policy: ServicePolicy,
}

fn default_remote_host() -> String {
    "127.0.0.1".to_string()
}

/// How a client presents credentials to the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAuth {
    pub mode: AuthMode,
    /// The environment variable holding the token (never the token itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The header carrying it (default `Authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// Auth modes. `none` is an explicit opt-out, acceptable only because the service stays private on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// `Authorization: Bearer <value of $env>`.
    BearerEnv,
    /// `<header>: <value of $env>`.
    HeaderEnv,
    /// No credentials.
    None,
}

/// When to publish preview artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewPolicy {
    #[serde(default)]
    pub mode: PreviewMode,
    /// RFC 3339; required when `mode` is `keep-alive-until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_until: Option<String>,
}

/// Preview policy modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PreviewMode {
    #[default]
    None,
    Always,
    OnFailure,
    ManualApproval,
    KeepAliveUntil,
}

/// The service's exposure and auth policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePolicy {
    /// Always `private_loopback`: declarations never describe a public unauthenticated URL.
    #[serde(default = "private_loopback")]
    pub exposure: String,
    #[serde(default = "yes")]
    pub require_auth: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_preview_auth: Option<NativePreviewAuth>,
}

impl Default for ServicePolicy {
    fn default() -> Self {
        ServicePolicy {
            exposure: private_loopback(),
            require_auth: true,
            native_preview_auth: None,
        }
    }
}

fn private_loopback() -> String {
    "private_loopback".to_string()
}

fn yes() -> bool {
    true
}

/// Who may claim a public preview host/session for this service over the reverse channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativePreviewAuth {
    #[serde(default = "yes")]
    pub require_client_token: bool,
    #[serde(default = "default_ttl")]
    pub default_session_ttl_secs: u64,
    #[serde(default = "max_ttl")]
    pub max_session_ttl_secs: u64,
    /// Exact hosts or globs (`*.preview.example.net`) the service allows.
    #[serde(default)]
    pub allowed_public_hosts: Vec<String>,
    /// Session ids the service allows; empty means any.
    #[serde(default)]
    pub allowed_session_ids: Vec<String>,
    #[serde(default)]
    pub tokens: Vec<PreviewToken>,
    /// How many preview hosts one token (or, for tokenless clients, the service) may hold at once; a held
    /// route that expired or was closed makes room for a new one.
    #[serde(default = "default_sessions_per_token")]
    pub max_sessions_per_token: u32,
    /// How many preview hosts one client id may hold at once, whatever its token.
    #[serde(default = "default_sessions_per_client")]
    pub max_sessions_per_client: u32,
}

/// The default of `max_sessions_per_token`.
pub const DEFAULT_SESSIONS_PER_TOKEN: u32 = 64;
/// The default of `max_sessions_per_client`.
pub const DEFAULT_SESSIONS_PER_CLIENT: u32 = 16;

fn default_sessions_per_token() -> u32 {
    DEFAULT_SESSIONS_PER_TOKEN
}

fn default_sessions_per_client() -> u32 {
    DEFAULT_SESSIONS_PER_CLIENT
}

fn default_ttl() -> u64 {
    900
}

fn max_ttl() -> u64 {
    3600
}

/// One client token: its digest and scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewToken {
    pub id: String,
    /// Lowercase hex SHA-256 of the token.
    pub token_sha256: String,
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    #[serde(default)]
    pub allowed_public_hosts: Vec<String>,
    #[serde(default)]
    pub allowed_session_ids: Vec<String>,
    #[serde(default)]
    pub revoked: bool,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl Declaration for TunnelService {
    const KIND: &'static str = "tunnel service";

    fn id(&self) -> &str {
        &self.id
    }

    fn validate(&self) -> Result<(), FieldError> {
        if !crate::net::is_loopback_host(&self.remote_host) {
            return Err(FieldError::new(
                "remote_host",
                format!(
                    "must be a loopback host (127.0.0.1, ::1 or localhost), got {:?}: declarations are private-loopback",
                    self.remote_host
                ),
            ));
        }
        if self.remote_port == 0 {
            return Err(FieldError::new(
                "remote_port",
                "must be between 1 and 65535",
            ));
        }
        match self.auth.mode {
            AuthMode::BearerEnv | AuthMode::HeaderEnv => match self.auth.env.as_deref() {
                Some(env) if is_env_name(env) => {}
                Some(env) => {
                    return Err(FieldError::new(
                        "auth.env",
                        format!("{env:?} is not an environment variable name"),
                    ));
                }
                None => {
                    return Err(FieldError::new(
                        "auth.env",
                        "is required for this auth mode (the variable that holds the token)",
                    ));
                }
            },
            AuthMode::None => {}
        }
        if self.auth.mode == AuthMode::HeaderEnv && self.auth.header.is_none() {
            return Err(FieldError::new(
                "auth.header",
                "is required for auth mode header-env",
            ));
        }
        if self.policy.exposure != "private_loopback" {
            return Err(FieldError::new(
                "policy.exposure",
                "must be \"private_loopback\"",
            ));
        }
        if self.preview.mode == PreviewMode::KeepAliveUntil {
            match self.preview.keep_alive_until.as_deref() {
                Some(t) => check_rfc3339("preview.keep_alive_until", t)?,
                None => {
                    return Err(FieldError::new(
                        "preview.keep_alive_until",
                        "is required when preview.mode is keep-alive-until",
                    ));
                }
            }
        }
        if let Some(auth) = &self.policy.native_preview_auth {
            validate_native_auth(auth)?;
        }
        Ok(())
    }
}

fn validate_native_auth(auth: &NativePreviewAuth) -> Result<(), FieldError> {
    let base = "policy.native_preview_auth";
    if auth.max_session_ttl_secs == 0 {
        return Err(FieldError::new(
            format!("{base}.max_session_ttl_secs"),
            "must be at least 1",
        ));
    }
    if auth.default_session_ttl_secs == 0
        || auth.default_session_ttl_secs > auth.max_session_ttl_secs
    {
        return Err(FieldError::new(
            format!("{base}.default_session_ttl_secs"),
            "must be between 1 and max_session_ttl_secs",
        ));
    }
    for (name, cap) in [
        ("max_sessions_per_token", auth.max_sessions_per_token),
        ("max_sessions_per_client", auth.max_sessions_per_client),
    ] {
        if cap == 0 {
            return Err(FieldError::new(
                format!("{base}.{name}"),
                "must be at least 1",
            ));
        }
    }
    for (i, token) in auth.tokens.iter().enumerate() {
        let field = |name: &str| format!("{base}.tokens[{i}].{name}");
        let digest_ok = token.token_sha256.len() == 64
            && token.token_sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !digest_ok {
            return Err(FieldError::new(
                field("token_sha256"),
                "must be a 64-character hex SHA-256 digest (never the token itself)",
            ));
        }
        if let Some(t) = &token.expires_at {
            check_rfc3339(&field("expires_at"), t)?;
        }
    }
    Ok(())
}

fn check_rfc3339(field: &str, value: &str) -> Result<(), FieldError> {
    parse_rfc3339(value)
        .map(|_| ())
        .ok_or_else(|| FieldError::new(field, format!("{value:?} is not an RFC 3339 timestamp")))
}

pub use crate::clock::parse_rfc3339;

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declarations::parse_json_fields;

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "id": "site-preview",
            "server": "private-runtime",
            "remote_port": 7331,
            "auth": {"mode": "bearer-env", "env": "SITE_PREVIEW_TOKEN", "header": "Authorization"},
            "allowed_clients": ["app-runtime"],
            "preview": {"mode": "always"},
            "policy": {"native_preview_auth": {
                "allowed_public_hosts": ["*.preview.example.net"],
                "tokens": [{"id": "lab-client-1", "token_sha256": "a".repeat(64),
                            "allowed_clients": ["local-lab"], "expires_at": "2026-06-07T13:00:00Z"}]
            }}
        })
    }

    #[test]
    fn defaults_and_round_trip() {
        let svc: TunnelService = parse_json_fields(sample().to_string().as_bytes()).unwrap();
        svc.validate().unwrap();
        assert_eq!(svc.remote_host, "127.0.0.1");
        assert!(svc.policy.require_auth);
        assert_eq!(svc.policy.exposure, "private_loopback");
        let auth = svc.policy.native_preview_auth.as_ref().unwrap();
        assert_eq!(
            (auth.default_session_ttl_secs, auth.max_session_ttl_secs),
            (900, 3600)
        );
        assert_eq!(
            (auth.max_sessions_per_token, auth.max_sessions_per_client),
            (DEFAULT_SESSIONS_PER_TOKEN, DEFAULT_SESSIONS_PER_CLIENT)
        );
        let again: TunnelService =
            parse_json_fields(serde_json::to_vec(&svc).unwrap().as_slice()).unwrap();
        assert_eq!(again, svc);
    }

    #[test]
    fn refusals() {
        let mut v = sample();
        v["auth"]["token"] = "plaintext".into();
        let e = parse_json_fields::<TunnelService>(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field, "auth.token");
        let mut v = sample();
        v["remote_host"] = "0.0.0.0".into();
        let svc: TunnelService = parse_json_fields(v.to_string().as_bytes()).unwrap();
        assert_eq!(svc.validate().unwrap_err().field, "remote_host");
        let mut v = sample();
        v["policy"]["native_preview_auth"]["tokens"][0]["token_sha256"] = "secret".into();
        let svc: TunnelService = parse_json_fields(v.to_string().as_bytes()).unwrap();
        assert!(svc.validate().unwrap_err().field.ends_with("token_sha256"));
        let mut v = sample();
        v["policy"]["native_preview_auth"]["max_sessions_per_client"] = 0.into();
        let svc: TunnelService = parse_json_fields(v.to_string().as_bytes()).unwrap();
        assert!(
            svc.validate()
                .unwrap_err()
                .field
                .ends_with("max_sessions_per_client")
        );
        let mut v = sample();
        v["auth"] = serde_json::json!({"mode": "bearer-env"});
        let svc: TunnelService = parse_json_fields(v.to_string().as_bytes()).unwrap();
        assert_eq!(svc.validate().unwrap_err().field, "auth.env");
    }
}
