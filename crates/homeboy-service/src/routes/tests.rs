//! Route tests through the transport-free handler, over a real job store and a real credentials file.

use std::sync::Arc;

use homeboy_config::Paths;
use homeboy_config::broker_auth::{BrokerAuthFile, Scope};
use homeboy_jobs::{RedbJobStore, StoreOptions};
use serde_json::{Value, json};

use crate::{Api, ApiRequest, DaemonIdentity, RunnerAuth};

struct Broker {
    _dir: tempfile::TempDir,
    api: Api,
    work: String,
    submit: String,
}

fn broker() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
    let (store, _) = RedbJobStore::open(&paths.daemon_jobs(), StoreOptions::default()).unwrap();
    let credentials = BrokerAuthFile::new(paths.broker_auth());
    let (_, work) = credentials.pair("lab-1", &[Scope::Work]).unwrap();
    let (_, submit) = credentials.pair("lab-1", &[Scope::Submit]).unwrap();
    let identity = DaemonIdentity {
        pid: 1,
        version: "0".into(),
        build_id: "b".into(),
        started_at: "t".into(),
    };
    let api = Api::new(identity, paths).with_jobs(Arc::new(store));
    Broker {
        _dir: dir,
        api,
        work,
        submit,
    }
}

fn post(api: &Api, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = ApiRequest::post_json(path, &body);
    if let Some(token) = token {
        req = req.with_header("Authorization", format!("Bearer {token}"));
    }
    let r = api.handle(&req);
    (r.status, r.body)
}

fn get(api: &Api, path: &str) -> (u16, Value) {
    let r = api.handle(&ApiRequest::get(path));
    (r.status, r.body)
}

fn submit_body() -> Value {
    json!({"runner_id": "lab-1", "command": ["echo", "hi"], "env": {"RUST_LOG": "info"}, "secret_env_names": ["API_TOKEN"]})
}

#[test]
fn submit_claim_events_finish() {
    let b = broker();
    let (status, body) = post(&b.api, "/runner/jobs", Some(&b.submit), submit_body());
    assert_eq!(status, 200, "{body}");
    let job_id = body["data"]["job"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["data"]["poll"]["job"], format!("/jobs/{job_id}"));
    assert_eq!(body["data"]["request"]["operation"], "runner.exec");
    assert_eq!(body["data"]["job"]["status"], "queued");

    let (status, body) = post(
        &b.api,
        "/runner/jobs/claim",
        Some(&b.work),
        json!({"runner_id": "lab-1"}),
    );
    assert_eq!(status, 200);
    let claim = &body["data"]["claim"];
    assert_eq!(claim["job"]["id"], job_id.as_str());
    assert_eq!(claim["request"]["command"], json!(["echo", "hi"]));
    let claim_id = claim["job"]["claim_id"].as_str().unwrap().to_string();
    let (_, none) = post(
        &b.api,
        "/runner/jobs/claim",
        Some(&b.work),
        json!({"runner_id": "lab-1"}),
    );
    assert_eq!(none["data"]["claim"], Value::Null);

    let base = format!("/runner/jobs/{job_id}");
    let who = json!({"runner_id": "lab-1", "claim_id": claim_id});
    let mut single = who.clone();
    single["kind"] = "stdout".into();
    single["message"] = "hi".into();
    let (status, body) = post(&b.api, &format!("{base}/events"), Some(&b.work), single);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["event"]["sequence"], 3);
    let mut batch = who.clone();
    batch["events"] =
        json!([{"kind": "stderr", "message": "a"}, {"kind": "progress", "data": {"pct": 50}}]);
    let (_, body) = post(&b.api, &format!("{base}/events"), Some(&b.work), batch);
    assert_eq!(body["data"]["events"].as_array().unwrap().len(), 2);
    let mut bad = who.clone();
    bad["kind"] = "status".into();
    let (status, body) = post(&b.api, &format!("{base}/events"), Some(&b.work), bad);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation.invalid_argument"))
    );

    let mut beat = who.clone();
    beat["lease_ms"] = 60_000.into();
    let (status, body) = post(&b.api, &format!("{base}/heartbeat"), Some(&b.work), beat);
    assert_eq!(status, 200);
    assert_eq!(body["data"]["cancelled"], false);

    let mut done = who.clone();
    done["result"] = json!({"exit_code": 0, "stdout": "hi\n", "artifacts": []});
    let (status, body) = post(
        &b.api,
        &format!("{base}/finish"),
        Some(&b.work),
        done.clone(),
    );
    assert_eq!(status, 200);
    assert_eq!(body["data"]["job"]["status"], "succeeded");
    let (status, body) = post(&b.api, &format!("{base}/finish"), Some(&b.work), done);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("broker.job_not_running"))
    );

    let (_, body) = get(&b.api, &format!("/jobs/{job_id}/events?after=1&limit=3"));
    let events = body["data"]["events"].as_array().unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e["sequence"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert_eq!(body["data"]["next_after"], 4);
    assert_eq!(body["data"]["status"], "succeeded");
    let (_, body) = get(&b.api, &format!("/jobs/{job_id}"));
    assert_eq!(body["data"]["job"]["exit_code"], 0);
    let (_, body) = get(&b.api, "/jobs?status=succeeded");
    assert_eq!(body["data"]["jobs"].as_array().unwrap().len(), 1);
}

