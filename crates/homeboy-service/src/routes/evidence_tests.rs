//! Route tests of components, runs, artifacts, findings and tools through the transport-free handler, over a
//! real observation store, a real job store and real files.

use std::sync::Arc;

use base64::Engine;
use homeboy_config::Paths;
use homeboy_jobs::{JobStore, RedbJobStore, StoreOptions};
use homeboy_observations::owner::Owner;
use homeboy_observations::{
    Completion, NewFinding, ObservationStore, Run, RunStatus, StoredArtifact, new_id,
};
use serde_json::{Value, json};

use crate::{Api, ApiRequest, DaemonIdentity};

struct Fixture {
    dir: tempfile::TempDir,
    paths: Paths,
    api: Api,
    jobs: Arc<RedbJobStore>,
    store: Arc<ObservationStore>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
    let (jobs, _) = RedbJobStore::open(&paths.daemon_jobs(), StoreOptions::default()).unwrap();
    let jobs = Arc::new(jobs);
    let store = Arc::new(ObservationStore::open(&paths.observations_store()).unwrap());
    let identity = DaemonIdentity {
        pid: 1,
        version: "0".into(),
        build_id: "b".into(),
        started_at: "t".into(),
    };
    let api = Api::new(identity, paths.clone())
        .with_jobs(jobs.clone())
        .with_observations(store.clone());
    Fixture {
        dir,
        paths,
        api,
        jobs,
        store,
    }
}

fn get(api: &Api, path: &str) -> (u16, Value) {
    let r = api.handle(&ApiRequest::get(path));
    (r.status, r.body)
}

fn post(api: &Api, path: &str, body: Value) -> (u16, Value) {
    let r = api.handle(&ApiRequest::post_json(path, &body));
    (r.status, r.body)
}

fn run(component: &str, kind: &str, status: RunStatus) -> Run {
    Run {
        id: new_id(),
        kind: kind.into(),
        component_id: component.into(),
        rig_id: None,
        status,
        started_at: "2026-01-01T00:00:00.000Z".into(),
        finished_at: None,
        command: "x".into(),
        cwd: "/".into(),
        homeboy_version: "0".into(),
        git_sha: None,
        metadata: Default::default(),
        status_note: None,
    }
}

fn artifact(run_id: &str, name: &str, stored: Option<&str>) -> StoredArtifact {
    StoredArtifact {
        id: new_id(),
        run_id: run_id.into(),
        kind: "file".into(),
        name: name.into(),
        stored_path: stored.map(str::to_string),
        source_path: Some(name.into()),
        size_bytes: 5,
        sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".into(),
        mime: "text/plain".into(),
        created_at: "2026-01-01T00:00:00.000Z".into(),
        note: None,
    }
}

#[test]
fn tool_requests_are_refused_before_any_job_exists() {
    let f = fixture();
    let (status, body) = get(&f.api, "/tools");
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 6);
    assert_eq!(body["data"][0]["id"], "homeboy.audit");
    let (status, body) = get(&f.api, "/tools/homeboy.bench");
    assert_eq!(
        (status, body["data"]["required_capability"].as_str()),
        (200, Some("run:bench"))
    );
    assert_eq!(get(&f.api, "/tools/homeboy.deploy").0, 404);

    for (path, body, status, code) in [
        (
            "/tools/homeboy.deploy/run",
            json!({"component": "a"}),
            403,
            "tools.not_allowed",
        ),
        ("/tools/ssh/run", json!({}), 403, "tools.not_allowed"),
        (
            "/tools/homeboy.lint/run",
            json!({"component": "a", "fix": true}),
            400,
            "validation.mutating_field",
        ),
        (
            "/lint",
            json!({"component": "a", "write": true}),
            400,
            "validation.mutating_field",
        ),
        (
            "/audit",
            json!({"component": "a", "baseline": "x"}),
            400,
            "validation.mutating_field",
        ),
        (
            "/bench",
            json!({"component": "a", "ratchet": 1}),
            400,
            "validation.mutating_field",
        ),
        (
            "/test",
            json!({"component": "a", "shell": "rm -rf /"}),
            400,
            "validation.unknown_field",
        ),
        ("/lint", json!({}), 400, "validation.invalid_argument"),
        (
            "/lint",
            json!({"component": "ghost"}),
            404,
            "not_found.component",
        ),
    ] {
        let (got, body) = post(&f.api, path, body.clone());
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path} {body}"
        );
    }
    let r = f.api.handle(&ApiRequest::new(
        crate::Method::Post,
        "/lint",
        Some(b"{not json".to_vec()),
    ));
    assert_eq!(r.body["error"]["code"], "validation.invalid_json");
    let (_, body) = post(&f.api, "/lint", json!({"component": "a", "fix": true}));
    assert_eq!(body["error"]["details"]["field"], "fix");
    assert!(
        f.jobs
            .list(&homeboy_jobs::JobFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .jobs
            .is_empty(),
        "nothing was enqueued"
    );
}

