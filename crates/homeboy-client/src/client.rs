//! A small HTTP client for homeboy daemons and brokers: JSON in, the envelope decoded into the contract's
//! typed answers (`homeboy_api`), errors in our terms. Used by the CLI (to talk to the local daemon or a
//! broker), by `start`/`status` (to probe `/health`) and by the runner worker.

use std::time::Duration;

use homeboy_api::decode_envelope;
use homeboy_http::client::{describe_error, http_client_builder};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ClientError;

/// A client bound to one daemon base URL.
#[derive(Clone)]
pub struct DaemonClient {
    base_url: String,
    http: reqwest::Client,
    bearer: Option<String>,
}

impl DaemonClient {
    /// A client for the daemon at `base_url` (`http://127.0.0.1:7421`).
    pub fn new(base_url: impl Into<String>) -> Result<Self, ClientError> {
        let base_url: String = base_url.into();
        let http =
            http_client_builder(&base_url)
                .build()
                .map_err(|e| ClientError::Unreachable {
                    url: base_url.clone(),
                    message: describe_error(&e),
                })?;
        Ok(DaemonClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            http,
            bearer: None,
        })
    }

    /// A client for the background daemon recorded in the state file (`NotRunning` when there is none or
    /// its process is gone).
    pub fn for_local_daemon(paths: &homeboy_config::Paths) -> Result<Self, ClientError> {
        let state = homeboy_config::daemon_state::read(paths)?.ok_or(ClientError::NotRunning)?;
        if !homeboy_process::alive(state.pid) {
            return Err(ClientError::NotRunning);
        }
        DaemonClient::new(state.base_url())
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
    pub async fn get(&self, path: &str, timeout: Duration) -> Result<Value, ClientError> {
        self.get_as(path, timeout).await
    }

    /// `GET path` → the envelope's data as the route's answer type.
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        self.send(self.http.get(self.url(path)), timeout).await
    }

    /// `POST path` with a JSON body → the envelope's data.
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.post_as(path, body, timeout).await
    }

    /// `POST path` with a JSON body → the envelope's data as the route's answer type.
    pub async fn post_as<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, ClientError> {
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

    /// A transport failure, in words without the URL's query.
    pub fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.base_url.clone(),
            message: describe_error(e),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let resp = self
            .authorize(req)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        let data = decode_envelope(status, &body)?;
        serde_json::from_value(data).map_err(|e| {
            ClientError::Api(homeboy_api::ApiError::new(
                homeboy_api::ErrorKind::Internal,
                "client.unexpected_answer",
                format!("HTTP {status}: the answer does not have the contract's shape: {e}"),
            ))
        })
    }
}
