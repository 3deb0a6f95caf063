//! Managed SSH sessions (`auth.mode = key_plus_password_controlmaster`): start an ssh control master with the
//! operator at the terminal for the password, ask whether it runs (`ssh -O check`), stop it (`ssh -O exit`).
//!
//! homeboy never sees the password: the master's ssh talks to the terminal directly, then goes to the
//! background (`-f`) holding the authenticated connection, and later ssh invocations reuse it through the
//! control socket. (A key passphrase kept in the OS keychain reaches the master through homeboy's askpass
//! helper; see [`crate::askpass`].) A control socket that no master listens on any more — left by a reboot
//! or a crash — is removed before a new master starts, since ssh refuses to start one over it. Where that socket is comes from ssh itself (`ssh -G`), so `~` and `%h/%p/%r` mean exactly
//! what they mean to ssh.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use homeboy_config::servers::{Server, ServerAuth};
use serde::Serialize;

use crate::SshError;
use crate::command::{Ssh, option};

/// How long `disconnect` waits for the master to remove its socket.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Whether a server's control master runs, and where its socket is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionStatus {
    pub server: String,
    pub destination: String,
    /// The control socket, as ssh expands it.
    pub control_path: PathBuf,
    pub connected: bool,
    /// The master's pid, as ssh reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_pid: Option<u32>,
}

/// What `connect` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectOutcome {
    /// A new master was started.
    Connected,
    /// A master was already running; nothing was started.
    AlreadyConnected,
}

/// What `disconnect` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectOutcome {
    /// The master was told to exit and its socket is gone.
    Disconnected,
    /// No master was running.
    NotConnected,
}

impl Ssh {
    /// The managed-session settings of `server`, or `NoManagedSession`.
    pub fn managed<'a>(&self, server: &'a Server) -> Result<&'a ServerAuth, SshError> {
        server
            .managed_session()
            .ok_or_else(|| SshError::NoManagedSession {
                id: server.id.clone(),
            })
    }

    /// The control socket path of `server`'s managed session, expanded by ssh (`ssh -G`).
    pub fn control_socket(&self, server: &Server) -> Result<PathBuf, SshError> {
        self.managed(server)?;
        let out = self.run(server, &["-G".into()], Stdio::null())?;
        if !out.status.success() {
            return Err(failed(server, "-G", &out));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = stdout
            .lines()
            .find_map(|line| line.strip_prefix("controlpath "))
            .unwrap_or_default()
            .trim();
        if path.is_empty() || path == "none" || !path.starts_with('/') {
            return Err(SshError::NoControlPath {
                id: server.id.clone(),
                got: path.to_string(),
            });
        }
        Ok(PathBuf::from(path))
    }

    /// Whether the control master of `server` runs (`ssh -O check`).
    pub fn check(&self, server: &Server) -> Result<SessionStatus, SshError> {
        let control_path = self.control_socket(server)?;
        let out = self.run(server, &["-Ocheck".into()], Stdio::null())?;
        let master_pid = out
            .status
            .success()
            .then(|| master_pid(&String::from_utf8_lossy(&out.stderr)))
            .flatten();
        Ok(SessionStatus {
            server: server.id.clone(),
            destination: server.destination(),
            control_path,
            connected: out.status.success(),
            master_pid,
        })
    }

    /// Starts the control master of `server` unless one runs. ssh asks for the password on this process's
    /// terminal (stdin, stdout and stderr are inherited), then backgrounds itself; the control socket's
    /// directory is created (mode 0700) when missing.
    pub fn connect(&self, server: &Server) -> Result<(ConnectOutcome, SessionStatus), SshError> {
        let auth = self.managed(server)?;
        let before = self.check(server)?;
        if before.connected {
            return Ok((ConnectOutcome::AlreadyConnected, before));
        }
        create_socket_dir(&before.control_path)?;
        // A socket left by a master that died (a reboot, a crash) makes ssh refuse to become the master.
        remove_if_stale(&before.control_path)?;
        let extra = [
            "-f".into(),
            "-N".into(),
            option("ControlMaster", "yes"),
            option("ControlPersist", &auth.persist),
        ];
        let mut cmd = self.authenticating(server, &extra, &[]);
        let status = cmd.status().map_err(|source| self.spawn_error(source))?;
        if !status.success() {
            return Err(SshError::Failed {
                id: server.id.clone(),
                action: "connect",
                status: status.to_string(),
                stderr: String::new(),
            });
        }
        let after = self.check(server)?;
        if !after.connected {
            return Err(SshError::Failed {
                id: server.id.clone(),
                action: "connect",
                status: "the control master is not running after ssh returned".into(),
                stderr: String::new(),
            });
        }
        Ok((ConnectOutcome::Connected, after))
    }

    /// Removes the control socket of `server`'s managed session when no master listens on it any more (left
    /// by a reboot or a crashed master). Returns whether it removed one.
    pub fn clean_stale_socket(&self, server: &Server) -> Result<bool, SshError> {
        let socket = self.control_socket(server)?;
        remove_if_stale(&socket)
    }

    /// Stops the control master of `server` (`ssh -O exit`) and waits until its socket is gone.
    pub fn disconnect(
        &self,
        server: &Server,
    ) -> Result<(DisconnectOutcome, SessionStatus), SshError> {
        let before = self.check(server)?;
        if !before.connected {
            return Ok((DisconnectOutcome::NotConnected, before));
        }
        let out = self.run(server, &["-Oexit".into()], Stdio::null())?;
        if !out.status.success() {
            return Err(failed(server, "-O exit", &out));
        }
        let socket = before.control_path.clone();
        let pid = before.master_pid;
        homeboy_process::wait_until(EXIT_WAIT, || {
            !socket.exists() && pid.is_none_or(|p| !homeboy_process::alive(p))
        });
        let after = self.check(server)?;
        Ok((DisconnectOutcome::Disconnected, after))
    }

    /// Runs ssh with the base options and `extra`, capturing its output.
    pub(crate) fn run(
        &self,
        server: &Server,
        extra: &[OsString],
        stdin: Stdio,
    ) -> Result<Output, SshError> {
        let mut cmd: Command = self.command(server, extra, &[]);
        cmd.stdin(stdin);
        cmd.output().map_err(|source| self.spawn_error(source))
    }

    pub(crate) fn spawn_error(&self, source: std::io::Error) -> SshError {
        SshError::Spawn {
            program: self.program().to_string_lossy().into_owned(),
            source,
        }
    }
}

