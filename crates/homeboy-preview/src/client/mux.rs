//! The multiplexed channel, client side: the client dials the ingress once, upgrades the connection
//! (`Upgrade: homeboy-preview-h2`) and answers HTTP/2 on it, each public request a stream of its own that
//! is forwarded to the local origin with its bodies streamed both ways. A stream the ingress resets (the
//! browser went away) drops its local request. A stream marked as an upgrade (WebSocket) opens a switched
//! connection to the local origin ([`super::upgrade`]).
//!
//! The connection ends when the ingress closes it, the network breaks or keepalive pings go unanswered;
//! the session then reports the loss and the client registers again and reconnects (with backoff). When
//! the upgrade itself is refused by something in between (a proxy that strips `Upgrade`), an `auto` client
//! falls back to long-poll. On shutdown the client sends `GOAWAY` and lets the streams in flight finish.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};

use super::local::{failure_response, origin_form};
use super::{ClientEvent, Session, upgrade};
use crate::body::{self, ProxyBody};
use crate::channel::mux::server_builder;
use crate::channel::wire::{self, HEADER_CLIENT_ERROR, LOCAL_ORIGIN_FAILED};
use crate::pool::{ForwardError, describe};

/// Holds the channel until `stop` turns true (then finishes the streams in flight) or the connection
/// ends (reported on `lost`).
pub async fn channel(
    session: Arc<Session>,
    lost: mpsc::Sender<String>,
    mut stop: watch::Receiver<bool>,
) {
    let upgraded = match session.api.connect(&session.channel_id).await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            // Refused by something other than the ingress's session rules (a proxy that strips or
            // refuses upgrades): reconnecting will not help.
            if e.code().is_some_and(|code| !code.starts_with("preview.")) {
                session
                    .upgrade_refused
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            let _ = lost
                .send(format!(
                    "opening the channel connection failed: {}",
                    e.describe()
                ))
                .await;
            return;
        }
    };
    let service = {
        let session = session.clone();
        service_fn(move |req: Request<Incoming>| {
            let session = session.clone();
            async move { Ok::<_, Infallible>(serve(&session, req).await) }
        })
    };
    let conn = server_builder(session.keepalive).serve_connection(TokioIo::new(upgraded), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if !*stop.borrow() {
        let reason = match ended {
            Ok(()) => "the ingress closed the channel".to_string(),
            Err(e) => format!("the channel broke: {}", describe(&e)),
        };
        let _ = lost.send(reason).await;
    }
}

/// One stream: the local origin's answer, or a 502 saying why there is none.
async fn serve(session: &Session, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let uri = req.uri().clone();
    let answer = match req.headers_mut().remove(wire::HEADER_UPGRADE_REQUEST) {
        Some(protocol) => upgrade::serve(session, req, protocol).await,
        None => {
            let req = origin_form(req.map(body::boxed));
            session
                .local
                .send(req, session.local_timeout)
                .await
                .map(|mut response| {
                    // Only this client may say that a stream switched protocols.
                    response.headers_mut().remove(wire::HEADER_UPGRADED);
                    response
                })
        }
    };
    answer.unwrap_or_else(|error| {
        let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
        failed(session, path, &error)
    })
}

fn failed(session: &Session, path: &str, error: &ForwardError) -> Response<ProxyBody> {
    session.emit(ClientEvent::LocalOriginFailed {
        path: path.split('?').next().unwrap_or("/").to_string(),
        message: error.message().to_string(),
    });
    let (status, headers, bytes) = failure_response(None, session.api.public_host(), path, error);
    let mut response = Response::new(body::full(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response.headers_mut().insert(
        HEADER_CLIENT_ERROR,
        HeaderValue::from_static(LOCAL_ORIGIN_FAILED),
    );
    response
}
