//! `GET /metrics` of the broker and the preview ingress, read with a real Prometheus text parser
//! (`prometheus-parse`): the broker's jobs by status, claims, lease expiries and request latency; the
//! ingress's requests by route kind and status, bytes and channel clients. Only the machine's own operator
//! may ask: through a public name the route is out of scope (broker) or belongs to the preview (ingress), and
//! a loopback name through the operator's proxy is not the operator.

use std::process::Stdio;
use std::time::Duration;

use homeboy_e2e::origin::Origin;
use homeboy_e2e::{Broker, Home, Http, Response, banner, reap, wait_until};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};

/// The body of a metrics answer, parsed; the answer must be the text format.
fn scrape(response: &Response) -> Scrape {
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(response.body.clone()).expect("UTF-8 metrics");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parse");
    assert!(!scrape.samples.is_empty(), "no samples in\n{text}");
    scrape
}

/// The value of `metric` with exactly these labels (counters, gauges).
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| match &s.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            other => panic!("{metric} is not a number: {other:?}"),
        })
}

/// The `+Inf` bucket (all observations) of histogram `metric`.
fn observations(scrape: &Scrape, metric: &str) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric)
        .unwrap_or_else(|| panic!("no {metric}"));
    let Sample::Histogram(buckets) = &sample.value else {
        panic!("{metric} is not a histogram: {:?}", sample.value);
    };
    assert!(buckets.len() > 5, "{buckets:?}");
    buckets
        .iter()
        .find(|b| b.less_than.is_infinite())
        .map(|b| b.count)
        .expect("a +Inf bucket")
}

