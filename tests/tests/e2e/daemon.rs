//! `homeboy daemon start|serve|stop|status` through the real binary, and the daemon's HTTP guards.

use std::process::{Command, Stdio};
use std::time::Duration;

use homeboy_e2e::{Bounded, Home, Http, describe, pid_alive, wait_until};
use serde_json::Value;

#[test]
fn start_status_health_stop() {
    let home = Home::new();
    let started = home.homeboy_json(&["daemon", "start", "--format", "json"]);
    assert_eq!(started["outcome"], "started");
    let pid = started["status"]["pid"].as_u64().unwrap();
    assert!(pid_alive(pid));

    let status = home.homeboy_json(&["daemon", "status", "--format", "json"]);
    assert_eq!(status["state"], "running");
    assert_eq!(status["running"], true);
    assert_eq!(status["healthy"], true);
    assert_eq!(status["pid"], pid);
    assert_eq!(status["build_id"], status["current_build_id"]);
    let log_path = status["log_path"].as_str().unwrap();
    assert!(log_path.ends_with("daemon/daemon.log"), "{log_path}");
    assert!(std::path::Path::new(log_path).exists());
    let addr = status["addr"].as_str().unwrap();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );

    // The state file holds what the issue promises.
    let state = home.state().unwrap();
    for field in [
        "pid",
        "addr",
        "build_id",
        "version",
        "started_at",
        "log_path",
    ] {
        assert!(!state[field].is_null(), "state file lacks {field}: {state}");
    }

    let http = Http::new();
    let health = http.get(&format!("http://{addr}/health"));
    assert_eq!(health.status, 200);
    let body = health.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["status"], "ok");
    assert_eq!(body["data"]["pid"], pid);
    assert_eq!(body["data"]["build_id"], status["build_id"]);
    let version = http.get(&format!("http://{addr}/version")).json();
    assert_eq!(version["data"]["build_id"], status["build_id"]);
    let paths = http.get(&format!("http://{addr}/config/paths")).json();
    assert_eq!(
        paths["data"]["daemon_state"].as_str().unwrap(),
        home.state_file().to_str().unwrap()
    );

    // Text status for people.
    let text = home.homeboy_ok(&["daemon", "status"]);
    assert!(text.contains("daemon: running"), "{text}");
    assert!(text.contains(&format!("pid: {pid}")), "{text}");

    let stopped = home.homeboy_ok(&["daemon", "stop"]);
    assert!(
        stopped.contains(&format!("daemon stopped (pid {pid})")),
        "{stopped}"
    );
    assert!(!pid_alive(pid));
    assert!(home.state().is_none());
    let status = home.homeboy_json(&["daemon", "status", "--format", "json"]);
    assert_eq!(status["state"], "not_running");
    assert_eq!(status["running"], false);
    assert!(
        home.homeboy_ok(&["daemon", "stop"])
            .contains("daemon not running")
    );
}

#[test]
fn second_start_leaves_a_healthy_daemon_alone() {
    let home = Home::new();
    let first = home.homeboy_json(&["daemon", "start", "--format", "json"]);
    let second = home.homeboy_json(&["daemon", "start", "--format", "json"]);
    assert_eq!(second["outcome"], "already_running");
    assert_eq!(first["status"]["pid"], second["status"]["pid"]);
}

#[test]
fn concurrent_starts_make_exactly_one_daemon() {
    let home = Home::new();
    // Eight starts at once, each bounded.
    let outputs: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    home.command("homeboy")
                        .args(["daemon", "start", "--format", "json"])
                        .output_bounded()
                        .unwrap()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut addrs = Vec::new();
    for out in outputs {
        assert!(out.status.success(), "{}", describe(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        addrs.push(v["status"]["addr"].as_str().unwrap().to_string());
    }
    addrs.dedup();
    assert_eq!(addrs.len(), 1, "different addresses reported: {addrs:?}");
    let pids = home.daemon_processes("");
    assert_eq!(pids.len(), 1, "daemon processes: {pids:?}");
}

#[test]
fn killed_daemon_is_stale_and_start_recovers() {
    let home = Home::new();
    home.start_daemon();
    let pid = home.state().unwrap()["pid"].as_u64().unwrap();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));

    let status = home.homeboy_json(&["daemon", "status", "--format", "json"]);
    assert_eq!(status["state"], "stale");
    assert_eq!(status["running"], false);
    assert!(
        home.homeboy_ok(&["daemon", "status"])
            .contains("daemon: stale")
    );

    let restarted = home.homeboy_json(&["daemon", "start", "--format", "json"]);
    assert_eq!(restarted["outcome"], "started");
    let new_pid = restarted["status"]["pid"].as_u64().unwrap();
    assert_ne!(new_pid, pid);
    assert_eq!(restarted["status"]["state"], "running");
}

