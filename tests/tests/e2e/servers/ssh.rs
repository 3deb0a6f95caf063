//! `homeboy ssh`, `homeboy server connect|disconnect` and `homeboy runner connect` against a real sshd on
//! 127.0.0.1 (see `support::Sshd`), with the client's test settings passed through `HOMEBOY_SSH_CONFIG`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use homeboy_e2e::{Home, Http, describe, wait_until};
use serde_json::json;

use super::support::{Sshd, require_program};

/// `homeboy <args>` with the sshd's client config.
fn homeboy(home: &Home, sshd: &Sshd, args: &[&str]) -> Output {
    home.command("homeboy")
        .env("HOMEBOY_SSH_CONFIG", sshd.ssh_config())
        .args(args)
        .output()
        .expect("run homeboy")
}

fn ok(home: &Home, sshd: &Sshd, args: &[&str]) -> String {
    let out = homeboy(home, sshd, args);
    assert!(
        out.status.success(),
        "homeboy {args:?}: {}\nsshd log:\n{}",
        describe(&out),
        sshd.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Turns server `id` into a managed session whose control sockets live in the sshd's scratch dir; returns
/// the socket path ssh will use.
fn manage(home: &Home, sshd: &Sshd, id: &str) -> PathBuf {
    let pattern = sshd.dir().join("cm/%h-%p-%r");
    let patch = json!({"auth": {"mode": "key_plus_password_controlmaster",
                                "control_path": pattern.to_str().unwrap(), "persist": "10m"}});
    ok(
        home,
        sshd,
        &["server", "set", id, "--json", &patch.to_string()],
    );
    sshd.dir()
        .join(format!("cm/127.0.0.1-{}-{}", sshd.port, sshd.user))
}

/// `ssh -O check` run directly, to see the master the way ssh sees it.
fn ssh_check(sshd: &Sshd, socket: &std::path::Path) -> bool {
    let ssh = require_program("ssh", "openssh-client");
    Command::new(ssh)
        .arg("-F")
        .arg(sshd.ssh_config())
        .arg(format!("-oControlPath={}", socket.display()))
        .args([
            "-O",
            "check",
            "-p",
            &sshd.port.to_string(),
            "-l",
            &sshd.user,
        ])
        .args(["--", "127.0.0.1"])
        .stdin(Stdio::null())
        .output()
        .expect("run ssh -O check")
        .status
        .success()
}

#[test]
fn ssh_runs_remote_commands_with_their_exit_code() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.add_server(&home, "lab");
    assert_eq!(ok(&home, &sshd, &["ssh", "lab", "echo", "ok"]), "ok\n");
    // Words that look like options belong to the remote command.
    let listing = ok(
        &home,
        &sshd,
        &["ssh", "lab", "ls", "-a", sshd.dir().to_str().unwrap()],
    );
    assert!(listing.contains("sshd_config"), "{listing}");
    let out = homeboy(&home, &sshd, &["ssh", "lab", "exit", "7"]);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    let out = homeboy(&home, &sshd, &["ssh", "nope", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    // Sessions are for managed servers only.
    let out = homeboy(&home, &sshd, &["server", "connect", "lab"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key_plus_password_controlmaster"));
}

#[test]
fn managed_session_is_created_reused_and_removed() {
    let mut sshd = Sshd::start();
    let home = Home::new();
    sshd.add_server(&home, "gate");
    let socket = manage(&home, &sshd, "gate");

    let out = homeboy(&home, &sshd, &["server", "connect", "gate", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not connected"));
    assert!(!socket.exists());

    let connected = home
        .command("homeboy")
        .env("HOMEBOY_SSH_CONFIG", sshd.ssh_config())
        .args(["server", "connect", "gate", "--format", "json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        connected.status.success(),
        "{}\n{}",
        describe(&connected),
        sshd.log()
    );
    let connected: serde_json::Value = serde_json::from_slice(&connected.stdout).unwrap();
    assert_eq!(connected["outcome"], "connected");
    assert_eq!(connected["status"]["connected"], true);
    assert_eq!(
        connected["status"]["control_path"],
        socket.to_str().unwrap()
    );
    let master_pid = connected["status"]["master_pid"].as_u64().unwrap();
    assert!(homeboy_e2e::pid_alive(master_pid));
    assert!(socket.exists(), "no control socket at {}", socket.display());
    let dir_mode = std::fs::metadata(socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    assert!(
        ssh_check(&sshd, &socket),
        "ssh -O check does not see the master"
    );
    let check = ok(&home, &sshd, &["server", "connect", "gate", "--check"]);
    assert!(
        check.contains(&format!("master pid {master_pid}")),
        "{check}"
    );
    let again = ok(&home, &sshd, &["server", "connect", "gate"]);
    assert!(again.contains("already connected"), "{again}");

    // With the listener gone, only the control master can carry a new session.
    sshd.stop_listening();
    assert_eq!(
        ok(&home, &sshd, &["ssh", "gate", "echo", "reused"]),
        "reused\n"
    );

    let out = ok(&home, &sshd, &["server", "disconnect", "gate"]);
    assert!(out.contains("disconnected gate"), "{out}");
    assert!(!socket.exists(), "socket left behind");
    assert!(!ssh_check(&sshd, &socket));
    assert!(wait_until(Duration::from_secs(5), || {
        !homeboy_e2e::pid_alive(master_pid)
    }));
    let out = homeboy(&home, &sshd, &["server", "connect", "gate", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let out = ok(&home, &sshd, &["server", "disconnect", "gate"]);
    assert!(out.contains("was not connected"), "{out}");
}

#[test]
fn runner_connect_forwards_to_the_loopback_daemon_only() {
    let sshd = Sshd::start();
    let home = Home::new();
    sshd.add_server(&home, "runner-1");
    let daemon = home.start_daemon(); // the "remote" daemon: this machine is the runner here
    let daemon_addr = daemon.trim_start_matches("http://").to_string();
    let port = daemon_addr.rsplit_once(':').unwrap().1.to_string();
    let http = Http::new();

    let out = homeboy(
        &home,
        &sshd,
        &[
            "runner",
            "connect",
            "runner-1",
            "--remote-addr",
            &daemon_addr,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "not a runner yet: {}",
        describe(&out)
    );
    ok(&home, &sshd, &["runner", "enable", "runner-1"]);
    for remote in [
        "0.0.0.0:7421",
        "10.1.2.3:7421",
        "example.com:7421",
        "[::]:7421",
    ] {
        let out = homeboy(
            &home,
            &sshd,
            &["runner", "connect", "runner-1", "--remote-addr", remote],
        );
        assert_eq!(out.status.code(), Some(2), "{remote}: {}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("must be loopback"));
    }
    let out = homeboy(
        &home,
        &sshd,
        &[
            "runner",
            "connect",
            "runner-1",
            "--remote-addr",
            &daemon_addr,
            "--local-addr",
            "0.0.0.0:9",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    // Plain key auth: the forward is a foreground ssh (this process becomes it). The same port on [::1]
    // keeps the daemon's Host check satisfied.
    let local = format!("[::1]:{port}");
    let mut forward = home
        .command("homeboy")
        .env("HOMEBOY_SSH_CONFIG", sshd.ssh_config())
        .args([
            "runner",
            "connect",
            "runner-1",
            "--remote-addr",
            &daemon_addr,
            "--local-addr",
            &local,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{local}/health");
    let reached = wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(local.as_str()).is_ok()
    });
    assert!(
        reached,
        "the forward never listened on {local}\n{}",
        sshd.log()
    );
    let health = http.get(&url);
    assert_eq!(
        health.status,
        200,
        "{}",
        String::from_utf8_lossy(&health.body)
    );
    assert_eq!(health.json()["data"]["status"], "ok");
    let _ = forward.kill();
    let _ = forward.wait();
    assert!(wait_until(Duration::from_secs(5), || {
        std::net::TcpStream::connect(local.as_str()).is_err()
    }));

    // Managed session: the forward joins the control master and the command returns.
    let socket = manage(&home, &sshd, "runner-1");
    let connect = home
        .command("homeboy")
        .env("HOMEBOY_SSH_CONFIG", sshd.ssh_config())
        .args(["server", "connect", "runner-1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(connect.status.success(), "{}", describe(&connect));
    let attached = homeboy(
        &home,
        &sshd,
        &[
            "runner",
            "connect",
            "runner-1",
            "--remote-addr",
            &daemon_addr,
            "--local-addr",
            &local,
            "--format",
            "json",
        ],
    );
    assert!(attached.status.success(), "{}", describe(&attached));
    let attached: serde_json::Value = serde_json::from_slice(&attached.stdout).unwrap();
    assert_eq!(attached["outcome"], "attached");
    assert_eq!(attached["local_url"], format!("http://{local}"));
    let health = http.get(&url);
    assert_eq!(
        health.status,
        200,
        "{}",
        String::from_utf8_lossy(&health.body)
    );
    ok(
        &home,
        &sshd,
        &[
            "runner",
            "connect",
            "runner-1",
            "--remote-addr",
            &daemon_addr,
            "--local-addr",
            &local,
            "--cancel",
        ],
    );
    assert!(wait_until(Duration::from_secs(5), || {
        std::net::TcpStream::connect(local.as_str()).is_err()
    }));
    ok(&home, &sshd, &["server", "disconnect", "runner-1"]);
    assert!(!socket.exists());
}
