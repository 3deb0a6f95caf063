//! Bytes after a protocol switch (`101 Switching Protocols`: WebSocket, or any HTTP/1.1 `Upgrade`), shared
//! by the ingress and the preview client: pumping both directions between two upgraded connections (a
//! direct route), or between an upgraded connection and a pair of streamed bodies (one stream of the
//! multiplexed channel: the request body carries one direction, the response body the other).
//!
//! Each direction is copied with backpressure (a bounded body channel, the multiplexer's flow control, the
//! sockets' own). When one side closes, the other side's write half is shut down at once; the remaining
//! direction then gets [`LINGER`] to finish (a WebSocket's close handshake), after which both are dropped.
//! An error in either direction drops both at once (which resets the stream on the channel). It also holds
//! [`request_switch`] (asking an upstream for the switch on a connection of its own) and [`Switched`], the
//! mark a `101` answer carries through the ingress so its `Upgrade` header survives the hop-by-hop filter.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::http::response::Parts;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::body::{BoxError, ProxyBody};
use crate::pool::{ForwardError, Upstream, describe};

/// How long the other direction may still run after one side closed.
pub const LINGER: Duration = Duration::from_secs(5);
/// Largest chunk read from an upgraded connection at once.
const CHUNK: usize = 64 * 1024;

/// A response extension: this `101` switched the connection to the protocol named here.
#[derive(Debug, Clone)]
pub struct Switched(pub HeaderValue);

/// Puts `Connection: upgrade` and `Upgrade: <protocol>` on a `101` answer marked [`Switched`] (after the
/// hop-by-hop filter removed them).
pub fn restore_upgrade_headers(parts: &mut hyper::http::response::Parts) {
    if let Some(Switched(protocol)) = parts.extensions.remove::<Switched>() {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, protocol);
    }
}

/// Whether a request asks for a protocol switch: `Connection: upgrade` and an `Upgrade` header, and no
/// body (a body would have to travel before the switch; such a request is forwarded as a plain one).
pub fn requested_upgrade(headers: &hyper::HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let bodyless = !headers.contains_key(header::TRANSFER_ENCODING)
        && headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0");
    let protocol = headers.get(header::UPGRADE)?;
    (wants && bodyless && !protocol.is_empty()).then(|| protocol.clone())
}

/// What an upstream answered to a request to switch protocols.
pub enum Switch {
    /// It answered normally (no switch).
    Answered(Response<Incoming>),
    /// It switched (`101`): its answer's head, and the connection from then on.
    Switched { head: Parts, io: Upgraded },
}

/// Asks `upstream`, on a connection of its own, to switch `req` (hop-by-hop headers already gone) to
/// `protocol`.
pub async fn request_switch(
    upstream: &Upstream,
    mut req: Request<ProxyBody>,
    protocol: HeaderValue,
) -> Result<Switch, ForwardError> {
    let h = req.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, protocol);
    let mut sender = upstream.dial().await?;
    let mut response = sender
        .send_request(req)
        .await
        .map_err(|e| ForwardError::Failed(describe(&e)))?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(Switch::Answered(response));
    }
    let switched = hyper::upgrade::on(&mut response);
    let (head, _) = response.into_parts();
    let io = switched
        .await
        .map_err(|e| ForwardError::Failed(describe(&e)))?;
    Ok(Switch::Switched { head, io })
}

/// Copies between two upgraded connections until both directions end (see the module doc).
pub async fn connections<A, B>(a: A, b: B)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let forth = async {
        let copied = tokio::io::copy(&mut a_read, &mut b_write).await;
        let _ = b_write.shutdown().await;
        copied.is_ok()
    };
    let back = async {
        let copied = tokio::io::copy(&mut b_read, &mut a_write).await;
        let _ = a_write.shutdown().await;
        copied.is_ok()
    };
    both_with_linger(forth, back).await;
}

/// Copies between an upgraded connection and a stream: `incoming`'s bytes are written to `io`, and what
/// `io` sends goes to `outgoing` (the body of the other direction), until both directions end.
pub async fn with_bodies<IO>(
    io: IO,
    mut incoming: ProxyBody,
    outgoing: mpsc::Sender<Result<Bytes, BoxError>>,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(io);
    let up = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match reader.read(&mut buf).await {
                // Dropping the sender ends the body: the other side sees the close.
                Ok(0) => return true,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(&buf[..n]);
                    if outgoing.send(Ok(chunk)).await.is_err() {
                        return false;
                    }
                }
                Err(e) => {
                    let _ = outgoing.send(Err(Box::new(e))).await;
                    return false;
                }
            }
        }
    };
    let down = async move {
        while let Some(frame) = incoming.frame().await {
            let Ok(frame) = frame else { return false };
            if let Ok(data) = frame.into_data()
                && writer.write_all(&data).await.is_err()
            {
                return false;
            }
        }
        let _ = writer.shutdown().await;
        true
    };
    both_with_linger(up, down).await;
}

/// Runs both directions; once one ends cleanly the other gets [`LINGER`], once one fails both stop.
async fn both_with_linger(a: impl Future<Output = bool>, b: impl Future<Output = bool>) {
    tokio::pin!(a, b);
    tokio::select! {
        clean = &mut a => if clean { let _ = tokio::time::timeout(LINGER, &mut b).await; },
        clean = &mut b => if clean { let _ = tokio::time::timeout(LINGER, &mut a).await; },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::HeaderMap;

    #[test]
    fn upgrade_requests_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert_eq!(requested_upgrade(&h).unwrap(), "websocket");
        h.insert("content-length", HeaderValue::from_static("0"));
        assert!(requested_upgrade(&h).is_some());
        h.insert("content-length", HeaderValue::from_static("5"));
        assert!(
            requested_upgrade(&h).is_none(),
            "a body travels as a plain request"
        );
        h.remove("content-length");
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        assert!(
            requested_upgrade(&h).is_none(),
            "Upgrade without Connection: upgrade"
        );
    }

    #[tokio::test]
    async fn bodies_and_a_connection_close_each_other() {
        let (near, mut far) = tokio::io::duplex(1024);
        let (in_tx, incoming) = crate::body::channel(None, 2);
        let (out_tx, mut outgoing) = crate::body::channel(None, 2);
        let pump = tokio::spawn(with_bodies(near, incoming, out_tx));
        in_tx.send(Ok(Bytes::from_static(b"ping"))).await.unwrap();
        let mut buf = [0u8; 4];
        far.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        far.write_all(b"pong").await.unwrap();
        let frame = outgoing.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "pong");
        // The far side closes: the outgoing body ends and the incoming side is shut.
        drop(far);
        assert!(outgoing.frame().await.is_none());
        drop(in_tx);
        tokio::time::timeout(Duration::from_secs(2), pump)
            .await
            .expect("the pump ends")
            .unwrap();
    }
}
