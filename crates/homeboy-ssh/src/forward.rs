//! `homeboy runner connect`: an SSH local forward from a loopback port here to the runner's loopback daemon.
//!
//! Both ends must be loopback. The runner's daemon never listens beyond loopback, so a remote address that is
//! not loopback is refused rather than forwarded; the local end is loopback so the forward does not publish the
//! runner to this machine's network. When a managed session's control master runs, the forward is added to
//! it (`ssh -O forward`) and lives as long as the master; otherwise ssh runs in the foreground (`-N`) until it
//! is stopped.

use std::fmt;
use std::process::{Command, Stdio};

use homeboy_config::net::is_loopback_host;
use homeboy_config::servers::Server;
use serde::Serialize;

use crate::SshError;
use crate::command::{Ssh, option};
use crate::session::failed;

/// The default port of a runner's (or broker's) daemon.
pub const DEFAULT_DAEMON_PORT: u16 = 7421;

/// A loopback `host:port` (`127.0.0.1:7421`, `[::1]:7421`, `localhost:7421`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoopbackAddr {
    pub host: String,
    pub port: u16,
}

impl LoopbackAddr {
    /// Parses `text` and refuses anything that is not a loopback address with a port from 1 to 65535. `what`
    /// names the address in errors (`remote daemon`, `local`).
    pub fn parse(what: &'static str, text: &str) -> Result<Self, SshError> {
        let bad = || SshError::BadAddress {
            what,
            addr: text.to_string(),
        };
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, tail) = rest.split_once(']').ok_or_else(bad)?;
                (host, tail.strip_prefix(':').ok_or_else(bad)?)
            }
            None => {
                let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
                if host.contains(':') {
                    return Err(bad()); // an IPv6 address needs brackets
                }
                (host, port)
            }
        };
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        if !is_loopback_host(host) {
            return Err(SshError::NonLoopback {
                what,
                addr: text.to_string(),
            });
        }
        Ok(LoopbackAddr {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for LoopbackAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A forward from `local` on this machine to `remote` on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalForward {
    pub local: LoopbackAddr,
    pub remote: LoopbackAddr,
}

impl LocalForward {
    /// A forward to `remote` (default `127.0.0.1:7421`) from `local` (default: the same address and port, so
    /// the daemon's Host check sees its own address).
    pub fn new(local: Option<&str>, remote: Option<&str>) -> Result<Self, SshError> {
        let remote = match remote {
            Some(text) => LoopbackAddr::parse("remote daemon", text)?,
            None => LoopbackAddr {
                host: "127.0.0.1".into(),
                port: DEFAULT_DAEMON_PORT,
            },
        };
        let local = match local {
            Some(text) => LoopbackAddr::parse("local", text)?,
            None => remote.clone(),
        };
        Ok(LocalForward { local, remote })
    }

    /// ssh's `-L` value: `bind:port:host:hostport`.
    pub fn spec(&self) -> String {
        format!("{}:{}", self.local, self.remote)
    }

    /// The URL of the forwarded daemon on this machine.
    pub fn local_url(&self) -> String {
        format!("http://{}", self.local)
    }
}

/// How `runner connect` reaches the runner's daemon.
#[derive(Debug)]
pub enum RunnerConnect {
    /// The forward was added to the running control master and lives as long as it does.
    AttachedToMaster,
    /// No master runs: run this ssh in the foreground (it holds the forward until stopped).
    Foreground(Command),
}

impl Ssh {
    /// Opens `forward` to the daemon of runner `server`: through its control master when one runs, else as
    /// a foreground ssh for the caller to run (or `exec`).
    pub fn runner_connect(
        &self,
        server: &Server,
        forward: &LocalForward,
    ) -> Result<RunnerConnect, SshError> {
        if server.runner.is_none() {
            return Err(SshError::NotRunner {
                id: server.id.clone(),
            });
        }
        if server.managed_session().is_some() && self.check(server)?.connected {
            self.master_forward(server, forward, "forward")?;
            return Ok(RunnerConnect::AttachedToMaster);
        }
        Ok(RunnerConnect::Foreground(
            self.forward_command(server, forward),
        ))
    }

    /// Removes `forward` from the control master of `server` (`ssh -O cancel`).
    pub fn cancel_forward(&self, server: &Server, forward: &LocalForward) -> Result<(), SshError> {
        self.managed(server)?;
        self.master_forward(server, forward, "cancel")
    }

    /// The foreground ssh holding `forward`: no remote command, and it fails at once if the local port cannot
    /// be bound.
    pub fn forward_command(&self, server: &Server, forward: &LocalForward) -> Command {
        let mut extra = vec![
            "-N".into(),
            option("ExitOnForwardFailure", "yes"),
            "-L".into(),
            forward.spec().into(),
        ];
        if server.managed_session().is_some() {
            extra.push(option("ControlMaster", "no"));
        }
        self.authenticating(server, &extra, &[])
    }

    fn master_forward(
        &self,
        server: &Server,
        forward: &LocalForward,
        operation: &'static str,
    ) -> Result<(), SshError> {
        let extra = [
            format!("-O{operation}").into(),
            "-L".into(),
            forward.spec().into(),
        ];
        let out = self.run(server, &extra, Stdio::null())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failed(server, operation_label(operation), &out))
        }
    }
}

