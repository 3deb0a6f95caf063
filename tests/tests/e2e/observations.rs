//! Components, rigs, stacks, analysis runs and their evidence end to end: real git repositories, real tool
//! commands writing real SARIF, JUnit, checkstyle and metrics files, the real daemon on loopback and the real
//! CLI sharing the observation store.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use homeboy_e2e::{GitRepo, Home, Http, describe, pid_alive, wait_until};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SARIF_ROUND_1: &str = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "fakelint"}}, "results": [
  {"ruleId": "no-todo", "level": "warning", "message": {"text": "TODO left in code"},
   "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/lib.rs"}, "region": {"startLine": 2}}}]},
  {"ruleId": "no-panic", "level": "error", "message": {"text": "panic in library code"},
   "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/lib.rs"}, "region": {"startLine": 3}}}],
   "fixes": [{"description": {"text": "return an error"}}]}]}]}"#;

/// Round 2: a header line moved the panic down (same finding), the TODO is fixed, an unwrap is new.
const SARIF_ROUND_2: &str = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "fakelint"}}, "results": [
  {"ruleId": "no-panic", "level": "error", "message": {"text": "panic in library code"},
   "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/lib.rs"}, "region": {"startLine": 4}}}]},
  {"ruleId": "no-unwrap", "level": "warning", "message": {"text": "unwrap may panic"},
   "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/lib.rs"}, "region": {"startLine": 5}}}]}]}]}"#;

const JUNIT: &str = r#"<?xml version="1.0"?><testsuites><testsuite name="app" file="tests/app.rs">
<testcase classname="app" name="works"/><testcase classname="app" name="adds" line="7"><failure message="expected 4, got 5"/></testcase>
</testsuite></testsuites>"#;

const CHECKSTYLE: &str = r#"<?xml version="1.0"?><checkstyle version="4.3"><file name="web/app.js">
<error line="3" severity="error" message="x is unused" source="eslint.no-unused-vars"/></file></checkstyle>"#;

/// A component checkout with tools whose reports depend on the `round` file.
struct Project {
    home: Home,
    repo: GitRepo,
    http: Http,
}

fn blob() -> Vec<u8> {
    (0..=255u8).cycle().take(70_000).collect()
}

impl Project {
    fn new() -> Project {
        let home = Home::new();
        let repo = GitRepo::init(&home.root().join("app"));
        repo.commit("src/lib.rs", "fn a() {}\n// TODO\npanic!();\n", "code");
        repo.write("reports/round1.sarif", SARIF_ROUND_1);
        repo.write("reports/round2.sarif", SARIF_ROUND_2);
        repo.write("reports/junit.xml", JUNIT);
        repo.write("reports/checkstyle.xml", CHECKSTYLE);
        repo.write(
            "reports/metrics1.json",
            r#"{"metrics": {"rps": 1000, "p99_ms": 4.5}}"#,
        );
        repo.write(
            "reports/metrics2.json",
            r#"{"metrics": {"rps": 1250, "p99_ms": 3.0}}"#,
        );
        std::fs::write(repo.dir.join("reports/blob.bin"), blob()).unwrap();
        repo.write("round", "1");
        let lint = "mkdir -p out/lint && cp reports/round$(cat round).sarif out/lint/lint.sarif \
                    && cp reports/blob.bin out/lint/blob.bin && echo \"linting round $(cat round)\" \
                    && echo 'lint warning' >&2 && exit 1";
        let tools = json!({
            "lint": {"command": ["sh", "-c", lint], "artifacts": "out/lint",
                     "findings": {"format": "sarif", "path": "out/lint/lint.sarif"}},
            "test": {"command": ["sh", "-c", "cp reports/junit.xml junit.xml; echo testing; exit 101"],
                     "findings": {"format": "junit", "path": "junit.xml"}},
            "audit": {"command": ["sh", "-c", "cp reports/checkstyle.xml audit.xml"],
                      "findings": {"format": "checkstyle", "path": "audit.xml"}},
            "bench": {"command": ["sh", "-c", "cp reports/metrics$(cat round).json metrics.json"],
                      "metrics": "metrics.json"},
            "build": {"command": ["sh", "-c", "echo $$ > build.pid; echo building; exec sleep 30"]},
        });
        let project = Project {
            home,
            repo,
            http: Http::new(),
        };
        let dir = project.repo.dir.to_str().unwrap().to_string();
        let patch = json!({"tools": tools}).to_string();
        project.ok(&["component", "add", "app", "--path", &dir, "--json", &patch]);
        project
    }

    fn ok(&self, args: &[&str]) -> String {
        self.home.homeboy_ok(args)
    }

    fn json(&self, args: &[&str]) -> Value {
        self.home.homeboy_json(args)
    }

