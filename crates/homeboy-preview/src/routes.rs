//! The durable route table: one record per preview session, `<config>/tunnel/preview-ingress/routes/<session>.json`,
//! written atomically (via `homeboy-config`'s declaration directories) by `preview-ingress route` and by the
//! ingress when a preview client registers.
//!
//! A record maps one public host to either an upstream origin the ingress proxies to directly
//! (`http://127.0.0.1:7331`) or, when `channel` is present, to the reverse channel of the preview client
//! that was granted the host (`upstream_origin` is then `reverse-channel://<client_id>`). Its lifecycle
//! state is `active`, `expired` (past `expires_at`) or `disconnected` (`active: false`, kept for
//! diagnostics). At most one record serves a host.

use std::path::PathBuf;

use homeboy_config::declarations::Listed;
use homeboy_config::{Declaration, DeclarationDir, FieldError, Paths};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::host::{Origin, normalize_host};
use crate::{PreviewError, clock};

/// The `upstream_origin` scheme of routes served over a reverse channel.
pub const CHANNEL_ORIGIN_PREFIX: &str = "reverse-channel://";

/// Where route records live: `<config>/tunnel/preview-ingress/routes`.
pub fn routes_dir(paths: &Paths) -> PathBuf {
    paths
        .config_dir()
        .join("tunnel")
        .join("preview-ingress")
        .join("routes")
}

/// One route record (wire contract: `{session_id, public_host, upstream_origin, expires_at?, active}`, plus
/// additive fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    pub session_id: String,
    pub public_host: String,
    pub upstream_origin: String,
    /// RFC 3339; past it the ingress answers 410 `expired_session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// False keeps the record for diagnostics: the ingress answers 410 `disconnected_session`.
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Present when a preview client holds the route over its reverse channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelGrantRecord>,
}

/// Who holds a reverse-channel route and under which grant (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelGrantRecord {
    pub client_id: String,
    /// The service declaration whose `policy.native_preview_auth` granted the claim.
    pub service_id: String,
    /// The id of the matched token entry, when a token was presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The client's local origin, as it reported it (informational: the ingress never connects to it).
    pub local_origin: String,
    /// The granted lease, in seconds; the lease ends at `expires_at`.
    pub ttl_secs: u64,
}

/// A route's lifecycle state and status view, and the route table's status report: the contract's types
/// (`homeboy_api::preview`).
pub use homeboy_api::preview::{InvalidRecord, RouteState, RouteStatus, RouteStatusReport};

impl RouteRecord {
    /// The state at `now`, from the record alone: inactive wins over expired.
    pub fn state_at(&self, now: OffsetDateTime) -> RouteState {
        if !self.active {
            RouteState::Disconnected
        } else if self.expired_at(now) {
            RouteState::Expired
        } else {
            RouteState::Active
        }
    }

    /// Whether `expires_at` has passed.
    pub fn expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at
            .as_deref()
            .and_then(clock::parse)
            .is_some_and(|t| t <= now)
    }

    /// `direct` or `reverse_channel`.
    pub fn transport(&self) -> &'static str {
        if self.channel.is_some() {
            "reverse_channel"
        } else {
            "direct"
        }
    }
}

impl Declaration for RouteRecord {
    const KIND: &'static str = "preview route";

    fn id(&self) -> &str {
        &self.session_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        match normalize_host(&self.public_host) {
            Ok(host) if host == self.public_host => {}
            Ok(host) => {
                return Err(FieldError::new(
                    "public_host",
                    format!("must be written in normal form {host:?}"),
                ));
            }
            Err(problem) => return Err(FieldError::new("public_host", problem)),
        }
        if self.channel.is_some() {
            if !self.upstream_origin.starts_with(CHANNEL_ORIGIN_PREFIX) {
                return Err(FieldError::new(
                    "upstream_origin",
                    format!("must start with {CHANNEL_ORIGIN_PREFIX} on a reverse-channel route"),
                ));
            }
        } else {
            check_upstream_origin(&self.upstream_origin)
                .map_err(|p| FieldError::new("upstream_origin", p))?;
        }
        for (field, value) in [
            ("expires_at", &self.expires_at),
            ("created_at", &self.created_at),
            ("updated_at", &self.updated_at),
        ] {
            if let Some(v) = value
                && clock::parse(v).is_none()
            {
                return Err(FieldError::new(
                    field,
                    format!("{v:?} is not an RFC 3339 timestamp"),
                ));
            }
        }
        Ok(())
    }
}

