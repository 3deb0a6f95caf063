//! Server declarations, `<config>/servers/<id>.json`: an SSH machine (host, port, user, key), its optional
//! managed-session policy (`auth`), and its optional runner capability (`runner`, with `env` for values that are
//! safe to show and `secret_env` for references resolved only at execution time).
//!
//! This module owns the schema, its validation, the redacted views that every command prints, and the runner
//! capability edits. It never holds a password or a secret value: `auth` only says where ssh keeps its control
//! socket, and `secret_env` only says where a secret is read from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::declarations::{Declaration, DeclarationDir, FieldError, validate_id};
use crate::dynamic_set::{self, Edit};
use crate::secret_env::{self, SecretRef, is_env_name};
use crate::secrets::redact_env;
use crate::{ConfigError, Paths};
use homeboy_api::servers::{
    RunnerPolicyView, RunnerStatus, RunnerView, SecretCheck, ServerAuthView, ServerView,
};

/// The default SSH port.
pub const DEFAULT_PORT: u16 = 22;
/// Where a managed session's control socket lives unless `auth.control_path` says otherwise (ssh expands `~`
/// and the `%h`, `%p`, `%r` tokens).
pub const DEFAULT_CONTROL_PATH: &str = "~/.ssh/controlmasters/%h-%p-%r";
/// How long an idle managed session stays up unless `auth.persist` says otherwise (ssh `ControlPersist`).
pub const DEFAULT_PERSIST: &str = "4h";
/// The largest accepted `runner.concurrency_limit`.
pub const MAX_CONCURRENCY: u32 = 1024;

/// One SSH server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Unique identifier; also the file name and, for a runner, the runner id.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Hostname or IP address.
    pub host: String,
    /// SSH port (default 22).
    #[serde(default = "default_port", deserialize_with = "port_number")]
    pub port: u16,
    /// SSH user name.
    pub user: String,
    /// Private key file (`-i`); `~` is expanded by ssh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<String>,
    /// Free-form classification for extensions and project-specific behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Managed SSH session policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ServerAuth>,
    /// Runner capability: homeboy executes jobs on this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerConfig>,
    /// SSH agent forwarding (default false: it hands the server your forwarded identities).
    #[serde(default)]
    pub forward_agent: bool,
}

/// How homeboy keeps an SSH session to a server that asks for a password after the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerAuth {
    pub mode: SessionMode,
    /// ssh `ControlPath`; `~` and `%h`/`%p`/`%r` are left to ssh.
    #[serde(default = "default_control_path")]
    pub control_path: String,
    /// ssh `ControlPersist`: `yes`, `no`, or a time such as `4h`, `30m`, `1h30m`, `600`.
    #[serde(default = "default_persist")]
    pub persist: String,
}

/// Managed session modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// Key authentication followed by an operator-typed password, once, into an SSH control master that
    /// later commands reuse. homeboy never sees or stores the password.
    KeyPlusPasswordControlmaster,
}

/// The runner capability of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerConfig {
    /// Where jobs get their working directories on the runner (`~` is the runner user's home).
    #[serde(default = "default_workspace_root")]
    pub workspace_root: String,
    /// The homeboy binary on the runner (a bare name is looked up in the runner's PATH).
    #[serde(default = "default_homeboy_path")]
    pub homeboy_path: String,
    /// Whether the runner keeps a homeboy daemon running.
    #[serde(default)]
    pub daemon: bool,
    /// How many jobs the runner runs at once.
    #[serde(default = "default_concurrency")]
    pub concurrency_limit: u32,
    /// How artifacts produced on the runner are kept (`copy` by default).
    #[serde(default = "default_artifact_policy")]
    pub artifact_policy: String,
    #[serde(default)]
    pub policy: RunnerPolicy,
    /// Non-secret environment for jobs, safe to show in diagnostics (sensitive-looking names are redacted
    /// anyway).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Secret environment for jobs, as references resolved on the runner at execution time.
    #[serde(default)]
    pub secret_env: BTreeMap<String, SecretRef>,
    /// Resource hints for schedulers and extensions (free-form JSON object).
    #[serde(default)]
    pub resources: Map<String, Value>,
}

