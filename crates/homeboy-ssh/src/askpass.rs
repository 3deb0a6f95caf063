//! homeboy as ssh's `SSH_ASKPASS` helper, so a key passphrase kept in the OS keychain reaches ssh without a
//! terminal and without ever being written anywhere but ssh's pipe.
//!
//! The parent side ([`Askpass::apply`]): when the keychain holds a passphrase for the server, the ssh that
//! homeboy starts (`homeboy ssh`, the control master of `server connect`, the forward of `runner connect`)
//! gets `SSH_ASKPASS=<this homeboy>`, `SSH_ASKPASS_REQUIRE=force` and `HOMEBOY_ASKPASS_SERVER=<id>`. Without
//! a stored passphrase, or without a keychain, nothing is set and ssh prompts on the terminal as it always
//! did.
//!
//! The helper side ([`invoked`], [`answer`]): ssh runs `homeboy '<prompt>'`. For the first "Enter passphrase
//! for key" prompt naming the server's identity file, the answer is the keychain's passphrase, written to
//! stdout — ssh's pipe — and nowhere else. Every other prompt (a retry after a bad passphrase, a password, a
//! host key confirmation) is put to the terminal (`/dev/tty`, without echo for secrets) exactly as ssh
//! would have; without a terminal the helper fails and ssh moves on, as it does in batch mode.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::Command;

use homeboy_config::Paths;
use homeboy_config::servers::{self, Server};
use zeroize::Zeroizing;

use crate::SshError;
use crate::keychain::{Keychain, Stored};

/// The variable naming the server whose passphrase the helper answers with.
pub const SERVER_ENV: &str = "HOMEBOY_ASKPASS_SERVER";

/// How ssh is pointed at the helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Askpass {
    exe: PathBuf,
    keychain: Keychain,
}

impl Askpass {
    /// The helper `exe` (this homeboy) answering from the keychain of `paths`' config dir.
    pub fn new(exe: PathBuf, paths: &Paths) -> Askpass {
        Askpass {
            exe,
            keychain: Keychain::for_config_dir(paths.config_dir()),
        }
    }

    /// This homeboy and the config dir of the environment, when both can be found.
    pub fn from_env() -> Option<Askpass> {
        let exe = std::env::current_exe().ok()?;
        let paths = Paths::from_env().ok()?;
        Some(Askpass::new(exe, &paths))
    }

    /// Points `cmd` (an ssh for `server`) at the helper when the keychain holds the server's passphrase;
    /// otherwise leaves it alone (ssh's own terminal prompt).
    pub fn apply(&self, cmd: &mut Command, server: &Server) {
        if matches!(self.keychain.status(&server.id), Ok(Stored::Stored)) {
            cmd.env("SSH_ASKPASS", &self.exe)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env(SERVER_ENV, &server.id);
        }
    }
}

/// One question ssh asks the helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub server_id: String,
    pub prompt: String,
    /// `SSH_ASKPASS_PROMPT`: `confirm` (answer by exit code), `none` (a notice), or unset.
    pub kind: Option<String>,
}

/// The question, when this process is ssh's askpass: `HOMEBOY_ASKPASS_SERVER` is set and the only argument
/// is a prompt (ssh's prompts all contain a space, homeboy's subcommands none).
pub fn invoked(args: &[OsString]) -> Option<Question> {
    let server_id = std::env::var(SERVER_ENV).ok().filter(|s| !s.is_empty())?;
    let [prompt] = args else {
        return None;
    };
    let prompt = prompt.to_str()?;
    if !prompt.contains(char::is_whitespace) {
        return None;
    }
    Some(Question {
        server_id,
        prompt: prompt.to_string(),
        kind: std::env::var("SSH_ASKPASS_PROMPT").ok(),
    })
}

/// What the helper does with a question.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Write this (and a newline) to stdout, exit 0.
    Text(Zeroizing<String>),
    /// Exit with this status and write nothing (a confirmation or a notice).
    Exit(u8),
}