/// The error of a captured ssh run that failed.
pub(crate) fn failed(server: &Server, action: &'static str, out: &Output) -> SshError {
    SshError::Failed {
        id: server.id.clone(),
        action,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `Master running (pid=1234)` → 1234.
fn master_pid(stderr: &str) -> Option<u32> {
    let rest = stderr.split("pid=").nth(1)?;
    rest.split(')').next()?.trim().parse().ok()
}

/// Removes `socket` if it is a Unix socket that refuses connections (nobody listens: its master is gone).
/// Anything else — no file, a live master, a file that is not a socket — is left alone.
fn remove_if_stale(socket: &Path) -> Result<bool, SshError> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(socket) else {
        return Ok(false);
    };
    if !meta.file_type().is_socket() {
        return Ok(false);
    }
    match std::os::unix::net::UnixStream::connect(socket) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            match std::fs::remove_file(socket) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(source) => Err(SshError::RemoveSocket {
                    path: socket.to_path_buf(),
                    source,
                }),
            }
        }
        _ => Ok(false),
    }
}

/// Creates the directory of the control socket (0700) if it does not exist.
fn create_socket_dir(socket: &Path) -> Result<(), SshError> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SshError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_master_pid() {
        assert_eq!(master_pid("Master running (pid=5953)\r\n"), Some(5953));
        assert_eq!(master_pid("Control socket connect(/x): No such file"), None);
    }

    #[test]
    fn unmanaged_servers_are_refused() {
        let server = Server::new("lab", "Lab", "lab.example", "me");
        let err = Ssh::default().check(&server).unwrap_err();
        assert!(err.is_refusal());
        assert!(
            err.to_string().contains("key_plus_password_controlmaster"),
            "{err}"
        );
    }

    #[test]
    fn only_a_socket_nobody_listens_on_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let _listener = std::os::unix::net::UnixListener::bind(&live).unwrap();
        assert!(!remove_if_stale(&live).unwrap());
        assert!(live.exists());
        let dead = dir.path().join("dead");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        assert!(dead.exists(), "a closed listener leaves its socket file");
        assert!(remove_if_stale(&dead).unwrap());
        assert!(!dead.exists());
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "not a socket").unwrap();
        assert!(!remove_if_stale(&plain).unwrap());
        assert!(!remove_if_stale(&dir.path().join("missing")).unwrap());
    }

    #[test]
    fn socket_dir_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("a/b/host-22-me");
        create_socket_dir(&socket).unwrap();
        let mode = std::fs::metadata(dir.path().join("a/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        create_socket_dir(&socket).unwrap();
    }
}
