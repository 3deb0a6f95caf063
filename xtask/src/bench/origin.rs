//! `cargo xtask bench origin`: `homeboy tunnel artifact-origin serve` against nginx (Debian's package,
//! started by this run on loopback with an equivalent static config: 2 workers, sendfile on, access log
//! off, keep-alive without a request cap) over the same directory.
//!
//! Measures, interleaving the two servers so drift on a shared machine hits both alike:
//! - requests/s and p99 for a 4 KiB file at 64 keep-alive connections (wrk);
//! - MB/s for a 1 GiB file over one connection (a plain blocking client that discards the body);
//! - the origin's resident memory while it streams (sampled VmRSS, and VmHWM, the peak over its life).
//!
//! Targets: ≥ 0.8× nginx req/s, ≥ 0.9× nginx MB/s, origin RSS under 32 MiB while streaming.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::report::{load_row, median, ratio, table, verdict};
use super::{load, release_bin};

const CONNECTIONS: usize = 64;
const LOAD_SECS: u64 = 4;
const ROUNDS: usize = 3;
const SMALL_FILE: &str = "small-4k.dat";
const LARGE_FILE: &str = "large-1g.dat";
const LARGE_BYTES: u64 = 1 << 30;
const RSS_TARGET_MIB: f64 = 32.0;

pub fn run() -> anyhow::Result<()> {
    let wrk = load::ensure_program("wrk", "wrk");
    let nginx = load::ensure_program("nginx", "nginx-light")
        .context("nginx is needed as the baseline: apt-get install nginx-light")?;
    println!(
        "# bench origin (load generator: {})",
        if wrk.is_some() {
            "wrk"
        } else {
            "built-in hyper loop"
        }
    );
    let dir = tempfile::tempdir()?;
    let www = dir.path().join("www");
    write_files(&www)?;

    let nginx_server = Nginx::start(&nginx, dir.path(), &www)?;
    let origin_server = Origin::start(&www)?;
    let servers = [
        ("nginx (baseline)", nginx_server.addr),
        ("homeboy artifact-origin", origin_server.addr),
    ];
    for (name, addr) in servers {
        let (status, bytes) = fetch(addr, &format!("/{SMALL_FILE}"))?;
        if status != 200 || bytes != 4096 {
            bail!("{name} answered {status} with {bytes} bytes for the 4 KiB file");
        }
    }

    // (a) 4 KiB at 64 connections.
    let mut small: [Vec<load::LoadResult>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, (_, addr)) in servers.iter().enumerate() {
            small[i].push(load::run(
                *addr,
                &format!("/{SMALL_FILE}"),
                CONNECTIONS,
                Duration::from_secs(LOAD_SECS),
            )?);
        }
    }
    let small_nginx = load::median_run(&mut small[0]);
    let small_origin = load::median_run(&mut small[1]);

    // (b) 1 GiB over one connection, with the origin's RSS sampled meanwhile. One warm-up transfer each
    // puts the file in the page cache for both.
    for (_, addr) in servers {
        fetch(addr, &format!("/{LARGE_FILE}"))?;
    }
    let sampler = RssSampler::start(origin_server.pid());
    let mut large: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, (name, addr)) in servers.iter().enumerate() {
            let began = Instant::now();
            let (status, bytes) = fetch(*addr, &format!("/{LARGE_FILE}"))?;
            let secs = began.elapsed().as_secs_f64();
            if status != 200 || bytes != LARGE_BYTES {
                bail!("{name} answered {status} with {bytes} bytes for the 1 GiB file");
            }
            large[i].push(bytes as f64 / 1e6 / secs);
        }
    }
    let streaming_rss_mib = sampler.stop();
    let peak_rss_mib = vm_kib(origin_server.pid(), "VmHWM:").unwrap_or(0) as f64 / 1024.0;
    let large_nginx = median(&mut large[0]);
    let large_origin = median(&mut large[1]);

    let rps_ok = small_origin.rps >= 0.8 * small_nginx.rps;
    let row = |name: &str, r: &load::LoadResult| load_row(name, r, small_nginx.rps);
    table(
        &format!(
            "GET 4 KiB file, {CONNECTIONS} keep-alive connections, median of {ROUNDS} interleaved {LOAD_SECS} s rounds"
        ),
        &[
            "server",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "ratio to nginx",
        ],
        &[
            row("nginx (baseline)", &small_nginx),
            row("homeboy artifact-origin", &small_origin),
        ],
    );
    println!(
        "\nreq/s ratio {} (target >= 0.80): {}",
        ratio(small_origin.rps, small_nginx.rps),
        verdict(rps_ok)
    );

    let mbps_ok = large_origin >= 0.9 * large_nginx;
    table(
        &format!("GET 1 GiB file, one connection, median of {ROUNDS} interleaved transfers"),
        &["server", "MB/s", "ratio to nginx"],
        &[
            vec![
                "nginx (baseline)".into(),
                format!("{large_nginx:.0}"),
                ratio(large_nginx, large_nginx),
            ],
            vec![
                "homeboy artifact-origin".into(),
                format!("{large_origin:.0}"),
                ratio(large_origin, large_nginx),
            ],
        ],
    );
    println!(
        "\nMB/s ratio {} (target >= 0.90): {}",
        ratio(large_origin, large_nginx),
        verdict(mbps_ok)
    );

    let rss_ok = streaming_rss_mib < RSS_TARGET_MIB;
    table(
        "artifact-origin memory",
        &["measure", "MiB", "target", "verdict"],
        &[
            vec![
                "max VmRSS while streaming 1 GiB".into(),
                format!("{streaming_rss_mib:.1}"),
                format!("< {RSS_TARGET_MIB:.0}"),
                verdict(rss_ok),
            ],
            vec![
                "VmHWM (peak over the whole run, incl. 64 connections)".into(),
                format!("{peak_rss_mib:.1}"),
                "-".into(),
                "-".into(),
            ],
        ],
    );
    drop(origin_server);
    drop(nginx_server);
    Ok(())
}

