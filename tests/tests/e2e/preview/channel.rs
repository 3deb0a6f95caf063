//! The multiplexed channel and protocol switches end to end: WebSockets and a raw `Upgrade` on a direct
//! route and through the channel (bytes both ways, either side's close reaching the other), the long-poll
//! fallback saying it cannot carry them, 1,000 slow requests at once over one channel, an idle client
//! holding exactly one connection, a stalled download held back by flow control without blocking the
//! channel's other streams, a browser that goes away cancelling the local request, keepalive pings
//! finding a dead channel, requests waiting for a reconnecting client within the grace period, and the
//! install plan's nginx site carrying all of it for real.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use homeboy_e2e::origin::{Origin, dead_port};
use homeboy_e2e::{Home, Http, wait_until};
use serde_json::Value;
use tungstenite::{Message, WebSocket};

use super::{
    Client, Ingress, TOKEN, assert_diagnostic, require_program, route, send_signal, standard_policy,
};
use crate::servers::support::{StopOnDrop, run_nginx};

/// A WebSocket to `path` on `host`, through the listener at `addr`.
fn websocket(addr: &str, host: &str, path: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let (ws, response) = tungstenite::client(format!("ws://{host}{path}"), stream)
        .unwrap_or_else(|e| panic!("WebSocket handshake with {host}{path} failed: {e}"));
    assert_eq!(response.status(), 101);
    ws
}

/// Sends a request asking to switch to `protocol`; returns the status, the head and the connection.
fn raw_upgrade(addr: &str, host: &str, path: &str, protocol: &str) -> (u16, String, TcpStream) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the head ended early");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, stream)
}

/// Echo round trips on a WebSocket: small text, a 1 MiB binary message, many in a row.
fn echo_round_trips(ws: &mut WebSocket<TcpStream>, what: &str) {
    for i in 0..50 {
        let text = format!("message {i} via {what}");
        ws.send(Message::text(text.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text(text), "{what}");
    }
    let big: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(big), "{what}");
}

