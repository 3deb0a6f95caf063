//! Idle shutdown and liveness: `daemon start --idle-timeout` stops a daemon with nothing to do (never one
//! with a managed service running), commands that need the daemon start it again, the reaper records a
//! managed service's end within a second, and records a reboot left behind (service runtime states, ssh
//! control sockets nobody listens on) are cleaned at start.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use homeboy_e2e::{Home, describe, pid_alive, wait_until};
use serde_json::{Value, json};

fn declare_service(home: &Home, id: &str) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    home.homeboy_ok(&[
        "tunnel",
        "service",
        "expose",
        id,
        "--remote-port",
        &port.to_string(),
        "--auth-mode",
        "none",
    ]);
}

fn start_service(home: &Home, id: &str, command: &str) -> Value {
    home.homeboy_json(&[
        "tunnel",
        "service",
        "start",
        id,
        "--command",
        command,
        "--cwd",
        home.root().to_str().unwrap(),
        "--format",
        "json",
    ])
}

/// `daemon start --idle-timeout 1s` logging at debug level; its JSON answer.
fn start_idling(home: &Home) -> Value {
    let started = home
        .command("homeboy")
        .env("HOMEBOY_LOG", "debug")
        .args([
            "daemon",
            "start",
            "--idle-timeout",
            "1s",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", describe(&started));
    serde_json::from_slice(&started.stdout).unwrap()
}

fn log_of(home: &Home) -> String {
    std::fs::read_to_string(home.data_dir().join("daemon/daemon.log")).unwrap_or_default()
}

#[test]
fn an_idle_daemon_stops_unless_a_service_runs_and_commands_start_it_again() {
    let home = Home::new();
    declare_service(&home, "web");
    start_service(&home, "web", "exec sleep 600");
    let started = start_idling(&home);
    let pid = started["status"]["pid"].as_u64().unwrap();

    // Past the timeout twice over, the running service keeps it up (the daemon says so at debug level).
    let kept_up = wait_until(Duration::from_secs(30), || {
        log_of(&home)
            .matches("but managed services keep the daemon up")
            .count()
            >= 2
    });
    assert!(kept_up, "no idle check saw the service:\n{}", log_of(&home));
    assert!(pid_alive(pid), "the daemon stopped with a service running");

    home.homeboy_ok(&["tunnel", "service", "stop", "web"]);
    let stopped = wait_until(Duration::from_secs(30), || !pid_alive(pid));
    assert!(stopped, "the idle daemon did not stop:\n{}", log_of(&home));
    assert!(
        home.state().is_none(),
        "an idle stop removes the state file"
    );
    assert!(log_of(&home).contains("idle for 1s"), "{}", log_of(&home));

    // A command that needs the daemon starts it again.
    let out = home
        .command("homeboy")
        .args(["jobs", "list", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed["jobs"].is_array(), "{listed}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("started the daemon"),
        "{}",
        describe(&out)
    );
    let again = home.state().expect("a daemon runs again")["pid"]
        .as_u64()
        .unwrap();
    assert_ne!(again, pid);
    assert!(pid_alive(again));
}

#[test]
fn the_reaper_records_an_ended_service_within_a_second_and_reboot_debris_is_cleaned() {
    let home = Home::new();
    // Debris of a service started before this machine booted: its pid and group name nothing of ours.
    declare_service(&home, "old");
    let old_dir = home.data_dir().join("tunnel/services/old");
    std::fs::create_dir_all(&old_dir).unwrap();
    let debris = json!({
        "schema": "homeboy/tunnel-service-runtime/v1", "service_id": "old",
        "started_at": "2000-01-01T00:00:00Z", "cwd": "/", "host": "127.0.0.1", "port": 9,
        "local_url": "http://127.0.0.1:9", "env_names": [],
        "process": {"command": "sleep 1", "pid": 2147483646u32, "pgid": 2147483646u32,
                    "logs": {"stdout": old_dir.join("stdout.log"), "stderr": old_dir.join("stderr.log")},
                    "exit_code_file": old_dir.join("exit_code")},
        "readiness": {"kind": "generic"}, "backend": "none", "source": {}
    });
    std::fs::write(old_dir.join("runtime.json"), debris.to_string()).unwrap();
    let old = home.homeboy_json(&["tunnel", "service", "status", "old", "--format", "json"]);
    assert_ne!(
        old["state"], "not_running",
        "the debris is read as a started service: {old}"
    );

    home.start_daemon();
    assert!(
        wait_until(Duration::from_secs(10), || !old_dir
            .join("runtime.json")
            .exists()),
        "the record from before the boot is still there"
    );
    let old = home.homeboy_json(&["tunnel", "service", "status", "old", "--format", "json"]);
    assert_eq!(old["state"], "not_running", "{old}");

    declare_service(&home, "web");
    let go = home.root().join("go");
    let command = format!(
        "while [ ! -e '{}' ]; do sleep 0.02; done; exit 3",
        go.display()
    );
    let started = start_service(&home, "web", &command);
    let pgid = started["pgid"].as_u64().unwrap();
    let runtime_file = PathBuf::from(started["runtime_file"].as_str().unwrap());
    std::fs::write(&go, "").unwrap();
    assert!(wait_until(Duration::from_secs(10), || !pid_alive(pgid)));
    let gone = Instant::now();
    let recorded = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&runtime_file).is_ok_and(|text| text.contains("\"ended\""))
    });
    let took = gone.elapsed();
    assert!(recorded, "the reaper never recorded the end");
    assert!(took <= Duration::from_secs(1), "recorded after {took:?}");
    let runtime: Value =
        serde_json::from_str(&std::fs::read_to_string(&runtime_file).unwrap()).unwrap();
    assert_eq!(runtime["ended"]["exit_code"], 3, "{runtime}");
    let status = home.homeboy_json(&["tunnel", "service", "status", "web", "--format", "json"]);
    assert_eq!(status["state"], "exited");
    assert_eq!(status["exit_code"], 3);
    assert_eq!(status["ended_at"], runtime["ended"]["at"]);
}

