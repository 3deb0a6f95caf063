//! The background daemon's log: `daemon.log` is its stdout and stderr, capped and rotated
//! (`daemon.log.1` … `.3`, never more), and — like every log we write — it never holds a broker token, even
//! at debug level with every request logged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use homeboy_e2e::{Home, Http, describe, haystack, wait_until};
use serde_json::{Value, json};

const CAP: u64 = 4096;

fn rotated(log: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", log.display()))
}

#[test]
fn the_daemon_log_is_capped_rotated_and_holds_no_token() {
    let home = Home::new();
    let token = home.pair("lab", "work");
    let started = home
        .command("homeboy")
        .env("HOMEBOY_LOG", "debug")
        .args(["daemon", "start", "--log-max-bytes", &CAP.to_string()])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", describe(&started));
    let status: Value = serde_json::from_slice(&started.stdout).unwrap();
    let url = format!("http://{}", status["status"]["addr"].as_str().unwrap());
    let log = PathBuf::from(status["status"]["log_path"].as_str().unwrap());

    // Requests carrying the token (accepted, refused, in a query the log must drop) until the log has
    // rotated past what is kept.
    let http = Http::new();
    let wrong = format!("{token}x");
    let filled = wait_until(Duration::from_secs(60), || {
        for _ in 0..20 {
            let claim = http.post_auth(
                &format!("{url}/runner/jobs/claim"),
                &token,
                &json!({"runner_id": "lab"}),
            );
            assert_eq!(
                claim.status,
                200,
                "{}",
                String::from_utf8_lossy(&claim.body)
            );
            let refused = http.post_auth(
                &format!("{url}/runner/jobs/claim"),
                &wrong,
                &json!({"runner_id": "lab"}),
            );
            assert_eq!(refused.status, 401);
            http.get(&format!("{url}/health?token={token}"));
        }
        rotated(&log, 3).exists()
    });
    assert!(filled, "the log never rotated three times");
    // A few more rounds: the oldest is dropped, never a fourth file.
    for _ in 0..50 {
        http.get(&format!("{url}/health?token={token}"));
    }
    assert!(!rotated(&log, 4).exists(), "more than three rotated files");

    let mut files = vec![log.clone()];
    files.extend((1..=3).map(|n| rotated(&log, n)));
    for file in &files {
        let text = haystack(file);
        let size = text.len() as u64;
        // Lines are written whole: a file ends before the line that would not fit (the banner and a
        // panic go straight to stdout/stderr and are the only slack).
        assert!(size <= CAP + 512, "{} holds {size} bytes", file.display());
        assert!(
            !text.contains(&token),
            "a token leaked into {}",
            file.display()
        );
    }
    // The log is the daemon's: request lines at debug level, without their query.
    let newest = std::fs::read_to_string(&log).unwrap();
    assert!(newest.contains("/health"), "{newest}");
    assert!(
        !newest.contains("token="),
        "a query string was logged:\n{newest}"
    );
    home.homeboy_ok(&["daemon", "stop"]);
}

#[test]
fn daemon_start_log_format_json_writes_one_object_per_line() {
    let home = Home::new();
    let started = home
        .command("homeboy")
        .env("HOMEBOY_LOG", "debug")
        .args([
            "daemon",
            "start",
            "--log-format",
            "json",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", describe(&started));
    let status: Value = serde_json::from_slice(&started.stdout).unwrap();
    let log = PathBuf::from(status["status"]["log_path"].as_str().unwrap());
    home.homeboy_ok(&["jobs", "list"]);
    home.homeboy_ok(&["daemon", "stop"]);

    let text = haystack(&log);
    let lines: Vec<Value> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line:?}\n{text}"))
        })
        .collect();
    for line in &lines {
        assert!(line.is_object(), "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["message"].is_string(), "{line}");
    }
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(messages[0].contains("serving on"), "{messages:?}");
    assert_eq!(messages.last(), Some(&"homeboy daemon stopped"));
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "request" && l["path"] == "/jobs" && l["status"] == 200),
        "no request line for GET /jobs:\n{text}"
    );

    // Text stays the default; anything else is a usage error that starts nothing.
    let out = home.homeboy(&["daemon", "start", "--log-format", "xml"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let status = home.homeboy_ok(&["daemon", "status"]);
    assert!(status.contains("not running"), "{status}");
}
