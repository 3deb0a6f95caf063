//! A terminal for a test: a prepared command run under a pseudo-terminal (util-linux `script`), its session
//! recorded in a transcript file as it goes, so a test sees what a person at the terminal would (progress,
//! prompts, what is echoed) and can type into it through `script`'s stdin.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `'word'` for sh.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `cmd` (its program, arguments and environment) under a pseudo-terminal, the session written to
/// `transcript` as it goes. `stdin` is what `script` forwards to the terminal as typed input
/// (`Stdio::null()` for none). Returns `script`, whose only child is the command.
pub fn spawn(cmd: &Command, transcript: &Path, stdin: Stdio) -> Child {
    spawn_line(cmd, command_line(cmd), transcript, stdin)
}

/// [`spawn`], with the command's own exit status written to `status_file` once it ends (read it with
/// [`recorded_status`]): `script`'s status is then not the only word on how the command ended. The command
/// runs as the child of the `sh` that records its status, not of `script` itself.
pub fn spawn_recording_status(
    cmd: &Command,
    transcript: &Path,
    stdin: Stdio,
    status_file: &Path,
) -> Child {
    let line = format!(
        "{}; echo $? > {}",
        command_line(cmd),
        quote(&status_file.to_string_lossy())
    );
    spawn_line(cmd, line, transcript, stdin)
}

/// The exit status [`spawn_recording_status`] recorded (`128 + N` for signal N, as `sh` reports it);
/// `None` until the command has ended.
pub fn recorded_status(status_file: &Path) -> Option<i32> {
    std::fs::read_to_string(status_file)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `cmd`'s program and arguments as one line for `sh`.
fn command_line(cmd: &Command) -> String {
    let mut line = quote(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(&arg.to_string_lossy()));
    }
    line
}

fn spawn_line(cmd: &Command, line: String, transcript: &Path, stdin: Stdio) -> Child {
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-f", "-c", &line]).arg(transcript);
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    script
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run script (Debian: apt-get install bsdutils)")
}

/// What the command wrote to the terminal: the transcript without script's header and footer, `\r\n` as
/// `\n` (empty while there is no transcript yet).
pub fn session(transcript: &Path) -> String {
    let text = String::from_utf8_lossy(&std::fs::read(transcript).unwrap_or_default())
        .replace("\r\n", "\n");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("Script started on") && !l.starts_with("Script done on"))
        .collect();
    lines.join("\n")
}

/// The children of process `pid` (Linux `/proc/<pid>/task/<pid>/children`): under `script`, the command.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether the terminal of process `pid` (the one its stdin is) echoes what is typed; `None` while that
/// cannot be told (no such process yet, stdin not a terminal). A test types a secret only once this says
/// `false`: typed earlier, the terminal would echo it before the program turned echo off.
pub fn echoes(pid: u32) -> Option<bool> {
    use rustix::fs::{Mode, OFlags};
    let tty = std::fs::read_link(format!("/proc/{pid}/fd/0")).ok()?;
    if !tty.starts_with("/dev/pts") {
        return None;
    }
    let fd = rustix::fs::open(
        &tty,
        OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let termios = rustix::termios::tcgetattr(&fd).ok()?;
    Some(
        termios
            .local_modes
            .contains(rustix::termios::LocalModes::ECHO),
    )
}