/// An upstream origin the ingress can proxy to: plain `http://host:port` (the ingress runs behind the
/// operator's TLS proxy and talks to local or private upstreams).
pub fn check_upstream_origin(url: &str) -> Result<Origin, String> {
    let origin = Origin::parse(url)?;
    if origin.https {
        return Err(format!(
            "{url:?}: upstream origins are plain http:// (TLS ends at the operator's proxy)"
        ));
    }
    Ok(origin)
}

/// What `preview-ingress route` asks for.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub session_id: String,
    pub public_host: String,
    pub upstream_origin: String,
    pub expires_at: Option<String>,
    pub inactive: bool,
}

/// The route records of one homeboy config dir.
pub struct RouteStore {
    dir: DeclarationDir<RouteRecord>,
}

impl RouteStore {
    /// The store at [`routes_dir`].
    pub fn new(paths: &Paths) -> Self {
        Self::at(routes_dir(paths))
    }

    /// A store in an explicit directory.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        RouteStore {
            dir: DeclarationDir::new(dir),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.dir()
    }

    /// Every record (sorted by session id); a record that does not parse is listed with its error.
    pub fn list(&self) -> Result<Vec<Listed<RouteRecord>>, PreviewError> {
        Ok(self.dir.list()?)
    }

    /// The readable records.
    pub fn records(&self) -> Result<Vec<RouteRecord>, PreviewError> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|l| l.item.ok())
            .collect())
    }

    /// The record of `session_id`, if any.
    pub fn get(&self, session_id: &str) -> Result<Option<RouteRecord>, PreviewError> {
        Ok(self.dir.get_opt(session_id)?)
    }

    /// Validates and writes `record` (atomically; nothing is written when validation fails).
    pub fn put(&self, record: &RouteRecord) -> Result<(), PreviewError> {
        self.dir.put(record)?;
        Ok(())
    }

    /// Removes the record of `session_id`; false if there was none.
    pub fn remove(&self, session_id: &str) -> Result<bool, PreviewError> {
        Ok(self.dir.remove(session_id)?)
    }

    /// `preview-ingress route`: registers or replaces the direct route of a session. Refuses a host that
    /// another session's record serves.
    pub fn route(&self, spec: &RouteSpec) -> Result<RouteRecord, PreviewError> {
        homeboy_config::declarations::validate_id(RouteRecord::KIND, &spec.session_id)?;
        let public_host = normalize_host(&spec.public_host)
            .map_err(|p| PreviewError::invalid("--public-host", p))?;
        let origin = check_upstream_origin(&spec.upstream_origin)
            .map_err(|p| PreviewError::invalid("--upstream-origin", p))?;
        if let Some(expires_at) = &spec.expires_at
            && clock::parse(expires_at).is_none()
        {
            return Err(PreviewError::invalid(
                "--expires-at",
                format!("{expires_at:?} is not an RFC 3339 timestamp such as 2026-06-12T03:30:00Z"),
            ));
        }
        if let Some(holder) = self
            .records()?
            .into_iter()
            .find(|r| r.public_host == public_host && r.session_id != spec.session_id)
        {
            return Err(PreviewError::HostTaken {
                host: public_host,
                session_id: holder.session_id,
            });
        }
        let now = clock::rfc3339(clock::now());
        let created_at = self
            .get(&spec.session_id)?
            .and_then(|old| old.created_at)
            .unwrap_or_else(|| now.clone());
        let record = RouteRecord {
            session_id: spec.session_id.clone(),
            public_host,
            upstream_origin: origin.url(),
            expires_at: spec.expires_at.clone(),
            active: !spec.inactive,
            created_at: Some(created_at),
            updated_at: Some(now),
            channel: None,
        };
        self.put(&record)?;
        Ok(record)
    }

    /// `preview-ingress unroute`: removes a session's record.
    pub fn unroute(&self, session_id: &str) -> Result<RouteRecord, PreviewError> {
        let record = self
            .get(session_id)?
            .ok_or_else(|| PreviewError::RouteNotFound {
                session_id: session_id.to_string(),
            })?;
        self.remove(session_id)?;
        Ok(record)
    }

    /// `preview-ingress status`: each record with its lifecycle state now, and unreadable files.
    pub fn status(&self) -> Result<RouteStatusReport, PreviewError> {
        let now = clock::now();
        let mut routes = Vec::new();
        let mut invalid = Vec::new();
        for listed in self.list()? {
            match listed.item {
                Ok(record) => routes.push(route_status(&record, record.state_at(now))),
                Err(e) => invalid.push(InvalidRecord {
                    session_id: listed.id,
                    problem: e.to_string(),
                }),
            }
        }
        Ok(RouteStatusReport {
            routes_dir: self.dir().display().to_string(),
            checked_at: clock::rfc3339(now),
            routes,
            invalid_records: invalid,
        })
    }
}