#[test]
fn the_broker_counts_jobs_claims_lease_expiries_and_latency() {
    let home = Home::new();
    let submit = home.pair("lab", "submit");
    let work = home.pair("lab", "work");
    let broker = Broker::start(&home, &["--allowed-host", "broker.example.com"]);
    let http = Http::new();
    for _ in 0..2 {
        let r = http.post_auth(
            &format!("{}/runner/jobs", broker.url),
            &submit,
            &json!({"runner_id": "lab", "command": ["true"]}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    // One claim with a lease too short to keep: the sweeper expires it and the job is queued again.
    let r = http.post_auth(
        &format!("{}/runner/jobs/claim", broker.url),
        &work,
        &json!({"runner_id": "lab", "lease_ms": 1000}),
    );
    assert_eq!(r.status, 200);
    assert!(
        r.json()["data"]["claim"].is_object(),
        "no claim: {}",
        r.json()
    );

    let metrics = || scrape(&http.get(&format!("{}/metrics", broker.url)));
    let expired = wait_until(Duration::from_secs(20), || {
        value(&metrics(), "homeboy_job_lease_expiries_total", &[]) == Some(1.0)
    });
    assert!(expired, "no lease expiry counted");
    let m = metrics();
    assert_eq!(value(&m, "homeboy_job_claims_total", &[]), Some(1.0));
    assert_eq!(
        value(&m, "homeboy_jobs", &[("status", "queued")]),
        Some(2.0)
    );
    assert_eq!(
        value(&m, "homeboy_jobs", &[("status", "running")]),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "homeboy_jobs", &[("status", "succeeded")]),
        Some(0.0)
    );
    // The two submits, the claim and at least one earlier scrape, each timed.
    let timed = observations(&m, "homeboy_http_request_duration_seconds");
    assert!(timed >= 4.0, "{timed} requests timed");
    assert_eq!(value(&m, "homeboy_http_requests_in_flight", &[]), Some(1.0));

    // Through the public proxy's name, /metrics is out of the name's scope (only /health and /runner/*).
    let public = http.request(
        "GET",
        &format!("{}/metrics", broker.url),
        &[("host", "broker.example.com")],
        None,
    );
    assert_eq!(public.status, 403);
    assert_eq!(public.json()["error"]["code"], "forbidden.host_scope");
    // The broker recipe's proxy sends the broker's own loopback Host, and its forwarding headers: still
    // not the operator.
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let proxied = http.request(
            "GET",
            &format!("{}/metrics", broker.url),
            &[("host", broker.addr.as_str()), (header, "203.0.113.9")],
            None,
        );
        assert_eq!(proxied.status, 404, "{header}");
        assert_eq!(proxied.json()["error"]["code"], "not_found.route");
    }
    let post = http.request("POST", &format!("{}/metrics", broker.url), &[], Some(b"{}"));
    assert_eq!(post.status, 405);
}

/// A native preview policy: client `lab` with `token` may claim any host under `preview.test`.
pub(super) fn allow_previews(home: &Home, token: &str) {
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let services = home.config_dir().join("tunnel/services");
    std::fs::create_dir_all(&services).unwrap();
    let policy = json!({
        "id": "site-preview",
        "remote_port": 7331,
        "auth": {"mode": "bearer-env", "env": "SITE_PREVIEW_TOKEN"},
        "policy": {"native_preview_auth": {
            "allowed_public_hosts": ["*.preview.test"],
            "tokens": [{"id": "lab", "token_sha256": digest, "allowed_clients": ["lab"]}]
        }},
    });
    std::fs::write(services.join("site-preview.json"), policy.to_string()).unwrap();
}

/// A `homeboy-ingress serve` on a free loopback port, reaped on drop.
pub(super) struct Ingress {
    child: std::process::Child,
    pub(super) url: String,
}

impl Ingress {
    pub(super) fn start(home: &Home) -> Ingress {
        let mut child = home
            .command("homeboy-ingress")
            .args(["serve", "--domain", "preview.test", "--bind", "127.0.0.1:0"])
            .args(["--format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start homeboy-ingress");
        let line = banner(&mut child, Duration::from_secs(60), "homeboy-ingress");
        let listening: Value = serde_json::from_str(&line).expect("a JSON banner");
        let url = format!("http://{}", listening["addr"].as_str().unwrap());
        Ingress { child, url }
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        reap(&mut self.child);
    }
}

#[test]
fn the_ingress_counts_requests_by_route_kind_and_status() {
    let home = Home::new();
    let origin = Origin::start("site");
    home.homeboy_ok(&[
        "tunnel",
        "preview-ingress",
        "route",
        "run-1",
        "--public-host",
        "run-1.preview.test",
        "--upstream-origin",
        &origin.url(),
    ]);
    let ingress = Ingress::start(&home);
    let http = Http::new();
    let get = |host: &str, path: &str| {
        http.request(
            "GET",
            &format!("{}{path}", ingress.url),
            &[("host", host)],
            None,
        )
    };
    let page = get("run-1.preview.test", "/index.html");
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    let missing = get("nobody.preview.test", "/");
    assert_eq!(missing.status, 404);
    // On a preview host, /metrics is the preview's own path: it goes to the upstream.
    let hits = origin.hits();
    let proxied = get("run-1.preview.test", "/metrics");
    assert_eq!(
        origin.hits(),
        hits + 1,
        "the preview's /metrics was not proxied"
    );
    assert!(!String::from_utf8_lossy(&proxied.body).contains("homeboy_ingress"));

    let m = scrape(&get("127.0.0.1", "/metrics"));
    let requests = "homeboy_ingress_requests_total";
    assert_eq!(
        value(&m, requests, &[("route", "direct"), ("status", "200")]),
        Some(2.0),
        "{:?}",
        m.samples
    );
    assert_eq!(
        value(&m, requests, &[("route", "ingress"), ("status", "404")]),
        Some(1.0)
    );
    let bytes = value(
        &m,
        "homeboy_ingress_response_bytes_total",
        &[("route", "direct")],
    )
    .unwrap();
    assert_eq!(bytes as usize, page.body.len() + proxied.body.len());
    assert_eq!(value(&m, "homeboy_ingress_channel_clients", &[]), Some(0.0));
    // Through the operator's proxy (a forwarding header), a loopback name is not the operator's: no metrics.
    let proxied = http.request(
        "GET",
        &format!("{}/metrics", ingress.url),
        &[("host", "127.0.0.1"), ("x-forwarded-for", "203.0.113.9")],
        None,
    );
    assert_eq!(
        proxied.status,
        404,
        "{}",
        String::from_utf8_lossy(&proxied.body)
    );
    assert!(!String::from_utf8_lossy(&proxied.body).contains("homeboy_ingress"));
    // The control host (the domain) may ask too, and the scrape itself is counted.
    let again = scrape(&get("preview.test", "/metrics"));
    assert_eq!(
        value(&again, requests, &[("route", "metrics"), ("status", "200")]),
        Some(2.0)
    );
}

#[test]
fn the_ingress_counts_channel_clients_and_requests_through_the_channel() {
    const TOKEN: &str = "hbp-metrics-token-1f0e9d8c7b";
    let home = Home::new();
    allow_previews(&home, TOKEN);
    let ingress = Ingress::start(&home);
    let origin = Origin::start("site");
    let mut client = home
        .command("homeboy")
        .args([
            "tunnel",
            "preview-client",
            "start",
            "--ingress",
            &ingress.url,
        ])
        .args([
            "--public-host",
            "live.preview.test",
            "--local-origin",
            &origin.url(),
        ])
        .args(["--token-env", "METRICS_PREVIEW_TOKEN", "--client-id", "lab"])
        .args(["--format", "json"])
        .env("METRICS_PREVIEW_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the preview client");
    let registered = banner(&mut client, Duration::from_secs(60), "the preview client");
    let registered: Value = serde_json::from_str(&registered).expect("a JSON event");
    assert_eq!(registered["event"], "registered", "{registered}");
    let transport = registered["transport"].as_str().unwrap().to_string();

    let http = Http::new();
    let get = |host: &str, path: &str| {
        http.request(
            "GET",
            &format!("{}{path}", ingress.url),
            &[("host", host)],
            None,
        )
    };
    let page = get("live.preview.test", "/index.html");
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    let m = scrape(&get("127.0.0.1", "/metrics"));
    assert_eq!(value(&m, "homeboy_ingress_channel_clients", &[]), Some(1.0));
    assert_eq!(
        value(
            &m,
            "homeboy_ingress_requests_total",
            &[("route", transport.as_str()), ("status", "200")]
        ),
        Some(1.0),
        "{transport}: {:?}",
        m.samples
    );
    assert_eq!(
        value(
            &m,
            "homeboy_ingress_response_bytes_total",
            &[("route", transport.as_str())]
        ),
        Some(page.body.len() as f64)
    );
    reap(&mut client);
}
