//! Runner credentials and sessions in the database, so every broker sharing it authenticates the same
//! runners: [`CredentialStore`] on [`PgJobStore`].
//!
//! Minting and judging are `homeboy_config::broker_auth`'s ([`mint`], [`judge`]), the same as the file
//! store's: a token is looked up by its SHA-256 digest (an index read; the digest of a high-entropy token
//! says nothing about it) and the rows found are judged in constant time. Nothing is cached, so a revoke
//! at one broker refuses the token at every broker from the next request on.

use homeboy_api::jobs::RunnerSession;
use homeboy_config::ConfigError;
use homeboy_config::broker_auth::{
    BrokerCredentials, Credential, CredentialStore, Denial, Scope, judge, mint, token_digest,
};
use homeboy_jobs::JobError;

use crate::PgJobStore;
use crate::db::{Conn, classify, prepared};

const INSERT_CREDENTIAL: &str = "
INSERT INTO homeboy_broker_credentials (id, runner_id, token_sha256, revoked, record)
VALUES ($1, $2, $3, false, $4::text::json)";
const BY_DIGEST: &str =
    "SELECT record::text FROM homeboy_broker_credentials WHERE token_sha256 = $1 AND NOT revoked";
const ALL: &str = "SELECT record::text FROM homeboy_broker_credentials ORDER BY seq";
const LOAD_ONE: &str = "SELECT record::text FROM homeboy_broker_credentials WHERE id = $1";
const REVOKE: &str = "
UPDATE homeboy_broker_credentials SET revoked = true, record = $2::text::json
WHERE id = $1 AND NOT revoked";
const INSERT_SESSION: &str = "
WITH s AS (
    INSERT INTO homeboy_runner_sessions (id, runner_id, created_at_ms, record)
    VALUES ($1, $2, $3, $4::text::json)
)
-- The statement's snapshot does not see the new row: keep the newest $5 - 1 old ones besides it.
DELETE FROM homeboy_runner_sessions WHERE id IN (
    SELECT id FROM homeboy_runner_sessions ORDER BY created_at_ms DESC OFFSET ($5::bigint - 1)
)";

/// Runner sessions kept (the newest; they are informational only).
pub const MAX_SESSIONS: i64 = 256;

/// A store error as the credential store's error (a lost database stays "unavailable").
fn config_error(e: JobError) -> ConfigError {
    match e {
        JobError::Unavailable(text) => ConfigError::Unavailable(text),
        other => ConfigError::Backend(other.to_string()),
    }
}

fn parse(text: String) -> Result<Credential, JobError> {
    serde_json::from_str(&text)
        .map_err(|e| JobError::Storage(format!("a stored credential does not parse: {e}")))
}

fn to_text(value: &impl serde::Serialize) -> Result<String, JobError> {
    serde_json::to_string(value).map_err(|e| JobError::Storage(e.to_string()))
}

async fn rows(c: &Conn, sql: &str, param: Option<&str>) -> Result<Vec<Credential>, JobError> {
    let statement = prepared(c, sql).await?;
    let found = match param {
        Some(p) => c.query(&statement, &[&p]).await,
        None => c.query(&statement, &[]).await,
    }
    .map_err(classify)?;
    found.into_iter().map(|r| parse(r.get(0))).collect()
}

impl CredentialStore for PgJobStore {
    fn pair(&self, runner_id: &str, scopes: &[Scope]) -> Result<(Credential, String), ConfigError> {
        let (credential, token) = mint(runner_id, scopes)?;
        let record = to_text(&credential).map_err(config_error)?;
        self.with(async |c: &Conn| {
            let statement = prepared(c, INSERT_CREDENTIAL).await?;
            c.execute(
                &statement,
                &[
                    &credential.id,
                    &credential.runner_id,
                    &credential.token_sha256,
                    &record,
                ],
            )
            .await
            .map_err(classify)
        })
        .map_err(config_error)?;
        Ok((credential, token))
    }

    fn revoke(&self, id: &str) -> Result<Credential, ConfigError> {
        self.with(async |c: &Conn| {
            let Some(mut credential) = rows(c, LOAD_ONE, Some(id)).await?.pop() else {
                return Ok(None);
            };
            if credential.revoked_at.is_none() {
                credential.revoked_at = Some(homeboy_config::clock::now_rfc3339());
                let statement = prepared(c, REVOKE).await?;
                let changed = c
                    .execute(&statement, &[&id, &to_text(&credential)?])
                    .await
                    .map_err(classify)?;
                if changed == 0 {
                    // Revoked meanwhile by someone else: theirs is the revocation time.
                    return Ok(rows(c, LOAD_ONE, Some(id)).await?.pop());
                }
            }
            Ok(Some(credential))
        })
        .map_err(config_error)?
        .ok_or_else(|| ConfigError::NotFound {
            kind: "broker credential",
            id: id.to_string(),
        })
    }

    fn load(&self) -> Result<BrokerCredentials, ConfigError> {
        let credentials = self
            .with(async |c: &Conn| rows(c, ALL, None).await)
            .map_err(config_error)?;
        Ok(BrokerCredentials { credentials })
    }

    fn verify(
        &self,
        token: Option<&str>,
        scope: Scope,
        runner_id: Option<&str>,
    ) -> Result<Result<Credential, Denial>, ConfigError> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(Err(Denial::MissingToken));
        };
        let digest = token_digest(token);
        let found = self
            .with(async |c: &Conn| rows(c, BY_DIGEST, Some(&digest)).await)
            .map_err(config_error)?;
        Ok(judge(&found, Some(token), scope, runner_id))
    }

    fn record_session(&self, session: &RunnerSession) -> Result<bool, ConfigError> {
        let record = to_text(session).map_err(config_error)?;
        let created = i64::try_from(session.created_at_ms).unwrap_or(i64::MAX);
        self.with(async |c: &Conn| {
            let statement = prepared(c, INSERT_SESSION).await?;
            c.execute(
                &statement,
                &[
                    &session.id,
                    &session.runner_id,
                    &created,
                    &record,
                    &MAX_SESSIONS,
                ],
            )
            .await
            .map_err(classify)
        })
        .map_err(config_error)?;
        Ok(true)
    }

    fn describe(&self) -> String {
        self.dsn().to_string()
    }
}