/// Runner policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerPolicy {
    /// Relative paths or globs left out of workspace snapshots.
    #[serde(default)]
    pub snapshot_excludes: Vec<String>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            workspace_root: default_workspace_root(),
            homeboy_path: default_homeboy_path(),
            daemon: false,
            concurrency_limit: default_concurrency(),
            artifact_policy: default_artifact_policy(),
            policy: RunnerPolicy::default(),
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
            resources: Map::new(),
        }
    }
}

fn default_port() -> u16 {
    DEFAULT_PORT
}
fn default_control_path() -> String {
    DEFAULT_CONTROL_PATH.to_string()
}
fn default_persist() -> String {
    DEFAULT_PERSIST.to_string()
}
fn default_workspace_root() -> String {
    "~/homeboy-runner".to_string()
}
fn default_homeboy_path() -> String {
    "homeboy".to_string()
}
fn default_concurrency() -> u32 {
    1
}
fn default_artifact_policy() -> String {
    "copy".to_string()
}

/// A port as any JSON integer, refused with a readable message outside 1..=65535.
fn port_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let n = i64::deserialize(deserializer)?;
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| serde::de::Error::custom(format!("must be between 1 and 65535, got {n}")))
}

impl Server {
    /// A server with the required fields and every default.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        host: impl Into<String>,
        user: impl Into<String>,
    ) -> Self {
        Server {
            id: id.into(),
            name: name.into(),
            host: host.into(),
            port: DEFAULT_PORT,
            user: user.into(),
            identity_file: None,
            kind: None,
            auth: None,
            runner: None,
            forward_agent: false,
        }
    }

    /// `user@host:port`, for messages.
    pub fn destination(&self) -> String {
        if self.host.contains(':') {
            format!("{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.host, self.port)
        }
    }

    /// Whether `homeboy server connect` manages an SSH control master for this server.
    pub fn managed_session(&self) -> Option<&ServerAuth> {
        self.auth
            .as_ref()
            .filter(|a| a.mode == SessionMode::KeyPlusPasswordControlmaster)
    }

    /// This server as every command prints it (the contract's server view): sensitive `runner.env` values
    /// (a sensitive-looking name, or a URL with user info) replaced by `[redacted]`, `secret_env` as
    /// references.
    pub fn view(&self) -> ServerView {
        ServerView {
            id: self.id.clone(),
            name: self.name.clone(),
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            identity_file: self.identity_file.clone(),
            kind: self.kind.clone(),
            auth: self.auth.as_ref().map(|auth| ServerAuthView {
                mode: match auth.mode {
                    SessionMode::KeyPlusPasswordControlmaster => {
                        "key_plus_password_controlmaster".into()
                    }
                },
                control_path: auth.control_path.clone(),
                persist: auth.persist.clone(),
            }),
            runner: self.runner.as_ref().map(RunnerConfig::view),
            forward_agent: self.forward_agent,
        }
    }
}

impl RunnerConfig {
    /// The runner config as shown: sensitive `env` values ([`crate::secrets::is_sensitive_env`]) replaced by
    /// `[redacted]`, `secret_env` as references only.
    pub fn view(&self) -> RunnerView {
        RunnerView {
            workspace_root: self.workspace_root.clone(),
            homeboy_path: self.homeboy_path.clone(),
            daemon: self.daemon,
            concurrency_limit: self.concurrency_limit,
            artifact_policy: self.artifact_policy.clone(),
            policy: RunnerPolicyView {
                snapshot_excludes: self.policy.snapshot_excludes.clone(),
            },
            env: self
                .env
                .iter()
                .map(|(name, value)| (name.clone(), redact_env(name, value).to_string()))
                .collect(),
            secret_env: self
                .secret_env
                .iter()
                .map(|(name, reference)| (name.clone(), reference.view()))
                .collect(),
            resources: self.resources.clone(),
        }
    }
}

