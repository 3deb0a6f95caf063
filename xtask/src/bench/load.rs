//! Load generation: wrk when available (installed from Debian's packages if missing and we may), else a
//! built-in keep-alive HTTP/1.1 loop on hyper. Both report requests/s and p50/p99 latency.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// One load run's figures.
#[derive(Debug, Clone, Copy)]
pub struct LoadResult {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// The run with the median throughput of several.
pub fn median_run(runs: &mut [LoadResult]) -> LoadResult {
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    runs[runs.len() / 2]
}

/// Which generator produced the numbers.
pub fn generator_name() -> &'static str {
    if find_program("wrk").is_some() {
        "wrk"
    } else {
        "built-in hyper loop"
    }
}

/// GETs `path` on `addr` over `connections` keep-alive connections for `duration`.
pub fn run(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    run_with_host(addr, None, path, connections, duration)
}

/// Like [`run`], sending `Host: host` when given (for servers that route by host).
pub fn run_with_host(
    addr: SocketAddr,
    host: Option<&str>,
    path: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let host = host.map_or_else(|| addr.to_string(), str::to_string);
    match find_program("wrk") {
        Some(wrk) => run_wrk(&wrk, addr, &host, path, connections, duration),
        None => run_builtin(addr, &host, path, connections, duration),
    }
}

/// The program's path on PATH, installing its Debian package first when we are root and it is missing.
pub fn ensure_program(program: &str, package: &str) -> Option<PathBuf> {
    if let Some(found) = find_program(program) {
        return Some(found);
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|o| o.stdout.starts_with(b"0"));
    if is_root && find_program("apt-get").is_some() {
        eprintln!("bench: installing {package} from Debian's packages");
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "-qq", package])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        if !install() {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            install();
        }
    }
    find_program(program)
}

/// The program's path on PATH (or in /usr/sbin, where Debian puts daemons).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn run_wrk(
    wrk: &PathBuf,
    addr: SocketAddr,
    host: &str,
    path: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let out = Command::new(wrk)
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs().max(1)),
            "--latency",
            "-H",
            &format!("Host: {host}"),
        ])
        .arg(format!("http://{addr}{path}"))
        .output()
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text).with_context(|| format!("parse wrk output:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<LoadResult> {
    let mut result = LoadResult {
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
    };
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            result.rps = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("50%") {
            result.p50_ms = parse_duration_ms(v.trim())?;
        } else if let Some(v) = line.strip_prefix("99%") {
            result.p99_ms = parse_duration_ms(v.trim())?;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            result.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    (result.rps > 0.0).then_some(result)
}

fn parse_duration_ms(v: &str) -> Option<f64> {
    let (num, factor) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.trim().parse::<f64>().ok().map(|n| n * factor)
}

fn run_builtin(
    addr: SocketAddr,
    host: &str,
    path: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let warmup = Duration::from_millis(500);
        let start = Instant::now();
        let measure_from = start + warmup;
        let stop_at = measure_from + duration;
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (path, host) = (path.to_string(), host.to_string());
            tasks.push(tokio::spawn(async move {
                connection_loop(addr, &host, &path, measure_from, stop_at).await
            }));
        }
        let mut latencies: Vec<u32> = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, errs) = t.await?;
            latencies.extend(lat);
            errors += errs;
        }
        latencies.sort_unstable();
        let pct = |p: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            let idx = ((latencies.len() as f64 * p) as usize).min(latencies.len() - 1);
            f64::from(latencies[idx]) / 1000.0
        };
        Ok(LoadResult {
            rps: latencies.len() as f64 / duration.as_secs_f64(),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            errors,
        })
    })
}

async fn connection_loop(
    addr: SocketAddr,
    host: &str,
    path: &str,
    measure_from: Instant,
    stop_at: Instant,
) -> (Vec<u32>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return (latencies, 1);
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return (latencies, 1);
    };
    tokio::spawn(conn);
    while Instant::now() < stop_at {
        let req = hyper::Request::get(path)
            .header("host", host)
            .body(Empty::<Bytes>::new())
            .expect("request");
        let began = Instant::now();
        match sender.send_request(req).await {
            Ok(resp) => {
                let ok = resp.status().is_success();
                let _ = resp.into_body().collect().await;
                if began >= measure_from {
                    if ok {
                        latencies.push(began.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors += 1;
                    }
                }
            }
            Err(_) => {
                errors += 1;
                break;
            }
        }
    }
    (latencies, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_latency_report() {
        let text = "Running 5s test @ http://127.0.0.1:1/health\n  2 threads and 64 connections\n  Latency Distribution\n     50%  450.00us\n     75%  600.00us\n     90%    1.00ms\n     99%    2.10ms\n  123456 requests in 5.00s, 12.34MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:  24691.20\nTransfer/sec:      2.47MB\n";
        let r = parse_wrk(text).unwrap();
        assert!((r.rps - 24691.2).abs() < 0.01);
        assert!((r.p50_ms - 0.45).abs() < 1e-9);
        assert!((r.p99_ms - 2.1).abs() < 1e-9);
        assert_eq!(r.errors, 3);
    }
}
