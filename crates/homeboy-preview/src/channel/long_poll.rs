//! The long-poll transport, ingress side: public requests wait in a queue until one of the client's parked
//! `next` calls takes them; the client answers with `respond` (and `respond-chunk` for bodies larger than one
//! message) and pulls large request bodies with `request-body`.
//!
//! Nothing is buffered whole: a request body is held as the stream it is and read one chunk per
//! `request-body` call; a response body is a bounded channel that `respond-chunk` feeds, so a slow browser
//! slows the client down instead of filling the ingress's memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use hyper::{Request, Response, StatusCode};
use tokio::sync::{Notify, mpsc, oneshot};

use super::Transport;
use super::wire::{self, ChannelRequest, ChannelResponse, MAX_CHUNK_BYTES};
use crate::body::{self, BoxError, ProxyBody};
use crate::headers;
use crate::pool::ForwardError;

/// A response that the client built because its local origin failed (kept as a response extension so the
/// ingress can log it as an upstream error).
#[derive(Debug, Clone)]
pub struct ClientReportedError(pub wire::ChannelError);

/// Why a channel call about one request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeError {
    /// No such request in flight (answered, timed out, or never existed).
    UnknownRequest,
    /// The request was already answered.
    AlreadyAnswered,
    /// The response was not announced with `more: true`.
    NotStreaming,
    /// The public client went away.
    Gone,
    /// The answer is malformed.
    Invalid { field: String, problem: String },
}

struct Exchange {
    request: ChannelRequest,
    request_body: tokio::sync::Mutex<Option<ProxyBody>>,
    head: Mutex<Option<oneshot::Sender<Response<ProxyBody>>>>,
    body: Mutex<Option<mpsc::Sender<Result<Bytes, BoxError>>>>,
}

/// The long-poll queue and the requests in flight of one session.
pub struct LongPoll {
    queue: Arc<Mutex<VecDeque<Arc<Exchange>>>>,
    queued: Notify,
    inflight: Arc<Mutex<HashMap<String, Arc<Exchange>>>>,
    parked: AtomicUsize,
    used: AtomicBool,
    closed: AtomicBool,
    draining: AtomicBool,
}

impl Default for LongPoll {
    fn default() -> Self {
        Self::new()
    }
}

