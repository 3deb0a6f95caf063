//! The preview client's calls to the ingress's channel API: JSON over HTTP(S) with the bearer token, the
//! envelope decoded, and failures sorted into "refused" (the ingress said no: do not retry blindly) and
//! "unreachable" (the network or a 5xx: retry with backoff). The token lives only in the request header;
//! no error message carries it.

use std::time::Duration;

use homeboy_api::decode_envelope;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::channel::wire;

/// Why a channel call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The ingress answered with a 4xx envelope.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer, or a 5xx: worth retrying.
    Unreachable(String),
}

impl CallError {
    /// The error code of a refusal (`preview.channel_not_found`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            CallError::Refused { code, .. } => Some(code),
            CallError::Unreachable(_) => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            CallError::Refused {
                status,
                code,
                message,
            } => format!("{message} ({code}, HTTP {status})"),
            CallError::Unreachable(m) => m.clone(),
        }
    }
}

/// A reqwest client with the preview client's defaults (the shared builder, plus a connection pool sized
/// for many requests in flight to one ingress).
pub fn http_client(ingress: &str) -> Result<reqwest::Client, String> {
    build_client(ingress, 64)
}

/// The same, keeping no idle connection once a call is answered (calls made minutes apart).
pub fn http_client_without_pool(ingress: &str) -> Result<reqwest::Client, String> {
    build_client(ingress, 0)
}

fn build_client(ingress: &str, idle_per_host: usize) -> Result<reqwest::Client, String> {
    homeboy_http::client::http_client_builder(ingress)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(idle_per_host)
        .user_agent(concat!(
            "homeboy-preview-client/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", describe(&e)))
}

/// The channel API of one ingress, for one public host.
#[derive(Clone)]
pub struct IngressApi {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    public_host: String,
}

impl IngressApi {
    pub fn new(
        base: &str,
        http: reqwest::Client,
        token: Option<String>,
        public_host: String,
    ) -> Self {
        IngressApi {
            base: base.trim_end_matches('/').to_string(),
            http,
            token,
            public_host,
        }
    }

    /// The public host this client serves.
    pub fn public_host(&self) -> &str {
        &self.public_host
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// `POST path` with a JSON body; the envelope's data parsed as `R`.
    pub async fn post<R: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let req = self
            .authorize(self.http.post(format!("{}{path}", self.base)))
            .json(body)
            .timeout(timeout);
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Unreachable(describe(&e)))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CallError::Unreachable(describe(&e)))?;
        match decode_envelope(status, &bytes) {
            Ok(data) => serde_json::from_value(data).map_err(|e| {
                CallError::Unreachable(format!(
                    "the ingress answered {path} with unexpected JSON: {e}"
                ))
            }),
            Err(error) if (400..500).contains(&status) => Err(CallError::Refused {
                status,
                code: error.code.into_owned(),
                message: error.message,
            }),
            Err(error) => Err(CallError::Unreachable(format!(
                "HTTP {status} from the ingress: {}",
                error.message
            ))),
        }
    }

    /// `GET /preview/client/connect` with `Upgrade`: the connection of the multiplexed channel.
    pub async fn connect(&self, channel_id: &str) -> Result<reqwest::Upgraded, CallError> {
        let req = self
            .authorize(self.http.get(format!("{}{}", self.base, wire::CONNECT)))
            .header(reqwest::header::CONNECTION, "upgrade")
            .header(reqwest::header::UPGRADE, wire::MUX_PROTOCOL)
            .header(wire::HEADER_PUBLIC_HOST, &self.public_host)
            .header(wire::HEADER_CHANNEL_ID, channel_id)
            .timeout(Duration::from_secs(10));
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Unreachable(describe(&e)))?;
        let status = resp.status().as_u16();
        if status == 101 {
            return resp
                .upgrade()
                .await
                .map_err(|e| CallError::Unreachable(describe(&e)));
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        let error = decode_envelope(status, &bytes).err();
        let message = error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| format!("HTTP {status} instead of 101"));
        // Any answer but 101 below 500 means the upgrade will not happen this way; 5xx may pass.
        if (200..500).contains(&status) {
            Err(CallError::Refused {
                status,
                code: error.map(|e| e.code.into_owned()).unwrap_or_default(),
                message,
            })
        } else {
            Err(CallError::Unreachable(message))
        }
    }
}

/// A reqwest error as one line: what failed and the deepest cause, never the URL's query or headers.
pub use homeboy_http::client::describe_error as describe;
