//! `homeboy tunnel service|artifact-origin|preview-consumer` through the real binary: managed services as
//! real process groups on real ports, the artifact origin over real sockets, preview consumers as real
//! child processes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use homeboy_e2e::{Bounded, GitRepo, Home, Http, bin, describe, wait_until};
use serde_json::{Value, json};
use sha2::Digest;

// ---------------------------------------------------------------------------------------------------------
// Helpers

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Live (non-zombie) members of a process group, from /proc.
fn group_members(pgid: u64) -> Vec<u64> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2].parse::<u64>() == Ok(pgid) {
            members.push(pid);
        }
    }
    members
}

/// A homeboy home whose managed services are killed on drop, whatever the test did.
struct TunnelHome {
    home: Home,
}

impl TunnelHome {
    fn new() -> Self {
        TunnelHome { home: Home::new() }
    }

    /// A scratch directory inside the home (a service's working directory).
    fn work_dir(&self) -> PathBuf {
        let dir = self.home.root().join("work");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn run(&self, args: &[&str]) -> Output {
        self.home
            .command("homeboy")
            .args(args)
            .current_dir(self.home.root())
            .output_bounded()
            .expect("run homeboy")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "homeboy {args:?}:\n{}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}\n{stdout}"))
    }

    /// Runs a command that must fail with `code` and exactly one readable stderr line; returns that line.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "homeboy {args:?}:\n{}",
            describe(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "one line expected: {stderr}"
        );
        stderr.trim_end().to_string()
    }

    /// Declares service `id` on a loopback port.
    fn declare(&self, id: &str, port: u16, preview_policy: &str) {
        self.ok(&[
            "tunnel",
            "service",
            "expose",
            id,
            "--remote-port",
            &port.to_string(),
            "--auth-mode",
            "bearer-env",
            "--auth-env",
            "SITE_PREVIEW_TOKEN",
            "--preview-policy",
            preview_policy,
        ]);
    }

    fn data(&self) -> PathBuf {
        self.home.data_dir()
    }
}

impl Drop for TunnelHome {
    fn drop(&mut self) {
        let services = self.home.data_dir().join("tunnel/services");
        let Ok(entries) = std::fs::read_dir(services) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("runtime.json")) else {
                continue;
            };
            let Ok(runtime) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            for record in [&runtime["process"], &runtime["backend_process"]] {
                if let Some(pgid) = record["pgid"].as_u64() {
                    self.home.kill_own_group(pgid as u32);
                }
            }
        }
    }
}

fn test_server() -> String {
    bin("homeboy-test-server").display().to_string()
}

// ---------------------------------------------------------------------------------------------------------
// Declarations

