//! The long-poll transport, client side: several polls stay parked on `next`; each request that arrives is
//! forwarded to the local origin on its own task while the poll goes straight back to waiting, so a page's
//! static assets are fetched concurrently. Bodies larger than one message travel in chunks: request bodies
//! are pulled with `request-body`, response bodies pushed with `respond-chunk`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use tokio::sync::mpsc;

use super::api::CallError;
use super::local::{failure_response, origin_form};
use super::{ClientEvent, Session};
use crate::body::{self, ProxyBody};
use crate::channel::wire::{
    self, ChannelError, ChannelRequest, ChannelResponse, MAX_CHUNK_BYTES, NextRequest,
    NextResponse, RequestBodyRequest, RequestBodyResponse, RespondChunkRequest, RespondRequest,
};
use crate::headers;
use crate::pool::ForwardError;

/// Channel calls that answer at once get this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// One parked poll, re-parked after every answer, until the channel is lost (reported on `lost`).
pub async fn poller(session: Arc<Session>, lost: mpsc::Sender<String>) {
    let request = NextRequest {
        public_host: session.api.public_host().to_string(),
        channel_id: session.channel_id.clone(),
        timeout_secs: session.poll_timeout_secs,
    };
    let wait = Duration::from_secs(session.poll_timeout_secs + 15);
    loop {
        let answer: Result<NextResponse, CallError> =
            session.api.post(wire::NEXT, &request, wait).await;
        match answer {
            Ok(NextResponse { request: None }) => {}
            Ok(NextResponse { request: Some(req) }) => {
                let session2 = session.clone();
                session
                    .in_flight
                    .spawn(async move { handle(&session2, req).await });
            }
            Err(e) => {
                let _ = lost
                    .send(format!("polling the ingress failed: {}", e.describe()))
                    .await;
                return;
            }
        }
    }
}

/// Forwards one request to the local origin and sends the answer back.
async fn handle(session: &Session, req: ChannelRequest) {
    let request_id = req.request_id.clone();
    let path = req.path.clone();
    let local_request = match build_request(session, req) {
        Ok(r) => r,
        Err(problem) => {
            let error = ForwardError::Failed(format!(
                "the ingress sent a request it cannot be: {problem}"
            ));
            respond_failure(session, &request_id, &path, &error).await;
            return;
        }
    };
    match session
        .local
        .send(local_request, session.local_timeout)
        .await
    {
        Err(error) => {
            session.emit(ClientEvent::LocalOriginFailed {
                path: path.split('?').next().unwrap_or("/").to_string(),
                message: error.message().to_string(),
            });
            respond_failure(session, &request_id, &path, &error).await;
        }
        Ok(response) => {
            let (parts, mut body) = response.into_parts();
            let (first, done) = match body::read_chunk(&mut body, MAX_CHUNK_BYTES).await {
                Ok(read) => read,
                Err(e) => {
                    let error =
                        ForwardError::Failed(format!("reading the local response failed: {e}"));
                    respond_failure(session, &request_id, &path, &error).await;
                    return;
                }
            };
            let answer = ChannelResponse {
                request_id: request_id.clone(),
                status: parts.status.as_u16(),
                headers: headers::to_json(&parts.headers),
                body_base64: wire::encode(&first),
                error: None,
                more: !done,
            };
            if respond(session, answer).await.is_err() || done {
                return;
            }
            stream_rest(session, &request_id, body).await;
        }
    }
}

/// Sends the rest of a response body, one `respond-chunk` per chunk, stopping if the browser left.
async fn stream_rest(session: &Session, request_id: &str, mut body: ProxyBody) {
    loop {
        let (chunk, done, abort) = match body::read_chunk(&mut body, MAX_CHUNK_BYTES).await {
            Ok((chunk, done)) => (chunk, done, false),
            Err(_) => (Bytes::new(), true, true),
        };
        let message = RespondChunkRequest {
            public_host: session.api.public_host().to_string(),
            request_id: request_id.to_string(),
            body_base64: wire::encode(&chunk),
            done,
            abort,
        };
        let sent: Result<serde_json::Value, CallError> = session
            .api
            .post(wire::RESPOND_CHUNK, &message, CALL_TIMEOUT)
            .await;
        if sent.is_err() || done {
            return;
        }
    }
}

fn build_request(session: &Session, req: ChannelRequest) -> Result<Request<ProxyBody>, String> {
    let method =
        Method::from_bytes(req.method.as_bytes()).map_err(|_| "a bad method".to_string())?;
    let header_map: HeaderMap = headers::from_json(&req.headers)?;
    let first = match &req.body_base64 {
        Some(text) => Bytes::from(wire::decode(text)?),
        None => Bytes::new(),
    };
    let body = if req.body_more {
        let (tx, body) = body::channel(Some(first), 2);
        let api = session.api.clone();
        let request_id = req.request_id.clone();
        tokio::spawn(async move {
            let ask = RequestBodyRequest {
                public_host: api.public_host().to_string(),
                request_id,
            };
            loop {
                let next: Result<RequestBodyResponse, CallError> =
                    api.post(wire::REQUEST_BODY, &ask, CALL_TIMEOUT).await;
                let (chunk, done) = match next
                    .map_err(|e| e.describe())
                    .and_then(|r| wire::decode(&r.body_base64).map(|c| (c, r.done)))
                {
                    Ok(read) => read,
                    Err(problem) => {
                        let _ = tx.send(Err(problem.into())).await;
                        return;
                    }
                };
                if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                    return;
                }
                if done {
                    return;
                }
            }
        });
        body
    } else {
        body::full(first)
    };
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = req.path.parse().map_err(|_| "a bad path".to_string())?;
    *request.headers_mut() = header_map;
    Ok(origin_form(request))
}

async fn respond(session: &Session, response: ChannelResponse) -> Result<(), CallError> {
    let message = RespondRequest {
        public_host: session.api.public_host().to_string(),
        response,
    };
    session
        .api
        .post::<serde_json::Value>(wire::RESPOND, &message, CALL_TIMEOUT)
        .await
        .map(|_| ())
}

async fn respond_failure(session: &Session, request_id: &str, path: &str, error: &ForwardError) {
    let (status, header_map, body) =
        failure_response(Some(request_id), session.api.public_host(), path, error);
    let answer = ChannelResponse {
        request_id: request_id.to_string(),
        status: status.as_u16(),
        headers: headers::to_json(&header_map),
        body_base64: wire::encode(&body),
        error: Some(ChannelError {
            kind: wire::LOCAL_ORIGIN_FAILED.to_string(),
            message: error.message().to_string(),
        }),
        more: false,
    };
    debug_assert_eq!(status, StatusCode::BAD_GATEWAY);
    let _ = respond(session, answer).await;
}
