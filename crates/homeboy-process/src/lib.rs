//! Process supervision primitives shared by everything in homeboy that starts or stops processes: the daemon
//! lifecycle, the runner worker, the analysis executor and managed tunnel services.
//!
//! It owns: starting a child in its own process group or session, signalling a process or a whole group,
//! SIGTERM-then-SIGKILL with a grace period, and liveness checks that treat zombies as gone. Linux `/proc` is
//! used where it helps (zombie detection, group membership, argv of a pid). It knows nothing about what the
//! processes are for.

use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::{
    Pid, Signal, kill_process, kill_process_group, test_kill_process, test_kill_process_group,
};

pub use rustix::process::Signal as ProcessSignal;

/// Whether `pid` names a live process (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    let Some(p) = to_pid(pid) else { return false };
    match test_kill_process(p) {
        Ok(()) | Err(rustix::io::Errno::PERM) => !is_zombie(pid),
        Err(_) => false,
    }
}

/// Whether any process of group `pgid` is still alive (zombies excluded where `/proc` can tell).
pub fn group_alive(pgid: u32) -> bool {
    let Some(p) = to_pgid(pgid) else { return false };
    match test_kill_process_group(p) {
        Ok(()) | Err(rustix::io::Errno::PERM) => {
            // kill(-pgid, 0) also succeeds for zombies; ask /proc when we can.
            match group_members(pgid) {
                Some(members) => !members.is_empty(),
                None => true,
            }
        }
        Err(_) => false,
    }
}

/// Live (non-zombie) members of process group `pgid`, or `None` where `/proc` is unavailable.
pub fn group_members(pgid: u32) -> Option<Vec<u32>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut members = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(stat) = read_stat(pid)
            && stat.pgrp == pgid
            && stat.state != 'Z'
        {
            members.push(pid);
        }
    }
    Some(members)
}

/// The basename of `argv[0]` of `pid`, where `/proc` can tell.
pub fn argv0_name(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    let name = argv0.rsplit(|b| *b == b'/').next()?;
    Some(String::from_utf8_lossy(name).into_owned())
}

/// Whether `pid` runs a program whose name starts with `prefix`. Guards against signalling an unrelated
/// process that reused a stale pid. Without `/proc` at all we cannot tell and say yes.
pub fn runs_program(pid: u32, prefix: &str) -> bool {
    match argv0_name(pid) {
        Some(name) => name.starts_with(prefix),
        None => !std::path::Path::new("/proc/self").exists(),
    }
}

/// When `pid` started, in clock ticks since boot (`/proc/<pid>/stat` field 22), where `/proc` can tell.
/// Together with the pid it names one process: a later process that reuses the pid has another start time.
pub fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    // Fields after comm start at field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether the process `pid` that started at `started` (from [`start_time`]) is still alive. Without a
/// recorded start time only the pid is checked.
pub fn same_process_alive(pid: u32, started: Option<u64>) -> bool {
    if !alive(pid) {
        return false;
    }
    match (started, start_time(pid)) {
        (Some(expected), Some(actual)) => expected == actual,
        _ => true,
    }
}

/// Whether process group `pgid`, whose leader started at `leader_started` (from [`start_time`], when it
/// was recorded), is still that group: something of it alive, and its number not taken by a new leader. A
/// group's number comes back only once the group is empty, when a new process gets the same pid and leads a
/// group of its own; that leader has another start time. Without a recorded start time only the group is
/// checked. (A group whose leader has exited is still ours: its number stays taken while members live.)
pub fn same_group_alive(pgid: u32, leader_started: Option<u64>) -> bool {
    if !group_alive(pgid) {
        return false;
    }
    match (leader_started, start_time(pgid)) {
        (Some(expected), Some(actual)) => expected == actual,
        _ => true,
    }
}

/// When this machine booted, in seconds since the Unix epoch (`btime` of `/proc/stat`), where `/proc` can
/// tell. A pid or process group recorded before it names nothing of ours any more: after a reboot the
/// numbers are handed out again.
pub fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Sends `signal` to `pid`; false if the process does not exist.
pub fn signal(pid: u32, signal: Signal) -> bool {
    to_pid(pid).is_some_and(|p| kill_process(p, signal).is_ok())
}