/// Answers `question` (see the module docs).
pub fn answer(question: &Question) -> Result<Answer, SshError> {
    match question.kind.as_deref() {
        Some("none") => {
            // A notice ("confirm user presence"): show it if there is a terminal, answer nothing.
            let _ = tty_write(&question.prompt);
            return Ok(Answer::Exit(0));
        }
        Some("confirm") => {
            let yes = tty_line(&question.prompt)?
                .trim()
                .eq_ignore_ascii_case("yes");
            return Ok(Answer::Exit(if yes { 0 } else { 1 }));
        }
        _ => {}
    }
    if is_key_passphrase(&question.prompt) {
        let paths = Paths::from_env()?;
        let server = servers::store(&paths).get(&question.server_id)?;
        if names_identity(&question.prompt, &server)
            && let Some(passphrase) =
                Keychain::for_config_dir(paths.config_dir()).get(&server.id)?
        {
            return Ok(Answer::Text(passphrase));
        }
    }
    if is_confirmation(&question.prompt) {
        return Ok(Answer::Text(Zeroizing::new(
            tty_line(&question.prompt)?.trim().to_string(),
        )));
    }
    let typed = rpassword::prompt_password(&question.prompt)
        .map_err(|e| SshError::Prompt(format!("no terminal to ask on ({e})")))?;
    Ok(Answer::Text(Zeroizing::new(typed)))
}

/// `Enter passphrase for key '…': ` (and not `Bad passphrase, try again for …`, which goes to a person).
fn is_key_passphrase(prompt: &str) -> bool {
    prompt.starts_with("Enter passphrase for key")
}

/// A yes/no question ssh wants typed out (host keys).
fn is_confirmation(prompt: &str) -> bool {
    prompt.contains("(yes/no")
}

/// Whether the prompt is about the server's own key (any key when it names none): the key file ssh names
/// (`Enter passphrase for key '<path>': `) has the identity file's name (`~` and relative paths are
/// written differently by ssh, so the whole path is not compared).
fn names_identity(prompt: &str, server: &Server) -> bool {
    let Some(identity) = &server.identity_file else {
        return true;
    };
    let base = |path: &str| path.rsplit('/').next().unwrap_or(path).to_string();
    let asked = prompt
        .split_once('\'')
        .and_then(|(_, rest)| rest.rsplit_once('\''))
        .map(|(path, _)| base(path));
    let name = base(identity);
    !name.is_empty() && asked.as_deref() == Some(name.as_str())
}

fn open_tty() -> Result<std::fs::File, SshError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| SshError::Prompt(format!("no terminal to ask on ({e})")))
}

fn tty_write(text: &str) -> Result<(), SshError> {
    let mut tty = open_tty()?;
    writeln!(tty, "{text}").map_err(|e| SshError::Prompt(e.to_string()))
}

/// Asks on the terminal with echo (a yes/no answer is no secret).
fn tty_line(prompt: &str) -> Result<String, SshError> {
    let mut tty = open_tty()?;
    write!(tty, "{prompt}").map_err(|e| SshError::Prompt(e.to_string()))?;
    let _ = tty.flush();
    let mut line = String::new();
    std::io::BufReader::new(tty)
        .read_line(&mut line)
        .map_err(|e| SshError::Prompt(e.to_string()))?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_told_apart() {
        assert!(is_key_passphrase("Enter passphrase for key '/k/id_test': "));
        assert!(!is_key_passphrase(
            "Bad passphrase, try again for /k/id_test: "
        ));
        assert!(!is_key_passphrase("deploy@example.com's password: "));
        assert!(is_confirmation(
            "Are you sure you want to continue connecting (yes/no/[fingerprint])? "
        ));
        let mut server = Server::new("lab", "Lab", "lab.example", "me");
        assert!(names_identity("Enter passphrase for key '/x/y': ", &server));
        server.identity_file = Some("~/.ssh/id_lab".into());
        assert!(names_identity(
            "Enter passphrase for key '/home/me/.ssh/id_lab': ",
            &server
        ));
        assert!(!names_identity(
            "Enter passphrase for key '/home/me/.ssh/id_rsa': ",
            &server
        ));
        // Another key whose name merely contains the identity's is not the identity.
        assert!(!names_identity(
            "Enter passphrase for key '/home/me/.ssh/id_lab2': ",
            &server
        ));
        assert!(!names_identity("Enter passphrase for key: ", &server));
    }

    #[test]
    fn only_a_prompt_with_the_variable_is_a_question() {
        // The variable is absent in the test process: nothing is a question.
        assert_eq!(invoked(&["Enter passphrase for key 'x': ".into()]), None);
    }
}
