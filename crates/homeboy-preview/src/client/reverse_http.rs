//! The reverse-HTTP transport, client side: the client dials the ingress, upgrades each connection, and
//! then serves plain HTTP/1.1 on it, forwarding every request to the local origin with bodies streamed as
//! bytes. A manager keeps a few spare connections idle and dials more whenever they get busy, so the
//! ingress always has a connection to send the next request on; on shutdown each connection finishes the
//! request it is serving and closes.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use super::local::{failure_response, origin_form};
use super::{ClientEvent, Session};
use crate::body::{self, ProxyBody};
use crate::channel::wire::{HEADER_CLIENT_ERROR, LOCAL_ORIGIN_FAILED};

#[derive(Default)]
struct Counts {
    idle: AtomicUsize,
    open: AtomicUsize,
    dialing: AtomicUsize,
    wake: Notify,
}

/// Keeps `spare` idle connections (and at most `max` open) until `stop` turns true or a dial fails
/// (reported on `lost`).
pub async fn manager(
    session: Arc<Session>,
    lost: mpsc::Sender<String>,
    mut stop: watch::Receiver<bool>,
) {
    let counts = Arc::new(Counts::default());
    let mut connections = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        loop {
            let idle = counts.idle.load(Ordering::Acquire);
            let open = counts.open.load(Ordering::Acquire);
            let dialing = counts.dialing.load(Ordering::Acquire);
            if idle + dialing >= session.spare_connections
                || open + dialing >= session.max_connections
            {
                break;
            }
            counts.dialing.fetch_add(1, Ordering::AcqRel);
            connections.spawn(connection(
                session.clone(),
                counts.clone(),
                lost.clone(),
                stop.clone(),
            ));
        }
        tokio::select! {
            () = counts.wake.notified() => {}
            _ = stop.changed() => {}
            Some(_) = connections.join_next() => {}
        }
    }
    while connections.join_next().await.is_some() {}
}

async fn connection(
    session: Arc<Session>,
    counts: Arc<Counts>,
    lost: mpsc::Sender<String>,
    mut stop: watch::Receiver<bool>,
) {
    let dialed = session.api.connect(&session.channel_id).await;
    counts.dialing.fetch_sub(1, Ordering::AcqRel);
    let upgraded = match dialed {
        Ok(upgraded) => upgraded,
        Err(e) => {
            let _ = lost
                .send(format!(
                    "opening a reverse connection failed: {}",
                    e.describe()
                ))
                .await;
            counts.wake.notify_one();
            return;
        }
    };
    counts.open.fetch_add(1, Ordering::AcqRel);
    counts.idle.fetch_add(1, Ordering::AcqRel);
    counts.wake.notify_one();
    let idle = Arc::new(AtomicBool::new(true));
    let service = {
        let (session, counts, idle) = (session.clone(), counts.clone(), idle.clone());
        service_fn(move |req: Request<Incoming>| {
            let (session, counts, idle) = (session.clone(), counts.clone(), idle.clone());
            async move { Ok::<_, Infallible>(serve(&session, &counts, idle, req).await) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(upgraded), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    counts.open.fetch_sub(1, Ordering::AcqRel);
    if idle.load(Ordering::Acquire) {
        counts.idle.fetch_sub(1, Ordering::AcqRel);
    }
    counts.wake.notify_one();
}

/// One request on a reverse connection: marked busy until its response body has been sent.
async fn serve(
    session: &Session,
    counts: &Arc<Counts>,
    idle: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    if idle.swap(false, Ordering::AcqRel) {
        counts.idle.fetch_sub(1, Ordering::AcqRel);
        counts.wake.notify_one();
    }
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let req = origin_form(req.map(body::boxed));
    let response = match session.local.send(req, session.local_timeout).await {
        Ok(response) => response,
        Err(error) => {
            session.emit(ClientEvent::LocalOriginFailed {
                path: path.split('?').next().unwrap_or("/").to_string(),
                message: error.message().to_string(),
            });
            let (status, headers, bytes) =
                failure_response(None, session.api.public_host(), &path, &error);
            let mut response = Response::new(body::full(bytes));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response.headers_mut().insert(
                HEADER_CLIENT_ERROR,
                HeaderValue::from_static(LOCAL_ORIGIN_FAILED),
            );
            response
        }
    };
    let counts = counts.clone();
    let (mut parts, inner) = response.into_parts();
    parts.version = hyper::Version::HTTP_11;
    let observed = body::Observed::new(inner, move |_, _| {
        if !idle.swap(true, Ordering::AcqRel) {
            counts.idle.fetch_add(1, Ordering::AcqRel);
            counts.wake.notify_one();
        }
    });
    Response::from_parts(parts, body::boxed(observed))
}
