//! The preview consumer: `homeboy tunnel preview-consumer run`.
//!
//! It runs a configured command ([`config`]) that needs a Homeboy-owned public preview URL — taken from
//! `--preview-public-url` or from the public URL a managed service recorded (`--service-id`) — as a plain
//! argv (no shell) in its own process group, captures stdout, stderr and the exit code, extracts the
//! reviewer-clickable `public_result_url` (the JSON file's pointer first, then the last stdout line with the
//! configured prefix), and writes the `homeboy/preview-consumer-run/v1` artifact into the artifacts
//! directory. What the preview means stays the consumer's business.

pub mod config;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homeboy_config::Paths;
use serde::Serialize;
use serde_json::Value;

use crate::declarations::check_http_url;
use crate::service::state::{ServiceFiles, create_private_dir};
use crate::{TunnelError, clock};
use config::{ConsumerConfig, ConsumerOutput, render};

/// Schema name of the artifact.
pub const CONSUMER_RUN_SCHEMA: &str = "homeboy/preview-consumer-run/v1";

/// File name of the artifact inside the artifacts directory.
pub const CONSUMER_RUN_FILE: &str = "preview-consumer-run.json";

/// At most this much of stdout and of stderr is kept in the artifact.
pub const MAX_CAPTURE: usize = 1024 * 1024;

/// Where the public preview URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviewSource {
    /// The public URL recorded by `service start --public-tunnel-public-url`.
    ServiceId(String),
    /// Given directly.
    PublicUrl(String),
}

/// What `preview-consumer run` asks for.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub config_path: PathBuf,
    pub source: PreviewSource,
    pub timeout: Duration,
}

/// The `homeboy/preview-consumer-run/v1` artifact.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerRun {
    pub schema: &'static str,
    pub kind: &'static str,
    pub consumer_id: String,
    pub preview_public_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    pub artifacts_dir: PathBuf,
    pub public_result_url: Option<String>,
    /// `json_pointer` or `stdout_prefix`, when a result URL was found.
    pub public_result_source: Option<&'static str>,
    pub command: RanCommand,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// `None` when the command was killed by a signal or timed out.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub artifact_path: PathBuf,
}

/// The argv as run, templates filled in.
#[derive(Debug, Clone, Serialize)]
pub struct RanCommand {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
}