#[test]
fn a_stale_ssh_control_socket_is_removed_when_the_daemon_starts() {
    let home = Home::new();
    let sockets = home.root().join("cm");
    std::fs::create_dir_all(&sockets).unwrap();
    std::fs::set_permissions(
        &sockets,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let mut stale = Vec::new();
    for id in ["a", "b"] {
        home.homeboy_ok(&[
            "server",
            "add",
            id,
            "--host",
            "127.0.0.1",
            "--user",
            "nobody",
        ]);
        let socket = sockets.join(format!("master-{id}"));
        let patch = json!({"auth": {"mode": "key_plus_password_controlmaster",
                                    "control_path": socket.to_str().unwrap(), "persist": "1m"}});
        home.homeboy_ok(&["server", "set", id, "--json", &patch.to_string()]);
        stale.push(socket);
    }
    // What a master killed by a reboot leaves: a socket file nobody listens on (a, b). A live one (c,
    // another program's listener at the same kind of path) stays.
    for socket in &stale {
        drop(std::os::unix::net::UnixListener::bind(socket).unwrap());
        assert!(socket.exists());
    }
    let live_path = sockets.join("master-c");
    home.homeboy_ok(&[
        "server",
        "add",
        "c",
        "--host",
        "127.0.0.1",
        "--user",
        "nobody",
    ]);
    let patch = json!({"auth": {"mode": "key_plus_password_controlmaster",
                                "control_path": live_path.to_str().unwrap(), "persist": "1m"}});
    home.homeboy_ok(&["server", "set", "c", "--json", &patch.to_string()]);
    let _live = std::os::unix::net::UnixListener::bind(&live_path).unwrap();

    home.start_daemon();
    let cleaned = wait_until(Duration::from_secs(10), || {
        stale.iter().all(|s| !s.exists())
    });
    assert!(cleaned, "stale control sockets left:\n{}", log_of(&home));
    assert!(
        live_path.exists(),
        "a socket someone listens on was removed"
    );
    home.homeboy_ok(&["daemon", "stop"]);
}

#[test]
fn a_queued_job_keeps_an_idle_daemon_up_until_it_is_cancelled() {
    let home = Home::new();
    let submit = home.pair("lab", "submit");
    let started = start_idling(&home);
    let pid = started["status"]["pid"].as_u64().unwrap();
    let url = started["status"]["url"].as_str().unwrap().to_string();
    let http = homeboy_e2e::Http::new();
    let r = http.post_auth(
        &format!("{url}/runner/jobs"),
        &submit,
        &json!({"runner_id": "lab", "command": ["true"]}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let job = r.json()["data"]["job"]["id"].as_str().unwrap().to_string();

    // Nobody claims it: past the timeout twice over, the queued job keeps the daemon up.
    let kept_up = wait_until(Duration::from_secs(30), || {
        log_of(&home).matches("but jobs keep the daemon up").count() >= 2
    });
    assert!(kept_up, "no idle check saw the job:\n{}", log_of(&home));
    assert!(pid_alive(pid), "the daemon stopped with a job queued");

    let cancelled = http.request("POST", &format!("{url}/jobs/{job}/cancel"), &[], None);
    assert_eq!(
        cancelled.status,
        200,
        "{}",
        String::from_utf8_lossy(&cancelled.body)
    );
    let stopped = wait_until(Duration::from_secs(30), || !pid_alive(pid));
    assert!(stopped, "the idle daemon did not stop:\n{}", log_of(&home));
    assert!(log_of(&home).contains("idle for 1s"), "{}", log_of(&home));
}
