//! The ingress's log: one JSON line per public request (request id, host, path, status, bytes, duration,
//! classification) and one per channel event (register, close), on stderr.
//!
//! Requests append their line to a shared buffer; a writer thread empties it every 20 ms in one `write`, so a
//! busy ingress pays neither a system call nor a thread wake-up per request. A stalled stderr never blocks a
//! request: past 8 MiB of backlog lines are counted instead of kept, and the count is logged once there is
//! room again. [`AccessLog::flush`] writes the backlog at once (shutdown). Nothing logged here ever carries a
//! token or a query string.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

const MAX_BACKLOG: usize = 8 * 1024 * 1024;
const WRITE_EVERY: Duration = Duration::from_millis(20);

/// Where log lines go.
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
}

struct Shared {
    backlog: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    out: Mutex<Box<dyn Write + Send>>,
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
        let log = AccessLog {
            shared: Arc::new(Shared {
                backlog: Mutex::new(Vec::with_capacity(64 * 1024)),
                dropped: AtomicU64::new(0),
                out: Mutex::new(Box::new(std::io::stderr())),
            }),
        };
        let writer = log.clone();
        std::thread::Builder::new()
            .name("ingress-log".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(WRITE_EVERY);
                    writer.flush();
                }
            })
            .expect("spawn the log writer thread");
        log
    }

    /// Queues one JSON line.
    pub fn write(&self, line: &impl Serialize) {
        let Ok(mut text) = serde_json::to_vec(line) else {
            return;
        };
        text.push(b'\n');
        let mut backlog = self
            .shared
            .backlog
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if backlog.len() + text.len() > MAX_BACKLOG {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            backlog.extend_from_slice(&text);
        }
    }

    /// Writes everything queued so far.
    pub fn flush(&self) {
        let mut out = self.shared.out.lock().unwrap_or_else(|p| p.into_inner());
        let pending = std::mem::take(
            &mut *self
                .shared
                .backlog
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        if !pending.is_empty() {
            let _ = out.write_all(&pending);
        }
        let dropped = self.shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = serde_json::json!({"event": "log_lines_dropped", "count": dropped});
            let _ = writeln!(out, "{note}");
        }
        let _ = out.flush();
    }
}
