//! Native preview auth: whether a preview client may claim a public host/session and forward requests to a
//! loopback origin, judged against `policy.native_preview_auth` of the service tunnel declarations.
//!
//! A claim is granted only when every check passes: the token hashes (compared in constant time) to a
//! configured digest that is neither revoked nor expired; the matched token allows the `client_id`; the
//! `public_host` matches the service's and the token's host scopes (exact names or globs; at least one
//! scope must exist); the `session_id` matches both session scopes when they are configured; the
//! `local_origin` is an HTTP(S) loopback origin. The lease is the requested TTL (else the policy default),
//! capped by `max_session_ttl_secs` and by the token's own expiry. A refusal names the failing claim and
//! never echoes the token.

use homeboy_config::secrets::token_matches_digest;
use homeboy_config::tunnel_services::{NativePreviewAuth, PreviewToken, TunnelService};
use homeboy_config::{DeclarationDir, Paths};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::host::{Origin, glob_matches};
use crate::{PreviewError, clock};

/// The claims a registration is judged on, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    Token,
    ClientId,
    PublicHost,
    SessionId,
    LocalOrigin,
}

impl Claim {
    pub fn as_str(self) -> &'static str {
        match self {
            Claim::Token => "token",
            Claim::ClientId => "client_id",
            Claim::PublicHost => "public_host",
            Claim::SessionId => "session_id",
            Claim::LocalOrigin => "local_origin",
        }
    }
}

/// A refused claim: which one and why (safe to show the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub claim: Claim,
    pub problem: String,
}

impl Denial {
    fn new(claim: Claim, problem: impl Into<String>) -> Self {
        Denial {
            claim,
            problem: problem.into(),
        }
    }
}

/// What a preview client asks for. `public_host` is already normalised by the caller.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub token: Option<&'a str>,
    pub client_id: &'a str,
    pub public_host: &'a str,
    pub session_id: &'a str,
    pub local_origin: &'a str,
    /// Requested lease; `None` takes the policy default. Must be at least 1 (the caller checks).
    pub requested_ttl_secs: Option<u64>,
}

/// A granted claim and its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub service_id: String,
    /// The matched token entry, when a token was presented.
    pub token_id: Option<String>,
    /// Its digest, so later channel calls can be checked against the same token.
    pub token_sha256: Option<String>,
    pub ttl_secs: u64,
    pub requested_ttl_secs: Option<u64>,
    /// Why the lease is shorter than asked (`max_session_ttl_secs`, `token_expires_at`), if it is.
    pub capped_by: Option<&'static str>,
    pub expires_at: OffsetDateTime,
    /// The granting policy's `max_sessions_per_token` and `max_sessions_per_client`.
    pub max_sessions_per_token: u32,
    pub max_sessions_per_client: u32,
}

/// A service declaration that could not be read while loading the policies: its id and why (the problem
/// names the file). Shown to the operator — in the ingress log and to callers on the machine — never to a
/// public caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenDeclaration {
    pub service: String,
    pub problem: String,
}

/// The native preview auth policies the ingress enforces: one per service declaration.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<(String, NativePreviewAuth)>,
    broken: Vec<BrokenDeclaration>,
}

impl PolicySet {
    /// Policies from explicit `(service id, policy)` pairs.
    pub fn new(policies: Vec<(String, NativePreviewAuth)>) -> Self {
        PolicySet {
            policies,
            broken: Vec::new(),
        }
    }

    /// Loads the policies from the service declarations in `paths.tunnel_services_dir()`: the named
    /// `services` (each must exist and declare `policy.native_preview_auth`), or, when none are named,
    /// every declaration that has one. Read at every registration, so revocations apply at once. A
    /// declaration that does not parse is kept aside ([`PolicySet::broken`]) rather than failing the others.
    pub fn load(paths: &Paths, services: &[String]) -> Result<PolicySet, PreviewError> {
        let dir: DeclarationDir<TunnelService> = DeclarationDir::new(paths.tunnel_services_dir());
        let mut policies = Vec::new();
        let mut broken = Vec::new();
        if services.is_empty() {
            for listed in dir.list()? {
                // A broken declaration must not lock every client out of the others.
                match listed.item {
                    Ok(service) => {
                        if let Some(auth) = service.policy.native_preview_auth {
                            policies.push((service.id, auth));
                        }
                    }
                    Err(problem) => broken.push(BrokenDeclaration {
                        service: listed.id,
                        problem: problem.to_string(),
                    }),
                }
            }
        } else {
            for id in services {
                let service = dir.get_opt(id)?.ok_or_else(|| PreviewError::Policy {
                    service: id.clone(),
                    problem: format!("is not declared (no {}/{id}.json)", dir.dir().display()),
                })?;
                let auth =
                    service
                        .policy
                        .native_preview_auth
                        .ok_or_else(|| PreviewError::Policy {
                            service: id.clone(),
                            problem: "has no policy.native_preview_auth".into(),
                        })?;
                policies.push((service.id, auth));
            }
        }
        Ok(PolicySet { policies, broken })
    }

