//! Test fixtures for the server tests: finding the Debian programs they drive (with a clear message naming
//! the package when one is missing), a real OpenSSH server on 127.0.0.1 with a throwaway host key and an
//! authorized test key, and nginx inside a minimal wrapper config: checked (`nginx -t`) or run in front of a
//! test ([`run_nginx`]).
//!
//! The ssh client side gets its test-only settings (a prepared known_hosts, batch mode) from an ssh_config
//! file passed through `HOMEBOY_SSH_CONFIG`; host key checking stays strict.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use homeboy_e2e::{Home, describe, wait_until};

/// The path of `program` (PATH, then the sbin directories root's PATH may lack), or a panic that says which
/// Debian package to install.
pub fn require_program(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "this test needs `{program}`: install it with `apt-get install -y {package}` (`.ci/run` does)"
            )
        })
}

/// Runs `program args` to completion, capturing its output.
pub fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// The pids whose parent is `pid` (from `/proc`).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// `pid` and all its descendants, parents first.
fn tree_of(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let children = children_of(tree[i]);
        tree.extend(children);
        i += 1;
    }
    tree
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// A real `sshd` on 127.0.0.1 that accepts the current user with a throwaway key.
pub struct Sshd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    listener_pid: u32,
    /// Connection processes left behind by `stop_listening` with their start times, killed on drop while
    /// they are still those processes (a pid that exited since may be anyone's by then).
    orphans: Vec<(u32, Option<u64>)>,
    log: Arc<Mutex<String>>,
    pub port: u16,
    pub user: String,
}

