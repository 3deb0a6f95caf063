//! The ssh command line for a configured server: which program, which options, in which order. Pure argv
//! building, so every invocation (`homeboy ssh`, the control master, `-O check`, forwards) says the same
//! thing to ssh and the tests can read it without running anything.
//!
//! homeboy passes the server's settings as options and leaves the rest to ssh: `~` and the `%h`/`%p`/`%r`
//! tokens of a control path, host keys, agents and the password prompt are ssh's business. The one thing
//! homeboy adds is a key passphrase kept in the OS keychain: the invocations that authenticate (a remote
//! command, a control master, a foreground forward) are pointed at homeboy's askpass helper when the
//! keychain has one for the server (see [`crate::askpass`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use homeboy_config::servers::Server;

use crate::askpass::Askpass;

/// The environment variable naming an ssh_config file that homeboy passes to every ssh it runs as `-F FILE`
/// (replacing `~/.ssh/config`). Meant for tests and isolated setups that need their own known_hosts; homeboy's
/// own options still apply on top of it, and nothing in homeboy relaxes host key checking.
pub const SSH_CONFIG_ENV: &str = "HOMEBOY_SSH_CONFIG";

/// How homeboy runs ssh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssh {
    program: OsString,
    config_file: Option<PathBuf>,
    /// Key passphrases from the keychain, when this homeboy can be ssh's askpass.
    askpass: Option<Askpass>,
}

impl Default for Ssh {
    fn default() -> Self {
        Ssh::new("ssh", None)
    }
}

impl Ssh {
    /// `program` (normally `ssh`) with an optional ssh_config file passed as `-F`.
    pub fn new(program: impl Into<OsString>, config_file: Option<PathBuf>) -> Self {
        Ssh {
            program: program.into(),
            config_file,
            askpass: None,
        }
    }

    /// `ssh` from PATH, with `-F $HOMEBOY_SSH_CONFIG` when that variable is set, and key passphrases from
    /// the keychain of this environment's config dir.
    pub fn from_env() -> Self {
        let config_file = std::env::var_os(SSH_CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let mut ssh = Ssh::new("ssh", config_file);
        ssh.askpass = Askpass::from_env();
        ssh
    }

    /// Answers the key passphrase prompts of authenticating invocations through `askpass`.
    pub fn with_askpass(mut self, askpass: Askpass) -> Self {
        self.askpass = Some(askpass);
        self
    }

    /// A `Command` like [`Ssh::command`] for an invocation that authenticates: pointed at the askpass
    /// helper when the keychain holds the server's passphrase.
    pub(crate) fn authenticating(
        &self,
        server: &Server,
        extra: &[OsString],
        remote: &[String],
    ) -> Command {
        let mut cmd = self.command(server, extra, remote);
        if let Some(askpass) = &self.askpass {
            askpass.apply(&mut cmd, server);
        }
        cmd
    }

    /// The program that is run.
    pub fn program(&self) -> &OsString {
        &self.program
    }

    /// The options every invocation for `server` starts with: config file, port, user, identity, agent
    /// forwarding and, for a managed session, the control path.
    pub fn base_args(&self, server: &Server) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(config) = &self.config_file {
            args.push("-F".into());
            args.push(config.clone().into());
        }
        args.push("-p".into());
        args.push(server.port.to_string().into());
        args.push("-l".into());
        args.push(server.user.clone().into());
        if let Some(identity) = &server.identity_file {
            args.push("-i".into());
            args.push(identity.clone().into());
        }
        let agent = if server.forward_agent { "yes" } else { "no" };
        args.push(option("ForwardAgent", agent));
        if let Some(auth) = server.managed_session() {
            args.push(option("ControlPath", &auth.control_path));
        }
        args
    }

    /// A `Command` running ssh with the base options, `extra` options, then `-- host` and `remote` (the
    /// remote command words, joined by ssh with spaces for the remote shell, exactly as plain ssh does).
    pub fn command(&self, server: &Server, extra: &[OsString], remote: &[String]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(self.argv(server, extra, remote));
        cmd
    }

    /// The argv (without the program) of [`Ssh::command`]. `--` ends ssh's options before the host, so
    /// remote words such as `ls -la` are never read as ssh options.
    pub fn argv(&self, server: &Server, extra: &[OsString], remote: &[String]) -> Vec<OsString> {
        let mut args = self.base_args(server);
        args.extend(extra.iter().cloned());
        args.push("--".into());
        args.push(server.host.clone().into());
        args.extend(remote.iter().map(OsString::from));
        args
    }

    /// `homeboy ssh <id> [command...]`: reuses a running control master of a managed session and never
    /// starts one (that is `homeboy server connect`); without a master, ssh connects directly.
    pub fn exec_command(&self, server: &Server, remote: &[String]) -> Command {
        let extra = if server.managed_session().is_some() {
            vec![option("ControlMaster", "no")]
        } else {
            Vec::new()
        };
        self.authenticating(server, &extra, remote)
    }
}

/// `-o Name=value` as one argument.
pub(crate) fn option(name: &str, value: &str) -> OsString {
    format!("-o{name}={value}").into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeboy_config::servers::{ServerAuth, SessionMode};

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn plain_key_server() {
        let server = Server::new("lab", "Lab", "lab.example", "me");
        let ssh = Ssh::default();
        assert_eq!(
            strings(&ssh.argv(&server, &[], &["ls".into(), "-la".into()])),
            [
                "-p",
                "22",
                "-l",
                "me",
                "-oForwardAgent=no",
                "--",
                "lab.example",
                "ls",
                "-la"
            ]
        );
        let cmd = ssh.exec_command(&server, &[]);
        assert_eq!(cmd.get_program(), "ssh");
    }

    #[test]
    fn every_setting_reaches_ssh() {
        let mut server = Server::new("prod", "Prod", "example.com", "deploy");
        server.port = 2222;
        server.identity_file = Some("~/.ssh/id_ed25519".into());
        server.forward_agent = true;
        server.auth = Some(ServerAuth {
            mode: SessionMode::KeyPlusPasswordControlmaster,
            control_path: "~/.ssh/controlmasters/%h-%p-%r".into(),
            persist: "4h".into(),
        });
        let ssh = Ssh::new("/usr/bin/ssh", Some(PathBuf::from("/tmp/cfg")));
        let argv = strings(
            &ssh.exec_command(&server, &["echo".into(), "ok".into()])
                .get_args()
                .map(OsString::from)
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            argv,
            [
                "-F",
                "/tmp/cfg",
                "-p",
                "2222",
                "-l",
                "deploy",
                "-i",
                "~/.ssh/id_ed25519",
                "-oForwardAgent=yes",
                "-oControlPath=~/.ssh/controlmasters/%h-%p-%r",
                "-oControlMaster=no",
                "--",
                "example.com",
                "echo",
                "ok"
            ]
        );
    }
}