/// Sends `signal` to every process of group `pgid`; false if the group does not exist.
pub fn signal_group(pgid: u32, signal: Signal) -> bool {
    to_pgid(pgid).is_some_and(|p| kill_process_group(p, signal).is_ok())
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL and waits a little more. Returns whether SIGKILL was
/// needed.
pub fn terminate(pid: u32, grace: Duration) -> bool {
    if !signal(pid, Signal::TERM) {
        return false;
    }
    if wait_until(grace, || !alive(pid)) {
        return false;
    }
    signal(pid, Signal::KILL);
    wait_until(Duration::from_secs(2), || !alive(pid));
    true
}

/// SIGTERM to the whole group, up to `grace`, then SIGKILL to whatever is left of it. Returns whether SIGKILL
/// was needed.
pub fn terminate_group(pgid: u32, grace: Duration) -> bool {
    if !signal_group(pgid, Signal::TERM) {
        return false;
    }
    if wait_until(grace, || !group_alive(pgid)) {
        return false;
    }
    signal_group(pgid, Signal::KILL);
    wait_until(Duration::from_secs(2), || !group_alive(pgid));
    true
}

/// Polls `gone` every 10 ms until it holds or `timeout` passes; true if it holds. A timeout too large for
/// the clock (`--grace-secs 18446744073709551615`) means no deadline.
pub fn wait_until(timeout: Duration, mut gone: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        if gone() {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls until `pid` is gone or `timeout` passes; true if it is gone.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    wait_until(timeout, || !alive(pid))
}

/// Makes the child the leader of a new process group, so the whole tree can be signalled at once.
pub fn new_process_group(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
}

/// Makes the child start a new session (`setsid`) so it outlives the terminal and the starting shell. The
/// child is also the leader of a new process group.
#[allow(unsafe_code)]
pub fn new_session(cmd: &mut Command) {
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

fn to_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

/// A process group we may signal: never group 1 (`kill(-1, …)` means every process we can signal), so a
/// damaged record naming it cannot take the machine down.
fn to_pgid(pgid: u32) -> Option<Pid> {
    (pgid > 1).then(|| to_pid(pgid)).flatten()
}

struct Stat {
    state: char,
    pgrp: u32,
}

/// `/proc/<pid>/stat`: "pid (comm) S ppid pgrp ..."; comm may contain spaces and parentheses, so split at
/// the last ')'.
fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(Stat { state, pgrp })
}

fn is_zombie(pid: u32) -> bool {
    read_stat(pid).is_some_and(|s| s.state == 'Z')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    #[test]
    fn group_termination_reaches_grandchildren() {
        // A shell that starts a grandchild and ignores SIGTERM itself: the group kill must still end both.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' TERM; sleep 30 & sleep 30; wait"])
            .stdout(Stdio::null());
        new_process_group(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let pgid = child.id();
        assert!(wait_until(Duration::from_secs(5), || group_members(pgid)
            .is_some_and(|m| m.len() >= 2)));
        assert!(group_alive(pgid));
        let forced = terminate_group(pgid, Duration::from_millis(300));
        assert!(forced, "the shell ignores SIGTERM, so SIGKILL was needed");
        let _ = child.wait();
        assert!(!group_alive(pgid));
        assert_eq!(group_members(pgid), Some(vec![]));
    }

    #[test]
    fn waits_beyond_the_clock_do_not_panic() {
        assert!(wait_until(Duration::MAX, || true));
        let mut polls = 0;
        assert!(wait_until(Duration::from_secs(u64::MAX), || {
            polls += 1;
            polls > 2
        }));
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(!terminate(child.id(), Duration::MAX));
        let _ = child.wait();
    }

    #[test]
    fn liveness_and_names() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        assert!(alive(pid));
        // Right after fork the child may not have exec'd yet.
        assert!(wait_until(Duration::from_secs(5), || argv0_name(pid)
            .as_deref()
            == Some("sleep")));
        assert!(runs_program(pid, "sle"));
        assert!(!runs_program(pid, "homeboy"));
        let started = start_time(pid);
        assert!(started.is_some());
        assert!(same_process_alive(pid, started));
        assert!(!same_process_alive(pid, started.map(|s| s + 1)));
        assert!(!terminate(pid, Duration::from_secs(2)));
        // Not reaped yet: a zombie, which counts as gone.
        assert!(!alive(pid));
        let _ = child.wait();
        assert!(!signal(pid, Signal::TERM));
    }

    #[test]
    fn a_group_is_known_by_its_leaders_start_time() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        new_process_group(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let pgid = child.id();
        assert!(wait_until(Duration::from_secs(5), || group_alive(pgid)));
        let started = start_time(pgid);
        assert!(started.is_some());
        assert!(same_group_alive(pgid, started));
        assert!(same_group_alive(pgid, None));
        // The same number led by a process that started at another time is someone else's group.
        assert!(!same_group_alive(pgid, started.map(|s| s + 1)));
        assert!(!terminate_group(pgid, Duration::from_secs(2)));
        let _ = child.wait();
        assert!(!same_group_alive(pgid, started));
    }

    #[test]
    fn group_one_is_never_signalled() {
        // SIGCONT: harmless even if the guard failed.
        assert!(!signal_group(1, Signal::CONT));
        assert!(!group_alive(1));
        assert!(!group_alive(0));
    }

    #[test]
    fn boot_time_is_in_the_past() {
        let boot = boot_time().expect("/proc/stat has btime");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            boot > 1_000_000_000 && boot <= now,
            "btime {boot}, now {now}"
        );
    }
}