impl LongPoll {
    pub fn new() -> Self {
        LongPoll {
            queue: Arc::new(Mutex::new(VecDeque::new())),
            queued: Notify::new(),
            inflight: Arc::new(Mutex::new(HashMap::new())),
            parked: AtomicUsize::new(0),
            used: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    /// `next`: the oldest queued request, waiting up to `wait` for one. `None` when none came (or the
    /// session closed). While the ingress drains, polls return within a second so the client can answer
    /// what it holds and leave.
    pub async fn next(&self, wait: Duration) -> Option<ChannelRequest> {
        self.used.store(true, Ordering::Relaxed);
        self.parked.fetch_add(1, Ordering::AcqRel);
        let _parked = Decrement(&self.parked);
        let wait = if self.draining.load(Ordering::Acquire) {
            wait.min(Duration::from_secs(1))
        } else {
            wait
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.queued.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            if let Some(exchange) = self.pop() {
                return Some(exchange.request.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    fn pop(&self) -> Option<Arc<Exchange>> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    fn exchange(&self, request_id: &str) -> Result<Arc<Exchange>, ExchangeError> {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(request_id)
            .cloned()
            .ok_or(ExchangeError::UnknownRequest)
    }

    /// `respond`: the client's answer to a request. With `more`, the body continues through
    /// [`LongPoll::respond_chunk`].
    pub fn respond(&self, answer: ChannelResponse) -> Result<(), ExchangeError> {
        let exchange = self.exchange(&answer.request_id)?;
        let invalid = |field: &str, problem: String| ExchangeError::Invalid {
            field: format!("response.{field}"),
            problem,
        };
        let status = StatusCode::from_u16(answer.status)
            .ok()
            .filter(|s| !s.is_informational())
            .ok_or_else(|| {
                invalid(
                    "status",
                    format!("{} is not a final HTTP status", answer.status),
                )
            })?;
        let mut header_map =
            headers::from_json(&answer.headers).map_err(|p| invalid("headers", p))?;
        headers::strip_hop_by_hop(&mut header_map);
        let first = wire::decode(&answer.body_base64).map_err(|p| invalid("body_base64", p))?;
        let head = exchange
            .head
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or(ExchangeError::AlreadyAnswered)?;
        let body = if answer.more {
            let (tx, body) = body::channel(Some(Bytes::from(first)), 4);
            *exchange.body.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
            body
        } else {
            body::full(first)
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = header_map;
        if let Some(error) = answer.error {
            response.extensions_mut().insert(ClientReportedError(error));
        }
        head.send(response).map_err(|_| ExchangeError::Gone)
    }

    /// `respond-chunk`: the next piece of a streaming response; waits while the browser is behind. With
    /// `abort`, the public response is cut off (the browser sees a broken transfer, not a short file).
    pub async fn respond_chunk(
        &self,
        request_id: &str,
        chunk: Vec<u8>,
        done: bool,
        abort: bool,
    ) -> Result<(), ExchangeError> {
        let exchange = self.exchange(request_id)?;
        let tx = exchange
            .body
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(ExchangeError::NotStreaming)?;
        if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
            return Err(ExchangeError::Gone);
        }
        if abort {
            let _ = tx
                .send(Err("the preview client's local response broke off".into()))
                .await;
        }
        if done || abort {
            exchange
                .body
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
        }
        Ok(())
    }

    /// `request-body`: the next chunk of a request body announced with `body_more`.
    pub async fn request_body(&self, request_id: &str) -> Result<(Vec<u8>, bool), ExchangeError> {
        let exchange = self.exchange(request_id)?;
        let mut slot = exchange.request_body.lock().await;
        let Some(rest) = slot.as_mut() else {
            return Ok((Vec::new(), true));
        };
        match body::read_chunk(rest, MAX_CHUNK_BYTES).await {
            Ok((chunk, done)) => {
                if done {
                    *slot = None;
                }
                Ok((chunk.to_vec(), done))
            }
            Err(_) => {
                *slot = None;
                Err(ExchangeError::Gone)
            }
        }
    }

    /// Polls return promptly from now on (the ingress is shutting down).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        self.queued.notify_waiters();
    }

    async fn forward_inner(
        &self,
        request_id: &str,
        req: Request<ProxyBody>,
        wait: Duration,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ForwardError::Failed(
                "the preview client closed the session".into(),
            ));
        }
        let (parts, mut rest) = req.into_parts();
        let (first, done) = body::read_up_to(&mut rest, MAX_CHUNK_BYTES)
            .await
            .map_err(|e| ForwardError::Failed(format!("reading the request body failed: {e}")))?;
        let request = ChannelRequest {
            request_id: request_id.to_string(),
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_string(),
            headers: headers::to_json(&parts.headers),
            body_base64: (!first.is_empty()).then(|| wire::encode(&first)),
            body_more: !done,
        };
        let (head_tx, head_rx) = oneshot::channel();
        let exchange = Arc::new(Exchange {
            request,
            request_body: tokio::sync::Mutex::new((!done).then_some(rest)),
            head: Mutex::new(Some(head_tx)),
            body: Mutex::new(None),
        });
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request_id.to_string(), exchange.clone());
        let guard = Forgetting {
            queue: self.queue.clone(),
            inflight: self.inflight.clone(),
            request_id: request_id.to_string(),
            exchange: exchange.clone(),
        };
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(exchange);
        self.queued.notify_one();
        match tokio::time::timeout(wait, head_rx).await {
            Err(_) => Err(ForwardError::Timeout(format!(
                "the preview client did not answer within {wait:?}"
            ))),
            Ok(Err(_)) => Err(ForwardError::Failed(
                "the preview client session ended before it answered".into(),
            )),
            Ok(Ok(response)) => {
                // The request stays in flight until its body has gone to the browser.
                let (parts, body) = response.into_parts();
                let body = body::Observed::new(body, move |_, _| drop(guard));
                Ok(Response::from_parts(parts, body::boxed(body)))
            }
        }
    }
}

impl Transport for LongPoll {
    fn name(&self) -> &'static str {
        wire::TRANSPORT_LONG_POLL
    }

    fn forward<'a>(
        &'a self,
        request_id: &'a str,
        req: Request<ProxyBody>,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Response<ProxyBody>, ForwardError>> {
        Box::pin(self.forward_inner(request_id, req, wait))
    }

    fn attached(&self) -> bool {
        self.parked.load(Ordering::Acquire) > 0
    }

    fn in_use(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.queued.notify_waiters();
        // Waiting requests fail now rather than at their timeout.
        let queued: Vec<_> = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for exchange in queued {
            exchange
                .head
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
        }
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "parked_polls": self.parked.load(Ordering::Acquire),
            "queued": self.queue.lock().unwrap_or_else(|p| p.into_inner()).len(),
            "in_flight": self.inflight.lock().unwrap_or_else(|p| p.into_inner()).len(),
        })
    }
}

/// Removes a request from the in-flight map (and from the queue if no poll took it) when it is over.
struct Forgetting {
    queue: Arc<Mutex<VecDeque<Arc<Exchange>>>>,
    inflight: Arc<Mutex<HashMap<String, Arc<Exchange>>>>,
    request_id: String,
    exchange: Arc<Exchange>,
}

impl Drop for Forgetting {
    fn drop(&mut self) {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.request_id);
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|e| !Arc::ptr_eq(e, &self.exchange));
    }
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