    /// The declarations that could not be read (only when every declaration is considered).
    pub fn broken(&self) -> &[BrokenDeclaration] {
        &self.broken
    }

    /// Whether any policy is configured.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Judges a claim: the first service that grants it wins; otherwise the refusal that got furthest
    /// through the checks (the most specific one) is returned.
    pub fn authorize(&self, req: &ClaimRequest<'_>, now: OffsetDateTime) -> Result<Grant, Denial> {
        if self.policies.is_empty() {
            return Err(Denial::new(
                Claim::Token,
                "no service declares policy.native_preview_auth, so no client can be granted a preview host",
            ));
        }
        let mut best: Option<Denial> = None;
        for (service_id, policy) in &self.policies {
            match authorize_one(service_id, policy, req, now) {
                Ok(grant) => return Ok(grant),
                Err(denial) => {
                    if best.as_ref().is_none_or(|b| denial.claim > b.claim) {
                        best = Some(denial);
                    }
                }
            }
        }
        Err(best.expect("at least one policy"))
    }
}

fn authorize_one(
    service_id: &str,
    policy: &NativePreviewAuth,
    req: &ClaimRequest<'_>,
    now: OffsetDateTime,
) -> Result<Grant, Denial> {
    let token = match_token(policy, req.token, now)?;
    if let Some(token) = token
        && !token.allowed_clients.is_empty()
        && !token.allowed_clients.iter().any(|c| c == req.client_id)
    {
        return Err(Denial::new(
            Claim::ClientId,
            format!("client {:?} is not allowed by the token", req.client_id),
        ));
    }
    check_host_scopes(policy, token, req.public_host)?;
    check_session_scopes(policy, token, req.session_id)?;
    check_local_origin(req.local_origin)?;
    let (ttl_secs, capped_by) = lease_ttl(policy, token, req.requested_ttl_secs, now);
    Ok(Grant {
        service_id: service_id.to_string(),
        token_id: token.map(|t| t.id.clone()),
        token_sha256: token.map(|t| t.token_sha256.to_ascii_lowercase()),
        ttl_secs,
        requested_ttl_secs: req.requested_ttl_secs,
        capped_by,
        expires_at: now.saturating_add(Duration::seconds(ttl_secs as i64)),
        max_sessions_per_token: policy.max_sessions_per_token,
        max_sessions_per_client: policy.max_sessions_per_client,
    })
}

/// The token entry the presented token hashes to. Every entry is compared (each in constant time), so the
/// time taken does not depend on which entry, if any, matched.
fn match_token<'p>(
    policy: &'p NativePreviewAuth,
    presented: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<&'p PreviewToken>, Denial> {
    let Some(presented) = presented else {
        return if policy.require_client_token {
            Err(Denial::new(
                Claim::Token,
                "is missing: send Authorization: Bearer <token>",
            ))
        } else {
            Ok(None)
        };
    };
    let mut matched = None;
    for token in &policy.tokens {
        if token_matches_digest(presented, &token.token_sha256) && matched.is_none() {
            matched = Some(token);
        }
    }
    let token = matched
        .ok_or_else(|| Denial::new(Claim::Token, "does not match any configured token digest"))?;
    if token.revoked {
        return Err(Denial::new(
            Claim::Token,
            format!("{:?} is revoked", token.id),
        ));
    }
    if let Some(expires_at) = &token.expires_at {
        match clock::parse(expires_at) {
            Some(t) if t > now => {}
            Some(_) => {
                return Err(Denial::new(
                    Claim::Token,
                    format!("{:?} expired at {expires_at}", token.id),
                ));
            }
            None => {
                return Err(Denial::new(
                    Claim::Token,
                    format!("{:?} has an unreadable expires_at", token.id),
                ));
            }
        }
    }
    Ok(Some(token))
}

