//! Registering and closing preview client sessions: the host claim checks of the ingress (one concrete host
//! matching `--public-host-pattern`, never a wildcard or the ingress's own name), native preview auth, host
//! ownership, the lease, and the durable route record that makes the route survive an ingress restart.
//!
//! A host stays with the client that holds it while its route is active and its lease unexpired: another
//! client (another token entry, client id or service) is refused with `route_owner_mismatch`, and so is any
//! client while an operator's direct route serves the host. The holder itself may register again at any
//! time: that renews the lease and keeps the channel (after an ingress restart it opens a new one).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use homeboy_api::{ApiError, ErrorKind};
use serde_json::json;

use super::Ingress;
use crate::auth::{Claim, ClaimRequest, Denial, PolicySet};
use crate::channel::wire::{self, Lease, RegisterRequest, RegisterResponse};
use crate::channel::{ChannelSession, NewSession, Owner};
use crate::clock;
use crate::host::{default_session_id, glob_matches, is_wildcard, normalize_host};
use crate::routes::{CHANNEL_ORIGIN_PREFIX, ChannelGrantRecord, RouteRecord};

/// The client id of a registration that names none.
pub const ANONYMOUS_CLIENT: &str = "anonymous";

/// Registers (or renews) a preview client's session. `on_the_machine`: a local caller ([`super::is_local`]), so
/// it is the operator on the ingress's machine and may be shown which declarations could not be read.
pub async fn register(
    ingress: &Arc<Ingress>,
    token: Option<&str>,
    req: RegisterRequest,
    on_the_machine: bool,
) -> Result<RegisterResponse, ApiError> {
    if ingress.draining.load(Ordering::Acquire) {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "preview.ingress_draining",
            "the preview ingress is shutting down; register again shortly",
        ));
    }
    let host = claimable_host(ingress, &req.public_host)?;
    let session_id = req
        .session_id
        .clone()
        .unwrap_or_else(|| default_session_id(&host));
    homeboy_config::declarations::validate_id("session", &session_id)
        .map_err(|e| ApiError::invalid_argument("session_id", e.to_string()))?;
    let client_id = req
        .client_id
        .clone()
        .unwrap_or_else(|| ANONYMOUS_CLIENT.to_string());
    homeboy_config::declarations::validate_id("client", &client_id)
        .map_err(|e| ApiError::invalid_argument("client_id", e.to_string()))?;
    if req.ttl_secs == Some(0) {
        return Err(ApiError::invalid_argument("ttl_secs", "must be at least 1"));
    }
    // A client of the retired reverse-HTTP transport is answered with long-poll, which it then uses.
    let mux = match req.transport.as_deref() {
        None | Some(wire::TRANSPORT_LONG_POLL | wire::TRANSPORT_REVERSE_HTTP) => false,
        Some(wire::TRANSPORT_MUX) => true,
        Some(other) => {
            return Err(ApiError::invalid_argument(
                "transport",
                format!(
                    "{other:?} is not a transport of this ingress ({} or {})",
                    wire::TRANSPORT_LONG_POLL,
                    wire::TRANSPORT_MUX
                ),
            ));
        }
    };

    let _one_at_a_time = ingress.register_lock.lock().await;
    let paths = ingress.options.paths.clone();
    let services = ingress.options.services.clone();
    let policies = tokio::task::spawn_blocking(move || PolicySet::load(&paths, &services))
        .await
        .map_err(|_| ApiError::internal("loading the preview auth policy failed"))?
        .map_err(|e| {
            ingress
                .log
                .write(&json!({"event": "policy_unreadable", "problem": e.to_string()}));
            ApiError::internal("the preview auth policy cannot be read; see the ingress log")
        })?;
    let now = clock::now();
    let claim = ClaimRequest {
        token,
        client_id: &client_id,
        public_host: &host,
        session_id: &session_id,
        local_origin: &req.local_origin,
        requested_ttl_secs: req.ttl_secs,
    };
    let grant = policies.authorize(&claim, now).map_err(|denial| {
        log_refusal(
            ingress,
            &host,
            &session_id,
            &client_id,
            denial.claim.as_str(),
        );
        with_broken_declarations(ingress, &policies, denial_error(denial), on_the_machine)
    })?;
    let owner = Owner {
        service_id: grant.service_id.clone(),
        token_id: grant.token_id.clone(),
        client_id: client_id.clone(),
    };

    ingress.routes.invalidate();
    let table = ingress.routes.table();
    let by_host = table.get(&host).map(|e| e.record.clone());
    let by_session = table
        .values()
        .find(|e| e.record.session_id == session_id)
        .map(|e| e.record.clone());
    for record in [&by_host, &by_session].into_iter().flatten() {
        if held_by_another(record, &owner, now) {
            log_refusal(
                ingress,
                &host,
                &session_id,
                &client_id,
                "route_owner_mismatch",
            );
            return Err(ApiError::new(
                ErrorKind::Conflict,
                "preview.route_owner_mismatch",
                format!(
                    "public host {:?} (session {:?}) is held by another preview client or an operator route",
                    record.public_host, record.session_id
                ),
            )
            .with_detail("claim", "public_host")
            .with_detail("public_host", record.public_host.clone())
            .with_detail("session_id", record.session_id.clone())
            .with_hint("wait for the holder's lease to end, or have the operator unroute the session"));
        }
    }

    let evict = super::session_caps::make_room(
        ingress,
        &table,
        (&host, &session_id, &client_id),
        &grant,
        now,
    )?;
    if !evict.is_empty() {
        remove_records(ingress, evict).await?;
    }

    let session = match ingress.session(&host) {
        Some(s) if s.owner == owner && s.session_id == session_id && !s.is_closed() => {
            s.renew(grant.expires_at, &req.local_origin, mux);
            s
        }
        previous => {
            if let Some(old) = previous {
                old.close();
            }
            let channel_id = homeboy_config::secrets::random_hex(16)
                .map_err(|_| ApiError::internal("no randomness for a channel id"))?;
            ChannelSession::new(NewSession {
                public_host: host.clone(),
                session_id: session_id.clone(),
                channel_id,
                owner,
                token_sha256: grant.token_sha256.clone(),
                local_origin: req.local_origin.clone(),
                lease_expires_at: grant.expires_at,
                mux,
                client_grace: ingress.options.client_grace,
            })
        }
    };

    let stamp = clock::rfc3339(now);
    let record = RouteRecord {
        session_id: session_id.clone(),
        public_host: host.clone(),
        upstream_origin: format!("{CHANNEL_ORIGIN_PREFIX}{client_id}"),
        expires_at: Some(clock::rfc3339(grant.expires_at)),
        active: true,
        created_at: by_session
            .as_ref()
            .filter(|r| r.public_host == host)
            .and_then(|r| r.created_at.clone())
            .or_else(|| Some(stamp.clone())),
        updated_at: Some(stamp),
        channel: Some(ChannelGrantRecord {
            client_id: client_id.clone(),
            service_id: grant.service_id.clone(),
            token_id: grant.token_id.clone(),
            local_origin: req.local_origin.clone(),
            ttl_secs: grant.ttl_secs,
        }),
    };
    let stale_session = by_host
        .map(|r| r.session_id)
        .filter(|old| *old != session_id);
    write_record(ingress, record, stale_session).await?;
    ingress
        .sessions
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(host.clone(), session.clone());
    ingress.session_registered();
    ingress.log.write(&json!({
        "event": "register", "outcome": "granted", "public_host": host, "session_id": session_id,
        "client_id": client_id, "service_id": grant.service_id, "token_id": grant.token_id,
        "ttl_secs": grant.ttl_secs, "channel_id": session.channel_id,
    }));
    Ok(RegisterResponse {
        registered: true,
        channel_id: session.channel_id.clone(),
        session_id,
        public_url: Some(format!("{}://{host}", ingress.options.public_scheme)),
        public_host: host,
        client_id,
        lease: Some(Lease {
            ttl_secs: grant.ttl_secs,
            expires_at: clock::rfc3339(grant.expires_at),
            requested_ttl_secs: grant.requested_ttl_secs,
            capped_by: grant.capped_by.map(str::to_string),
        }),
        transports: vec![
            wire::TRANSPORT_LONG_POLL.to_string(),
            wire::TRANSPORT_MUX.to_string(),
        ],
        transport: Some(
            if mux {
                wire::TRANSPORT_MUX
            } else {
                wire::TRANSPORT_LONG_POLL
            }
            .to_string(),
        ),
    })
}

