//! Network probes of a managed service: does its port accept connections, and what does its health path
//! answer. Plain blocking sockets with short timeouts: one probe is a handful of bytes on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long one probe may take (connect, write, read).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether something accepts TCP connections on `host:port`.
pub fn listening(host: &str, port: u16) -> bool {
    connect(host, port).is_ok()
}

/// `GET path` on `host:port` with `Connection: close`: the HTTP status, or why there is none.
pub fn http_status(host: &str, port: u16, path: &str) -> Result<u16, String> {
    let mut stream = connect(host, port)?;
    let authority = if host.contains(':') {
        format!("[{}]:{port}", host.trim_matches(|c| c == '[' || c == ']'))
    } else {
        format!("{host}:{port}")
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: homeboy-health\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    // The status line fits in the first read of any real server; keep reading until we have it.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status_line(&head).ok_or_else(|| "the answer is not HTTP".to_string())
}

fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let bare = host.trim_matches(|c| c == '[' || c == ']');
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .collect();
    let mut last = format!("{host} resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
            Ok(stream) => {
                let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
                let _ = stream.set_write_timeout(Some(PROBE_TIMEOUT));
                return Ok(stream);
            }
            Err(e) => last = format!("connect {addr}: {e}"),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn status_of_a_real_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).unwrap();
            assert!(
                std::str::from_utf8(&buf[..n])
                    .unwrap()
                    .starts_with("GET /ready HTTP/1.1")
            );
            conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        });
        assert_eq!(http_status("127.0.0.1", port, "/ready"), Ok(503));
        server.join().unwrap();
        assert!(
            http_status("127.0.0.1", port, "/").is_err(),
            "nobody listens any more"
        );
        assert!(!listening("127.0.0.1", port));
    }

    #[test]
    fn status_line_parsing() {
        assert_eq!(parse_status_line(b"HTTP/1.0 200 OK\r\n"), Some(200));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
    }
}
