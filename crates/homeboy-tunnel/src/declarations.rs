//! Service declarations: `homeboy tunnel service expose|list|show|set|remove|url`.
//!
//! A declaration (`<config>/tunnel/services/<id>.json`, schema [`TunnelService`]) says where a private service
//! listens (a loopback host and port, optionally on a configured server), how clients authenticate to it
//! (an explicit auth mode naming the environment variable that holds the token, never the token) and when
//! public preview artifacts are wanted. Everything is written through [`DeclarationDir`], so nothing invalid
//! is ever stored; `set` goes through the shared dynamic set contract.

use homeboy_config::declarations::Listed;
use homeboy_config::dynamic_set::{self, Edit};
use homeboy_config::tunnel_services::{
    AuthMode, PreviewMode, PreviewPolicy, ServiceAuth, ServicePolicy, TunnelService,
};
use homeboy_config::{DeclarationDir, Paths};

use crate::TunnelError;

/// The declaration store.
pub fn store(paths: &Paths) -> DeclarationDir<TunnelService> {
    DeclarationDir::new(paths.tunnel_services_dir())
}

/// What `service expose` asks for.
#[derive(Debug, Clone)]
pub struct ExposeRequest {
    pub id: String,
    pub server: Option<String>,
    pub remote_host: String,
    pub remote_port: u16,
    pub auth_mode: AuthMode,
    pub auth_env: Option<String>,
    pub auth_header: Option<String>,
    pub allowed_clients: Vec<String>,
    pub preview_mode: PreviewMode,
    pub keep_alive_until: Option<String>,
}

/// Whether `expose` created the declaration or replaced an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExposeOutcome {
    Created,
    Replaced,
}

/// Creates or replaces a declaration. The policy is always `private_loopback` with auth required; an
/// existing declaration's native preview auth policy (token digests) is kept, since `expose` has no flags
/// for it.
pub fn expose(
    paths: &Paths,
    request: ExposeRequest,
) -> Result<(ExposeOutcome, TunnelService), TunnelError> {
    let store = store(paths);
    let existing = store.get_opt(&request.id)?;
    let native_preview_auth = existing
        .as_ref()
        .and_then(|s| s.policy.native_preview_auth.clone());
    let service = TunnelService {
        id: request.id,
        server: request.server,
        remote_host: request.remote_host,
        remote_port: request.remote_port,
        auth: ServiceAuth {
            mode: request.auth_mode,
            env: request.auth_env,
            header: request.auth_header,
        },
        allowed_clients: request.allowed_clients,
        preview: PreviewPolicy {
            mode: request.preview_mode,
            keep_alive_until: request.keep_alive_until,
        },
        policy: ServicePolicy {
            native_preview_auth,
            ..ServicePolicy::default()
        },
    };
    store.put(&service)?;
    let outcome = if existing.is_some() {
        ExposeOutcome::Replaced
    } else {
        ExposeOutcome::Created
    };
    Ok((outcome, service))
}

/// Every declaration, sorted by id; unreadable files are listed with their error.
pub fn list(paths: &Paths) -> Result<Vec<Listed<TunnelService>>, TunnelError> {
    Ok(store(paths).list()?)
}

/// One declaration.
pub fn show(paths: &Paths, id: &str) -> Result<TunnelService, TunnelError> {
    Ok(store(paths).get(id)?)
}

/// Applies `--field`/`--json` edits through the dynamic set contract (validated before writing).
pub fn set(paths: &Paths, id: &str, edits: &[Edit]) -> Result<TunnelService, TunnelError> {
    if edits.is_empty() {
        return Err(TunnelError::invalid(
            "set",
            "nothing to change: pass --field path=value or --json '<merge patch>'",
        ));
    }
    Ok(dynamic_set::update(&store(paths), id, edits)?)
}

/// Removes a declaration; false if there was none.
pub fn remove(paths: &Paths, id: &str) -> Result<bool, TunnelError> {
    Ok(store(paths).remove(id)?)
}

/// The declared loopback URL, `http://<remote_host>:<remote_port>`.
pub fn url(service: &TunnelService) -> String {
    http_url(&service.remote_host, service.remote_port)
}

/// `http://host:port`, with IPv6 literals bracketed.
pub fn http_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// Checks that `value` is an absolute `http://` or `https://` URL with a host (used for public URLs).
pub fn check_http_url(field: &str, value: &str) -> Result<(), TunnelError> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    match host {
        Some(host) if !host.is_empty() && !value.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(TunnelError::invalid(
            field,
            format!("{value:?} is not an http:// or https:// URL"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str) -> ExposeRequest {
        ExposeRequest {
            id: id.into(),
            server: Some("private-runtime".into()),
            remote_host: "127.0.0.1".into(),
            remote_port: 7331,
            auth_mode: AuthMode::BearerEnv,
            auth_env: Some("SITE_PREVIEW_TOKEN".into()),
            auth_header: Some("Authorization".into()),
            allowed_clients: vec!["app-runtime".into()],
            preview_mode: PreviewMode::Always,
            keep_alive_until: None,
        }
    }

    #[test]
    fn expose_set_remove() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        let (outcome, svc) = expose(&paths, request("site-preview")).unwrap();
        assert_eq!(outcome, ExposeOutcome::Created);
        assert_eq!(svc.policy.exposure, "private_loopback");
        assert_eq!(url(&svc), "http://127.0.0.1:7331");
        let (outcome, _) = expose(&paths, request("site-preview")).unwrap();
        assert_eq!(outcome, ExposeOutcome::Replaced);

        let edits = [Edit::parse_field("remote_port=7400").unwrap()];
        assert_eq!(
            set(&paths, "site-preview", &edits).unwrap().remote_port,
            7400
        );
        // An invalid edit is refused and leaves the stored file alone.
        let bad = [Edit::parse_field("remote_host=0.0.0.0").unwrap()];
        let err = set(&paths, "site-preview", &bad).unwrap_err();
        assert!(err.is_refused_input(), "{err}");
        assert_eq!(
            show(&paths, "site-preview").unwrap().remote_host,
            "127.0.0.1"
        );
        let token = [Edit::parse_field("auth.token=plaintext").unwrap()];
        assert!(set(&paths, "site-preview", &token).is_err());
        assert!(
            set(&paths, "site-preview", &[])
                .unwrap_err()
                .is_refused_input()
        );

        assert_eq!(list(&paths).unwrap().len(), 1);
        assert!(remove(&paths, "site-preview").unwrap());
        assert!(!remove(&paths, "site-preview").unwrap());
    }

    #[test]
    fn expose_refuses_missing_auth_env_and_non_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        let mut r = request("a");
        r.auth_env = None;
        assert!(expose(&paths, r).unwrap_err().is_refused_input());
        let mut r = request("a");
        r.remote_host = "10.0.0.5".into();
        assert!(expose(&paths, r).unwrap_err().is_refused_input());
        assert!(list(&paths).unwrap().is_empty());
        assert_eq!(http_url("::1", 80), "http://[::1]:80");
        assert!(check_http_url("u", "https://run-1.example.net/x").is_ok());
        for bad in ["ftp://x", "https://", "example.net", "http://a b"] {
            assert!(check_http_url("u", bad).is_err(), "{bad}");
        }
    }
}
