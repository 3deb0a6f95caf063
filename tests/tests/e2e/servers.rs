//! `homeboy server|runner|ssh` and `homeboy daemon broker-config` through the real binary: declarations on
//! disk, redaction of everything printed, secret references, a real sshd for sessions and forwards, and the
//! rendered broker recipe checked by systemd-analyze, nginx and caddy.

mod broker_config;
mod keychain;
mod ssh;
pub(crate) mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use homeboy_e2e::{Bounded, Home, describe};
use serde_json::{Value, json};

/// Runs homeboy with extra environment variables.
fn homeboy_env(home: &Home, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = home.command("homeboy");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).output_bounded().expect("run homeboy")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn server_declarations_round_trip_and_refuse_bad_input() {
    let home = Home::new();
    home.homeboy_ok(&[
        "server",
        "add",
        "prod",
        "--host",
        "example.com",
        "--user",
        "deploy",
        "--name",
        "Production Server",
        "--port",
        "2222",
        "--kind",
        "password-gated",
    ]);
    let file = home.config_dir().join("servers/prod.json");
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        stored,
        json!({"id": "prod", "name": "Production Server", "host": "example.com", "port": 2222,
               "user": "deploy", "kind": "password-gated", "forward_agent": false})
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The dynamic set contract: a merge patch and dotted fields, every field of the schema.
    let patch = json!({
        "identity_file": "~/.ssh/id_ed25519",
        "auth": {"mode": "key_plus_password_controlmaster", "control_path": "~/.ssh/cm/%h-%p-%r", "persist": "4h"},
        "runner": {"workspace_root": "/home/deploy/Developer", "homeboy_path": "/usr/local/bin/homeboy",
                   "daemon": false, "concurrency_limit": 4, "artifact_policy": "copy",
                   "policy": {"snapshot_excludes": ["generated-state", "generated-state/**"]},
                   "env": {"HOMEBOY_PUBLIC_ARTIFACT_BASE_URL": "https://artifacts.example.test"},
                   "secret_env": {"OPENAI_API_KEY": {"env": "OPENAI_API_KEY"},
                                  "SERVICE_TOKEN": {"file": "~/.config/homeboy/secrets/service-token"}},
                   "resources": {"cpus": 4}}
    });
    let shown = home.homeboy_json(&[
        "server",
        "set",
        "prod",
        "--json",
        &patch.to_string(),
        "--field",
        "forward_agent=true",
        "--format",
        "json",
    ]);
    assert_eq!(shown["forward_agent"], true);
    assert_eq!(shown["runner"]["concurrency_limit"], 4);
    let listed = home.homeboy_json(&["server", "list", "--format", "json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0], shown);
    assert_eq!(
        home.homeboy_json(&["server", "show", "prod", "--format", "json"]),
        shown
    );
    let text = home.homeboy_ok(&["server", "list"]);
    assert!(
        text.contains("prod") && text.contains("deploy@example.com:2222"),
        "{text}"
    );
    assert!(text.contains("managed"), "{text}");

    // Refusals exit 2 with one line naming the file and field, and leave the file as it was.
    let before = std::fs::read(&file).unwrap();
    for (args, words) in [
        (vec!["--field", "prot=22"], "did you mean `port`?"),
        (
            vec!["--field", "runner.concurency_limit=2"],
            "did you mean `concurrency_limit`?",
        ),
        (vec!["--field", "port=0"], "between 1 and 65535"),
        (vec!["--field", "auth.persist=forever"], "auth.persist"),
        (
            vec![
                "--json",
                r#"{"runner": {"secret_env": {"X": "plaintext"}}}"#,
            ],
            "runner.secret_env.X",
        ),
        (vec!["--json", "[1]"], "merge patch"),
        (vec!["--field", "id=other"], "cannot be changed"),
        (vec![], "nothing to set"),
    ] {
        let mut full = vec!["server", "set", "prod"];
        full.extend(args.iter().copied());
        let out = home.homeboy(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let err = stderr(&out);
        assert!(err.contains(words), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            before,
            "{args:?} changed the file"
        );
    }
    // A hand-edited file with a typo is reported, not guessed at.
    std::fs::write(
        home.config_dir().join("servers/typo.json"),
        r#"{"id": "typo", "name": "T", "host": "h", "user": "u", "forward_agnet": true}"#,
    )
    .unwrap();
    let out = home.homeboy(&["server", "show", "typo"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains(
        "typo.json: field `forward_agnet` is not a known field; did you mean `forward_agent`?"
    ));
    let text = home.homeboy_ok(&["server", "list"]);
    assert!(
        text.contains("typo") && text.contains("unreadable"),
        "{text}"
    );

    let out = home.homeboy(&["server", "add", "prod", "--host", "h", "--user", "u"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("already exists"));
    for bad in [
        vec!["server", "add", "../evil", "--host", "h", "--user", "u"],
        vec![
            "server",
            "add",
            "x",
            "--host",
            "-oProxyCommand=sh",
            "--user",
            "u",
        ],
        vec![
            "server", "add", "x", "--host", "h", "--user", "u", "--port", "0",
        ],
    ] {
        let out = home.homeboy(&bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", describe(&out));
    }
    assert!(!home.config_dir().join("servers/x.json").exists());

    home.homeboy_ok(&["server", "remove", "prod"]);
    assert!(!file.exists());
    let out = home.homeboy(&["server", "remove", "prod"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("no server named \"prod\""));
}

#[test]
fn runner_enable_and_status() {
    let home = Home::new();
    home.homeboy_ok(&[
        "server",
        "add",
        "lab",
        "--host",
        "lab.local",
        "--user",
        "me",
    ]);
    let out = home.homeboy(&["runner", "status", "lab"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("homeboy runner enable lab"));

    let status = home.homeboy_json(&["runner", "enable", "lab", "--format", "json"]);
    assert_eq!(status["server_id"], "lab");
    assert_eq!(status["runner"]["concurrency_limit"], 1);
    assert_eq!(status["runner"]["workspace_root"], "~/homeboy-runner");
    assert_eq!(status["runner"]["artifact_policy"], "copy");
    let text = home.homeboy_ok(&[
        "runner",
        "enable",
        "lab",
        "--concurrency-limit",
        "3",
        "--daemon",
        "true",
    ]);
    assert!(text.contains("updated"), "{text}");
    let status = home.homeboy_json(&["runner", "status", "lab", "--format", "json"]);
    assert_eq!(status["runner"]["concurrency_limit"], 3);
    assert_eq!(status["runner"]["daemon"], true);
    assert_eq!(status["runner"]["workspace_root"], "~/homeboy-runner");
    let out = home.homeboy(&["runner", "enable", "lab", "--concurrency-limit", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(
        home.homeboy_json(&["runner", "status", "lab", "--format", "json"])["runner"]["concurrency_limit"],
        3
    );
}

/// Secret values that must never appear in anything homeboy prints or writes.
const ENV_SECRET: &str = "sk-env-3f9a1c7e5b2d4068";
const FILE_SECRET: &str = "file-secret-8c2e6a4f0b1d3957";
const INLINE_SENSITIVE: &str = "inline-token-71d4b9e2a6c0f853";

#[test]
fn secrets_are_resolved_but_never_shown() {
    let home = Home::new();
    let secrets_dir = home.root().join("secrets");
    std::fs::create_dir_all(&secrets_dir).unwrap();
    let secret_file = secrets_dir.join("service-token");
    std::fs::write(&secret_file, format!("{FILE_SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    home.homeboy_ok(&[
        "server",
        "add",
        "runner-1",
        "--host",
        "runner.local",
        "--user",
        "ci",
    ]);
    home.homeboy_ok(&["runner", "enable", "runner-1"]);
    let patch = json!({"runner": {
        "env": {"DEPLOY_TOKEN": INLINE_SENSITIVE, "PUBLIC_URL": "https://artifacts.example.test"},
        "secret_env": {
            "OPENAI_API_KEY": {"env": "HOMEBOY_TEST_OPENAI_KEY"},
            "SERVICE_TOKEN": {"file": "~/secrets/service-token"}
        }
    }});
    let env = [("HOMEBOY_TEST_OPENAI_KEY", ENV_SECRET)];
    let mut outputs: Vec<(String, Output)> = Vec::new();
    let mut run = |args: &[&str]| {
        let out = homeboy_env(&home, &env, args);
        let code = out.status.code();
        outputs.push((args.join(" "), out));
        code
    };

    assert_eq!(
        run(&["server", "set", "runner-1", "--json", &patch.to_string()]),
        Some(0)
    );
    assert_eq!(
        run(&[
            "server",
            "set",
            "runner-1",
            "--json",
            &patch.to_string(),
            "--format",
            "json"
        ]),
        Some(0)
    );
    for format in ["text", "json"] {
        assert_eq!(
            run(&["server", "show", "runner-1", "--format", format]),
            Some(0)
        );
        assert_eq!(run(&["server", "list", "--format", format]), Some(0));
        assert_eq!(
            run(&["runner", "status", "runner-1", "--format", format]),
            Some(0)
        );
        assert_eq!(
            run(&["runner", "enable", "runner-1", "--format", format]),
            Some(0)
        );
        // Resolved here, as the runner would: both secrets resolve, and only that fact is printed.
        assert_eq!(
            run(&[
                "runner",
                "status",
                "runner-1",
                "--check-secrets",
                "--format",
                format
            ]),
            Some(0)
        );
    }
    // A group-readable secret file is refused with the variable and the path, exit 1.
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(
        run(&["runner", "status", "runner-1", "--check-secrets"]),
        Some(1)
    );
    let refused = stdout_and_stderr(&outputs.last().unwrap().1);
    assert!(refused.contains("SERVICE_TOKEN"), "{refused}");
    assert!(refused.contains("readable by group or others"), "{refused}");
    assert!(refused.contains("chmod 600"), "{refused}");

    let (_, checked) = &outputs[outputs.len() - 2];
    let checked: Value = serde_json::from_slice(&checked.stdout).unwrap();
    let checks = checked["secret_checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c["resolves"] == true), "{checked}");
    assert_eq!(
        checked["runner"]["secret_env"]["SERVICE_TOKEN"],
        json!({"file": "~/secrets/service-token"})
    );
    assert_eq!(checked["runner"]["env"]["DEPLOY_TOKEN"], "[redacted]");
    assert_eq!(
        checked["runner"]["env"]["PUBLIC_URL"],
        "https://artifacts.example.test"
    );

    // A missing variable names the variable and the reference.
    let out = homeboy_env(
        &home,
        &[],
        &[
            "runner",
            "status",
            "runner-1",
            "--check-secrets",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout_and_stderr(&out);
    assert!(
        text.contains("HOMEBOY_TEST_OPENAI_KEY") && text.contains("OPENAI_API_KEY"),
        "{text}"
    );
    outputs.push(("missing".into(), out));

    // Nothing printed by any of those commands holds a secret or a sensitive env value.
    for (args, out) in &outputs {
        let text = stdout_and_stderr(out);
        for secret in [ENV_SECRET, FILE_SECRET, INLINE_SENSITIVE] {
            assert!(
                !text.contains(secret),
                "`homeboy {args}` printed a secret:\n{text}"
            );
        }
    }
    // Nor does any file homeboy wrote hold a resolved secret value. The haystack is real: the walk finds
    // the server declaration among the files, and every file reads.
    let files: Vec<_> = walk(&home.config_dir())
        .into_iter()
        .chain(walk(&home.data_dir()))
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("servers/runner-1.json")),
        "the scan misses the server declaration: {files:?}"
    );
    homeboy_e2e::haystack(&home.config_dir().join("servers/runner-1.json"));
    for entry in files {
        let bytes = std::fs::read(&entry)
            .unwrap_or_else(|e| panic!("leak scan: {} cannot be read: {e}", entry.display()));
        let text = String::from_utf8_lossy(&bytes);
        for secret in [ENV_SECRET, FILE_SECRET] {
            assert!(!text.contains(secret), "{} holds a secret", entry.display());
        }
    }
}

fn stdout_and_stderr(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
