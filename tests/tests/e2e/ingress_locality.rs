//! Locality at the preview ingress, through a real nginx running the install plan's site with TLS: behind
//! the operator's proxy every request comes from loopback, so a remote client that sends `Host: 127.0.0.1`
//! must get neither the server's paths (`routes_dir` in the status) nor the control API.
//!
//! Two layers are proven on their own: the rendered site's catch-all default server refuses a name that is
//! not the site's before anything reaches the ingress; and with that block dropped (an operator whose
//! machine already has a default server for 443, or a site rendered before it existed), the spoofed request
//! reaches the ingress carrying the `X-Forwarded-For` and `X-Real-IP` the site sets, and the ingress treats
//! it as a public request for host `127.0.0.1`. A request made on the machine itself, with no proxy in
//! between, still sees the server's paths (so the assertions can see a leak).

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use homeboy_e2e::origin::dead_port;
use homeboy_e2e::{Bounded, Home, Http, banner, describe};
use serde_json::Value;

use crate::servers::support::{StopOnDrop, require_program, run_nginx, test_certificate};

const DOMAIN: &str = "preview.test";
const SITE_HOST: &str = "homeboy-smoke.preview.test";
const CONTROL_HOST: &str = "homeboy-ingress.preview.test";
const STATUS: &str = "/_homeboy/preview-ingress/status";

