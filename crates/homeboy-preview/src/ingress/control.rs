//! The channel API preview clients call (bearer auth, envelope responses): `register`, `next`, `respond`,
//! `respond-chunk`, `request-body`, `close`, and `connect` for the multiplexed channel.
//!
//! Every call after `register` must present the token the session was granted with (compared in constant
//! time against its digest). Answers to requests already in flight (`respond`, chunks, request bodies) are
//! accepted after the lease ended, so a download that started in time finishes; new work (`next`,
//! `connect`) needs a live lease.

use std::sync::Arc;

use bytes::Bytes;
use homeboy_api::{ApiError, ErrorKind};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Ingress, register};
use crate::body::{self, ProxyBody};
use crate::channel::ChannelSession;
use crate::channel::long_poll::ExchangeError;
use crate::channel::wire::{self, MAX_POLL_SECS};
use crate::clock;
use crate::host::host_of_header;

/// Largest channel message: one base64 chunk plus headers, with room to spare.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

pub async fn handle(ingress: &Arc<Ingress>, req: Request<Incoming>) -> Response<ProxyBody> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let token = bearer(req.headers());
    let token = token.as_deref();
    let result = if path == wire::CONNECT {
        connect(ingress, req, token)
    } else if ![
        wire::REGISTER,
        wire::NEXT,
        wire::RESPOND,
        wire::RESPOND_CHUNK,
        wire::REQUEST_BODY,
        wire::CLOSE,
    ]
    .contains(&path.as_str())
    {
        Err(ApiError::route_not_found(method.as_str(), &path))
    } else if method != Method::POST {
        Err(ApiError::method_not_allowed(
            method.as_str(),
            &path,
            &["POST"],
        ))
    } else {
        post(ingress, &path, req, token).await.map(ok)
    };
    result.unwrap_or_else(|e| error_response(&e))
}

async fn post(
    ingress: &Arc<Ingress>,
    path: &str,
    req: Request<Incoming>,
    token: Option<&str>,
) -> Result<Value, ApiError> {
    match path {
        wire::REGISTER => {
            // The edge already refused a request without exactly one Host; local as `is_local` decides (a
            // loopback Host and no proxy header), so a request through the proxy never sees file names.
            let on_the_machine = homeboy_http::host::request_host(req.headers(), req.uri())
                .is_ok_and(|host| super::is_local(req.headers(), &host.host));
            let body: wire::RegisterRequest = read_json(req).await?;
            let answer = register::register(ingress, token, body, on_the_machine).await?;
            Ok(json!(answer))
        }
        wire::NEXT => {
            let body: wire::NextRequest = read_json(req).await?;
            if !(1..=MAX_POLL_SECS).contains(&body.timeout_secs) {
                return Err(ApiError::invalid_argument(
                    "timeout_secs",
                    format!("must be between 1 and {MAX_POLL_SECS}"),
                ));
            }
            let session = live_session(ingress, &body.public_host, token, Some(&body.channel_id))?;
            let request = session
                .long_poll
                .next(std::time::Duration::from_secs(body.timeout_secs))
                .await;
            session.touch();
            Ok(json!(wire::NextResponse { request }))
        }
        wire::RESPOND => {
            let body: wire::RespondRequest = read_json(req).await?;
            let session = session(ingress, &body.public_host, token, None)?;
            session
                .long_poll
                .respond(body.response)
                .map_err(exchange_error)?;
            Ok(json!({"accepted": true}))
        }
        wire::RESPOND_CHUNK => {
            let body: wire::RespondChunkRequest = read_json(req).await?;
            let session = session(ingress, &body.public_host, token, None)?;
            let chunk = wire::decode(&body.body_base64)
                .map_err(|p| ApiError::invalid_argument("body_base64", p))?;
            session
                .long_poll
                .respond_chunk(&body.request_id, chunk, body.done, body.abort)
                .await
                .map_err(exchange_error)?;
            Ok(json!({"accepted": true}))
        }
        wire::REQUEST_BODY => {
            let body: wire::RequestBodyRequest = read_json(req).await?;
            let session = session(ingress, &body.public_host, token, None)?;
            let (chunk, done) = session
                .long_poll
                .request_body(&body.request_id)
                .await
                .map_err(exchange_error)?;
            Ok(json!(wire::RequestBodyResponse {
                body_base64: wire::encode(&chunk),
                done
            }))
        }
        wire::CLOSE => {
            let body: wire::CloseRequest = read_json(req).await?;
            let session = session(ingress, &body.public_host, token, None)?;
            register::close(ingress, &session).await?;
            Ok(json!({"closed": true}))
        }
        _ => Err(ApiError::route_not_found("POST", path)),
    }
}

