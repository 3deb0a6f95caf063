//! Running one tool or check command: argv without a shell, in a working directory, in its own process group
//! (so a timeout or a cancel stops the whole tree), stdin closed, stdout and stderr read line by line and
//! handed to a [`Watcher`] as they come. The watcher can stop the run; so does the timeout (SIGTERM to the
//! group, then SIGKILL after a grace period). Once the group has been stopped, output that stays open — held
//! by a process that left the group, such as a `setsid` daemon — is waited for only [`CLOSE_GRACE`]; then the
//! run ends without it (its reader threads end when that process closes the output).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::ComponentError;

/// Longest line handed to a watcher; the rest of a longer line is dropped.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// How long a stopped group gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long output may stay open after the command exits (a background child holding the pipe).
const LEFTOVER_GRACE: Duration = Duration::from_secs(1);
/// How long output may stay open once the group has been stopped (a process outside the group holds it).
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How often the watcher's `tick` runs while the command is quiet.
const TICK: Duration = Duration::from_millis(100);

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Whether to keep going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// Sees a running command's output and may stop it.
pub trait Watcher {
    /// One line of output (without its newline).
    fn line(&mut self, stream: Stream, text: &str) -> Control;
    /// Called about every 100 ms.
    fn tick(&mut self) -> Control {
        Control::Continue
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The exit code; `128 + signal` for a signal, 124 after a timeout.
    pub exit_code: i32,
    pub timed_out: bool,
    /// The watcher stopped it.
    pub stopped: bool,
    pub duration: Duration,
}

/// Runs `argv` in `cwd` with `timeout`.
pub fn run(
    argv: &[String],
    cwd: &Path,
    timeout: Duration,
    watcher: &mut dyn Watcher,
) -> Result<Finished, ComponentError> {
    let program = argv.first().cloned().unwrap_or_default();
    let mut cmd = Command::new(&program);
    cmd.args(&argv[1..])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    homeboy_process::new_process_group(&mut cmd);
    let began = Instant::now();
    let mut child = cmd.spawn().map_err(|source| ComponentError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pgid = child.id();
    let (lines, incoming) = mpsc::channel::<(Stream, String)>();
    let readers = [
        child
            .stdout
            .take()
            .map(|out| spawn_reader(out, Stream::Stdout, lines.clone())),
        child
            .stderr
            .take()
            .map(|err| spawn_reader(err, Stream::Stderr, lines.clone())),
    ];
    drop(lines);
    let deadline = began + timeout;
    let mut stopped = false;
    let mut timed_out = false;
    let mut exited = None;
    let mut drain_until: Option<Instant> = None;
    // Set when the group has been stopped: output still open after this is abandoned.
    let mut close_by: Option<Instant> = None;
    let mut abandoned = false;
    let mut last_tick = Instant::now();
    loop {
        match incoming.recv_timeout(TICK) {
            Ok((stream, text)) => {
                if !stopped && !timed_out && watcher.line(stream, &text) == Control::Stop {
                    stopped = true;
                    homeboy_process::terminate_group(pgid, STOP_GRACE);
                    close_by = Some(Instant::now() + CLOSE_GRACE);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() < TICK {
            continue;
        }
        last_tick = Instant::now();
        if close_by.is_some_and(|by| Instant::now() >= by) {
            abandoned = true;
            break;
        }
        if exited.is_none()
            && let Ok(Some(status)) = child.try_wait()
        {
            // The command is done; whatever still holds its output gets a moment, then the group ends.
            exited = Some(status);
            drain_until = Some(Instant::now() + LEFTOVER_GRACE);
        }
        if drain_until.is_some_and(|until| Instant::now() >= until) {
            drain_until = None;
            homeboy_process::terminate_group(pgid, STOP_GRACE);
            close_by = Some(Instant::now() + CLOSE_GRACE);
        }
        if stopped || timed_out || exited.is_some() {
            continue;
        }
        if watcher.tick() == Control::Stop {
            stopped = true;
            homeboy_process::terminate_group(pgid, STOP_GRACE);
            close_by = Some(Instant::now() + CLOSE_GRACE);
        } else if Instant::now() >= deadline {
            timed_out = true;
            homeboy_process::terminate_group(pgid, STOP_GRACE);
            close_by = Some(Instant::now() + CLOSE_GRACE);
        }
    }
    // Output is closed (the command and whatever inherited its pipes have exited), or abandoned after the
    // group was stopped.
    let status = match exited {
        Some(status) => status,
        None => {
            if abandoned {
                let _ = child.kill();
            }
            child.wait().map_err(|source| ComponentError::Spawn {
                program: program.clone(),
                source,
            })?
        }
    };
    if !abandoned {
        for reader in readers.into_iter().flatten() {
            let _ = reader.join();
        }
    }
    // Children that closed their output but live on are stopped with the group.
    if homeboy_process::group_alive(pgid) {
        homeboy_process::terminate_group(pgid, STOP_GRACE);
    }
    let exit_code = if timed_out {
        124
    } else {
        use std::os::unix::process::ExitStatusExt;
        status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1)
    };
    Ok(Finished {
        exit_code,
        timed_out,
        stopped,
        duration: began.elapsed(),
    })
}

fn spawn_reader(
    out: impl Read + Send + 'static,
    stream: Stream,
    lines: mpsc::Sender<(Stream, String)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader
                .by_ref()
                .take(MAX_LINE_BYTES as u64)
                .read_until(b'\n', &mut buf)
            {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if buf.last() != Some(&b'\n') && buf.len() >= MAX_LINE_BYTES {
                // Drop the rest of an overlong line.
                let mut rest = Vec::new();
                if reader.read_until(b'\n', &mut rest).is_err() {
                    return;
                }
            }
            let text = String::from_utf8_lossy(&buf);
            let text = text.trim_end_matches(['\n', '\r']).to_string();
            if lines.send((stream, text)).is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        lines: Vec<(Stream, String)>,
        stop_at: Option<String>,
    }

    impl Watcher for Collect {
        fn line(&mut self, stream: Stream, text: &str) -> Control {
            self.lines.push((stream, text.to_string()));
            if self.stop_at.as_deref() == Some(text) {
                Control::Stop
            } else {
                Control::Continue
            }
        }
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn output_exit_codes_and_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = Collect::default();
        let done = run(
            &sh("echo one; echo two >&2; printf 'no newline'; exit 3"),
            dir.path(),
            Duration::from_secs(10),
            &mut seen,
        )
        .unwrap();
        assert_eq!(done.exit_code, 3);
        assert!(!done.timed_out && !done.stopped);
        assert!(seen.lines.contains(&(Stream::Stdout, "one".into())));
        assert!(seen.lines.contains(&(Stream::Stderr, "two".into())));
        assert!(seen.lines.contains(&(Stream::Stdout, "no newline".into())));

        let done = run(
            &sh("sleep 30 & sleep 30; wait"),
            dir.path(),
            Duration::from_millis(300),
            &mut Collect::default(),
        )
        .unwrap();
        assert!(done.timed_out);
        assert_eq!(done.exit_code, 124);
        assert!(done.duration < Duration::from_secs(10));

        let mut stopper = Collect {
            stop_at: Some("go".into()),
            ..Collect::default()
        };
        let done = run(
            &sh("echo go; sleep 30"),
            dir.path(),
            Duration::from_secs(30),
            &mut stopper,
        )
        .unwrap();
        assert!(done.stopped);

        // A background child holding the output does not keep the run going.
        let done = run(
            &sh("sleep 30 & echo started"),
            dir.path(),
            Duration::from_secs(30),
            &mut Collect::default(),
        )
        .unwrap();
        assert_eq!((done.exit_code, done.timed_out), (0, false));
        assert!(done.duration < Duration::from_secs(10));

        // Nor does one that left the process group (its own session), which stopping the group cannot
        // reach: before, the run waited for it however long it lived, past any timeout.
        for (script, timeout) in [
            ("setsid sleep 20 & echo started", Duration::from_secs(60)),
            ("setsid sleep 20 & sleep 60", Duration::from_millis(300)),
        ] {
            let done = run(&sh(script), dir.path(), timeout, &mut Collect::default()).unwrap();
            assert!(
                done.duration < Duration::from_secs(15),
                "{script}: {done:?}"
            );
        }

        let err = run(
            &["/no/such/program".to_string()],
            dir.path(),
            Duration::from_secs(1),
            &mut Collect::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/no/such/program"), "{err}");
    }
}
