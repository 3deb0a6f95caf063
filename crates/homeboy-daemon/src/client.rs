//! A small HTTP client for homeboy daemons and brokers: JSON in, envelope decoded, errors in our terms.
//!
//! Used by the CLI (to talk to the local daemon) and by `start`/`status` (to probe `/health`).

use std::sync::Once;
use std::time::Duration;

use homeboy_api::decode_envelope;
use serde_json::Value;

use crate::DaemonError;

/// Installs the process-wide TLS crypto provider once (reqwest is built without a default one).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder with homeboy's defaults: no proxies for loopback daemons, a connect timeout.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("homeboy/", env!("CARGO_PKG_VERSION")))
}

/// A client bound to one daemon base URL.
#[derive(Clone)]
pub struct DaemonClient {
    base_url: String,
    http: reqwest::Client,
    bearer: Option<String>,
}

impl DaemonClient {
    /// A client for the daemon at `base_url` (`http://127.0.0.1:7421`).
    pub fn new(base_url: impl Into<String>) -> Result<Self, DaemonError> {
        let base_url: String = base_url.into();
        let mut builder = http_client_builder();
        if is_loopback_url(&base_url) {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| DaemonError::Unreachable {
            url: base_url.clone(),
            message: e.to_string(),
        })?;
        Ok(DaemonClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            http,
            bearer: None,
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn with_bearer(mut self, token: Option<String>) -> Self {
        self.bearer = token;
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET path` → the envelope's data.
    pub async fn get(&self, path: &str, timeout: Duration) -> Result<Value, DaemonError> {
        self.send(self.http.get(self.url(path)), timeout).await
    }

    /// `POST path` with a JSON body → the envelope's data.
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, DaemonError> {
        self.send(self.http.post(self.url(path)).json(body), timeout)
            .await
    }

    /// The underlying reqwest client (for streaming routes).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Adds the bearer token, if any, to a request.
    pub fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.bearer {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, DaemonError> {
        let unreachable = |e: reqwest::Error| DaemonError::Unreachable {
            url: self.base_url.clone(),
            message: without_url(&e),
        };
        let resp = self
            .authorize(req)
            .timeout(timeout)
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(unreachable)?;
        Ok(decode_envelope(status, &body)?)
    }
}

/// reqwest's Display includes the URL, which may carry a query; keep the error kind only.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut deepest = None;
    while let Some(s) = source {
        deepest = Some(s.to_string());
        source = s.source();
    }
    match deepest {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_string(),
    }
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    crate::http::is_loopback_host(host)
}

impl DaemonClient {
    /// A client for the background daemon recorded in the state file (`NotRunning` when there is none or
    /// its process is gone).
    pub fn for_local_daemon(paths: &homeboy_config::Paths) -> Result<Self, DaemonError> {
        let state = crate::state::read(paths)?.ok_or(DaemonError::NotRunning)?;
        if !homeboy_process::alive(state.pid) {
            return Err(DaemonError::NotRunning);
        }
        DaemonClient::new(state.base_url())
    }
}
