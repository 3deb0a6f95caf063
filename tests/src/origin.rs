//! A test origin: a small threaded HTTP/1.1 server on `127.0.0.1:0` that proxies and tunnels can be pointed
//! at. It keeps connections alive, reads `Content-Length` and chunked bodies, and answers:
//!
//! - `GET /bytes/<n>`: `n` bytes of [`pattern`], streamed in 64 KiB writes;
//! - `POST|PUT /echo`: the request body back;
//! - `GET /slow?ms=<n>`: waits, then answers;
//! - `GET /headers`: the request's method, path and headers as JSON;
//! - `GET /hop`: a response carrying hop-by-hop headers next to end-to-end ones;
//! - `GET /asset/<i>`: a small text asset naming `i` and the origin;
//! - `GET /ws` with `Upgrade: websocket`: a WebSocket that echoes every message;
//! - `GET /upgrade-echo` with `Upgrade: x-echo`: `101`, then every byte back until the peer closes;
//! - `GET /hold`: holds the request until the peer goes away (counted in [`Origin::aborted`]) or 30 s pass;
//! - `GET /page`: an HTML page with [`PAGE_ASSETS`] images (`/img/<i>.svg`) and a script that sends
//!   [`PAGE_MESSAGE`] over a WebSocket to `/ws` and shows the echo;
//! - anything else: `origin <name> <path>`.
//!
//! Switched connections that ended are counted in [`Origin::upgrades_closed`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Byte `i` of the deterministic download pattern (not periodic over small spans).
pub fn pattern_byte(i: u64) -> u8 {
    ((i.wrapping_mul(7) + (i >> 9) + (i >> 17)) % 251) as u8
}

/// The first `n` bytes of the pattern.
pub fn pattern(n: u64) -> Vec<u8> {
    (0..n).map(pattern_byte).collect()
}

/// Images on `/page`.
pub const PAGE_ASSETS: usize = 100;
/// What `/page` sends over its WebSocket.
pub const PAGE_MESSAGE: &str = "hello through the preview";

#[derive(Default)]
struct Counters {
    hits: AtomicUsize,
    aborted: AtomicUsize,
    upgrades_closed: AtomicUsize,
}

/// A running origin; stops accepting when dropped.
pub struct Origin {
    addr: SocketAddr,
    name: String,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl Origin {
    /// Starts an origin that calls itself `name` in its answers.
    pub fn start(name: &str) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test origin");
        // Up to a thousand connections arrive at once; the standard library's backlog is 128.
        rustix::net::listen(&listener, -1).expect("deepen the accept backlog");
        let addr = listener.local_addr().expect("origin address");
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (stop2, counters2, name2) = (stop.clone(), counters.clone(), name.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::Acquire) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (counters, name) = (counters2.clone(), name2.clone());
                std::thread::spawn(move || serve(stream, &name, &counters));
            }
        });
        Origin {
            addr,
            name: name.to_string(),
            stop,
            counters,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.counters.hits.load(Ordering::Acquire)
    }

    /// `/hold` requests whose peer went away before the answer.
    pub fn aborted(&self) -> usize {
        self.counters.aborted.load(Ordering::Acquire)
    }

    /// Switched connections (`/ws`, `/upgrade-echo`) that have ended.
    pub fn upgrades_closed(&self) -> usize {
        self.counters.upgrades_closed.load(Ordering::Acquire)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// A port nothing listens on (bound, then released).
pub fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

enum Body {
    Bytes(Vec<u8>),
    Pattern(u64),
}

fn serve(stream: TcpStream, name: &str, counters: &Counters) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        counters.hits.fetch_add(1, Ordering::AcqRel);
        let route = req.path.split('?').next().unwrap_or("");
        let upgrade = req.header("upgrade").map(str::to_ascii_lowercase);
        match (route, upgrade.as_deref()) {
            ("/ws", Some("websocket")) => {
                websocket_echo(&req, writer);
                counters.upgrades_closed.fetch_add(1, Ordering::AcqRel);
                return;
            }
            ("/upgrade-echo", Some("x-echo")) => {
                byte_echo(reader, writer);
                counters.upgrades_closed.fetch_add(1, Ordering::AcqRel);
                return;
            }
            ("/hold", _) => {
                if hold(&mut writer) {
                    counters.aborted.fetch_add(1, Ordering::AcqRel);
                }
                return;
            }
            _ => {}
        }
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (status, headers, body) = answer(&req, name);
        if write_response(&mut writer, status, &headers, body).is_err() || close {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Req> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut req = Req {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            if n == 0 {
                let mut end = String::new();
                reader.read_line(&mut end).ok()?;
                break;
            }
            let mut chunk = vec![0; n];
            reader.read_exact(&mut chunk).ok()?;
            req.body.extend_from_slice(&chunk);
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf).ok()?;
        }
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len.parse().ok()?;
        req.body = vec![0; len];
        reader.read_exact(&mut req.body).ok()?;
    }
    Some(req)
}