#[test]
fn auth_refusals() {
    let b = broker();
    let claim = json!({"runner_id": "lab-1"});
    let cases = [
        (None, "missing_token"),
        (Some("hbk_not_a_token".to_string()), "unknown_token"),
        (Some(b.submit.clone()), "missing_scope"),
    ];
    for (token, reason) in cases {
        let (status, body) = post(
            &b.api,
            "/runner/jobs/claim",
            token.as_deref(),
            claim.clone(),
        );
        assert_eq!(status, 401, "{reason}");
        assert_eq!(body["error"]["code"], "broker.auth_denied");
        assert_eq!(body["error"]["details"]["reason"], reason);
    }
    let (status, body) = post(
        &b.api,
        "/runner/jobs/claim",
        Some(&b.work),
        json!({"runner_id": "lab-2"}),
    );
    assert_eq!(
        (status, body["error"]["details"]["reason"].as_str()),
        (401, Some("runner_mismatch"))
    );
    // The alternative header works too.
    let req = ApiRequest::post_json("/runner/jobs/claim", &claim)
        .with_header("x-homeboy-broker-token", b.work.clone());
    assert_eq!(b.api.handle(&req).status, 200);
    // No response ever echoes a token.
    let (_, body) = post(&b.api, "/runner/jobs/claim", Some(&b.submit), claim);
    assert!(!body.to_string().contains(&b.submit));
}

#[test]
fn unauthenticated_loopback_mode() {
    let b = broker();
    let api = b
        .api
        .with_runner_auth(RunnerAuth::AllowUnauthenticatedLoopback);
    let (status, _) = post(&api, "/runner/jobs", None, submit_body());
    assert_eq!(status, 200);
    let (status, _) = post(
        &api,
        "/runner/jobs/claim",
        Some("hbk_bogus"),
        json!({"runner_id": "lab-1"}),
    );
    assert_eq!(status, 401, "a presented token is still checked");
}

#[test]
fn submissions_are_validated() {
    let b = broker();
    let mut secret = submit_body();
    secret["env"]["OPENAI_API_KEY"] = "sk-live-123".into();
    let (status, body) = post(&b.api, "/runner/jobs", Some(&b.submit), secret);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation.inline_secret"))
    );
    assert_eq!(body["error"]["details"]["field"], "env.OPENAI_API_KEY");
    assert!(!body.to_string().contains("sk-live-123"));
    // Issue 16: names credential scanners know, and a URL with user info under any name.
    for (name, value) in [
        ("GITHUB_PAT", "ghp_live_456"),
        ("HTTP_AUTHORIZATION", "Basic dTpw"),
        ("DATABASE_URL", "postgres://u:pass-live-789@h/db"),
    ] {
        let mut secret = submit_body();
        secret["env"][name] = value.into();
        let (status, body) = post(&b.api, "/runner/jobs", Some(&b.submit), secret);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("validation.inline_secret")),
            "{name}"
        );
        assert_eq!(body["error"]["details"]["field"], format!("env.{name}"));
        assert!(!body.to_string().contains(value), "{body}");
    }
    let mut inline = submit_body();
    inline["secret_env"] = json!({"X": "value"});
    let (status, _) = post(&b.api, "/runner/jobs", Some(&b.submit), inline);
    assert_eq!(status, 400);
    let (status, body) = post(
        &b.api,
        "/runner/jobs",
        Some(&b.submit),
        json!({"runner_id": "lab-1", "command": []}),
    );
    assert_eq!(
        (status, body["error"]["details"]["field"].as_str()),
        (400, Some("command"))
    );
    let r = b.api.handle(&ApiRequest::new(
        crate::Method::Post,
        "/runner/jobs",
        Some(b"{oops".to_vec()),
    ));
    assert_eq!(r.body["error"]["code"], "validation.invalid_json");

    let mut keyed = submit_body();
    keyed["metadata"] = json!({"submission_key": "k1"});
    let (_, first) = post(&b.api, "/runner/jobs", Some(&b.submit), keyed.clone());
    let (_, second) = post(&b.api, "/runner/jobs", Some(&b.submit), keyed.clone());
    assert_eq!(first["data"]["job"]["id"], second["data"]["job"]["id"]);
    assert_eq!(second["data"]["created"], false);
    keyed["command"] = json!(["other"]);
    let (status, body) = post(&b.api, "/runner/jobs", Some(&b.submit), keyed);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("validation.conflict"))
    );
}

