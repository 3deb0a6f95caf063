//! Several daemons of one config dir side by side: `daemon start|status|stop --addr 127.0.0.1:PORT` keeps
//! each one's state under `daemon/<host>-<port>/`, `status --all` lists them, the default daemon is what it
//! always was, and concurrent starts at one address still make exactly one daemon.

use std::net::TcpListener;

use homeboy_e2e::{Bounded, Home, Http, describe, pid_alive};
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn daemons_at_their_own_addresses_run_side_by_side() {
    let home = Home::new();
    let http = Http::new();
    let default = home.homeboy_json(&["daemon", "start", "--format", "json"]);
    let default_pid = default["status"]["pid"].as_u64().unwrap();
    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut pids = vec![default_pid];
    for addr in [&a, &b] {
        let started = home.homeboy_json(&["daemon", "start", "--addr", addr, "--format", "json"]);
        assert_eq!(started["outcome"], "started", "{started}");
        assert_eq!(started["status"]["addr"], addr.as_str());
        let instance = addr.replace(':', "-");
        assert_eq!(started["status"]["instance"], instance.as_str());
        assert_eq!(
            started["status"]["state_path"],
            home.state_file_at(addr).to_str().unwrap()
        );
        let log = started["status"]["log_path"].as_str().unwrap();
        assert!(
            log.ends_with(&format!("daemon/{instance}/daemon.log")),
            "{log}"
        );
        pids.push(started["status"]["pid"].as_u64().unwrap());
        // Its own job store and state file, as the daemon itself reports them.
        let paths = http.get(&format!("http://{addr}/config/paths")).json();
        assert_eq!(
            paths["data"]["daemon_state"],
            home.state_file_at(addr).to_str().unwrap()
        );
        assert!(
            paths["data"]["daemon_jobs"]
                .as_str()
                .unwrap()
                .ends_with(&format!("daemon/{instance}/jobs.redb"))
        );
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3, "three daemons: {pids:?}");
    assert!(pids.iter().all(|p| pid_alive(*p)));

    // The default daemon is untouched: its state file names it, a plain status shows it.
    assert_eq!(home.state().unwrap()["pid"], default_pid);
    let status = home.homeboy_json(&["daemon", "status", "--format", "json"]);
    assert_eq!(status["pid"], default_pid);
    assert!(status["instance"].is_null());
    let at_a = home.homeboy_json(&["daemon", "status", "--addr", &a, "--format", "json"]);
    assert_eq!(at_a["state"], "running");
    assert_eq!(at_a["addr"], a.as_str());

    let all = home.homeboy_json(&["daemon", "status", "--all", "--format", "json"]);
    let rows = all.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{all}");
    assert!(rows.iter().all(|r| r["state"] == "running"), "{all}");
    let text = home.homeboy_ok(&["daemon", "status", "--all"]);
    for name in ["default", &a.replace(':', "-"), &b.replace(':', "-")] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }

    // Stopping one leaves the others serving.
    let stopped = home.homeboy_json(&["daemon", "stop", "--addr", &a, "--format", "json"]);
    assert_eq!(stopped["outcome"], "stopped", "{stopped}");
    assert!(!home.state_file_at(&a).exists());
    let all = home.homeboy_json(&["daemon", "status", "--all", "--format", "json"]);
    let states: Vec<(Value, Value)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["instance"].clone(), r["state"].clone()))
        .collect();
    assert!(
        states.contains(&(Value::from(a.replace(':', "-")), Value::from("not_running"))),
        "{all}"
    );
    assert_eq!(http.get(&format!("http://{b}/health")).status, 200);
    assert!(pid_alive(default_pid));
    home.homeboy_ok(&["daemon", "stop", "--addr", &b]);
    home.homeboy_ok(&["daemon", "stop"]);

    // Port 0 is the default daemon; a non-loopback address is refused.
    let out = home.homeboy(&["daemon", "start", "--addr", "10.0.0.1:7500"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = home.homeboy(&["daemon", "serve", "--state-per-address"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn concurrent_starts_at_one_address_make_exactly_one_daemon() {
    let home = Home::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let outputs: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    home.command("homeboy")
                        .args(["daemon", "start", "--addr", &addr, "--format", "json"])
                        .output_bounded()
                        .unwrap()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut pids = Vec::new();
    let mut started = 0;
    for out in outputs {
        assert!(out.status.success(), "{}", describe(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        started += usize::from(v["outcome"] == "started");
        pids.push(v["status"]["pid"].as_u64().unwrap());
    }
    pids.dedup();
    assert_eq!(pids.len(), 1, "different daemons reported: {pids:?}");
    assert_eq!(started, 1, "exactly one start spawned a daemon");
    assert_eq!(home.daemon_processes(&addr), pids);
    assert!(home.state().is_none(), "the default daemon was not started");
}