/// `close`: ends the session and keeps its route as `disconnected`.
pub async fn close(ingress: &Arc<Ingress>, session: &Arc<ChannelSession>) -> Result<(), ApiError> {
    let _one_at_a_time = ingress.register_lock.lock().await;
    session.close();
    {
        let mut sessions = ingress.sessions.write().unwrap_or_else(|p| p.into_inner());
        if sessions
            .get(&session.public_host)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            sessions.remove(&session.public_host);
        }
    }
    ingress.routes.invalidate();
    let current = ingress.routes.lookup(&session.public_host);
    if let Some(entry) =
        current.filter(|e| e.record.session_id == session.session_id && e.record.channel.is_some())
    {
        let mut record = entry.record.clone();
        record.active = false;
        record.updated_at = Some(clock::rfc3339(clock::now()));
        write_record(ingress, record, None).await?;
    }
    ingress.log.write(&json!({
        "event": "close", "public_host": session.public_host, "session_id": session.session_id,
        "client_id": session.owner.client_id,
    }));
    Ok(())
}

/// The host a registration claims, normalised, or why it cannot be claimed.
fn claimable_host(ingress: &Ingress, requested: &str) -> Result<String, ApiError> {
    let rejected = |problem: String| {
        ApiError::new(
            ErrorKind::Forbidden,
            "preview.host_claim_rejected",
            format!("public_host cannot be claimed: {problem}"),
        )
        .with_detail("claim", Claim::PublicHost.as_str())
        .with_detail("field", "public_host")
        .with_detail("problem", problem)
    };
    if is_wildcard(requested) {
        return Err(rejected(format!(
            "{requested:?} is a wildcard; a preview client claims exactly one host"
        )));
    }
    let host =
        normalize_host(requested).map_err(|p| ApiError::invalid_argument("public_host", p))?;
    if ingress.is_control_host(&host) {
        return Err(rejected(format!("{host:?} is the ingress's own host")));
    }
    if !ingress.patterns.iter().any(|p| glob_matches(p, &host)) {
        return Err(rejected(format!(
            "{host:?} does not match the ingress's public host pattern ({})",
            ingress.patterns.join(", ")
        )));
    }
    Ok(host)
}

