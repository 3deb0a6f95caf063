//! An analysis run, start to finish — the one function both executors call: the daemon's job executor (for
//! `POST /lint` and `POST /tools/:id/run`) and the `homeboy lint <component>` process. So the run record, the
//! evidence and the result JSON are the same whoever runs the tool.
//!
//! [`prepare`] checks the request against the declarations (the component exists and declares the tool; a
//! named rig lists the component). [`run`] records the run as `running` with its owner, runs the declared
//! argv in the checkout (own process group, timeout, output streamed to a [`Watcher`]), collects the evidence
//! (see [`crate::evidence`]), records the end — status `pass` (exit 0), `fail` (other exit codes) or
//! `error` (could not start, timed out, stopped) — and builds the result JSON with [`result_json`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use homeboy_config::Paths;
use homeboy_config::components::{self, Component, ToolCommand};
use homeboy_config::rigs;
use homeboy_observations::owner::Owner;
use homeboy_observations::{
    Completion, FindingFilter, ObservationStore, Run, RunStatus, format_ms, new_id, now_ms,
};
use serde_json::{Map, Value, json};

use crate::command::{self, Control, Stream, Watcher};
use crate::evidence;
use crate::git::Checkout;
use crate::tools::{AnalysisRequest, tool_id};
use crate::{ComponentError, load};

/// Findings listed in a result (the rest are a `GET /runs/:id/findings` away).
pub const RESULT_FINDINGS: usize = 100;
/// Output kept in a run's `output.log` artifact.
pub const MAX_LOG_BYTES: usize = 8 * 1024 * 1024;

/// A request checked against the declarations, ready to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: AnalysisRequest,
    pub component: Component,
    pub tool: ToolCommand,
    pub checkout: PathBuf,
}

/// Where a run is recorded and by whom.
pub struct Recorder<'a> {
    pub store: &'a ObservationStore,
    pub artifact_root: &'a Path,
    pub owner: Owner,
    /// The daemon job executing the run, if any.
    pub job_id: Option<String>,
}

/// A recorded run and its result JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub run: Run,
    pub result: Value,
    /// The tool's exit code (124 after a timeout, 127 when it could not start, 130 when stopped).
    pub exit_code: i32,
}

/// Checks `request` against the declarations under `paths`.
pub fn prepare(paths: &Paths, request: AnalysisRequest) -> Result<Prepared, ComponentError> {
    let component: Component = load(&components::store(paths), &request.component)?;
    let tool =
        component
            .tools
            .get(request.tool)
            .cloned()
            .ok_or_else(|| ComponentError::NoTool {
                component: component.id.clone(),
                tool: request.tool.to_string(),
            })?;
    if let Some(rig_id) = &request.rig {
        let rig = load(&rigs::store(paths), rig_id)?;
        if !rig.components.contains(&component.id) {
            return Err(ComponentError::Invalid {
                field: "rig".into(),
                problem: format!("rig {rig_id} does not list component {}", component.id),
            });
        }
    }
    let checkout = PathBuf::from(&component.path);
    if !checkout.is_dir() {
        return Err(ComponentError::PathMissing {
            component: component.id.clone(),
            path: checkout,
        });
    }
    Ok(Prepared {
        request,
        component,
        tool,
        checkout,
    })
}