impl ConsumerRun {
    /// Whether the consumer succeeded (exit code 0 within the time limit).
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// Runs the consumer and writes its artifact. A consumer that fails still yields `Ok` (its artifact says
/// how it failed); errors are for runs that could not happen at all.
pub fn run(paths: &Paths, request: &RunRequest) -> Result<ConsumerRun, TunnelError> {
    let config = config::load(&request.config_path)?;
    let (preview_public_url, service_id) = resolve_public_url(paths, &request.source)?;
    let cwd = resolve_cwd(&request.config_path, &config)?;
    let artifacts_dir = match &config.command.artifacts_dir {
        Some(dir) => cwd.join(dir),
        None => paths
            .artifact_root()
            .join("preview-consumers")
            .join(&config.id),
    };
    create_private_dir(&artifacts_dir)?;
    let artifacts_text = artifacts_dir.to_string_lossy().into_owned();
    let values = [
        ("preview_public_url", preview_public_url.as_str()),
        ("artifacts_dir", artifacts_text.as_str()),
    ];
    let command = RanCommand {
        program: render(&config.command.program, &values)?,
        args: config
            .command
            .args
            .iter()
            .map(|a| render(a, &values))
            .collect::<Result<_, _>>()?,
        cwd,
    };

    let started_at = clock::now_rfc3339();
    let began = Instant::now();
    let outcome = execute(&config.id, &command, &values, request.timeout)?;
    let duration_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (public_result_url, public_result_source) =
        extract_result_url(&config.output, &artifacts_dir, &outcome.stdout);

    let run = ConsumerRun {
        schema: CONSUMER_RUN_SCHEMA,
        kind: "preview_consumer_run",
        consumer_id: config.id.clone(),
        preview_public_url,
        service_id,
        artifact_path: artifacts_dir.join(CONSUMER_RUN_FILE),
        artifacts_dir,
        public_result_url,
        public_result_source,
        command,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
        stdout_truncated: outcome.stdout_truncated,
        stderr_truncated: outcome.stderr_truncated,
        exit_code: outcome.exit_code,
        timed_out: outcome.timed_out,
        started_at,
        finished_at: clock::now_rfc3339(),
        duration_ms,
    };
    homeboy_config::write_json_atomic(&run.artifact_path, &run)?;
    Ok(run)
}

fn resolve_public_url(
    paths: &Paths,
    source: &PreviewSource,
) -> Result<(String, Option<String>), TunnelError> {
    match source {
        PreviewSource::PublicUrl(url) => {
            check_http_url("--preview-public-url", url)?;
            Ok((url.clone(), None))
        }
        PreviewSource::ServiceId(id) => {
            let files = ServiceFiles::new(paths, id)?;
            let recorded = files.read_runtime()?.and_then(|r| r.public_url);
            match recorded {
                Some(url) => Ok((url, Some(id.clone()))),
                None => Err(TunnelError::NoPublicUrl { id: id.clone() }),
            }
        }
    }
}

fn resolve_cwd(config_path: &Path, config: &ConsumerConfig) -> Result<PathBuf, TunnelError> {
    let here = std::env::current_dir().map_err(|e| TunnelError::io("read", ".", e))?;
    let config_dir = here.join(config_path.parent().unwrap_or(Path::new(".")));
    let cwd = match &config.command.cwd {
        Some(cwd) => config_dir.join(cwd),
        None => config_dir,
    };
    if !cwd.is_dir() {
        return Err(TunnelError::invalid(
            "command.cwd",
            format!("{} is not a directory", cwd.display()),
        ));
    }
    Ok(cwd)
}

struct Outcome {
    stdout: String,
    stderr: String,
    stdout_truncated: bool,
    stderr_truncated: bool,
    exit_code: Option<i32>,
    timed_out: bool,
}

/// How long the pipes may stay open after the command's group is gone (something that left the group, such
/// as a `setsid` daemon, can hold them forever); what was read by then is kept.
const PIPE_DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs the argv in its own process group, reading both pipes on threads so neither can fill up; on
/// timeout the whole group is terminated, and when the command ends whatever it left running in its group
/// is terminated too (nothing of a one-shot consumer outlives the run).
fn execute(
    id: &str,
    command: &RanCommand,
    values: &[(&str, &str)],
    timeout: Duration,
) -> Result<Outcome, TunnelError> {
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .current_dir(&command.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("HOMEBOY_PREVIEW_PUBLIC_URL", values[0].1)
        .env("HOMEBOY_ARTIFACTS_DIR", values[1].1);
    homeboy_process::new_process_group(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| TunnelError::Spawn {
        what: format!("preview consumer {id} ({})", command.program),
        source,
    })?;
    let stdout = child.stdout.take().map(Capture::start);
    let stderr = child.stderr.take().map(Capture::start);
    // A timeout too large for the clock means no deadline (never a panic).
    let deadline = Instant::now().checked_add(timeout);
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if deadline.is_some_and(|d| Instant::now() >= d) => {
                timed_out = true;
                homeboy_process::terminate_group(child.id(), Duration::from_secs(2));
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    // Background processes the command left in its group would hold the pipes open.
    if homeboy_process::group_alive(child.id()) {
        homeboy_process::terminate_group(child.id(), Duration::from_secs(2));
    }
    let drained_by = Instant::now() + PIPE_DRAIN_GRACE;
    let (stdout, stdout_truncated) = stdout.map(|c| c.finish(drained_by)).unwrap_or_default();
    let (stderr, stderr_truncated) = stderr.map(|c| c.finish(drained_by)).unwrap_or_default();
    Ok(Outcome {
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        exit_code: if timed_out {
            None
        } else {
            status.and_then(|s| s.code())
        },
        timed_out,
    })
}

/// A pipe read to its end on a thread, keeping the first [`MAX_CAPTURE`] bytes where the caller can take
/// them even while the thread still waits for the end.
struct Capture {
    kept: Arc<Mutex<(Vec<u8>, bool)>>,
    reader: std::thread::JoinHandle<()>,
}

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static) -> Capture {
        let kept = Arc::new(Mutex::new((Vec::new(), false)));
        let sink = kept.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut kept = sink.lock().unwrap_or_else(|p| p.into_inner());
                        let room = MAX_CAPTURE.saturating_sub(kept.0.len());
                        kept.0.extend_from_slice(&buf[..n.min(room)]);
                        kept.1 |= n > room;
                    }
                }
            }
        });
        Capture { kept, reader }
    }

    /// The text read so far, once the pipe has ended or `deadline` has passed (the reader thread is then
    /// left to finish on its own).
    fn finish(self, deadline: Instant) -> (String, bool) {
        while !self.reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        (String::from_utf8_lossy(&kept.0).into_owned(), kept.1)
    }
}

