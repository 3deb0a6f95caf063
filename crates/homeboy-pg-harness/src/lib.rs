//! Real PostgreSQL clusters for tests and benchmarks, from the machine's own PostgreSQL (Debian's
//! `postgresql` package): `initdb` into a temp dir, `pg_ctl start` listening on 127.0.0.1 and a free port
//! with its socket in the temp dir, one database per test. It owns nothing about homeboy's schema.
//!
//! `initdb` refuses root, so when the tests run as root (CI does) every server program runs as the
//! `postgres` user through `setpriv`, and the temp dir is handed to that user. The superuser is
//! [`SUPERUSER`] with a random password; TCP connections need it (scram-sha-256), the socket trusts local
//! users (the harness's own `createdb` and `psql`).
//!
//! [`Cluster::shared`] is the one cluster of a test binary, started at first use. A process cannot run
//! destructors of statics, so every cluster has a **watchdog**: a `sh` in its own session that waits for
//! EOF on a pipe only this process holds, then stops the server (`-m immediate`) and removes the temp dir.
//! When the process ends for any reason — success, panic, `kill -9` — the pipe closes and the cluster goes
//! with it. A cluster owned by a value is stopped when the value is dropped.
//!
//! A missing PostgreSQL is an error that says what to install, never a skip.

mod error;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub use error::HarnessError;

/// The superuser of every harness cluster.
pub const SUPERUSER: &str = "homeboy";

/// Settings of the shared test cluster: durability that survives a killed server process (every commit
/// is written to the kernel; `fsync=off` only gives up surviving a machine crash) and room for many
/// store instances at once.
pub const TEST_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "400"),
    ("shared_buffers", "64MB"),
];

/// A running PostgreSQL cluster in a temp dir.
pub struct Cluster {
    bin: PathBuf,
    /// The temp dir: `data/`, `sock/`, `server.log`.
    dir: PathBuf,
    port: Mutex<u16>,
    /// `(uid, gid)` the server programs run as, when this process is root.
    run_as: Option<(u32, u32)>,
    password: String,
    databases: AtomicU64,
    watchdog: Mutex<Option<Child>>,
}

static SHARED: OnceLock<Cluster> = OnceLock::new();

