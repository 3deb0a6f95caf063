//! `homeboy server passphrase` and the askpass helper against a real Secret Service: a private
//! `gnome-keyring-daemon` on the bus of a `dbus-run-session`, a passphrase-protected key, and the real
//! sshd of `support::Sshd`. Every homeboy runs in a new session (`setsid`), so there is no terminal for
//! ssh to prompt on: only the keychain can unlock the key (for `homeboy ssh`, a runner forward and a
//! control master).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::Duration;

use homeboy_e2e::pty::{self, session};
use homeboy_e2e::{Bounded, Home, banner, describe, haystack, reap, wait_exit, wait_until};
use serde_json::json;

use super::support::{Sshd, require_program, run};

const PASSPHRASE: &str = "correct horse battery staple 7341";

/// A Secret Service on a private session bus, for as long as this value lives.
struct SecretService {
    child: Child,
    keep_open: Option<ChildStdin>,
    dir: tempfile::TempDir,
    /// The bus address clients need (`DBUS_SESSION_BUS_ADDRESS`).
    bus: String,
}

impl SecretService {
    /// `dbus-run-session` running a shell that unlocks a fresh login keyring in gnome-keyring-daemon,
    /// waits (bounded) until `org.freedesktop.secrets` is on the bus, prints the address, and keeps the
    /// session up until its stdin closes.
    fn start() -> SecretService {
        let dbus_run_session = require_program("dbus-run-session", "dbus");
        require_program("dbus-send", "dbus");
        require_program("gnome-keyring-daemon", "gnome-keyring");
        let dir = tempfile::Builder::new()
            .prefix("homeboy-keyring-")
            .tempdir()
            .unwrap();
        let runtime = dir.path().join("run");
        std::fs::create_dir_all(&runtime).unwrap();
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let script = r#"
printf %s "$1" | gnome-keyring-daemon --unlock --components=secrets >/dev/null || exit 3
i=0
until dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true'; do
    i=$((i + 1))
    [ "$i" -gt 400 ] && { echo "no Secret Service on the bus" >&2; exit 4; }
    sleep 0.025
done
echo "bus $DBUS_SESSION_BUS_ADDRESS"
exec cat >/dev/null
"#;
        let mut child = Command::new(dbus_run_session)
            .args([
                "--",
                "sh",
                "-c",
                script,
                "keyring",
                "login-keyring-password",
            ])
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("DISPLAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-run-session");
        let keep_open = child.stdin.take();
        let line = banner(&mut child, Duration::from_secs(30), "the Secret Service");
        let bus = line
            .trim()
            .strip_prefix("bus ")
            .unwrap_or_else(|| panic!("no bus address from the session: {line:?}"))
            .to_string();
        SecretService {
            child,
            keep_open,
            dir,
            bus,
        }
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        // Closing stdin ends the session; the bus goes, and gnome-keyring-daemon with it.
        drop(self.keep_open.take());
        let ended = homeboy_e2e::wait_until(Duration::from_secs(10), || {
            self.child.try_wait().ok().flatten().is_some()
        });
        if !ended {
            reap(&mut self.child);
        }
        // Anything of this keyring's that outlived its bus.
        let needle = format!("HOME={}", self.dir.path().display());
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            if environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                let _ = Command::new("kill")
                    .arg(entry.file_name())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// `homeboy <args>` in a new session (no controlling terminal), with the sshd's interactive client config
/// and `bus` as the session bus (`disabled:` for none).
fn homeboy(home: &Home, config: &Path, bus: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = detached(home, config, bus, args);
    let Some(input) = stdin else {
        return cmd.output_bounded().expect("run homeboy");
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run homeboy");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    wait_exit(&mut child, Duration::from_secs(60));
    child.wait_with_output().unwrap()
}

/// The command line of [`homeboy`], not started.
fn detached(home: &Home, config: &Path, bus: &str, args: &[&str]) -> Command {
    let base = home.command("homeboy");
    let mut cmd = Command::new(require_program("setsid", "util-linux"));
    cmd.arg("--wait").arg(base.get_program());
    for (key, value) in base.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.env("HOMEBOY_SSH_CONFIG", config)
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .args(args);
    cmd
}

/// A key locked with [`PASSPHRASE`] that the sshd accepts, and a client config that lets ssh ask for it
/// (no batch mode; host keys still checked strictly).
fn locked_key(sshd: &Sshd) -> (PathBuf, PathBuf) {
    let keygen = require_program("ssh-keygen", "openssh-client");
    let key = sshd.dir().join("id_locked");
    let out = run(
        &keygen,
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            PASSPHRASE,
            "-C",
            "homeboy-locked",
            "-f",
            key.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "ssh-keygen: {}", describe(&out));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut authorized = std::fs::OpenOptions::new()
        .append(true)
        .open(sshd.dir().join("authorized_keys"))
        .unwrap();
    authorized.write_all(public.as_bytes()).unwrap();
    let config = sshd.dir().join("ssh_config_askpass");
    std::fs::write(
        &config,
        format!(
            "UserKnownHostsFile {}\nGlobalKnownHostsFile /dev/null\nStrictHostKeyChecking yes\n\
             IdentitiesOnly yes\nPreferredAuthentications publickey\nNumberOfPasswordPrompts 1\n\
             LogLevel ERROR\n",
            sshd.dir().join("known_hosts").display()
        ),
    )
    .unwrap();
    (key, config)
}

#[test]
fn a_keychain_passphrase_unlocks_the_key_without_a_terminal() {
    let sshd = Sshd::start();
    let (key, config) = locked_key(&sshd);
    let home = Home::new();
    home.homeboy_ok(&[
        "server",
        "add",
        "lab",
        "--host",
        "127.0.0.1",
        "--user",
        &sshd.user,
        "--port",
        &sshd.port.to_string(),
        "--identity-file",
        key.to_str().unwrap(),
    ]);
    let service = SecretService::start();
    let bus = service.bus.as_str();
    let outputs = std::cell::RefCell::new(Vec::new());
    let ok = |args: &[&str], stdin: Option<&str>| {
        let out = homeboy(&home, &config, bus, args, stdin);
        assert!(
            out.status.success(),
            "homeboy {args:?}: {}\nsshd:\n{}",
            describe(&out),
            sshd.log()
        );
        outputs.borrow_mut().push(describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let status: serde_json::Value = serde_json::from_str(&ok(
        &["server", "passphrase", "status", "lab", "--format", "json"],
        None,
    ))
    .unwrap();
    assert_eq!(status, json!({"server": "lab", "passphrase": "not_stored"}));
    // The key is really locked: with no terminal and nothing in the keychain, ssh cannot use it.
    let locked = homeboy(&home, &config, bus, &["ssh", "lab", "true"], None);
    assert_eq!(locked.status.code(), Some(255), "{}", describe(&locked));

    let set = ok(
        &["server", "passphrase", "set", "lab", "--stdin"],
        Some(&format!("{PASSPHRASE}\n")),
    );
    assert!(set.contains("stored in the keychain"), "{set}");
    let status: serde_json::Value = serde_json::from_str(&ok(
        &["server", "passphrase", "status", "lab", "--format", "json"],
        None,
    ))
    .unwrap();
    assert_eq!(status["passphrase"], "stored");

    // `homeboy ssh`: ssh asks homeboy (its SSH_ASKPASS), which answers from the keychain.
    assert_eq!(ok(&["ssh", "lab", "true"], None), "");
    assert_eq!(ok(&["ssh", "lab", "echo", "unlocked"], None), "unlocked\n");

    // A runner forward (a foreground ssh -L) is unlocked the same way: the daemon answers through it.
    ok(&["runner", "enable", "lab"], None);
    let daemon = home.start_daemon();
    let daemon_addr = daemon.trim_start_matches("http://").to_string();
    let port = daemon_addr.rsplit_once(':').unwrap().1;
    // The same port on [::1] keeps the daemon's Host check satisfied.
    let local = format!("[::1]:{port}");
    let mut forward = detached(
        &home,
        &config,
        bus,
        &[
            "runner",
            "connect",
            "lab",
            "--remote-addr",
            &daemon_addr,
            "--local-addr",
            &local,
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("run homeboy runner connect");
    let reached = homeboy_e2e::wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(local.as_str()).is_ok()
            || forward.try_wait().ok().flatten().is_some()
    });
    let health = homeboy_e2e::Http::new().get(&format!("http://{local}/health"));
    reap(&mut forward);
    assert!(reached, "the forward never listened\nsshd:\n{}", sshd.log());
    assert_eq!(
        health.status,
        200,
        "through the forward\nsshd:\n{}",
        sshd.log()
    );
    home.homeboy_ok(&["daemon", "stop"]);

    // A control master of a managed session is unlocked the same way.
    let pattern = sshd.dir().join("cm/%h-%p-%r");
    let patch = json!({"auth": {"mode": "key_plus_password_controlmaster",
                                "control_path": pattern.to_str().unwrap(), "persist": "1m"}});
    ok(
        &["server", "set", "lab", "--json", &patch.to_string()],
        None,
    );
    let connected = ok(&["server", "connect", "lab", "--format", "json"], None);
    let connected: serde_json::Value = serde_json::from_str(&connected).unwrap();
    assert_eq!(connected["status"]["connected"], true, "{connected}");
    ok(&["server", "disconnect", "lab"], None);

    // Nothing homeboy printed or wrote holds the passphrase.
    outputs
        .borrow_mut()
        .push(haystack(&home.config_dir().join("servers/lab.json")));
    for out in outputs.borrow().iter() {
        assert!(!out.contains(PASSPHRASE), "the passphrase leaked:\n{out}");
    }

    let cleared = ok(&["server", "passphrase", "clear", "lab"], None);
    assert!(cleared.contains("removed from the keychain"), "{cleared}");
    let again = homeboy(&home, &config, bus, &["ssh", "lab", "true"], None);
    assert_eq!(again.status.code(), Some(255), "{}", describe(&again));

    // Without a keychain: the passphrase commands say so, and ssh is left to its own prompt.
    let out = homeboy(
        &home,
        &config,
        "disabled:",
        &["server", "passphrase", "status", "lab"],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("keychain"),
        "{}",
        describe(&out)
    );
    let out = homeboy(&home, &config, "disabled:", &["ssh", "lab", "true"], None);
    assert_eq!(out.status.code(), Some(255), "{}", describe(&out));
}

#[test]
fn the_terminal_prompt_does_not_echo_and_a_mismatch_stores_nothing() {
    let home = Home::new();
    home.homeboy_ok(&[
        "server",
        "add",
        "lab",
        "--host",
        "127.0.0.1",
        "--user",
        "nobody",
    ]);
    let service = SecretService::start();
    // `server passphrase set lab` at a terminal, typing each answer once its prompt is shown.
    let set = |first: &str, again: &str, name: &str| {
        let mut cmd = home.command("homeboy");
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &service.bus).args([
            "server",
            "passphrase",
            "set",
            "lab",
        ]);
        let transcript = home.root().join(name);
        let mut script = pty::spawn(&cmd, &transcript, Stdio::piped());
        let mut typing = script.stdin.take().unwrap();
        let script_pid = script.id();
        let asked_for = |prompt: &str| {
            session(&transcript).contains(prompt)
                && pty::children(script_pid)
                    .first()
                    .is_some_and(|&homeboy| pty::echoes(homeboy) == Some(false))
        };
        for (prompt, answer) in [
            ("Passphrase of the SSH key of lab: ", first),
            ("Again: ", again),
        ] {
            // Typed once the prompt is shown and the terminal no longer echoes (as a person would, only
            // faster: typed before that, the terminal itself would echo it).
            let asked = wait_until(Duration::from_secs(30), || asked_for(prompt));
            assert!(
                asked,
                "no {prompt:?} on a silent terminal:\n{}",
                session(&transcript)
            );
            typing.write_all(format!("{answer}\n").as_bytes()).unwrap();
        }
        let status = wait_exit(&mut script, Duration::from_secs(60));
        drop(typing);
        (status, session(&transcript))
    };
    let stored = || {
        let out = home
            .command("homeboy")
            .env("DBUS_SESSION_BUS_ADDRESS", &service.bus)
            .args(["server", "passphrase", "status", "lab", "--format", "json"])
            .output_bounded()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["passphrase"].clone()
    };

    let (status, shown) = set(PASSPHRASE, "something else entirely", "mismatch.txt");
    assert!(!status.success(), "{shown}");
    assert!(shown.contains("differ"), "{shown}");
    assert!(!shown.contains(PASSPHRASE), "echoed:\n{shown}");
    assert_eq!(stored(), "not_stored");

    let (status, shown) = set(PASSPHRASE, PASSPHRASE, "set.txt");
    assert!(status.success(), "{shown}");
    assert!(shown.contains("stored in the keychain"), "{shown}");
    assert!(!shown.contains(PASSPHRASE), "echoed:\n{shown}");
    assert_eq!(stored(), "stored");
}
