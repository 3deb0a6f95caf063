//! `cargo xtask bench preview`: native public preview against its ceiling and its peers, in one run.
//!
//! One origin (nginx serving a 1 KiB file and a 100 MiB file) behind five paths: the origin itself (the
//! ceiling), nginx `proxy_pass` with keep-alive upstreams, the homeboy ingress on a direct route, the
//! homeboy multiplexed channel (ingress + `homeboy tunnel preview-client`, HTTP/2 over one upgraded
//! connection; the JSON long-poll fallback is measured too, for information), and rathole as the peer
//! tunnel. Requests/s and p50/p99 at 64 connections in interleaved rounds, then MB/s for the 100 MiB
//! download through each. Then the live rows ([`super::preview_live`]): WebSocket echo messages/s, 1,000
//! slow requests at once, and the ingress's memory per idle client and per open stream.
//! Targets: direct route ≥ 1.0× nginx; channel ≥ 1.0× rathole in req/s and in MB/s; WebSocket echo
//! through the channel ≥ 0.5× the origin directly; all 1,000 slow requests complete; < 64 KiB of ingress
//! memory per idle client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::load::{self, LoadResult};
use super::preview_live::{self, IdleClients, LiveOrigin};
use super::release_bin;
use super::report::{median, ratio, table, verdict};

const CONNECTIONS: usize = 64;
const LOAD_SECS: u64 = 4;
const ROUNDS: usize = 3;
const DOWNLOAD_ROUNDS: usize = 5;
const BIG: u64 = 100 * 1024 * 1024;
const SMALL_PATH: &str = "/small.html";
const BIG_PATH: &str = "/big.bin";
const TOKEN: &str = "hbp-bench-token-0d9c8b7a6f5e4d3c2b1a";
const WS_CONNECTIONS: usize = 16;
const WS_WINDOW: usize = 16;
const SLOW_STREAMS: usize = 1000;
const SLOW_HOLD: Duration = Duration::from_secs(2);
const IDLE_CLIENTS: usize = 2000;
const IDLE_TARGET_KIB: f64 = 64.0;

/// One way to reach the origin.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    host: Option<String>,
}