/// Established TCP connections of process `pid` to port `port`.
fn connections_to(pid: u32, port: u16) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    let inodes: Vec<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .collect();
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let remote_port = cols
                .get(2)
                .and_then(|r| r.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port)
                && cols.get(3) == Some(&"01")
                && cols.get(9).is_some_and(|i| inodes.iter().any(|x| x == i))
            {
                count += 1;
            }
        }
    }
    count
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// The channel statistics of `host` in the ingress status.
fn channel_stats(ingress: &Ingress, http: &Http, host: &str) -> Value {
    let status = ingress.status(http);
    status["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["public_host"] == host)
        .map(|r| r["channel"]["stats"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn websockets_and_upgrades_pass_direct_routes_and_the_channel() {
    let home = Home::new();
    standard_policy(&home);
    let origin = Origin::start("live");
    route(&home, "direct", "direct.preview.test", &origin.url(), &[]);
    let ingress = Ingress::start(&home, &[]);
    let mut mux = Client::start(&home, &ingress, "mux.preview.test", &origin.url(), &[]);
    let mut lp = Client::start(
        &home,
        &ingress,
        "lp.preview.test",
        &origin.url(),
        &["--transport", "long-poll"],
    );
    assert_eq!(mux.registered()["transport"], "mux");
    lp.registered();
    let http = Http::new();
    for host in ["direct.preview.test", "mux.preview.test"] {
        // A WebSocket echoes, small and large messages; the client's close handshake is answered and the
        // origin's close reaches the browser's connection.
        let closed_before = origin.upgrades_closed();
        let mut ws = websocket(&ingress.addr, host, "/ws");
        echo_round_trips(&mut ws, host);
        ws.close(None).unwrap();
        loop {
            match ws.read() {
                Ok(_) => continue,
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("{host}: closing failed: {e}"),
            }
        }
        assert!(
            wait_until(Duration::from_secs(10), || origin.upgrades_closed()
                > closed_before),
            "{host}: the origin's side never closed"
        );

        // Any Upgrade: bytes both ways with backpressure (8 MiB written while the echo is read), and the
        // browser's half-close reaches the origin, whose close comes back.
        let (status, head, stream) = raw_upgrade(&ingress.addr, host, "/upgrade-echo", "x-echo");
        assert_eq!(status, 101, "{host}: {head}");
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("upgrade: x-echo") && lower.contains("connection: upgrade"),
            "{host}: {head}"
        );
        let payload: Vec<u8> = (0..8 * 1024 * 1024u32)
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        let mut writer = stream.try_clone().unwrap();
        let sent = payload.clone();
        let pump = std::thread::spawn(move || {
            for chunk in sent.chunks(64 * 1024) {
                writer.write_all(chunk).unwrap();
            }
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut echoed = Vec::new();
        let mut reader = stream;
        reader.read_to_end(&mut echoed).unwrap();
        pump.join().unwrap();
        assert_eq!(echoed.len(), payload.len(), "{host}: echo length");
        assert!(echoed == payload, "{host}: echo differs");

        // A browser that drops the connection: the origin's side closes too.
        let closed_before = origin.upgrades_closed();
        let mut ws = websocket(&ingress.addr, host, "/ws");
        ws.send(Message::text("one")).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text("one"));
        ws.get_ref().shutdown(Shutdown::Both).unwrap();
        drop(ws);
        assert!(
            wait_until(Duration::from_secs(10), || origin.upgrades_closed()
                > closed_before),
            "{host}: the origin's side stayed open after the browser left"
        );

        // An origin that does not switch answers normally, through the same path.
        let (status, head, mut stream) = raw_upgrade(&ingress.addr, host, "/plain", "x-echo");
        assert_eq!(status, 200, "{host}: {head}");
        let mut body = String::new();
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = BufReader::new(&mut stream).read_line(&mut body);
        assert!(
            head.to_ascii_lowercase().contains("content-length"),
            "{host}: {head}"
        );
        // Ordinary requests still work beside the switched ones.
        assert_eq!(ingress.get(&http, host, "/asset/1").status, 200);
    }
    // The long-poll fallback cannot switch and says so.
    let (status, head, mut stream) =
        raw_upgrade(&ingress.addr, "lp.preview.test", "/ws", "websocket");
    assert_eq!(status, 502, "{head}");
    let mut rest = vec![0u8; 2048];
    let n = stream.read(&mut rest).unwrap_or(0);
    let text = String::from_utf8_lossy(&rest[..n]);
    assert!(text.contains("cannot carry upgrades"), "{text}");
    // Route rules apply to upgrade requests as to any other.
    let (status, _, _) = raw_upgrade(&ingress.addr, "nobody.preview.test", "/ws", "websocket");
    assert_eq!(status, 404);
    // The access log names the switches and the transport that carried them.
    assert!(
        wait_until(Duration::from_secs(5), || ingress.log().lines().any(|l| {
            l.contains("\"status\":101") && l.contains("\"transport\":\"mux\"")
        }) && ingress.log().lines().any(
            |l| { l.contains("\"status\":101") && l.contains("\"transport\":\"direct\"") }
        )),
        "{}",
        ingress.log()
    );
}

#[test]
fn a_thousand_slow_requests_share_one_channel_and_an_idle_client_holds_one_connection() {
    const STREAMS: usize = 1000;
    let home = Home::new();
    standard_policy(&home);
    let origin = Origin::start("patient");
    let ingress = Ingress::start(&home, &[]);
    let mut client = Client::start(&home, &ingress, "many.preview.test", &origin.url(), &[]);
    client.registered();
    let pid = client.child.id();
    let port = port_of(&ingress.addr);
    assert!(
        wait_until(Duration::from_secs(10), || connections_to(pid, port) == 1),
        "the client holds {} connections to the ingress",
        connections_to(pid, port)
    );
    let http = Http::new();
    let barrier = Barrier::new(STREAMS);
    let began = Instant::now();
    std::thread::scope(|s| {
        for i in 0..STREAMS {
            let (ingress, http, barrier) = (&ingress, &http, &barrier);
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn_scoped(s, move || {
                    barrier.wait();
                    let r = ingress.get(http, "many.preview.test", &format!("/slow?ms=2000&i={i}"));
                    assert_eq!(
                        r.status,
                        200,
                        "request {i}: {}",
                        String::from_utf8_lossy(&r.body)
                    );
                    assert_eq!(r.body, b"slow patient");
                })
                .unwrap();
        }
    });
    // They ran side by side, not one after another.
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{:?}",
        began.elapsed()
    );
    let stats = channel_stats(&ingress, &http, "many.preview.test");
    assert_eq!(stats["connections"], 1, "{stats}");
    assert_eq!(stats["connects"], 1, "one connection carried them: {stats}");
    assert!(
        stats["streams"].as_u64().unwrap() >= STREAMS as u64,
        "{stats}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || channel_stats(
            &ingress,
            &http,
            "many.preview.test"
        )["open_streams"]
            == 0),
        "streams stay open"
    );
    // Idle again: still exactly one connection to the ingress.
    assert!(
        wait_until(Duration::from_secs(10), || connections_to(pid, port) == 1),
        "the idle client holds {} connections to the ingress",
        connections_to(pid, port)
    );
}

#[test]
fn a_browser_that_goes_away_cancels_the_local_request() {
    let home = Home::new();
    standard_policy(&home);
    let origin = Origin::start("held");
    route(&home, "direct", "direct.preview.test", &origin.url(), &[]);
    let ingress = Ingress::start(&home, &[]);
    let mut client = Client::start(&home, &ingress, "mux.preview.test", &origin.url(), &[]);
    client.registered();
    let http = Http::new();
    for (n, host) in ["direct.preview.test", "mux.preview.test"]
        .into_iter()
        .enumerate()
    {
        let hits = origin.hits();
        let mut browser = TcpStream::connect(&ingress.addr).unwrap();
        write!(browser, "GET /hold HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || origin.hits() > hits),
            "{host}: the request never reached the origin"
        );
        drop(browser);
        assert!(
            wait_until(Duration::from_secs(10), || origin.aborted() > n),
            "{host}: the origin's request was not cancelled"
        );
        assert_eq!(ingress.get(&http, host, "/asset/2").status, 200, "{host}");
    }
    assert!(wait_until(Duration::from_secs(5), || channel_stats(
        &ingress,
        &http,
        "mux.preview.test"
    )["open_streams"]
        == 0));
}

#[test]
fn a_dead_channel_is_noticed_and_requests_wait_for_the_client_to_come_back() {
    let home = Home::new();
    standard_policy(&home);
    let origin = Origin::start("patient");
    let ingress = Ingress::start(
        &home,
        &[
            "--channel-keepalive-secs",
            "0.5",
            "--client-grace-secs",
            "4",
        ],
    );
    let host = "away.preview.test";
    let mut client = Client::start(
        &home,
        &ingress,
        host,
        &origin.url(),
        &["--keepalive-secs", "0.5"],
    );
    client.registered();
    let http = Http::new();
    assert_eq!(ingress.get(&http, host, "/asset/1").status, 200);

    // The ingress stops answering: the client's pings go unanswered and it says the channel is lost.
    send_signal(&ingress.child, "STOP");
    let lost = wait_until(Duration::from_secs(10), || {
        !client.events("channel_lost").is_empty()
    });
    send_signal(&ingress.child, "CONT");
    assert!(lost, "no channel_lost:\n{}", client.output());
    client.wait_events("registered", 2, Duration::from_secs(40));
    assert!(wait_until(Duration::from_secs(10), || ingress
        .get(&http, host, "/asset/2")
        .status
        == 200));

    // The client stops answering: the ingress notices, and a request made meanwhile waits for the client
    // to come back instead of failing.
    send_signal(&client.child, "STOP");
    let noticed = wait_until(Duration::from_secs(10), || {
        channel_stats(&ingress, &http, host)["connections"] == 0
    });
    let waiting = std::thread::scope(|s| {
        let request = s.spawn(|| ingress.get(&http, host, "/asset/3"));
        // Give the request time to reach the ingress before the client returns.
        assert!(wait_until(Duration::from_secs(5), || ingress.status(&http)
            ["ingress"]["in_flight"]
            .as_u64()
            .unwrap_or(0)
            >= 1));
        send_signal(&client.child, "CONT");
        request.join().unwrap()
    });
    assert!(noticed, "the ingress never noticed the silent client");
    assert_eq!(
        waiting.status,
        200,
        "{}",
        String::from_utf8_lossy(&waiting.body)
    );
    assert_eq!(waiting.body, b"asset 3 from patient");

    // A client that never comes back: the request waits out the grace period, then 410.
    let _ = client.child.kill();
    let _ = client.child.wait();
    let began = Instant::now();
    let r = ingress.get(&http, host, "/asset/4");
    assert_diagnostic(&r, 410, "disconnected_session", host, "/asset/4");
    assert!(
        began.elapsed() >= Duration::from_secs(2),
        "it did not wait: {:?}",
        began.elapsed()
    );
}

/// A rendered install plan for `bind`, and the pieces both proxy tests need.
struct BehindProxy {
    home: Home,
    origin: Origin,
    ingress: Ingress,
    plan: Value,
    scratch: tempfile::TempDir,
}

impl BehindProxy {
    fn new(proxy: &str) -> BehindProxy {
        let home = Home::new();
        standard_policy(&home);
        let origin = Origin::start("behind-a-proxy");
        route(&home, "direct", "direct.preview.test", &origin.url(), &[]);
        let bind = format!("127.0.0.1:{}", dead_port());
        // Behind a proxy no request is local, so the channel API answers only on the ingress's own names.
        // Clients reach this proxy as `127.0.0.1` (no DNS here): name it a control host, as an operator
        // names theirs.
        let ingress = Ingress::start_at(&home, &bind, &["--control-host", "127.0.0.1"]);
        let plan = home.homeboy_json(&[
            "tunnel",
            "preview-ingress",
            "install",
            "--server",
            "example-server",
            "--domain",
            "preview.test",
            "--public-host-pattern",
            "*.preview.test",
            "--bind",
            &bind,
            "--proxy",
            proxy,
        ]);
        let scratch = tempfile::tempdir().unwrap();
        // The proxy's workers may run as an unprivileged user; they need to reach the scratch dir.
        let _ = Command::new("chmod")
            .arg("755")
            .arg(scratch.path())
            .status();
        BehindProxy {
            home,
            origin,
            ingress,
            plan,
            scratch,
        }
    }

    /// Through the proxy at `public`: a preview client's channel, plain requests and WebSockets to a
    /// direct route and through the channel.
    fn check(&self, public: &str, log: &std::path::Path) {
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect(public)
                .is_ok()),
            "the proxy did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        let mut client = Client::start_as(
            &self.home,
            &format!("http://{public}"),
            "mux.preview.test",
            &self.origin.url(),
            TOKEN,
            "lab",
            &[],
        );
        assert_eq!(client.registered()["transport"], "mux");
        let http = Http::new();
        for host in ["direct.preview.test", "mux.preview.test"] {
            let r = http.request(
                "GET",
                &format!("http://{public}/asset/5"),
                &[("host", host)],
                None,
            );
            assert_eq!(
                r.status,
                200,
                "{host}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let mut ws = websocket(public, host, "/ws");
            echo_round_trips(&mut ws, host);
            let _ = ws.close(None);
        }
        let stats = channel_stats(&self.ingress, &http, "mux.preview.test");
        assert_eq!(stats["connections"], 1, "{stats}");
    }
}

