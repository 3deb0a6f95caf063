//! Pids and process groups come back: this machine hands out at most 32768 and one end-to-end run forks
//! some 28,000 processes. A record that names a pid or group number the kernel has since given to someone
//! else (a managed service's group, the daemon's pid) must read as gone, and stopping it must signal nobody.
//! The stand-ins here are live processes of this test that carry the recorded numbers but started at
//! another time than the record says; the same record with their true start time is taken as ours, which
//! shows the start time is what decides.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use homeboy_e2e::{Home, describe, pid_alive};
use serde_json::{Value, json};

/// `sleep 60` as `argv0`, leading a process group of its own (as a service's supervisor does).
fn stand_in(home: &Home, argv0: &str) -> Child {
    let bin = home.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join(argv0);
    if !link.exists() {
        std::os::unix::fs::symlink(which("sleep"), &link).unwrap();
    }
    Command::new(&link)
        .arg("60")
        .process_group(0)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the stand-in")
}

fn which(program: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn stop_stand_in(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The runtime state of service `id` naming `pid` (and its group) as started at `started` (clock ticks).
fn write_service_record(home: &Home, id: &str, pid: u32, started: u64) {
    let dir = home.data_dir().join("tunnel/services").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let record = json!({
        "schema": "homeboy/tunnel-service-runtime/v1", "service_id": id,
        // After any boot: never taken for debris of an earlier boot.
        "started_at": "2099-01-01T00:00:00Z", "cwd": "/",
        "host": "127.0.0.1", "port": 9, "local_url": "http://127.0.0.1:9", "env_names": [],
        "process": {"command": "sleep 60", "pid": pid, "pgid": pid, "started": started,
                    "logs": {"stdout": dir.join("stdout.log"), "stderr": dir.join("stderr.log")},
                    "exit_code_file": dir.join("exit_code")},
        "readiness": {"kind": "generic"}, "backend": "none", "source": {}
    });
    std::fs::write(dir.join("runtime.json"), record.to_string()).unwrap();
}

fn service_state(home: &Home, id: &str) -> Value {
    home.homeboy_json(&["tunnel", "service", "status", id, "--format", "json"])
}

#[test]
fn a_service_group_number_taken_by_someone_else_is_exited_and_stop_signals_nobody() {
    let home = Home::new();
    home.homeboy_ok(&[
        "tunnel",
        "service",
        "expose",
        "web",
        "--remote-port",
        "9",
        "--auth-mode",
        "none",
    ]);
    let other = stand_in(&home, "sleep");
    let pid = other.id();
    let started = homeboy_process::start_time(pid).expect("/proc tells start times");

    // The record with the group's true start time: that group is the service's.
    write_service_record(&home, "web", pid, started);
    let ours = service_state(&home, "web");
    assert_eq!(ours["state"], "running", "{ours}");
    assert_eq!(ours["group_members"], json!([pid]), "{ours}");

    // The record of a group that started earlier under the same number: someone else's now.
    write_service_record(&home, "web", pid, started - 1);
    let theirs = service_state(&home, "web");
    assert_eq!(theirs["state"], "exited", "{theirs}");
    assert_eq!(theirs["group_members"], json!([]), "{theirs}");
    let out = home.homeboy(&["tunnel", "service", "stop", "web", "--format", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stopped: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stopped["outcome"], "already_exited", "{stopped}");
    assert!(
        pid_alive(u64::from(pid)),
        "stop signalled a group that was not the service's"
    );
    stop_stand_in(other);
}

#[test]
fn a_daemon_state_naming_a_reused_pid_is_stale_and_stop_signals_nobody() {
    let home = Home::new();
    // Another homeboy process that got the pid of a daemon that died without cleaning up.
    let other = stand_in(&home, "homeboy-impostor");
    let pid = other.id();
    let started = homeboy_process::start_time(pid).expect("/proc tells start times");
    let write_state = |process_started: u64| {
        let file = home.state_file();
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let state = json!({
            "pid": pid, "addr": "127.0.0.1:9", "build_id": "gone", "version": "0.0.0",
            "started_at": "2026-01-01T00:00:00Z", "log_path": null,
            "process_started": process_started
        });
        std::fs::write(file, state.to_string()).unwrap();
    };

    // With the process's true start time the state names it (alive, a homeboy, silent).
    write_state(started);
    let status = home.homeboy_json(&["daemon", "status", "--format", "json"]);
    assert_eq!(status["state"], "unresponsive", "{status}");

    write_state(started - 1);
    let status = home.homeboy_json(&["daemon", "status", "--format", "json"]);
    assert_eq!(status["state"], "stale", "{status}");
    let out = home.homeboy_ok(&["daemon", "stop"]);
    assert!(out.contains("stale"), "{out}");
    assert!(home.state().is_none());
    assert!(
        pid_alive(u64::from(pid)),
        "stop signalled a process that was not the daemon"
    );
    stop_stand_in(other);
}
