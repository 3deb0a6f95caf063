//! `homeboy daemon broker-config`: the rendered systemd unit passes `systemd-analyze verify`, the nginx site
//! passes `nginx -t` inside a minimal wrapper config, the Caddy site passes `caddy adapt`, and every check is
//! shown to fail on a broken variant so a pass means something. Non-loopback addresses are refused.

use std::process::Command;

use homeboy_e2e::{Home, bin, describe};
use serde_json::Value;

use super::support::{nginx_test, require_program, run_nginx, test_certificate};

const DOMAIN: &str = "broker.example.com";

fn render(home: &Home, extra: &[&str]) -> Value {
    let mut args = vec!["daemon", "broker-config", "--listen-addr", "127.0.0.1:7421"];
    args.extend(extra);
    home.homeboy_json(&args)
}

/// `systemd-analyze verify` of `unit` written as homeboy-broker.service; systemd reports unknown keys and
/// bad values as warnings with exit code 0, so any output counts as a failure too.
fn systemd_verify(dir: &std::path::Path, unit: &str) -> (bool, String) {
    let analyze = require_program("systemd-analyze", "systemd");
    let path = dir.join("homeboy-broker.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.trim().is_empty(), text)
}

fn caddy_adapt(dir: &std::path::Path, site: &str, validate: bool) -> (bool, String) {
    let caddy = require_program("caddy", "caddy");
    let path = dir.join("Caddyfile");
    std::fs::write(&path, site).unwrap();
    let mut cmd = Command::new(caddy);
    cmd.args(["adapt", "--adapter", "caddyfile", "--config"])
        .arg(&path)
        // Caddy's storage and autosave go to this scratch dir, not the test user's home.
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    if validate {
        cmd.arg("--validate");
    }
    let out = cmd.output().expect("run caddy adapt");
    (out.status.success(), describe(&out))
}

#[test]
fn rendered_recipe_passes_systemd_nginx_and_caddy() {
    let home = Home::new();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let (cert, key) = test_certificate(dir, DOMAIN);
    let binary = bin("homeboy");
    let config = render(
        &home,
        &[
            "--domain",
            DOMAIN,
            "--binary-path",
            binary.to_str().unwrap(),
            "--user",
            "homeboy",
            "--group",
            "homeboy",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    for key in [
        "systemd_unit",
        "private_tunnel_examples",
        "nginx_site",
        "caddy_site",
        "daemon_state_path",
        "daemon_jobs_path",
        "status_commands",
        "log_commands",
        "caveats",
    ] {
        assert!(
            !config[key].is_null(),
            "broker-config lacks {key}: {config}"
        );
    }
    assert_eq!(
        config["daemon_state_path"],
        "/var/lib/homeboy/.config/homeboy/daemon/state.json"
    );
    assert_eq!(
        config["daemon_jobs_path"],
        "/var/lib/homeboy/.config/homeboy/daemon/jobs.redb"
    );

    let unit = config["systemd_unit"].as_str().unwrap();
    let exec = format!(
        "ExecStart={} daemon serve --addr 127.0.0.1:7421 --allowed-host {DOMAIN}\n",
        binary.display()
    );
    assert!(unit.contains(&exec), "{unit}");
    assert!(unit.contains("Environment=HOME=/var/lib/homeboy\n"));
    let (ok, text) = systemd_verify(dir, unit);
    assert!(ok, "systemd-analyze verify:\n{text}\n{unit}");
    let (ok, text) = systemd_verify(
        dir,
        &unit.replace("Restart=on-failure", "Restart=sometimes"),
    );
    assert!(
        !ok && text.contains("sometimes"),
        "a broken unit passed: {text}"
    );

    let nginx = config["nginx_site"].as_str().unwrap();
    let out = nginx_test(dir, nginx);
    assert!(
        out.status.success(),
        "nginx -t:\n{}\n{nginx}",
        describe(&out)
    );
    let out = nginx_test(
        dir,
        &nginx.replace("proxy_buffering off;", "proxy_buffering of;"),
    );
    assert!(!out.status.success(), "a broken site passed nginx -t");
    assert!(nginx.contains("proxy_set_header Host 127.0.0.1:7421;"));

    let caddy = config["caddy_site"].as_str().unwrap();
    let (ok, text) = caddy_adapt(dir, caddy, true);
    assert!(ok, "caddy adapt --validate:\n{text}\n{caddy}");
    let (ok, _) = caddy_adapt(
        dir,
        &caddy.replace("flush_interval", "flush_intervall"),
        false,
    );
    assert!(!ok, "a broken Caddyfile passed caddy adapt");
    // With no certificate given, Caddy's automatic HTTPS serves the domain; the site still parses.
    let automatic = render(&home, &["--domain", DOMAIN]);
    let (ok, text) = caddy_adapt(dir, automatic["caddy_site"].as_str().unwrap(), false);
    assert!(ok, "caddy adapt:\n{text}");

    for site in [nginx, caddy] {
        assert!(site.contains("WARNING: PUBLIC EXPOSURE"), "{site}");
        assert!(site.contains("Authorization: Bearer <token>"), "{site}");
        assert!(site.contains("401"), "{site}");
    }
}

#[test]
fn private_recipe_text_checklist_and_refusals() {
    let home = Home::new();
    let config = render(&home, &[]);
    assert!(
        config.get("nginx_site").is_none() && config.get("caddy_site").is_none(),
        "{config}"
    );
    let kinds: Vec<&str> = config["private_tunnel_examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ssh", "cloudflare_access", "tailnet"]);
    let unit = config["systemd_unit"].as_str().unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/homeboy daemon serve --addr 127.0.0.1:7421\n"));

    let text = home.homeboy_ok(&["daemon", "broker-config", "--format", "text"]);
    assert!(
        text.contains("[ ] 1. Install homeboy on the VPS at /usr/local/bin/homeboy"),
        "{text}"
    );
    assert!(text.contains(unit), "the checklist carries the same unit");
    assert!(
        text.contains("/var/lib/homeboy/.config/homeboy/daemon/state.json"),
        "{text}"
    );
    assert!(text.contains("journalctl -u homeboy-broker"), "{text}");

    for (args, words) in [
        (vec!["--listen-addr", "0.0.0.0:7421"], "loopback"),
        (vec!["--listen-addr", "192.168.1.10:7421"], "loopback"),
        (vec!["--listen-addr", "127.0.0.1:0"], "fixed port"),
        (vec!["--domain", "broker.example.com;evil"], "domain"),
        (vec!["--binary-path", "relative/homeboy"], "binary-path"),
        (vec!["--user", "Bad User"], "user"),
    ] {
        let mut full = vec!["daemon", "broker-config"];
        full.extend(args.iter().copied());
        let out = home.homeboy(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        assert!(out.stdout.is_empty(), "{args:?} printed a recipe");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(words),
            "{args:?}: {}",
            describe(&out)
        );
    }
}

/// The rendered nginx site (as a plain-HTTP variant of the same server block) in front of a real broker: a
/// paired runner's requests go through and run a job; unpaired requests get 401; the rest of the daemon API
/// is not published.
#[test]
fn a_paired_runner_reaches_the_broker_through_the_rendered_nginx_site() {
    use homeboy_e2e::{Broker, Http, Runner, wait_until};
    use serde_json::json;
    use std::time::Duration;

    let home = Home::new();
    let broker_port = super::support::free_port();
    let listen = format!("127.0.0.1:{broker_port}");
    let config = render(&home, &[]);
    assert!(config["nginx_site"].is_null(), "no site without --domain");
    let config = home.homeboy_json(&[
        "daemon",
        "broker-config",
        "--listen-addr",
        &listen,
        "--domain",
        DOMAIN,
        "--format",
        "json",
    ]);
    let unit = config["systemd_unit"].as_str().unwrap();
    assert!(unit.contains(&format!("--allowed-host {DOMAIN}")), "{unit}");
    // Plain HTTP on a free loopback port instead of 443 with certificates; everything else verbatim.
    let proxy_port = super::support::free_port();
    let site = config["nginx_site"].as_str().unwrap();
    let first_server_end = site
        .find("\nserver {\n    listen 80;")
        .unwrap_or(site.len());
    let site: String = site[..first_server_end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("ssl_") && !l.contains("listen [::]:443"))
        .map(|l| {
            if l.contains("listen 443") {
                format!("    listen 127.0.0.1:{proxy_port};")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let scratch = tempfile::tempdir().unwrap();
    let _proxy = run_nginx(scratch.path(), &site, proxy_port);

    let work = home.pair("lab", "work");
    let submit = home.pair("lab", "submit");
    let _broker = Broker::start_at(&home, &listen, &["--allowed-host", DOMAIN]);
    let public = format!("http://127.0.0.1:{proxy_port}");
    let http = Http::new();
    let host = [("host", DOMAIN)];
    let health = http.request("GET", &format!("{public}/health"), &host, None);
    assert_eq!(
        health.status,
        200,
        "{}",
        String::from_utf8_lossy(&health.body)
    );
    let claim = |token: Option<&str>| {
        let body = serde_json::to_vec(&json!({"runner_id": "lab"})).unwrap();
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("host", DOMAIN), ("content-type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        http.request(
            "POST",
            &format!("{public}/runner/jobs/claim"),
            &headers,
            Some(&body),
        )
    };
    assert_eq!(
        claim(Some(&work)).status,
        200,
        "a paired runner is let through"
    );
    for refused in [claim(None), claim(Some("hbk_unpaired"))] {
        assert_eq!(refused.status, 401);
        assert_eq!(refused.json()["error"]["code"], "broker.auth_denied");
    }
    let jobs = http.request("GET", &format!("{public}/jobs"), &host, None);
    assert_eq!(jobs.status, 404, "the local API must not be published");

    // A real runner working through the proxy runs a real job.
    let _runner = Runner::start(&home, &public, "lab", &work, &[]);
    let submitted = http.post_auth(
        &format!("{public}/runner/jobs"),
        &submit,
        &json!({"runner_id": "lab", "command": ["echo", "through the proxy"]}),
    );
    assert_eq!(
        submitted.status,
        200,
        "{}",
        String::from_utf8_lossy(&submitted.body)
    );
    let id = submitted.json()["data"]["job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let direct = format!("http://{listen}/jobs/{id}");
    assert!(
        wait_until(Duration::from_secs(30), || http.get(&direct).json()["data"]
            ["job"]["status"]
            == "succeeded"),
        "the job did not run through the proxy"
    );
}

/// `--store postgres://…` renders the several-brokers shape: the unit reads the connection string from an
/// environment file and the password from a 0600 file, the database's address is allowed out, the nginx site
/// proxies to an upstream of both brokers; systemd-analyze and nginx -t accept them, and a password typed into
/// `--store` appears nowhere (JSON or checklist).
#[test]
fn multi_broker_recipe_passes_systemd_and_nginx_and_never_shows_the_password() {
    let home = Home::new();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let (cert, key) = test_certificate(dir, DOMAIN);
    let binary = bin("homeboy");
    let password = "s3cret-db-pw-7f1e";
    let store = format!("postgres://homeboy:{password}@10.0.0.5:5432/queue");
    let args = [
        "--domain",
        DOMAIN,
        "--binary-path",
        binary.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--store",
        &store,
        "--peer",
        "127.0.0.1:7422",
    ];
    let config = render(&home, &args);
    let json_text = config.to_string();
    let mut checklist_args = vec!["daemon", "broker-config", "--listen-addr", "127.0.0.1:7421"];
    checklist_args.extend(args);
    checklist_args.extend(["--format", "text"]);
    let checklist = home.homeboy_ok(&checklist_args);
    for hay in [&json_text, &checklist] {
        assert!(
            hay.contains("postgres://homeboy@10.0.0.5:5432/queue"),
            "{hay}"
        );
        assert!(!hay.contains(password), "the password was rendered: {hay}");
    }
    let multi = &config["multi_broker"];
    assert_eq!(
        multi["upstream_brokers"],
        serde_json::json!(["127.0.0.1:7421", "127.0.0.1:7422"])
    );
    assert!(
        multi["environment_file"]
            .as_str()
            .unwrap()
            .contains("HOMEBOY_JOB_STORE_URL=postgres://homeboy@10.0.0.5:5432/queue\n")
    );
    let unit = config["systemd_unit"].as_str().unwrap();
    assert!(
        unit.contains("EnvironmentFile=/etc/homeboy/broker.env\n"),
        "{unit}"
    );
    assert!(
        unit.contains("--store-password-file /etc/homeboy/store-password"),
        "{unit}"
    );
    assert!(
        unit.contains("IPAddressAllow=localhost 10.0.0.5\n"),
        "{unit}"
    );
    let (ok, text) = systemd_verify(dir, unit);
    assert!(ok, "systemd-analyze verify:\n{text}\n{unit}");

    let nginx = config["nginx_site"].as_str().unwrap();
    assert!(nginx.contains("upstream homeboy_brokers {"), "{nginx}");
    assert!(nginx.contains("server 127.0.0.1:7421 ") && nginx.contains("server 127.0.0.1:7422 "));
    assert!(
        nginx.contains("proxy_pass http://homeboy_brokers;"),
        "{nginx}"
    );
    let out = nginx_test(dir, nginx);
    assert!(
        out.status.success(),
        "nginx -t:\n{}\n{nginx}",
        describe(&out)
    );
    let out = nginx_test(dir, &nginx.replace("keepalive 32;", "keepalive many;"));
    assert!(!out.status.success(), "a broken upstream passed nginx -t");

    // A peer that is not loopback is refused with exit code 2.
    let mut refused = vec![
        "daemon",
        "broker-config",
        "--store",
        &store,
        "--peer",
        "10.0.0.7:7422",
    ];
    refused.push("--format");
    refused.push("json");
    let out = home.homeboy(&refused);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(!describe(&out).contains(password));
}
