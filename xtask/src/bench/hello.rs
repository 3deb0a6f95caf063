//! The ceiling for HTTP benchmarks: a minimal hyper server answering every request with the same body —
//! `hello`, or the bytes of a file (`xtask bench-hello --body FILE`, served as JSON, so a read route can be
//! compared with a server that only writes the same response bytes). Started as its own process so it
//! competes for the CPU exactly like the daemon does. With `--header-timer`, hyper's own 30 s
//! `header_read_timeout` is armed (a timer per request head), so a bench can show what that costs.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};

/// Serves on `127.0.0.1:0`, printing `port=<n>` on stdout once listening.
pub fn serve(args: &[String]) -> anyhow::Result<()> {
    let (body, header_timer): (Option<Bytes>, bool) = match args {
        [flag, file] if flag == "--body" => (Some(Bytes::from(std::fs::read(file)?)), false),
        [flag] if flag == "--header-timer" => (None, true),
        [] => (None, false),
        _ => anyhow::bail!("usage: xtask bench-hello [--body FILE | --header-timer]"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("port={}", listener.local_addr()?.port());
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let answer = match &body {
                        Some(bytes) => {
                            let mut answer = Response::new(Full::new(bytes.clone()));
                            answer.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                            answer
                        }
                        None => Response::new(Full::new(Bytes::from_static(b"hello"))),
                    };
                    async move { Ok::<_, Infallible>(answer) }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                if header_timer {
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30));
                }
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
