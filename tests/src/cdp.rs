//! A headless Chromium (Debian's `chromium`) driven over the DevTools protocol: a small blocking CDP client
//! on a WebSocket (tungstenite). It starts the browser with a throwaway profile, attaches to its first tab,
//! sends commands and keeps every event it sees, so a test can load a page, wait for a condition in it,
//! take a screenshot and check the console for errors.
//!
//! The flags keep a browser on a closed network from stalling (no first-run, no background networking, no
//! component updates, no QUIC); as root it needs `--no-sandbox`. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::WebSocket;

/// Where Debian's package installs the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A running headless Chromium and a DevTools session on its first tab.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    events: Vec<Value>,
}

impl Browser {
    /// Starts the browser. `extra` are further command-line flags (`--host-resolver-rules=...`).
    pub fn start(extra: &[&str]) -> Browser {
        assert!(
            PathBuf::from(CHROMIUM).is_file(),
            "{CHROMIUM} is missing: install the Debian package `chromium` (`.ci/run` does) to run this test"
        );
        let profile = tempfile::Builder::new()
            .prefix("homeboy-chromium-")
            .tempdir()
            .expect("a profile dir");
        let mut cmd = Command::new(CHROMIUM);
        cmd.args([
            "--headless",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--mute-audio",
            "--remote-debugging-port=0",
            "--window-size=800,600",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
        if is_root() {
            cmd.arg("--no-sandbox");
        }
        cmd.args(extra)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/<id>" on stderr.
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(Ok(url.trim().to_string()));
                }
                lines.push(line);
                if lines.len() > 200 {
                    lines.remove(0);
                }
            }
            let _ = tx.send(Err(lines.join("\n")));
        });
        let browser_url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(url)) => url,
            Ok(Err(output)) => {
                let _ = child.kill();
                panic!("chromium exited before DevTools listened:\n{output}")
            }
            Err(_) => {
                let _ = child.kill();
                panic!("chromium did not start DevTools within 30 s")
            }
        };
        let authority = browser_url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .expect("a DevTools address")
            .to_string();
        let page_url = first_page(&authority);
        let stream = TcpStream::connect(&authority).expect("connect to DevTools");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        let (ws, _) = tungstenite::client(page_url.as_str(), stream).expect("DevTools WebSocket");
        Browser {
            child,
            _profile: profile,
            ws,
            next_id: 1,
            events: Vec::new(),
        }
    }

    /// Sends a command and waits (bounded) for its result; events seen meanwhile are kept.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .expect("send a DevTools command");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                Instant::now() < deadline,
                "no answer to {method} within 30 s"
            );
            let Some(msg) = self.read() else { continue };
            if msg["id"] == id {
                if let Some(error) = msg.get("error") {
                    panic!("{method} failed: {error}");
                }
                return msg["result"].clone();
            }
        }
    }

    /// Reads one message (None after a short idle read); events are kept.
    fn read(&mut self) -> Option<Value> {
        match self.ws.read() {
            Ok(tungstenite::Message::Text(text)) => {
                let msg: Value = serde_json::from_str(text.as_str()).ok()?;
                if msg.get("method").is_some() {
                    self.events.push(msg.clone());
                }
                Some(msg)
            }
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("the DevTools connection failed: {e}"),
        }
    }

    /// Waits (bounded) until an event named `method` has been seen since the last [`Browser::clear_events`].
    pub fn wait_event(&mut self, method: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.events.iter().find(|e| e["method"] == method) {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {method} event within {limit:?}"
            );
            self.read();
        }
    }

    /// Evaluates `expression` in the page and returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is `true` (bounded); false if it never was.
    pub fn wait_true(&mut self, expression: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.eval(expression) == json!(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.eval(expression) == json!(true)
    }

    /// Events seen so far.
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    /// Forgets the events seen so far.
    pub fn clear_events(&mut self) {
        self.events.clear();
    }

    /// Console errors, uncaught exceptions and error log entries among the events seen.
    pub fn errors(&self) -> Vec<Value> {
        self.events
            .iter()
            .filter(|e| {
                (e["method"] == "Runtime.consoleAPICalled" && e["params"]["type"] == "error")
                    || e["method"] == "Runtime.exceptionThrown"
                    || (e["method"] == "Log.entryAdded" && e["params"]["entry"]["level"] == "error")
                    || e["method"] == "Network.loadingFailed"
            })
            .cloned()
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.ws.close(None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DevTools WebSocket URL of the browser's first tab.
fn first_page(authority: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = ureq::get(&format!("http://{authority}/json/list"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_json::<Value>().ok());
        if let Some(url) = listed
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|tabs| tabs.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        {
            return url.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "chromium listed no page: {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether this process runs as root (Chromium's sandbox refuses root).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
