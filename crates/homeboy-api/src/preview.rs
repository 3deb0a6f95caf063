//! The JSON of the preview channel between the ingress and a preview client, and the ingress's own answers (wire contract, "Preview
//! channel"): routes, request and response bodies. Field names of the contract are kept exactly; everything
//! else here is additive (`client_id`, `ttl_secs`, `lease`, `transports`, `body_more`, `more`, the
//! `respond-chunk` and `request-body` routes, the multiplexed channel's upgrade). Unknown fields are ignored so older
//! and newer peers keep talking.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST` — register `{public_host, local_origin, session_id?}`.
pub const REGISTER: &str = "/preview/client/register";
/// `POST` — long-poll for a request.
pub const NEXT: &str = "/preview/client/next";
/// `POST` — answer a request.
pub const RESPOND: &str = "/preview/client/respond";
/// `POST` — one more chunk of a response that was answered with `more: true` (additive).
pub const RESPOND_CHUNK: &str = "/preview/client/respond-chunk";
/// `POST` — the next chunk of a request body announced with `body_more: true` (additive).
pub const REQUEST_BODY: &str = "/preview/client/request-body";
/// `POST` — mark the session closed.
pub const CLOSE: &str = "/preview/client/close";
/// `GET` with `Upgrade` — open the client's multiplexed channel (additive faster transport).
pub const CONNECT: &str = "/preview/client/connect";

/// The long-poll transport: JSON and base64 over the routes above (the compatibility contract).
pub const TRANSPORT_LONG_POLL: &str = "long-poll";
/// The multiplexed transport: one connection the client dials and upgrades, on which the ingress then
/// speaks HTTP/2 to the client, one stream per public request. Bodies stream as bytes, without base64 or
/// JSON, each stream with its own flow control.
pub const TRANSPORT_MUX: &str = "mux";
/// The retired reverse-HTTP transport (one upgraded HTTP/1.1 connection per request in flight). A client
/// that still declares it is answered with [`TRANSPORT_LONG_POLL`], which such clients then use.
pub const TRANSPORT_REVERSE_HTTP: &str = "reverse-http";
/// The `Upgrade` protocol token of the multiplexed channel's connection.
pub const MUX_PROTOCOL: &str = "homeboy-preview-h2";
/// Headers naming the session of a channel connection.
pub const HEADER_PUBLIC_HOST: &str = "x-homeboy-preview-host";
pub const HEADER_CHANNEL_ID: &str = "x-homeboy-preview-channel";
/// Set by the client on a response that reports a local-origin failure on the multiplexed transport.
pub const HEADER_CLIENT_ERROR: &str = "x-homeboy-preview-error";
/// On a stream of the multiplexed channel: the public request asked to switch to this protocol
/// (`Upgrade: websocket`). The stream's request body then carries the browser's bytes after the switch.
pub const HEADER_UPGRADE_REQUEST: &str = "x-homeboy-preview-upgrade";
/// On the client's answer to such a stream: the local origin switched (`101`) to this protocol, and the
/// answer's body carries the origin's bytes after the switch. Absent: the origin answered normally.
pub const HEADER_UPGRADED: &str = "x-homeboy-preview-upgraded";

/// Largest body chunk carried by one long-poll message (before base64).
pub const MAX_CHUNK_BYTES: usize = 512 * 1024;
/// Longest accepted long-poll timeout.
pub const MAX_POLL_SECS: u64 = 60;
/// The `error.kind` of a response the client built because its local origin failed.
pub const LOCAL_ORIGIN_FAILED: &str = "local_origin_request_failed";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RegisterRequest {
    pub public_host: String,
    pub local_origin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// The transport the client will use (`long-poll` when absent). Declared up front so requests that
    /// arrive before the client's first connection wait for the right transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RegisterResponse {
    pub registered: bool,
    pub channel_id: String,
    pub session_id: String,
    #[serde(default)]
    pub public_host: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Transports this ingress offers, best last; an ingress that omits it offers long-poll only.
    #[serde(default)]
    pub transports: Vec<String>,
    /// The transport the ingress expects this client to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Lease {
    pub ttl_secs: u64,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_ttl_secs: Option<u64>,
    /// Why the lease is shorter than requested, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NextRequest {
    pub public_host: String,
    pub channel_id: String,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NextResponse {
    pub request: Option<ChannelRequest>,
}

/// A public request as the client receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChannelRequest {
    pub request_id: String,
    pub method: String,
    /// Path and query.
    pub path: String,
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// More body follows: fetch it from `request-body` until `done`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub body_more: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RespondRequest {
    pub public_host: String,
    pub response: ChannelResponse,
}

/// The client's answer to one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChannelResponse {
    pub request_id: String,
    pub status: u16,
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default)]
    pub body_base64: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ChannelError>,
    /// More body follows through `respond-chunk` until a chunk says `done`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChannelError {
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RespondChunkRequest {
    pub public_host: String,
    pub request_id: String,
    #[serde(default)]
    pub body_base64: String,
    #[serde(default)]
    pub done: bool,
    /// The local response broke off: the ingress aborts the public response instead of ending it cleanly.
    #[serde(default, skip_serializing_if = "is_false")]
    pub abort: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RequestBodyRequest {
    pub public_host: String,
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RequestBodyResponse {
    pub body_base64: String,
    pub done: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CloseRequest {
    pub public_host: String,
}

/// Lifecycle state of a preview route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    Active,
    Expired,
    Disconnected,
}

impl RouteState {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteState::Active => "active",
            RouteState::Expired => "expired",
            RouteState::Disconnected => "disconnected",
        }
    }
}