fn answer(req: &Req, name: &str) -> (u16, Vec<(String, String)>, Body) {
    let text = |s: String| {
        (
            200,
            vec![("content-type".to_string(), "text/plain".to_string())],
            Body::Bytes(s.into_bytes()),
        )
    };
    let (route, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    if let Some(n) = route.strip_prefix("/bytes/") {
        let n: u64 = n.parse().unwrap_or(0);
        return (
            200,
            vec![(
                "content-type".to_string(),
                "application/octet-stream".to_string(),
            )],
            Body::Pattern(n),
        );
    }
    if route == "/echo" && (req.method == "POST" || req.method == "PUT") {
        return (
            200,
            vec![(
                "content-type".to_string(),
                "application/octet-stream".to_string(),
            )],
            Body::Bytes(req.body.clone()),
        );
    }
    if route == "/slow" {
        let ms: u64 = query
            .strip_prefix("ms=")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        std::thread::sleep(Duration::from_millis(ms));
        return text(format!("slow {name}"));
    }
    if route == "/headers" {
        let mut map = serde_json::Map::new();
        for (k, v) in &req.headers {
            let merged = match map.get(k).and_then(|old| old.as_str()) {
                Some(old) => format!("{old}, {v}"),
                None => v.clone(),
            };
            map.insert(k.clone(), serde_json::Value::String(merged));
        }
        let doc = serde_json::json!({"method": req.method, "path": req.path, "headers": map, "origin": name});
        return (
            200,
            vec![("content-type".to_string(), "application/json".to_string())],
            Body::Bytes(doc.to_string().into_bytes()),
        );
    }
    if route == "/hop" {
        let headers = [
            ("content-type", "text/css"),
            ("cache-control", "public, max-age=60"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("connection", "keep-alive, x-hop-secret"),
            ("keep-alive", "timeout=5"),
            ("x-hop-secret", "must-not-pass"),
            ("proxy-authenticate", "Basic realm=x"),
            ("x-end-to-end", "kept"),
        ];
        return (
            200,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Body::Bytes(b"body{}".to_vec()),
        );
    }
    if let Some(i) = route.strip_prefix("/asset/") {
        return (
            200,
            vec![
                ("content-type".to_string(), "text/plain".to_string()),
                (
                    "cache-control".to_string(),
                    "public, max-age=3600".to_string(),
                ),
            ],
            Body::Bytes(format!("asset {i} from {name}").into_bytes()),
        );
    }
    if route == "/page" {
        return (
            200,
            vec![(
                "content-type".to_string(),
                "text/html; charset=utf-8".to_string(),
            )],
            Body::Bytes(page().into_bytes()),
        );
    }
    if let Some(i) = route
        .strip_prefix("/img/")
        .and_then(|f| f.strip_suffix(".svg"))
    {
        let i: u32 = i.parse().unwrap_or(0);
        let svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"40\" height=\"40\">\
             <rect width=\"40\" height=\"40\" fill=\"hsl({} 70% 50%)\"/>\
             <text x=\"4\" y=\"26\" font-size=\"16\" fill=\"#000\">{i}</text></svg>",
            i * 37 % 360
        );
        return (
            200,
            vec![
                ("content-type".to_string(), "image/svg+xml".to_string()),
                ("cache-control".to_string(), "no-store".to_string()),
            ],
            Body::Bytes(svg.into_bytes()),
        );
    }
    text(format!("origin {name} {}", req.path))
}

/// The page a browser loads: [`PAGE_ASSETS`] images and a WebSocket round trip, nothing that depends on
/// the host it was loaded from.
fn page() -> String {
    let images: String = (0..PAGE_ASSETS)
        .map(|i| format!("<img src=\"/img/{i}.svg\" alt=\"\">"))
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>preview page</title>\
         <link rel=\"icon\" href=\"data:,\">\
         <style>body{{margin:8px;font:16px monospace;background:#fff;color:#000}}\
         .grid{{display:grid;grid-template-columns:repeat(10,40px);gap:2px}}\
         img{{width:40px;height:40px;display:block}}</style></head><body>\
         <div class=\"grid\">{images}</div><p id=\"echo\">waiting for the echo</p>\
         <script>\
         const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');\
         ws.onopen = () => ws.send('{PAGE_MESSAGE}');\
         ws.onmessage = (e) => {{ document.getElementById('echo').textContent = 'echo: ' + e.data; \
           window.__echo = e.data; ws.close(); }};\
         ws.onerror = () => {{ window.__wsError = true; }};\
         </script></body></html>"
    )
}

/// A WebSocket server on this connection: the handshake answer, then every message back.
fn websocket_echo(req: &Req, mut stream: TcpStream) {
    let Some(key) = req.header("sec-websocket-key") else {
        return;
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-accept: {accept}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut ws =
        tungstenite::WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Server, None);
    loop {
        match ws.read() {
            Ok(msg) if msg.is_text() || msg.is_binary() => {
                if ws.send(msg).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            // A close frame is answered by tungstenite; the connection then ends.
            Err(_) => return,
        }
    }
}

/// `101`, then every byte back until the peer closes its side; then this side closes.
fn byte_echo(mut reader: BufReader<TcpStream>, mut writer: TcpStream) {
    let head = "HTTP/1.1 101 Switching Protocols\r\nupgrade: x-echo\r\nconnection: upgrade\r\n\r\n";
    if writer.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if writer.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = writer.shutdown(std::net::Shutdown::Both);
}

/// Waits for the peer to go away (returns true) or 30 s (answers, returns false).
fn hold(stream: &mut TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Err(e)
            if e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::TimedOut =>
        {
            true
        }
        _ => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nheld");
            false
        }
    }
}

fn write_response(
    w: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: Body,
) -> std::io::Result<()> {
    let len = match &body {
        Body::Bytes(b) => b.len() as u64,
        Body::Pattern(n) => *n,
    };
    let mut head = format!("HTTP/1.1 {status} OK\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {len}\r\n\r\n"));
    w.write_all(head.as_bytes())?;
    match body {
        Body::Bytes(b) => w.write_all(&b)?,
        Body::Pattern(n) => {
            let mut sent = 0u64;
            let mut buf = vec![0u8; 64 * 1024];
            while sent < n {
                let take = (n - sent).min(buf.len() as u64) as usize;
                for (j, byte) in buf[..take].iter_mut().enumerate() {
                    *byte = pattern_byte(sent + j as u64);
                }
                w.write_all(&buf[..take])?;
                sent += take as u64;
            }
        }
    }
    w.flush()
}