fn operation_label(operation: &str) -> &'static str {
    match operation {
        "forward" => "-O forward",
        _ => "-O cancel",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        for (text, shown) in [
            ("127.0.0.1:7421", "127.0.0.1:7421"),
            ("[::1]:9", "[::1]:9"),
            ("localhost:80", "localhost:80"),
        ] {
            assert_eq!(
                LoopbackAddr::parse("remote daemon", text)
                    .unwrap()
                    .to_string(),
                shown
            );
        }
        for bad in [
            "127.0.0.1",
            "127.0.0.1:0",
            "::1:7421",
            "[::1]",
            ":7421",
            "x:y",
        ] {
            assert!(
                matches!(
                    LoopbackAddr::parse("remote daemon", bad),
                    Err(SshError::BadAddress { .. })
                ),
                "{bad}"
            );
        }
        for public in [
            "0.0.0.0:7421",
            "10.0.0.5:7421",
            "[::]:7421",
            "example.com:7421",
        ] {
            let err = LoopbackAddr::parse("remote daemon", public).unwrap_err();
            assert!(matches!(err, SshError::NonLoopback { .. }), "{public}");
            assert!(err.is_refusal());
            assert!(err.to_string().contains(public));
        }
    }

    #[test]
    fn forward_specs() {
        let default = LocalForward::new(None, None).unwrap();
        assert_eq!(default.spec(), "127.0.0.1:7421:127.0.0.1:7421");
        let custom = LocalForward::new(Some("[::1]:8000"), Some("localhost:7421")).unwrap();
        assert_eq!(custom.spec(), "[::1]:8000:localhost:7421");
        assert_eq!(custom.local_url(), "http://[::1]:8000");
        assert!(LocalForward::new(Some("0.0.0.0:8000"), None).is_err());
    }

    #[test]
    fn foreground_forward_argv() {
        let server = Server::new("lab", "Lab", "lab.example", "me");
        let forward = LocalForward::new(None, None).unwrap();
        let cmd = Ssh::default().forward_command(&server, &forward);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-p",
                "22",
                "-l",
                "me",
                "-oForwardAgent=no",
                "-N",
                "-oExitOnForwardFailure=yes",
                "-L",
                "127.0.0.1:7421:127.0.0.1:7421",
                "--",
                "lab.example"
            ]
        );
        let err = Ssh::default()
            .runner_connect(&server, &forward)
            .unwrap_err();
        assert!(matches!(err, SshError::NotRunner { .. }), "{err}");
    }
}