/// Children stopped when the bench ends, however it ends: SIGTERM first (nginx's master then stops its
/// workers; SIGKILL would orphan them), SIGKILL after two seconds.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for child in &mut self.0 {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn run() -> anyhow::Result<()> {
    // Thousands of sockets are held at once.
    homeboy_http::workers::raise_open_file_limit();
    load::ensure_program("wrk", "wrk");
    let nginx =
        load::ensure_program("nginx", "nginx-light").context("nginx is needed for this bench")?;
    let rathole = ensure_rathole()?;
    println!(
        "# bench preview (load generator: {})",
        load::generator_name()
    );

    let dir = tempfile::Builder::new()
        .prefix("homeboy-bench-preview-")
        .tempdir()?;
    let root = dir.path();
    // nginx workers run as an unprivileged user: let them read the files.
    set_mode(root, 0o755)?;
    let www = root.join("www");
    std::fs::create_dir_all(&www)?;
    set_mode(&www, 0o755)?;
    std::fs::write(www.join("small.html"), vec![b'x'; 1024])?;
    write_big_file(&www.join("big.bin"))?;

    let mut children = Children(Vec::new());
    let (origin_port, proxy_port) = (free_port()?, free_port()?);
    children
        .0
        .push(start_nginx(&nginx, root, &www, origin_port, proxy_port)?);
    let origin = SocketAddr::from(([127, 0, 0, 1], origin_port));
    let nginx_proxy = SocketAddr::from(([127, 0, 0, 1], proxy_port));
    wait_for_http(origin, None)?;
    wait_for_http(nginx_proxy, None)?;

    // homeboy: a config dir with the policy, the ingress, a direct route and two clients.
    let home = root.join("home");
    declare_policy(&home)?;
    let (ingress_child, ingress) = start_ingress(&home)?;
    children.0.push(ingress_child);
    let origin_url = format!("http://{origin}");
    homeboy(&home)
        .args([
            "tunnel",
            "preview-ingress",
            "route",
            "direct",
            "--public-host",
            "direct.preview.bench",
            "--upstream-origin",
            &origin_url,
        ])
        .stdout(Stdio::null())
        .status()
        .context("route the direct session")?;
    children.0.push(start_client(
        &home,
        ingress,
        "channel.preview.bench",
        &origin_url,
        "mux",
    )?);
    children.0.push(start_client(
        &home,
        ingress,
        "longpoll.preview.bench",
        &origin_url,
        "long-poll",
    )?);
    for host in [
        "direct.preview.bench",
        "channel.preview.bench",
        "longpoll.preview.bench",
    ] {
        wait_for_http(ingress, Some(host))?;
    }

    // The live origin (WebSocket echo, slow requests), on a direct route and behind a channel.
    let live = LiveOrigin::start()?;
    homeboy(&home)
        .args([
            "tunnel",
            "preview-ingress",
            "route",
            "live-direct",
            "--public-host",
            "live-direct.preview.bench",
            "--upstream-origin",
            &live.url(),
        ])
        .stdout(Stdio::null())
        .status()
        .context("route the live direct session")?;
    children.0.push(start_client(
        &home,
        ingress,
        "live.preview.bench",
        &live.url(),
        "mux",
    )?);

    // rathole: public ports forwarded to the origin and to the live origin.
    let (control_port, public_port, live_port) = (free_port()?, free_port()?, free_port()?);
    let (server, client) = start_rathole(
        &rathole,
        root,
        control_port,
        &[(public_port, origin_port), (live_port, live.addr.port())],
    )?;
    children.0.push(server);
    children.0.push(client);
    let rathole_addr = SocketAddr::from(([127, 0, 0, 1], public_port));
    let rathole_live = SocketAddr::from(([127, 0, 0, 1], live_port));
    wait_for_http(rathole_addr, None)?;
    wait_for_http(rathole_live, None)?;
    for host in ["live-direct.preview.bench", "live.preview.bench"] {
        wait_for_http(ingress, Some(host))?;
    }

    let targets = [
        Target {
            name: "origin (ceiling)",
            addr: origin,
            host: None,
        },
        Target {
            name: "nginx proxy_pass",
            addr: nginx_proxy,
            host: None,
        },
        Target {
            name: "homeboy ingress, direct route",
            addr: ingress,
            host: Some("direct.preview.bench".into()),
        },
        Target {
            name: "homeboy channel (mux)",
            addr: ingress,
            host: Some("channel.preview.bench".into()),
        },
        Target {
            name: "homeboy channel (long-poll fallback, info)",
            addr: ingress,
            host: Some("longpoll.preview.bench".into()),
        },
        Target {
            name: "rathole",
            addr: rathole_addr,
            host: None,
        },
    ];

    // Requests/s: every target once per round, rounds interleaved.
    let mut runs: Vec<Vec<LoadResult>> = vec![Vec::new(); targets.len()];
    for _ in 0..ROUNDS {
        for (i, t) in targets.iter().enumerate() {
            runs[i].push(load::run_with_host(
                t.addr,
                t.host.as_deref(),
                SMALL_PATH,
                CONNECTIONS,
                Duration::from_secs(LOAD_SECS),
            )?);
        }
    }
    let results: Vec<LoadResult> = runs.iter_mut().map(|r| load::median_run(r)).collect();

    // MB/s: the 100 MiB file through each, every path once per round, rounds interleaved.
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for _ in 0..DOWNLOAD_ROUNDS {
        for (i, t) in targets.iter().enumerate() {
            samples[i].push(download_mb_s(t.addr, t.host.as_deref(), BIG_PATH)?);
        }
    }
    let speeds: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();

    let (direct, rathole_i, nginx_i, route_i, channel_i) = (0, 5, 1, 2, 3);
    let rows: Vec<Vec<String>> = targets
        .iter()
        .zip(&results)
        .map(|(t, r)| {
            vec![
                t.name.to_string(),
                format!("{:.0}", r.rps),
                format!("{:.3}", r.p50_ms),
                format!("{:.3}", r.p99_ms),
                r.errors.to_string(),
                ratio(r.rps, results[direct].rps),
                ratio(r.rps, results[rathole_i].rps),
            ]
        })
        .collect();
    table(
        &format!(
            "GET 1 KiB, {CONNECTIONS} keep-alive connections, median of {ROUNDS} interleaved {LOAD_SECS} s rounds"
        ),
        &[
            "path",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "vs origin",
            "vs rathole",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = targets
        .iter()
        .zip(&speeds)
        .map(|(t, s)| {
            vec![
                t.name.to_string(),
                format!("{s:.0}"),
                ratio(*s, speeds[direct]),
                ratio(*s, speeds[rathole_i]),
            ]
        })
        .collect();
    table(
        &format!("GET 100 MiB, one connection, median of {DOWNLOAD_ROUNDS} interleaved rounds"),
        &["path", "MB/s", "vs origin", "vs rathole"],
        &rows,
    );

    let live_figures = live_rows(ingress, &live, rathole_live, root)?;
    let checks = [
        (
            "direct route req/s vs nginx proxy_pass (target >= 1.00)",
            results[route_i].rps / results[nginx_i].rps,
            1.0,
        ),
        (
            "channel req/s vs rathole (target >= 1.00)",
            results[channel_i].rps / results[rathole_i].rps,
            1.0,
        ),
        (
            "channel MB/s vs rathole (target >= 1.00)",
            speeds[channel_i] / speeds[rathole_i],
            1.0,
        ),
        (
            "WebSocket echo through the channel vs the origin (target >= 0.50)",
            live_figures.ws_ratio,
            0.5,
        ),
    ];
    println!();
    for (what, value, target) in checks {
        println!("{what}: {value:.2}x {}", verdict(value >= target));
    }
    println!(
        "{SLOW_STREAMS} slow requests through one channel: {} completed {}",
        live_figures.slow_completed,
        verdict(live_figures.slow_completed == SLOW_STREAMS)
    );
    println!(
        "ingress memory per idle client (target < {IDLE_TARGET_KIB:.0} KiB): {:.1} KiB {}",
        live_figures.idle_kib,
        verdict(live_figures.idle_kib < IDLE_TARGET_KIB)
    );
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    if errors > 0 {
        println!("note: {errors} requests failed during the load runs (see the errors column)");
    }
    drop(children);
    Ok(())
}

/// What the live rows found that the verdicts need.
struct LiveFigures {
    ws_ratio: f64,
    slow_completed: usize,
    idle_kib: f64,
}

fn live_rows(
    ingress: SocketAddr,
    live: &LiveOrigin,
    rathole_live: SocketAddr,
    root: &Path,
) -> anyhow::Result<LiveFigures> {
    // WebSocket echo, every path once per round, rounds interleaved.
    let ws_targets = [
        ("origin (ceiling)", live.addr, "origin"),
        (
            "homeboy ingress, direct route",
            ingress,
            "live-direct.preview.bench",
        ),
        ("homeboy channel (mux)", ingress, "live.preview.bench"),
        ("rathole", rathole_live, "rathole"),
    ];
    let mut samples = vec![Vec::new(); ws_targets.len()];
    for _ in 0..ROUNDS {
        for (i, (_, addr, host)) in ws_targets.iter().enumerate() {
            samples[i].push(preview_live::ws_echo_rate(
                *addr,
                host,
                WS_CONNECTIONS,
                WS_WINDOW,
                Duration::from_secs(LOAD_SECS),
            )?);
        }
    }
    let rates: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    let rows: Vec<Vec<String>> = ws_targets
        .iter()
        .zip(&rates)
        .map(|((name, _, _), rate)| {
            vec![
                name.to_string(),
                format!("{rate:.0}"),
                ratio(*rate, rates[0]),
                ratio(*rate, rates[3]),
            ]
        })
        .collect();
    table(
        &format!(
            "WebSocket echo, {WS_CONNECTIONS} connections x {WS_WINDOW} messages of 64 B in flight, median of {ROUNDS} interleaved {LOAD_SECS} s rounds"
        ),
        &["path", "messages/s", "vs origin", "vs rathole"],
        &rows,
    );

    // 1,000 requests held 2 s by the origin, all at once.
    let mut rows = Vec::new();
    let mut channel_completed = 0;
    for (name, addr, host) in [
        ("origin directly", live.addr, "origin"),
        ("rathole", rathole_live, "rathole"),
        ("homeboy channel (mux)", ingress, "live.preview.bench"),
    ] {
        let run = preview_live::slow_requests(addr, host, SLOW_STREAMS, SLOW_HOLD, || None)?;
        if host == "live.preview.bench" {
            channel_completed = run.completed;
        }
        rows.push(vec![
            name.to_string(),
            format!("{}/{SLOW_STREAMS}", run.completed),
            format!("{:.2}", run.slowest.as_secs_f64()),
        ]);
    }

    table(
        &format!(
            "{SLOW_STREAMS} requests at once, each held {} s by the origin",
            SLOW_HOLD.as_secs()
        ),
        &["path", "completed", "slowest s"],
        &rows,
    );

    // Memory per open stream: a fresh ingress (its own config) with one channel, and the slow requests
    // through it.
    let (streams_ingress, streams_children) = fresh_ingress(root, "home-streams", live)?;
    let pid = streams_children.0[0].id();
    let rss = || super::origin::vm_kib(pid, "VmRSS:");
    let rss_quiet = rss().context("read the ingress's VmRSS")?;
    let run = preview_live::slow_requests(
        streams_ingress,
        "streams.preview.bench",
        SLOW_STREAMS,
        SLOW_HOLD,
        rss,
    )?;
    let stream_kib = run
        .sampled_kib
        .unwrap_or(rss_quiet)
        .saturating_sub(rss_quiet) as f64
        / SLOW_STREAMS as f64;
    drop(streams_children);

    // Memory per idle client: another fresh ingress with one channel, then 2,000 idle clients, then the
    // slow requests through the channel while they are all connected.
    let (mem_ingress, children) = fresh_ingress(root, "home-memory", live)?;
    let pid = children.0[0].id();
    let rss = || super::origin::vm_kib(pid, "VmRSS:");
    let rss_before = rss().context("read the ingress's VmRSS")?;
    let began = Instant::now();
    let idle = IdleClients::start(
        mem_ingress,
        "preview.bench",
        &live.url(),
        TOKEN,
        IDLE_CLIENTS,
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let connected = connected_channels(mem_ingress)?;
        if connected > IDLE_CLIENTS {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {connected} of {IDLE_CLIENTS} idle clients (and one busy) hold a channel");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let connect_secs = began.elapsed().as_secs_f64();
    let rss_idle = rss().context("read the ingress's VmRSS")?;
    let idle_kib = rss_idle.saturating_sub(rss_before) as f64 / IDLE_CLIENTS as f64;
    let run = preview_live::slow_requests(
        mem_ingress,
        "streams.preview.bench",
        SLOW_STREAMS,
        SLOW_HOLD,
        || None,
    )?;
    table(
        "ingress memory (VmRSS of fresh ingresses)",
        &["what", "figure", "target"],
        &[
            vec![
                "RSS with one channel".into(),
                format!("{:.1} MiB", rss_before as f64 / 1024.0),
                String::new(),
            ],
            vec![
                format!("RSS with {IDLE_CLIENTS} more idle clients"),
                format!(
                    "{:.1} MiB (registered and connected in {connect_secs:.1} s)",
                    rss_idle as f64 / 1024.0
                ),
                String::new(),
            ],
            vec![
                "per idle client".into(),
                format!("{idle_kib:.1} KiB"),
                format!(
                    "< {IDLE_TARGET_KIB:.0} KiB: {}",
                    verdict(idle_kib < IDLE_TARGET_KIB)
                ),
            ],
            vec![
                format!(
                    "per open stream ({SLOW_STREAMS} held on another fresh ingress; public connection included)"
                ),
                format!("{stream_kib:.1} KiB"),
                String::new(),
            ],
            vec![
                format!("{SLOW_STREAMS} slow requests, {IDLE_CLIENTS} idle clients connected"),
                format!(
                    "{}/{SLOW_STREAMS} completed, slowest {:.2} s",
                    run.completed,
                    run.slowest.as_secs_f64()
                ),
                String::new(),
            ],
        ],
    );
    drop(idle);
    drop(children);
    Ok(LiveFigures {
        ws_ratio: rates[2] / rates[0],
        slow_completed: channel_completed,
        idle_kib,
    })
}

/// A fresh ingress (its own config dir `root/<name>`) with one channel, `streams.preview.bench`, to `live`.
fn fresh_ingress(
    root: &Path,
    name: &str,
    live: &LiveOrigin,
) -> anyhow::Result<(SocketAddr, Children)> {
    let home = root.join(name);
    declare_policy(&home)?;
    let (child, ingress) = start_ingress(&home)?;
    let mut children = Children(vec![child]);
    children.0.push(start_client(
        &home,
        ingress,
        "streams.preview.bench",
        &live.url(),
        "mux",
    )?);
    wait_for_http(ingress, Some("streams.preview.bench"))?;
    Ok((ingress, children))
}

/// Channels with a connection, as the ingress's status reports them.
fn connected_channels(ingress: SocketAddr) -> anyhow::Result<usize> {
    // The route list is paginated: walk every page.
    let mut connected = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{}?limit=1000", homeboy_preview::ingress::STATUS_PATH);
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let mut body = Vec::new();
        let (status, _) = get(ingress, Some("127.0.0.1"), &path, &mut body)?;
        if status != 200 {
            bail!("the ingress status answered {status}");
        }
        let doc: serde_json::Value = serde_json::from_slice(&body)?;
        connected += doc["data"]["routes"].as_array().map_or(0, |routes| {
            routes
                .iter()
                .filter(|r| r["channel"]["stats"]["connections"] == 1)
                .count()
        });
        match doc["data"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(connected),
        }
    }
}

fn homeboy(home: &Path) -> Command {
    let mut cmd = Command::new(release_bin("homeboy"));
    cmd.env("HOMEBOY_CONFIG_DIR", home.join("config"))
        .env("HOMEBOY_DATA_DIR", home.join("data"));
    cmd
}

fn declare_policy(home: &Path) -> anyhow::Result<()> {
    let dir = home.join("config/tunnel/services");
    std::fs::create_dir_all(&dir)?;
    let digest = sha256_hex(TOKEN)?;
    let doc = serde_json::json!({
        "id": "bench",
        "remote_port": 7331,
        "auth": {"mode": "bearer-env", "env": "BENCH_TOKEN"},
        "policy": {"native_preview_auth": {
            "allowed_public_hosts": ["*.preview.bench"],
            "tokens": [{"id": "bench", "token_sha256": digest, "allowed_clients": ["bench"]}],
            // One token and one client id hold every idle client's host here (thousands), far past the
            // per-token and per-client defaults a real deployment keeps.
            "max_sessions_per_token": 100_000,
            "max_sessions_per_client": 100_000
        }}
    });
    std::fs::write(dir.join("bench.json"), doc.to_string())?;
    Ok(())
}

/// SHA-256 through `sha256sum` (xtask keeps its dependencies few).
fn sha256_hex(text: &str) -> anyhow::Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("run sha256sum")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    let hex = String::from_utf8_lossy(&out.stdout);
    Ok(hex
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

fn start_ingress(home: &Path) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = Command::new(release_bin("homeboy-ingress"))
        .args([
            "serve",
            "--domain",
            "preview.bench",
            "--bind",
            "127.0.0.1:0",
            "--format",
            "json",
        ])
        .env("HOMEBOY_CONFIG_DIR", home.join("config"))
        .env("HOMEBOY_DATA_DIR", home.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start homeboy-ingress")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let v: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("ingress said {line:?}"))?;
    let addr = v["addr"].as_str().context("no address")?.parse()?;
    Ok((child, addr))
}

fn start_client(
    home: &Path,
    ingress: SocketAddr,
    host: &str,
    origin: &str,
    transport: &str,
) -> anyhow::Result<Child> {
    let mut child = homeboy(home)
        .args([
            "tunnel",
            "preview-client",
            "start",
            "--ingress",
            &format!("http://{ingress}"),
            "--public-host",
            host,
            "--local-origin",
            origin,
            "--token-env",
            "BENCH_PREVIEW_TOKEN",
            "--client-id",
            "bench",
            "--transport",
            transport,
            "--format",
            "json",
        ])
        .env("BENCH_PREVIEW_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start the preview client")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    if !line.contains("\"registered\"") {
        bail!("the preview client did not register: {line}");
    }
    Ok(child)
}

fn start_nginx(
    nginx: &Path,
    root: &Path,
    www: &Path,
    origin: u16,
    proxy: u16,
) -> anyhow::Result<Child> {
    let conf = root.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 2;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on;
  client_body_temp_path {root}/client_body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
  upstream origin {{ server 127.0.0.1:{origin}; keepalive 64; }}
  server {{ listen 127.0.0.1:{origin}; root {www}; }}
  server {{ listen 127.0.0.1:{proxy}; location / {{ proxy_pass http://origin;
           proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}
}}
",
            root = root.display(),
            www = www.display(),
        ),
    )?;
    Command::new(nginx)
        .arg("-p")
        .arg(root)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(root.join("nginx-error.log"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start nginx")
}

fn start_rathole(
    rathole: &Path,
    root: &Path,
    control: u16,
    services: &[(u16, u16)],
) -> anyhow::Result<(Child, Child)> {
    let mut server =
        format!("[server]\nbind_addr = \"127.0.0.1:{control}\"\ndefault_token = \"tok\"\n");
    let mut client =
        format!("[client]\nremote_addr = \"127.0.0.1:{control}\"\ndefault_token = \"tok\"\n");
    for (i, (public, local)) in services.iter().enumerate() {
        server.push_str(&format!(
            "[server.services.s{i}]\nbind_addr = \"127.0.0.1:{public}\"\n"
        ));
        client.push_str(&format!(
            "[client.services.s{i}]\nlocal_addr = \"127.0.0.1:{local}\"\n"
        ));
    }
    let server_conf = root.join("rathole-server.toml");
    std::fs::write(&server_conf, server)?;
    let client_conf = root.join("rathole-client.toml");
    std::fs::write(&client_conf, client)?;
    let spawn = |flag: &str, conf: &Path| {
        Command::new(rathole)
            .arg(flag)
            .arg(conf)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start rathole")
    };
    let server = spawn("--server", &server_conf)?;
    std::thread::sleep(Duration::from_millis(200));
    let client = spawn("--client", &client_conf)?;
    Ok((server, client))
}

/// rathole from crates.io, installed with `cargo install rathole` when missing (without `--locked`: its
/// lock file pins a `time` release that no longer builds).
fn ensure_rathole() -> anyhow::Result<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let find = || {
        load::find_program("rathole").or_else(|| {
            cargo_home
                .as_ref()
                .map(|h| h.join("bin/rathole"))
                .filter(|p| p.is_file())
        })
    };
    if let Some(found) = find() {
        return Ok(found);
    }
    eprintln!("bench: installing rathole with `cargo install rathole` (a few minutes)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(["install", "rathole"])
        .status()
        .context("run cargo install rathole")?;
    if !status.success() {
        bail!("cargo install rathole failed");
    }
    find().context("rathole is still not found after cargo install")
}

fn write_big_file(path: &Path) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut block = vec![0u8; 1024 * 1024];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..(BIG / block.len() as u64) {
        for byte in block.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        file.write_all(&block)?;
    }
    file.flush()?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `GET /small.html` answers 200.
fn wait_for_http(addr: SocketAddr, host: Option<&str>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok((200, _)) = get(addr, host, SMALL_PATH, &mut std::io::sink()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{addr} ({host:?}) did not answer 200 on {SMALL_PATH}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Downloads `path` once and returns MB/s (10^6 bytes per second); the byte count must match.
fn download_mb_s(addr: SocketAddr, host: Option<&str>, path: &str) -> anyhow::Result<f64> {
    let began = Instant::now();
    let (status, bytes) = get(addr, host, path, &mut std::io::sink())?;
    let secs = began.elapsed().as_secs_f64();
    if status != 200 || bytes != BIG {
        bail!("download from {addr} ({host:?}): HTTP {status}, {bytes} bytes");
    }
    Ok(bytes as f64 / secs / 1e6)
}

/// One `GET` with `Connection: close`; the body goes to `sink`. Returns the status and body length.
fn get(
    addr: SocketAddr,
    host: Option<&str>,
    path: &str,
    sink: &mut impl Write,
) -> anyhow::Result<(u16, u64)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let host = host.map_or_else(|| addr.to_string(), str::to_string);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim_end().is_empty() {
            break;
        }
    }
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        sink.write_all(&buf[..n])?;
    }
    Ok((status, total))
}