impl Cluster {
    /// The cluster of this test binary (with [`TEST_SETTINGS`]), started at first use and stopped when the
    /// process exits. Panics with the reason (for example, what to install) when it cannot start: a test
    /// that needs PostgreSQL fails, it is never skipped.
    pub fn shared() -> &'static Cluster {
        SHARED.get_or_init(|| {
            Cluster::start(TEST_SETTINGS)
                .unwrap_or_else(|e| panic!("cannot start the test PostgreSQL cluster: {e}"))
        })
    }

    /// Initialises and starts a new cluster with `settings` added to `postgresql.conf` (the defaults are
    /// PostgreSQL's: `fsync=on`, `synchronous_commit=on`).
    pub fn start(settings: &[(&str, &str)]) -> Result<Cluster, HarnessError> {
        let bin = find_bindir()?;
        let run_as = if rustix::process::geteuid().is_root() {
            Some(postgres_user().ok_or(HarnessError::NoUnprivilegedUser)?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("homeboy-pg-")
            .tempdir()
            .map_err(|e| HarnessError::io("create the cluster's temp dir", e))?
            .keep();
        let mut password = [0u8; 16];
        getrandom::fill(&mut password).map_err(|e| {
            HarnessError::io(
                "draw a random password",
                std::io::Error::other(e.to_string()),
            )
        })?;
        let cluster = Cluster {
            bin,
            dir,
            port: Mutex::new(0),
            run_as,
            password: hex::encode(password),
            databases: AtomicU64::new(0),
            watchdog: Mutex::new(None),
        };
        // From here on, the watchdog removes the dir whatever happens.
        cluster.spawn_watchdog()?;
        cluster.init(settings)?;
        cluster.start_on_a_free_port()?;
        Ok(cluster)
    }

    /// The TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        *self.port.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The loopback address the cluster listens on.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The superuser's password (TCP connections need it).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `postgres://homeboy@127.0.0.1:<port>/<database>`, without the password.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@{}:{}/{database}",
            self.host(),
            self.port()
        )
    }

    /// Writes the password to `path` with mode 0600 (a `--store-password-file`).
    pub fn write_password_file(&self, path: &Path) -> Result<(), HarnessError> {
        write_private(path, &format!("{}\n", self.password))
    }

    /// A server program of this PostgreSQL (`pgbench`, `psql`, ...).
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Creates a fresh, empty database named after `hint` (made unique) and returns its name.
    pub fn create_database(&self, hint: &str) -> Result<String, HarnessError> {
        let mut name: String = hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        name = format!(
            "t{}_{name}",
            self.databases.fetch_add(1, Ordering::SeqCst) + 1
        );
        self.client("createdb", &[&name])?;
        Ok(name)
    }

    /// Runs `sql` in `database` with `psql` over the socket and returns its unaligned output.
    pub fn sql(&self, database: &str, sql: &str) -> Result<String, HarnessError> {
        self.client(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                database,
                "-c",
                sql,
            ],
        )
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: like a crash; recovery runs at the next start).
    pub fn stop(&self) -> Result<(), HarnessError> {
        let data = self.data_dir();
        self.server(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
        )
        .map(drop)
    }

    /// Starts a stopped server again on the same port.
    pub fn start_again(&self) -> Result<(), HarnessError> {
        self.try_start(self.port())
    }

    /// `pg_ctl restart -m immediate`: a crash and a restart on the same port.
    pub fn restart(&self) -> Result<(), HarnessError> {
        self.stop()?;
        self.start_again()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn init(&self, settings: &[(&str, &str)]) -> Result<(), HarnessError> {
        std::fs::create_dir(self.socket_dir())
            .map_err(|e| HarnessError::io("create the socket dir", e))?;
        let pwfile = self.dir.join("pwfile");
        write_private(&pwfile, &format!("{}\n", self.password))?;
        self.hand_over(&[&self.dir, &self.dir.join("sock"), &pwfile])?;
        let data = self.data_dir();
        let pwfile_arg = format!("--pwfile={}", path_str(&pwfile));
        self.server(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                SUPERUSER,
                &pwfile_arg,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        let _ = std::fs::remove_file(&pwfile);
        let mut conf = format!(
            "\n# homeboy-pg-harness\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n",
            path_str(&self.socket_dir())
        );
        for (key, value) in settings {
            conf.push_str(&format!("{key} = '{value}'\n"));
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .map_err(|e| HarnessError::io("open postgresql.conf", e))?;
        file.write_all(conf.as_bytes())
            .map_err(|e| HarnessError::io("write postgresql.conf", e))
    }

    fn start_on_a_free_port(&self) -> Result<(), HarnessError> {
        let mut last = None;
        for _ in 0..8 {
            let port = free_port()?;
            match self.try_start(port) {
                Ok(()) => return Ok(()),
                // Someone else took the port between our probe and the server's bind: try another.
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(HarnessError::NotInstalled))
    }

    fn try_start(&self, port: u16) -> Result<(), HarnessError> {
        *self.port.lock().unwrap_or_else(|e| e.into_inner()) = port;
        let data = self.data_dir();
        let log = self.dir.join("server.log");
        let port_option = format!("-p {port}");
        let started = self.server(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &port_option,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        started.map(drop).map_err(|_| HarnessError::Start {
            dir: self.dir.clone(),
            log_tail: tail(&log),
        })
    }

    /// Runs a server program (as the unprivileged user when we are root).
    fn server(&self, program: &str, args: &[&str]) -> Result<String, HarnessError> {
        let exe = self.program(program);
        let mut cmd = match self.run_as {
            Some((uid, gid)) => {
                let mut cmd = Command::new(setpriv()?);
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(&exe);
                cmd
            }
            None => Command::new(&exe),
        };
        cmd.args(args).current_dir(&self.dir);
        run(cmd, program)
    }

    /// Runs a client program over the socket as the superuser.
    fn client(&self, program: &str, args: &[&str]) -> Result<String, HarnessError> {
        let mut cmd = Command::new(self.program(program));
        cmd.arg("-h")
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port().to_string())
            .arg("-U")
            .arg(SUPERUSER)
            .args(args);
        run(cmd, program)
    }

    /// Gives `paths` to the unprivileged user (when we are root).
    fn hand_over(&self, paths: &[&Path]) -> Result<(), HarnessError> {
        if let Some((uid, gid)) = self.run_as {
            for path in paths {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .map_err(|e| HarnessError::io(format!("chown {}", path.display()), e))?;
            }
        }
        Ok(())
    }

    /// The watchdog: `sh -c 'cat >/dev/null; <stop>; rm -rf <dir>'` in its own session, its stdin a pipe
    /// this process alone holds (the parent's end is close-on-exec).
    fn spawn_watchdog(&self) -> Result<(), HarnessError> {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(r#"cat >/dev/null; "$@" >/dev/null 2>&1; rm -rf -- "$0""#)
            .arg(&self.dir);
        if let Some((uid, gid)) = self.run_as {
            cmd.arg(setpriv()?)
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--");
        }
        cmd.arg(self.program("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        clean_env(&mut cmd);
        homeboy_process::new_session(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| HarnessError::io("start the cluster's watchdog", e))?;
        *self.watchdog.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop();
        if let Some(mut watchdog) = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            drop(watchdog.stdin.take()); // EOF: the watchdog stops the (stopped) server and removes the dir.
            let _ = homeboy_process::wait_until(Duration::from_secs(10), || {
                watchdog.try_wait().ok().flatten().is_some()
            });
        }
    }
}

/// PostgreSQL's server programs: `$HOMEBOY_PG_BINDIR`, the newest `/usr/lib/postgresql/<v>/bin` (Debian keeps
/// them off PATH), `pg_config --bindir`, or the directory of `initdb` on PATH.
fn find_bindir() -> Result<PathBuf, HarnessError> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("HOMEBOY_PG_BINDIR").map(PathBuf::from) {
        return if has_initdb(&dir) {
            Ok(dir)
        } else {
            Err(HarnessError::NotInstalled)
        };
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_initdb(&bin).then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Ok(bin);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_initdb(&dir) {
            return Ok(dir);
        }
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| has_initdb(dir))
        .ok_or(HarnessError::NotInstalled)
}

/// `(uid, gid)` of the `postgres` user.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres") && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

fn setpriv() -> Result<PathBuf, HarnessError> {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            HarnessError::io(
                "find setpriv (util-linux) to run PostgreSQL as the postgres user",
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16, HarnessError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError::io("find a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| HarnessError::io("find a free port", e))
}

/// Client settings of the caller's environment must not leak into the harness's programs.
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PG")) {
            cmd.env_remove(key);
        }
    }
    cmd.env("LC_ALL", "C");
}

fn run(mut cmd: Command, program: &str) -> Result<String, HarnessError> {
    clean_env(&mut cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::io(format!("run {program}"), e))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    Err(HarnessError::Command {
        program: program.to_string(),
        status: out.status.to_string(),
        output: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr))
            .trim()
            .to_string(),
    })
}

fn write_private(path: &Path, content: &str) -> Result<(), HarnessError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(content.as_bytes()))
        .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

/// The last lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_serves_databases_and_survives_an_immediate_restart() {
        let cluster = Cluster::start(TEST_SETTINGS).unwrap();
        let dir = cluster.dir.clone();
        let db = cluster.create_database("harness smoke").unwrap();
        assert!(db.ends_with("_harness_smoke"), "{db}");
        cluster
            .sql(&db, "CREATE TABLE t (n int); INSERT INTO t VALUES (42);")
            .unwrap();
        cluster.restart().unwrap();
        assert_eq!(cluster.sql(&db, "SELECT n FROM t").unwrap().trim(), "42");
        let listening = std::net::TcpStream::connect(("127.0.0.1", cluster.port()));
        assert!(listening.is_ok(), "the server listens on 127.0.0.1");
        drop(cluster);
        assert!(!dir.exists(), "the temp dir goes with the cluster");
    }
}