#[test]
fn declarations_expose_list_show_set_url_remove() {
    let t = TunnelHome::new();
    let out = t.ok(&[
        "tunnel",
        "service",
        "expose",
        "site-preview",
        "--server",
        "private-runtime",
        "--remote-host",
        "127.0.0.1",
        "--remote-port",
        "7331",
        "--auth-mode",
        "bearer-env",
        "--auth-env",
        "SITE_PREVIEW_TOKEN",
        "--auth-header",
        "Authorization",
        "--allow-client",
        "app-runtime",
        "--allow-client",
        "lab",
        "--preview-policy",
        "always",
    ]);
    assert!(
        out.contains("declared tunnel service site-preview at http://127.0.0.1:7331"),
        "{out}"
    );
    let shown = t.json(&[
        "tunnel",
        "service",
        "show",
        "site-preview",
        "--format",
        "json",
    ]);
    assert_eq!(shown["policy"]["exposure"], "private_loopback");
    assert_eq!(shown["policy"]["require_auth"], true);
    assert_eq!(
        shown["auth"],
        json!({"mode": "bearer-env", "env": "SITE_PREVIEW_TOKEN", "header": "Authorization"})
    );
    assert_eq!(shown["allowed_clients"], json!(["app-runtime", "lab"]));
    assert_eq!(shown["preview"]["mode"], "always");

    let listed = t.json(&["tunnel", "service", "list", "--format", "json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        t.ok(&["tunnel", "service", "url", "site-preview"]).trim(),
        "http://127.0.0.1:7331"
    );

    let set = t.json(&[
        "tunnel",
        "service",
        "set",
        "site-preview",
        "--field",
        "remote_port=7400",
        "--json",
        r#"{"preview": {"mode": "on-failure"}}"#,
        "--format",
        "json",
    ]);
    assert_eq!(
        (set["remote_port"].as_u64(), set["preview"]["mode"].as_str()),
        (Some(7400), Some("on-failure"))
    );

    // Refused edits: exit 2, one line, the stored file untouched.
    let file = t
        .home
        .config_dir()
        .join("tunnel/services/site-preview.json");
    let before = std::fs::read(&file).unwrap();
    let line = t.fails(
        2,
        &[
            "tunnel",
            "service",
            "set",
            "site-preview",
            "--field",
            "auth.token=hunter2",
        ],
    );
    assert!(
        line.contains("auth.token") && !line.contains("hunter2"),
        "{line}"
    );
    let line = t.fails(
        2,
        &[
            "tunnel",
            "service",
            "set",
            "site-preview",
            "--field",
            "remote_host=0.0.0.0",
        ],
    );
    assert!(line.contains("remote_host"), "{line}");
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // expose without an auth env for a token mode, or with a non-loopback host: refused.
    let line = t.fails(
        2,
        &[
            "tunnel",
            "service",
            "expose",
            "x",
            "--remote-port",
            "1",
            "--auth-mode",
            "bearer-env",
        ],
    );
    assert!(line.contains("auth.env"), "{line}");
    t.fails(
        2,
        &[
            "tunnel",
            "service",
            "expose",
            "x",
            "--remote-port",
            "1",
            "--auth-mode",
            "none",
            "--remote-host",
            "10.1.2.3",
        ],
    );
    let out = t.run(&["tunnel", "service", "expose", "x", "--remote-port", "1"]);
    assert_eq!(out.status.code(), Some(2), "--auth-mode is required");

    t.ok(&["tunnel", "service", "remove", "site-preview"]);
    t.fails(1, &["tunnel", "service", "show", "site-preview"]);
    t.fails(1, &["tunnel", "service", "remove", "site-preview"]);
}

// ---------------------------------------------------------------------------------------------------------
// Managed lifecycle

#[test]
fn start_ready_status_stop_leaves_no_process_of_the_group() {
    let t = TunnelHome::new();
    let port = free_port();
    t.declare("web", port, "none");
    let command = format!(
        "echo \"plain=$PLAIN\"; sleep 300 & exec {} --port {port}",
        test_server()
    );
    let started = t.json(&[
        "tunnel",
        "service",
        "start",
        "web",
        "--command",
        &command,
        "--cwd",
        t.work_dir().to_str().unwrap(),
        "--health-path",
        "/",
        "--require-listener",
        "--env",
        "SITE_PREVIEW_TOKEN=super-secret-value",
        "--env",
        "PLAIN=1",
        "--format",
        "json",
    ]);
    assert_eq!(started["outcome"], "started");
    assert_eq!(started["state"], "running");
    for flag in ["ready", "process_running", "preview_ready", "proof_ready"] {
        assert_eq!(started["readiness"][flag], true, "{flag}: {started}");
    }
    assert_eq!(started["health"]["ok"], true);
    assert_eq!(started["local_url"], format!("http://127.0.0.1:{port}"));
    assert_eq!(started["env_names"], json!(["PLAIN", "SITE_PREVIEW_TOKEN"]));
    assert!(
        started.get("preview").is_none(),
        "preview policy none: no artifact"
    );
    let pgid = started["pgid"].as_u64().unwrap();
    assert!(
        group_members(pgid).len() >= 2,
        "the server and the background sleep run in the group"
    );

    // The runtime state names env vars but never holds their values; logs are under the data dir.
    let runtime_file = PathBuf::from(started["runtime_file"].as_str().unwrap());
    let runtime = std::fs::read_to_string(&runtime_file).unwrap();
    assert!(!runtime.contains("super-secret-value"), "{runtime}");
    let stdout_log = PathBuf::from(started["logs"]["stdout"].as_str().unwrap());
    assert!(stdout_log.starts_with(t.data()), "{}", stdout_log.display());
    let log = std::fs::read_to_string(&stdout_log).unwrap();
    assert!(
        log.contains("plain=1") && log.contains("listening"),
        "{log}"
    );

    let status = t.json(&["tunnel", "service", "status", "web", "--format", "json"]);
    assert_eq!(status["state"], "running");
    assert_eq!(status["readiness"]["ready"], true);
    assert!(!status.to_string().contains("super-secret-value"));
    let text = t.ok(&["tunnel", "service", "status", "web"]);
    assert!(
        text.contains("service web: running") && text.contains("readiness: ready"),
        "{text}"
    );

    // A second start is refused, or reported with --if-not-running.
    let line = t.fails(
        1,
        &["tunnel", "service", "start", "web", "--command", "sleep 1"],
    );
    assert!(line.contains("already running"), "{line}");
    let again = t.json(&[
        "tunnel",
        "service",
        "start",
        "web",
        "--command",
        "sleep 1",
        "--if-not-running",
        "--format",
        "json",
    ]);
    assert_eq!(
        (again["outcome"].as_str(), again["pgid"].as_u64()),
        (Some("already_running"), Some(pgid))
    );

    let stopped = t.json(&["tunnel", "service", "stop", "web", "--format", "json"]);
    assert_eq!(stopped["outcome"], "stopped");
    assert_eq!(
        group_members(pgid),
        Vec::<u64>::new(),
        "nothing of the group survives stop"
    );
    assert!(!runtime_file.exists(), "runtime state removed");
    assert!(stdout_log.exists(), "logs kept");
    let status = t.json(&["tunnel", "service", "status", "web", "--format", "json"]);
    assert_eq!(status["state"], "not_running");
    let stopped = t.json(&["tunnel", "service", "stop", "web", "--format", "json"]);
    assert_eq!(stopped["outcome"], "not_running");
}

#[test]
fn a_crashing_service_reports_its_exit_code() {
    let t = TunnelHome::new();
    t.declare("crashy", free_port(), "none");
    let cwd = t.work_dir();
    // Crashes while start waits: start fails with the code, status keeps showing it.
    let line = t.fails(
        1,
        &[
            "tunnel",
            "service",
            "start",
            "crashy",
            "--command",
            "echo booting; echo broken >&2; exit 3",
            "--cwd",
            cwd.to_str().unwrap(),
            "--health-path",
            "/",
        ],
    );
    assert!(
        line.contains("exited with code 3 before it was ready"),
        "{line}"
    );
    let status = t.json(&["tunnel", "service", "status", "crashy", "--format", "json"]);
    assert_eq!(
        (status["state"].as_str(), status["exit_code"].as_i64()),
        (Some("exited"), Some(3))
    );
    assert_eq!(status["readiness"]["process_running"], false);
    let stderr_log = status["logs"]["stderr"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(stderr_log).unwrap(), "broken\n");

    // Crashes after start returned (no wait): status reports exited with the code once it happened.
    t.ok(&[
        "tunnel",
        "service",
        "start",
        "crashy",
        "--command",
        "sleep 0.3; exit 4",
        "--wait-secs",
        "0",
    ]);
    assert!(wait_until(Duration::from_secs(10), || {
        t.json(&["tunnel", "service", "status", "crashy", "--format", "json"])["exit_code"] == 4
    }));
    let text = t.ok(&["tunnel", "service", "status", "crashy"]);
    assert!(
        text.contains("service crashy: exited with code 4"),
        "{text}"
    );
    let stopped = t.json(&["tunnel", "service", "stop", "crashy", "--format", "json"]);
    assert_eq!(
        (stopped["outcome"].as_str(), stopped["exit_code"].as_i64()),
        (Some("already_exited"), Some(4))
    );
}

#[test]
fn listener_gate_blocks_until_listening_and_times_out_otherwise() {
    let t = TunnelHome::new();
    let port = free_port();
    t.declare("late", port, "none");
    let command = format!("exec {} --port {port} --delay-ms 1200", test_server());
    t.ok(&[
        "tunnel",
        "service",
        "start",
        "late",
        "--command",
        &command,
        "--require-listener",
    ]);
    // The server binds only after 1.2 s: start can only have returned once it listened.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    t.ok(&["tunnel", "service", "stop", "late"]);

    let line = t.fails(
        1,
        &[
            "tunnel",
            "service",
            "start",
            "late",
            "--command",
            "exec sleep 300",
            "--require-listener",
            "--wait-secs",
            "1",
            "--grace-secs",
            "1",
        ],
    );
    assert!(
        line.contains("not ready after 1 s") && line.contains("listener"),
        "{line}"
    );
    let status = t.json(&["tunnel", "service", "status", "late", "--format", "json"]);
    assert_eq!(
        status["state"], "not_running",
        "a service that never became ready is stopped"
    );
}

#[test]
fn health_gate_blocks_until_the_path_answers_and_times_out_on_errors() {
    let t = TunnelHome::new();
    let port = free_port();
    t.declare("healthy", port, "none");
    let command = format!("exec {} --port {port} --delay-ms 800", test_server());
    let started = t.json(&[
        "tunnel",
        "service",
        "start",
        "healthy",
        "--command",
        &command,
        "--health-path",
        "/ready",
        "--format",
        "json",
    ]);
    assert_eq!(started["health"]["ok"], true);
    assert!(
        started["health"]["detail"]
            .as_str()
            .unwrap()
            .ends_with("/ready -> 200"),
        "{started}"
    );
    t.ok(&["tunnel", "service", "stop", "healthy"]);

    let command = format!("exec {} --port {port} --status 503", test_server());
    let line = t.fails(
        1,
        &[
            "tunnel",
            "service",
            "start",
            "healthy",
            "--command",
            &command,
            "--health-path",
            "/ready",
            "--wait-secs",
            "1",
            "--grace-secs",
            "1",
        ],
    );
    assert!(line.contains("health") && line.contains("503"), "{line}");
}

#[test]
fn artifact_pointer_gate_blocks_until_the_value_matches_and_times_out_otherwise() {
    let t = TunnelHome::new();
    t.declare("proof", free_port(), "none");
    let cwd = t.work_dir();
    let command = "echo '{\"status\": \"warming\"}' > proof.json; sleep 1; \
                   echo '{\"status\": \"ready\"}' > proof.json.tmp; mv proof.json.tmp proof.json; exec sleep 300";
    let started = t.json(&[
        "tunnel",
        "service",
        "start",
        "proof",
        "--command",
        command,
        "--cwd",
        cwd.to_str().unwrap(),
        "--readiness-kind",
        "proof",
        "--readiness-artifact",
        "proof.json",
        "--readiness-artifact-json-pointer",
        "/status",
        "--readiness-artifact-json-equals",
        "ready",
        "--format",
        "json",
    ]);
    assert_eq!(started["readiness"]["proof_ready"], true);
    let proof: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("proof.json")).unwrap()).unwrap();
    assert_eq!(
        proof["status"], "ready",
        "start returned before the artifact was ready"
    );
    t.ok(&["tunnel", "service", "stop", "proof"]);

    let line = t.fails(
        1,
        &[
            "tunnel",
            "service",
            "start",
            "proof",
            "--command",
            "echo '{\"status\": \"warming\"}' > proof.json; exec sleep 300",
            "--cwd",
            cwd.to_str().unwrap(),
            "--readiness-kind",
            "proof",
            "--readiness-artifact",
            "proof.json",
            "--readiness-artifact-json-pointer",
            "/status",
            "--readiness-artifact-json-equals",
            "ready",
            "--wait-secs",
            "1",
            "--grace-secs",
            "1",
        ],
    );
    assert!(
        line.contains("artifact") && line.contains("want ready"),
        "{line}"
    );

    // Proof readiness without a proof gate is refused before anything starts.
    let line = t.fails(
        2,
        &[
            "tunnel",
            "service",
            "start",
            "proof",
            "--command",
            "sleep 1",
            "--readiness-kind",
            "proof",
        ],
    );
    assert!(line.contains("--readiness-kind"), "{line}");
}

