//! Readiness of a managed service: which gates must pass before homeboy calls it ready, how each gate is
//! checked, and the bounded wait of `service start`.
//!
//! The default (`generic`) is the process being alive plus, when a health path is given, that path
//! answering with a 2xx or 3xx status. Opt-in gates add to it: `--require-listener` (the port accepts TCP
//! connections), `--readiness-artifact` (a file exists; with a JSON pointer, the pointed value exists, or
//! equals `--readiness-artifact-json-equals`), and `--readiness-stdout-regex` (a line of the service's
//! stdout matches). The report separates three levels so callers can tell wrapper liveness from a usable
//! preview or proof:
//!
//! - `process_running`: something of the service's process group is alive;
//! - `preview_ready`: process running, health answering and (if required) the port listening;
//! - `proof_ready`: preview ready and every artifact/stdout gate satisfied.
//!
//! An artifact that already existed when the service started counts only once the service has rewritten it
//! (its inode, size or modification time changed), so a proof left over from an earlier run never makes a
//! new run look ready.
//!
//! `ready` is `proof_ready`: every configured gate passes. `--readiness-kind proof` additionally demands at
//! least one proof gate, so a proof service cannot be declared ready on liveness alone.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::probe;
use crate::TunnelError;

/// How often `start` re-checks the gates while it waits.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What kind of readiness the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadinessKind {
    /// Process alive and health answering, plus any opt-in gate given.
    #[default]
    Generic,
    /// Like generic, but at least one proof gate (artifact or stdout regex) is required.
    Proof,
}

/// The gates, as recorded in the runtime state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReadinessSpec {
    pub kind: ReadinessKind,
    #[serde(default)]
    pub require_listener: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactGate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_regex: Option<String>,
}

/// A file that must exist (and, with a pointer, hold a value) before the service counts as ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactGate {
    /// Absolute (relative paths are resolved against the service's working directory by `start`).
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_pointer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_equals: Option<String>,
    /// The file as it was when the service started, if it existed: a file left over from an earlier run
    /// does not count until the service has rewritten it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<FileStamp>,
}

/// Identity and version of a file: inode, size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub inode: u64,
    pub len: u64,
    pub mtime_secs: i64,
    pub mtime_nanos: i64,
}

impl FileStamp {
    /// The stamp of `path`, if it exists.
    pub fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            inode: meta.ino(),
            len: meta.len(),
            mtime_secs: meta.mtime(),
            mtime_nanos: meta.mtime_nsec(),
        })
    }
}

impl ReadinessSpec {
    /// Refuses combinations that could never be checked.
    pub fn validate(&self) -> Result<(), TunnelError> {
        if let Some(pattern) = &self.stdout_regex {
            Regex::new(pattern).map_err(|e| {
                TunnelError::invalid(
                    "--readiness-stdout-regex",
                    format!("is not a valid regex: {}", one_line(&e.to_string())),
                )
            })?;
        }
        if let Some(gate) = &self.artifact {
            if let Some(pointer) = &gate.json_pointer
                && !(pointer.is_empty() || pointer.starts_with('/'))
            {
                return Err(TunnelError::invalid(
                    "--readiness-artifact-json-pointer",
                    format!("{pointer:?} is not a JSON pointer (it starts with '/', like /status)"),
                ));
            }
            if gate.json_equals.is_some() && gate.json_pointer.is_none() {
                return Err(TunnelError::invalid(
                    "--readiness-artifact-json-equals",
                    "needs --readiness-artifact-json-pointer (which value to compare)",
                ));
            }
        }
        if self.kind == ReadinessKind::Proof
            && self.artifact.is_none()
            && self.stdout_regex.is_none()
        {
            return Err(TunnelError::invalid(
                "--readiness-kind",
                "proof needs a proof gate: --readiness-artifact or --readiness-stdout-regex",
            ));
        }
        Ok(())
    }
}

/// What the gates are checked against.
pub struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub health_path: Option<&'a str>,
    pub stdout_log: &'a Path,
}

/// The readiness report of `start` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub kind: ReadinessKind,
    pub ready: bool,
    pub process_running: bool,
    pub preview_ready: bool,
    pub proof_ready: bool,
    /// Every gate checked, in order, with what was seen.
    pub checks: Vec<Check>,
}

/// One gate's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Readiness {
    /// The failing gates, for an error message: `health (GET ... -> connection refused), listener (...)`.
    pub fn pending(&self) -> String {
        let pending: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} ({})", c.name, c.detail))
            .collect();
        if pending.is_empty() {
            "nothing".into()
        } else {
            pending.join(", ")
        }
    }
}

