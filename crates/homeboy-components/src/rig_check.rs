//! `rig check`: a rig's `check` steps run in order, each with its own timeout, each reported pass/fail with
//! its evidence — a command's exit code and the tail of its output, an HTTP status line, a TCP connect
//! result — and how long it took. Every step runs even after one fails, so the report is complete.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use homeboy_config::Paths;
use homeboy_config::components;
use homeboy_config::rigs::{CheckStep, Rig, StepKind};
use serde_json::{Value, json};

use crate::command::{self, Control, Stream, Watcher};

/// Lines of output kept as a command step's evidence.
const TAIL_LINES: usize = 20;

/// A rig check and its steps' outcomes: the contract's types.
pub use homeboy_api::components::{RigCheck, StepReport};

/// Runs every check step of `rig`.
pub fn check(paths: &Paths, rig: &Rig) -> RigCheck {
    let began = Instant::now();
    let steps: Vec<StepReport> = rig
        .check
        .iter()
        .enumerate()
        .map(|(index, step)| run_step(paths, rig, index, step))
        .collect();
    RigCheck {
        rig_id: rig.id.clone(),
        passed: steps.iter().all(|s| s.passed),
        steps,
        duration_ms: began.elapsed().as_millis() as u64,
    }
}

fn run_step(paths: &Paths, rig: &Rig, index: usize, step: &CheckStep) -> StepReport {
    let began = Instant::now();
    let timeout = Duration::from_secs(step.timeout_secs());
    let (kind, passed, evidence) = match step.kind() {
        Some(StepKind::Command(argv)) => {
            let (passed, evidence) = command_step(paths, rig, step, argv, timeout);
            ("command", passed, evidence)
        }
        Some(StepKind::HttpOk(url)) => {
            let (passed, evidence) = http_step(url, timeout);
            ("http_ok", passed, evidence)
        }
        Some(StepKind::TcpOpen(addr)) => {
            let (passed, evidence) = tcp_step(addr, timeout);
            ("tcp_open", passed, evidence)
        }
        None => (
            "invalid",
            false,
            json!({"error": "the step has no single kind"}),
        ),
    };
    StepReport {
        index,
        name: step.label(),
        kind: kind.into(),
        passed,
        duration_ms: began.elapsed().as_millis() as u64,
        evidence,
    }
}

/// Where a command step runs: its component's checkout, else the rig's first component's, else the config
/// directory.
fn step_dir(paths: &Paths, rig: &Rig, step: &CheckStep) -> Result<PathBuf, String> {
    let component = step.component.as_ref().or(rig.components.first());
    match component {
        Some(id) => components::store(paths)
            .get(id)
            .map(|c| PathBuf::from(c.path))
            .map_err(|e| e.to_string()),
        None => Ok(paths.config_dir().to_path_buf()),
    }
}

#[derive(Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
}

impl Watcher for Tail {
    fn line(&mut self, stream: Stream, text: &str) -> Control {
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        let prefix = if stream == Stream::Stderr {
            "[stderr] "
        } else {
            ""
        };
        self.lines.push_back(format!("{prefix}{text}"));
        Control::Continue
    }
}

fn command_step(
    paths: &Paths,
    rig: &Rig,
    step: &CheckStep,
    argv: &[String],
    timeout: Duration,
) -> (bool, Value) {
    let cwd = match step_dir(paths, rig, step) {
        Ok(cwd) => cwd,
        Err(error) => return (false, json!({"error": error})),
    };
    let mut tail = Tail::default();
    match command::run(argv, &cwd, timeout, &mut tail) {
        Ok(done) => (
            done.exit_code == 0 && !done.timed_out,
            json!({
                "exit_code": done.exit_code,
                "timed_out": done.timed_out,
                "cwd": cwd,
                "output_tail": tail.lines,
            }),
        ),
        Err(e) => (false, json!({"error": e.to_string(), "cwd": cwd})),
    }
}

fn tcp_step(addr: &str, timeout: Duration) -> (bool, Value) {
    match connect(addr, timeout) {
        Ok(stream) => {
            let peer = stream.peer_addr().map(|a| a.to_string()).ok();
            (true, json!({"connected": true, "peer": peer}))
        }
        Err(error) => (false, json!({"connected": false, "error": error})),
    }
}

fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let candidates: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .collect();
    let mut last = format!("{addr} resolved to no address");
    for candidate in candidates {
        match TcpStream::connect_timeout(&candidate, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("{candidate}: {e}"),
        }
    }
    Err(last)
}