/// The ingress on `bind`, serving the plan's control host too.
fn start_ingress(home: &Home, bind: &str) -> StopOnDrop {
    let log = home.root().join("ingress.log");
    let mut child = home
        .command("homeboy-ingress")
        .args(["serve", "--domain", DOMAIN, "--bind", bind])
        .args(["--control-host", CONTROL_HOST, "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start the ingress");
    let line = banner(&mut child, Duration::from_secs(60), "homeboy-ingress");
    assert!(
        serde_json::from_str::<Value>(&line).is_ok(),
        "the ingress did not start: {line:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    StopOnDrop(child)
}

/// The plan's nginx site with its ports moved to loopback test ports (`tls`, `plain`), otherwise verbatim.
fn site_on(plan: &Value, tls: u16, plain: u16) -> String {
    let site = plan["proxy"]["nginx"]["snippet"].as_str().unwrap();
    site.lines()
        .filter(|l| !l.contains("listen [::]:"))
        .map(|l| {
            l.replace("listen 443 ", &format!("listen 127.0.0.1:{tls} "))
                .replace("listen 80;", &format!("listen 127.0.0.1:{plain};"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `site` without its catch-all default server.
fn without_catch_all(site: &str) -> String {
    let marker = site
        .find(" default_server;")
        .expect("the rendered site has a catch-all default server");
    let start = site[..marker].rfind("server {\n").expect("its block");
    let end = marker + site[marker..].find("\n}").expect("the block ends") + 2;
    assert!(
        site[start..end].contains("return 444;"),
        "{}",
        &site[start..end]
    );
    format!("{}{}", &site[..start], &site[end..])
}

/// What one HTTPS request got back: the raw response (empty when the proxy hung up without one).
struct Answer {
    raw: String,
    detail: String,
}

impl Answer {
    fn status(&self) -> Option<u16> {
        let line = self.raw.lines().next()?;
        line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }
}

/// Sends `method path` with `Host: host` over TLS to `127.0.0.1:port`, naming `sni` in the handshake (none
/// when `None`), with `openssl s_client`; returns whatever came back.
fn https(port: u16, sni: Option<&str>, method: &str, host: &str, path: &str) -> Answer {
    let openssl = require_program("openssl", "openssl");
    let mut cmd = Command::new(openssl);
    cmd.args([
        "s_client",
        "-quiet",
        "-connect",
        &format!("127.0.0.1:{port}"),
    ]);
    match sni {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start openssl s_client");
    let body = if method == "POST" { "{}" } else { "" };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = child.stdin.take().unwrap().write_all(request.as_bytes());
    let out = wait_output(child);
    Answer {
        raw: String::from_utf8_lossy(&out.stdout).into_owned(),
        detail: describe(&out),
    }
}

/// `wait_with_output`, bounded.
fn wait_output(child: Child) -> std::process::Output {
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.expect("openssl s_client output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("openssl s_client did not finish within 30 s");
        }
    }
}

/// `preview-ingress install` for the preview pattern, with `extra` flags.
fn install_plan(home: &Home, extra: &[&str]) -> Value {
    let mut args = vec![
        "tunnel",
        "preview-ingress",
        "install",
        "--server",
        "example-server",
        "--domain",
        DOMAIN,
        "--public-host-pattern",
        "*.preview.test",
    ];
    args.extend_from_slice(extra);
    home.homeboy_json(&args)
}

/// A spoofed loopback `Host` learned nothing: no server paths, no route table, no control API answer.
fn assert_not_local(answer: &Answer, what: &str) {
    for leak in ["routes_dir", "\"routes\"", "\"ingress\"", "preview.auth"] {
        assert!(
            !answer.raw.contains(leak),
            "{what}: {leak} reached a spoofed Host\n{}",
            answer.detail
        );
    }
}

#[test]
fn a_spoofed_loopback_host_through_nginx_gets_no_paths_and_no_control_api() {
    let home = Home::new();
    let bind = format!("127.0.0.1:{}", dead_port());
    let _ingress = start_ingress(&home, &bind);
    let scratch = tempfile::tempdir().unwrap();
    // nginx's workers may run as an unprivileged user; they need to reach the scratch dir.
    let _ = Command::new("chmod")
        .arg("755")
        .arg(scratch.path())
        .status();
    let (cert, key) = test_certificate(scratch.path(), "*.preview.test");
    let plan = install_plan(
        &home,
        &[
            "--bind",
            &bind,
            "--tls-certificate",
            cert.to_str().unwrap(),
            "--tls-certificate-key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(plan["control_host"], CONTROL_HOST);

    // On the machine, with no proxy in between, a loopback Host is local and sees the server's paths.
    let http = Http::new();
    let direct = http.request("GET", &format!("http://{bind}{STATUS}"), &[], None);
    assert_eq!(direct.status, 200);
    assert!(
        String::from_utf8_lossy(&direct.body).contains("routes_dir"),
        "{direct:?}"
    );

    // The site exactly as rendered.
    let (tls, plain) = (dead_port(), dead_port());
    let site = site_on(&plan, tls, plain);
    let nginx = run_nginx(&scratch.path().join("full"), &site, tls);
    // Through the site, its own names reach the ingress: the public view of a preview host, and the
    // control host's status without server paths.
    let smoke = https(tls, Some(SITE_HOST), "GET", SITE_HOST, STATUS);
    assert_eq!(smoke.status(), Some(200), "{}", smoke.detail);
    assert!(
        smoke.raw.contains("\"state\":\"missing\""),
        "{}",
        smoke.detail
    );
    let control = https(tls, Some(CONTROL_HOST), "GET", CONTROL_HOST, STATUS);
    assert_eq!(control.status(), Some(200), "{}", control.detail);
    assert!(
        control.raw.contains("\"routes\"") && !control.raw.contains("routes_dir"),
        "{}",
        control.detail
    );
    // A spoofed loopback Host — behind a preview host's TLS name, or with none at all — is refused by the
    // catch-all before it reaches the ingress.
    for sni in [Some(SITE_HOST), Some("127.0.0.1"), None] {
        for (method, path) in [("GET", STATUS), ("POST", "/preview/client/register")] {
            let spoofed = https(tls, sni, method, "127.0.0.1", path);
            assert_not_local(
                &spoofed,
                &format!("catch-all, SNI {sni:?}, {method} {path}"),
            );
            assert_eq!(spoofed.status(), None, "{}", spoofed.detail);
        }
    }
    drop(nginx);

    // The site without its catch-all: the spoofed request reaches the ingress with the proxy headers the
    // site sets, and the ingress answers it as the public request it is.
    let (tls, plain) = (dead_port(), dead_port());
    let site = without_catch_all(&site_on(&plan, tls, plain));
    let _nginx = run_nginx(&scratch.path().join("bare"), &site, tls);
    for sni in [Some(SITE_HOST), None] {
        let status = https(tls, sni, "GET", "127.0.0.1", STATUS);
        assert_not_local(&status, &format!("ingress, SNI {sni:?}, status"));
        assert_eq!(status.status(), Some(200), "{}", status.detail);
        assert!(
            status.raw.contains("\"host\":\"127.0.0.1\"")
                && status.raw.contains("\"state\":\"missing\""),
            "{}",
            status.detail
        );
        let control = https(tls, sni, "POST", "127.0.0.1", "/preview/client/register");
        assert_not_local(&control, &format!("ingress, SNI {sni:?}, register"));
        assert_eq!(control.status(), Some(404), "{}", control.detail);
        assert!(
            control.raw.contains("missing_session"),
            "{}",
            control.detail
        );
    }
}

/// The rendered Caddy site parses (`caddy adapt`) and sets `X-Real-IP` for the ingress.
#[test]
fn the_rendered_caddy_site_adapts_and_sets_the_proxy_headers() {
    let caddy = require_program("caddy", "caddy");
    let home = Home::new();
    let plan = install_plan(&home, &["--proxy", "caddy"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, plan["proxy"]["caddy"]["snippet"].as_str().unwrap()).unwrap();
    let adapted = Command::new(caddy)
        .args(["adapt", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir.path())
        .output_bounded()
        .unwrap();
    assert!(adapted.status.success(), "{}", describe(&adapted));
    let json: Value = serde_json::from_slice(&adapted.stdout).unwrap();
    let text = json.to_string();
    assert!(
        text.contains("X-Real-Ip") || text.contains("X-Real-IP"),
        "{text}"
    );
    assert!(text.contains("{http.request.remote.host}"), "{text}");
}
