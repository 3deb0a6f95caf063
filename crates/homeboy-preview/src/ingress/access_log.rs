//! The ingress's log: one JSON line per public request (request id, host, path, status, bytes, duration,
//! classification) and one per channel event (register, close), on stderr.
//!
//! Lines go through a bounded queue to a writer thread that writes whatever has piled up in one go, so a
//! busy ingress makes one `write` per batch rather than per request, and a stalled stderr never blocks a
//! request: lines that do not fit are counted and the count is logged once there is room again. Nothing
//! logged here ever carries a token or a query string.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use serde::Serialize;

const QUEUE_LINES: usize = 16 * 1024;

/// Where log lines go.
#[derive(Clone)]
pub struct AccessLog {
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

/// One public request.
#[derive(Debug, Serialize)]
pub struct RequestLine<'a> {
    pub ts: String,
    pub request_id: &'a str,
    pub method: &'a str,
    pub host: &'a str,
    /// Path without the query (queries may carry secrets).
    pub path: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub duration_ms: f64,
    pub classification: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<&'a str>,
    /// False when the body did not reach its end (the browser left, the upstream broke off).
    pub complete: bool,
}

impl AccessLog {
    /// A log that writes to this process's stderr from a background thread.
    pub fn stderr() -> Self {
        let (tx, rx) = sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("ingress-log".into())
            .spawn(move || write_lines(rx, std::io::stderr()))
            .expect("spawn the log writer thread");
        AccessLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues one JSON line.
    pub fn write(&self, line: &impl Serialize) {
        let Ok(text) = serde_json::to_string(line) else {
            return;
        };
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = serde_json::json!({"event": "log_lines_dropped", "count": dropped});
            if self.tx.try_send(note.to_string()).is_err() {
                self.dropped.fetch_add(dropped, Ordering::Relaxed);
            }
        }
        match self.tx.try_send(text) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn write_lines(rx: Receiver<String>, out: impl Write) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let _ = writeln!(out, "{line}");
        while let Ok(more) = rx.try_recv() {
            let _ = writeln!(out, "{more}");
        }
        let _ = out.flush();
    }
}