/// One preview route (a session holding a public host) as status outputs show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RouteStatus {
    pub session_id: String,
    pub public_host: String,
    pub upstream_origin: String,
    pub state: RouteState,
    pub active: bool,
    /// `direct` (the ingress proxies to `upstream_origin`) or `reverse_channel` (a preview client holds it).
    pub transport: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// A route record that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InvalidRecord {
    pub session_id: String,
    pub problem: String,
}

/// The route table read from disk (`homeboy tunnel preview-ingress status`, the daemon's
/// `GET /tunnel/previews`): each record with its lifecycle state now, and unreadable files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RouteStatusReport {
    pub routes_dir: String,
    pub checked_at: String,
    pub routes: Vec<RouteStatus>,
    pub invalid_records: Vec<InvalidRecord>,
}

impl RouteStatusReport {
    /// One line per route, for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if self.routes.is_empty() {
            out.push_str(&format!("no preview routes in {}\n", self.routes_dir));
        }
        for r in &self.routes {
            out.push_str(&format!(
                "{}  {}  -> {}  {}{}\n",
                r.session_id,
                r.public_host,
                r.upstream_origin,
                r.state.as_str(),
                r.expires_at
                    .as_deref()
                    .map(|t| format!("  (expires {t})"))
                    .unwrap_or_default()
            ));
        }
        for bad in &self.invalid_records {
            out.push_str(&format!(
                "{}  unreadable: {}\n",
                bad.session_id, bad.problem
            ));
        }
        out
    }
}

/// The reverse channel of a route a preview client holds, as the running ingress sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChannelStatus {
    /// The channel's transport (`long-poll`, `reverse-http`, ...).
    pub transport: String,
    /// The transport's own counters (parked polls, queued and in-flight requests, connections, ...).
    pub stats: Map<String, Value>,
    pub local_origin: String,
    pub silent_for_ms: u64,
}

/// A route of the running ingress, with its live state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IngressRoute {
    #[serde(flatten)]
    pub route: RouteStatus,
    /// For a reverse-channel route: whether its client is connected (within the grace period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelStatus>,
}

/// One recent public request the ingress answered itself, as its status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IngressFailure {
    pub at: String,
    pub request_id: String,
    pub host: String,
    pub path: String,
    pub status: u16,
    /// `missing_session`, `expired_session`, `disconnected_session`, `upstream_error`, `upstream_timeout`,
    /// `ingress_draining`.
    pub classification: Cow<'static, str>,
    pub message: String,
}

/// The running ingress itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IngressInfo {
    pub domain: String,
    pub addr: String,
    pub public_host_patterns: Vec<String>,
    pub control_hosts: Vec<String>,
    pub started_at: String,
    pub pid: u32,
    pub version: String,
    pub draining: bool,
    pub in_flight: usize,
    pub requests: u64,
    pub failures: u64,
    /// Only for requests that name a loopback host (the operator on the machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes_dir: Option<String>,
}

/// `GET /_homeboy/preview-ingress/status` on one of the ingress's own hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IngressStatus {
    pub ingress: IngressInfo,
    /// One page of routes (`?limit=`, `?cursor=`), by session id.
    pub routes: Vec<IngressRoute>,
    /// Routes in the table, all pages.
    #[serde(default)]
    pub routes_total: usize,
    /// Pass as `cursor` for the next page; `null` on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
    /// Newest first, at most 100.
    pub recent_failures: Vec<IngressFailure>,
}

/// `GET /_homeboy/preview-ingress/status` on a public preview host: that host's route only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HostStatus {
    pub host: String,
    /// The route's state, or `missing`.
    pub state: String,
    pub route: Option<IngressRoute>,
}

/// The answer of `respond`, `respond-chunk`: the ingress took the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Accepted {
    pub accepted: bool,
}

/// The answer of `close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Closed {
    pub closed: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_field_names() {
        let r: ChannelResponse = serde_json::from_value(serde_json::json!({
            "request_id": "r1", "status": 200, "headers": {"content-type": "text/plain"},
            "body_base64": "aGk=", "future_field": 1
        }))
        .unwrap();
        assert!(!r.more && r.error.is_none());
        assert_eq!(r.body_base64, "aGk=");
        let v = serde_json::to_value(&ChannelRequest {
            request_id: "r".into(),
            method: "GET".into(),
            path: "/".into(),
            headers: Map::new(),
            body_base64: None,
            body_more: false,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"request_id": "r", "method": "GET", "path": "/", "headers": {}})
        );
        let reg: RegisterResponse = serde_json::from_value(
            serde_json::json!({"registered": true, "channel_id": "c", "session_id": "s"}),
        )
        .unwrap();
        assert!(reg.transports.is_empty());
    }
}