/// The 4 KiB file and the 1 GiB file (real bytes, not a sparse file).
fn write_files(www: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(www)?;
    let pattern: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(www.join(SMALL_FILE), &pattern[..4096])?;
    let mut large = std::io::BufWriter::new(std::fs::File::create(www.join(LARGE_FILE))?);
    for _ in 0..(LARGE_BYTES / pattern.len() as u64) {
        large.write_all(&pattern)?;
    }
    large.flush()?;
    Ok(())
}

struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Nginx {
    fn start(nginx: &Path, dir: &Path, www: &Path) -> anyhow::Result<Nginx> {
        let port = free_port()?;
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("tmp"))?;
        let conf = prefix.join("nginx.conf");
        let tmp = prefix.join("tmp");
        std::fs::write(
            &conf,
            format!(
                "user root;\nworker_processes 2;\ndaemon off;\npid {pid};\nerror_log {err} warn;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 10000000;\n\
                 default_type application/octet-stream;\n\
                 client_body_temp_path {t}; proxy_temp_path {t}; fastcgi_temp_path {t}; uwsgi_temp_path {t}; scgi_temp_path {t};\n\
                 server {{ listen 127.0.0.1:{port}; root {www}; }}\n}}\n",
                pid = prefix.join("nginx.pid").display(),
                err = prefix.join("error.log").display(),
                t = tmp.display(),
                www = www.display(),
            ),
        )?;
        let child = Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&prefix)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start nginx")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_listening(addr, "nginx")?;
        Ok(Nginx { child, addr })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: graceful shutdown of the master and its workers.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

struct Origin {
    child: Child,
    addr: SocketAddr,
}

impl Origin {
    fn start(www: &Path) -> anyhow::Result<Origin> {
        let home = www.parent().context("www has a parent")?;
        let mut child = Command::new(release_bin("homeboy"))
            .args([
                "tunnel",
                "artifact-origin",
                "serve",
                "--bind",
                "127.0.0.1:0",
            ])
            .env("HOMEBOY_CONFIG_DIR", home.join("config"))
            .env("HOMEBOY_DATA_DIR", home.join("data"))
            .env("HOMEBOY_ARTIFACT_ROOT", www)
            .stdout(Stdio::piped())
            .spawn()
            .context("start homeboy tunnel artifact-origin serve")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .with_context(|| format!("the origin printed no address: {line:?}"))?
            .parse()?;
        Ok(Origin { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Samples the origin's VmRSS every 10 ms on a thread; `stop` returns the maximum in MiB.
struct RssSampler {
    stop: Arc<AtomicBool>,
    max_kib: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max_kib = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, max_kib) = (Arc::clone(&stop), Arc::clone(&max_kib));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = vm_kib(pid, "VmRSS:") {
                        max_kib.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        RssSampler {
            stop,
            max_kib,
            thread,
        }
    }

    fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.max_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

/// A `kB` line of /proc/<pid>/status.
pub(super) fn vm_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{what} did not listen on {addr}")
}

/// One `GET` with `Connection: close`, the body read and discarded in 256 KiB reads: status and body bytes.
fn fetch(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, u64)> {
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut head = Vec::new();
    let (status, mut body) = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]);
            let status = text
                .split_whitespace()
                .nth(1)
                .context("no status")?
                .parse()?;
            break (status, (head.len() - end - 4) as u64);
        }
    };
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok((status, body));
        }
        body += n as u64;
    }
}