#[test]
fn analysis_routes_enqueue_daemon_jobs() {
    let f = fixture();
    let checkout = f.dir.path().join("app");
    std::fs::create_dir_all(&checkout).unwrap();
    let component: homeboy_config::components::Component = serde_json::from_value(json!({
        "id": "app", "path": checkout, "tools": {"lint": {"command": ["true"]}}
    }))
    .unwrap();
    homeboy_config::components::store(&f.paths)
        .put(&component)
        .unwrap();
    let (status, body) = post(&f.api, "/lint", json!({"component": "app", "label": "ci"}));
    assert_eq!(status, 200, "{body}");
    let job_id = body["data"]["job"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["data"]["job"]["operation"], "homeboy.lint");
    assert_eq!(body["data"]["job"]["executor"], "daemon");
    assert_eq!(
        body["data"]["poll"]["events"],
        format!("/jobs/{job_id}/events")
    );
    assert_eq!(
        body["data"]["request"],
        json!({"tool": "homeboy.lint", "arguments": {"component": "app", "label": "ci"}})
    );
    let (status, body) = post(
        &f.api,
        "/tools/homeboy.test/run",
        json!({"component": "app"}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation.invalid_argument"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("declares no test command")
    );
    let claimed = f.jobs.start_next_daemon_job().unwrap().unwrap();
    assert_eq!(claimed.job.id, job_id);
}

#[test]
fn runs_artifacts_and_findings() {
    let f = fixture();
    let root = f.paths.artifact_root().to_path_buf();
    let mut done = run("api", "lint", RunStatus::Fail);
    done.finished_at = Some("2026-01-01T00:00:01.000Z".into());
    let kept = artifact(
        &done.id,
        "report.txt",
        Some(&format!("runs/{}/report.txt", done.id)),
    );
    let only = artifact(&done.id, "huge.bin", None);
    let escaping = artifact(
        &done.id,
        "leak.txt",
        Some(&format!("runs/{}/leak.txt", done.id)),
    );
    let dotdot = artifact(&done.id, "dotdot.txt", Some("../secret.txt"));
    let absolute = artifact(&done.id, "abs.txt", Some("/etc/passwd"));
    std::fs::create_dir_all(root.join(format!("runs/{}", done.id))).unwrap();
    std::fs::write(root.join(format!("runs/{}/report.txt", done.id)), "hello").unwrap();
    std::fs::write(f.dir.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(
        f.dir.path().join("secret.txt"),
        root.join(format!("runs/{}/leak.txt", done.id)),
    )
    .unwrap();
    let finding = |tool: &str, file: &str, fp: &str| NewFinding {
        tool: tool.into(),
        rule: "r".into(),
        file: Some(file.into()),
        line: Some(3),
        severity: "warning".into(),
        fingerprint: fp.into(),
        message: "m".into(),
        fixable: true,
    };
    f.store
        .complete_run(Completion {
            run: done.clone(),
            artifacts: vec![
                kept.clone(),
                only.clone(),
                escaping.clone(),
                dotdot.clone(),
                absolute.clone(),
            ],
            findings: vec![
                finding("clippy", "a.rs", "f1"),
                finding("eslint", "b.js", "f2"),
            ],
        })
        .unwrap();
    let bench = run("web", "bench", RunStatus::Pass);
    f.store
        .complete_run(Completion {
            run: bench.clone(),
            artifacts: vec![],
            findings: vec![],
        })
        .unwrap();
    // A running run whose owner is gone, and one owned by this process.
    let mut orphan = run("api", "test", RunStatus::Running);
    let mut child = std::process::Command::new("true").spawn().unwrap();
    orphan
        .metadata
        .insert("owner".into(), json!({"pid": child.id(), "process": "cli"}));
    child.wait().unwrap();
    f.store.create_run(&orphan).unwrap();
    let mut mine = run("api", "test", RunStatus::Running);
    mine.metadata
        .insert("owner".into(), Owner::this_process("daemon").to_json());
    f.store.create_run(&mine).unwrap();

    let (status, body) = get(&f.api, "/runs?limit=10");
    assert_eq!(status, 200);
    let runs = body["data"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    assert_eq!(runs[0]["id"], mine.id.as_str(), "newest first");
    assert!(runs[0].get("status_note").is_none());
    assert!(
        runs[1]["status_note"]
            .as_str()
            .unwrap()
            .contains("cannot be verified")
    );
    let (_, body) = get(&f.api, "/runs?component=api&status=fail");
    assert_eq!(body["data"]["runs"][0]["id"], done.id.as_str());
    let (_, body) = get(&f.api, "/bench/runs");
    assert_eq!(body["data"]["runs"].as_array().unwrap().len(), 1);
    let (_, body) = get(&f.api, "/audit/runs");
    assert!(body["data"]["runs"].as_array().unwrap().is_empty());
    let (_, body) = get(&f.api, "/runs?limit=1&component=api");
    let cursor = body["data"]["next_cursor"].as_str().unwrap().to_string();
    let (_, body) = get(
        &f.api,
        &format!("/runs?limit=5&component=api&cursor={cursor}"),
    );
    assert_eq!(body["data"]["runs"].as_array().unwrap().len(), 2);
    for (path, field) in [
        ("/runs?status=broken", "status"),
        ("/runs?kind=deploy", "kind"),
        ("/runs?limit=0", "limit"),
        ("/runs?limit=5000", "limit"),
        ("/bench/runs?kind=lint", "kind"),
        // Like /jobs: a cursor that no page handed out is refused, never an empty page.
        ("/runs?cursor=garbage", "cursor"),
        ("/runs?cursor=", "cursor"),
        ("/audit/runs?cursor=%00", "cursor"),
    ] {
        let (status, body) = get(&f.api, path);
        assert_eq!(
            (status, body["error"]["details"]["field"].as_str()),
            (400, Some(field)),
            "{path}"
        );
    }
    let (status, body) = get(&f.api, &format!("/runs/{}", orphan.id));
    assert_eq!(status, 200);
    assert_eq!(body["data"]["run"]["status"], "running");
    assert!(body["data"]["run"]["status_note"].is_string());
    let (status, body) = get(&f.api, "/runs/nope");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found.run"))
    );

    let base = format!("/runs/{}", done.id);
    let (_, body) = get(&f.api, &format!("{base}/artifacts"));
    let listed = body["data"]["artifacts"].as_array().unwrap();
    assert_eq!(listed.len(), 5);
    let by_name = |name: &str| listed.iter().find(|a| a["name"] == name).unwrap().clone();
    assert_eq!(
        by_name("report.txt")["retrieval"]["mode"],
        "direct_download"
    );
    assert_eq!(by_name("huge.bin")["retrieval"]["mode"], "metadata_only");
    assert_eq!(by_name("huge.bin")["content_available"], false);

    let (status, body) = get(&f.api, &format!("{base}/artifacts/{}", kept.id));
    assert_eq!(
        (status, body["data"]["artifact"]["sha256"].as_str()),
        (200, Some(kept.sha256.as_str()))
    );
    let (status, body) = get(&f.api, &format!("{base}/artifacts/{}/content", kept.id));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["retrieval"]["mode"], "inline_base64");
    assert_eq!(body["data"]["retrieval"]["content_field"], "content_base64");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["data"]["content_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, b"hello");
    for (record, status, code) in [
        (&only, 404, "artifacts.content_unavailable"),
        (&escaping, 403, "artifacts.path_escape"),
        (&dotdot, 400, "artifacts.invalid_path"),
        (&absolute, 400, "artifacts.invalid_path"),
    ] {
        let (got, body) = get(&f.api, &format!("{base}/artifacts/{}/content", record.id));
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{}",
            record.name
        );
        assert!(!body.to_string().contains("secret\""), "no bytes leak");
    }
    let (status, body) = get(
        &f.api,
        &format!("{base}/artifacts/..%2F..%2Fsecret.txt/content"),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found.artifact"))
    );

    let (_, body) = get(&f.api, &format!("{base}/artifacts/sync?verify=sha256"));
    let summary = &body["data"]["summary"];
    assert_eq!(
        (
            summary["available"].as_u64(),
            summary["metadata_only"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(summary["unavailable"], 3);
    std::fs::write(root.join(format!("runs/{}/report.txt", done.id)), "HELLO").unwrap();
    let (_, body) = get(&f.api, &format!("{base}/artifacts/sync?verify=sha256"));
    let report = body["data"]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "report.txt")
        .unwrap()
        .clone();
    assert_eq!(report["retrieval"]["mode"], "metadata_only");
    assert!(report["note"].as_str().unwrap().contains("SHA-256"));
    let (_, body) = get(&f.api, &format!("{base}/artifacts/sync"));
    assert_eq!(body["data"]["summary"]["available"], 1, "sizes still match");

    let (_, body) = get(&f.api, &format!("{base}/findings"));
    assert_eq!(body["data"]["findings"].as_array().unwrap().len(), 2);
    let (_, body) = get(&f.api, &format!("{base}/findings?tool=eslint"));
    assert_eq!(body["data"]["findings"][0]["fingerprint"], "f2");
    let (_, body) = get(&f.api, &format!("{base}/findings?file=a.rs&fingerprint=f1"));
    assert_eq!(body["data"]["findings"].as_array().unwrap().len(), 1);
    let (_, body) = get(&f.api, &format!("{base}/findings?limit=1"));
    assert_eq!(body["data"]["next_cursor"], 1);
    let (_, body) = get(&f.api, &format!("{base}/findings?limit=1&cursor=1"));
    assert_eq!(body["data"]["findings"][0]["fingerprint"], "f2");
    assert_eq!(get(&f.api, "/runs/nope/findings").0, 404);

    // The serialised answers that transports write are the same JSON.
    for path in [
        "/runs?limit=10".to_string(),
        "/runs?limit=1&status=running".to_string(),
        "/bench/runs".to_string(),
        "/runs?status=broken".to_string(),
        format!("{base}/findings?tool=clippy"),
        format!("{base}/findings?limit=1"),
        format!("{base}/artifacts"),
        "/runs/nope/findings".to_string(),
        "/health".to_string(),
    ] {
        let req = ApiRequest::get(&path);
        let answer = f.api.handle_json(&req);
        let typed = f.api.handle(&req);
        let parsed: Value = serde_json::from_slice(answer.json.as_ref()).unwrap();
        assert_eq!(
            (answer.status, parsed),
            (typed.status, typed.body),
            "{path}"
        );
    }
}

#[test]
fn component_routes_answer_errors_in_the_envelope() {
    let f = fixture();
    let (status, body) = get(&f.api, "/components");
    assert_eq!(
        (status, body["data"]["components"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    for (path, code) in [
        ("/components/ghost", "not_found.component"),
        ("/components/ghost/status", "not_found.component"),
        ("/rigs/ghost", "not_found.rig"),
        ("/stacks/ghost", "not_found.stack"),
    ] {
        let (status, body) = get(&f.api, path);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some(code)),
            "{path}"
        );
    }
    let (status, body) = get(&f.api, "/components/..%2Fx");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation.invalid_argument"))
    );
    let (status, body) = post(&f.api, "/rigs/ghost/check", json!({"extra": 1}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation.unknown_field"))
    );
    let (status, _) = post(&f.api, "/stacks/ghost/status", json!({}));
    assert_eq!(status, 404);
}

fn answer_bytes(api: &Api, path: &str) -> crate::JsonBytes {
    let answer = api.handle_json(&ApiRequest::get(path));
    assert_eq!(answer.status, 200, "{path}");
    answer.json
}

fn shared(json: &crate::JsonBytes) -> &Arc<[u8]> {
    match json {
        crate::JsonBytes::Shared(bytes) => bytes,
        crate::JsonBytes::Owned(_) => panic!("the answer was not kept"),
    }
}

/// The run readers answer a repeated request from the answer they kept, and never serve it after a write
/// by another handle on the same file (another process sharing the store).
#[test]
fn kept_reader_answers_follow_every_write_of_any_process() {
    let f = fixture();
    let peer = ObservationStore::open(&f.paths.observations_store()).unwrap();
    let first = run("api", "lint", RunStatus::Pass);
    peer.complete_run(Completion {
        run: first.clone(),
        artifacts: vec![],
        findings: vec![],
    })
    .unwrap();
    let findings_path = format!("/runs/{}/findings", first.id);
    for path in ["/runs?limit=5", findings_path.as_str()] {
        let a = answer_bytes(&f.api, path);
        let b = answer_bytes(&f.api, path);
        assert!(Arc::ptr_eq(shared(&a), shared(&b)), "{path}: kept");
        assert_eq!(
            serde_json::from_slice::<Value>(shared(&a)).unwrap(),
            f.api.handle(&ApiRequest::get(path)).body,
            "{path}: the kept bytes are the answer"
        );
    }
    assert_ne!(
        shared(&answer_bytes(&f.api, "/runs?limit=5")).as_ref(),
        shared(&answer_bytes(&f.api, "/runs?limit=5&kind=test")).as_ref(),
        "another query is another answer"
    );

    // The peer completes a second run and (in another transaction) replaces the first one's record with
    // findings: each write shows at once.
    let second = run("web", "test", RunStatus::Fail);
    peer.complete_run(Completion {
        run: second.clone(),
        artifacts: vec![],
        findings: vec![],
    })
    .unwrap();
    let (_, body) = get(&f.api, "/runs?limit=5");
    let ids: Vec<&str> = body["data"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.id.as_str(), first.id.as_str()]);
    assert_eq!(get(&f.api, &findings_path).1["data"]["findings"], json!([]));
    peer.complete_run(Completion {
        run: first.clone(),
        artifacts: vec![],
        findings: vec![NewFinding {
            tool: "clippy".into(),
            rule: "r".into(),
            file: Some("a.rs".into()),
            line: Some(1),
            severity: "warning".into(),
            fingerprint: "f1".into(),
            message: "m".into(),
            fixable: false,
        }],
    })
    .unwrap();
    let (_, body) = get(&f.api, &findings_path);
    assert_eq!(body["data"]["findings"][0]["fingerprint"], "f1");
}

/// A page with a running run is never kept: its `status_note` follows the owner process, which can die
/// without any write.
#[test]
fn a_page_with_a_running_run_follows_its_owner_without_a_write() {
    let f = fixture();
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut running = run("api", "lint", RunStatus::Running);
    running.metadata.insert(
        "owner".into(),
        json!({"pid": pid, "start_time": homeboy_process::start_time(pid), "process": "cli"}),
    );
    f.store.create_run(&running).unwrap();
    let note = |api: &Api| get(api, "/runs?limit=5").1["data"]["runs"][0]["status_note"].clone();
    assert_eq!(note(&f.api), Value::Null, "the owner is alive");
    assert_eq!(note(&f.api), Value::Null);
    child.kill().unwrap();
    child.wait().unwrap();
    let after = note(&f.api);
    assert!(after.as_str().is_some(), "the owner is gone: {after}");
}