/// `GET /preview/client/connect` with `Upgrade: homeboy-preview-h2`: hands the connection to the session's
/// multiplexed channel after `101 Switching Protocols`.
fn connect(
    ingress: &Arc<Ingress>,
    req: Request<Incoming>,
    token: Option<&str>,
) -> Result<Response<ProxyBody>, ApiError> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !upgrade.eq_ignore_ascii_case(wire::MUX_PROTOCOL) {
        return Err(ApiError::invalid_argument(
            "upgrade",
            format!("connect needs `Upgrade: {}`", wire::MUX_PROTOCOL),
        ));
    }
    let header_text = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let public_host = header_text(wire::HEADER_PUBLIC_HOST);
    let channel_id = header_text(wire::HEADER_CHANNEL_ID);
    let session = live_session(ingress, &public_host, token, Some(&channel_id))?;
    let on_upgrade = hyper::upgrade::on(req);
    let keepalive = ingress.options.channel_keepalive;
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            session.mux.attach(upgraded, keepalive).await;
        }
    });
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(
        header::UPGRADE,
        HeaderValue::from_static(wire::MUX_PROTOCOL),
    );
    Ok(response)
}

/// The session of `public_host`, checked for the caller's token (and channel, when given).
fn session(
    ingress: &Arc<Ingress>,
    public_host: &str,
    token: Option<&str>,
    channel_id: Option<&str>,
) -> Result<Arc<ChannelSession>, ApiError> {
    let host = host_of_header(public_host);
    let session = ingress
        .session(&host)
        .filter(|s| channel_id.is_none_or(|c| c == s.channel_id))
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                "preview.channel_not_found",
                format!("no open preview channel for {host:?}"),
            )
            .with_detail("public_host", host.clone())
            .with_hint("register again: the ingress may have restarted or the session was replaced")
        })?;
    if !session.token_ok(token) {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "preview.auth_denied",
            "the bearer token is not the one this preview session was granted with",
        )
        .with_detail("claim", "token")
        .with_detail("field", "token")
        .with_detail("problem", "does not match the session's token"));
    }
    session.touch();
    Ok(session)
}

/// Like [`session`], for new work: the session must be open and its lease unexpired.
fn live_session(
    ingress: &Arc<Ingress>,
    public_host: &str,
    token: Option<&str>,
    channel_id: Option<&str>,
) -> Result<Arc<ChannelSession>, ApiError> {
    let session = session(ingress, public_host, token, channel_id)?;
    if session.is_closed() {
        return Err(ApiError::new(
            ErrorKind::Gone,
            "preview.session_closed",
            "this preview session was closed",
        )
        .with_hint("register again to open a new session"));
    }
    if session.lease_expired(clock::now()) {
        return Err(ApiError::new(
            ErrorKind::Gone,
            "preview.lease_expired",
            "the lease of this preview session has expired",
        )
        .with_hint("register again to renew the lease"));
    }
    Ok(session)
}

fn exchange_error(e: ExchangeError) -> ApiError {
    match e {
        ExchangeError::UnknownRequest => ApiError::new(
            ErrorKind::NotFound,
            "preview.request_not_found",
            "no request with this id is waiting for an answer (it was answered or timed out)",
        ),
        ExchangeError::AlreadyAnswered => ApiError::new(
            ErrorKind::Conflict,
            "preview.request_already_answered",
            "this request was already answered",
        ),
        ExchangeError::NotStreaming => ApiError::new(
            ErrorKind::Conflict,
            "preview.response_not_streaming",
            "the response to this request was not announced with more: true",
        ),
        ExchangeError::Gone => ApiError::new(
            ErrorKind::Gone,
            "preview.request_gone",
            "the browser that sent this request is gone",
        ),
        ExchangeError::Invalid { field, problem } => ApiError::invalid_argument(field, problem),
    }
}

/// `Authorization: Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    homeboy_api::auth::bearer_token(value).map(str::to_string)
}

async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    let bytes: Bytes = match Limited::new(req.into_body(), MAX_MESSAGE_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::payload_too_large(MAX_MESSAGE_BYTES));
        }
        Err(_) => {
            return Err(ApiError::invalid_json("the request body could not be read"));
        }
    };
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid_json(e.to_string()))?;
    homeboy_config::declarations::from_value_fields(value).map_err(|e| {
        let field = if e.field.is_empty() {
            "body".to_string()
        } else {
            e.field
        };
        ApiError::invalid_argument(field, e.problem)
    })
}

fn ok(data: Value) -> Response<ProxyBody> {
    homeboy_http::success_response(&data).map(body::boxed)
}

/// An error envelope as a response, through the shared edge (a 405 names the allowed methods in `Allow`, a
/// 413 closes the connection).
pub fn error_response(error: &ApiError) -> Response<ProxyBody> {
    homeboy_http::error_response(error).map(body::boxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_allow_and_close_where_http_wants_them() {
        let r = error_response(&ApiError::method_not_allowed("GET", wire::NEXT, &["POST"]));
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[header::ALLOW], "POST");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let r = error_response(&ApiError::payload_too_large(MAX_MESSAGE_BYTES));
        assert_eq!(r.status(), 413);
        assert_eq!(r.headers()[header::CONNECTION], "close");
    }
}
