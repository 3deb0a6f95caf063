//! Native public preview end to end: `homeboy-ingress serve` (and `homeboy tunnel preview-ingress ...`),
//! `homeboy tunnel preview-client start`, real test origins, all on loopback.
//!
//! Covers Host routing, every diagnostic classification, hop-by-hop filtering, large transfers on the
//! direct path and both channel transports, 200 concurrent requests through the channel, every native
//! preview auth refusal, wildcard and ownership refusals, reconnection after an ingress restart, graceful
//! drain, local-origin failures, the token never being logged, and the install plan's snippets passing
//! `nginx -t` and `systemd-analyze verify`. [`channel`] covers WebSockets, streams and the multiplexed
//! channel (and the install plan's nginx and Caddy sites for real); [`browser`] drives headless Chromium
//! through a preview.

mod browser;
mod channel;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use homeboy_e2e::origin::{Origin, dead_port, pattern};
use homeboy_e2e::{
    Bounded, Home, Http, Response, banner, bin, describe, reap, wait_exit, wait_until,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DOMAIN: &str = "preview.test";
const TOKEN: &str = "hbp-e2e-token-4b1f9d2c7a6e5f30aa";
const OTHER_TOKEN: &str = "hbp-e2e-other-token-9c8d7e6f11";
const TOKEN_ENV: &str = "PREVIEW_E2E_TOKEN";

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `tunnel/services/<id>.json` with `policy.native_preview_auth` = `auth`.
fn declare_service(home: &Home, id: &str, auth: Value) {
    let dir = home.config_dir().join("tunnel/services");
    std::fs::create_dir_all(&dir).unwrap();
    let doc = json!({
        "id": id,
        "remote_port": 7331,
        "auth": {"mode": "bearer-env", "env": "SITE_PREVIEW_TOKEN"},
        "policy": {"native_preview_auth": auth},
    });
    std::fs::write(dir.join(format!("{id}.json")), doc.to_string()).unwrap();
}

/// Two clients: `lab` with [`TOKEN`] and `other` with [`OTHER_TOKEN`], any host under the domain.
fn standard_policy(home: &Home) {
    declare_service(
        home,
        "site-preview",
        json!({
            "allowed_public_hosts": ["*.preview.test"],
            "tokens": [
                {"id": "lab", "token_sha256": digest(TOKEN), "allowed_clients": ["lab"]},
                {"id": "other-lab", "token_sha256": digest(OTHER_TOKEN), "allowed_clients": ["other"]}
            ]
        }),
    );
}

fn route(home: &Home, session: &str, host: &str, upstream: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "tunnel",
        "preview-ingress",
        "route",
        session,
        "--public-host",
        host,
        "--upstream-origin",
        upstream,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    home.homeboy_json(&args)
}

fn require_program(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is missing: install the Debian package `{package}` (`.ci/run` does) to run this test"
            )
        })
}

fn send_signal(child: &Child, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status();
}

/// A running ingress.
struct Ingress {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Ingress {
    fn start(home: &Home, extra: &[&str]) -> Ingress {
        Self::start_at(home, "127.0.0.1:0", extra)
    }

    fn start_at(home: &Home, bind: &str, extra: &[&str]) -> Ingress {
        let mut args = vec![
            "serve", "--domain", DOMAIN, "--bind", bind, "--format", "json",
        ];
        args.extend_from_slice(extra);
        Self::spawn(home, "homeboy-ingress", &args)
    }

    fn spawn(home: &Home, program: &str, args: &[&str]) -> Ingress {
        let log = home.root().join(format!("ingress-{}.log", rand_suffix()));
        let mut child = home
            .command(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the ingress");
        let line = banner(&mut child, Duration::from_secs(60), program);
        let listening: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            reap(&mut child);
            panic!(
                "the ingress did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Ingress {
            child,
            addr: listening["addr"].as_str().unwrap().to_string(),
            log,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn get(&self, http: &Http, host: &str, path: &str) -> Response {
        self.request(http, "GET", host, path, &[], None)
    }

    fn request(
        &self,
        http: &Http,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let mut all = vec![("host", host)];
        all.extend_from_slice(headers);
        http.request(method, &format!("{}{path}", self.url()), &all, body)
    }

    fn status(&self, http: &Http) -> Value {
        let r = http.get(&format!("{}/_homeboy/preview-ingress/status", self.url()));
        assert_eq!(r.status, 200);
        r.json()["data"].clone()
    }

    fn register(&self, http: &Http, token: Option<&str>, body: Value) -> Response {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_str()));
        }
        let bytes = body.to_string().into_bytes();
        http.request(
            "POST",
            &format!("{}/preview/client/register", self.url()),
            &headers,
            Some(&bytes),
        )
    }

    fn terminate(&mut self) -> ExitStatus {
        send_signal(&self.child, "TERM");
        wait_exit(&mut self.child, Duration::from_secs(15))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        reap(&mut self.child);
    }
}

fn rand_suffix() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    u128::from(N.fetch_add(1, Ordering::Relaxed))
}

/// A running preview client; its stdout (JSON events) is collected as it comes.
struct Client {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    err: PathBuf,
}

impl Client {
    /// `lab` with [`TOKEN`].
    fn start(home: &Home, ingress: &Ingress, host: &str, origin: &str, extra: &[&str]) -> Client {
        Self::start_as(home, &ingress.url(), host, origin, TOKEN, "lab", extra)
    }

    fn start_as(
        home: &Home,
        ingress_url: &str,
        host: &str,
        origin: &str,
        token: &str,
        client_id: &str,
        extra: &[&str],
    ) -> Client {
        let err = home
            .root()
            .join(format!("client-{host}-{}.err", rand_suffix()));
        let mut args = vec![
            "tunnel",
            "preview-client",
            "start",
            "--ingress",
            ingress_url,
            "--public-host",
            host,
            "--local-origin",
            origin,
            "--token-env",
            TOKEN_ENV,
            "--client-id",
            client_id,
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let mut child = home
            .command("homeboy")
            .args(&args)
            .env(TOKEN_ENV, token)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("start the preview client");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        Client { child, lines, err }
    }

    fn events(&self, event: &str) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == event)
            .collect()
    }

    /// Waits until `count` events named `event` were printed; returns the last.
    fn wait_events(&mut self, event: &str, count: usize, limit: Duration) -> Value {
        let ok = wait_until(limit, || self.events(event).len() >= count);
        assert!(
            ok,
            "no {event:?} #{count} from the client:\n{}",
            self.output()
        );
        self.events(event).pop().unwrap()
    }

    fn registered(&mut self) -> Value {
        self.wait_events("registered", 1, Duration::from_secs(15))
    }

    fn terminate(&mut self) -> ExitStatus {
        send_signal(&self.child, "TERM");
        wait_exit(&mut self.child, Duration::from_secs(20))
    }

    fn output(&self) -> String {
        format!(
            "{}\n{}",
            self.lines.lock().unwrap().join("\n"),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        reap(&mut self.child);
    }
}