fn held_by_another(record: &RouteRecord, owner: &Owner, now: time::OffsetDateTime) -> bool {
    if !record.active || record.expired_at(now) {
        return false;
    }
    match &record.channel {
        None => true,
        Some(holder) => {
            holder.client_id != owner.client_id
                || holder.service_id != owner.service_id
                || holder.token_id != owner.token_id
        }
    }
}

fn denial_error(denial: Denial) -> ApiError {
    let (kind, code) = match denial.claim {
        Claim::Token => (ErrorKind::Unauthorized, "preview.auth_denied"),
        _ => (ErrorKind::Forbidden, "preview.claim_rejected"),
    };
    let claim = denial.claim.as_str();
    ApiError::new(
        kind,
        code,
        format!("preview auth refused the {claim} claim: {}", denial.problem),
    )
    .with_detail("claim", claim)
    .with_detail("field", claim)
    .with_detail("problem", denial.problem)
}

async fn write_record(
    ingress: &Arc<Ingress>,
    record: RouteRecord,
    remove_session: Option<String>,
) -> Result<(), ApiError> {
    let store_dir = ingress.routes.store().dir().to_path_buf();
    let written = tokio::task::spawn_blocking(move || {
        let store = crate::routes::RouteStore::at(store_dir);
        if let Some(old) = remove_session {
            store.remove(&old)?;
        }
        store.put(&record)
    })
    .await;
    ingress.routes.invalidate();
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            ingress
                .log
                .write(&json!({"event": "route_write_failed", "problem": e.to_string()}));
            Err(ApiError::internal(
                "the route record could not be written; see the ingress log",
            ))
        }
        Err(_) => Err(ApiError::internal("writing the route record failed")),
    }
}

/// Names the service declarations that could not be read: always in the ingress log, and in the refusal's
/// details for a caller on the machine (a public caller learns nothing about the operator's files).
pub(super) fn with_broken_declarations(
    ingress: &Ingress,
    policies: &PolicySet,
    error: ApiError,
    on_the_machine: bool,
) -> ApiError {
    let broken = policies.broken();
    if broken.is_empty() {
        return error;
    }
    for b in broken {
        ingress.log.write(&json!({
            "event": "policy_declaration_unreadable", "service": b.service, "problem": b.problem,
        }));
    }
    let listed: Vec<serde_json::Value> = broken
        .iter()
        .map(|b| json!({"service": b.service, "problem": b.problem}))
        .collect();
    if !on_the_machine {
        return error;
    }
    error
        .with_detail("unreadable_declarations", serde_json::Value::Array(listed))
        .with_hint("fix or remove the tunnel service declarations listed in details.unreadable_declarations")
}

/// Removes the route records [`super::session_caps::make_room`] chose, and closes their sessions.
async fn remove_records(ingress: &Arc<Ingress>, records: Vec<RouteRecord>) -> Result<(), ApiError> {
    {
        let mut sessions = ingress.sessions.write().unwrap_or_else(|p| p.into_inner());
        for record in &records {
            if let Some(session) = sessions
                .get(&record.public_host)
                .filter(|s| s.session_id == record.session_id)
                .cloned()
            {
                session.close();
                sessions.remove(&record.public_host);
            }
        }
    }
    let store_dir = ingress.routes.store().dir().to_path_buf();
    let ids: Vec<String> = records.iter().map(|r| r.session_id.clone()).collect();
    let removed = tokio::task::spawn_blocking(move || {
        let store = crate::routes::RouteStore::at(store_dir);
        ids.iter().try_for_each(|id| store.remove(id).map(|_| ()))
    })
    .await;
    ingress.routes.invalidate();
    match removed {
        Ok(Ok(())) => {
            for record in &records {
                ingress.log.write(&json!({
                    "event": "route_removed", "reason": "session_limit",
                    "public_host": record.public_host, "session_id": record.session_id,
                }));
            }
            Ok(())
        }
        Ok(Err(e)) => {
            ingress
                .log
                .write(&json!({"event": "route_write_failed", "problem": e.to_string()}));
            Err(ApiError::internal(
                "a stale route record could not be removed; see the ingress log",
            ))
        }
        Err(_) => Err(ApiError::internal("removing stale route records failed")),
    }
}

fn log_refusal(ingress: &Ingress, host: &str, session_id: &str, client_id: &str, reason: &str) {
    ingress.log.write(&json!({
        "event": "register", "outcome": "refused", "public_host": host, "session_id": session_id,
        "client_id": client_id, "reason": reason,
    }));
}
