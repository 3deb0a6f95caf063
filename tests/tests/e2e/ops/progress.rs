//! Progress on long waits is for people at a terminal only. Under a pseudo-terminal (`script`) `daemon
//! start`, `tunnel service start`, `runner work` and `tunnel preview-client start` show what they wait for
//! (or the job they run); piped, or with `--format json`, they print exactly what they printed before and
//! not a byte more.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use homeboy_e2e::pty::{children, quote, session};
use homeboy_e2e::{Broker, Home, Http, Runner, describe, haystack, pty, wait_exit, wait_until};
use serde_json::{Value, json};

/// `homeboy <args>` under a pseudo-terminal, its session written to `transcript` as it goes. Returns
/// `script` so the caller can watch the transcript while it runs.
fn spawn_in_pty(home: &Home, args: &[&str], transcript: &Path) -> std::process::Child {
    spawn_in_pty_with(home, args, &[], transcript)
}

/// [`spawn_in_pty`] with extra environment variables.
fn spawn_in_pty_with(
    home: &Home,
    args: &[&str],
    env: &[(&str, &str)],
    transcript: &Path,
) -> std::process::Child {
    let mut cmd = home.command("homeboy");
    cmd.args(args).envs(env.iter().copied());
    pty::spawn(&cmd, transcript, Stdio::null())
}

fn in_pty(home: &Home, args: &[&str]) -> (ExitStatus, String) {
    let transcript = home.root().join(format!("pty-{}.txt", args.join("-")));
    let mut child = spawn_in_pty(home, args, &transcript);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    (status, session(&transcript))
}

#[test]
fn daemon_start_shows_its_wait_on_a_terminal_only() {
    let home = Home::new();
    let (status, shown) = in_pty(&home, &["daemon", "start"]);
    assert!(status.success(), "{shown}");
    assert!(
        shown.contains("waiting for the daemon"),
        "no progress:\n{shown}"
    );
    assert!(shown.contains("daemon started at"), "{shown}");
    home.homeboy_ok(&["daemon", "stop"]);

    // --format json on a terminal: the JSON and nothing else.
    let (status, shown) = in_pty(&home, &["daemon", "start", "--format", "json"]);
    assert!(status.success(), "{shown}");
    let parsed: Value = serde_json::from_str(shown.trim())
        .unwrap_or_else(|e| panic!("more than JSON on the terminal ({e}):\n{shown:?}"));
    assert_eq!(parsed["outcome"], "started");
    home.homeboy_ok(&["daemon", "stop"]);

    // Piped: the one result line, no progress on stderr.
    let out = home.homeboy(&["daemon", "start"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(out.stderr.is_empty(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("daemon started at"), "{stdout}");
}

#[test]
fn service_start_shows_the_gates_it_waits_for_on_a_terminal_only() {
    let home = Home::new();
    home.homeboy_ok(&[
        "tunnel",
        "service",
        "expose",
        "web",
        "--remote-port",
        "7999",
        "--auth-mode",
        "none",
    ]);
    let go = home.root().join("go");
    let command = format!(
        "while [ ! -e {} ]; do sleep 0.02; done; echo READY; exec sleep 600",
        quote(&go.to_string_lossy())
    );
    let start = |format: &str| {
        vec![
            "tunnel".to_string(),
            "service".into(),
            "start".into(),
            "web".into(),
            "--command".into(),
            command.clone(),
            "--cwd".into(),
            home.root().to_string_lossy().into_owned(),
            "--readiness-stdout-regex".into(),
            "READY".into(),
            "--format".into(),
            format.into(),
        ]
    };
    let args = start("text");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let transcript = home.root().join("service.txt");
    let mut child = spawn_in_pty(&home, &args, &transcript);
    let waiting = wait_until(Duration::from_secs(30), || {
        session(&transcript).contains("waiting for stdout")
    });
    std::fs::write(&go, "").unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let shown = session(&transcript);
    assert!(waiting, "no progress while the gate was closed:\n{shown}");
    assert!(status.success(), "{shown}");
    assert!(shown.contains("service web: running"), "{shown}");
    home.homeboy_ok(&["tunnel", "service", "stop", "web"]);

    // --format json on a terminal, and text piped: nothing but the result.
    std::fs::remove_file(&go).unwrap();
    let args = start("json");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let transcript = home.root().join("service-json.txt");
    let mut child = spawn_in_pty(&home, &args, &transcript);
    // The gate is closed until the test opens it: the command is certainly waiting by then.
    assert!(wait_until(Duration::from_secs(30), || home
        .data_dir()
        .join("tunnel/services/web/runtime.json")
        .exists()));
    std::fs::write(&go, "").unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(60)).success());
    let shown = session(&transcript);
    let parsed: Value = serde_json::from_str(shown.trim())
        .unwrap_or_else(|e| panic!("more than JSON on the terminal ({e}):\n{shown:?}"));
    assert_eq!(parsed["state"], "running");
    home.homeboy_ok(&["tunnel", "service", "stop", "web"]);

    let args = start("text");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = home.homeboy(&args);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(out.stderr.is_empty(), "{}", describe(&out));
    home.homeboy_ok(&["tunnel", "service", "stop", "web"]);
}

#[test]
fn runner_work_shows_the_job_it_runs_on_a_terminal_only() {
    let home = Home::new();
    let submit = home.pair("lab", "submit");
    let work = home.pair("lab", "work");
    let broker = Broker::start(&home, &[]);
    let http = Http::new();
    let go = home.root().join("go");
    // A job that runs until the test lets it end.
    let gated = format!(
        "while [ ! -e {} ]; do sleep 0.02; done",
        quote(&go.to_string_lossy())
    );
    let submit_job = || -> String {
        let r = http.post_auth(
            &format!("{}/runner/jobs", broker.url),
            &submit,
            &json!({"runner_id": "lab", "command": ["sh", "-c", &gated]}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["data"]["job"]["id"].as_str().unwrap().to_string()
    };
    let finished = |id: &str| {
        wait_until(Duration::from_secs(30), || {
            let r = http.get(&format!("{}/jobs/{id}", broker.url));
            r.json()["data"]["job"]["status"] == "succeeded"
        })
    };
    let workspace = home.root().join("workspace");
    let workspace = workspace.to_string_lossy();
    let args = [
        "runner",
        "work",
        "--broker",
        &broker.url,
        "--runner-id",
        "lab",
        "--workspace",
        &workspace,
    ];

    let transcript = home.root().join("runner.txt");
    let mut script = spawn_in_pty_with(
        &home,
        &args,
        &[("HOMEBOY_BROKER_TOKEN", work.as_str())],
        &transcript,
    );
    let idle = wait_until(Duration::from_secs(30), || {
        session(&transcript).contains("waiting for a job from")
    });
    assert!(idle, "no progress while idle:\n{}", session(&transcript));
    let job = submit_job();
    let running = wait_until(Duration::from_secs(30), || {
        session(&transcript).contains(&format!("running job {job}"))
    });
    std::fs::write(&go, "").unwrap();
    assert!(running, "the job was not shown:\n{}", session(&transcript));
    assert!(finished(&job), "{}", session(&transcript));
    // The worker's own lines still reach the terminal, above the spinner.
    let exited = wait_until(Duration::from_secs(10), || {
        session(&transcript).contains(&format!("job {job} exited with 0"))
    });
    assert!(exited, "{}", session(&transcript));
    // SIGTERM to the runner (script's child) ends it, and script with it.
    let runner = children(script.id());
    assert_eq!(runner.len(), 1, "script's children: {runner:?}");
    Command::new("kill")
        .args(["-TERM", &runner[0].to_string()])
        .status()
        .unwrap();
    wait_exit(&mut script, Duration::from_secs(30));

    // Piped: the worker's lines and nothing else (no spinner, no control characters).
    std::fs::remove_file(&go).unwrap();
    let piped = Runner::start(&home, &broker.url, "lab", &work, &[]);
    let job = submit_job();
    let claimed = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&piped.log)
            .unwrap_or_default()
            .contains(&format!("claimed job {job}"))
    });
    std::fs::write(&go, "").unwrap();
    assert!(
        claimed,
        "{}",
        std::fs::read_to_string(&piped.log).unwrap_or_default()
    );
    assert!(finished(&job));
    let log = piped.log.clone();
    drop(piped);
    let text = haystack(&log);
    assert!(text.contains(&format!("job {job} exited with 0")), "{text}");
    for line in text.lines() {
        assert!(
            line.starts_with("homeboy runner lab"),
            "an extra line: {line:?}\n{text}"
        );
    }
    assert!(
        !text.contains('\r') && !text.contains('\u{1b}') && !text.contains("running job"),
        "progress on a pipe:\n{text:?}"
    );
}