/// Asserts that a diagnostic response has the wire-contract shape.
fn assert_diagnostic(r: &Response, status: u16, classification: &str, host: &str, path: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let d = r.json();
    assert_eq!(d["classification"], classification, "{d}");
    assert_eq!(d["status"], status);
    assert_eq!(d["host"], host);
    assert_eq!(d["path"], path);
    assert!(
        d["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{d}"
    );
    assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()), "{d}");
}

#[test]
fn host_routing_reaches_two_upstreams_at_once() {
    let home = Home::new();
    let (alpha, beta) = (Origin::start("alpha"), Origin::start("beta"));
    route(&home, "run-a", "run-a.preview.test", &alpha.url(), &[]);
    let record = route(&home, "run-b", "RUN-B.Preview.Test", &beta.url(), &[]);
    assert_eq!(record["public_host"], "run-b.preview.test");
    let ingress = Ingress::start(&home, &[]);
    let http = Http::new();
    std::thread::scope(|s| {
        for i in 0..24 {
            let (ingress, http) = (&ingress, &http);
            s.spawn(move || {
                // The port is stripped and case does not matter.
                let (host, name) = if i % 2 == 0 {
                    ("run-a.preview.test:443", "alpha")
                } else {
                    ("Run-B.PREVIEW.test", "beta")
                };
                let r = ingress.get(http, host, &format!("/page/{i}?q=1"));
                assert_eq!(r.status, 200);
                assert_eq!(
                    String::from_utf8_lossy(&r.body),
                    format!("origin {name} /page/{i}?q=1")
                );
            });
        }
    });
    assert!(alpha.hits() >= 12 && beta.hits() >= 12);
    // The upstream sees its own Host and the forwarded headers.
    let seen = ingress.get(&http, "run-a.preview.test", "/headers").json();
    let h = &seen["headers"];
    assert_eq!(h["host"], alpha.addr().to_string());
    assert_eq!(h["x-forwarded-host"], "run-a.preview.test");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
}

