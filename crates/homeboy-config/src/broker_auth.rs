//! Broker pairing: runner and controller credentials in `<config>/broker_auth.json`.
//!
//! `pair` mints a high-entropy token, returns it once, and stores only its SHA-256 digest with the
//! credential's id, runner id, scopes and creation time. `verify` checks a presented token against every
//! unrevoked credential in constant time per comparison and answers with the matching credential or the
//! reason for refusal (never the token). The file is rewritten atomically; readers re-read it when it
//! changes, so `pair` and `revoke` take effect on a running broker without a restart.
//!
//! [`CredentialStore`] is the seam a broker authenticates through: the file above for one broker, or a
//! database shared by several brokers (`homeboy-jobs-pg`), so a runner paired through one broker
//! authenticates at any other. Both mint with [`mint`] and judge with [`judge`]: one implementation of the
//! token, the digest and the constant-time check.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ConfigError;
use crate::secrets;
use homeboy_api::jobs::RunnerSession;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Submit jobs for its runner (`POST /runner/jobs`).
    Submit,
    /// Register sessions, claim, heartbeat, stream events and finish as its runner.
    Work,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Submit => "submit",
            Scope::Work => "work",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        match text.trim() {
            "submit" => Some(Scope::Submit),
            "work" => Some(Scope::Work),
            _ => None,
        }
    }
}

/// One stored credential (no token, only its digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub id: String,
    pub runner_id: String,
    pub token_sha256: String,
    pub scopes: Vec<Scope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    pub created_at: String,
}

/// The file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerCredentials {
    #[serde(default)]
    pub credentials: Vec<Credential>,
}

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No token was presented.
    MissingToken,
    /// No unrevoked credential has this token.
    UnknownToken,
    /// The credential lacks the scope.
    MissingScope,
    /// The credential belongs to another runner id.
    RunnerMismatch,
}

impl Denial {
    /// A sentence for the error message (never mentions the token).
    pub fn explain(self) -> &'static str {
        match self {
            Denial::MissingToken => {
                "no broker token: send `Authorization: Bearer <token>` or `x-homeboy-broker-token`"
            }
            Denial::UnknownToken => "the broker token is unknown or revoked",
            Denial::MissingScope => "the broker token does not have the scope this route needs",
            Denial::RunnerMismatch => "the broker token was paired for another runner id",
        }
    }

    /// A stable machine-readable reason.
    pub fn reason(self) -> &'static str {
        match self {
            Denial::MissingToken => "missing_token",
            Denial::UnknownToken => "unknown_token",
            Denial::MissingScope => "missing_scope",
            Denial::RunnerMismatch => "runner_mismatch",
        }
    }
}

/// Modification time and size of the credentials file (`None` when it does not exist).
type FileStamp = Option<(SystemTime, u64)>;

/// `<config>/broker_auth.json`, with a cache keyed on the file's modification time and size.
pub struct BrokerAuthFile {
    path: PathBuf,
    cache: Mutex<Option<(FileStamp, BrokerCredentials)>>,
}

impl BrokerAuthFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        BrokerAuthFile {
            path: path.into(),
            cache: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credentials as on disk now (an absent file has none).
    pub fn load(&self) -> Result<BrokerCredentials, ConfigError> {
        Ok(crate::read_json_opt(&self.path)?.unwrap_or_default())
    }

    /// Mints a token for `runner_id` with `scopes`, stores its digest, and returns the credential and the
    /// token. The token is shown to the caller once and never again.
    pub fn pair(
        &self,
        runner_id: &str,
        scopes: &[Scope],
    ) -> Result<(Credential, String), ConfigError> {
        let (credential, token) = mint(runner_id, scopes).map_err(|e| match e {
            ConfigError::Io { action, source, .. } => ConfigError::Io {
                action,
                path: self.path.clone(),
                source,
            },
            other => other,
        })?;
        let mut all = self.load()?;
        all.credentials.push(credential.clone());
        crate::write_json_atomic(&self.path, &all)?;
        Ok((credential, token))
    }