/// Checks every gate once.
pub fn evaluate(spec: &ReadinessSpec, target: &Target<'_>, process_running: bool) -> Readiness {
    let mut checks = vec![Check {
        name: "process",
        ok: process_running,
        detail: if process_running {
            "running".into()
        } else {
            "not running".into()
        },
    }];
    if let Some(path) = target.health_path {
        checks.push(check_health(target, path, process_running));
    }
    if spec.require_listener {
        let ok = process_running && probe::listening(target.host, target.port);
        checks.push(Check {
            name: "listener",
            ok,
            detail: format!(
                "{}:{} {}",
                target.host,
                target.port,
                if ok {
                    "accepts connections"
                } else {
                    "not listening"
                }
            ),
        });
    }
    let preview_ready = checks.iter().all(|c| c.ok);
    if let Some(gate) = &spec.artifact {
        checks.push(check_artifact(gate));
    }
    if let Some(pattern) = &spec.stdout_regex {
        checks.push(check_stdout(pattern, target.stdout_log));
    }
    let proof_ready = checks.iter().all(|c| c.ok);
    Readiness {
        kind: spec.kind,
        ready: proof_ready,
        process_running,
        preview_ready,
        proof_ready,
        checks,
    }
}

/// How a bounded wait ended.
pub enum WaitOutcome {
    Ready(Readiness),
    /// The process group died first.
    Exited(Readiness),
    TimedOut(Readiness),
}

