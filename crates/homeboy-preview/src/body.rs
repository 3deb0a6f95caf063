//! Message bodies as they move through a preview hop: one boxed streaming body type for every source
//! (a socket, a buffer, chunks arriving over the long-poll channel), chunked reads that never hold more than
//! one chunk, and an observer that reports how many bytes went through when a body ends or is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// The error type of every body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response a preview hop forwards.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Boxes any body with byte chunks.
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// A body fed through a bounded channel, after an optional first chunk. The sender side waits when the
/// receiver is `capacity` chunks behind, which is the backpressure of the long-poll transport.
pub fn channel(
    first: Option<Bytes>,
    capacity: usize,
) -> (mpsc::Sender<Result<Bytes, BoxError>>, ProxyBody) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        tx,
        ChannelBody {
            first: first.filter(|b| !b.is_empty()),
            rx,
        }
        .boxed(),
    )
}

struct ChannelBody {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        self.rx
            .poll_recv(cx)
            .map(|next| next.map(|chunk| chunk.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rx.is_closed() && self.rx.is_empty()
    }
}

/// Reads up to `limit` bytes: waits for the first data frame, then takes further frames only while they
/// are ready at once, so a stream that trickles is forwarded without delay and a fast one in large chunks.
/// Returns the bytes and whether the body has ended.
pub async fn read_chunk(body: &mut ProxyBody, limit: usize) -> Result<(Bytes, bool), BoxError> {
    let mut buf = BytesMut::new();
    let mut waited = false;
    while buf.len() < limit {
        let next = if waited {
            match body.frame().now_or_never() {
                Some(next) => next,
                None => return Ok((buf.freeze(), false)),
            }
        } else {
            body.frame().await
        };
        match next {
            None => return Ok((buf.freeze(), true)),
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    if buf.is_empty() && data.len() >= limit {
                        return Ok((data, body.is_end_stream()));
                    }
                    buf.extend_from_slice(&data);
                    waited = true;
                }
            }
        }
    }
    let done = body.is_end_stream();
    Ok((buf.freeze(), done))
}

/// Reads until `limit` bytes are buffered or the body ends (for the first message of a request, whose
/// body should travel whole when it is small).
pub async fn read_up_to(body: &mut ProxyBody, limit: usize) -> Result<(Bytes, bool), BoxError> {
    let mut buf = BytesMut::new();
    while buf.len() < limit {
        match body.frame().await {
            None => return Ok((buf.freeze(), true)),
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    let done = body.is_end_stream();
    Ok((buf.freeze(), done))
}

/// Calls `on_end(bytes, finished)` exactly once: when the body ends (`finished = true`) or is dropped early.
pub struct Observed<F: FnOnce(u64, bool) + Send + Sync + 'static> {
    inner: ProxyBody,
    bytes: u64,
    expected: Option<u64>,
    on_end: Option<F>,
}

impl<F: FnOnce(u64, bool) + Send + Sync + 'static> Observed<F> {
    pub fn new(inner: ProxyBody, on_end: F) -> Self {
        Observed {
            expected: inner.size_hint().exact(),
            inner,
            bytes: 0,
            on_end: Some(on_end),
        }
    }

    /// The body is complete once `len` bytes went through (a `Content-Length` the server stops at).
    pub fn expecting(mut self, len: Option<u64>) -> Self {
        if len.is_some() {
            self.expected = len;
        }
        self
    }

    fn finish(&mut self, finished: bool) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.bytes, finished);
        }
    }
}

impl<F: FnOnce(u64, bool) + Send + Sync + Unpin + 'static> Body for Observed<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<F: FnOnce(u64, bool) + Send + Sync + 'static> Drop for Observed<F> {
    fn drop(&mut self) {
        let finished = self.inner.is_end_stream() || self.expected == Some(self.bytes);
        self.finish(finished);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn chunked_reads_respect_the_limit() {
        let (tx, mut body) = channel(Some(Bytes::from_static(b"abc")), 8);
        tx.send(Ok(Bytes::from_static(b"defgh"))).await.unwrap();
        let (chunk, done) = read_chunk(&mut body, 4).await.unwrap();
        assert_eq!((&chunk[..], done), (&b"abcdefgh"[..], false));
        tx.send(Ok(Bytes::from_static(b"ij"))).await.unwrap();
        drop(tx);
        let (chunk, _) = read_chunk(&mut body, 4).await.unwrap();
        assert_eq!(&chunk[..], b"ij");
        let (chunk, done) = read_chunk(&mut body, 4).await.unwrap();
        assert!(chunk.is_empty() && done);

        let mut whole = full(Bytes::from(vec![7u8; 10]));
        let (chunk, done) = read_up_to(&mut whole, 100).await.unwrap();
        assert_eq!((chunk.len(), done), (10, true));
    }

    #[tokio::test]
    async fn observer_reports_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let body = Observed::new(full(Bytes::from_static(b"hello")), move |n, ok| {
            s.lock().unwrap().push((n, ok))
        });
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(*seen.lock().unwrap(), vec![(5, true)]);

        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let (_tx, inner) = channel(None, 1);
        drop(Observed::new(inner, move |n, ok| {
            s.lock().unwrap().push((n, ok))
        }));
        assert_eq!(*seen.lock().unwrap(), vec![(0, false)]);
    }
}
