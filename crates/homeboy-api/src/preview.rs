//! The JSON of the preview channel between the ingress and a preview client, and the ingress's own answers (wire contract, "Preview
//! channel"): routes, request and response bodies. Field names of the contract are kept exactly; everything
//! else here is additive (`client_id`, `ttl_secs`, `lease`, `transports`, `body_more`, `more`, the
//! `respond-chunk` and `request-body` routes, the reverse-HTTP upgrade). Unknown fields are ignored so older
//! and newer peers keep talking.

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
/// `GET` with `Upgrade` — open one reverse-HTTP connection (additive faster transport).
pub const CONNECT: &str = "/preview/client/connect";

/// The long-poll transport: JSON and base64 over the routes above (the compatibility contract).
pub const TRANSPORT_LONG_POLL: &str = "long-poll";
/// The reverse-HTTP transport: connections the client dials and upgrades, on which the ingress then
/// speaks plain HTTP/1.1 to the client. Bodies stream as bytes, without base64 or JSON.
pub const TRANSPORT_REVERSE_HTTP: &str = "reverse-http";
/// The `Upgrade` protocol token of a reverse-HTTP connection.
pub const REVERSE_HTTP_PROTOCOL: &str = "homeboy-preview-http1";
/// Headers naming the session of a reverse-HTTP connection.
pub const HEADER_PUBLIC_HOST: &str = "x-homeboy-preview-host";
pub const HEADER_CHANNEL_ID: &str = "x-homeboy-preview-channel";
/// Set by the client on a response that reports a local-origin failure on the reverse-HTTP transport.
pub const HEADER_CLIENT_ERROR: &str = "x-homeboy-preview-error";

/// Largest body chunk carried by one long-poll message (before base64).
pub const MAX_CHUNK_BYTES: usize = 512 * 1024;
/// Longest accepted long-poll timeout.
pub const MAX_POLL_SECS: u64 = 60;
/// The `error.kind` of a response the client built because its local origin failed.
pub const LOCAL_ORIGIN_FAILED: &str = "local_origin_request_failed";

#[derive(Debug, Clone, Serialize, Deserialize)]
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
pub struct NextRequest {
    pub public_host: String,
    pub channel_id: String,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NextResponse {
    pub request: Option<ChannelRequest>,
}

/// A public request as the client receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
pub struct RespondRequest {
    pub public_host: String,
    pub response: ChannelResponse,
}

/// The client's answer to one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
pub struct ChannelError {
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
pub struct RequestBodyRequest {
    pub public_host: String,
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestBodyResponse {
    pub body_base64: String,
    pub done: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloseRequest {
    pub public_host: String,
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