#[test]
fn stdout_regex_gate_blocks_until_a_line_matches_and_times_out_otherwise() {
    let t = TunnelHome::new();
    t.declare("chatty", free_port(), "none");
    let started = t.json(&[
        "tunnel",
        "service",
        "start",
        "chatty",
        "--command",
        "echo booting; sleep 1; echo 'Preview ready: http://127.0.0.1/'; exec sleep 300",
        "--readiness-stdout-regex",
        "^Preview ready: ",
        "--format",
        "json",
    ]);
    let log = std::fs::read_to_string(started["logs"]["stdout"].as_str().unwrap()).unwrap();
    assert!(
        log.contains("Preview ready:"),
        "start returned before the line was printed: {log}"
    );
    assert_eq!(started["readiness"]["ready"], true);
    t.ok(&["tunnel", "service", "stop", "chatty"]);

    let line = t.fails(
        1,
        &[
            "tunnel",
            "service",
            "start",
            "chatty",
            "--command",
            "echo booting; exec sleep 300",
            "--readiness-stdout-regex",
            "^Preview ready: ",
            "--wait-secs",
            "1",
            "--grace-secs",
            "1",
        ],
    );
    assert!(line.contains("stdout_regex"), "{line}");
    let line = t.fails(
        2,
        &[
            "tunnel",
            "service",
            "start",
            "chatty",
            "--command",
            "x",
            "--readiness-stdout-regex",
            "(",
        ],
    );
    assert!(line.contains("regex"), "{line}");
}