    /// Marks credential `id` revoked. Returns it, or `NotFound`.
    pub fn revoke(&self, id: &str) -> Result<Credential, ConfigError> {
        let mut all = self.load()?;
        let credential = all
            .credentials
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| ConfigError::NotFound {
                kind: "broker credential",
                id: id.to_string(),
            })?;
        if credential.revoked_at.is_none() {
            credential.revoked_at = Some(crate::clock::now_rfc3339());
        }
        let revoked = credential.clone();
        crate::write_json_atomic(&self.path, &all)?;
        Ok(revoked)
    }

    /// Checks a presented token for `scope` on behalf of `runner_id` (when the route names one).
    pub fn verify(
        &self,
        token: Option<&str>,
        scope: Scope,
        runner_id: Option<&str>,
    ) -> Result<Result<Credential, Denial>, ConfigError> {
        if token.is_none_or(str::is_empty) {
            return Ok(Err(Denial::MissingToken));
        }
        let credentials = self.cached()?;
        Ok(judge(&credentials.credentials, token, scope, runner_id))
    }

    fn cached(&self) -> Result<BrokerCredentials, ConfigError> {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached_stamp, credentials)) = cache.as_ref()
            && *cached_stamp == stamp
        {
            return Ok(credentials.clone());
        }
        let credentials = self.load()?;
        *cache = Some((stamp, credentials.clone()));
        Ok(credentials)
    }
}

/// A new credential for `runner_id` with `scopes` (sorted, deduplicated) and its token, which only the
/// caller ever sees: the credential holds the token's SHA-256 digest.
pub fn mint(runner_id: &str, scopes: &[Scope]) -> Result<(Credential, String), ConfigError> {
    crate::declarations::validate_id("runner", runner_id)?;
    let random = |action: &'static str, e: String| ConfigError::Io {
        action,
        path: PathBuf::new(),
        source: std::io::Error::other(e),
    };
    let token =
        secrets::generate_token("hbk_").map_err(|e| random("generate a token", e.to_string()))?;
    let id = format!(
        "cred_{}",
        secrets::random_hex(6).map_err(|e| random("generate an id", e.to_string()))?
    );
    let mut scopes = scopes.to_vec();
    scopes.sort_by_key(|s| s.as_str());
    scopes.dedup();
    let credential = Credential {
        id,
        runner_id: runner_id.to_string(),
        token_sha256: secrets::sha256_hex(&token),
        scopes,
        revoked_at: None,
        created_at: crate::clock::now_rfc3339(),
    };
    Ok((credential, token))
}

/// The digest [`Credential::token_sha256`] holds for `token` (what a database looks a token up by).
pub fn token_digest(token: &str) -> String {
    secrets::sha256_hex(token)
}

/// Checks a presented token for `scope` on behalf of `runner_id` (when the route names one) against
/// `credentials`: each digest is compared in constant time, revoked credentials never match.
pub fn judge(
    credentials: &[Credential],
    token: Option<&str>,
    scope: Scope,
    runner_id: Option<&str>,
) -> Result<Credential, Denial> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(Denial::MissingToken);
    };
    let presented = Sha256::digest(token.as_bytes());
    let mut matched: Option<&Credential> = None;
    for credential in credentials {
        let Ok(stored) = hex::decode(&credential.token_sha256) else {
            continue;
        };
        let equal: bool =
            stored.len() == presented.len() && bool::from(presented.as_slice().ct_eq(&stored));
        if equal && credential.revoked_at.is_none() {
            matched = Some(credential);
        }
    }
    let Some(credential) = matched else {
        return Err(Denial::UnknownToken);
    };
    if !credential.scopes.contains(&scope) {
        return Err(Denial::MissingScope);
    }
    if runner_id.is_some_and(|r| r != credential.runner_id) {
        return Err(Denial::RunnerMismatch);
    }
    Ok(credential.clone())
}