#[test]
fn preview_client_shows_its_registration_on_a_terminal_only() {
    const TOKEN: &str = "hbp-progress-token-58d1c0e2b7";
    let home = Home::new();
    super::metrics::allow_previews(&home, TOKEN);
    let ingress = super::metrics::Ingress::start(&home);
    let origin = homeboy_e2e::origin::Origin::start("site");
    let origin_url = origin.url();
    let run = |format: &str, host: &str| -> String {
        let args = [
            "tunnel",
            "preview-client",
            "start",
            "--ingress",
            &ingress.url,
            "--public-host",
            host,
            "--local-origin",
            &origin_url,
            "--token-env",
            "PROGRESS_PREVIEW_TOKEN",
            "--client-id",
            "lab",
            "--format",
            format,
        ];
        let transcript = home.root().join(format!("preview-{format}.txt"));
        let status_file = home.root().join(format!("preview-{format}.status"));
        let mut cmd = home.command("homeboy");
        cmd.args(args).env("PROGRESS_PREVIEW_TOKEN", TOKEN);
        let mut script =
            pty::spawn_recording_status(&cmd, &transcript, Stdio::null(), &status_file);
        let live = wait_until(Duration::from_secs(30), || {
            let shown = session(&transcript);
            shown.contains("is live") || shown.contains("\"registered\"")
        });
        assert!(live, "never registered:\n{}", session(&transcript));
        // script → the sh that records the status → the client.
        let shell = children(script.id());
        assert_eq!(shell.len(), 1, "script's children: {shell:?}");
        let client = children(shell[0]);
        assert_eq!(client.len(), 1, "the shell's children: {client:?}");
        Command::new("kill")
            .args(["-TERM", &client[0].to_string()])
            .status()
            .unwrap();
        let script_status = wait_exit(&mut script, Duration::from_secs(30));
        let client_status = pty::recorded_status(&status_file);
        assert_eq!(
            client_status,
            Some(0),
            "the client did not stop cleanly on SIGTERM (its status {client_status:?}, script's \
             {script_status}):\n{}",
            session(&transcript)
        );
        session(&transcript)
    };

    let shown = run("text", "one.preview.test");
    assert!(
        shown.contains("registering one.preview.test with"),
        "no progress before the registration:\n{shown}"
    );
    assert!(
        shown.contains("session for one.preview.test closed"),
        "{shown}"
    );

    // --format json on a terminal: JSON lines and nothing else.
    let shown = run("json", "two.preview.test");
    for line in shown.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("more than JSON on the terminal ({e}): {line:?}\n{shown:?}")
        });
        assert!(event["event"].is_string(), "{line}");
    }
    assert!(!shown.contains("registering"), "{shown:?}");
}