impl Declaration for Server {
    const KIND: &'static str = "server";

    fn id(&self) -> &str {
        &self.id
    }

    fn validate(&self) -> Result<(), FieldError> {
        if let Err(e) = validate_id(Self::KIND, &self.id) {
            return Err(FieldError::new("id", e.to_string()));
        }
        text("name", &self.name)?;
        ssh_word("host", &self.host)?;
        if self.port == 0 {
            return Err(FieldError::new("port", "must be between 1 and 65535"));
        }
        ssh_word("user", &self.user)?;
        if let Some(identity_file) = &self.identity_file {
            path_text("identity_file", identity_file)?;
        }
        if let Some(kind) = &self.kind {
            text("kind", kind)?;
        }
        if let Some(auth) = &self.auth {
            validate_auth(auth)?;
        }
        if let Some(runner) = &self.runner {
            validate_runner(runner)?;
        }
        Ok(())
    }
}

fn validate_auth(auth: &ServerAuth) -> Result<(), FieldError> {
    let path = &auth.control_path;
    path_text("auth.control_path", path)?;
    if path.eq_ignore_ascii_case("none") {
        return Err(FieldError::new(
            "auth.control_path",
            "cannot be \"none\": a managed session needs a control socket",
        ));
    }
    if !(path.starts_with('/') || path.starts_with("~/")) {
        return Err(FieldError::new(
            "auth.control_path",
            format!("{path:?} must be an absolute path or start with ~/"),
        ));
    }
    if path.chars().any(char::is_whitespace) {
        return Err(FieldError::new(
            "auth.control_path",
            "must not contain whitespace",
        ));
    }
    if !is_persist(&auth.persist) {
        return Err(FieldError::new(
            "auth.persist",
            format!(
                "{:?} is not yes, no, or a time such as 4h, 30m, 1h30m or 600 (seconds)",
                auth.persist
            ),
        ));
    }
    Ok(())
}

fn validate_runner(runner: &RunnerConfig) -> Result<(), FieldError> {
    path_text("runner.workspace_root", &runner.workspace_root)?;
    path_text("runner.homeboy_path", &runner.homeboy_path)?;
    if runner.concurrency_limit == 0 || runner.concurrency_limit > MAX_CONCURRENCY {
        return Err(FieldError::new(
            "runner.concurrency_limit",
            format!("must be between 1 and {MAX_CONCURRENCY}"),
        ));
    }
    text("runner.artifact_policy", &runner.artifact_policy)?;
    for (i, exclude) in runner.policy.snapshot_excludes.iter().enumerate() {
        let field = format!("runner.policy.snapshot_excludes[{i}]");
        text(&field, exclude)?;
        if exclude.starts_with('/') || exclude.split('/').any(|part| part == "..") {
            return Err(FieldError::new(
                field,
                format!("{exclude:?} must be relative to the workspace (no leading / and no ..)"),
            ));
        }
    }
    for (name, value) in &runner.env {
        env_name(&format!("runner.env.{name}"), name)?;
        if value.contains('\0') {
            return Err(FieldError::new(
                format!("runner.env.{name}"),
                "must not contain a NUL byte",
            ));
        }
    }
    for (name, reference) in &runner.secret_env {
        let field = format!("runner.secret_env.{name}");
        env_name(&field, name)?;
        if let Some(problem) = reference.shape_problem() {
            return Err(FieldError::new(field, problem));
        }
        if runner.env.contains_key(name) {
            return Err(FieldError::new(
                field,
                "is also set in runner.env; keep a variable in one of the two",
            ));
        }
    }
    Ok(())
}

/// A non-empty single-line string.
fn text(field: &str, value: &str) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A path: non-empty, one line.
fn path_text(field: &str, value: &str) -> Result<(), FieldError> {
    text(field, value)
}