#[test]
fn backend_command_gets_its_env_and_stops_with_the_service() {
    let t = TunnelHome::new();
    let port = free_port();
    t.declare("site-preview", port, "always");
    let cwd = t.work_dir();
    let service = format!("exec {} --port {port}", test_server());
    let started = t.json(&[
        "tunnel", "service", "start", "site-preview", "--command", &service, "--cwd", cwd.to_str().unwrap(),
        "--health-path", "/", "--public-tunnel-backend", "command",
        "--public-tunnel-command", "env | grep -E '^HOMEBOY_(SERVICE_ID|SERVICE_LOCAL_URL|TUNNEL_PUBLIC_URL)=' | sort > backend-env.txt; exec sleep 300",
        "--public-tunnel-public-url", "https://preview.example.test/run-123",
        "--source-run-id", "run-123", "--source-workflow-id", "workflow-abc", "--format", "json",
    ]);
    assert_eq!(started["backend"]["kind"], "command");
    assert_eq!(started["backend"]["state"], "running");
    assert_eq!(
        started["public_url"],
        "https://preview.example.test/run-123"
    );
    let env_file = cwd.join("backend-env.txt");
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&env_file).is_ok_and(|t| t.lines().count() == 3)
    }));
    assert_eq!(
        std::fs::read_to_string(&env_file).unwrap(),
        format!(
            "HOMEBOY_SERVICE_ID=site-preview\nHOMEBOY_SERVICE_LOCAL_URL=http://127.0.0.1:{port}\n\
             HOMEBOY_TUNNEL_PUBLIC_URL=https://preview.example.test/run-123\n"
        )
    );

    // The preview artifact, in the response and in the run's artifacts.
    let expected = json!({
        "schema": "homeboy/preview-url/v1", "kind": "preview_url", "service_id": "site-preview",
        "public_url": "https://preview.example.test/run-123", "local_url": format!("http://127.0.0.1:{port}"),
        "backend": "command", "policy": {"mode": "always"},
        "cleanup": {"cleanup_policy": "stop_with_service", "stop_on_cleanup": true},
        "source": {"run_id": "run-123", "workflow_id": "workflow-abc"}
    });
    assert_eq!(started["preview"], expected);
    let written = t.data().join("artifacts/runs/run-123/preview-url.json");
    assert_eq!(started["preview_artifact_path"], written.to_str().unwrap());
    let on_disk: Value = serde_json::from_slice(&std::fs::read(&written).unwrap()).unwrap();
    assert_eq!(on_disk, expected);
    let status = t.json(&[
        "tunnel",
        "service",
        "status",
        "site-preview",
        "--format",
        "json",
    ]);
    assert_eq!(status["preview"], expected);

    let backend_pgid = status["backend"]["pgid"].as_u64().unwrap();
    let service_pgid = status["pgid"].as_u64().unwrap();
    t.ok(&["tunnel", "service", "stop", "site-preview"]);
    assert!(group_members(backend_pgid).is_empty() && group_members(service_pgid).is_empty());
}

