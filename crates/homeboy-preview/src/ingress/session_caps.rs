//! The caps on preview sessions (issue 16): one token — or, for tokenless clients, one service — holds at
//! most `max_sessions_per_token` preview hosts, and one client id at most `max_sessions_per_client`
//! (`policy.native_preview_auth` of the granting service). A route record of the same holder that has
//! expired or been closed does not hold a host: the oldest such records are removed to make room, so the
//! route directory stays bounded too. When every record counts, the registration is refused with
//! `403 preview.session_limit`, naming the cap.

use std::collections::HashSet;
use std::sync::Arc;

use homeboy_api::{ApiError, ErrorKind};
use serde_json::json;
use time::OffsetDateTime;

use super::Ingress;
use super::route_cache::RouteEntry;
use crate::auth::Grant;
use crate::routes::RouteRecord;

/// The records that stand in the way of this registration and have to go, or the refusal.
pub(super) fn make_room(
    ingress: &Ingress,
    table: &std::collections::HashMap<String, Arc<RouteEntry>>,
    claim: (&str, &str, &str),
    grant: &Grant,
    now: OffsetDateTime,
) -> Result<Vec<RouteRecord>, ApiError> {
    let (host, session_id, client_id) = claim;
    let others = || {
        table
            .values()
            .map(|e| &e.record)
            .filter(|r| r.channel.is_some() && r.public_host != host && r.session_id != session_id)
    };
    let same_token = |r: &&RouteRecord| {
        r.channel
            .as_ref()
            .is_some_and(|c| c.service_id == grant.service_id && c.token_id == grant.token_id)
    };
    let same_client =
        |r: &&RouteRecord| r.channel.as_ref().is_some_and(|c| c.client_id == client_id);
    let mut evict: Vec<RouteRecord> = Vec::new();
    let mut chosen = HashSet::new();
    for (scope, cap, held) in [
        (
            "token",
            grant.max_sessions_per_token,
            others().filter(same_token).collect::<Vec<_>>(),
        ),
        (
            "client",
            grant.max_sessions_per_client,
            others().filter(same_client).collect::<Vec<_>>(),
        ),
    ] {
        let cap = cap as usize;
        let live = held.iter().filter(|r| holds(r, now)).count();
        if live >= cap {
            ingress.log.write(&json!({
                "event": "register", "outcome": "refused", "public_host": host,
                "session_id": session_id, "client_id": client_id, "reason": "session_limit",
                "scope": scope, "limit": cap, "held": live,
            }));
            let name = format!("max_sessions_per_{scope}");
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                "preview.session_limit",
                format!("this {scope} already holds {live} preview hosts, its limit ({name})"),
            )
            .with_detail("claim", "public_host")
            .with_detail("scope", scope)
            .with_detail("limit", cap as u64)
            .with_detail("held", live as u64)
            .with_hint(format!(
                "close a preview session first, or raise policy.native_preview_auth.{name} of service {:?}",
                grant.service_id
            )));
        }
        let already = held
            .iter()
            .filter(|r| chosen.contains(&r.session_id))
            .count();
        let mut excess = (held.len() - already + 1).saturating_sub(cap);
        let mut stale: Vec<&&RouteRecord> = held
            .iter()
            .filter(|r| !holds(r, now) && !chosen.contains(&r.session_id))
            .collect();
        stale.sort_by(|a, b| a.updated_at.cmp(&b.updated_at));
        for record in stale {
            if excess == 0 {
                break;
            }
            chosen.insert(record.session_id.clone());
            evict.push((*record).clone());
            excess -= 1;
        }
    }
    Ok(evict)
}

/// Whether a record holds its host: active and not expired.
fn holds(record: &RouteRecord, now: OffsetDateTime) -> bool {
    record.active && !record.expired_at(now)
}