impl Sshd {
    /// Generates a host key and a client key, writes an sshd config and starts `sshd -D -e` on a free port.
    pub fn start() -> Sshd {
        let sshd = require_program("sshd", "openssh-server");
        let keygen = require_program("ssh-keygen", "openssh-client");
        require_program("ssh", "openssh-client");
        let dir = tempfile::Builder::new()
            .prefix("homeboy-sshd-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        for key in ["host_key", "id_test"] {
            let path = d.join(key);
            let out = run(
                &keygen,
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "homeboy-test",
                    "-f",
                    path.to_str().unwrap(),
                ],
            );
            assert!(out.status.success(), "ssh-keygen: {}", describe(&out));
        }
        std::fs::copy(d.join("id_test.pub"), d.join("authorized_keys")).unwrap();
        let user = current_user();
        ensure_privsep_dir();

        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            std::fs::write(
                d.join("sshd_config"),
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {auth}\n\
                     PidFile none\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                     AllowUsers {user}\nPrintMotd no\nPrintLastLog no\nAllowTcpForwarding local\n",
                    host_key = d.join("host_key").display(),
                    auth = d.join("authorized_keys").display(),
                ),
            )
            .unwrap();
            let host_key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
            let mut fields = host_key.split_whitespace();
            let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
            std::fs::write(
                d.join("known_hosts"),
                format!("[127.0.0.1]:{port} {kind} {key}\n"),
            )
            .unwrap();
            std::fs::write(
                d.join("ssh_config"),
                format!(
                    "# Test-only client settings: a prepared known_hosts (checking stays strict), no prompts.\n\
                     UserKnownHostsFile {known}\nGlobalKnownHostsFile /dev/null\nStrictHostKeyChecking yes\n\
                     BatchMode yes\nIdentitiesOnly yes\nLogLevel ERROR\n",
                    known = d.join("known_hosts").display()
                ),
            )
            .unwrap();

            let mut child = Command::new(&sshd)
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", sshd.display()));
            let log = Arc::new(Mutex::new(String::new()));
            let stderr = child.stderr.take().unwrap();
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = sink.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
            let ready = wait_until(Duration::from_secs(10), || {
                log.lock().unwrap().contains("Server listening")
                    || child.try_wait().ok().flatten().is_some()
            });
            if ready && child.try_wait().ok().flatten().is_none() {
                let listener_pid = child.id();
                return Sshd {
                    dir,
                    child: Some(child),
                    listener_pid,
                    orphans: Vec::new(),
                    log,
                    port,
                    user,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_error = log.lock().unwrap().clone();
        }
        panic!("sshd did not start:\n{last_error}");
    }

    /// The client private key that sshd accepts.
    pub fn identity_file(&self) -> PathBuf {
        self.dir.path().join("id_test")
    }

    /// The ssh_config for `HOMEBOY_SSH_CONFIG`.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What sshd logged so far (for assertion messages).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Adds server `id` for this sshd to `home` (key auth, this user).
    pub fn add_server(&self, home: &Home, id: &str) {
        let out = home
            .command("homeboy")
            .args([
                "server",
                "add",
                id,
                "--host",
                "127.0.0.1",
                "--user",
                &self.user,
            ])
            .args(["--port", &self.port.to_string()])
            .args(["--identity-file", self.identity_file().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "server add: {}", describe(&out));
    }

    /// Stops accepting new connections (the listener exits) while established sessions, and with them any
    /// control master, stay up.
    pub fn stop_listening(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.orphans = tree_of(self.listener_pid)
                .split_off(1)
                .into_iter()
                .map(|pid| (pid, homeboy_process::start_time(pid)))
                .collect();
            kill(self.listener_pid);
            let _ = child.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Every connection process too: a control master whose session dies exits and removes its socket.
        let mut pids: Vec<u32> = self
            .orphans
            .iter()
            .filter(|(pid, started)| homeboy_process::same_process_alive(*pid, *started))
            .map(|(pid, _)| *pid)
            .collect();
        if self.child.is_some() {
            pids.extend(tree_of(self.listener_pid));
        }
        for pid in pids.iter().rev() {
            kill(*pid);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// sshd running as root wants its privilege separation directory; the Debian package creates it at boot.
fn ensure_privsep_dir() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if is_root && !Path::new("/run/sshd").is_dir() {
        std::fs::create_dir_all("/run/sshd")
            .expect("sshd needs /run/sshd (mkdir -p /run/sshd as root; `.ci/run` does it)");
    }
}

/// Runs `nginx -t` on `site` inside a minimal wrapper config in `dir`; returns nginx's output.
pub fn nginx_test(dir: &Path, site: &str) -> Output {
    let nginx = require_program("nginx", "nginx-light");
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let wrapper = dir.join("nginx.conf");
    std::fs::write(
        &wrapper,
        format!(
            "pid {pid};\nerror_log stderr;\nevents {{}}\nhttp {{\n    access_log off;\n    \
             client_body_temp_path {tmp}/body;\n    proxy_temp_path {tmp}/proxy;\n    include {site};\n}}\n",
            pid = dir.join("nginx.pid").display(),
            tmp = dir.display(),
            site = dir.join("site.conf").display()
        ),
    )
    .unwrap();
    Command::new(nginx)
        .args(["-t", "-e", "stderr", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&wrapper)
        .output()
        .expect("run nginx -t")
}

/// A process stopped on drop: SIGTERM (an nginx master then stops its workers; SIGKILL would orphan
/// them), SIGKILL if it has not exited within 5 s.
pub struct StopOnDrop(pub Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // Once reaped, its pid may be anyone's.
        if self.0.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        if !wait_until(Duration::from_secs(5), || {
            self.0.try_wait().ok().flatten().is_some()
        }) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs nginx with `site` inside a minimal wrapper config in `dir` (its pid, temp paths and log there) and
/// waits until it accepts on 127.0.0.1:`port`.
pub fn run_nginx(dir: &Path, site: &str, port: u16) -> StopOnDrop {
    let nginx = require_program("nginx", "nginx-light");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("site.conf"), site).unwrap();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "pid {dir}/nginx.pid;\nerror_log stderr;\nworker_processes 1;\nevents {{}}\nhttp {{\n    access_log off;\n    \
             client_body_temp_path {dir}/body;\n    proxy_temp_path {dir}/proxy;\n    include {dir}/site.conf;\n}}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    // nginx workers run as an unprivileged user when started as root; they need to reach the temp dirs.
    let _ = Command::new("chmod").arg("755").arg(dir).status();
    let log = dir.join("nginx.log");
    let child = Command::new(nginx)
        .args(["-e", "stderr", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        // Never hand nginx (or its workers) the test's own output pipes.
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start nginx");
    let running = StopOnDrop(child);
    assert!(
        wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }),
        "nginx did not start: {}\n{site}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    running
}

/// A self-signed certificate and key for `name` in `dir` (openssl), for configs that load them.
pub fn test_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let openssl = require_program("openssl", "openssl");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", &format!("/CN={name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {}", describe(&out));
    (cert, key)
}