#[test]
fn a_preview_started_for_a_recorded_run_is_one_of_its_artifacts() {
    let t = TunnelHome::new();
    let repo = GitRepo::init(&t.home.root().join("app"));
    repo.commit("README", "app\n", "init");
    let tools = json!({"tools": {"audit": {"command": ["sh", "-c", "echo audited"]}}}).to_string();
    let path = repo.dir.to_str().unwrap().to_string();
    t.ok(&["component", "add", "app", "--path", &path, "--json", &tools]);
    let audit = t.json(&["audit", "app", "--format", "json"]);
    let run_id = audit["run"]["id"].as_str().unwrap().to_string();

    let port = free_port();
    t.declare("site-preview", port, "always");
    let service = format!("exec {} --port {port}", test_server());
    let cwd = t.work_dir();
    let start = |run: &str| {
        t.json(&[
            "tunnel",
            "service",
            "start",
            "site-preview",
            "--command",
            &service,
            "--cwd",
            cwd.to_str().unwrap(),
            "--health-path",
            "/",
            "--source-run-id",
            run,
            "--format",
            "json",
        ])
    };
    start(&run_id);
    let listed = |run: &str| t.json(&["runs", "artifacts", run, "--format", "json"]);
    let artifacts = listed(&run_id);
    let items = artifacts["artifacts"].as_array().unwrap();
    let preview: Vec<&Value> = items
        .iter()
        .filter(|a| a["name"] == "preview-url.json")
        .collect();
    assert_eq!(preview.len(), 1, "{artifacts}");
    let written = t
        .data()
        .join(format!("artifacts/runs/{run_id}/preview-url.json"));
    let bytes = std::fs::read(&written).unwrap();
    assert_eq!(preview[0]["size_bytes"], bytes.len() as u64);
    let digest: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(preview[0]["sha256"], digest.as_str());
    assert_eq!(preview[0]["mime"], "application/json");
    let first_id = preview[0]["id"].clone();

    // A restart rewrites the file and the same record.
    t.ok(&["tunnel", "service", "stop", "site-preview"]);
    start(&run_id);
    let again = listed(&run_id);
    let preview: Vec<&Value> = again["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == "preview-url.json")
        .collect();
    assert_eq!(preview.len(), 1, "{again}");
    assert_eq!(preview[0]["id"], first_id);
    t.ok(&["tunnel", "service", "stop", "site-preview"]);

    // A run id the store does not know (a CI run) keeps only the file.
    start("ci-run-7");
    assert!(
        t.data()
            .join("artifacts/runs/ci-run-7/preview-url.json")
            .exists()
    );
    t.ok(&["tunnel", "service", "stop", "site-preview"]);
}

// ---------------------------------------------------------------------------------------------------------
// Artifact origin

/// A running `artifact-origin serve` on a free loopback port, killed on drop.
struct Origin {
    child: Child,
    base: String,
}

impl Origin {
    fn start(t: &TunnelHome) -> Origin {
        let mut child = t
            .home
            .command("homeboy")
            .args([
                "tunnel",
                "artifact-origin",
                "serve",
                "--bind",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let line = homeboy_e2e::banner(&mut child, Duration::from_secs(60), "the artifact origin");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Origin {
            child,
            base: format!("http://{addr}"),
        }
    }

    fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        homeboy_e2e::reap(&mut self.child);
    }
}

/// Sends a request target byte for byte (no client-side normalisation); returns status and body.
fn raw_get(addr: &str, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn publish_bundle(root: &Path) -> PathBuf {
    let bundle = root.join("workflow-bench/sample-bundle");
    std::fs::create_dir_all(bundle.join("files")).unwrap();
    std::fs::write(
        bundle.join("report.html"),
        format!("<html><body>{}</body></html>", "<p>finding</p>".repeat(200)),
    )
    .unwrap();
    std::fs::write(
        bundle.join("evidence.json"),
        r#"{"status": "pass", "checks": [1, 2, 3]}"#,
    )
    .unwrap();
    std::fs::write(
        bundle.join("files/runtime-snapshot.json"),
        r#"{"runtime": "snapshot"}"#,
    )
    .unwrap();
    std::fs::write(bundle.join("index.html"), "<html>index</html>").unwrap();
    bundle
}

#[test]
fn artifact_origin_serves_a_bundle_with_cors_ranges_etags_and_compression() {
    let t = TunnelHome::new();
    let root = t.data().join("artifacts");
    publish_bundle(&root);
    let origin = Origin::start(&t);
    let http = Http::new();
    let url = |path: &str| format!("{}/workflow-bench/sample-bundle/{path}", origin.base);

    let report = http.get(&url("report.html"));
    assert_eq!(report.status, 200);
    assert_eq!(report.header("content-type"), Some("text/html"));
    assert_eq!(report.header("access-control-allow-origin"), Some("*"));
    assert!(String::from_utf8_lossy(&report.body).contains("<p>finding</p>"));
    let evidence = http.get(&url("evidence.json"));
    assert_eq!(
        (evidence.status, evidence.header("content-type")),
        (200, Some("application/json"))
    );
    assert_eq!(evidence.json()["status"], "pass");
    let snapshot = http.get(&url("files/runtime-snapshot.json"));
    assert_eq!(snapshot.json()["runtime"], "snapshot");
    let index = http.get(&format!("{}/workflow-bench/sample-bundle/", origin.base));
    assert_eq!(
        (index.status, index.body.as_slice()),
        (200, b"<html>index</html>".as_slice())
    );
    assert_eq!(http.get(&url("missing.html")).status, 404);

    // CORS preflight.
    let preflight = http.request(
        "OPTIONS",
        &url("evidence.json"),
        &[
            ("origin", "https://reviewer.example.test"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "range"),
        ],
        None,
    );
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(
        preflight
            .header("access-control-allow-methods")
            .unwrap()
            .contains("GET")
    );

    // Range.
    let part = http.request(
        "GET",
        &url("evidence.json"),
        &[("range", "bytes=1-8")],
        None,
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, br#""status""#);
    let total = evidence.body.len();
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 1-8/{total}").as_str())
    );

    // ETag and Last-Modified → 304.
    let etag = evidence.header("etag").expect("etag").to_string();
    let not_modified = http.request(
        "GET",
        &url("evidence.json"),
        &[("if-none-match", &etag)],
        None,
    );
    assert_eq!((not_modified.status, not_modified.body.len()), (304, 0));
    let last_modified = evidence
        .header("last-modified")
        .expect("last-modified")
        .to_string();
    let not_modified = http.request(
        "GET",
        &url("evidence.json"),
        &[("if-modified-since", &last_modified)],
        None,
    );
    assert_eq!(not_modified.status, 304);

    // HEAD: headers, no body.
    let head = http.request("HEAD", &url("report.html"), &[], None);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(report.body.len().to_string().as_str())
    );
    assert!(head.body.is_empty());

    // gzip only when the client accepts it (and only for text).
    let gz = http.request(
        "GET",
        &url("report.html"),
        &[("accept-encoding", "gzip")],
        None,
    );
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(&gz.body[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(gz.body.len() < report.body.len());
    assert!(
        gz.header("etag").unwrap().starts_with("W/"),
        "the compressed body has a weak etag"
    );
    let br = http.request(
        "GET",
        &url("report.html"),
        &[("accept-encoding", "br")],
        None,
    );
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert!(report.header("content-encoding").is_none());
}

#[test]
fn artifact_origin_refuses_every_traversal_form() {
    let t = TunnelHome::new();
    let root = t.data().join("artifacts");
    publish_bundle(&root);
    std::fs::write(t.home.root().join("secret.txt"), "TOP-SECRET").unwrap();
    std::os::unix::fs::symlink(t.home.root().join("secret.txt"), root.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(t.home.root(), root.join("escape-dir")).unwrap();
    let origin = Origin::start(&t);
    let addr = origin.addr();
    for target in [
        "/../secret.txt",
        "/workflow-bench/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/workflow-bench/..%2f..%2fsecret.txt",
        "//etc/passwd",
        "/%2fetc/passwd",
        "/..%5csecret.txt",
        "/leak.txt",
        "/escape-dir/secret.txt",
        "/%00",
    ] {
        let (status, text) = raw_get(&addr, target);
        assert!((400..500).contains(&status), "{target}: {status}\n{text}");
        assert!(!text.contains("TOP-SECRET"), "{target} leaked:\n{text}");
    }
    let (status, text) = raw_get(&addr, "/../secret.txt");
    assert_eq!(status, 400);
    assert!(
        text.contains("validation.invalid_argument") && text.contains("'..'"),
        "{text}"
    );
    let (status, text) = raw_get(&addr, "/leak.txt");
    assert_eq!(status, 403);
    assert!(text.contains("forbidden.outside_root"), "{text}");
    // HEAD must not reveal the size of an outside file either.
    let head = Http::new().request("HEAD", &format!("{}/leak.txt", origin.base), &[], None);
    assert_eq!(head.status, 403);
    assert_eq!(
        raw_get(&addr, "/workflow-bench/sample-bundle/evidence.json").0,
        200
    );

    // Non-loopback binds need the operator's explicit flag.
    let line = t.fails(
        2,
        &["tunnel", "artifact-origin", "serve", "--bind", "0.0.0.0:0"],
    );
    assert!(line.contains("--allow-public-bind"), "{line}");
}

/// Issue 16 item 6, through the real origin: the HTTP details a hostile-input review found wrong.
#[test]
fn artifact_origin_answers_ranges_conditions_and_odd_paths_per_rfc_9110() {
    let t = TunnelHome::new();
    let root = t.data().join("artifacts");
    let bundle = publish_bundle(&root);
    std::fs::write(bundle.join("empty.txt"), "").unwrap();
    std::fs::write(bundle.join("digits.txt"), "0123456789").unwrap();
    // An hour old: a Last-Modified date is a strong validator (one If-Range may use) only once the file
    // has been unchanged for a second.
    std::fs::File::options()
        .write(true)
        .open(bundle.join("digits.txt"))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    std::fs::write(root.join(".env"), "API_TOKEN=TOP-SECRET").unwrap();
    std::fs::create_dir_all(bundle.join(".git")).unwrap();
    std::fs::write(bundle.join(".git/config"), "TOP-SECRET").unwrap();
    let origin = Origin::start(&t);
    let addr = origin.addr();
    let http = Http::new();
    let url = |path: &str| format!("{}/workflow-bench/sample-bundle/{path}", origin.base);
    let get = |path: &str, headers: &[(&str, &str)]| http.request("GET", &url(path), headers, None);

    // Odd paths: never 500, never the file.
    let long_segment = format!("/workflow-bench/{}", "n".repeat(256));
    let long_path = format!("/{}", "a/".repeat(4096));
    for (target, want) in [
        (long_segment.as_str(), 404),
        (long_path.as_str(), 414),
        ("/.env", 404),
        ("/%2eenv", 404),
        ("/workflow-bench/sample-bundle/.git/config", 404),
    ] {
        let (status, text) = raw_get(&addr, target);
        assert_eq!(status, want, "{target:.80}\n{text:.400}");
        assert!(!text.contains("TOP-SECRET"), "{target:.80} leaked");
    }

    // An empty file has no byte 0: 416 with the size, never `206 bytes 0-0/0`.
    let empty = get("empty.txt", &[("range", "bytes=0-0")]);
    assert_eq!(empty.status, 416);
    assert_eq!(empty.header("content-range"), Some("bytes */0"));

    // The unit is case-insensitive; an unknown unit is ignored (the whole file, 200).
    let upper = get("digits.txt", &[("range", "BYTES=2-4")]);
    assert_eq!((upper.status, upper.body.as_slice()), (206, &b"234"[..]));
    assert_eq!(upper.header("content-range"), Some("bytes 2-4/10"));
    let unknown = get("digits.txt", &[("range", "items=2-4")]);
    assert_eq!(
        (unknown.status, unknown.body.as_slice()),
        (200, &b"0123456789"[..])
    );

    // Satisfiable multi-ranges: multipart/byteranges with each part; overlapping ones coalesce.
    let multi = get("digits.txt", &[("range", "bytes=0-1, 7-8")]);
    assert_eq!(multi.status, 206);
    let content_type = multi.header("content-type").unwrap().to_string();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    let text = String::from_utf8(multi.body.clone()).unwrap();
    assert_eq!(
        text,
        format!(
            "\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\
             \r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 7-8/10\r\n\r\n78\
             \r\n--{boundary}--\r\n"
        )
    );
    let merged = get("digits.txt", &[("range", "bytes=0-5,3-8")]);
    assert_eq!(
        (merged.status, merged.body.as_slice()),
        (206, &b"012345678"[..])
    );

    // If-Range: the range only while the validator still matches, else the whole current file.
    let whole = get("digits.txt", &[]);
    let etag = whole.header("etag").unwrap().to_string();
    let last_modified = whole.header("last-modified").unwrap().to_string();
    for validator in [etag.as_str(), last_modified.as_str()] {
        let part = get(
            "digits.txt",
            &[("range", "bytes=0-1"), ("if-range", validator)],
        );
        assert_eq!(
            (part.status, part.body.as_slice()),
            (206, &b"01"[..]),
            "{validator}"
        );
    }
    for validator in ["\"stale\"", "Thu, 01 Jan 1970 00:00:00 GMT"] {
        let full = get(
            "digits.txt",
            &[("range", "bytes=0-1"), ("if-range", validator)],
        );
        assert_eq!(
            (full.status, full.body.as_slice()),
            (200, &b"0123456789"[..]),
            "{validator}"
        );
    }

    // If-Match / If-Unmodified-Since.
    assert_eq!(get("digits.txt", &[("if-match", "\"stale\"")]).status, 412);
    assert_eq!(get("digits.txt", &[("if-match", &etag)]).status, 200);
    let old = "Thu, 01 Jan 1970 00:00:00 GMT";
    assert_eq!(
        get("digits.txt", &[("if-unmodified-since", old)]).status,
        412
    );
}

#[test]
fn artifact_origin_status_and_inspect_show_the_mapping() {
    let t = TunnelHome::new();
    let root = t.data().join("artifacts");
    publish_bundle(&root);
    std::os::unix::fs::symlink("/", root.join("leak")).unwrap();
    let base = "https://homeboy-artifacts-tunnel.dev.example.com";
    let with_base = |args: &[&str]| {
        t.home
            .command("homeboy")
            .args(args)
            .env("HOMEBOY_PUBLIC_ARTIFACT_BASE_URL", base)
            .output_bounded()
            .unwrap()
    };
    let out = with_base(&["tunnel", "artifact-origin", "status", "--format", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["root"], root.to_str().unwrap());
    assert_eq!(
        (
            status["root_exists"].as_bool(),
            status["public_base_url"].as_str()
        ),
        (Some(true), Some(base))
    );

    let path = "workflow-bench/sample-bundle/report.html";
    let out = with_base(&[
        "tunnel",
        "artifact-origin",
        "inspect",
        path,
        "--fail-on-missing",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["exists"], true);
    assert_eq!(inspected["kind"], "file");
    assert_eq!(inspected["content_type"], "text/html");
    assert_eq!(
        inspected["size_bytes"],
        std::fs::metadata(root.join(path)).unwrap().len()
    );
    assert_eq!(inspected["public_url"], format!("{base}/{path}"));
    let out = with_base(&["tunnel", "artifact-origin", "inspect", path]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("public url: {base}/{path}")));

    let line = t.fails(
        1,
        &[
            "tunnel",
            "artifact-origin",
            "inspect",
            "workflow-bench/nope.html",
            "--fail-on-missing",
        ],
    );
    assert!(line.contains("does not exist"), "{line}");
    t.ok(&[
        "tunnel",
        "artifact-origin",
        "inspect",
        "workflow-bench/nope.html",
    ]);
    for bad in ["../secret", "/etc/passwd", "leak/etc/passwd"] {
        t.fails(2, &["tunnel", "artifact-origin", "inspect", bad]);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Preview consumer

fn write_consumer(dir: &Path, name: &str, config: Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    path
}

#[test]
fn preview_consumer_extracts_the_result_by_pointer_and_by_prefix() {
    let t = TunnelHome::new();
    let dir = t.work_dir();
    // By JSON pointer: the consumer writes summary.json into ${artifacts_dir}.
    let by_pointer = write_consumer(
        &dir,
        "pointer.json",
        json!({
            "id": "pointer-consumer",
            "command": {
                "program": "sh",
                "args": ["-c", "printf '{\"public_result_url\": \"%s/result\"}' \"$1\" > \"$2/summary.json\"; echo done",
                         "consumer", "${preview_public_url}", "${artifacts_dir}"],
                "artifacts_dir": "artifacts/pointer"
            },
            "output": {"public_result_json_file": "summary.json", "public_result_json_pointer": "/public_result_url",
                       "public_result_stdout_prefix": "Public result URL:"}
        }),
    );
    let run = t.json(&[
        "tunnel",
        "preview-consumer",
        "run",
        "--config",
        by_pointer.to_str().unwrap(),
        "--preview-public-url",
        "https://run-123-tunnel.example.net",
        "--format",
        "json",
    ]);
    assert_eq!(run["schema"], "homeboy/preview-consumer-run/v1");
    assert_eq!(
        run["public_result_url"],
        "https://run-123-tunnel.example.net/result"
    );
    assert_eq!(run["public_result_source"], "json_pointer");
    assert_eq!(
        (run["exit_code"].as_i64(), run["stdout"].as_str()),
        (Some(0), Some("done\n"))
    );
    assert_eq!(
        run["artifacts_dir"],
        dir.join("artifacts/pointer").to_str().unwrap()
    );
    let artifact: Value =
        serde_json::from_slice(&std::fs::read(run["artifact_path"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(artifact["public_result_url"], run["public_result_url"]);

    // By stdout prefix, with the public URL recorded by a managed service; argv is not a shell.
    let port = free_port();
    t.declare("held", port, "none");
    t.ok(&[
        "tunnel",
        "service",
        "start",
        "held",
        "--command",
        "exec sleep 300",
        "--public-tunnel-public-url",
        "https://held.example.net",
    ]);
    let by_prefix = write_consumer(
        &dir,
        "prefix.json",
        json!({
            "id": "prefix-consumer",
            "command": {"program": "printf", "args": ["noise\\nPublic result URL: %s/r;$(echo injected)\\n", "${preview_public_url}"]},
            "output": {"public_result_stdout_prefix": "Public result URL:"}
        }),
    );
    let run = t.json(&[
        "tunnel",
        "preview-consumer",
        "run",
        "--config",
        by_prefix.to_str().unwrap(),
        "--service-id",
        "held",
        "--format",
        "json",
    ]);
    assert_eq!(run["service_id"], "held");
    assert_eq!(run["preview_public_url"], "https://held.example.net");
    assert_eq!(
        run["public_result_url"],
        "https://held.example.net/r;$(echo injected)"
    );
    assert_eq!(run["public_result_source"], "stdout_prefix");
    t.ok(&["tunnel", "service", "stop", "held"]);
}

#[test]
fn preview_consumer_bad_input_is_one_clear_line() {
    let t = TunnelHome::new();
    let dir = t.work_dir();
    let ok = write_consumer(
        &dir,
        "ok.json",
        json!({"id": "c", "command": {"program": "true"}}),
    );
    let cfg = ok.to_str().unwrap();

    t.declare("never-started", free_port(), "none");
    let line = t.fails(
        1,
        &[
            "tunnel",
            "preview-consumer",
            "run",
            "--config",
            cfg,
            "--service-id",
            "never-started",
        ],
    );
    assert!(line.contains("no recorded public URL"), "{line}");
    let line = t.fails(
        2,
        &[
            "tunnel",
            "preview-consumer",
            "run",
            "--config",
            cfg,
            "--preview-public-url",
            "not-a-url",
        ],
    );
    assert!(line.contains("--preview-public-url"), "{line}");
    let out = t.run(&["tunnel", "preview-consumer", "run", "--config", cfg]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "one of --service-id / --preview-public-url is required"
    );

    let typo = write_consumer(
        &dir,
        "typo.json",
        json!({"id": "c", "command": {"program": "true", "arg": []}}),
    );
    let line = t.fails(
        2,
        &[
            "tunnel",
            "preview-consumer",
            "run",
            "--config",
            typo.to_str().unwrap(),
            "--preview-public-url",
            "https://p.example",
        ],
    );
    assert!(
        line.contains("command.arg") && line.contains("did you mean `args`"),
        "{line}"
    );
    let unknown = write_consumer(
        &dir,
        "tmpl.json",
        json!({"id": "c", "command": {"program": "echo", "args": ["${HOME}"]}}),
    );
    let line = t.fails(
        2,
        &[
            "tunnel",
            "preview-consumer",
            "run",
            "--config",
            unknown.to_str().unwrap(),
            "--preview-public-url",
            "https://p.example",
        ],
    );
    assert!(line.contains("${HOME}"), "{line}");

    let failing = write_consumer(
        &dir,
        "fail.json",
        json!({"id": "failing", "command": {"program": "false"}}),
    );
    let line = t.fails(
        1,
        &[
            "tunnel",
            "preview-consumer",
            "run",
            "--config",
            failing.to_str().unwrap(),
            "--preview-public-url",
            "https://p.example",
        ],
    );
    assert!(line.contains("preview consumer failing failed"), "{line}");
    let line = t.fails(
        1,
        &[
            "tunnel",
            "preview-consumer",
            "run",
            "--config",
            dir.join("missing.json").to_str().unwrap(),
            "--preview-public-url",
            "https://p.example",
        ],
    );
    assert!(line.contains("missing.json"), "{line}");
}