#[test]
fn job_routes_and_claim_conflicts() {
    let b = broker();
    let (_, body) = post(&b.api, "/runner/jobs", Some(&b.submit), submit_body());
    let job_id = body["data"]["job"]["id"].as_str().unwrap().to_string();
    let (_, body) = post(
        &b.api,
        "/runner/jobs/claim",
        Some(&b.work),
        json!({"runner_id": "lab-1"}),
    );
    let claim_id = body["data"]["claim"]["job"]["claim_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = post(
        &b.api,
        &format!("/runner/jobs/{job_id}/finish"),
        Some(&b.work),
        json!({"runner_id": "lab-1", "claim_id": "someone-else", "result": {"exit_code": 0}}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("broker.claim_mismatch"))
    );

    let (status, body) = post(&b.api, &format!("/jobs/{job_id}/cancel"), None, json!({}));
    assert_eq!(
        (status, body["data"]["job"]["status"].as_str()),
        (200, Some("cancelled"))
    );
    let (_, body) = post(
        &b.api,
        &format!("/runner/jobs/{job_id}/heartbeat"),
        Some(&b.work),
        json!({"runner_id": "lab-1", "claim_id": claim_id}),
    );
    assert_eq!(body["data"]["cancelled"], true);

    let (status, body) = get(&b.api, "/jobs/no-such-job");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found.job"))
    );
    let (status, _) = get(&b.api, "/jobs?limit=0");
    assert_eq!(status, 400);
    let (status, body) = get(&b.api, "/jobs?status=done");
    assert_eq!(
        (status, body["error"]["details"]["field"].as_str()),
        (400, Some("status"))
    );
    let (status, _) = post(
        &b.api,
        "/runner/jobs/claim",
        Some(&b.work),
        json!({"runner_id": "lab-1", "wait_ms": 60_000}),
    );
    assert_eq!(status, 400);
}

#[test]
fn runner_sessions_are_bounded() {
    let b = broker();
    for i in 0..super::runner::MAX_SESSIONS + 20 {
        let (status, body) = post(
            &b.api,
            "/runner/sessions",
            Some(&b.work),
            json!({"runner_id": "lab-1", "controller_id": format!("c{i}")}),
        );
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        b.api.sessions.lock().unwrap().len(),
        super::runner::MAX_SESSIONS
    );
    let (status, body) = post(
        &b.api,
        "/runner/sessions",
        Some(&b.work),
        json!({"runner_id": "lab-1", "build_id": "x".repeat(100_000)}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "build_id");
}

/// The published OpenAPI document describes every route the router answers (`:id` is `{id}` there).
#[test]
fn the_openapi_document_describes_every_route() {
    let document = homeboy_api::openapi::document_for(homeboy_api::openapi::Server::Daemon);
    let b = broker();
    let mut missing = Vec::new();
    let mut count = 0;
    for (method, pattern) in b.api.router.routes() {
        count += 1;
        let path: Vec<String> = pattern
            .split('/')
            .map(|s| match s.strip_prefix(':') {
                Some(name) => format!("{{{name}}}"),
                None => s.to_string(),
            })
            .collect();
        let path = path.join("/");
        let method = method.as_str().to_ascii_lowercase();
        if document["paths"][&path][&method].is_null() {
            missing.push(format!("{method} {path}"));
        }
    }
    assert!(count > 30, "the router has only {count} routes");
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
}

/// `follow` is a boolean: a value that is not one is refused, never read as "no".
#[test]
fn a_follow_that_is_not_a_boolean_is_refused() {
    let b = broker();
    let (status, body) = post(&b.api, "/runner/jobs", Some(&b.submit), submit_body());
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["job"]["id"].as_str().unwrap().to_string();
    for ok in ["false", "0", "true"] {
        let (status, body) = get(&b.api, &format!("/jobs/{id}/events?follow={ok}"));
        assert_eq!(status, 200, "follow={ok}: {body}");
    }
    let (status, body) = get(&b.api, &format!("/jobs/{id}/events?follow=null"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "follow");
}
