//! Property tests of the contract (issue 16): the envelope decoder, the bearer parser, and every wire type
//! a server or client reads off the network. Inputs are arbitrary bytes and JSON, and valid samples of each
//! type with random fields replaced, removed or added — which reach far more of a decoder than noise. The
//! properties: never panics, and a value either is refused or round-trips (what decodes, encodes to JSON
//! that decodes to the same value).

use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::envelope::{decode_envelope, error_body, success_body};
use crate::{ApiError, ErrorKind, auth, jobs, preview, runs};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        Just(Value::from("")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One change to a document: at the `n`th place (object member or array element, depth first), replace the
/// value, remove it, or add a member next to it.
#[derive(Debug, Clone)]
enum Change {
    Replace(usize, Value),
    Remove(usize),
    Add(usize, String, Value),
}

fn changes() -> impl Strategy<Value = Vec<Change>> {
    let change = prop_oneof![
        (any::<usize>(), json_value()).prop_map(|(n, v)| Change::Replace(n, v)),
        any::<usize>().prop_map(Change::Remove),
        (any::<usize>(), "[a-z_]{1,12}", json_value()).prop_map(|(n, k, v)| Change::Add(n, k, v)),
    ];
    proptest::collection::vec(change, 0..4)
}

/// Every place in `doc`, depth first, as a path of keys and indices.
fn places(doc: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match doc {
        Value::Object(map) => {
            for (key, value) in map {
                prefix.push(Value::from(key.as_str()));
                out.push(prefix.clone());
                places(value, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                prefix.push(Value::from(i));
                out.push(prefix.clone());
                places(value, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn apply(mut doc: Value, changes: &[Change]) -> Value {
    for change in changes {
        let mut all = Vec::new();
        places(&doc, &mut Vec::new(), &mut all);
        let n = match change {
            Change::Replace(n, _) | Change::Remove(n) | Change::Add(n, _, _) => *n,
        };
        let path = if all.is_empty() {
            Vec::new()
        } else {
            all.swap_remove(n % all.len())
        };
        let Some((last, parents)) = path.split_last() else {
            if let Change::Replace(_, value) = change {
                doc = value.clone();
            }
            continue;
        };
        let mut parent = &mut doc;
        for step in parents {
            parent = match step {
                Value::String(key) => &mut parent[key.as_str()],
                _ => &mut parent[step.as_u64().unwrap_or(0) as usize],
            };
        }
        match (change, parent, last) {
            (Change::Replace(_, value), Value::Object(map), Value::String(key)) => {
                map.insert(key.clone(), value.clone());
            }
            (Change::Replace(_, value), Value::Array(items), Value::Number(i)) => {
                items[i.as_u64().unwrap_or(0) as usize] = value.clone();
            }
            (Change::Remove(_), Value::Object(map), Value::String(key)) => {
                map.remove(key);
            }
            (Change::Remove(_), Value::Array(items), Value::Number(i)) => {
                items.remove(i.as_u64().unwrap_or(0) as usize);
            }
            (Change::Add(_, key, value), Value::Object(map), _) => {
                map.insert(key.clone(), value.clone());
            }
            (Change::Add(_, _, value), Value::Array(items), _) => items.push(value.clone()),
            _ => {}
        }
    }
    doc
}

/// A value of `T` decodes or is refused; what decodes encodes to JSON that decodes to the same JSON again.
fn refuses_or_round_trips<T: DeserializeOwned + Serialize>(
    what: &str,
    doc: &Value,
) -> Result<bool, TestCaseError> {
    let Ok(decoded) = serde_json::from_value::<T>(doc.clone()) else {
        // The same bytes are refused through the text decoder too (no panic on either path).
        prop_assert!(
            serde_json::from_slice::<T>(doc.to_string().as_bytes()).is_err(),
            "{what}: {doc}"
        );
        return Ok(false);
    };
    let encoded = serde_json::to_value(&decoded).expect("a decoded value encodes");
    let again: T = serde_json::from_value(encoded.clone())
        .map_err(|e| TestCaseError::fail(format!("{what}: {encoded} does not decode: {e}")))?;
    prop_assert_eq!(
        serde_json::to_value(&again).unwrap(),
        encoded,
        "{}: {}",
        what,
        doc
    );
    Ok(true)
}

fn job() -> Value {
    json!({
        "id": "0190a3f0-0000-7000-8000-000000000001", "operation": "runner.exec", "status": "running",
        "created_at_ms": 1, "updated_at_ms": 2, "event_count": 3, "started_at_ms": 2,
        "target_runner_id": "lab", "claim_id": "c1", "claimed_by_runner_id": "lab", "claimed_at_ms": 2,
        "claim_expires_at_ms": 9, "artifacts": [], "executor": "runner", "project_id": "p", "attempt": 1,
        "max_attempts": 3, "last_sequence": 3, "events_dropped": 0, "exit_code": 0, "submission_key": "k"
    })
}

/// A valid sample of each network-facing type, by name.
fn samples() -> Vec<(&'static str, Value)> {
    let event = json!({"sequence": 1, "job_id": "j", "kind": "stdout", "timestamp_ms": 5, "message": "hi", "data": {"x": 1}});
    let run = json!({"id": "r", "kind": "lint", "component_id": "api", "rig_id": "g", "status": "pass",
        "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.000Z",
        "command": "cargo clippy", "cwd": "/w", "homeboy_version": "0.1.0", "git_sha": "abc",
        "metadata": {"exit_code": 0}, "status_note": "n"});
    vec![
        (
            "SubmitRequest",
            json!({"runner_id": "lab", "project_id": "p", "operation": "runner.exec",
            "command": ["echo", "hi"], "cwd": "w", "env": {"A": "1"}, "secret_env_names": ["T"],
            "metadata": {"submission_key": "k"}, "max_attempts": 3}),
        ),
        (
            "ClaimBody",
            json!({"runner_id": "lab", "project_id": "p", "lease_ms": 1000, "wait_ms": 500}),
        ),
        (
            "HeartbeatBody",
            json!({"runner_id": "lab", "claim_id": "c", "lease_ms": 1000}),
        ),
        (
            "EventsBody",
            json!({"runner_id": "r", "claim_id": "c", "kind": "stdout", "message": "hi", "data": {"x": 1}}),
        ),
        (
            "EventsBody",
            json!({"runner_id": "r", "claim_id": "c", "events": [{"kind": "stderr", "message": "m"}]}),
        ),
        (
            "FinishBody",
            json!({"runner_id": "r", "claim_id": "c", "result": {"exit_code": 1, "stdout": "o",
            "stderr": "e", "data": [1], "artifacts": []}}),
        ),
        (
            "SessionRequest",
            json!({"runner_id": "r", "controller_id": "c", "homeboy_version": "0.1",
            "build_id": "b", "worker_pid": 5}),
        ),
        ("Job", job()),
        (
            "ClaimAnswer",
            json!({"claim": {"job": job(), "request": {"command": ["x"]}}}),
        ),
        (
            "JobEvents",
            json!({"job_id": "j", "status": "running", "events": [event], "next_after": 1,
            "last_sequence": 1, "events_dropped": 0}),
        ),
        ("Run", run.clone()),
        ("RunList", json!({"runs": [run], "next_cursor": null})),
        (
            "RegisterRequest",
            json!({"public_host": "a.preview.test", "local_origin": "http://127.0.0.1:1",
            "session_id": "s", "client_id": "c", "ttl_secs": 60, "transport": "long-poll"}),
        ),
        (
            "NextRequest",
            json!({"public_host": "a.preview.test", "channel_id": "c", "timeout_secs": 5}),
        ),
        (
            "NextResponse",
            json!({"request": {"request_id": "r", "method": "GET", "path": "/",
            "headers": {"a": "b"}, "body_base64": "", "body_more": true}}),
        ),
        (
            "RespondRequest",
            json!({"public_host": "a.preview.test", "response": {"request_id": "r",
            "status": 200, "headers": {"a": ["b"]}, "body_base64": "aGk=", "more": true,
            "error": {"kind": "k", "message": "m"}}}),
        ),
        (
            "RespondChunkRequest",
            json!({"public_host": "h", "request_id": "r", "body_base64": "", "done": true, "abort": true}),
        ),
        (
            "RequestBodyRequest",
            json!({"public_host": "h", "request_id": "r"}),
        ),
        ("CloseRequest", json!({"public_host": "h"})),
    ]
}

/// Decodes `doc` as the type named `name`.
fn check(name: &str, doc: &Value) -> Result<bool, TestCaseError> {
    match name {
        "SubmitRequest" => refuses_or_round_trips::<jobs::SubmitRequest>(name, doc),
        "ClaimBody" => refuses_or_round_trips::<jobs::ClaimBody>(name, doc),
        "HeartbeatBody" => refuses_or_round_trips::<jobs::HeartbeatBody>(name, doc),
        "EventsBody" => refuses_or_round_trips::<jobs::EventsBody>(name, doc),
        "FinishBody" => refuses_or_round_trips::<jobs::FinishBody>(name, doc),
        "SessionRequest" => refuses_or_round_trips::<jobs::SessionRequest>(name, doc),
        "Job" => refuses_or_round_trips::<jobs::Job>(name, doc),
        "ClaimAnswer" => refuses_or_round_trips::<jobs::ClaimAnswer>(name, doc),
        "JobEvents" => refuses_or_round_trips::<jobs::JobEvents>(name, doc),
        "Run" => refuses_or_round_trips::<runs::Run>(name, doc),
        "RunList" => refuses_or_round_trips::<runs::RunList>(name, doc),
        "RegisterRequest" => refuses_or_round_trips::<preview::RegisterRequest>(name, doc),
        "NextRequest" => refuses_or_round_trips::<preview::NextRequest>(name, doc),
        "NextResponse" => refuses_or_round_trips::<preview::NextResponse>(name, doc),
        "RespondRequest" => refuses_or_round_trips::<preview::RespondRequest>(name, doc),
        "RespondChunkRequest" => refuses_or_round_trips::<preview::RespondChunkRequest>(name, doc),
        "RequestBodyRequest" => refuses_or_round_trips::<preview::RequestBodyRequest>(name, doc),
        "CloseRequest" => refuses_or_round_trips::<preview::CloseRequest>(name, doc),
        other => panic!("no decoder for {other}"),
    }
}

#[test]
fn every_sample_decodes() {
    for (name, doc) in samples() {
        assert!(check(name, &doc).unwrap(), "{name}: {doc}");
    }
}

proptest! {
    #![proptest_config(config())]

    /// Valid samples with random changes, and arbitrary JSON, for every type: refused or round-tripped.
    #[test]
    fn wire_types_refuse_or_round_trip(
        pick in any::<usize>(),
        changes in changes(),
        noise in json_value(),
    ) {
        let samples = samples();
        let (name, sample) = &samples[pick % samples.len()];
        check(name, &apply(sample.clone(), &changes))?;
        check(name, &noise)?;
    }

    /// Any bytes with any status: the client decoder answers data or an error, never panics; an error
    /// keeps a code and a message.
    #[test]
    fn the_envelope_decoder_takes_any_bytes(
        status in 100u16..600,
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            (any::<bool>(), json_value()).prop_map(|(ok, v)| json!({"success": ok, "data": v.clone(), "error": v}).to_string().into_bytes()),
        ],
    ) {
        if let Err(error) = decode_envelope(status, &body) {
            prop_assert!(!error.code.is_empty());
            prop_assert!(!error.message.is_empty());
        }
    }

    /// What a server writes, a client reads back: data as it was, an error with its code, message and
    /// details.
    #[test]
    fn envelopes_round_trip(data in json_value(), code in "[a-z_.]{1,20}", message in ".{1,30}", detail in json_value()) {
        let ok = serde_json::to_vec(&success_body(data.clone())).unwrap();
        prop_assert_eq!(decode_envelope(200, &ok).unwrap(), data);
        let mut details = Map::new();
        details.insert("field".into(), detail);
        let mut error = ApiError::new(ErrorKind::Validation, code.clone(), message.clone());
        error.details = details.clone();
        let body = serde_json::to_vec(&error_body(&error)).unwrap();
        let back = decode_envelope(400, &body).unwrap_err();
        prop_assert_eq!((back.code.as_ref(), back.message.as_str()), (code.as_str(), message.as_str()));
        prop_assert_eq!(back.details, details);
        prop_assert_eq!(back.kind, ErrorKind::Validation);
    }

    /// The bearer parser returns a trimmed, non-empty part of its input, or nothing.
    #[test]
    fn bearer_tokens_are_trimmed_parts_of_the_header(value in prop_oneof![
        "(Bearer|bearer|BEARER|Basic|Token)?[ \t]{0,3}[ -~]{0,30}",
        any::<String>(),
    ]) {
        if let Some(token) = auth::bearer_token(&value) {
            prop_assert!(!token.is_empty() && token == token.trim());
            prop_assert!(value.contains(token));
            prop_assert!(value.trim_start().get(..6).is_some_and(|s| s.eq_ignore_ascii_case("bearer")));
        }
    }
}
