//! Who owns a running run, and the `status_note` readers add when that cannot be verified.
//!
//! A run is recorded as `running` by the process that executes it (the daemon's executor or a `homeboy
//! lint` process), with `metadata.owner = {pid, start_time, process}`. A reader that finds a running run
//! checks that this exact process (pid and start time, so a reused pid does not count) is still alive; if
//! not, the run keeps its recorded status and gains a `status_note` saying it cannot be verified. The CLI and
//! the HTTP routes both read runs through [`annotate`], so the note reads the same everywhere.

use serde_json::{Value, json};

use crate::model::{Run, RunStatus};

/// The owner of a run being recorded by this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub start_time: Option<u64>,
    /// `daemon` or `cli`.
    pub process: String,
}

impl Owner {
    /// This process, described as `process` (`daemon`, `cli`).
    pub fn this_process(process: &str) -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start_time: homeboy_process::start_time(pid),
            process: process.to_string(),
        }
    }

    /// The `metadata.owner` value.
    pub fn to_json(&self) -> Value {
        json!({"pid": self.pid, "start_time": self.start_time, "process": self.process})
    }
}

/// Sets `status_note` on a running run whose owner is gone or unknown; clears it otherwise.
pub fn annotate(run: &mut Run) {
    run.status_note = note(run, |pid, start| {
        homeboy_process::same_process_alive(pid, start)
    });
}

/// The note for `run`, with `alive(pid, start_time)` as the liveness check.
pub fn note(run: &Run, alive: impl Fn(u32, Option<u64>) -> bool) -> Option<String> {
    if run.status != RunStatus::Running {
        return None;
    }
    let owner = run.metadata.get("owner");
    let pid = owner
        .and_then(|o| o.get("pid"))
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok());
    let Some(pid) = pid else {
        return Some(
            "recorded as running without owner metadata; its status cannot be verified".into(),
        );
    };
    let start = owner
        .and_then(|o| o.get("start_time"))
        .and_then(Value::as_u64);
    if alive(pid, start) {
        return None;
    }
    let process = owner
        .and_then(|o| o.get("process"))
        .and_then(Value::as_str)
        .unwrap_or("process");
    Some(format!(
        "recorded as running, but its owner ({process} pid {pid}) is gone; the run cannot be verified and \
         may have been interrupted"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(owner: Option<Value>) -> Run {
        let mut metadata = serde_json::Map::new();
        if let Some(owner) = owner {
            metadata.insert("owner".into(), owner);
        }
        Run {
            id: "r".into(),
            kind: "lint".into(),
            component_id: "c".into(),
            rig_id: None,
            status: RunStatus::Running,
            started_at: String::new(),
            finished_at: None,
            command: String::new(),
            cwd: String::new(),
            homeboy_version: String::new(),
            git_sha: None,
            metadata,
            status_note: None,
        }
    }

    #[test]
    fn notes_for_gone_and_unknown_owners() {
        let mut run = running(Some(Owner::this_process("cli").to_json()));
        annotate(&mut run);
        assert_eq!(run.status_note, None, "this process is alive");

        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut run = running(Some(json!({"pid": pid, "process": "cli"})));
        annotate(&mut run);
        let note = run.status_note.unwrap();
        assert!(note.contains(&format!("cli pid {pid}")), "{note}");
        assert!(note.contains("cannot be verified"), "{note}");

        // The same pid with another start time is another process.
        let me = Owner::this_process("daemon");
        let mut run = running(Some(
            json!({"pid": me.pid, "start_time": me.start_time.unwrap() + 1, "process": "daemon"}),
        ));
        annotate(&mut run);
        assert!(run.status_note.is_some());

        let mut run = running(None);
        annotate(&mut run);
        assert!(run.status_note.unwrap().contains("without owner metadata"));

        let mut done = running(None);
        done.status = RunStatus::Pass;
        annotate(&mut done);
        assert_eq!(done.status_note, None);
    }
}