/// Runs a prepared request and records it (see the module doc).
pub fn run(
    prepared: &Prepared,
    recorder: &Recorder<'_>,
    watcher: &mut dyn Watcher,
) -> Result<Outcome, ComponentError> {
    let request = &prepared.request;
    let argv = &prepared.tool.command;
    let timeout_secs = request
        .timeout_secs
        .unwrap_or_else(|| prepared.tool.timeout_secs());
    let mut metadata = Map::new();
    metadata.insert("owner".into(), recorder.owner.to_json());
    metadata.insert("tool".into(), Value::String(tool_id(request.tool)));
    metadata.insert("argv".into(), json!(argv));
    metadata.insert("timeout_secs".into(), json!(timeout_secs));
    if let Some(job_id) = &recorder.job_id {
        metadata.insert("job_id".into(), json!(job_id));
    }
    if let Some(label) = &request.label {
        metadata.insert("label".into(), json!(label));
    }
    let started_ms = now_ms();
    let mut run = Run {
        id: new_id(),
        kind: request.tool.to_string(),
        component_id: prepared.component.id.clone(),
        rig_id: request.rig.clone(),
        status: RunStatus::Running,
        started_at: format_ms(started_ms),
        finished_at: None,
        command: display_argv(argv),
        cwd: prepared.checkout.display().to_string(),
        homeboy_version: env!("CARGO_PKG_VERSION").to_string(),
        git_sha: Checkout::open(&prepared.component.id, &prepared.checkout)
            .and_then(|c| c.resolve("HEAD"))
            .ok()
            .flatten(),
        metadata,
        status_note: None,
    };
    recorder.store.create_run(&run)?;

    let mut capture = Capture {
        inner: watcher,
        log: Vec::new(),
        log_truncated: false,
    };
    let finished = command::run(
        argv,
        &prepared.checkout,
        Duration::from_secs(timeout_secs),
        &mut capture,
    );
    let (status, exit_code, error) = match &finished {
        Ok(f) if f.stopped => (
            RunStatus::Error,
            130,
            Some("stopped before it finished (the job was cancelled)".to_string()),
        ),
        Ok(f) if f.timed_out => (
            RunStatus::Error,
            124,
            Some(format!("timed out after {timeout_secs} s")),
        ),
        Ok(f) if f.exit_code == 0 => (RunStatus::Pass, 0, None),
        Ok(f) => (RunStatus::Fail, f.exit_code, None),
        Err(e) => (RunStatus::Error, 127, Some(e.to_string())),
    };
    let finished_ms = now_ms();
    let collected = evidence::collect(
        recorder.artifact_root,
        &run.id,
        &prepared.checkout,
        &prepared.tool,
        &capture.log,
    );
    run.status = status;
    run.finished_at = Some(format_ms(finished_ms));
    let meta = &mut run.metadata;
    meta.insert("exit_code".into(), json!(exit_code));
    meta.insert(
        "duration_ms".into(),
        json!(finished_ms.saturating_sub(started_ms)),
    );
    if let Some(error) = error {
        meta.insert("error".into(), json!(error));
    }
    if capture.log_truncated {
        meta.insert("output_truncated".into(), json!(true));
    }
    meta.extend(collected.metadata);
    let run = recorder.store.complete_run(Completion {
        run,
        artifacts: collected.artifacts,
        findings: collected.findings,
    })?;
    let result = result_json(recorder.store, &run)?;
    Ok(Outcome {
        run,
        result,
        exit_code,
    })
}

/// The result of a recorded run, as `homeboy lint --format json` prints it and the job's `result` event
/// carries it: `{run, exit_code, artifacts, findings: {total, by_severity, items, truncated}, metrics}`.
pub fn result_json(store: &ObservationStore, run: &Run) -> Result<Value, ComponentError> {
    let artifacts: Vec<Value> = store
        .artifacts(&run.id)?
        .iter()
        .map(|a| serde_json::to_value(a.view()).unwrap_or_default())
        .collect();
    let page = store.findings(
        &run.id,
        &FindingFilter {
            limit: RESULT_FINDINGS,
            ..FindingFilter::default()
        },
    )?;
    let summary = run.metadata.get("findings");
    let total = summary
        .and_then(|s| s.get("total"))
        .and_then(Value::as_u64)
        .unwrap_or(page.findings.len() as u64);
    Ok(json!({
        "run": run,
        "exit_code": run.metadata.get("exit_code").cloned().unwrap_or(Value::Null),
        "artifacts": artifacts,
        "findings": {
            "total": total,
            "by_severity": summary.and_then(|s| s.get("by_severity")).cloned().unwrap_or_else(|| json!({})),
            "items": page.findings,
            "truncated": page.next_cursor.is_some(),
        },
        "metrics": run.metadata.get("metrics").cloned().unwrap_or_else(|| json!({})),
    }))
}

/// argv as one line for people: words with spaces or quotes are single-quoted.
pub fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
            if plain {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Keeps the output for the run's log while passing it on.
struct Capture<'a> {
    inner: &'a mut dyn Watcher,
    log: Vec<u8>,
    log_truncated: bool,
}

impl Watcher for Capture<'_> {
    fn line(&mut self, stream: Stream, text: &str) -> Control {
        if self.log.len() + text.len() < MAX_LOG_BYTES {
            if stream == Stream::Stderr {
                self.log.extend_from_slice(b"[stderr] ");
            }
            self.log.extend_from_slice(text.as_bytes());
            self.log.push(b'\n');
        } else {
            self.log_truncated = true;
        }
        self.inner.line(stream, text)
    }

    fn tick(&mut self) -> Control {
        self.inner.tick()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_displayed_for_a_shell() {
        assert_eq!(
            display_argv(&["sh".into(), "-c".into(), "echo 'hi' > out".into()]),
            r#"sh -c 'echo '\''hi'\'' > out'"#
        );
        assert_eq!(
            display_argv(&["cargo".into(), "clippy".into()]),
            "cargo clippy"
        );
    }
}