/// A word handed to ssh as an argument value: no whitespace, and no leading `-` that ssh could read as an
/// option.
fn ssh_word(field: &str, value: &str) -> Result<(), FieldError> {
    text(field, value)?;
    if value.starts_with('-') {
        return Err(FieldError::new(
            field,
            format!("{value:?} must not start with '-'"),
        ));
    }
    if value.chars().any(char::is_whitespace) {
        return Err(FieldError::new(field, "must not contain whitespace"));
    }
    if field == "host" && (value.contains('@') || value.contains('/')) {
        return Err(FieldError::new(
            field,
            format!("{value:?} is not a hostname or IP address (put the user in `user`)"),
        ));
    }
    Ok(())
}

fn env_name(field: &str, name: &str) -> Result<(), FieldError> {
    if is_env_name(name) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{name:?} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
        ))
    }
}

/// ssh's `ControlPersist` values: `yes`, `no`, seconds, or `<n><unit>` groups with units s, m, h, d, w.
pub fn is_persist(value: &str) -> bool {
    if matches!(value, "yes" | "no") {
        return true;
    }
    if value.is_empty() {
        return false;
    }
    let mut digits = 0;
    for c in value.chars() {
        match c {
            '0'..='9' => digits += 1,
            's' | 'S' | 'm' | 'M' | 'h' | 'H' | 'd' | 'D' | 'w' | 'W' if digits > 0 => digits = 0,
            _ => return false,
        }
    }
    true
}

/// The server store at `paths.servers_dir()`.
pub fn store(paths: &Paths) -> DeclarationDir<Server> {
    DeclarationDir::new(paths.servers_dir())
}

/// Adds a new server: validated, then written atomically. An existing id is refused (change it with `set`).
pub fn add(store: &DeclarationDir<Server>, server: &Server) -> Result<PathBuf, ConfigError> {
    let path = store.path(&server.id)?;
    if path.exists() {
        return Err(ConfigError::Invalid {
            path,
            field: "id".into(),
            problem: format!(
                "{:?} already exists; change it with `homeboy server set {}`",
                server.id, server.id
            ),
            suggestion: None,
        });
    }
    store.put(server)
}

/// Adds the runner capability to server `id`, or updates it: `settings` (a JSON object of runner fields) is
/// merged over the existing runner config, or over the defaults when the server was not a runner yet.
/// Validated before anything is written. Returns the server and whether it just became a runner.
pub fn enable_runner(
    store: &DeclarationDir<Server>,
    id: &str,
    settings: Map<String, Value>,
) -> Result<(Server, bool), ConfigError> {
    let was_runner = store.get(id)?.runner.is_some();
    let patch = serde_json::json!({ "runner": Value::Object(settings) });
    let server = dynamic_set::update(store, id, &[Edit::MergePatch(patch)])?;
    Ok((server, !was_runner))
}

