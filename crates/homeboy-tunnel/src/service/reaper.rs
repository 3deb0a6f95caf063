//! The liveness of managed services, for a process that watches them (the daemon, wired in by the binary).
//!
//! [`reap`] looks at every started service (a `runtime.json` under `<data>/tunnel/services/`) and, once its
//! process group is gone, records `ended` in the runtime state: when it noticed and the exit code the
//! supervisor wrote (`null` when the whole group was killed at once and nobody lived to write it). Called
//! every quarter second, it records an end within a second. [`clean_after_reboot`] removes runtime states
//! written before this machine booted: their pids and process groups are numbers the kernel has handed out
//! again, and signalling them would hit someone else. [`any_running`] says whether a service still runs.
//!
//! A service being started or stopped holds its lock; the reaper skips it (try-lock) and looks again next
//! time, so it never blocks behind a `start` waiting for readiness, nor writes over what `start` writes.

use homeboy_config::Paths;
use homeboy_config::clock::parse_rfc3339;

use super::spawn;
use super::state::{EndRecord, RuntimeState, ServiceFiles};
use crate::{TunnelError, clock};

/// A service whose end the reaper recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub service_id: String,
    pub exit_code: Option<i32>,
}

/// Ids of the services that have a runtime state (started and not stopped), sorted.
fn started(paths: &Paths) -> Vec<(String, ServiceFiles)> {
    let dir = paths.data_dir().join("tunnel").join("services");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, ServiceFiles)> = entries
        .flatten()
        .filter_map(|entry| {
            let id = entry.file_name().to_str()?.to_string();
            let files = ServiceFiles::new(paths, &id).ok()?;
            files.runtime().is_file().then_some((id, files))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Records `ended` for every started service whose process group is gone. Returns those it recorded.
pub fn reap(paths: &Paths) -> Result<Vec<Ended>, TunnelError> {
    let mut ended = Vec::new();
    for (id, files) in started(paths) {
        // Cheap first look without the lock: most of the time everything still runs or already ended.
        let Some(runtime) = files.read_runtime()? else {
            continue;
        };
        if runtime.ended.is_some() || spawn::group_running(&runtime.process) {
            continue;
        }
        let Some(_lock) = files.try_lock()? else {
            continue;
        };
        let Some(mut runtime) = files.read_runtime()? else {
            continue;
        };
        if runtime.ended.is_some() || spawn::group_running(&runtime.process) {
            continue;
        }
        let exit_code = spawn::recorded_exit_code(&runtime.process);
        runtime.ended = Some(EndRecord {
            at: clock::now_rfc3339(),
            exit_code,
        });
        files.write_runtime(&runtime)?;
        ended.push(Ended {
            service_id: id,
            exit_code,
        });
    }
    Ok(ended)
}

/// Removes the runtime state (logs stay) of every service started before this machine booted. Returns
/// their ids.
pub fn clean_after_reboot(paths: &Paths) -> Result<Vec<String>, TunnelError> {
    let Some(boot) = homeboy_process::boot_time() else {
        return Ok(Vec::new());
    };
    let mut cleaned = Vec::new();
    for (id, files) in started(paths) {
        let Some(_lock) = files.try_lock()? else {
            continue;
        };
        let Some(runtime) = files.read_runtime()? else {
            continue;
        };
        if started_before(&runtime, boot) {
            files.clear_runtime()?;
            cleaned.push(id);
        }
    }
    Ok(cleaned)
}

/// Whether any started service (or its backend) still runs.
pub fn any_running(paths: &Paths) -> bool {
    started(paths).iter().any(|(_, files)| {
        files.read_runtime().ok().flatten().is_some_and(|runtime| {
            runtime.service_running()
                || runtime
                    .backend_process
                    .as_ref()
                    .is_some_and(spawn::group_running)
        })
    })
}

/// Whether `runtime` was written before the machine booted at `boot` (seconds since the epoch). A start
/// time that does not parse is not taken as proof of anything.
fn started_before(runtime: &RuntimeState, boot: u64) -> bool {
    parse_rfc3339(&runtime.started_at).is_some_and(|started| started.unix_timestamp() < boot as i64)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::service::readiness::ReadinessSpec;
    use crate::service::spawn::{SpawnSpec, spawn_supervised};
    use crate::service::state::{BackendKind, RUNTIME_SCHEMA, SourceIds};

    fn started_service(paths: &Paths, id: &str, command: &str, started_at: &str) -> ServiceFiles {
        let files = ServiceFiles::new(paths, id).unwrap();
        std::fs::create_dir_all(files.dir()).unwrap();
        let process = spawn_supervised(SpawnSpec {
            what: id.into(),
            command,
            cwd: Path::new("/"),
            env: &[],
            logs: files.service_logs(),
            exit_code_file: &files.service_exit_file(),
        })
        .unwrap();
        files
            .write_runtime(&RuntimeState {
                schema: RUNTIME_SCHEMA.into(),
                service_id: id.into(),
                started_at: started_at.into(),
                cwd: "/".into(),
                host: "127.0.0.1".into(),
                port: 9,
                local_url: "http://127.0.0.1:9".into(),
                health_path: None,
                env_names: vec![],
                process,
                readiness: ReadinessSpec::default(),
                backend: BackendKind::None,
                backend_process: None,
                public_url: None,
                source: SourceIds::default(),
                preview_artifact_path: None,
                ended: None,
            })
            .unwrap();
        files
    }

    #[test]
    fn an_ended_group_is_recorded_once_with_its_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        let go = dir.path().join("go");
        let command = format!(
            "while [ ! -e '{}' ]; do sleep 0.02; done; exit 3",
            go.display()
        );
        let files = started_service(&paths, "web", &command, &clock::now_rfc3339());
        let keeps = started_service(&paths, "db", "sleep 30", &clock::now_rfc3339());
        assert!(reap(&paths).unwrap().is_empty());
        assert!(any_running(&paths));

        std::fs::write(&go, "").unwrap();
        let pgid = files.read_runtime().unwrap().unwrap().process.pgid;
        assert!(homeboy_process::wait_until(Duration::from_secs(10), || {
            !homeboy_process::group_alive(pgid)
        }));
        let ended = reap(&paths).unwrap();
        assert_eq!(
            ended,
            [Ended {
                service_id: "web".into(),
                exit_code: Some(3)
            }]
        );
        let recorded = files.read_runtime().unwrap().unwrap().ended.unwrap();
        assert_eq!(recorded.exit_code, Some(3));
        assert!(reap(&paths).unwrap().is_empty(), "recorded once");

        // The whole group killed at once: nobody wrote an exit code.
        let db = keeps.read_runtime().unwrap().unwrap().process.pgid;
        homeboy_process::terminate_group(db, Duration::from_secs(2));
        let ended = reap(&paths).unwrap();
        assert_eq!(
            ended,
            [Ended {
                service_id: "db".into(),
                exit_code: None
            }]
        );
        assert!(!any_running(&paths));
    }

    #[test]
    fn records_from_before_the_boot_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        let old = started_service(&paths, "old", "exit 0", "2000-01-01T00:00:00Z");
        let new = started_service(&paths, "new", "exit 0", &clock::now_rfc3339());
        assert_eq!(clean_after_reboot(&paths).unwrap(), ["old"]);
        assert!(old.read_runtime().unwrap().is_none());
        assert!(old.service_logs().stdout.is_file(), "logs stay");
        assert!(new.read_runtime().unwrap().is_some());
    }
}
