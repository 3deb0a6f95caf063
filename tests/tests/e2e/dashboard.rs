//! The dashboard in a real browser: headless Debian Chromium (through chromedriver) against a real daemon,
//! with a real `homeboy runner work` finishing a job enqueued by the real CLI, a cancel clicked on the page,
//! and a run with findings recorded by a real tool. The browser is the harness's DevTools client
//! (`homeboy_e2e::cdp`); screenshots land in `target/screenshots/dashboard/`.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use homeboy_e2e::cdp::Browser;
use homeboy_e2e::{Broker, Home, Http, Runner, wait_until};
use serde_json::{Value, json};

const SARIF: &str = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "fakelint"}}, "results": [
  {"ruleId": "no-todo", "level": "warning", "message": {"text": "TODO left in code"},
   "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/lib.rs"}, "region": {"startLine": 2}}}]},
  {"ruleId": "no-panic", "level": "error", "message": {"text": "panic in library code"},
   "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/lib.rs"}, "region": {"startLine": 3}}}]}]}]}"#;

/// How long the page may take to show a change the daemon has made.
const SHOW: Duration = Duration::from_secs(30);

/// The page in the browser, with the few things this test does to it.
struct Page {
    browser: Browser,
    shots: PathBuf,
}

impl Page {
    fn open(url: &str) -> Page {
        let mut browser = Browser::start(&[]);
        for domain in ["Page", "Runtime", "Log", "Network"] {
            browser.call(&format!("{domain}.enable"), json!({}));
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 1800, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser.call("Page.navigate", json!({"url": url}));
        browser.wait_event("Page.loadEventFired", SHOW);
        // target/debug/deps/e2e-<hash> -> target/screenshots/dashboard
        let exe = std::env::current_exe().expect("current_exe");
        let shots = exe
            .ancestors()
            .nth(3)
            .expect("target dir")
            .join("screenshots/dashboard");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Page { browser, shots }
    }

    /// Polls `expression` until it is something other than `null`/`false`/`""` and returns it; fails the
    /// test with `what` (and a screenshot) after [`SHOW`].
    fn wait_for(&mut self, what: &str, expression: &str) -> Value {
        let mut last = Value::Null;
        let shown = wait_until(SHOW, || {
            last = self.browser.eval(expression);
            !matches!(&last, Value::Null | Value::Bool(false)) && last != json!("")
        });
        if !shown {
            let shot = self.screenshot(&format!("timeout-{}", what.replace(' ', "-")));
            panic!(
                "the page did not show {what} within {SHOW:?} (screenshot: {})",
                shot.display()
            );
        }
        last
    }

    /// The status shown in the row of job `id` (`null` while it has none).
    fn job_status(&mut self, id: &str) -> Value {
        self.browser.eval(&format!(
            "(() => {{ const row = document.querySelector('#jobs tr[data-job-id=\"{id}\"]'); \
             return row ? row.dataset.status : null; }})()"
        ))
    }

    fn wait_job_status(&mut self, what: &str, id: &str, status: &str) {
        let expression = format!(
            "(() => {{ const row = document.querySelector('#jobs tr[data-job-id=\"{id}\"]'); \
             return row !== null && row.dataset.status === '{status}'; }})()"
        );
        self.wait_for(what, &expression);
    }

    /// Clicks the element `css` selects as a person would: scrolled into view, then a mouse press and
    /// release at its centre (so what is on top there gets the click).
    fn click(&mut self, css: &str) {
        let centre = self.browser.eval(&format!(
            "(() => {{ const el = document.querySelector({css:?}); if (!el) return null; \
             el.scrollIntoView({{block: 'center'}}); const r = el.getBoundingClientRect(); \
             return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        ));
        let (Some(x), Some(y)) = (centre[0].as_f64(), centre[1].as_f64()) else {
            panic!("no element {css} to click");
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.browser.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Saves a PNG of the page as `<shots>/<name>.png`.
    fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self
            .browser
            .call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Console errors, uncaught exceptions, CSP violations and failed loads so far (a stream the page
    /// closes itself, `canceled`, is not a failure).
    fn errors(&mut self) -> Vec<Value> {
        self.browser.eval("1");
        self.browser
            .errors()
            .into_iter()
            .filter(|e| e["params"]["canceled"] != json!(true))
            .collect()
    }
}

fn submit(home: &Home, base: &str, token: &str, runner: &str, command: &[&str]) -> String {
    let mut cmd = home.command("homeboy");
    cmd.args([
        "runner",
        "submit",
        "--broker",
        base,
        "--runner-id",
        runner,
        "--format",
        "json",
        "--",
    ])
    .args(command)
    .env("HOMEBOY_BROKER_TOKEN", token);
    let out = homeboy_e2e::Bounded::output_bounded(&mut cmd).expect("run homeboy runner submit");
    assert!(out.status.success(), "{}", homeboy_e2e::describe(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(answer["job"]["status"], "queued", "{answer}");
    answer["job"]["id"].as_str().expect("job id").to_string()
}

#[test]
fn the_dashboard_shows_live_jobs_cancels_one_and_shows_findings() {
    let home = Home::new();
    // A component whose lint tool writes two SARIF findings (and fails, as a linter with findings does).
    home.lint_component(SARIF, 1);
    let submit_token = home.pair("lab", "submit");
    let work_token = home.pair("lab", "work");
    let idle_token = home.pair("lab-idle", "submit");
    let base = home.start_daemon();
    let http = Http::new();

    let mut page = Page::open(&format!("{base}/"));
    page.wait_for(
        "the live job stream",
        "document.body.dataset.live === 'live'",
    );
    // A marker that a reload would erase: everything below must happen in this one page.
    page.browser.eval("window.__homeboyNoReload = 'same page'");
    page.wait_for(
        "the component and the daemon's status",
        "document.querySelector('#components tr[data-component-id=\"app\"]') !== null \
           && document.querySelector('#daemon').textContent.includes('pid')",
    );
    page.screenshot("01-loaded");

    // A job enqueued from the CLI appears without a reload, queued (no runner yet).
    let job = submit(
        &home,
        &base,
        &submit_token,
        "lab",
        &["sh", "-c", "echo from-the-runner"],
    );
    page.wait_for(
        "the new job",
        &format!("document.querySelector('#jobs tr[data-job-id=\"{job}\"]') !== null"),
    );
    assert_eq!(page.job_status(&job), "queued");
    page.screenshot("02-queued");

    // A real runner claims and finishes it: the row turns to succeeded, still without a reload.
    let _runner = Runner::start(&home, &base, "lab", &work_token, &[]);
    page.wait_job_status("the job finished by the runner", &job, "succeeded");
    // Its output, through the job's own event stream.
    page.click(&format!("#jobs tr[data-job-id=\"{job}\"]"));
    page.wait_for(
        "the job's output",
        "document.querySelector('#job-output').textContent.includes('from-the-runner')",
    );
    page.screenshot("03-finished-by-runner");

    // Another job, for a runner nobody runs: cancelled from the page.
    let idle = submit(&home, &base, &idle_token, "lab-idle", &["sleep", "60"]);
    page.wait_for(
        "the second job",
        &format!("document.querySelector('button[data-cancel=\"{idle}\"]') !== null"),
    );
    assert_eq!(page.job_status(&idle), "queued");
    page.click(&format!("button[data-cancel=\"{idle}\"]"));
    page.wait_job_status("the cancelled job", &idle, "cancelled");
    let stored = http.get(&format!("{base}/jobs/{idle}")).json();
    assert_eq!(stored["data"]["job"]["status"], "cancelled", "{stored}");
    page.screenshot("04-cancelled");

    // A run recorded by the real tool (through the CLI and the daemon's executor), with its findings.
    let out = home.homeboy(&["lint", "app", "--via-daemon", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        homeboy_e2e::describe(&out)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("lint json");
    let run = result["run"]["id"].as_str().expect("run id").to_string();
    page.wait_for(
        "the recorded run",
        &format!("document.querySelector('#runs tr[data-run-id=\"{run}\"]') !== null"),
    );
    page.click(&format!("#runs tr[data-run-id=\"{run}\"]"));
    let findings = page.wait_for(
        "the run's findings",
        "(() => { const items = [...document.querySelectorAll('#findings li')].map((li) => li.textContent); \
         return items.length === 2 ? items : null; })()",
    );
    let text = findings.to_string();
    assert!(
        text.contains("no-todo") && text.contains("panic in library code"),
        "{text}"
    );
    page.wait_for(
        "the run's artifact link",
        "(() => { const a = document.querySelector('#artifacts a[data-artifact-id]'); \
         return a ? a.getAttribute('href') : null; })()",
    );
    page.screenshot("05-run-findings");

    // Still the page first loaded, and nothing on the console went wrong (CSP violations included).
    assert_eq!(
        page.browser.eval("window.__homeboyNoReload || null"),
        "same page"
    );
    let errors = page.errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    // The console capture is real: an error the page logs now is seen.
    page.browser.eval("console.error('console probe')");
    assert!(
        wait_until(Duration::from_secs(5), || !page.errors().is_empty()),
        "the console error probe was not seen"
    );
}

#[test]
fn the_page_keeps_its_guards() {
    let home = Home::new();
    let base = home.start_daemon();
    let http = Http::new();
    let page = http.get(&format!("{base}/"));
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    // A rebinding attempt (a foreign Host) and a cross-site Origin get no page and no cancel.
    let port = base.rsplit(':').next().unwrap();
    let foreign = http.request(
        "GET",
        &format!("{base}/"),
        &[("host", &format!("evil.example:{port}"))],
        None,
    );
    assert!(
        (400..500).contains(&foreign.status),
        "a foreign Host got the page: {}",
        foreign.status
    );
    let cross = http.request(
        "POST",
        &format!("{base}/jobs/nope/cancel"),
        &[("origin", "http://evil.example")],
        Some(b"{}"),
    );
    assert_eq!(
        cross.status,
        403,
        "{}",
        String::from_utf8_lossy(&cross.body)
    );
    // The page's own origin is this daemon: its cancel reaches the route (here: no such job).
    let own = http.request(
        "POST",
        &format!("{base}/jobs/nope/cancel"),
        &[("origin", base.as_str())],
        Some(b"{}"),
    );
    assert_eq!(own.status, 404, "{}", String::from_utf8_lossy(&own.body));
}

#[test]
fn the_broker_shows_the_page_on_loopback_only() {
    let home = Home::new();
    let broker = Broker::start(&home, &["--allowed-host", "broker.example.test"]);
    let http = Http::new();
    let page = http.get(&format!("{}/", broker.url));
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("/ui/app.js"));
    // Through the broker's public name (a reverse proxy in front of it): no page, no files — the Host
    // guard keeps that name to `/runner/*` (403), and the page answers loopback Hosts only (404) anyway.
    for path in ["/", "/ui/app.js"] {
        let public = http.request(
            "GET",
            &format!("{}{path}", broker.url),
            &[("host", "broker.example.test")],
            None,
        );
        assert!(
            matches!(public.status, 403 | 404),
            "{path} through the public name: {}",
            public.status
        );
        assert_eq!(public.json()["success"], false, "{path}: an envelope error");
    }
}