fn check_host_scopes(
    policy: &NativePreviewAuth,
    token: Option<&PreviewToken>,
    host: &str,
) -> Result<(), Denial> {
    let token_scope = token
        .map(|t| t.allowed_public_hosts.as_slice())
        .unwrap_or(&[]);
    if policy.allowed_public_hosts.is_empty() && token_scope.is_empty() {
        return Err(Denial::new(
            Claim::PublicHost,
            "no host scope is configured (allowed_public_hosts on the policy or the token)",
        ));
    }
    let in_scope =
        |scope: &[String]| scope.is_empty() || scope.iter().any(|p| glob_matches(p, host));
    if !in_scope(&policy.allowed_public_hosts) {
        return Err(Denial::new(
            Claim::PublicHost,
            format!("{host:?} is outside the service's allowed_public_hosts"),
        ));
    }
    if !in_scope(token_scope) {
        return Err(Denial::new(
            Claim::PublicHost,
            format!("{host:?} is outside the token's allowed_public_hosts"),
        ));
    }
    Ok(())
}

fn check_session_scopes(
    policy: &NativePreviewAuth,
    token: Option<&PreviewToken>,
    session_id: &str,
) -> Result<(), Denial> {
    let in_scope = |scope: &[String]| scope.is_empty() || scope.iter().any(|s| s == session_id);
    if !in_scope(&policy.allowed_session_ids) {
        return Err(Denial::new(
            Claim::SessionId,
            format!("{session_id:?} is outside the service's allowed_session_ids"),
        ));
    }
    if !in_scope(
        token
            .map(|t| t.allowed_session_ids.as_slice())
            .unwrap_or(&[]),
    ) {
        return Err(Denial::new(
            Claim::SessionId,
            format!("{session_id:?} is outside the token's allowed_session_ids"),
        ));
    }
    Ok(())
}

/// The local origin must be an HTTP(S) origin on a loopback host.
pub fn check_local_origin(local_origin: &str) -> Result<Origin, Denial> {
    let origin = Origin::parse(local_origin).map_err(|p| Denial::new(Claim::LocalOrigin, p))?;
    if !origin.is_loopback() {
        return Err(Denial::new(
            Claim::LocalOrigin,
            format!(
                "{local_origin:?} is not a loopback origin (use http://127.0.0.1:<port> or http://localhost:<port>)"
            ),
        ));
    }
    Ok(origin)
}

/// The longest lease any policy can grant (ten years): a larger `max_session_ttl_secs` (an operator's way of
/// saying "no limit") or request is capped here, so lease arithmetic stays far inside the calendar.
pub const LONGEST_LEASE_SECS: u64 = 10 * 366 * 24 * 60 * 60;