/// The runner status of `server`, or `None` when it is not a runner. With `check_secrets`, each `secret_env`
/// reference is resolved here (as the runner would) and only the outcome is kept.
pub fn runner_status(server: &Server, check_secrets: bool) -> Option<RunnerStatus> {
    let runner = server.runner.as_ref()?;
    let secret_checks = check_secrets.then(|| {
        runner
            .secret_env
            .iter()
            .map(|(name, reference)| {
                let outcome = secret_env::resolve(name, reference);
                SecretCheck {
                    name: name.clone(),
                    reference: reference.view(),
                    resolves: outcome.is_ok(),
                    error: outcome.err().map(|e| e.to_string()),
                }
            })
            .collect()
    });
    Some(RunnerStatus {
        server_id: server.id.clone(),
        name: server.name.clone(),
        destination: server.destination(),
        runner: runner.view(),
        secret_checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declarations::parse_json_fields;
    use serde_json::json;

    fn full() -> Value {
        json!({
            "id": "production",
            "name": "Production Server",
            "host": "example.com",
            "port": 2222,
            "user": "deploy",
            "identity_file": "/Users/dev/.ssh/id_rsa",
            "kind": "password-gated",
            "auth": {
                "mode": "key_plus_password_controlmaster",
                "control_path": "~/.ssh/controlmasters/%h-%p-%r",
                "persist": "1h30m"
            },
            "runner": {
                "workspace_root": "/home/deploy/Developer",
                "homeboy_path": "/usr/local/bin/homeboy",
                "daemon": true,
                "concurrency_limit": 4,
                "artifact_policy": "copy",
                "policy": {"snapshot_excludes": ["generated-state", "generated-state/**"]},
                "env": {"HOMEBOY_PUBLIC_ARTIFACT_BASE_URL": "https://artifacts.example.test"},
                "secret_env": {
                    "OPENAI_API_KEY": {"env": "OPENAI_API_KEY"},
                    "SERVICE_TOKEN": {"file": "~/.config/homeboy/secrets/service-token"}
                },
                "resources": {"cpus": 8, "labels": ["gpu"]}
            },
            "forward_agent": true
        })
    }

    fn parse(value: &Value) -> Result<Server, FieldError> {
        let server: Server = parse_json_fields(value.to_string().as_bytes())?;
        server.validate()?;
        Ok(server)
    }

    fn problem(value: Value) -> FieldError {
        parse(&value).expect_err("should be refused")
    }

    #[test]
    fn every_field_round_trips() {
        let server = parse(&full()).unwrap();
        assert_eq!(server.port, 2222);
        assert_eq!(server.auth.as_ref().unwrap().persist, "1h30m");
        let runner = server.runner.as_ref().unwrap();
        assert_eq!(runner.concurrency_limit, 4);
        assert!(runner.daemon);
        assert_eq!(runner.resources["cpus"], 8);
        assert_eq!(
            runner.secret_env["SERVICE_TOKEN"],
            SecretRef::File {
                file: "~/.config/homeboy/secrets/service-token".into()
            }
        );
        // Serialising gives back exactly the document we read, field for field.
        assert_eq!(serde_json::to_value(&server).unwrap(), full());
    }

    #[test]
    fn defaults() {
        let server = parse(&json!({"id": "s", "name": "S", "host": "h", "user": "u"})).unwrap();
        assert_eq!(server, Server::new("s", "S", "h", "u"));
        assert_eq!(server.port, 22);
        assert!(!server.forward_agent);
        assert_eq!(server.destination(), "u@h:22");
        let with_auth = parse(&json!({"id": "s", "name": "S", "host": "h", "user": "u",
            "auth": {"mode": "key_plus_password_controlmaster"}, "runner": {}}))
        .unwrap();
        let auth = with_auth.managed_session().unwrap();
        assert_eq!(auth.control_path, DEFAULT_CONTROL_PATH);
        assert_eq!(auth.persist, DEFAULT_PERSIST);
        assert_eq!(with_auth.runner.unwrap(), RunnerConfig::default());
        let written = serde_json::to_value(Server::new("s", "S", "h", "u")).unwrap();
        assert_eq!(
            written,
            json!({"id": "s", "name": "S", "host": "h", "port": 22, "user": "u", "forward_agent": false})
        );
    }

    #[test]
    fn each_validation_error_names_its_field() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!({"id": "s", "host": "h", "user": "u"}),
                "name",
                "required",
            ),
            (
                json!({"id": "s", "name": "S", "user": "u"}),
                "host",
                "required",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h"}),
                "user",
                "required",
            ),
            (
                json!({"name": "S", "host": "h", "user": "u"}),
                "id",
                "required",
            ),
            (
                json!({"id": "../x", "name": "S", "host": "h", "user": "u"}),
                "id",
                "invalid server id",
            ),
            (
                json!({"id": "s", "name": " ", "host": "h", "user": "u"}),
                "name",
                "empty",
            ),
            (
                json!({"id": "s", "name": "S", "host": "-oProxyCommand=x", "user": "u"}),
                "host",
                "'-'",
            ),
            (
                json!({"id": "s", "name": "S", "host": "a b", "user": "u"}),
                "host",
                "whitespace",
            ),
            (
                json!({"id": "s", "name": "S", "host": "u@h", "user": "u"}),
                "host",
                "hostname",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "-l"}),
                "user",
                "'-'",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "port": 0}),
                "port",
                "between 1 and 65535",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "port": 70000}),
                "port",
                "between 1 and 65535",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "port": "22"}),
                "port",
                "invalid type",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "identity_file": ""}),
                "identity_file",
                "empty",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "kind": "a\nb"}),
                "kind",
                "control",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "forward_agent": "yes"}),
                "forward_agent",
                "invalid type",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "auth": {"mode": "password"}}),
                "auth.mode",
                "unknown variant",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "auth": {"control_path": "/x"}}),
                "auth.mode",
                "required",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "auth": {"mode": "key_plus_password_controlmaster", "control_path": "rel/%h"}}),
                "auth.control_path",
                "absolute",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "auth": {"mode": "key_plus_password_controlmaster", "control_path": "none"}}),
                "auth.control_path",
                "control socket",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "auth": {"mode": "key_plus_password_controlmaster", "control_path": "/a b/%h"}}),
                "auth.control_path",
                "whitespace",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "auth": {"mode": "key_plus_password_controlmaster", "persist": "4 hours"}}),
                "auth.persist",
                "time",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"concurrency_limit": 0}}),
                "runner.concurrency_limit",
                "between 1",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"concurrency_limit": -1}}),
                "runner.concurrency_limit",
                "invalid value",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"workspace_root": ""}}),
                "runner.workspace_root",
                "empty",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"homeboy_path": ""}}),
                "runner.homeboy_path",
                "empty",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"artifact_policy": ""}}),
                "runner.artifact_policy",
                "empty",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"daemon": 1}}),
                "runner.daemon",
                "invalid type",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"policy": {"snapshot_excludes": ["/etc"]}}}),
                "runner.policy.snapshot_excludes[0]",
                "relative",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"policy": {"snapshot_excludes": ["a/../b"]}}}),
                "runner.policy.snapshot_excludes[0]",
                "relative",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"env": {"1BAD": "x"}}}),
                "runner.env.1BAD",
                "environment variable name",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"env": {"N": 3}}}),
                "runner.env.N",
                "invalid type",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"secret_env": {"T": "plaintext"}}}),
                "runner.secret_env.T",
                "invalid type",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"secret_env": {"T": {"env": "A", "file": "/b"}}}}),
                "runner.secret_env.T",
                "exactly one",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"secret_env": {"T": {"env": "A-B"}}}}),
                "runner.secret_env.T",
                "environment variable name",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"secret_env": {"T": {"file": "relative"}}}}),
                "runner.secret_env.T",
                "absolute",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"env": {"T": "x"}, "secret_env": {"T": {"env": "T"}}}}),
                "runner.secret_env.T",
                "also set",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"resources": []}}),
                "runner.resources",
                "invalid type",
            ),
        ];
        for (doc, field, words) in cases {
            let error = problem(doc.clone());
            assert_eq!(error.field, field, "{doc}: {error:?}");
            assert!(error.problem.contains(words), "{doc}: {error:?}");
        }
    }

    #[test]
    fn unknown_fields_suggest_the_nearest_name() {
        let cases = [
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "prot": 22}),
                "prot",
                "port",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "forward_agnet": true}),
                "forward_agnet",
                "forward_agent",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"concurency_limit": 2}}),
                "runner.concurency_limit",
                "concurrency_limit",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"secrets_env": {}}}),
                "runner.secrets_env",
                "secret_env",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "runner": {"policy": {"snapshot_exclude": []}}}),
                "runner.policy.snapshot_exclude",
                "snapshot_excludes",
            ),
            (
                json!({"id": "s", "name": "S", "host": "h", "user": "u", "auth": {"mode": "key_plus_password_controlmaster", "control_pth": "/x"}}),
                "auth.control_pth",
                "control_path",
            ),
        ];
        for (doc, field, suggestion) in cases {
            let error = problem(doc.clone());
            assert_eq!(error.field, field, "{doc}: {error:?}");
            assert_eq!(error.suggestion.as_deref(), Some(suggestion), "{doc}");
        }
        // A plaintext password has no place in the schema.
        let error = problem(json!({"id": "s", "name": "S", "host": "h", "user": "u",
            "auth": {"mode": "key_plus_password_controlmaster", "password": "x"}}));
        assert_eq!(error.field, "auth.password");
    }

    #[test]
    fn persist_values() {
        for ok in ["yes", "no", "4h", "30m", "1h30m", "600", "2d", "1w"] {
            assert!(is_persist(ok), "{ok}");
        }
        for bad in ["", "h", "4 h", "4x", "forever", "-1"] {
            assert!(!is_persist(bad), "{bad}");
        }
    }

    #[test]
    fn store_add_set_remove_and_atomicity() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("config"), dir.path().join("data"));
        let servers = store(&paths);
        let server = parse(&full()).unwrap();
        let path = add(&servers, &server).unwrap();
        assert_eq!(path, paths.servers_dir().join("production.json"));
        assert_eq!(servers.get("production").unwrap(), server);
        let again = add(&servers, &server).unwrap_err().to_string();
        assert!(again.contains("already exists"), "{again}");

        let before = std::fs::read(&path).unwrap();
        for edits in [
            vec![Edit::parse_field("port=0").unwrap()],
            vec![Edit::parse_field("runner.concurency_limit=3").unwrap()],
            vec![Edit::parse_merge_patch(r#"{"auth": {"persist": "forever"}}"#).unwrap()],
            vec![
                Edit::parse_field("name=Renamed").unwrap(),
                Edit::parse_field("runner.secret_env.X=plain").unwrap(),
            ],
        ] {
            let error = dynamic_set::update(&servers, "production", &edits).unwrap_err();
            let text = error.to_string();
            assert!(text.contains("production.json"), "{text}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                before,
                "{text}: file changed"
            );
        }
        let typo = dynamic_set::update(
            &servers,
            "production",
            &[Edit::parse_field("runner.concurency_limit=3").unwrap()],
        )
        .unwrap_err()
        .to_string();
        assert!(typo.contains("did you mean `concurrency_limit`"), "{typo}");

        let updated = dynamic_set::update(
            &servers,
            "production",
            &[Edit::parse_field("runner.concurrency_limit=8").unwrap()],
        )
        .unwrap();
        assert_eq!(updated.runner.unwrap().concurrency_limit, 8);
        assert!(servers.remove("production").unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn enabling_a_runner_keeps_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let servers = DeclarationDir::<Server>::new(dir.path());
        servers
            .put(&Server::new("lab", "Lab", "lab.local", "me"))
            .unwrap();
        let (server, became) = enable_runner(&servers, "lab", Map::new()).unwrap();
        assert!(became);
        assert_eq!(server.runner.unwrap(), RunnerConfig::default());
        let mut settings = Map::new();
        settings.insert("concurrency_limit".into(), json!(3));
        let (server, became) = enable_runner(&servers, "lab", settings).unwrap();
        assert!(!became);
        let runner = server.runner.unwrap();
        assert_eq!(runner.concurrency_limit, 3);
        assert_eq!(
            runner.workspace_root,
            RunnerConfig::default().workspace_root
        );
        let mut bad = Map::new();
        bad.insert("concurrency_limit".into(), json!(0));
        assert!(enable_runner(&servers, "lab", bad).is_err());
        assert_eq!(
            servers
                .get("lab")
                .unwrap()
                .runner
                .unwrap()
                .concurrency_limit,
            3
        );
    }

    /// Issue 16 item 1: a value typed where a reference or a string belongs is never quoted back, and the
    /// message names no Rust type.
    #[test]
    fn errors_never_quote_a_secret_value() {
        let base = || json!({"id": "s", "name": "S", "host": "h", "user": "u"});
        let mut cases = Vec::new();
        for runner in [
            json!({"secret_env": {"T": "plain-sk-live-1"}}),
            json!({"secret_env": {"T": {"env": "plain-sk-live-1"}}}),
            json!({"secret_env": {"T": {"file": "plain-sk-live-1"}}}),
            json!({"secret_env": {"T": 4242424242u64}}),
            json!({"env": {"API_TOKEN": 4242424242u64}}),
            json!({"env": {"API_TOKEN": ["plain-sk-live-1"]}}),
        ] {
            let mut doc = base();
            doc["runner"] = runner;
            cases.push(doc);
        }
        for doc in cases {
            let error = problem(doc.clone());
            let text = format!("{} {}", error.field, error.problem);
            assert!(text.starts_with("runner."), "{doc}: {text}");
            for leaked in ["plain-sk-live-1", "4242424242", "Raw", "struct"] {
                assert!(!text.contains(leaked), "{doc}: {text}");
            }
        }
        // Through `set`: `--json` and `--field`, the file untouched and the value nowhere in the error.
        let dir = tempfile::tempdir().unwrap();
        let servers = DeclarationDir::<Server>::new(dir.path());
        servers.put(&Server::new("s", "S", "h", "u")).unwrap();
        for edit in [
            Edit::parse_merge_patch(r#"{"runner": {"secret_env": {"T": "plain-sk-live-1"}}}"#)
                .unwrap(),
            Edit::parse_field("runner.secret_env.T=plain-sk-live-1").unwrap(),
            Edit::parse_field("runner.env.API_TOKEN=4242424242").unwrap(),
        ] {
            let text = dynamic_set::update(&servers, "s", &[edit])
                .unwrap_err()
                .to_string();
            assert!(text.contains("runner."), "{text}");
            for leaked in ["plain-sk-live-1", "4242424242", "Raw"] {
                assert!(!text.contains(leaked), "{text}");
            }
        }
        assert_eq!(servers.get("s").unwrap(), Server::new("s", "S", "h", "u"));
    }

    /// Issue 16 item 4: names credential scanners know, and URLs with user info under any name.
    #[test]
    fn views_redact_scanner_names_and_urls_with_user_info() {
        let mut server = parse(&full()).unwrap();
        let env = &mut server.runner.as_mut().unwrap().env;
        env.insert("GITHUB_PAT".into(), "ghp-visible-nowhere".into());
        env.insert(
            "DATABASE_URL".into(),
            "postgres://u:pw-visible-nowhere@h/db".into(),
        );
        env.insert("HTTP_AUTHORIZATION".into(), "Basic visible-nowhere".into());
        let shown = serde_json::to_string(&server.view()).unwrap()
            + &serde_json::to_string(&runner_status(&server, false)).unwrap();
        assert!(!shown.contains("visible-nowhere"), "{shown}");
        assert!(shown.contains(r#""DATABASE_URL":"[redacted]""#), "{shown}");
        assert!(shown.contains("https://artifacts.example.test"), "{shown}");
    }

    #[test]
    fn redaction_and_runner_status() {
        let mut server = parse(&full()).unwrap();
        let runner = server.runner.as_mut().unwrap();
        runner
            .env
            .insert("DEPLOY_TOKEN".into(), "tok-visible-nowhere".into());
        runner
            .env
            .insert("DB_PASSWORD".into(), "pw-visible-nowhere".into());
        let status = runner_status(&server, false).unwrap();
        let shown = serde_json::to_string(&status).unwrap()
            + &serde_json::to_string(&server.view()).unwrap();
        assert!(!shown.contains("tok-visible-nowhere"), "{shown}");
        assert!(!shown.contains("pw-visible-nowhere"), "{shown}");
        assert!(shown.contains("https://artifacts.example.test"));
        assert!(
            shown.contains(r#""SERVICE_TOKEN":{"file":"~/.config/homeboy/secrets/service-token"}"#)
        );
        assert!(status.secret_checks.is_none());
        let checked = runner_status(&server, true).unwrap();
        let checks = checked.secret_checks.unwrap();
        assert_eq!(checks.len(), 2);
        assert!(checks.iter().all(|c| c.error.is_some() != c.resolves));
        assert!(runner_status(&Server::new("s", "S", "h", "u"), false).is_none());
    }
}