#[test]
fn every_diagnostic_classification_is_produced_for_real() {
    let home = Home::new();
    let origin = Origin::start("slowpoke");
    route(
        &home,
        "old",
        "old.preview.test",
        &origin.url(),
        &["--expires-at", "2001-02-03T04:05:06Z"],
    );
    route(
        &home,
        "paused",
        "paused.preview.test",
        &origin.url(),
        &["--inactive"],
    );
    let refused = format!("http://127.0.0.1:{}", dead_port());
    route(&home, "gone", "gone.preview.test", &refused, &[]);
    route(&home, "slow", "slow.preview.test", &origin.url(), &[]);
    let ingress = Ingress::start(&home, &["--upstream-timeout-secs", "0.5"]);
    let http = Http::new();

    let r = ingress.get(&http, "nobody.preview.test", "/a");
    assert_diagnostic(&r, 404, "missing_session", "nobody.preview.test", "/a");
    let r = ingress.get(&http, "old.preview.test", "/b");
    assert_diagnostic(&r, 410, "expired_session", "old.preview.test", "/b");
    let r = ingress.get(&http, "paused.preview.test", "/c");
    assert_diagnostic(&r, 410, "disconnected_session", "paused.preview.test", "/c");
    let r = ingress.get(&http, "gone.preview.test", "/d");
    assert_diagnostic(&r, 502, "upstream_error", "gone.preview.test", "/d");
    let r = ingress.get(&http, "slow.preview.test", "/slow?ms=3000");
    assert_diagnostic(&r, 504, "upstream_timeout", "slow.preview.test", "/slow");
    // The same route answers when the upstream is quick enough.
    assert_eq!(
        ingress
            .get(&http, "slow.preview.test", "/slow?ms=10")
            .status,
        200
    );

    // The running ingress reports states and recent failures.
    let status = ingress.status(&http);
    let states: Vec<(String, String)> = status["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["session_id"].as_str().unwrap().into(),
                r["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        states.contains(&("old".into(), "expired".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("paused".into(), "disconnected".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("slow".into(), "active".into())),
        "{states:?}"
    );
    let seen: Vec<&str> = status["recent_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["classification"].as_str().unwrap())
        .collect();
    for c in [
        "missing_session",
        "expired_session",
        "disconnected_session",
        "upstream_error",
        "upstream_timeout",
    ] {
        assert!(seen.contains(&c), "{c} missing from {seen:?}");
    }
    // A public host sees only its own route.
    let own = ingress
        .get(
            &http,
            "paused.preview.test",
            "/_homeboy/preview-ingress/status",
        )
        .json();
    assert_eq!(own["data"]["state"], "disconnected");
    assert!(own["data"].get("routes").is_none());

    // One JSON line per request on stderr.
    assert!(wait_until(Duration::from_secs(5), || ingress
        .log()
        .lines()
        .count()
        >= 6));
    let lines: Vec<Value> = ingress
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v.get("request_id").is_some())
        .collect();
    let timeout_line = lines
        .iter()
        .find(|l| l["host"] == "slow.preview.test" && l["status"] == 504)
        .expect("a 504 line");
    for field in [
        "request_id",
        "host",
        "path",
        "status",
        "bytes",
        "duration_ms",
        "classification",
    ] {
        assert!(
            timeout_line.get(field).is_some(),
            "{field} missing in {timeout_line}"
        );
    }
    assert_eq!(timeout_line["classification"], "upstream_timeout");
    assert_eq!(timeout_line["path"], "/slow", "queries are not logged");

    // The offline status agrees.
    let offline = home.homeboy_json(&["tunnel", "preview-ingress", "status", "--format", "json"]);
    let old = offline["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["session_id"] == "old")
        .unwrap()
        .clone();
    assert_eq!(old["state"], "expired");
}

#[test]
fn hop_by_hop_headers_are_filtered_both_ways_on_every_path() {
    let home = Home::new();
    standard_policy(&home);
    let origin = Origin::start("hops");
    route(&home, "direct", "direct.preview.test", &origin.url(), &[]);
    let ingress = Ingress::start(&home, &[]);
    let mut mx = Client::start(&home, &ingress, "mux.preview.test", &origin.url(), &[]);
    let mut lp = Client::start(
        &home,
        &ingress,
        "lp.preview.test",
        &origin.url(),
        &["--transport", "long-poll"],
    );
    assert_eq!(mx.registered()["transport"], "mux");
    assert_eq!(lp.registered()["transport"], "long-poll");
    let http = Http::new();
    for host in ["direct.preview.test", "mux.preview.test", "lp.preview.test"] {
        let r = ingress.request(
            &http,
            "GET",
            host,
            "/headers",
            &[
                ("connection", "x-drop-me"),
                ("x-drop-me", "1"),
                ("keep-alive", "timeout=1"),
                ("proxy-authorization", "Basic c2VjcmV0"),
                ("te", "trailers"),
                ("x-end-to-end", "kept"),
            ],
            None,
        );
        assert_eq!(
            r.status,
            200,
            "{host}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let seen = r.json();
        let h = seen["headers"].as_object().unwrap();
        for gone in ["x-drop-me", "keep-alive", "proxy-authorization", "te"] {
            assert!(
                !h.contains_key(gone),
                "{host}: {gone} reached the origin: {seen}"
            );
        }
        assert_eq!(h["x-end-to-end"], "kept", "{host}");
        assert_eq!(h["x-forwarded-host"], host, "{host}");
        assert_eq!(h["host"], origin.addr().to_string(), "{host}");

        let r = ingress.get(&http, host, "/hop");
        assert_eq!(r.status, 200);
        for gone in ["x-hop-secret", "keep-alive", "proxy-authenticate"] {
            assert!(
                r.header(gone).is_none(),
                "{host}: {gone} reached the browser"
            );
        }
        assert_eq!(r.header("content-type"), Some("text/css"), "{host}");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=60"),
            "{host}"
        );
        assert_eq!(r.header("x-end-to-end"), Some("kept"), "{host}");
        let cookies = r.headers.iter().filter(|(k, _)| k == "set-cookie").count();
        assert_eq!(cookies, 2, "{host}: {:?}", r.headers);
        assert_eq!(r.body, b"body{}");
    }
}

#[test]
fn large_downloads_and_uploads_are_byte_identical_on_every_path() {
    const DOWNLOAD: u64 = 50 * 1024 * 1024;
    const UPLOAD: usize = 10 * 1024 * 1024;
    let home = Home::new();
    standard_policy(&home);
    let origin = Origin::start("bulk");
    route(&home, "direct", "direct.preview.test", &origin.url(), &[]);
    let ingress = Ingress::start(&home, &[]);
    let mut mx = Client::start(&home, &ingress, "mux.preview.test", &origin.url(), &[]);
    let mut lp = Client::start(
        &home,
        &ingress,
        "lp.preview.test",
        &origin.url(),
        &["--transport", "long-poll"],
    );
    mx.registered();
    lp.registered();
    let http = Http::new();
    let expected = pattern(DOWNLOAD);
    let upload: Vec<u8> = (0..UPLOAD).map(|i| (i * 13 + i / 4099) as u8).collect();
    for host in ["direct.preview.test", "mux.preview.test", "lp.preview.test"] {
        let r = ingress.get(&http, host, &format!("/bytes/{DOWNLOAD}"));
        assert_eq!(r.status, 200, "{host}");
        assert_eq!(r.body.len(), expected.len(), "{host}: download length");
        assert!(r.body == expected, "{host}: download differs");
        let r = ingress.request(
            &http,
            "POST",
            host,
            "/echo",
            &[("content-type", "application/octet-stream")],
            Some(&upload),
        );
        assert_eq!(r.status, 200, "{host}");
        assert_eq!(r.body.len(), upload.len(), "{host}: upload echo length");
        assert!(r.body == upload, "{host}: upload differs");
    }
    // Every transfer is logged as complete with its size.
    assert!(
        wait_until(Duration::from_secs(5), || {
            ingress
                .log()
                .lines()
                .filter(|l| l.contains(&format!("\"bytes\":{DOWNLOAD}")))
                .count()
                == 3
        }),
        "{}",
        ingress.log()
    );
}

#[test]
fn two_hundred_concurrent_requests_through_both_channel_transports() {
    let home = Home::new();
    standard_policy(&home);
    let origin = Origin::start("assets");
    let ingress = Ingress::start(&home, &[]);
    let http = Http::new();
    for transport in ["mux", "long-poll"] {
        let host = format!("page-{transport}.preview.test");
        let mut client = Client::start(
            &home,
            &ingress,
            &host,
            &origin.url(),
            &["--transport", transport],
        );
        client.registered();
        let barrier = Barrier::new(200);
        std::thread::scope(|s| {
            for i in 0..200 {
                let (ingress, http, barrier, host) = (&ingress, &http, &barrier, &host);
                s.spawn(move || {
                    barrier.wait();
                    let r = ingress.get(http, host, &format!("/asset/{i}"));
                    assert_eq!(
                        r.status,
                        200,
                        "{transport} asset {i}: {}",
                        String::from_utf8_lossy(&r.body)
                    );
                    assert_eq!(
                        String::from_utf8_lossy(&r.body),
                        format!("asset {i} from assets")
                    );
                    assert_eq!(r.header("content-type"), Some("text/plain"));
                    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
                });
            }
        });
    }
}

#[test]
fn every_native_preview_auth_failure_names_its_claim() {
    const REVOKED: &str = "hbp-e2e-revoked-token";
    const EXPIRED: &str = "hbp-e2e-expired-token";
    let home = Home::new();
    declare_service(
        &home,
        "site-preview",
        json!({
            "default_session_ttl_secs": 300,
            "max_session_ttl_secs": 600,
            "allowed_public_hosts": ["*.preview.test", "*.elsewhere.test"],
            "allowed_session_ids": ["run-1", "run-3", "run-4"],
            "tokens": [
                {"id": "lab", "token_sha256": digest(TOKEN), "allowed_clients": ["lab"],
                 "allowed_public_hosts": ["run-*.preview.test"], "allowed_session_ids": ["run-1", "run-2", "run-4"]},
                {"id": "old", "token_sha256": digest(REVOKED), "revoked": true},
                {"id": "stale", "token_sha256": digest(EXPIRED), "expires_at": "2001-01-01T00:00:00Z"}
            ]
        }),
    );
    let ingress = Ingress::start(
        &home,
        &[
            "--public-host-pattern",
            "*.preview.test",
            "--public-host-pattern",
            "*.other.test",
        ],
    );
    let http = Http::new();
    let claim = |host: &str, session: &str, origin: &str| json!({"public_host": host, "local_origin": origin, "session_id": session, "client_id": "lab"});
    let ok = || claim("run-1.preview.test", "run-1", "http://127.0.0.1:7331");
    let refused = |token: Option<&str>, body: Value, status: u16, code: &str, claim_name: &str| {
        let r = ingress.register(&http, token, body.clone());
        assert_eq!(
            r.status,
            status,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let e = r.json();
        assert_eq!(e["success"], false);
        assert_eq!(e["error"]["code"], code, "{e}");
        assert_eq!(e["error"]["details"]["claim"], claim_name, "{e}");
        let text = e.to_string();
        assert!(!text.contains(TOKEN) && !text.contains(REVOKED) && !text.contains(EXPIRED));
        e["error"]["details"]["problem"]
            .as_str()
            .unwrap()
            .to_string()
    };
    refused(None, ok(), 401, "preview.auth_denied", "token");
    refused(
        Some("not-a-configured-token"),
        ok(),
        401,
        "preview.auth_denied",
        "token",
    );
    let p = refused(Some(REVOKED), ok(), 401, "preview.auth_denied", "token");
    assert!(p.contains("revoked"), "{p}");
    let p = refused(Some(EXPIRED), ok(), 401, "preview.auth_denied", "token");
    assert!(p.contains("expired"), "{p}");
    let mut intruder = ok();
    intruder["client_id"] = json!("intruder");
    refused(
        Some(TOKEN),
        intruder,
        403,
        "preview.claim_rejected",
        "client_id",
    );
    // Outside the token's hosts (inside the service's) and outside both.
    refused(
        Some(TOKEN),
        claim("demo.preview.test", "run-1", "http://127.0.0.1:7331"),
        403,
        "preview.claim_rejected",
        "public_host",
    );
    refused(
        Some(TOKEN),
        claim("run-1.other.test", "run-1", "http://127.0.0.1:7331"),
        403,
        "preview.claim_rejected",
        "public_host",
    );
    // In the token's sessions but not the service's, and the other way round.
    refused(
        Some(TOKEN),
        claim("run-2.preview.test", "run-2", "http://127.0.0.1:7331"),
        403,
        "preview.claim_rejected",
        "session_id",
    );
    refused(
        Some(TOKEN),
        claim("run-3.preview.test", "run-3", "http://127.0.0.1:7331"),
        403,
        "preview.claim_rejected",
        "session_id",
    );
    refused(
        Some(TOKEN),
        claim("run-1.preview.test", "run-1", "http://10.0.0.8:8080"),
        403,
        "preview.claim_rejected",
        "local_origin",
    );
    refused(
        Some(TOKEN),
        claim("run-1.preview.test", "run-1", "http://127.0.0.1:7331/app"),
        403,
        "preview.claim_rejected",
        "local_origin",
    );

    // The default lease, and a requested one capped by max_session_ttl_secs.
    let r = ingress.register(&http, Some(TOKEN), ok());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let granted = r.json()["data"].clone();
    assert_eq!(granted["registered"], true);
    assert_eq!(granted["session_id"], "run-1");
    assert!(
        granted["channel_id"]
            .as_str()
            .is_some_and(|c| c.len() >= 16)
    );
    assert_eq!(granted["lease"]["ttl_secs"], 300);
    let mut long = claim("run-4.preview.test", "run-4", "http://localhost:7331");
    long["ttl_secs"] = json!(86_400);
    let r = ingress.register(&http, Some(TOKEN), long);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let lease = &r.json()["data"]["lease"];
    assert_eq!(lease["ttl_secs"], 600);
    assert_eq!(lease["requested_ttl_secs"], 86_400);
    assert_eq!(lease["capped_by"], "max_session_ttl_secs");

    // The CLI client reports a refusal in one line and exits 1; a missing token variable is refused input.
    let out = home
        .command("homeboy")
        .args([
            "tunnel",
            "preview-client",
            "start",
            "--ingress",
            &ingress.url(),
            "--public-host",
            "run-1.preview.test",
            "--local-origin",
            "http://127.0.0.1:7331",
            "--token-env",
            TOKEN_ENV,
            "--client-id",
            "lab",
        ])
        .env(TOKEN_ENV, "a-wrong-token-value")
        .output_bounded()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("token") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(!stderr.contains("a-wrong-token-value"));
    let out = home
        .command("homeboy")
        .args([
            "tunnel",
            "preview-client",
            "start",
            "--ingress",
            &ingress.url(),
            "--public-host",
            "run-1.preview.test",
            "--local-origin",
            "http://127.0.0.1:7331",
            "--token-env",
            "PREVIEW_E2E_UNSET_VARIABLE",
        ])
        .output_bounded()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    // Log lines are written in batches: give the writer a moment.
    let logged = wait_until(Duration::from_secs(5), || {
        let log = ingress.log();
        log.contains("\"outcome\":\"refused\"") && log.contains("\"reason\":\"session_id\"")
    });
    let log = ingress.log();
    assert!(logged, "{log}");
    for secret in [TOKEN, REVOKED, EXPIRED] {
        assert!(!log.contains(secret), "a token reached the ingress log");
    }
}

#[test]
fn wildcard_and_pattern_violating_claims_are_refused() {
    let home = Home::new();
    standard_policy(&home);
    let ingress = Ingress::start(&home, &[]);
    let http = Http::new();
    let claim = |host: &str| json!({"public_host": host, "local_origin": "http://127.0.0.1:7331", "client_id": "lab"});
    for host in [
        "*.preview.test",
        "run-*.preview.test",
        "run-1.not-the-domain.test",
        "preview.test",
    ] {
        let r = ingress.register(&http, Some(TOKEN), claim(host));
        assert_eq!(
            r.status,
            403,
            "{host}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let e = r.json();
        assert_eq!(e["error"]["code"], "preview.host_claim_rejected", "{e}");
        assert_eq!(e["error"]["details"]["claim"], "public_host");
    }
    let r = ingress.register(&http, Some(TOKEN), claim("bad host"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "validation.invalid_argument");
    // The client refuses a wildcard before contacting anything.
    let out = home
        .command("homeboy")
        .args([
            "tunnel",
            "preview-client",
            "start",
            "--ingress",
            &ingress.url(),
            "--public-host",
            "*.preview.test",
            "--local-origin",
            "http://127.0.0.1:7331",
            "--token-env",
            TOKEN_ENV,
        ])
        .env(TOKEN_ENV, TOKEN)
        .output_bounded()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wildcard"));
    let out = home
        .command("homeboy")
        .args([
            "tunnel",
            "preview-client",
            "start",
            "--ingress",
            &ingress.url(),
            "--public-host",
            "x.preview.test",
            "--local-origin",
            "http://192.0.2.10:8080",
            "--token-env",
            TOKEN_ENV,
        ])
        .env(TOKEN_ENV, TOKEN)
        .output_bounded()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        !ingress.log().contains("\"event\":\"register\""),
        "nothing reached the ingress"
    );
}

#[test]
fn a_second_client_cannot_take_over_a_held_host() {
    let home = Home::new();
    standard_policy(&home);
    let origin = Origin::start("held");
    route(
        &home,
        "operated",
        "operated.preview.test",
        &origin.url(),
        &[],
    );
    let ingress = Ingress::start(&home, &[]);
    let http = Http::new();
    let mut holder = Client::start(&home, &ingress, "held.preview.test", &origin.url(), &[]);
    holder.registered();
    let takeover = json!({"public_host": "held.preview.test", "local_origin": "http://127.0.0.1:9", "client_id": "other"});
    let r = ingress.register(&http, Some(OTHER_TOKEN), takeover.clone());
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "preview.route_owner_mismatch");
    // Another session id for the same host is no way round it, nor is an operator's direct route free.
    let mut other_session = takeover.clone();
    other_session["session_id"] = json!("sneaky");
    assert_eq!(
        ingress
            .register(&http, Some(OTHER_TOKEN), other_session)
            .status,
        409
    );
    let operated = json!({"public_host": "operated.preview.test", "local_origin": "http://127.0.0.1:9", "client_id": "lab"});
    assert_eq!(ingress.register(&http, Some(TOKEN), operated).status, 409);
    // The CLI client of the other owner gives up with the reason.
    let out = home
        .command("homeboy")
        .args([
            "tunnel",
            "preview-client",
            "start",
            "--ingress",
            &ingress.url(),
            "--public-host",
            "held.preview.test",
            "--local-origin",
            "http://127.0.0.1:9",
            "--token-env",
            TOKEN_ENV,
            "--client-id",
            "other",
        ])
        .env(TOKEN_ENV, OTHER_TOKEN)
        .output_bounded()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("route_owner_mismatch"));
    // The holder still serves.
    assert_eq!(ingress.get(&http, "held.preview.test", "/x").status, 200);
    // Once the holder closes its session, the host is free.
    assert!(holder.terminate().success(), "{}", holder.output());
    assert_eq!(holder.events("closed")[0]["closed"], true);
    let r = ingress.get(&http, "held.preview.test", "/x");
    assert_diagnostic(&r, 410, "disconnected_session", "held.preview.test", "/x");
    assert_eq!(
        ingress.register(&http, Some(OTHER_TOKEN), takeover).status,
        200
    );
}

#[test]
fn clients_reconnect_after_an_ingress_restart_and_the_token_is_never_logged() {
    let home = Home::new();
    standard_policy(&home);
    let origin = Origin::start("steady");
    let bind = format!("127.0.0.1:{}", dead_port());
    let mut first = Ingress::start_at(&home, &bind, &[]);
    let http = Http::new();
    let mut mx = Client::start(&home, &first, "mux.preview.test", &origin.url(), &[]);
    let mut lp = Client::start(
        &home,
        &first,
        "lp.preview.test",
        &origin.url(),
        &["--transport", "long-poll"],
    );
    mx.registered();
    lp.registered();
    for host in ["mux.preview.test", "lp.preview.test"] {
        assert_eq!(first.get(&http, host, "/before").status, 200);
    }
    assert!(first.terminate().success());
    let first_log = first.log();

    let second = Ingress::start_at(&home, &bind, &[]);
    for host in ["mux.preview.test", "lp.preview.test"] {
        let back = wait_until(Duration::from_secs(30), || {
            second.get(&http, host, "/after").status == 200
        });
        assert!(
            back,
            "{host} did not come back:\n{}\n{}",
            mx.output(),
            lp.output()
        );
    }
    for client in [&mut mx, &mut lp] {
        client.wait_events("registered", 2, Duration::from_secs(5));
        assert!(
            !client.events("channel_lost").is_empty(),
            "{}",
            client.output()
        );
        let retry = &client.events("reconnecting")[0];
        assert!(retry["delay_ms"].as_u64().unwrap() <= 10_000, "{retry}");
    }
    // SIGTERM closes the session: the route stays, disconnected.
    assert!(mx.terminate().success(), "{}", mx.output());
    let r = second.get(&http, "mux.preview.test", "/closed");
    assert_diagnostic(
        &r,
        410,
        "disconnected_session",
        "mux.preview.test",
        "/closed",
    );
    assert!(lp.terminate().success(), "{}", lp.output());

    // The token appears nowhere: logs, events, route records, status outputs.
    let mut haystack = vec![first_log, second.log(), mx.output(), lp.output()];
    haystack.push(serde_json::to_string(&second.status(&http)).unwrap());
    haystack.push(home.homeboy_ok(&["tunnel", "preview-ingress", "status", "--format", "json"]));
    haystack.push(home.homeboy_ok(&["tunnel", "preview-ingress", "list", "--format", "json"]));
    for entry in std::fs::read_dir(home.config_dir().join("tunnel/preview-ingress/routes")).unwrap()
    {
        haystack.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(
        haystack.iter().any(|h| h.contains("mux.preview.test")),
        "the haystack is real"
    );
    for text in &haystack {
        assert!(
            !text.contains(TOKEN),
            "the token leaked into: {}",
            &text[..text.len().min(400)]
        );
    }
}

#[test]
fn local_origin_failures_are_502_local_origin_request_failed() {
    let home = Home::new();
    standard_policy(&home);
    let ingress = Ingress::start(&home, &[]);
    let http = Http::new();
    let dead = format!("http://127.0.0.1:{}", dead_port());
    for transport in ["mux", "long-poll"] {
        let host = format!("broken-{transport}.preview.test");
        let mut client = Client::start(&home, &ingress, &host, &dead, &["--transport", transport]);
        client.registered();
        let r = ingress.get(&http, &host, "/page");
        assert_eq!(
            r.status,
            502,
            "{transport}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let body = r.json();
        assert_eq!(
            body["error"]["kind"], "local_origin_request_failed",
            "{transport}: {body}"
        );
        assert_eq!(body["classification"], "upstream_error");
        client.wait_events("local_origin_failed", 1, Duration::from_secs(5));
    }
    let status = ingress.status(&http);
    let failures = status["recent_failures"].as_array().unwrap();
    assert_eq!(
        failures
            .iter()
            .filter(|f| f["classification"] == "upstream_error")
            .count(),
        2,
        "{failures:?}"
    );
}

#[test]
fn shutdown_drains_requests_in_flight() {
    let home = Home::new();
    let origin = Origin::start("drain");
    route(&home, "slow", "slow.preview.test", &origin.url(), &[]);
    let mut ingress = Ingress::start(&home, &[]);
    let http = Http::new();
    std::thread::scope(|s| {
        let in_flight = s.spawn(|| ingress.get(&http, "slow.preview.test", "/slow?ms=1500"));
        assert!(wait_until(Duration::from_secs(5), || origin.hits() >= 1));
        send_signal(&ingress.child, "TERM");
        // Once the ingress says it is draining, new public requests are turned away while the old one
        // finishes.
        assert!(
            wait_until(Duration::from_secs(10), || ingress.status(&http)["ingress"]
                ["draining"]
                == true),
            "the ingress never started draining"
        );
        let turned_away = ingress.get(&http, "slow.preview.test", "/late");
        assert_diagnostic(
            &turned_away,
            503,
            "ingress_draining",
            "slow.preview.test",
            "/late",
        );
        let r = in_flight.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"slow drain");
    });
    let status = wait_exit(&mut ingress.child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

#[test]
fn route_table_commands_and_serve_through_the_homeboy_cli() {
    let home = Home::new();
    let origin = Origin::start("cli");
    let record = route(&home, "run-1", "run-1.preview.test", &origin.url(), &[]);
    for field in ["session_id", "public_host", "upstream_origin", "active"] {
        assert!(record.get(field).is_some(), "{field} in {record}");
    }
    assert!(record.get("expires_at").is_none());
    let refused = |args: &[&str], needle: &str| {
        let out = home.homeboy(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(needle) && stderr.lines().count() == 1,
            "{stderr}"
        );
    };
    refused(
        &[
            "tunnel",
            "preview-ingress",
            "route",
            "run-2",
            "--public-host",
            "run-1.preview.test",
            "--upstream-origin",
            &origin.url(),
        ],
        "run-1",
    );
    refused(
        &[
            "tunnel",
            "preview-ingress",
            "route",
            "run-3",
            "--public-host",
            "run-3.preview.test",
            "--upstream-origin",
            &origin.url(),
            "--expires-at",
            "soon",
        ],
        "RFC 3339",
    );
    refused(
        &[
            "tunnel",
            "preview-ingress",
            "route",
            "run-3",
            "--public-host",
            "*.preview.test",
            "--upstream-origin",
            &origin.url(),
        ],
        "wildcard",
    );
    refused(
        &[
            "tunnel",
            "preview-ingress",
            "serve",
            "--domain",
            DOMAIN,
            "--bind",
            "0.0.0.0:0",
        ],
        "loopback",
    );
    let list = home.homeboy_json(&["tunnel", "preview-ingress", "list", "--format", "json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);

    let ingress = Ingress::spawn(
        &home,
        "homeboy",
        &[
            "tunnel",
            "preview-ingress",
            "serve",
            "--domain",
            DOMAIN,
            "--bind",
            "127.0.0.1:0",
            "--format",
            "json",
        ],
    );
    let http = Http::new();
    assert_eq!(
        ingress.get(&http, "run-1.preview.test", "/").body,
        b"origin cli /"
    );
    let removed = home.homeboy_json(&[
        "tunnel",
        "preview-ingress",
        "unroute",
        "run-1",
        "--format",
        "json",
    ]);
    assert_eq!(removed["removed"]["session_id"], "run-1");
    let r = ingress.get(&http, "run-1.preview.test", "/");
    assert_diagnostic(&r, 404, "missing_session", "run-1.preview.test", "/");
    assert_eq!(
        home.homeboy(&["tunnel", "preview-ingress", "unroute", "run-1"])
            .status
            .code(),
        Some(1)
    );
    let help = home.homeboy_ok(&["tunnel", "preview-client", "start", "--help"]);
    assert!(
        help.contains("--token-env") && help.contains("wildcard"),
        "{help}"
    );
}

#[test]
fn install_plan_snippets_pass_nginx_and_systemd_checks() {
    let nginx = require_program("nginx", "nginx-light");
    let systemd_analyze = require_program("systemd-analyze", "systemd");
    let openssl = require_program("openssl", "openssl");
    let home = Home::new();
    let work = home.root().join("install");
    std::fs::create_dir_all(&work).unwrap();
    let (cert, key) = (work.join("cert.pem"), work.join("key.pem"));
    let made = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=*.preview.example.net",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output_bounded()
        .unwrap();
    assert!(made.status.success(), "{}", describe(&made));
    let ingress_bin = bin("homeboy-ingress");
    let homeboy_bin = bin("homeboy");
    let cases = [
        (
            "*-tunnel.example.com",
            "example.com",
            ingress_bin.to_str().unwrap(),
        ),
        (
            "*.preview.example.net",
            "preview.example.net",
            homeboy_bin.to_str().unwrap(),
        ),
    ];
    for (i, (pattern, domain, binary)) in cases.into_iter().enumerate() {
        let plan = home.homeboy_json(&[
            "tunnel",
            "preview-ingress",
            "install",
            "--server",
            "example-server",
            "--domain",
            domain,
            "--public-host-pattern",
            pattern,
            "--service-name",
            "homeboy-preview-ingress",
            "--binary",
            binary,
            "--tls-certificate",
            cert.to_str().unwrap(),
            "--tls-certificate-key",
            key.to_str().unwrap(),
        ]);
        assert_eq!(plan["writes_nothing"], true);
        let inputs = plan["required_operator_inputs"].as_array().unwrap();
        let server = inputs.iter().find(|x| x["name"] == "server").unwrap();
        assert_eq!(
            server["status"], "missing",
            "no servers/example-server.json here"
        );
        for part in ["steps", "smoke_checks"] {
            assert!(!plan[part].as_array().unwrap().is_empty(), "{part}");
        }
        assert!(plan["commands"]["rollback"].as_array().unwrap().len() >= 3);
        assert!(plan["secrets_note"].as_str().unwrap().contains("SHA-256"));

        let unit = work.join(format!("homeboy-preview-ingress-{i}.service"));
        std::fs::write(&unit, plan["systemd"]["unit"].as_str().unwrap()).unwrap();
        let verified = Command::new(&systemd_analyze)
            .arg("verify")
            .arg(&unit)
            .output_bounded()
            .unwrap();
        assert!(
            verified.status.success(),
            "systemd-analyze verify:\n{}",
            describe(&verified)
        );
        let complaints = String::from_utf8_lossy(&verified.stderr);
        assert!(
            !complaints.contains(unit.file_name().unwrap().to_str().unwrap()),
            "{complaints}"
        );

        let prefix = work.join(format!("nginx-{i}"));
        std::fs::create_dir_all(&prefix).unwrap();
        let snippet = prefix.join("preview.conf");
        std::fs::write(
            &snippet,
            plan["proxy"]["nginx"]["snippet"].as_str().unwrap(),
        )
        .unwrap();
        let wrapper = prefix.join("nginx.conf");
        std::fs::write(
            &wrapper,
            format!(
                "pid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{}}\nhttp {{\n    include {s};\n}}\n",
                p = prefix.display(),
                s = snippet.display()
            ),
        )
        .unwrap();
        let tested = Command::new(&nginx)
            .arg("-t")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&wrapper)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .output_bounded()
            .unwrap();
        assert!(
            tested.status.success(),
            "nginx -t:\n{}\n{}",
            describe(&tested),
            plan["proxy"]["nginx"]["snippet"]
        );
    }
    let status = home.homeboy_json(&[
        "tunnel",
        "preview-ingress",
        "install-status",
        "--server",
        "example-server",
        "--domain",
        "example.com",
        "--public-host-pattern",
        "*-tunnel.example.com",
    ]);
    assert_eq!(status["probed"], false);
    let commands: Vec<&str> = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("systemctl is-active homeboy-preview-ingress")),
        "{commands:?}"
    );
    assert!(
        commands
            .iter()
            .any(|c| c.contains("http://127.0.0.1:7350/_homeboy/preview-ingress/status"))
    );
    assert!(commands.iter().any(|c| c.starts_with("getent ahosts")));
    // Plans write nothing: the config dir was never created.
    assert!(
        !home.config_dir().exists() || std::fs::read_dir(home.config_dir()).unwrap().count() == 0
    );
}

#[test]
fn requests_wait_for_the_transport_the_client_declared() {
    let home = Home::new();
    standard_policy(&home);
    let ingress = Ingress::start(&home, &["--upstream-timeout-secs", "0.5"]);
    let http = Http::new();
    let claim = |host: &str, transport: &str| json!({"public_host": host, "local_origin": "http://127.0.0.1:7331", "client_id": "lab", "transport": transport});
    let r = ingress.register(&http, Some(TOKEN), claim("mux.preview.test", "mux"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["data"]["transport"], "mux");
    let r = ingress.register(&http, Some(TOKEN), claim("lp.preview.test", "long-poll"));
    assert_eq!(r.json()["data"]["transport"], "long-poll");
    // A client of the retired reverse-HTTP transport is answered with long-poll, which it then uses.
    let r = ingress.register(
        &http,
        Some(TOKEN),
        claim("old.preview.test", "reverse-http"),
    );
    assert_eq!(r.json()["data"]["transport"], "long-poll");
    assert_eq!(r.json()["data"]["transports"], json!(["long-poll", "mux"]));
    let r = ingress.register(
        &http,
        Some(TOKEN),
        claim("xx.preview.test", "carrier-pigeon"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["details"]["field"], "transport");
    // Before its first connection, a request for a multiplexed session waits for a connection, not for a
    // long poll; for a long-poll session, for a poll.
    let r = ingress.get(&http, "mux.preview.test", "/early");
    assert_diagnostic(&r, 504, "upstream_timeout", "mux.preview.test", "/early");
    assert!(
        r.json()["message"].as_str().unwrap().contains("connection"),
        "{}",
        r.json()
    );
    let r = ingress.get(&http, "lp.preview.test", "/early");
    assert_diagnostic(&r, 504, "upstream_timeout", "lp.preview.test", "/early");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{}",
        r.json()
    );
}

#[test]
fn leases_expire_clients_renew_them_and_revocation_ends_the_session() {
    let home = Home::new();
    let policy = |revoked: bool| {
        json!({
            "default_session_ttl_secs": 2,
            "max_session_ttl_secs": 3,
            "allowed_public_hosts": ["*.preview.test"],
            "tokens": [{"id": "lab", "token_sha256": digest(TOKEN), "allowed_clients": ["lab"], "revoked": revoked}]
        })
    };
    declare_service(&home, "site-preview", policy(false));
    let origin = Origin::start("leased");
    let ingress = Ingress::start(&home, &[]);
    let http = Http::new();
    // A lease nobody renews ends: the host answers 410 expired_session.
    let r = ingress.register(
        &http,
        Some(TOKEN),
        json!({"public_host": "idle.preview.test", "local_origin": "http://127.0.0.1:7331", "client_id": "lab", "ttl_secs": 1}),
    );
    assert_eq!(r.json()["data"]["lease"]["ttl_secs"], 1);
    let mut r = ingress.get(&http, "idle.preview.test", "/late");
    assert!(
        wait_until(Duration::from_secs(10), || {
            r = ingress.get(&http, "idle.preview.test", "/late");
            r.status == 410
        }),
        "the unrenewed lease never ended: {}",
        r.status
    );
    assert_diagnostic(&r, 410, "expired_session", "idle.preview.test", "/late");

    // A client renews its lease before it ends and keeps serving.
    let mut client = Client::start(
        &home,
        &ingress,
        "kept.preview.test",
        &origin.url(),
        &["--ttl-secs", "3"],
    );
    assert_eq!(client.registered()["lease_ttl_secs"], 3);
    client.wait_events("renewed", 1, Duration::from_secs(10));
    assert_eq!(
        ingress.get(&http, "kept.preview.test", "/still").status,
        200
    );
    // Revoking the token ends the session at the next renewal: the client says why and exits 1.
    declare_service(&home, "site-preview", policy(true));
    let status = wait_exit(&mut client.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{}", client.output());
    assert!(client.output().contains("revoked"), "{}", client.output());
}

/// Issue 16: one token, and one client, hold a bounded number of preview hosts (a renewal does not count
/// twice; a closed session makes room and its record is removed, so the route directory stays bounded), and
/// the status listing is paged.
#[test]
fn preview_sessions_are_capped_per_token_and_per_client_and_the_status_is_paged() {
    let home = Home::new();
    declare_service(
        &home,
        "site-preview",
        json!({
            "allowed_public_hosts": ["*.preview.test"],
            "max_sessions_per_token": 3,
            "max_sessions_per_client": 2,
            "tokens": [{"id": "lab", "token_sha256": digest(TOKEN), "allowed_clients": ["lab", "lab2"]}]
        }),
    );
    let ingress = Ingress::start(&home, &[]);
    let http = Http::new();
    let claim = |n: u32, client: &str| {
        json!({"public_host": format!("run-{n}.preview.test"), "local_origin": "http://127.0.0.1:7331",
               "session_id": format!("run-{n}"), "client_id": client})
    };
    let register = |n: u32, client: &str| ingress.register(&http, Some(TOKEN), claim(n, client));
    let limited = |r: Response, scope: &str, limit: u64| {
        assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
        let e = r.json()["error"].clone();
        assert_eq!(e["code"], "preview.session_limit", "{e}");
        assert_eq!(
            (
                e["details"]["scope"].as_str(),
                e["details"]["limit"].as_u64()
            ),
            (Some(scope), Some(limit)),
            "{e}"
        );
        assert!(
            e["hints"][0]["message"]
                .as_str()
                .is_some_and(|h| h.contains(&format!("max_sessions_per_{scope}"))),
            "{e}"
        );
        assert!(!e.to_string().contains(TOKEN));
    };
    for n in [1, 2, 1] {
        assert_eq!(register(n, "lab").status, 200, "run-{n}");
    }
    limited(register(3, "lab"), "client", 2);
    assert_eq!(register(3, "lab2").status, 200);
    limited(register(4, "lab2"), "token", 3);
    let logged = wait_until(Duration::from_secs(10), || {
        ingress.log().contains("session_limit")
    });
    assert!(logged, "{}", ingress.log());

    // Closing a session makes room; the closed record goes, so the table stays at the cap.
    let close = json!({"public_host": "run-1.preview.test"}).to_string();
    let bearer = format!("Bearer {TOKEN}");
    let r = http.request(
        "POST",
        &format!("{}/preview/client/close", ingress.url()),
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ],
        Some(close.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(register(4, "lab2").status, 200);
    assert_eq!(ingress.status(&http)["routes_total"], 3);

    // The listing, two routes a page, in session order; a bad limit is refused.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_string();
    loop {
        let r = http.get(&format!(
            "{}/_homeboy/preview-ingress/status?{query}",
            ingress.url()
        ));
        assert_eq!(r.status, 200);
        let data = r.json()["data"].clone();
        let routes = data["routes"].as_array().unwrap();
        assert!(routes.len() <= 2, "{data}");
        seen.extend(
            routes
                .iter()
                .map(|r| r["session_id"].as_str().unwrap().to_string()),
        );
        match data["next_cursor"].as_str() {
            Some(next) => query = format!("limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["run-2", "run-3", "run-4"]);
    let r = http.get(&format!(
        "{}/_homeboy/preview-ingress/status?limit=0",
        ingress.url()
    ));
    assert_eq!(
        (r.status, r.json()["error"]["details"]["field"].as_str()),
        (400, Some("limit"))
    );
}

/// Issue 16: a service declaration that does not parse is named — in the ingress log, and in the refusal's
/// details for a caller on the machine, never to a public caller. And a request with two `Host` headers
/// is refused rather than routed by the first.
#[test]
fn an_unreadable_declaration_is_named_to_the_operator_and_two_hosts_are_refused() {
    let home = Home::new();
    let dir = home.config_dir().join("tunnel/services");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("site-preview.json"),
        r#"{"id": "site-preview", "remote_port": 7331, "policy": {"native_preview_auth": "#,
    )
    .unwrap();
    let ingress = Ingress::start(&home, &[]);
    let http = Http::new();
    let body = json!({"public_host": "run-1.preview.test", "local_origin": "http://127.0.0.1:7331",
                      "session_id": "run-1", "client_id": "lab"});
    let local = ingress.register(&http, Some(TOKEN), body.clone());
    assert_eq!(
        local.status,
        401,
        "{}",
        String::from_utf8_lossy(&local.body)
    );
    let e = local.json()["error"].clone();
    assert_eq!(e["code"], "preview.auth_denied");
    let unreadable = e["details"]["unreadable_declarations"]
        .as_array()
        .unwrap_or_else(|| panic!("{e}"));
    assert_eq!(unreadable.len(), 1, "{e}");
    assert_eq!(unreadable[0]["service"], "site-preview");
    assert!(
        unreadable[0]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("site-preview.json")),
        "{e}"
    );

    // Through the public control host: the same refusal, no file names.
    let bytes = body.to_string().into_bytes();
    let bearer = format!("Bearer {TOKEN}");
    let public = ingress.request(
        &http,
        "POST",
        DOMAIN,
        "/preview/client/register",
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ],
        Some(&bytes),
    );
    assert_eq!(public.status, 401);
    let text = String::from_utf8_lossy(&public.body).into_owned();
    assert!(
        !text.contains("unreadable_declarations") && !text.contains("site-preview.json"),
        "{text}"
    );
    // The access log is written by a background thread: wait for the line (bounded).
    let named = wait_until(Duration::from_secs(10), || {
        let log = ingress.log();
        log.contains("policy_declaration_unreadable") && log.contains("site-preview.json")
    });
    assert!(named, "{}", ingress.log());

    // Two Host headers: 400, whichever comes first.
    for hosts in [
        "Host: run-1.preview.test\r\nHost: preview.test",
        "Host: preview.test\r\nHost: 127.0.0.1",
    ] {
        let mut stream = std::net::TcpStream::connect(&ingress.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        use std::io::{Read, Write};
        write!(
            stream,
            "GET /_homeboy/preview-ingress/status HTTP/1.1\r\n{hosts}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut got = String::new();
        stream.read_to_string(&mut got).unwrap();
        assert!(got.starts_with("HTTP/1.1 400"), "{hosts:?}: {got}");
        assert!(got.contains("more than one Host"), "{got}");
    }
}