fn lease_ttl(
    policy: &NativePreviewAuth,
    token: Option<&PreviewToken>,
    requested: Option<u64>,
    now: OffsetDateTime,
) -> (u64, Option<&'static str>) {
    let mut ttl = requested.unwrap_or(policy.default_session_ttl_secs);
    let mut capped_by = None;
    if ttl > policy.max_session_ttl_secs {
        ttl = policy.max_session_ttl_secs;
        capped_by = Some("max_session_ttl_secs");
    }
    if ttl > LONGEST_LEASE_SECS {
        ttl = LONGEST_LEASE_SECS;
        capped_by = Some("longest_lease");
    }
    let token_left = token
        .and_then(|t| t.expires_at.as_deref())
        .and_then(clock::parse)
        .map(|t| (t - now).whole_seconds().max(1) as u64);
    if let Some(left) = token_left
        && left < ttl
    {
        ttl = left;
        capped_by = Some("token_expires_at");
    }
    (ttl, capped_by)
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeboy_config::secrets::sha256_hex;

    const TOKEN: &str = "hbp_test_token_value";

    fn policy() -> NativePreviewAuth {
        serde_json::from_value(serde_json::json!({
            "default_session_ttl_secs": 900,
            "max_session_ttl_secs": 3600,
            "allowed_public_hosts": ["*.preview.example.net"],
            "allowed_session_ids": ["run-123", "run-7"],
            "tokens": [
                {"id": "lab-client-1", "token_sha256": sha256_hex(TOKEN),
                 "allowed_clients": ["local-lab"],
                 "allowed_public_hosts": ["run-123.preview.example.net", "run-7.preview.example.net"],
                 "allowed_session_ids": ["run-123"],
                 "expires_at": "2999-01-01T00:00:00Z"},
                {"id": "old", "token_sha256": sha256_hex("old-token"), "revoked": true},
                {"id": "stale", "token_sha256": sha256_hex("stale-token"), "expires_at": "2001-01-01T00:00:00Z"}
            ]
        }))
        .unwrap()
    }

    fn request() -> ClaimRequest<'static> {
        ClaimRequest {
            token: Some(TOKEN),
            client_id: "local-lab",
            public_host: "run-123.preview.example.net",
            session_id: "run-123",
            local_origin: "http://127.0.0.1:7331",
            requested_ttl_secs: None,
        }
    }

    fn judge(req: ClaimRequest<'_>) -> Result<Grant, Denial> {
        PolicySet::new(vec![("site-preview".into(), policy())]).authorize(&req, clock::now())
    }

    fn refused(req: ClaimRequest<'_>) -> Claim {
        judge(req).unwrap_err().claim
    }

    #[test]
    fn a_matching_claim_is_granted_with_the_default_lease() {
        let grant = judge(request()).unwrap();
        assert_eq!(grant.service_id, "site-preview");
        assert_eq!(grant.token_id.as_deref(), Some("lab-client-1"));
        assert_eq!(grant.ttl_secs, 900);
        assert_eq!(grant.capped_by, None);
        assert_eq!(grant.token_sha256, Some(sha256_hex(TOKEN)));
    }

    #[test]
    fn an_unbounded_policy_and_a_huge_request_get_a_bounded_lease() {
        for max in [u64::MAX, i64::MAX as u64, 1 << 40] {
            let mut unbounded = policy();
            unbounded.max_session_ttl_secs = max;
            unbounded.tokens[0].expires_at = None;
            let now = clock::now();
            for requested in [None, Some(u64::MAX), Some(1 << 40), Some(max)] {
                let req = ClaimRequest {
                    requested_ttl_secs: requested,
                    ..request()
                };
                let grant = PolicySet::new(vec![("site-preview".into(), unbounded.clone())])
                    .authorize(&req, now)
                    .unwrap();
                assert!(grant.ttl_secs >= 1 && grant.ttl_secs <= LONGEST_LEASE_SECS);
                assert!(grant.expires_at > now, "{max} {requested:?}: {grant:?}");
            }
        }
    }

    #[test]
    fn every_claim_is_checked() {
        assert_eq!(
            refused(ClaimRequest {
                token: None,
                ..request()
            }),
            Claim::Token
        );
        assert_eq!(
            refused(ClaimRequest {
                token: Some("wrong"),
                ..request()
            }),
            Claim::Token
        );
        let revoked = judge(ClaimRequest {
            token: Some("old-token"),
            ..request()
        })
        .unwrap_err();
        assert!(revoked.problem.contains("revoked"), "{revoked:?}");
        let expired = judge(ClaimRequest {
            token: Some("stale-token"),
            ..request()
        })
        .unwrap_err();
        assert!(expired.problem.contains("expired"), "{expired:?}");
        assert_eq!(
            refused(ClaimRequest {
                client_id: "someone-else",
                ..request()
            }),
            Claim::ClientId
        );
        // Outside the token's hosts, inside the service's glob.
        assert_eq!(
            refused(ClaimRequest {
                public_host: "run-9.preview.example.net",
                ..request()
            }),
            Claim::PublicHost
        );
        // Outside the service's glob.
        assert_eq!(
            refused(ClaimRequest {
                public_host: "run-123.other.example",
                ..request()
            }),
            Claim::PublicHost
        );
        // In the service's session scope but not the token's.
        assert_eq!(
            refused(ClaimRequest {
                public_host: "run-7.preview.example.net",
                session_id: "run-7",
                ..request()
            }),
            Claim::SessionId
        );
        for origin in [
            "http://10.1.2.3:80",
            "http://example.com:80",
            "ftp://127.0.0.1",
            "http://127.0.0.1:80/x",
        ] {
            assert_eq!(
                refused(ClaimRequest {
                    local_origin: origin,
                    ..request()
                }),
                Claim::LocalOrigin,
                "{origin}"
            );
        }
        assert!(
            judge(ClaimRequest {
                local_origin: "https://localhost:8443",
                ..request()
            })
            .is_ok()
        );
        // The token value never appears in a refusal.
        let d = judge(ClaimRequest {
            client_id: "x",
            ..request()
        })
        .unwrap_err();
        assert!(!d.problem.contains(TOKEN));
    }

    #[test]
    fn ttl_is_capped() {
        let g = judge(ClaimRequest {
            requested_ttl_secs: Some(60),
            ..request()
        })
        .unwrap();
        assert_eq!((g.ttl_secs, g.capped_by), (60, None));
        let g = judge(ClaimRequest {
            requested_ttl_secs: Some(86_400),
            ..request()
        })
        .unwrap();
        assert_eq!(
            (g.ttl_secs, g.capped_by),
            (3600, Some("max_session_ttl_secs"))
        );
        let now = clock::now();
        assert!(g.expires_at > now + Duration::seconds(3590));
        // A token expiring sooner than the lease caps it too.
        let mut p = policy();
        p.tokens[0].expires_at = Some(clock::rfc3339(now + Duration::seconds(120)));
        let g = PolicySet::new(vec![("s".into(), p)])
            .authorize(&request(), now)
            .unwrap();
        assert_eq!(g.capped_by, Some("token_expires_at"));
        assert!(g.ttl_secs <= 120 && g.ttl_secs >= 119);
    }

    #[test]
    fn tokenless_policies_and_missing_scopes() {
        let mut p = policy();
        p.require_client_token = false;
        let set = PolicySet::new(vec![("s".into(), p.clone())]);
        let g = set
            .authorize(
                &ClaimRequest {
                    token: None,
                    ..request()
                },
                clock::now(),
            )
            .unwrap();
        assert_eq!(g.token_id, None);
        // A wrong token is still refused even when none is required.
        assert_eq!(
            set.authorize(
                &ClaimRequest {
                    token: Some("nope"),
                    ..request()
                },
                clock::now()
            )
            .unwrap_err()
            .claim,
            Claim::Token
        );
        p.allowed_public_hosts.clear();
        let set = PolicySet::new(vec![("s".into(), p)]);
        assert_eq!(
            set.authorize(
                &ClaimRequest {
                    token: None,
                    ..request()
                },
                clock::now()
            )
            .unwrap_err()
            .claim,
            Claim::PublicHost
        );
        assert_eq!(
            PolicySet::default()
                .authorize(&request(), clock::now())
                .unwrap_err()
                .claim,
            Claim::Token
        );
    }

    #[test]
    fn the_most_specific_refusal_wins_across_services() {
        let mut other = policy();
        other.tokens.clear();
        let set = PolicySet::new(vec![("a".into(), other), ("b".into(), policy())]);
        let d = set
            .authorize(
                &ClaimRequest {
                    client_id: "intruder",
                    ..request()
                },
                clock::now(),
            )
            .unwrap_err();
        assert_eq!(d.claim, Claim::ClientId);
    }

    #[test]
    fn policies_load_from_declarations() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        let services: DeclarationDir<TunnelService> =
            DeclarationDir::new(paths.tunnel_services_dir());
        let mut svc: TunnelService = serde_json::from_value(serde_json::json!({
            "id": "site-preview", "remote_port": 7331,
            "auth": {"mode": "bearer-env", "env": "SITE_PREVIEW_TOKEN"}
        }))
        .unwrap();
        services.put(&svc).unwrap();
        assert!(PolicySet::load(&paths, &[]).unwrap().is_empty());
        let err = PolicySet::load(&paths, &["site-preview".into()]).unwrap_err();
        assert!(err.to_string().contains("native_preview_auth"), "{err}");
        let err = PolicySet::load(&paths, &["nope".into()]).unwrap_err();
        assert!(err.is_refused_input());
        svc.policy.native_preview_auth = Some(policy());
        services.put(&svc).unwrap();
        assert!(!PolicySet::load(&paths, &[]).unwrap().is_empty());
        assert!(
            !PolicySet::load(&paths, &["site-preview".into()])
                .unwrap()
                .is_empty()
        );
    }
}
