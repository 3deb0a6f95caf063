//! `cargo xtask bench daemon`: start-to-healthy time of `homeboy daemon start`, and `/health` throughput at
//! 64 keep-alive connections next to a minimal hyper server (the ceiling) started by the same run, and the
//! same server with hyper's per-request header timer armed (what the edge's idle timeout avoids; see
//! `docs/decisions/0010-idle-timeout.md`). Targets: ratio ≥ 0.85, start-to-healthy under 100 ms.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::report::{load_row, median, ratio, table, verdict};
use super::{load, release_bin};

const CONNECTIONS: usize = 64;
const LOAD_SECS: u64 = 4;
const ROUNDS: usize = 3;
const START_SAMPLES: usize = 15;

pub fn run() -> anyhow::Result<()> {
    println!(
        "# bench daemon (load generator: {})",
        load::generator_name()
    );
    let homeboy = release_bin("homeboy");
    // Install wrk up front so both measurements use the same generator.
    load::ensure_program("wrk", "wrk");

    // (a) start-to-healthy.
    let mut samples = Vec::new();
    for _ in 0..START_SAMPLES {
        let dir = tempfile::tempdir()?;
        let began = Instant::now();
        let addr = start_daemon(&homeboy, dir.path())?;
        let (status, _) = http_get(addr, "/health")?;
        let elapsed = began.elapsed().as_secs_f64() * 1000.0;
        if status != 200 {
            bail!("/health answered {status}");
        }
        samples.push(elapsed);
        stop_daemon(&homeboy, dir.path())?;
    }
    let fastest = samples.iter().copied().fold(f64::MAX, f64::min);
    let slowest = samples.iter().copied().fold(0.0, f64::max);
    let start_median = median(&mut samples);
    table(
        "daemon start → healthy /health",
        &[
            "samples",
            "median ms",
            "min ms",
            "max ms",
            "target",
            "verdict",
        ],
        &[vec![
            START_SAMPLES.to_string(),
            format!("{start_median:.1}"),
            format!("{fastest:.1}"),
            format!("{slowest:.1}"),
            "< 100 ms".into(),
            verdict(start_median < 100.0),
        ]],
    );

    // (b) /health under load vs the hyper ceiling, interleaved so drift on a shared machine hits both alike.
    let dir = tempfile::tempdir()?;
    let daemon_addr = start_daemon(&homeboy, dir.path())?;
    let (mut hello, hello_addr) = start_hello()?;
    let (mut timed, timed_addr) = start_hello_with(&["--header-timer"])?;
    let mut ceiling_runs = Vec::new();
    let mut timed_runs = Vec::new();
    let mut daemon_runs = Vec::new();
    for _ in 0..ROUNDS {
        ceiling_runs.push(load::run(
            hello_addr,
            "/",
            CONNECTIONS,
            Duration::from_secs(LOAD_SECS),
        )?);
        timed_runs.push(load::run(
            timed_addr,
            "/",
            CONNECTIONS,
            Duration::from_secs(LOAD_SECS),
        )?);
        daemon_runs.push(load::run(
            daemon_addr,
            "/health",
            CONNECTIONS,
            Duration::from_secs(LOAD_SECS),
        )?);
    }
    for child in [&mut hello, &mut timed] {
        let _ = child.kill();
        let _ = child.wait();
    }
    stop_daemon(&homeboy, dir.path())?;
    let ceiling = load::median_run(&mut ceiling_runs);
    let timed = load::median_run(&mut timed_runs);
    let daemon = load::median_run(&mut daemon_runs);

    let row = |name: &str, r: &load::LoadResult| load_row(name, r, ceiling.rps);
    table(
        &format!(
            "GET /health, {CONNECTIONS} keep-alive connections, median of {ROUNDS} interleaved {LOAD_SECS} s rounds"
        ),
        &[
            "server",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "ratio to ceiling",
        ],
        &[
            row("hyper hello (ceiling)", &ceiling),
            row("hyper hello + hyper's header timer", &timed),
            row("homeboy daemon (edge idle timeout)", &daemon),
        ],
    );
    println!(
        "\nthroughput ratio {} (target >= 0.85): {}",
        ratio(daemon.rps, ceiling.rps),
        verdict(daemon.rps >= 0.85 * ceiling.rps)
    );
    Ok(())
}

fn homeboy_cmd(homeboy: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(homeboy);
    cmd.env("HOMEBOY_CONFIG_DIR", home.join("config"))
        .env("HOMEBOY_DATA_DIR", home.join("data"));
    cmd
}

pub(super) fn start_daemon(homeboy: &Path, home: &Path) -> anyhow::Result<SocketAddr> {
    let out = homeboy_cmd(homeboy, home)
        .args(["daemon", "start", "--format", "json"])
        .output()
        .context("run homeboy daemon start")?;
    if !out.status.success() {
        bail!(
            "daemon start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let addr = v["status"]["addr"]
        .as_str()
        .context("start printed no address")?;
    Ok(addr.parse()?)
}

pub(super) fn stop_daemon(homeboy: &Path, home: &Path) -> anyhow::Result<()> {
    let status = homeboy_cmd(homeboy, home)
        .args(["daemon", "stop"])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("daemon stop failed");
    }
    Ok(())
}

fn start_hello() -> anyhow::Result<(Child, SocketAddr)> {
    start_hello_with(&[])
}

/// The hyper ceiling server, with `bench-hello` arguments (`--body FILE`).
pub(super) fn start_hello_with(args: &[&str]) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = Command::new(release_bin("xtask"))
        .arg("bench-hello")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .context("start the hyper hello server")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let port: u16 = line
        .trim()
        .strip_prefix("port=")
        .context("hello printed no port")?
        .parse()?;
    Ok((child, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// One blocking `GET` with `Connection: close`: status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no header end")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    Ok((status, raw[split + 4..].to_vec()))
}
