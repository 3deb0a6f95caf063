//! A stream that asks to switch protocols (WebSocket, any HTTP/1.1 `Upgrade`), client side: the request
//! goes to the local origin with `Connection: upgrade` on a connection of its own. When the origin answers
//! `101`, the stream is answered `200` with the origin's headers and [`wire::HEADER_UPGRADED`], and from
//! then on the stream's request body is written to the switched connection and what the origin sends is
//! the stream's response body ([`crate::splice`]). Any other answer goes back as it is.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::http::response::Parts;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use super::api::describe as describe_reqwest;
use super::local::{LocalOrigin, origin_form, prepare};
use crate::body::{self, ProxyBody};
use crate::channel::wire;
use crate::headers;
use crate::pool::ForwardError;
use crate::splice::{self, Switch};

/// Chunks of the origin's bytes queued for the stream before reading from the origin pauses.
const QUEUED_CHUNKS: usize = 4;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

enum Opened {
    Answered(Response<ProxyBody>),
    Switched { head: Parts, io: Box<dyn Io> },
}

/// Asks the local origin to switch to `protocol`; see the module doc.
pub(super) async fn serve(
    session: &Session,
    req: Request<Incoming>,
    protocol: HeaderValue,
) -> Result<Response<ProxyBody>, ForwardError> {
    let (parts, from_browser) = req.into_parts();
    let local_req = origin_form(Request::from_parts(parts, body::empty()));
    let opened = tokio::time::timeout(
        session.local_timeout,
        open(&session.local, local_req, protocol.clone()),
    )
    .await
    .map_err(|_| timed_out(session.local_timeout))??;
    match opened {
        Opened::Answered(mut response) => {
            response.headers_mut().remove(wire::HEADER_UPGRADED);
            Ok(response)
        }
        Opened::Switched { mut head, io } => {
            let (origin_bytes, to_browser) = body::channel(None, QUEUED_CHUNKS);
            tokio::spawn(splice::with_bodies(
                io,
                body::boxed(from_browser),
                origin_bytes,
            ));
            let switched_to = head
                .headers
                .get(header::UPGRADE)
                .cloned()
                .unwrap_or(protocol);
            headers::strip_hop_by_hop(&mut head.headers);
            head.headers.insert(wire::HEADER_UPGRADED, switched_to);
            head.status = StatusCode::OK;
            head.version = hyper::Version::HTTP_2;
            Ok(Response::from_parts(head, to_browser))
        }
    }
}

fn timed_out(limit: Duration) -> ForwardError {
    ForwardError::Timeout(format!(
        "the local origin did not answer the upgrade within {limit:?}"
    ))
}

async fn open(
    local: &LocalOrigin,
    mut req: Request<ProxyBody>,
    protocol: HeaderValue,
) -> Result<Opened, ForwardError> {
    prepare(req.headers_mut(), &local.origin().authority());
    match local {
        LocalOrigin::Http(upstream) => match splice::request_switch(upstream, req, protocol).await?
        {
            Switch::Answered(mut response) => {
                headers::strip_hop_by_hop(response.headers_mut());
                Ok(Opened::Answered(response.map(body::boxed)))
            }
            Switch::Switched { head, io } => Ok(Opened::Switched {
                head,
                io: Box::new(TokioIo::new(io)),
            }),
        },
        LocalOrigin::Https { http, origin } => {
            let (mut parts, _) = req.into_parts();
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol);
            let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            let url = format!("{}{path}", origin.url());
            // reqwest derives Host from the URL.
            parts.headers.remove(header::HOST);
            let response = http
                .request(parts.method, url)
                .headers(parts.headers)
                .send()
                .await
                .map_err(|e| ForwardError::Failed(describe_reqwest(&e)))?;
            if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                let mut response: Response<reqwest::Body> = response.into();
                headers::strip_hop_by_hop(response.headers_mut());
                return Ok(Opened::Answered(response.map(body::boxed)));
            }
            let (mut head, ()) = Response::new(()).into_parts();
            head.status = response.status();
            head.headers = response.headers().clone();
            let io = response
                .upgrade()
                .await
                .map_err(|e| ForwardError::Failed(describe_reqwest(&e)))?;
            Ok(Opened::Switched {
                head,
                io: Box::new(io),
            })
        }
    }
}
