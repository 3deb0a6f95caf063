//! Looking at and signalling other processes by pid (Linux `/proc` where it helps).

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process, test_kill_process};

/// Whether `pid` names a live process (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    let Some(p) = to_pid(pid) else { return false };
    match test_kill_process(p) {
        Ok(()) | Err(rustix::io::Errno::PERM) => !is_zombie(pid),
        Err(_) => false,
    }
}

/// Whether `pid` runs a homeboy binary. Guards against signalling an unrelated process that reused a stale
/// pid. Where `/proc` is unavailable we cannot tell and say yes.
pub fn is_homeboy(pid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            let name = argv0.rsplit(|b| *b == b'/').next().unwrap_or_default();
            name.starts_with(b"homeboy")
        }
        // No /proc at all: we cannot tell. /proc present but unreadable for this pid: it is gone.
        Err(_) => !std::path::Path::new("/proc/self").exists(),
    }
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL and waits a little more. Returns whether SIGKILL was
/// needed.
pub fn terminate(pid: u32, grace: Duration) -> bool {
    let Some(p) = to_pid(pid) else { return false };
    let _ = kill_process(p, Signal::TERM);
    if wait_gone(pid, grace) {
        return false;
    }
    let _ = kill_process(p, Signal::KILL);
    wait_gone(pid, Duration::from_secs(2));
    true
}

/// Polls until `pid` is gone or `timeout` passes; true if it is gone.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn to_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

fn is_zombie(pid: u32) -> bool {
    // /proc/<pid>/stat: "pid (comm) S ..."; comm may contain spaces and parentheses, so split at the last ')'.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Makes the child start a new session (`setsid`) so it outlives the terminal and the starting shell.
#[allow(unsafe_code)]
pub fn start_new_session(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec; it only calls setsid(2), which is
    // async-signal-safe and touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
}