/// A plain HTTP/1.1 GET with `Connection: close`; passes on a 2xx status.
fn http_step(url: &str, timeout: Duration) -> (bool, Value) {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let addr = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let began = Instant::now();
    let attempt = || -> Result<String, String> {
        let mut stream = connect(&addr, timeout)?;
        let left = timeout
            .saturating_sub(began.elapsed())
            .max(Duration::from_millis(10));
        stream
            .set_read_timeout(Some(left))
            .and_then(|()| stream.set_write_timeout(Some(left)))
            .map_err(|e| e.to_string())?;
        // One write: a server may answer (and close) as soon as it has the request line.
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: homeboy-rig-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("sending the request: {e}"))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.contains(&b'\n') && head.len() < 8192 {
            // The timeout bounds the whole answer, not each read: a server that sends a byte at a time
            // would otherwise hold the step for thousands of read timeouts.
            let left = timeout.saturating_sub(began.elapsed());
            if left.is_zero() {
                return Err(format!(
                    "reading the response: timed out after {} s",
                    timeout.as_secs_f64()
                ));
            }
            stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let n = stream.read(&mut buf).map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => format!(
                    "reading the response: timed out after {} s",
                    timeout.as_secs_f64()
                ),
                _ => format!("reading the response: {e}"),
            })?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        Ok(line.lines().next().unwrap_or_default().trim().to_string())
    };
    match attempt() {
        Ok(status_line) => {
            let status: Option<u16> = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok());
            (
                status.is_some_and(|s| (200..300).contains(&s)),
                json!({"status": status, "status_line": status_line}),
            )
        }
        Err(error) => (false, json!({"status": null, "error": error})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(status: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            }
        });
        format!("http://{addr}/health")
    }

    #[test]
    fn steps_report_pass_and_fail_with_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        std::fs::create_dir_all(paths.config_dir()).unwrap();
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        // Servers first, so the closed port cannot be handed to one of them.
        let ok_url = serve_once("200 OK");
        let unavailable_url = serve_once("503 Service Unavailable");
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let step = |json: Value| -> CheckStep { serde_json::from_value(json).unwrap() };
        let rig = Rig {
            id: "dev".into(),
            components: vec![],
            check: vec![
                step(json!({"command": ["sh", "-c", "echo ready; exit 0"]})),
                step(json!({"name": "fails", "command": ["sh", "-c", "echo no >&2; exit 4"]})),
                step(json!({"command": ["sleep", "10"], "timeout_secs": 1})),
                step(json!({"tcp_open": open.local_addr().unwrap().to_string()})),
                step(json!({"tcp_open": closed.to_string(), "timeout_secs": 1})),
                step(json!({"http_ok": ok_url})),
                step(json!({"http_ok": unavailable_url})),
            ],
        };
        let report = check(&paths, &rig);
        assert!(!report.passed);
        let passed: Vec<bool> = report.steps.iter().map(|s| s.passed).collect();
        assert_eq!(
            passed,
            [true, false, false, true, false, true, false],
            "{report:#?}"
        );
        assert_eq!(report.steps[0].evidence["output_tail"], json!(["ready"]));
        assert_eq!(report.steps[1].name, "fails");
        assert_eq!(report.steps[1].evidence["exit_code"], 4);
        assert_eq!(
            report.steps[1].evidence["output_tail"],
            json!(["[stderr] no"])
        );
        assert_eq!(report.steps[2].evidence["timed_out"], true);
        assert_eq!(report.steps[4].evidence["connected"], false);
        assert_eq!(report.steps[5].evidence["status"], 200);
        assert_eq!(
            report.steps[6].evidence["status"], 503,
            "{}",
            report.steps[6].evidence
        );
        assert_eq!(report.steps[5].kind, "http_ok");
    }

    #[test]
    fn a_slow_http_answer_is_bounded_by_the_step_timeout() {
        // A server that drips its status line one byte at a time, never finishing it: each read returns
        // before the read timeout, so only a deadline over the whole answer bounds the step.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                for _ in 0..200 {
                    if stream.write_all(b"H").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        let began = Instant::now();
        let (passed, evidence) = http_step(&format!("http://{addr}/"), Duration::from_secs(1));
        assert!(!passed, "{evidence}");
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "took {:?}: {evidence}",
            began.elapsed()
        );
        assert!(
            evidence["error"]
                .as_str()
                .unwrap_or_default()
                .contains("timed out"),
            "{evidence}"
        );
    }
}