/// The JSON file's pointer wins; the last stdout line starting with the prefix is the fallback.
fn extract_result_url(
    output: &ConsumerOutput,
    artifacts_dir: &Path,
    stdout: &str,
) -> (Option<String>, Option<&'static str>) {
    if let (Some(file), Some(pointer)) = (
        &output.public_result_json_file,
        &output.public_result_json_pointer,
    ) {
        let from_json = std::fs::read(artifacts_dir.join(file))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|doc| {
                doc.pointer(pointer)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .filter(|url| !url.trim().is_empty());
        if let Some(url) = from_json {
            return (Some(url), Some("json_pointer"));
        }
    }
    if let Some(prefix) = &output.public_result_stdout_prefix {
        let from_stdout = stdout
            .lines()
            .rev()
            .find_map(|line| line.trim_start().strip_prefix(prefix.as_str()))
            .map(|rest| rest.trim().to_string())
            .filter(|url| !url.is_empty());
        if let Some(url) = from_stdout {
            return (Some(url), Some("stdout_prefix"));
        }
    }
    (None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_prefers_the_json_pointer() {
        let dir = tempfile::tempdir().unwrap();
        let output = ConsumerOutput {
            public_result_json_file: Some("summary.json".into()),
            public_result_json_pointer: Some("/result/url".into()),
            public_result_stdout_prefix: Some("Public result URL:".into()),
        };
        let stdout = "noise\nPublic result URL: https://a.example/1\n  Public result URL:  https://a.example/2 \n";
        assert_eq!(
            extract_result_url(&output, dir.path(), stdout),
            (Some("https://a.example/2".into()), Some("stdout_prefix"))
        );
        std::fs::write(
            dir.path().join("summary.json"),
            r#"{"result": {"url": "https://j.example/r"}}"#,
        )
        .unwrap();
        assert_eq!(
            extract_result_url(&output, dir.path(), stdout),
            (Some("https://j.example/r".into()), Some("json_pointer"))
        );
        assert_eq!(
            extract_result_url(&ConsumerOutput::default(), dir.path(), stdout),
            (None, None)
        );
    }

    #[test]
    fn what_the_command_leaves_running_neither_outlives_nor_holds_up_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        let config = dir.path().join("consumer.json");
        // A background job in the command's group, and one that escaped it with setsid; both hold stdout.
        // The command ends once the escaped one has written its pid file (bounded by the run's timeout).
        std::fs::write(
            &config,
            r#"{"id": "leaver", "command": {"program": "sh", "args": ["-c",
                "sleep 20 & echo $! > in-group.pid; setsid sh -c 'echo $$ > escaped.tmp && mv escaped.tmp escaped.pid; exec sleep 10' & while [ ! -s escaped.pid ]; do sleep 0.01; done; echo 'Result: ok'"]},
               "output": {"public_result_stdout_prefix": "Result:"}}"#,
        )
        .unwrap();
        let request = RunRequest {
            config_path: config,
            source: PreviewSource::PublicUrl("https://run-1.example.net".into()),
            timeout: Duration::from_secs(60),
        };
        let run = run(&paths, &request).unwrap();
        let pid = |name: &str| -> u32 {
            std::fs::read_to_string(dir.path().join(name))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let (in_group, escaped) = (pid("in-group.pid"), pid("escaped.pid"));
        let (in_group_alive, escaped_alive) = (
            homeboy_process::alive(in_group),
            homeboy_process::alive(escaped),
        );
        homeboy_process::terminate(in_group, Duration::from_secs(1));
        homeboy_process::terminate(escaped, Duration::from_secs(1));
        assert_eq!(run.exit_code, Some(0));
        assert_eq!(run.public_result_url.as_deref(), Some("ok"));
        assert!(
            !in_group_alive,
            "a background job of the command outlived the run"
        );
        assert!(
            escaped_alive,
            "the run waited for a process outside its group to close the pipes"
        );
    }

    #[test]
    fn runs_argv_without_a_shell_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        let config = dir.path().join("consumer.json");
        std::fs::write(
            &config,
            r#"{"id": "echoer", "command": {"program": "sh",
                "args": ["-c", "echo \"Result: $1/done\"; echo err >&2; exit 3", "sh", "${preview_public_url}"],
                "artifacts_dir": "out"},
               "output": {"public_result_stdout_prefix": "Result:"}}"#,
        )
        .unwrap();
        let request = RunRequest {
            config_path: config.clone(),
            source: PreviewSource::PublicUrl("https://run-1.example.net".into()),
            timeout: Duration::from_secs(20),
        };
        let run = run(&paths, &request).unwrap();
        assert_eq!(run.exit_code, Some(3));
        assert!(!run.succeeded());
        assert_eq!(
            run.public_result_url.as_deref(),
            Some("https://run-1.example.net/done")
        );
        assert_eq!(run.stderr, "err\n");
        assert_eq!(run.artifacts_dir, dir.path().join("out"));
        let written: Value =
            serde_json::from_slice(&std::fs::read(&run.artifact_path).unwrap()).unwrap();
        assert_eq!(written["schema"], CONSUMER_RUN_SCHEMA);
        assert_eq!(written["exit_code"], 3);

        std::fs::write(
            &config,
            r#"{"id": "sleeper", "command": {"program": "sleep", "args": ["30"]}}"#,
        )
        .unwrap();
        let request = RunRequest {
            timeout: Duration::from_millis(300),
            ..request
        };
        let run = super::run(&paths, &request).unwrap();
        assert!(run.timed_out && run.exit_code.is_none());

        // `--timeout-secs 18446744073709551615`: no deadline, and no panic.
        std::fs::write(
            &config,
            r#"{"id": "quick", "command": {"program": "true"}}"#,
        )
        .unwrap();
        let forever = RunRequest {
            timeout: Duration::from_secs(u64::MAX),
            ..request.clone()
        };
        let run = super::run(&paths, &forever).unwrap();
        assert!(run.succeeded(), "{run:?}");

        let missing = RunRequest {
            source: PreviewSource::ServiceId("never-started".into()),
            ..request
        };
        assert!(matches!(
            super::run(&paths, &missing).unwrap_err(),
            TunnelError::NoPublicUrl { .. }
        ));
    }
}
