//! Starting a managed command so that it outlives `homeboy`, can be stopped as a whole tree, and still
//! reports how it ended.
//!
//! How the exit code survives: `start` returns long before the command ends, so nothing in homeboy is left
//! to `wait()` for it. Instead the group leader is a tiny POSIX `sh` supervisor:
//!
//! ```text
//! sh -c 'sh -c "$1"; code=$?; printf "%s\n" "$code" > "$2.tmp" && mv -f "$2.tmp" "$2"; exit "$code"' \
//!     homeboy-supervise <command> <exit-file>
//! ```
//!
//! It starts a new session (so it is its own process group and has no controlling terminal), runs the
//! developer's command as its child with `sh -c`, waits for it, and writes the exit status to the exit file
//! with a rename (a reader sees no file or a whole number). The command and the exit-file path are passed as
//! positional parameters, never spliced into the script, so no quoting can break out. A command killed by
//! signal N is reported as `128 + N`, as shells do. When `stop` terminates the group the supervisor dies
//! with it and writes nothing; `stop` removes the runtime state anyway.
//!
//! `--command` is a shell-style string by design (the spec's examples use `npm run dev -- --host ...`): it
//! is the developer's own declared command, run with their privileges, exactly like a Makefile line.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use homeboy_process::new_session;

use super::state::{LogPaths, ProcessRecord};
use crate::TunnelError;

/// The supervisor script (see the module docs).
const SUPERVISOR: &str =
    r#"sh -c "$1"; code=$?; printf '%s\n' "$code" > "$2.tmp" && mv -f "$2.tmp" "$2"; exit "$code""#;

/// What to start.
pub struct SpawnSpec<'a> {
    /// For error messages: `service site-preview`, `backend of site-preview`.
    pub what: String,
    pub command: &'a str,
    pub cwd: &'a Path,
    /// Extra environment, on top of what homeboy inherited.
    pub env: &'a [(String, String)],
    pub logs: LogPaths,
    pub exit_code_file: &'a Path,
}

/// Starts `spec.command` under the supervisor in a new session with fresh (truncated) logs.
pub fn spawn_supervised(spec: SpawnSpec<'_>) -> Result<ProcessRecord, TunnelError> {
    let stdout = open_log(&spec.logs.stdout)?;
    let stderr = open_log(&spec.logs.stderr)?;
    homeboy_config::remove_file_durable(spec.exit_code_file)?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(SUPERVISOR)
        .arg("homeboy-supervise")
        .arg(spec.command)
        .arg(spec.exit_code_file)
        .current_dir(spec.cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    for (name, value) in spec.env {
        cmd.env(name, value);
    }
    new_session(&mut cmd);
    let child = cmd.spawn().map_err(|source| TunnelError::Spawn {
        what: spec.what,
        source,
    })?;
    // Not waited for: the supervisor outlives us and is reaped by whoever inherits it.
    let pid = child.id();
    Ok(ProcessRecord {
        command: spec.command.to_string(),
        pid,
        pgid: pid,
        logs: spec.logs,
        exit_code_file: spec.exit_code_file.to_path_buf(),
        started: homeboy_process::start_time(pid),
    })
}

/// The exit code the supervisor recorded, once the command has ended.
pub fn recorded_exit_code(record: &ProcessRecord) -> Option<i32> {
    std::fs::read_to_string(&record.exit_code_file)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether anything of the record's process group is still alive, and the group is still this one (its
/// number not reused by a group someone else started since).
pub fn group_running(record: &ProcessRecord) -> bool {
    homeboy_process::same_group_alive(record.pgid, record.started)
}

fn open_log(path: &Path) -> Result<File, TunnelError> {
    if let Some(dir) = path.parent() {
        super::state::create_private_dir(dir)?;
    }
    File::options()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| TunnelError::io("open log", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spawn(dir: &Path, command: &str, env: &[(String, String)]) -> ProcessRecord {
        spawn_supervised(SpawnSpec {
            what: "test".into(),
            command,
            cwd: dir,
            env,
            logs: LogPaths {
                stdout: dir.join("out.log"),
                stderr: dir.join("err.log"),
            },
            exit_code_file: &dir.join("exit_code"),
        })
        .unwrap()
    }

    #[test]
    fn records_exit_code_and_output_with_awkward_quoting() {
        let dir = tempfile::tempdir().unwrap();
        let env = [("GREETING".to_string(), "hi 'there' \"$x\"".to_string())];
        let record = spawn(
            dir.path(),
            r#"printf '%s\n' "$GREETING" "it's"; echo oops >&2; exit 7"#,
            &env,
        );
        assert_eq!(record.pid, record.pgid);
        assert!(homeboy_process::wait_until(Duration::from_secs(10), || {
            recorded_exit_code(&record).is_some()
        }));
        assert_eq!(recorded_exit_code(&record), Some(7));
        assert!(homeboy_process::wait_until(Duration::from_secs(5), || {
            !group_running(&record)
        }));
        let out = std::fs::read_to_string(dir.path().join("out.log")).unwrap();
        assert_eq!(out, "hi 'there' \"$x\"\nit's\n");
        let err = std::fs::read_to_string(dir.path().join("err.log")).unwrap();
        assert_eq!(err, "oops\n");
    }

    #[test]
    fn group_termination_ends_the_whole_tree() {
        let dir = tempfile::tempdir().unwrap();
        let record = spawn(dir.path(), "sleep 30 & sleep 30", &[]);
        assert!(homeboy_process::wait_until(Duration::from_secs(5), || {
            homeboy_process::group_members(record.pgid).is_some_and(|m| m.len() >= 3)
        }));
        homeboy_process::terminate_group(record.pgid, Duration::from_secs(2));
        assert!(!group_running(&record));
        assert_eq!(recorded_exit_code(&record), None);
    }
}