/// The plan's nginx site as plain HTTP on `port` (no TLS lines, no port-80 redirect), otherwise verbatim.
fn plain_nginx_site(plan: &Value, port: u16) -> String {
    let site = plan["proxy"]["nginx"]["snippet"].as_str().unwrap();
    let first_server_end = site
        .find("\nserver {\n    listen 80;")
        .unwrap_or(site.len());
    site[..first_server_end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("ssl_") && !l.contains("listen [::]:443"))
        .map(|l| {
            if l.contains("listen 443") {
                format!("    listen 127.0.0.1:{port};")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The install plan's nginx site, as plain HTTP on a loopback port and otherwise verbatim, in front of a
/// real ingress.
#[test]
fn the_install_plans_nginx_site_carries_the_channel_and_websockets() {
    let setup = BehindProxy::new("nginx");
    let port = dead_port();
    let _proxy = run_nginx(
        setup.scratch.path(),
        &plain_nginx_site(&setup.plan, port),
        port,
    );
    let log = setup.scratch.path().join("nginx.log");
    setup.check(&format!("127.0.0.1:{port}"), &log);
}

/// A proxy that does not pass upgrades (the plan's site without its two `Upgrade` lines): the client's
/// channel upgrade is refused, it falls back to long-poll, and the preview works through the proxy.
#[test]
fn a_proxy_that_refuses_upgrades_gets_the_long_poll_fallback() {
    let setup = BehindProxy::new("nginx");
    let port = dead_port();
    let site: String = plain_nginx_site(&setup.plan, port)
        .lines()
        .filter(|l| {
            !l.contains("proxy_set_header Upgrade") && !l.contains("proxy_set_header Connection")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let _proxy = run_nginx(setup.scratch.path(), &site, port);
    let public = format!("127.0.0.1:{port}");
    let mut client = Client::start_as(
        &setup.home,
        &format!("http://{public}"),
        "fallback.preview.test",
        &setup.origin.url(),
        TOKEN,
        "lab",
        &[],
    );
    assert_eq!(client.registered()["transport"], "mux");
    let second = client.wait_events("registered", 2, Duration::from_secs(20));
    assert_eq!(second["transport"], "long-poll", "{}", client.output());
    assert!(
        client
            .events("channel_lost")
            .iter()
            .any(|e| e["reason"].as_str().unwrap_or("").contains("falling back")),
        "{}",
        client.output()
    );
    let http = Http::new();
    let r = http.request(
        "GET",
        &format!("http://{public}/asset/9"),
        &[("host", "fallback.preview.test")],
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body, b"asset 9 from behind-a-proxy");
}

/// The install plan's Caddy site, its TLS line swapped for a plain-HTTP loopback address and otherwise
/// verbatim, in front of a real ingress.
#[test]
fn the_install_plans_caddy_site_carries_the_channel_and_websockets() {
    let caddy = require_program("caddy", "caddy");
    let setup = BehindProxy::new("caddy");
    let site = setup.plan["proxy"]["caddy"]["snippet"].as_str().unwrap();
    let proxy_port = dead_port();
    let body: String = site
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim_start().starts_with("tls "))
        .skip(1)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(body.contains("reverse_proxy"), "{site}");
    let dir = setup.scratch.path();
    let caddyfile = dir.join("Caddyfile");
    std::fs::write(
        &caddyfile,
        format!("{{\n\tadmin off\n\tauto_https off\n}}\nhttp://:{proxy_port} {{\n{body}\n"),
    )
    .unwrap();
    let log = dir.join("caddy.log");
    let proxy = Command::new(caddy)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&caddyfile)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start caddy");
    let _proxy = StopOnDrop(proxy);
    setup.check(&format!("127.0.0.1:{proxy_port}"), &log);
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Backpressure: a browser that stops reading a large download through the channel holds up neither the
/// ingress's memory (bounded by the stream's flow-control window, not the body) nor the channel's other
/// streams.
#[test]
fn a_stalled_download_is_held_back_and_does_not_block_the_channel() {
    const SIZE: u64 = 400 * 1024 * 1024;
    let home = Home::new();
    standard_policy(&home);
    let origin = Origin::start("bulk");
    let ingress = Ingress::start(&home, &[]);
    let mut client = Client::start(&home, &ingress, "bulk.preview.test", &origin.url(), &[]);
    client.registered();
    let rss_before = rss_kib(ingress.child.id());
    let mut stalled = TcpStream::connect(&ingress.addr).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    write!(
        stalled,
        "GET /bytes/{SIZE} HTTP/1.1\r\nHost: bulk.preview.test\r\n\r\n"
    )
    .unwrap();
    let mut first = vec![0u8; 1024 * 1024];
    stalled.read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"));
    // The reader has stopped; other streams on the same channel still flow.
    let http = Http::new();
    for i in 0..20 {
        let r = ingress.get(&http, "bulk.preview.test", &format!("/asset/{i}"));
        assert_eq!(r.status, 200, "asset {i} behind a stalled download");
    }
    // Over a few seconds the ingress holds at most windows and socket buffers, not the 400 MiB body.
    let mut peak = 0;
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        peak = peak.max(rss_kib(ingress.child.id()));
        std::thread::sleep(Duration::from_millis(50));
    }
    let grown_mib = peak.saturating_sub(rss_before) / 1024;
    assert!(
        grown_mib < 100,
        "the ingress grew by {grown_mib} MiB behind a stalled reader"
    );
    drop(stalled);
    assert!(wait_until(Duration::from_secs(10), || channel_stats(
        &ingress,
        &http,
        "bulk.preview.test"
    )["open_streams"]
        == 0));
}