    fn get(&self, url: &str) -> (u16, Value) {
        let r = self.http.get(url);
        (r.status, r.json())
    }

    fn data(&self, url: &str) -> Value {
        let (status, body) = self.get(url);
        assert_eq!(status, 200, "GET {url}: {body}");
        body["data"].clone()
    }

    fn wait_job(&self, base: &str, id: &str) -> Value {
        let mut job = Value::Null;
        let done = wait_until(Duration::from_secs(60), || {
            job = self.data(&format!("{base}/jobs/{id}"))["job"].clone();
            matches!(
                job["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
        });
        assert!(done, "job {id} did not finish: {job}");
        job
    }

    fn events(&self, base: &str, id: &str) -> Vec<Value> {
        self.data(&format!("{base}/jobs/{id}/events?limit=1000"))["events"]
            .as_array()
            .cloned()
            .unwrap()
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The parts of a result that differ between two runs of the same thing.
fn masked(result: &Value) -> Value {
    let mut v = result.clone();
    fn scrub(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("job_id");
                map.remove("label");
                // The order of stdout and stderr lines in the log differs between runs.
                if map.get("kind") == Some(&Value::String("log".into())) {
                    map.insert("sha256".into(), Value::Null);
                }
                for (k, child) in map.iter_mut() {
                    if [
                        "id",
                        "run_id",
                        "started_at",
                        "finished_at",
                        "created_at",
                        "duration_ms",
                        "owner",
                        "content_url",
                        "fetch_command",
                        "path",
                    ]
                    .contains(&k.as_str())
                    {
                        *child = Value::Null;
                    } else {
                        scrub(child);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(scrub),
            _ => {}
        }
    }
    scrub(&mut v);
    v
}

#[test]
fn lint_through_the_daemon_records_a_run_with_findings_and_artifacts() {
    let p = Project::new();
    let base = p.home.start_daemon();
    let r = p.http.post_json(
        &format!("{base}/lint"),
        &json!({"component": "app", "label": "e2e"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let enqueued = r.json()["data"].clone();
    let job_id = enqueued["job"]["id"].as_str().unwrap().to_string();
    assert_eq!(enqueued["poll"]["job"], format!("/jobs/{job_id}"));
    assert_eq!(enqueued["request"]["tool"], "homeboy.lint");
    let job = p.wait_job(&base, &job_id);
    assert_eq!(
        (job["status"].as_str(), job["exit_code"].as_i64()),
        (Some("failed"), Some(1))
    );
    assert_eq!(job["executor"], "daemon");

    let events = p.events(&base, &job_id);
    let output: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["kind"] == "stdout" || e["kind"] == "stderr")
        .map(|e| (e["kind"].as_str().unwrap(), e["message"].as_str().unwrap()))
        .collect();
    assert!(
        output.contains(&("stdout", "linting round 1")),
        "{output:?}"
    );
    assert!(output.contains(&("stderr", "lint warning")), "{output:?}");
    let result = events
        .iter()
        .find(|e| e["kind"] == "result" && e["message"] == "analysis result")
        .expect("a result event")["data"]
        .clone();
    let run_id = result["run"]["id"].as_str().unwrap().to_string();
    assert_eq!(result["run"]["status"], "fail");
    assert_eq!(result["run"]["metadata"]["job_id"], job_id.as_str());
    assert_eq!(result["run"]["metadata"]["label"], "e2e");
    assert_eq!(result["findings"]["total"], 2);
    assert_eq!(
        result["run"]["git_sha"],
        p.repo.git(&["rev-parse", "HEAD"]).as_str()
    );

    // The run through every reader.
    let runs = p.data(&format!(
        "{base}/runs?component=app&kind=lint&status=fail&limit=5"
    ));
    assert_eq!(runs["runs"][0]["id"], run_id.as_str());
    let run = p.data(&format!("{base}/runs/{run_id}"))["run"].clone();
    assert_eq!(run, result["run"]);
    assert!(
        p.data(&format!("{base}/audit/runs"))["runs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        p.data(&format!("{base}/bench/runs"))["runs"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let artifacts = p.data(&format!("{base}/runs/{run_id}/artifacts"))["artifacts"]
        .as_array()
        .cloned()
        .unwrap();
    let names: Vec<(&str, &str)> = artifacts
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("output.log", "log"),
            ("out/lint/blob.bin", "file"),
            ("out/lint/lint.sarif", "findings")
        ]
    );
    let blob_record = artifacts
        .iter()
        .find(|a| a["name"] == "out/lint/blob.bin")
        .unwrap();
    assert_eq!(blob_record["sha256"], sha256(&blob()).as_str());
    assert_eq!(blob_record["size_bytes"], 70_000);
    assert_eq!(blob_record["type"], "file");
    assert_eq!(blob_record["content_available"], true);
    assert_eq!(blob_record["retrieval"]["mode"], "direct_download");
    let content_url = blob_record["content_url"].as_str().unwrap().to_string();
    let one = p.data(&format!(
        "{base}/runs/{run_id}/artifacts/{}",
        blob_record["id"].as_str().unwrap()
    ));
    assert_eq!(one["artifact"], *blob_record);

    // Bytes: the daemon streams the file itself, byte for byte, with Range support.
    let bytes = p.http.get(&format!("{base}{content_url}"));
    assert_eq!(bytes.status, 200);
    assert_eq!(bytes.body, blob(), "byte-identical download");
    assert_eq!(
        bytes.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(bytes.header("content-length"), Some("70000"));
    let part = p.http.request(
        "GET",
        &format!("{base}{content_url}"),
        &[("range", "bytes=100-199")],
        None,
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &blob()[100..200]);
    assert_eq!(part.header("content-range"), Some("bytes 100-199/70000"));
    let beyond = p.http.request(
        "GET",
        &format!("{base}{content_url}"),
        &[("range", "bytes=80000-")],
        None,
    );
    assert_eq!(beyond.status, 416);
    let head = p
        .http
        .request("HEAD", &format!("{base}{content_url}"), &[], None);
    assert_eq!((head.status, head.body.len()), (200, 0));
    // The CLI fetches the same bytes (the artifact's fetch_command).
    let fetched = p.home.root().join("fetched.bin");
    p.ok(&[
        "runs",
        "artifacts",
        &run_id,
        "--fetch",
        blob_record["id"].as_str().unwrap(),
        "--output",
        fetched.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&fetched).unwrap(), blob());

    let sync = p.data(&format!(
        "{base}/runs/{run_id}/artifacts/sync?verify=sha256"
    ));
    assert_eq!(sync["summary"]["available"], 3);

    let findings = p.data(&format!("{base}/runs/{run_id}/findings"))["findings"]
        .as_array()
        .cloned()
        .unwrap();
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[1]["rule"], "no-panic");
    assert_eq!(findings[1]["fixable"], true);
    assert_eq!(findings[1]["file"], "src/lib.rs");
    assert_eq!(findings[1]["line"], 3);
    let print = findings[1]["fingerprint"].as_str().unwrap();
    let filtered = p.data(&format!(
        "{base}/runs/{run_id}/findings?tool=fakelint&file=src/lib.rs&fingerprint={print}"
    ));
    assert_eq!(filtered["findings"].as_array().unwrap().len(), 1);

    // `homeboy lint --via-daemon --format json` prints exactly the job's result event.
    let out = p
        .home
        .homeboy(&["lint", "app", "--via-daemon", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let second_job = printed["run"]["metadata"]["job_id"].as_str().unwrap();
    let event = p
        .events(&base, second_job)
        .into_iter()
        .find(|e| e["kind"] == "result" && e["message"] == "analysis result")
        .unwrap();
    let expected = format!(
        "{}\n",
        serde_json::to_string_pretty(&event["data"]).unwrap()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        expected,
        "byte-identical result JSON"
    );

    // The CLI running the tool itself (store shared with the daemon) produces the same result shape, and the
    // daemon sees its run at once.
    let out = p.home.homeboy(&["lint", "app", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let local: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(local["run"]["metadata"]["owner"]["process"], "cli");
    assert_eq!(masked(&local), masked(&result));
    let local_id = local["run"]["id"].as_str().unwrap();
    assert_eq!(
        p.data(&format!("{base}/runs/{local_id}"))["run"],
        local["run"]
    );
    let via_cli = p.json(&["runs", "show", local_id, "--format", "json"]);
    assert_eq!(via_cli["run"], local["run"]);
}

/// Issue 16 item 6 on the daemon's artifact byte route: validators and conditional requests, answered by
/// the same responder as the artifact origin (the route used to ignore If-None-Match and If-Range).
#[test]
fn the_artifact_byte_route_answers_conditional_and_multi_range_requests() {
    let p = Project::new();
    let base = p.home.start_daemon();
    let out = p.home.homeboy(&["lint", "app", "--format", "json"]);
    let result: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", describe(&out)));
    let artifact = result["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "file")
        .unwrap_or_else(|| panic!("no file artifact in {result}"))
        .clone();
    let url = format!("{base}{}", artifact["content_url"].as_str().unwrap());
    let request =
        |method: &str, headers: &[(&str, &str)]| p.http.request(method, &url, headers, None);

    let whole = request("GET", &[]);
    assert_eq!((whole.status, whole.body.len()), (200, 70_000));
    let etag = format!("\"{}\"", sha256(&blob()));
    assert_eq!(
        whole.header("etag"),
        Some(etag.as_str()),
        "the ETag is the artifact's SHA-256"
    );
    assert_eq!(
        whole.header("content-disposition"),
        Some("inline; filename=\"blob.bin\"")
    );
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let last_modified = whole
        .header("last-modified")
        .expect("last-modified")
        .to_string();

    // If-None-Match (and If-Modified-Since) → 304 with the validators and no body, for GET and HEAD.
    for method in ["GET", "HEAD"] {
        for condition in [
            ("if-none-match", etag.as_str()),
            ("if-modified-since", last_modified.as_str()),
        ] {
            let r = request(method, &[condition]);
            assert_eq!((r.status, r.body.len()), (304, 0), "{method} {condition:?}");
            assert_eq!(r.header("etag"), Some(etag.as_str()));
        }
    }
    let changed = request("GET", &[("if-none-match", "\"0000\"")]);
    assert_eq!((changed.status, changed.body.len()), (200, 70_000));

    // If-Range: the range while the validator matches, else the whole file.
    let part = request("GET", &[("range", "bytes=10-19"), ("if-range", &etag)]);
    assert_eq!((part.status, part.body.as_slice()), (206, &blob()[10..20]));
    let stale = request("GET", &[("range", "bytes=10-19"), ("if-range", "\"0000\"")]);
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, blob());

    // If-Match → 412 unless it names this content.
    assert_eq!(request("GET", &[("if-match", "\"0000\"")]).status, 412);
    assert_eq!(request("GET", &[("if-match", &etag)]).status, 200);

    // Several ranges: multipart/byteranges; a suffix; the unit in capitals.
    let multi = request("GET", &[("range", "bytes=0-3,69996-")]);
    assert_eq!(multi.status, 206);
    let content_type = multi.header("content-type").unwrap().to_string();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap();
    let mut expected = Vec::new();
    for (start, end) in [(0usize, 3usize), (69_996, 69_999)] {
        expected.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {start}-{end}/70000\r\n\r\n"
            )
            .as_bytes(),
        );
        expected.extend_from_slice(&blob()[start..=end]);
    }
    expected.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert_eq!(multi.body, expected);
    let suffix = request("GET", &[("range", "BYTES=-5")]);
    assert_eq!(
        (suffix.status, suffix.body.as_slice()),
        (206, &blob()[69_995..])
    );
    assert_eq!(
        suffix.header("content-range"),
        Some("bytes 69995-69999/70000")
    );
}

#[test]
fn test_audit_bench_and_compare() {
    let p = Project::new();
    let test = p.home.homeboy(&["test", "app", "--format", "json"]);
    assert_eq!(test.status.code(), Some(1));
    let test: Value = serde_json::from_slice(&test.stdout).unwrap();
    assert_eq!(test["exit_code"], 101);
    assert_eq!(test["findings"]["items"][0]["rule"], "test_failure");
    assert_eq!(
        test["findings"]["items"][0]["message"],
        "app::adds: expected 4, got 5"
    );
    assert_eq!(test["findings"]["items"][0]["file"], "tests/app.rs");
    let audit = p.json(&["audit", "app", "--format", "json"]);
    assert_eq!(audit["run"]["status"], "pass");
    assert_eq!(
        audit["findings"]["items"][0]["rule"],
        "eslint.no-unused-vars"
    );

    let lint = |args: &[&str]| -> Value {
        let out = p.home.homeboy(args);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Round 1.
    let first = p.json(&["bench", "app", "--format", "json"]);
    let before = lint(&["lint", "app", "--format", "json"]);
    // Round 2: a header line moves the panic down, the TODO is gone, an unwrap is new.
    p.repo.write("round", "2");
    p.repo.write(
        "src/lib.rs",
        "// header\nfn a() {}\n\npanic!();\nx.unwrap();\n",
    );
    let second = p.json(&["bench", "app", "--format", "json"]);
    assert_eq!(second["metrics"], json!({"rps": 1250, "p99_ms": 3.0}));
    let after = lint(&["lint", "app", "--format", "json"]);

    let a = before["run"]["id"].as_str().unwrap();
    let b = after["run"]["id"].as_str().unwrap();
    let cmp = p.json(&["runs", "compare", a, b, "--format", "json"]);
    assert_eq!(
        cmp["status"],
        json!({"from": "fail", "to": "fail", "changed": false})
    );
    let rules = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(rules(&cmp["findings"]["new"]), ["no-unwrap"]);
    assert_eq!(rules(&cmp["findings"]["fixed"]), ["no-todo"]);
    assert_eq!(
        cmp["findings"]["unchanged"], 1,
        "the moved panic keeps its fingerprint"
    );

    let bench = p.json(&[
        "runs",
        "compare",
        first["run"]["id"].as_str().unwrap(),
        second["run"]["id"].as_str().unwrap(),
        "--format",
        "json",
    ]);
    let rps = bench["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "rps")
        .unwrap()
        .clone();
    assert_eq!(
        (rps["a"].as_f64(), rps["b"].as_f64()),
        (Some(1000.0), Some(1250.0))
    );
    assert_eq!(
        (rps["delta"].as_f64(), rps["delta_pct"].as_f64()),
        (Some(250.0), Some(25.0))
    );
    let text = p.ok(&["runs", "compare", a, b]);
    assert!(
        text.contains("findings: 1 new, 1 fixed, 1 unchanged"),
        "{text}"
    );
    assert!(text.contains("+ warning no-unwrap"), "{text}");

    let listed = p.json(&["runs", "list", "--kind", "bench", "--format", "json"]);
    assert_eq!(listed["runs"].as_array().unwrap().len(), 2);
    let out = p.home.homeboy(&["runs", "list", "--status", "bogus"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = p.home.homeboy(&["runs", "show", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let findings = p.ok(&["runs", "findings", b]);
    assert!(
        findings.contains("no-unwrap") && findings.contains("src/lib.rs:5"),
        "{findings}"
    );
}

#[test]
fn a_run_whose_owner_died_cannot_be_verified() {
    let p = Project::new();
    let mut cli = p
        .home
        .command("homeboy")
        .args(["build", "app", "--format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Value::Null;
    assert!(wait_until(Duration::from_secs(20), || {
        running = p.json(&["runs", "list", "--status", "running", "--format", "json"]);
        !running["runs"].as_array().unwrap().is_empty()
    }));
    let run_id = running["runs"][0]["id"].as_str().unwrap().to_string();
    assert!(
        running["runs"][0].get("status_note").is_none(),
        "the owner is alive"
    );
    // Kill the CLI without letting it record anything, then its tool's process group.
    let pid_file = p.repo.dir.join("build.pid");
    assert!(wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|t| t.ends_with('\n'))
    }));
    let cli_pid = cli.id();
    cli.kill().unwrap();
    homeboy_e2e::wait_exit(&mut cli, Duration::from_secs(10));
    // The tool leads its own process group; its pid file names the group.
    let pgid = std::fs::read_to_string(&pid_file).unwrap();
    p.home.kill_own_group(pgid.trim().parse().unwrap());
    assert!(!pid_alive(u64::from(cli_pid)));

    let shown = p.json(&["runs", "show", &run_id, "--format", "json"]);
    assert_eq!(shown["run"]["status"], "running");
    let note = shown["run"]["status_note"].as_str().unwrap().to_string();
    assert!(
        note.contains(&format!("cli pid {cli_pid}")) && note.contains("cannot be verified"),
        "{note}"
    );
    let text = p.ok(&["runs", "list"]);
    assert!(
        text.contains("running (?)") && text.contains(&note),
        "{text}"
    );
    let base = p.home.start_daemon();
    let over_http = p.data(&format!("{base}/runs/{run_id}"))["run"].clone();
    assert_eq!(
        over_http["status_note"].as_str(),
        Some(note.as_str()),
        "the same note over HTTP"
    );
}

#[test]
fn tool_refusals_and_artifact_path_safety() {
    let p = Project::new();
    let base = p.home.start_daemon();
    for (path, body, status, code) in [
        (
            "/tools/homeboy.deploy/run",
            json!({"component": "app"}),
            403,
            "tools.not_allowed",
        ),
        (
            "/tools/homeboy.release/run",
            json!({}),
            403,
            "tools.not_allowed",
        ),
        ("/tools/ssh/run", json!({}), 403, "tools.not_allowed"),
        (
            "/tools/homeboy.lint/run",
            json!({"component": "app", "fix": true}),
            400,
            "validation.mutating_field",
        ),
        (
            "/lint",
            json!({"component": "app", "write": true}),
            400,
            "validation.mutating_field",
        ),
        (
            "/test",
            json!({"component": "app", "baseline": "main"}),
            400,
            "validation.mutating_field",
        ),
        (
            "/audit",
            json!({"component": "app", "ratchet": true}),
            400,
            "validation.mutating_field",
        ),
        (
            "/bench",
            json!({"component": "app", "argv": ["rm"]}),
            400,
            "validation.unknown_field",
        ),
        (
            "/tools/homeboy.review/run",
            json!({"component": "app"}),
            400,
            "validation.invalid_argument",
        ),
    ] {
        let r = p.http.post_json(&format!("{base}{path}"), &body);
        let got = r.json();
        assert_eq!(
            (r.status, got["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {got}"
        );
    }
    let jobs = p.data(&format!("{base}/jobs"));
    assert!(
        jobs["jobs"].as_array().unwrap().is_empty(),
        "no job was created: {jobs}"
    );
    let tools = p.data(&format!("{base}/tools"));
    assert_eq!(tools.as_array().unwrap().len(), 6);
    assert_eq!(tools[1]["allowed_arguments"][0]["name"], "component");
    let lint = p.data(&format!("{base}/tools/homeboy.lint"));
    assert_eq!(
        (lint["required_capability"].as_str(), lint["risk"].as_str()),
        (Some("run:lint"), Some("bounded_local_run"))
    );
    assert_eq!(p.get(&format!("{base}/tools/homeboy.deploy")).0, 404);

    // A symlink in the artifacts directory is not followed out of the checkout.
    std::fs::write(p.home.root().join("secret.txt"), "top secret").unwrap();
    std::fs::create_dir_all(p.repo.dir.join("out/lint")).unwrap();
    std::os::unix::fs::symlink(
        p.home.root().join("secret.txt"),
        p.repo.dir.join("out/lint/leak.txt"),
    )
    .unwrap();
    let result: Value =
        serde_json::from_slice(&p.home.homeboy(&["lint", "app", "--format", "json"]).stdout)
            .unwrap();
    let run_id = result["run"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        result["run"]["metadata"]["artifacts_skipped"][0]["path"],
        "out/lint/leak.txt"
    );
    assert!(!result.to_string().contains("top secret"));

    // A stored artifact replaced by a symlink out of the artifact root is refused, over HTTP and in the CLI.
    let sarif = result["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "findings")
        .unwrap()
        .clone();
    let stored = p
        .home
        .data_dir()
        .join("artifacts")
        .join(sarif["path"].as_str().unwrap());
    std::fs::remove_file(&stored).unwrap();
    std::os::unix::fs::symlink(p.home.root().join("secret.txt"), &stored).unwrap();
    let url = format!("{base}{}", sarif["content_url"].as_str().unwrap());
    let r = p.http.get(&url);
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "artifacts.path_escape");
    assert!(!String::from_utf8_lossy(&r.body).contains("top secret"));
    let out = p.home.homeboy(&[
        "runs",
        "artifacts",
        &run_id,
        "--fetch",
        sarif["id"].as_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("leads outside the artifact root"),
        "{}",
        describe(&out)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("top secret"));
    let sync = p.data(&format!("{base}/runs/{run_id}/artifacts/sync"));
    assert_eq!(sync["summary"]["unavailable"], 1);

    // Traversal through the route parameters finds nothing.
    for path in [
        format!("/runs/{run_id}/artifacts/..%2F..%2F..%2Fsecret.txt/content"),
        format!("/runs/{run_id}/artifacts/%2E%2E/content"),
        "/runs/..%2F..%2Fetc/artifacts/passwd/content".to_string(),
    ] {
        let r = p.http.get(&format!("{base}{path}"));
        assert_eq!(
            r.status,
            404,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(!String::from_utf8_lossy(&r.body).contains("top secret"));
    }
    // Declarations that would reach outside the checkout are refused before anything is written.
    let out = p.home.homeboy(&[
        "component",
        "set",
        "app",
        "--field",
        "tools.lint.artifacts=../../outside",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tools.lint.artifacts"));
    let out = p.home.homeboy(&[
        "component",
        "add",
        "abs",
        "--path",
        "/tmp",
        "--json",
        r#"{"tools": {"lint": {"command": ["true"], "findings": {"format": "sarif", "path": "/etc/passwd"}}}}"#,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn stack_repo(root: &Path) -> GitRepo {
    let repo = GitRepo::init(&root.join("stacked"));
    repo.commit("f.txt", "one\ntwo\nthree\n", "base");
    repo.git(&["checkout", "-q", "-b", "merged"]);
    repo.commit("m.txt", "m\n", "merged change");
    repo.git(&["checkout", "-q", "-b", "release", "main"]);
    repo.git(&["merge", "-q", "--ff-only", "merged"]);
    repo.commit("f.txt", "one\nTWO\nthree\n", "release edit");
    repo.git(&["checkout", "-q", "-b", "clean", "main"]);
    repo.commit("g.txt", "g\n", "clean change");
    repo.git(&["checkout", "-q", "-b", "conflicting", "main"]);
    repo.commit("f.txt", "one\nzwei\nthree\n", "conflicting edit");
    repo.git(&["checkout", "-q", "main"]);
    repo
}

#[test]
fn components_rigs_and_stacks_over_http_and_cli() {
    let p = Project::new();
    let root = p.home.root().to_path_buf();
    std::fs::create_dir_all(root.join("plain")).unwrap();
    let stacked = stack_repo(&root);
    let path = |p: PathBuf| p.to_str().unwrap().to_string();
    p.ok(&[
        "component",
        "add",
        "gone",
        "--path",
        &path(root.join("missing")),
    ]);
    p.ok(&[
        "component",
        "add",
        "plain",
        "--path",
        &path(root.join("plain")),
    ]);
    p.ok(&[
        "component",
        "add",
        "stacked",
        "--path",
        &path(stacked.dir.clone()),
    ]);
    p.repo.write("dirty.txt", "x");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = p.home.start_daemon();
    let check = json!({"check": [
        {"name": "tools present", "command": ["test", "-f", "reports/junit.xml"]},
        {"name": "db", "tcp_open": listener.local_addr().unwrap().to_string()},
        {"name": "daemon", "http_ok": format!("{base}/health")},
    ]});
    p.ok(&[
        "rig",
        "add",
        "dev",
        "--component",
        "app",
        "--json",
        &check.to_string(),
    ]);
    let failing =
        json!({"check": [{"tcp_open": format!("127.0.0.1:{}", closed_port()), "timeout_secs": 2}]});
    p.ok(&["rig", "add", "down", "--json", &failing.to_string()]);
    p.ok(&[
        "stack",
        "add",
        "s",
        "--component",
        "stacked",
        "--base",
        "main",
        "--target",
        "release",
        "--branch",
        "merged",
        "--branch",
        "clean",
        "--branch",
        "conflicting",
        "--branch",
        "nope",
    ]);

    // Components: the listing survives broken ones; CLI and HTTP print the same JSON.
    let listing = p.data(&format!("{base}/components"));
    assert_eq!(listing, p.json(&["component", "list", "--format", "json"]));
    let items = listing["components"].as_array().unwrap();
    let by = |id: &str| items.iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(by("app")["status"]["branch"], "main");
    assert_eq!(
        by("app")["tools"],
        json!(["lint", "test", "audit", "bench", "build"])
    );
    assert_eq!(
        by("gone")["status_error"]["code"],
        "components.path_missing"
    );
    assert_eq!(
        by("plain")["status_error"]["code"],
        "components.not_a_git_checkout"
    );
    let text = p.ok(&["component", "list"]);
    assert!(
        text.contains("does not exist") && text.contains("not a git checkout"),
        "{text}"
    );
    let one = p.data(&format!("{base}/components/app"));
    assert_eq!(one["component"]["id"], "app");
    let status = p.data(&format!("{base}/components/app/status"));
    assert_eq!(
        status,
        p.json(&["component", "status", "app", "--format", "json"])
    );
    assert_eq!(
        status["status"]["untracked"].as_u64().map(|n| n >= 1),
        Some(true)
    );
    let changes = p.data(&format!("{base}/components/app/changes"));
    assert!(
        changes["changes"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "dirty.txt")
    );
    assert_eq!(changes["changes"]["commits"][0]["subject"], "code");
    let (code, body) = p.get(&format!("{base}/components/plain/status"));
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("components.not_a_git_checkout"))
    );
    let (code, _) = p.get(&format!("{base}/components/nope/changes"));
    assert_eq!(code, 404);
    let out = p.home.homeboy(&["component", "status", "gone"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    // Rigs.
    let rigs = p.data(&format!("{base}/rigs"));
    assert_eq!(rigs["rigs"].as_array().unwrap().len(), 2);
    let dev = p.data(&format!("{base}/rigs/dev"));
    assert_eq!(dev["components"], json!([{"id": "app", "declared": true}]));
    let r = p
        .http
        .post_json(&format!("{base}/rigs/dev/check"), &json!({}));
    assert_eq!(r.status, 200);
    let check = r.json()["data"]["check"].clone();
    assert_eq!(check["passed"], true, "{check}");
    assert_eq!(check["steps"][2]["evidence"]["status"], 200);
    let down = p
        .http
        .post_json(&format!("{base}/rigs/down/check"), &json!({}))
        .json()["data"]["check"]
        .clone();
    assert_eq!(down["passed"], false);
    assert_eq!(down["steps"][0]["evidence"]["connected"], false);
    let out = p.home.homeboy(&["rig", "check", "down"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[FAIL]"));
    assert!(p.ok(&["rig", "check", "dev"]).contains("rig dev: pass"));

    // Stacks.
    assert_eq!(p.data(&format!("{base}/stacks"))["stacks"][0]["entries"], 4);
    assert_eq!(
        p.data(&format!("{base}/stacks/s"))["stack"]["target"],
        "release"
    );
    let r = p
        .http
        .post_json(&format!("{base}/stacks/s/status"), &json!({}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let status = r.json()["data"]["status"].clone();
    let states: Vec<&str> = status["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["applied", "pending", "conflict", "missing"]);
    assert_eq!(status["entries"][2]["conflicts"], json!(["f.txt"]));
    assert_eq!(
        status,
        p.json(&["stack", "status", "s", "--format", "json"])["status"]
    );
    assert_eq!(
        stacked.git(&["status", "--porcelain"]),
        "",
        "the checkout is untouched"
    );
    drop(listener);
}

#[test]
fn every_analysis_route_runs_and_jobs_can_be_cancelled_or_orphaned() {
    let p = Project::new();
    let base = p.home.start_daemon();
    let mut jobs = Vec::new();
    for (path, kind) in [
        ("/test", "test"),
        ("/audit", "audit"),
        ("/bench", "bench"),
        ("/tools/homeboy.lint/run", "lint"),
    ] {
        let r = p
            .http
            .post_json(&format!("{base}{path}"), &json!({"component": "app"}));
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        jobs.push((
            kind,
            r.json()["data"]["job"]["id"].as_str().unwrap().to_string(),
        ));
    }
    for (kind, id) in &jobs {
        let job = p.wait_job(&base, id);
        assert_eq!(job["operation"], format!("homeboy.{kind}"));
        let expected = if *kind == "audit" || *kind == "bench" {
            "succeeded"
        } else {
            "failed"
        };
        assert_eq!(job["status"], expected, "{kind}: {job}");
    }
    let audits = p.data(&format!("{base}/audit/runs"))["runs"].clone();
    assert_eq!(audits.as_array().unwrap().len(), 1);
    assert_eq!(audits[0]["metadata"]["findings"]["total"], 1);
    let benches = p.data(&format!("{base}/bench/runs"))["runs"].clone();
    assert_eq!(benches[0]["metadata"]["metrics"]["rps"], 1000);
    assert_eq!(
        p.data(&format!("{base}/runs?kind=test"))["runs"][0]["status"],
        "fail"
    );

    // Cancelling a running analysis job stops its tool and records the run as an error.
    let r = p.http.post_json(
        &format!("{base}/tools/homeboy.build/run"),
        &json!({"component": "app"}),
    );
    let job_id = r.json()["data"]["job"]["id"].as_str().unwrap().to_string();
    assert!(wait_until(Duration::from_secs(20), || {
        p.events(&base, &job_id)
            .iter()
            .any(|e| e["message"] == "building")
    }));
    let r = p
        .http
        .post_json(&format!("{base}/jobs/{job_id}/cancel"), &json!({}));
    assert_eq!(r.json()["data"]["job"]["status"], "cancelled");
    let mut run = Value::Null;
    assert!(
        wait_until(Duration::from_secs(20), || {
            run = p.data(&format!("{base}/runs?kind=build"))["runs"][0].clone();
            run["status"] == "error"
        }),
        "{run}"
    );
    assert_eq!(run["metadata"]["job_id"], job_id.as_str());
    assert!(
        run["metadata"]["error"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );
    let pgid = std::fs::read_to_string(p.repo.dir.join("build.pid")).unwrap();
    assert!(
        !pid_alive(pgid.trim().parse().unwrap()),
        "the tool was stopped"
    );

    // A daemon killed while a job runs: on restart the job is failed as stale and its run says it cannot be
    // verified.
    std::fs::remove_file(p.repo.dir.join("build.pid")).unwrap();
    let r = p.http.post_json(
        &format!("{base}/tools/homeboy.build/run"),
        &json!({"component": "app"}),
    );
    let job_id = r.json()["data"]["job"]["id"].as_str().unwrap().to_string();
    let pid_file = p.repo.dir.join("build.pid");
    assert!(wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|t| t.ends_with('\n'))
    }));
    let daemon_pid = p.home.state().unwrap()["pid"].as_u64().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-9", &daemon_pid.to_string()])
        .status();
    assert!(wait_until(Duration::from_secs(10), || !pid_alive(
        daemon_pid
    )));
    let pgid = std::fs::read_to_string(&pid_file).unwrap();
    p.home.kill_own_group(pgid.trim().parse().unwrap());
    let base = p.home.start_daemon();
    let job = p.data(&format!("{base}/jobs/{job_id}"))["job"].clone();
    assert_eq!(
        (job["status"].as_str(), job["stale_reason"].as_str()),
        (Some("failed"), Some("daemon_restarted"))
    );
    let run = p.data(&format!("{base}/runs?kind=build&status=running"))["runs"][0].clone();
    assert_eq!(run["metadata"]["job_id"], job_id.as_str());
    let note = run["status_note"].as_str().unwrap();
    assert!(note.contains(&format!("daemon pid {daemon_pid}")), "{note}");
}
