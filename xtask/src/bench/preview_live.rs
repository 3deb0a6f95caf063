//! The live half of `cargo xtask bench preview`: what a dev server behind a preview needs beyond plain
//! requests. A small origin started by the bench (a thread per connection) echoes WebSocket messages and
//! holds slow requests; against it the bench measures
//!
//! - WebSocket echo messages/s through the multiplexed channel (and a direct route) against the origin
//!   itself (16 connections, 16 messages of 64 bytes in flight on each);
//! - 1,000 requests held 2 s each by the origin, all at once through one channel (and, for reference,
//!   through rathole and to the origin directly): how many complete and how long the slowest took;
//! - the ingress's memory: on a fresh ingress, the 1,000 slow requests through one channel and the growth
//!   of its resident set per open stream (a public connection, its stream on the channel and the request in
//!   flight); on another fresh ingress, 2,000 idle preview clients (the real client library, each its own
//!   host, in this process) and the growth per client, then the slow requests again beside them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Bytes of one WebSocket message in the echo row.
const WS_MESSAGE: usize = 64;

/// The bench's live origin: WebSocket echo on `/ws`, `/slow?ms=N`, anything else `ok`.
pub struct LiveOrigin {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl LiveOrigin {
    pub fn start() -> anyhow::Result<LiveOrigin> {
        // A thousand connections arrive at once: the accept backlog must hold them.
        let listener = homeboy_http::workers::deep_backlog(TcpListener::bind("127.0.0.1:0")?)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Acquire) {
                    return;
                }
                if let Ok(stream) = stream {
                    let _ = std::thread::Builder::new()
                        .stack_size(256 * 1024)
                        .spawn(move || serve(stream));
                }
            }
        });
        Ok(LiveOrigin { addr, stop })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for LiveOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut key = None;
        let mut close = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "sec-websocket-key" {
                    key = Some(v.to_string());
                }
                if k == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        if let (true, Some(key)) = (path == "/ws", key) {
            return websocket_echo(writer, &key);
        }
        let body: &[u8] = match path.strip_prefix("/slow?ms=") {
            Some(ms) => {
                std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(1000)));
                b"slow"
            }
            None => b"ok",
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(body).is_err() || close {
            return;
        }
    }
}

fn websocket_echo(mut stream: TcpStream, key: &str) {
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut ws =
        tungstenite::WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Server, None);
    while let Ok(msg) = ws.read() {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).is_err() {
            return;
        }
    }
}

/// Echoed WebSocket messages per second to `/ws` at `addr` (with `Host: host`), over `connections`
/// connections each keeping `window` messages in flight, measured for `duration` after a short warm-up.
pub fn ws_echo_rate(
    addr: SocketAddr,
    host: &str,
    connections: usize,
    window: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let warmup = Duration::from_millis(300);
    let start = Instant::now();
    let (from, until) = (start + warmup, start + warmup + duration);
    let counted = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for _ in 0..connections {
        let (host, counted) = (host.to_string(), counted.clone());
        threads.push(std::thread::spawn(move || {
            ws_echo_loop(addr, &host, window, from, until, &counted)
        }));
    }
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a WebSocket thread panicked"))??;
    }
    Ok(counted.load(Ordering::Acquire) as f64 / duration.as_secs_f64())
}

fn ws_echo_loop(
    addr: SocketAddr,
    host: &str,
    window: usize,
    from: Instant,
    until: Instant,
    counted: &AtomicUsize,
) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            bail!("the WebSocket handshake via {host} ended early");
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        bail!(
            "the WebSocket handshake via {host} was refused: {}",
            String::from_utf8_lossy(&head)
        );
    }
    // A masked text frame from the client; the server's echo is the same payload unmasked.
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | WS_MESSAGE as u8];
    frame.extend_from_slice(&mask);
    frame.extend((0..WS_MESSAGE).map(|i| b'a' ^ mask[i % 4]));
    let mut burst = Vec::new();
    for _ in 0..window {
        burst.extend_from_slice(&frame);
    }
    stream.write_all(&burst)?;
    let mut echo = [0u8; 2 + WS_MESSAGE];
    while Instant::now() < until {
        stream.read_exact(&mut echo)?;
        if echo[0] != 0x81 || usize::from(echo[1]) != WS_MESSAGE {
            bail!("an unexpected WebSocket frame came back via {host}");
        }
        if Instant::now() >= from {
            counted.fetch_add(1, Ordering::Relaxed);
        }
        stream.write_all(&frame)?;
    }
    Ok(())
}

