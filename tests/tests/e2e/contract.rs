//! The published contract against the live servers: `GET /openapi.json` is the committed `docs/openapi.json`
//! (the daemon's part of it), and schemathesis (PyPI, installed by `.ci/run`) fuzzes a live daemon and a
//! live broker from the document they serve — every phase (examples, coverage, fuzzing, stateful), `--checks
//! all` — with real stores holding real data (a component, a recorded run with findings and artifacts, a
//! queued runner job) and a paired broker token. It must report 0 failures: no server error, no answer
//! outside the schema, no undocumented status code. Findings are fixed in the code, never in the schema.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use homeboy_e2e::{Bounded, Broker, Home, Http, describe};
use serde_json::{Value, json};

/// Test cases per operation and phase: enough to walk every schema's edges, small enough for CI. The
/// broker answers the same routes through the same code (its own binary and store options): fewer there.
const DAEMON_EXAMPLES: &str = "10";
const BROKER_EXAMPLES: &str = "5";
/// The seed CI fuzzes with (see the run below).
const DEFAULT_SEED: &str = "20261203";
/// A bound on one schemathesis run (it normally takes two to three minutes).
const RUN_LIMIT: Duration = Duration::from_secs(900);

const SARIF: &str = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "fakelint"}}, "results": [
  {"ruleId": "no-todo", "level": "warning", "message": {"text": "TODO left in code"},
   "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/lib.rs"}, "region": {"startLine": 2}}}]}]}]}"#;

/// Identifiers of real things in a home, handed to schemathesis as dictionaries (used half the time).
#[derive(Default)]
struct Known {
    ids: Vec<String>,
    artifact_ids: Vec<String>,
}

/// A component with a lint tool, a recorded run of it (with a finding and artifacts) and a queued job.
fn seed(home: &Home, base: &str, submit_token: &str) -> Known {
    home.lint_component(SARIF, 0);
    let result = home.homeboy_json(&["lint", "app", "--via-daemon", "--format", "json"]);
    let run = result["run"]["id"].as_str().expect("run id").to_string();
    let http = Http::new();
    let artifacts = http.get(&format!("{base}/runs/{run}/artifacts")).json();
    let artifact_ids: Vec<String> = artifacts["data"]["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| a["id"].as_str().expect("artifact id").to_string())
        .collect();
    assert!(!artifact_ids.is_empty(), "the run recorded no artifacts");
    let job = http.post_auth(
        &format!("{base}/runner/jobs"),
        submit_token,
        &json!({"runner_id": "lab", "command": ["true"]}),
    );
    assert_eq!(job.status, 200, "{}", String::from_utf8_lossy(&job.body));
    let job = job.json()["data"]["job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    Known {
        ids: vec!["app".into(), run, job, "homeboy.lint".into()],
        artifact_ids,
    }
}

/// The schemathesis config: the known ids as dictionaries for path `id`/`artifact_id` and the runner id
/// the token is paired for.
fn config(dir: &Path, known: &Known) -> std::path::PathBuf {
    let list = |values: &[String]| {
        let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut text = String::new();
    text.push_str(&format!(
        "[dictionaries.ids]\nvalues = {}\n\n",
        list(&known.ids)
    ));
    if !known.artifact_ids.is_empty() {
        text.push_str(&format!(
            "[dictionaries.artifacts]\nvalues = {}\n\n",
            list(&known.artifact_ids)
        ));
    }
    text.push_str("[dictionaries.runners]\nvalues = [\"lab\"]\n\n[parameters]\n");
    text.push_str("\"path.id\" = { dictionary = \"ids\", probability = 0.5 }\n");
    if !known.artifact_ids.is_empty() {
        text.push_str("\"path.artifact_id\" = { dictionary = \"artifacts\", probability = 0.5 }\n");
    }
    text.push_str("\"body.runner_id\" = { dictionary = \"runners\", probability = 0.5 }\n");
    // Claim long polls wait up to `wait_ms` (30 s at most) when there is no work: short waits keep the run
    // short (schemathesis holds any answer to 10 s); the bound itself is checked by the broker tests.
    text.push_str("\"body.wait_ms\" = { dictionary = \"waits\", probability = 1.0 }\n");
    text.push_str("\n[dictionaries.waits]\nvalues = [0, 1, 50, 250]\n");
    // A well-formed `Range` past the end of an artifact is answered 416 (RFC 9110, documented): an
    // expected answer to a valid request, like 404 for an id that names nothing.
    text.push_str(
        "\n[[operations]]\ninclude-path = \"/runs/{id}/artifacts/{artifact_id}/content\"\n\
         checks.positive_data_acceptance.expected-statuses = \
         [\"2xx\", \"3xx\", \"401\", \"403\", \"404\", \"409\", \"416\", \"429\", \"5xx\"]\n",
    );
    // An analysis request naming a component that does not declare that tool is refused with 400
    // `validation.invalid_argument` (`field: component`): which tools a component declares is its
    // declaration's business, not something the schema can say.
    text.push_str(
        "\n[[operations]]\ninclude-path-regex = \"^/(lint|test|audit|bench|build|review|tools/\\\\{id\\\\}/run)$\"\n\
         checks.positive_data_acceptance.expected-statuses = \
         [\"2xx\", \"3xx\", \"400\", \"401\", \"403\", \"404\", \"409\", \"429\", \"5xx\"]\n",
    );
    let path = dir.join("schemathesis.toml");
    std::fs::write(&path, text).expect("write schemathesis.toml");
    path
}

/// Runs schemathesis against `base` and asserts a clean report that tested every operation served.
fn fuzz(what: &str, base: &str, token: &str, config: &Path, report_dir: &Path, examples: &str) {
    let served = Http::new().get(&format!("{base}/openapi.json"));
    assert_eq!(served.status, 200);
    let operations: usize = served.json()["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "delete", "patch", "head"].contains(&k.as_str()))
                .count()
        })
        .sum::<usize>()
        // Schemathesis does not test the document it was loaded from (`GET /openapi.json`; the served
        // document is checked against the committed one above).
        - 1;
    assert!(operations > 40, "{what} serves {operations} operations");
    let junit = report_dir.join(format!("{what}.xml"));
    let auth = format!("Authorization: Bearer {token}");
    // A fixed seed, so a red run replays and a green one stays green (hypothesis's advice for CI); set
    // HOMEBOY_SCHEMATHESIS_SEED to explore other inputs. Findings of any seed are fixed in the code.
    let seed =
        std::env::var("HOMEBOY_SCHEMATHESIS_SEED").unwrap_or_else(|_| DEFAULT_SEED.to_string());
    let out = Command::new("schemathesis")
        .arg("--config-file")
        .arg(config)
        .args(["--no-color", "run", &format!("{base}/openapi.json")])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--checks", "all", "--max-examples", examples])
        .args(["--seed", &seed])
        // One worker: hypothesis's lambda descriptions are not thread-safe (a runtime error, not a finding).
        .args(["--workers", "1", "--generation-database", "none"])
        // Longer than the longest claim long poll (`MAX_CLAIM_WAIT_MS`, 30 s).
        .args(["--request-timeout", "45"])
        .args(["-H", &auth])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&junit)
        // Its caches (`.schemathesis/`) go to the report dir, never into the repository.
        .current_dir(report_dir)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .output_within(RUN_LIMIT)
        .expect("schemathesis is installed (.ci/run: pip install schemathesis)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis (seed {seed}) found problems in the {what}:\n{}",
        describe(&out)
    );
    // The report is real: every operation tested, test cases run, none failed.
    assert!(
        stdout.contains(&format!("Tested: {operations}")),
        "schemathesis did not test all {operations} operations of the {what}:\n{stdout}"
    );
    let report = std::fs::read_to_string(&junit).expect("the junit report");
    let cases = report.matches("<testcase").count();
    // One test case per operation, plus one for the stateful phase when it ran scenarios.
    assert!(
        (operations..=operations + 1).contains(&cases),
        "the junit report has {cases} test cases, the {what} serves {operations} operations"
    );
    assert!(
        !report.contains("<failure") && !report.contains("<error"),
        "{report}"
    );
    println!(
        "{what}: {}",
        stdout
            .lines()
            .rev()
            .find(|l| l.contains("generated"))
            .unwrap_or("")
    );
}