/// Where a broker's runner credentials and sessions live: `<config>/broker_auth.json` for one broker
/// ([`BrokerAuthFile`]), or the database several brokers share. `pair` and `revoke` take effect on every
/// broker reading the same store from its next request on.
pub trait CredentialStore: Send + Sync {
    /// Mints a token for `runner_id` with `scopes`, stores its digest, and returns the credential and the
    /// token (shown once).
    fn pair(&self, runner_id: &str, scopes: &[Scope]) -> Result<(Credential, String), ConfigError>;
    /// Marks credential `id` revoked. Returns it, or `NotFound`.
    fn revoke(&self, id: &str) -> Result<Credential, ConfigError>;
    /// Every credential, oldest first (digests only).
    fn load(&self) -> Result<BrokerCredentials, ConfigError>;
    /// Checks a presented token (see [`judge`]).
    fn verify(
        &self,
        token: Option<&str>,
        scope: Scope,
        runner_id: Option<&str>,
    ) -> Result<Result<Credential, Denial>, ConfigError>;
    /// Records a runner session where every broker sharing the store sees it. `Ok(false)`: this store
    /// keeps no sessions (the broker keeps them in memory).
    fn record_session(&self, _session: &RunnerSession) -> Result<bool, ConfigError> {
        Ok(false)
    }
    /// How the store is shown in a status line (never with a password).
    fn describe(&self) -> String;
}

impl CredentialStore for BrokerAuthFile {
    fn pair(&self, runner_id: &str, scopes: &[Scope]) -> Result<(Credential, String), ConfigError> {
        BrokerAuthFile::pair(self, runner_id, scopes)
    }
    fn revoke(&self, id: &str) -> Result<Credential, ConfigError> {
        BrokerAuthFile::revoke(self, id)
    }
    fn load(&self) -> Result<BrokerCredentials, ConfigError> {
        BrokerAuthFile::load(self)
    }
    fn verify(
        &self,
        token: Option<&str>,
        scope: Scope,
        runner_id: Option<&str>,
    ) -> Result<Result<Credential, Denial>, ConfigError> {
        BrokerAuthFile::verify(self, token, scope, runner_id)
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let file = BrokerAuthFile::new(dir.path().join("broker_auth.json"));
        let (worker, token) = file.pair("lab-1", &[Scope::Work]).unwrap();
        let (submitter, submit_token) =
            file.pair("lab-1", &[Scope::Submit, Scope::Submit]).unwrap();
        assert_eq!(submitter.scopes, vec![Scope::Submit]);
        let on_disk = std::fs::read_to_string(file.path()).unwrap();
        assert!(!on_disk.contains(&token) && !on_disk.contains(&submit_token));
        assert!(on_disk.contains(&worker.token_sha256));

        assert_eq!(
            file.verify(Some(&token), Scope::Work, Some("lab-1"))
                .unwrap()
                .unwrap()
                .id,
            worker.id
        );
        assert_eq!(
            file.verify(None, Scope::Work, None).unwrap(),
            Err(Denial::MissingToken)
        );
        assert_eq!(
            file.verify(Some("hbk_wrong"), Scope::Work, None).unwrap(),
            Err(Denial::UnknownToken)
        );
        assert_eq!(
            file.verify(Some(&token), Scope::Submit, None).unwrap(),
            Err(Denial::MissingScope)
        );
        assert_eq!(
            file.verify(Some(&token), Scope::Work, Some("lab-2"))
                .unwrap(),
            Err(Denial::RunnerMismatch)
        );

        file.revoke(&worker.id).unwrap();
        assert_eq!(
            file.verify(Some(&token), Scope::Work, None).unwrap(),
            Err(Denial::UnknownToken)
        );
        assert!(
            file.verify(Some(&submit_token), Scope::Submit, Some("lab-1"))
                .unwrap()
                .is_ok()
        );
        assert!(matches!(
            file.revoke("cred_nope"),
            Err(ConfigError::NotFound { .. })
        ));
        assert!(file.pair("../evil", &[Scope::Work]).is_err());
    }
}