/// What `n` requests held by the origin, all sent at once, came to.
pub struct SlowRun {
    pub completed: usize,
    pub slowest: Duration,
    /// The sample taken halfway through, if a sampler was given.
    pub sampled_kib: Option<u64>,
}

/// Sends `n` `GET /slow?ms=<hold>` at once to `addr` (with `Host: host`), one connection each; calls
/// `sample` once when they should all be held, and waits for every answer.
pub fn slow_requests(
    addr: SocketAddr,
    host: &str,
    n: usize,
    hold: Duration,
    sample: impl FnOnce() -> Option<u64>,
) -> anyhow::Result<SlowRun> {
    let barrier = Arc::new(std::sync::Barrier::new(n + 1));
    let mut threads = Vec::with_capacity(n);
    for _ in 0..n {
        let (host, barrier) = (host.to_string(), barrier.clone());
        threads.push(
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || -> Option<Duration> {
                    barrier.wait();
                    let began = Instant::now();
                    let mut stream = TcpStream::connect(addr).ok()?;
                    stream
                        .set_read_timeout(Some(hold + Duration::from_secs(60)))
                        .ok()?;
                    write!(
                        stream,
                        "GET /slow?ms={} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
                        hold.as_millis()
                    )
                    .ok()?;
                    let mut answer = Vec::new();
                    stream.read_to_end(&mut answer).ok()?;
                    (answer.starts_with(b"HTTP/1.1 200") && answer.ends_with(b"slow"))
                        .then(|| began.elapsed())
                })
                .context("spawn a request thread")?,
        );
    }
    barrier.wait();
    std::thread::sleep(hold / 2 + Duration::from_millis(hold.as_millis() as u64 / 4));
    let sampled_kib = sample();
    let mut completed = 0;
    let mut slowest = Duration::ZERO;
    for t in threads {
        if let Ok(Some(took)) = t.join() {
            completed += 1;
            slowest = slowest.max(took);
        }
    }
    Ok(SlowRun {
        completed,
        slowest,
        sampled_kib,
    })
}

/// `n` idle preview clients (the real client library) on one runtime in this process, each claiming
/// `<prefix>-<i>.<domain>`, forwarding to `origin`. Started in batches, each batch waiting for its
/// registrations (the ingress registers one client at a time). Dropping it ends them.
pub struct IdleClients {
    runtime: Option<tokio::runtime::Runtime>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl IdleClients {
    pub fn start(
        ingress: SocketAddr,
        domain: &str,
        origin: &str,
        token: &str,
        n: usize,
    ) -> anyhow::Result<IdleClients> {
        use homeboy_preview::client::{self, ClientEvent, ClientOptions};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let registered = Arc::new(AtomicUsize::new(0));
        const BATCH: usize = 100;
        let mut started = 0;
        while started < n {
            let batch = BATCH.min(n - started);
            for i in started..started + batch {
                let mut options = ClientOptions::new(
                    &format!("http://{ingress}"),
                    &format!("idle-{i}.{domain}"),
                    origin,
                    "bench",
                );
                options.token = Some(token.to_string());
                let counter = registered.clone();
                let events: client::EventSink = Arc::new(move |event| {
                    if matches!(event, ClientEvent::Registered { .. }) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                });
                let mut stopped = stopped.clone();
                runtime.spawn(async move {
                    let shutdown = async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    };
                    let _ = client::run(options, events, shutdown).await;
                });
            }
            started += batch;
            let deadline = Instant::now() + Duration::from_secs(120);
            while registered.load(Ordering::Relaxed) < started {
                if Instant::now() > deadline {
                    bail!(
                        "only {} of {started} idle clients registered",
                        registered.load(Ordering::Relaxed)
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(IdleClients {
            runtime: Some(runtime),
            stop,
        })
    }
}

impl Drop for IdleClients {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