/// The status line of `record` in `state`.
pub fn route_status(record: &RouteRecord, state: RouteState) -> RouteStatus {
    RouteStatus {
        session_id: record.session_id.clone(),
        public_host: record.public_host.clone(),
        upstream_origin: record.upstream_origin.clone(),
        state,
        active: record.active,
        transport: record.transport().into(),
        expires_at: record.expires_at.clone(),
        client_id: record.channel.as_ref().map(|c| c.client_id.clone()),
        updated_at: record.updated_at.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(session: &str, host: &str) -> RouteSpec {
        RouteSpec {
            session_id: session.into(),
            public_host: host.into(),
            upstream_origin: "http://127.0.0.1:7331".into(),
            expires_at: None,
            inactive: false,
        }
    }

    #[test]
    fn route_unroute_and_host_uniqueness() {
        let dir = tempfile::tempdir().unwrap();
        let store = RouteStore::at(dir.path());
        let r = store.route(&spec("run-1", "Run-1.Preview.Test")).unwrap();
        assert_eq!(r.public_host, "run-1.preview.test");
        assert!(r.active && r.created_at.is_some());
        // Replacing the same session keeps created_at.
        let mut again = spec("run-1", "run-1.preview.test");
        again.inactive = true;
        let r2 = store.route(&again).unwrap();
        assert_eq!(r2.created_at, r.created_at);
        assert_eq!(r2.state_at(clock::now()), RouteState::Disconnected);
        // Another session may not take the host.
        let err = store
            .route(&spec("run-2", "run-1.preview.test"))
            .unwrap_err();
        assert!(matches!(err, PreviewError::HostTaken { .. }), "{err}");
        assert!(err.is_refused_input());
        assert_eq!(store.records().unwrap().len(), 1);
        store.unroute("run-1").unwrap();
        assert!(matches!(
            store.unroute("run-1").unwrap_err(),
            PreviewError::RouteNotFound { .. }
        ));
    }

    #[test]
    fn bad_specs_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = RouteStore::at(dir.path());
        let mut s = spec("run-1", "*.preview.test");
        assert!(store.route(&s).is_err());
        s.public_host = "run-1.preview.test".into();
        s.upstream_origin = "https://127.0.0.1:1".into();
        assert!(store.route(&s).is_err());
        s.upstream_origin = "http://127.0.0.1:1".into();
        s.expires_at = Some("tomorrow".into());
        assert!(store.route(&s).is_err());
        let bad_id = spec("../x", "a.preview.test");
        assert!(store.route(&bad_id).unwrap_err().is_refused_input());
        assert!(store.records().unwrap().is_empty());
    }

    #[test]
    fn states() {
        let dir = tempfile::tempdir().unwrap();
        let store = RouteStore::at(dir.path());
        let mut s = spec("old", "old.preview.test");
        s.expires_at = Some("2000-01-01T00:00:00Z".into());
        store.route(&s).unwrap();
        store.route(&spec("new", "new.preview.test")).unwrap();
        std::fs::write(dir.path().join("broken.json"), b"{").unwrap();
        let report = store.status().unwrap();
        let states: Vec<_> = report
            .routes
            .iter()
            .map(|r| (r.session_id.as_str(), r.state))
            .collect();
        assert_eq!(
            states,
            vec![("new", RouteState::Active), ("old", RouteState::Expired)]
        );
        assert_eq!(report.invalid_records.len(), 1);
        assert_eq!(report.invalid_records[0].session_id, "broken");
    }
}
