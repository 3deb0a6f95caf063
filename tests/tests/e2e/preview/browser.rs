//! A real browser through a preview: headless Chromium (Debian's `chromium`) opens a public preview host
//! served by ingress + multiplexed channel + a local origin whose page has 100 images and a WebSocket. The
//! page loads completely, the WebSocket message comes back, the screenshot equals one of the same page
//! taken from the origin directly, and the console shows no error.

use std::time::Duration;

use homeboy_e2e::Home;
use homeboy_e2e::cdp::Browser;
use homeboy_e2e::origin::{Origin, PAGE_ASSETS, PAGE_MESSAGE};
use serde_json::{Value, json};

use super::{Client, Ingress, standard_policy};

/// Loads `url` and returns its screenshot (PNG, base64) once every image and the echo are there.
fn load_and_capture(browser: &mut Browser, url: &str) -> String {
    browser.clear_events();
    browser.call("Page.navigate", json!({"url": url}));
    browser.wait_event("Page.loadEventFired", Duration::from_secs(60));
    let complete = format!(
        "document.images.length === {PAGE_ASSETS} && \
         Array.from(document.images).every(i => i.complete && i.naturalWidth > 0) && \
         window.__echo === {PAGE_MESSAGE:?}"
    );
    assert!(
        browser.wait_true(&complete, Duration::from_secs(30)),
        "{url} did not load completely: images {}, echo {}, websocket error {}",
        browser.eval(
            "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length"
        ),
        browser.eval("window.__echo"),
        browser.eval("window.__wsError"),
    );
    assert_eq!(
        browser.eval("document.getElementById('echo').textContent"),
        json!(format!("echo: {PAGE_MESSAGE}"))
    );
    // Every image came over the network with 200.
    let images: Vec<&Value> = browser
        .events()
        .iter()
        .filter(|e| {
            e["method"] == "Network.responseReceived"
                && e["params"]["response"]["url"]
                    .as_str()
                    .is_some_and(|u| u.contains("/img/"))
        })
        .collect();
    assert_eq!(images.len(), PAGE_ASSETS, "{url}");
    assert!(
        images
            .iter()
            .all(|e| e["params"]["response"]["status"] == 200),
        "{url}"
    );
    let errors = browser.errors();
    assert!(errors.is_empty(), "{url}: console errors: {errors:#?}");
    let shot = browser.call("Page.captureScreenshot", json!({"format": "png"}));
    shot["data"].as_str().expect("screenshot data").to_string()
}

#[test]
fn chromium_loads_a_live_page_through_the_multiplexed_channel() {
    let home = Home::new();
    standard_policy(&home);
    let origin = Origin::start("browser");
    let ingress = Ingress::start(&home, &[]);
    let mut client = Client::start(&home, &ingress, "app.preview.test", &origin.url(), &[]);
    assert_eq!(client.registered()["transport"], "mux");
    let port = ingress.addr.rsplit(':').next().unwrap().to_string();

    let mut browser = Browser::start(&["--host-resolver-rules=MAP *.preview.test 127.0.0.1"]);
    for domain in ["Page", "Runtime", "Log", "Network"] {
        browser.call(&format!("{domain}.enable"), json!({}));
    }
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 800, "height": 600, "deviceScaleFactor": 1, "mobile": false}),
    );
    let direct = load_and_capture(&mut browser, &format!("{}/page", origin.url()));
    let hits_before = origin.hits();
    let previewed = load_and_capture(
        &mut browser,
        &format!("http://app.preview.test:{port}/page"),
    );
    // The page, its images and its WebSocket went through the preview.
    assert!(origin.hits() > hits_before + PAGE_ASSETS);
    assert!(direct.len() > 1000, "a real screenshot");
    assert!(
        direct == previewed,
        "the screenshot through the preview differs from the direct one"
    );
    // The console check can fail: an error logged now is seen.
    browser.eval("console.error('probe')");
    assert!(
        homeboy_e2e::wait_until(Duration::from_secs(5), || {
            browser.eval("1");
            !browser.errors().is_empty()
        }),
        "the console error probe was not seen"
    );
    let log = ingress.log();
    assert!(
        log.lines()
            .any(|l| l.contains("\"path\":\"/ws\"") && l.contains("\"status\":101")),
        "{log}"
    );
    assert!(
        log.lines()
            .filter(|l| l.contains("\"path\":\"/img/") && l.contains("\"transport\":\"mux\""))
            .count()
            >= PAGE_ASSETS
    );
}