/// Re-checks the gates every 50 ms until they all pass, the process dies, or `timeout` passes.
pub fn wait(
    spec: &ReadinessSpec,
    target: &Target<'_>,
    timeout: Duration,
    process_running: impl Fn() -> bool,
    mut polled: impl FnMut(&Readiness),
) -> WaitOutcome {
    // A timeout too large for the clock means no deadline (never a panic).
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let running = process_running();
        let readiness = evaluate(spec, target, running);
        polled(&readiness);
        if readiness.ready {
            return WaitOutcome::Ready(readiness);
        }
        if !running {
            return WaitOutcome::Exited(readiness);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return WaitOutcome::TimedOut(readiness);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn check_health(target: &Target<'_>, path: &str, process_running: bool) -> Check {
    let url = format!(
        "{}{path}",
        crate::declarations::http_url(target.host, target.port)
    );
    if !process_running {
        return Check {
            name: "health",
            ok: false,
            detail: format!("GET {url}: process not running"),
        };
    }
    match probe::http_status(target.host, target.port, path) {
        Ok(status) => Check {
            name: "health",
            ok: (200..400).contains(&status),
            detail: format!("GET {url} -> {status}"),
        },
        Err(e) => Check {
            name: "health",
            ok: false,
            detail: format!("GET {url}: {e}"),
        },
    }
}

fn check_artifact(gate: &ArtifactGate) -> Check {
    let shown = gate.path.display();
    let (ok, detail) = match std::fs::read(&gate.path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (false, format!("{shown} does not exist yet"))
        }
        Err(e) => (false, format!("{shown}: {e}")),
        Ok(_) if gate.stale.is_some() && FileStamp::of(&gate.path) == gate.stale => (
            false,
            format!("{shown} is unchanged since the service started (left from an earlier run)"),
        ),
        Ok(bytes) => match &gate.json_pointer {
            None => (true, format!("{shown} exists")),
            Some(pointer) => match serde_json::from_slice::<Value>(&bytes) {
                Err(_) => (false, format!("{shown} is not (yet) valid JSON")),
                Ok(doc) => match doc.pointer(pointer) {
                    None => (false, format!("{shown} has no value at {pointer}")),
                    Some(value) => match &gate.json_equals {
                        Some(expected) => (
                            json_equals(value, expected),
                            format!("{shown} {pointer} is {value}, want {expected}"),
                        ),
                        None => (
                            !matches!(value, Value::Null | Value::Bool(false)),
                            format!("{shown} {pointer} is {value}"),
                        ),
                    },
                },
            },
        },
    };
    Check {
        name: "artifact",
        ok,
        detail,
    }
}

/// A string value compares as text; anything else compares as JSON (`true`, `3`, `{"a":1}`).
fn json_equals(value: &Value, expected: &str) -> bool {
    match value {
        Value::String(s) => s == expected,
        other => serde_json::from_str::<Value>(expected).is_ok_and(|e| &e == other),
    }
}

fn check_stdout(pattern: &str, log: &Path) -> Check {
    let (ok, detail) = match Regex::new(pattern) {
        Err(e) => (
            false,
            format!("invalid regex: {}", one_line(&e.to_string())),
        ),
        Ok(regex) => match stdout_matches(&regex, log) {
            Ok(true) => (true, format!("stdout matched /{pattern}/")),
            Ok(false) => (false, format!("no stdout line matches /{pattern}/ yet")),
            Err(e) => (false, format!("read {}: {e}", log.display())),
        },
    };
    Check {
        name: "stdout_regex",
        ok,
        detail,
    }
}

/// Whether any line of the log (without its line ending) matches. Lines are read one at a time, so a large
/// log costs no memory.
fn stdout_matches(regex: &Regex, log: &Path) -> std::io::Result<bool> {
    let file = match std::fs::File::open(log) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(false);
        }
        let text = String::from_utf8_lossy(&line);
        if regex.is_match(text.trim_end_matches(['\n', '\r'])) {
            return Ok(true);
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(log: &Path) -> Target<'_> {
        Target {
            host: "127.0.0.1",
            port: 1,
            health_path: None,
            stdout_log: log,
        }
    }

    #[test]
    fn a_wait_longer_than_the_clock_can_count_does_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stdout.log");
        let spec = ReadinessSpec::default();
        let outcome = wait(&spec, &target(&log), Duration::MAX, || false, |_| {});
        assert!(matches!(outcome, WaitOutcome::Exited(_)));
    }

    #[test]
    fn artifact_pointer_gate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proof.json");
        let spec = ReadinessSpec {
            kind: ReadinessKind::Proof,
            artifact: Some(ArtifactGate {
                path: path.clone(),
                json_pointer: Some("/status".into()),
                json_equals: Some("ready".into()),
                stale: None,
            }),
            ..Default::default()
        };
        spec.validate().unwrap();
        let log = dir.path().join("stdout.log");
        let r = evaluate(&spec, &target(&log), true);
        assert!(r.preview_ready && !r.proof_ready && !r.ready, "{r:?}");
        std::fs::write(&path, br#"{"status": "warming"}"#).unwrap();
        assert!(!evaluate(&spec, &target(&log), true).ready);
        std::fs::write(&path, br#"{"status": "ready"}"#).unwrap();
        let r = evaluate(&spec, &target(&log), true);
        assert!(r.ready && r.proof_ready && r.process_running, "{r:?}");
        assert!(!evaluate(&spec, &target(&log), false).ready);

        // A file left from an earlier run counts only once it has been rewritten.
        let mut spec = spec;
        spec.artifact.as_mut().unwrap().stale = FileStamp::of(&path);
        assert!(!evaluate(&spec, &target(&log), true).ready);
        std::fs::write(dir.path().join("new.json"), br#"{"status": "ready"}"#).unwrap();
        std::fs::rename(dir.path().join("new.json"), &path).unwrap();
        assert!(evaluate(&spec, &target(&log), true).ready);
    }

    #[test]
    fn stdout_gate_and_equality() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stdout.log");
        let spec = ReadinessSpec {
            stdout_regex: Some("Preview ready: http://[^ ]+".into()),
            ..Default::default()
        };
        assert!(!evaluate(&spec, &target(&log), true).ready);
        std::fs::write(&log, "booting\nPreview ready: http://127.0.0.1:9/ now\n").unwrap();
        assert!(evaluate(&spec, &target(&log), true).ready);
        assert!(json_equals(&serde_json::json!(true), "true"));
        assert!(json_equals(&serde_json::json!(3), "3"));
        assert!(!json_equals(&serde_json::json!("3"), "\"3\""));
    }

    #[test]
    fn refused_specs() {
        let bad_regex = ReadinessSpec {
            stdout_regex: Some("(".into()),
            ..Default::default()
        };
        assert!(bad_regex.validate().unwrap_err().is_refused_input());
        let proof_without_gate = ReadinessSpec {
            kind: ReadinessKind::Proof,
            ..Default::default()
        };
        assert!(proof_without_gate.validate().is_err());
        let equals_without_pointer = ReadinessSpec {
            artifact: Some(ArtifactGate {
                path: "/x".into(),
                json_pointer: None,
                json_equals: Some("ready".into()),
                stale: None,
            }),
            ..Default::default()
        };
        assert!(equals_without_pointer.validate().is_err());
    }
}
