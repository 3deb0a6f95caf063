//! A tiny HTTP server the end-to-end tests run as a managed service: it optionally waits before listening,
//! answers every request with a fixed status and `ok`, and says on stdout when it listens.
//!
//! `homeboy-test-server --port N [--host H] [--delay-ms MS] [--status CODE]`

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let port: u16 = value("--port")
        .and_then(|p| p.parse().ok())
        .expect("--port N is required");
    let host = value("--host").unwrap_or_else(|| "127.0.0.1".to_string());
    let delay: u64 = value("--delay-ms")
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let status: u16 = value("--status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    std::thread::sleep(Duration::from_millis(delay));
    let listener = TcpListener::bind((host.as_str(), port)).expect("bind");
    println!("test server listening on {host}:{port}");
    let _ = std::io::stdout().flush();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = write!(
            stream,
            "HTTP/1.1 {status} Test\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n"
        );
    }
}