#[test]
fn the_served_document_is_the_committed_one() {
    let home = Home::new();
    let base = home.start_daemon();
    let served = Http::new().get(&format!("{base}/openapi.json"));
    assert_eq!(served.status, 200);
    assert!(
        served
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        served.headers
    );
    let served = served.json();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(&root).expect("docs/openapi.json"))
            .expect("docs/openapi.json is JSON");
    assert_eq!(served["openapi"], "3.1.0");
    // The daemon serves its own routes of the whole document, with the same schemas.
    let paths = served["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/jobs/events") && paths.contains_key("/runner/jobs/claim"));
    assert!(
        !paths.contains_key("/preview/client/register"),
        "an ingress route"
    );
    for (path, item) in paths {
        assert_eq!(
            Some(item),
            committed["paths"].get(path),
            "{path} differs from docs/openapi.json"
        );
    }
    for (name, schema) in served["components"]["schemas"].as_object().unwrap() {
        assert_eq!(
            Some(schema),
            committed["components"]["schemas"].get(name),
            "schema {name} differs from docs/openapi.json"
        );
    }
}

#[test]
fn schemathesis_finds_nothing_in_the_daemon_and_the_broker() {
    let reports = tempfile::tempdir().expect("report dir");
    // The daemon (`homeboy daemon start`), with data in its stores.
    let home = Home::new();
    let submit = home.pair("lab", "submit,work");
    let base = home.start_daemon();
    let known = seed(&home, &base, &submit);
    let daemon_config = config(home.root(), &known);
    fuzz(
        "daemon",
        &base,
        &submit,
        &daemon_config,
        reports.path(),
        DAEMON_EXAMPLES,
    );

    // The broker (`homeboy-broker`, a home of its own), with a queued job.
    let broker_home = Home::new();
    let token = broker_home.pair("lab", "submit,work");
    let broker = Broker::start(&broker_home, &[]);
    let job = Http::new().post_auth(
        &format!("{}/runner/jobs", broker.url),
        &token,
        &json!({"runner_id": "lab", "command": ["true"]}),
    );
    assert_eq!(job.status, 200, "{}", String::from_utf8_lossy(&job.body));
    let broker_known = Known {
        ids: vec![
            job.json()["data"]["job"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        ],
        artifact_ids: Vec::new(),
    };
    let broker_config = config(broker_home.root(), &broker_known);
    fuzz(
        "broker",
        &broker.url,
        &token,
        &broker_config,
        reports.path(),
        BROKER_EXAMPLES,
    );
}