#[test]
fn stop_cleans_a_stale_state_file() {
    let home = Home::new();
    home.start_daemon();
    let pid = home.state().unwrap()["pid"].as_u64().unwrap();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
    let out = home.homeboy_ok(&["daemon", "stop"]);
    assert!(out.contains("stale"), "{out}");
    assert!(home.state().is_none());
}

#[test]
fn a_damaged_state_file_does_not_lock_start_and_stop_out() {
    let home = Home::new();
    std::fs::create_dir_all(home.state_file().parent().unwrap()).unwrap();
    for garbage in [&b"{\"pid\": 12"[..], b"\x00\xff not json", b"{\"pid\": -1}"] {
        std::fs::write(home.state_file(), garbage).unwrap();
        let out = home.homeboy(&["daemon", "stop"]);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(
            home.state().is_none(),
            "the damaged state file is still there"
        );
    }
    std::fs::write(home.state_file(), b"{\"pid\": 12").unwrap();
    let started = home.homeboy_json(&["daemon", "start", "--format", "json"]);
    assert_eq!(started["status"]["state"], "running", "{started}");
    // While a daemon serves the config dir, its (now damaged) state file is not silently dropped.
    let pid = home.state().unwrap()["pid"].as_u64().unwrap();
    std::fs::write(home.state_file(), b"{\"pid\": 12").unwrap();
    let out = home.homeboy(&["daemon", "stop"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
}

#[test]
fn an_older_build_is_replaced() {
    let home = Home::new();
    let old = home
        .command("homeboy")
        .env("HOMEBOY_BUILD_ID_OVERRIDE", "old1234")
        .args(["daemon", "start", "--format", "json"])
        .output_bounded()
        .unwrap();
    assert!(old.status.success(), "{}", describe(&old));
    let old: Value = serde_json::from_slice(&old.stdout).unwrap();
    assert_eq!(old["status"]["build_id"], "old1234");
    let old_pid = old["status"]["pid"].as_u64().unwrap();

    let status = home.homeboy_json(&["daemon", "status", "--format", "json"]);
    assert_eq!(status["state"], "outdated");
    let current = status["current_build_id"].as_str().unwrap().to_string();

    let out = home.homeboy(&["daemon", "start", "--format", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "daemon outdated (build old1234 -> {current}), restarting..."
        )),
        "{stderr}"
    );
    let new: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(new["outcome"], "restarted");
    assert_eq!(new["status"]["build_id"], current.as_str());
    assert!(!pid_alive(old_pid));
}

#[test]
fn non_loopback_addresses_are_refused() {
    let home = Home::new();
    for addr in ["0.0.0.0:0", "192.168.1.10:7421", "[::]:0"] {
        for cmd in ["serve", "start"] {
            let out = home.homeboy(&["daemon", cmd, "--addr", addr]);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{cmd} {addr}: {}",
                describe(&out)
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
            assert!(stderr.contains("loopback"), "{stderr}");
        }
    }
    assert!(home.state().is_none());
}

#[test]
fn foreign_host_and_origin_are_refused() {
    let home = Home::new();
    let base = home.start_daemon();
    let http = Http::new();
    let r = http.request(
        "GET",
        &format!("{base}/health"),
        &[("host", "evil.example")],
        None,
    );
    assert_eq!(r.status, 403);
    let body = r.json();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "forbidden.host");
    // A rebinding attacker's name with our port is still foreign.
    let port = base.rsplit(':').next().unwrap();
    let r = http.request(
        "GET",
        &format!("{base}/health"),
        &[("host", &format!("evil.example:{port}"))],
        None,
    );
    assert_eq!(r.status, 403);
    // A cross-site page posting to the daemon.
    let r = http.request(
        "GET",
        &format!("{base}/health"),
        &[("origin", "https://evil.example")],
        None,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "forbidden.origin");
    let r = http.request(
        "GET",
        &format!("{base}/health"),
        &[("host", &format!("localhost:{port}"))],
        None,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn errors_come_in_the_envelope() {
    let home = Home::new();
    // A small body limit so the 413 path is cheap to reach.
    let mut child = home
        .command("homeboy")
        .args(["daemon", "serve", "--max-body-bytes", "1024"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = homeboy_e2e::banner(&mut child, Duration::from_secs(60), "homeboy daemon serve");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    let http = Http::new();

    let r = http.get(&format!("{url}/no/such/route"));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found.route");
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );

    let r = http.request("DELETE", &format!("{url}/health"), &[], None);
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["error"]["code"], "method_not_allowed");

    let big = vec![b'x'; 4096];
    let r = http.request("POST", &format!("{url}/health"), &[], Some(&big));
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "payload.too_large");

    // Graceful shutdown on SIGTERM: exit 0 and the state file is gone.
    let pid = child.id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = homeboy_e2e::wait_exit(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(home.state().is_none());
}

#[test]
fn a_second_foreground_daemon_is_refused() {
    let home = Home::new();
    home.start_daemon();
    let out = home.homeboy(&["daemon", "serve"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already serves"), "{stderr}");
}
