//! Tests over real git repositories built in temp dirs (init, commits, tags, branches, a conflicting
//! branch) and real tool runs that write real SARIF, JUnit and checkstyle reports.

use std::path::{Path, PathBuf};
use std::process::Command;

use homeboy_config::Paths;
use homeboy_config::components::{self, Component, ToolKind};
use homeboy_config::rigs::{self, Rig};
use homeboy_config::stacks::{self, Stack, StackEntry};
use homeboy_observations::owner::Owner;
use homeboy_observations::{FindingFilter, ObservationStore, RunStatus};
use serde_json::{Value, json};

use crate::analysis::{self, Recorder};
use crate::command::{Control, Stream, Watcher};
use crate::git::Checkout;
use crate::tools::AnalysisRequest;
use crate::{ComponentError, views};

/// A git repository in a temp dir, with git isolated from the machine's configuration.
pub struct Repo {
    pub dir: PathBuf,
    home: PathBuf,
}

impl Repo {
    pub fn init(dir: &Path) -> Repo {
        std::fs::create_dir_all(dir).unwrap();
        let home = dir.with_extension("home");
        std::fs::create_dir_all(&home).unwrap();
        let repo = Repo {
            dir: dir.to_path_buf(),
            home,
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Homeboy Test"]);
        repo.git(&["config", "user.email", "test@example.invalid"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &self.home)
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .output()
            .expect("git is installed (apt-get install git)");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn write(&self, file: &str, text: &str) {
        let path = self.dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn commit(&self, file: &str, text: &str, message: &str) -> String {
        self.write(file, text);
        self.git(&["add", file]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

fn home() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::at(dir.path().join("config"), dir.path().join("data"));
    (dir, paths)
}

fn declare(paths: &Paths, id: &str, path: &Path, tools: Value) {
    let component: Component = serde_json::from_value(json!({
        "id": id, "path": path, "tools": tools,
    }))
    .unwrap();
    components::store(paths).put(&component).unwrap();
}

#[test]
fn status_and_changes_of_a_checkout() {
    let (dir, _) = home();
    let repo = Repo::init(&dir.path().join("app"));
    repo.commit("a.txt", "a\n", "first");
    repo.git(&["tag", "v1"]);
    repo.commit("b.txt", "b\n", "second");
    let head = repo.commit("c.txt", "c\n", "third");
    repo.write("a.txt", "changed\n");
    repo.write("new.txt", "new\n");

    let checkout = Checkout::open("app", &repo.dir).unwrap();
    let status = checkout.status().unwrap();
    assert_eq!(status.branch.as_deref(), Some("main"));
    assert_eq!(status.head.as_deref(), Some(head.as_str()));
    assert_eq!((status.dirty, status.untracked), (1, 1));
    assert_eq!(status.upstream, None);
    assert!(!status.clean);

    let changes = checkout.changes().unwrap();
    assert_eq!(changes.since.kind, "tag");
    assert_eq!(changes.since.reference.as_deref(), Some("v1"));
    let subjects: Vec<&str> = changes.commits.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects, ["third", "second"]);
    assert_eq!(changes.commits[0].author, "Homeboy Test");
    let files: Vec<(&str, &str)> = changes
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.status.as_str()))
        .collect();
    assert_eq!(files, [("a.txt", ".M"), ("new.txt", "??")]);

    // With an upstream, commits are counted from it.
    repo.git(&["branch", "base", "HEAD~1"]);
    repo.git(&["branch", "--set-upstream-to=base"]);
    let status = checkout.status().unwrap();
    assert_eq!(status.upstream.as_deref(), Some("base"));
    assert_eq!((status.ahead, status.behind), (Some(1), Some(0)));
    let changes = checkout.changes().unwrap();
    assert_eq!(changes.since.kind, "upstream");
    assert_eq!(changes.commits.len(), 1);

    // A repository without commits.
    let empty = Repo::init(&dir.path().join("empty"));
    let checkout = Checkout::open("empty", &empty.dir).unwrap();
    assert_eq!(checkout.status().unwrap().head, None);
    assert!(checkout.changes().unwrap().commits.is_empty());
}

#[test]
fn broken_components_are_errors_on_that_component() {
    let (dir, paths) = home();
    let repo = Repo::init(&dir.path().join("good"));
    repo.commit("a", "a", "a");
    std::fs::create_dir_all(dir.path().join("plain")).unwrap();
    declare(&paths, "good", &repo.dir, json!({}));
    declare(&paths, "gone", &dir.path().join("missing"), json!({}));
    declare(&paths, "plain", &dir.path().join("plain"), json!({}));
    std::fs::write(paths.components_dir().join("broken.json"), "{").unwrap();

    let listing = serde_json::to_value(views::components(&paths).unwrap()).unwrap();
    let items = listing["components"].as_array().unwrap();
    let by_id = |id: &str| items.iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(by_id("good")["status"]["branch"], "main");
    assert!(by_id("good")["status_error"].is_null());
    assert_eq!(
        by_id("gone")["status_error"]["code"],
        "components.path_missing"
    );
    assert_eq!(
        by_id("plain")["status_error"]["code"],
        "components.not_a_git_checkout"
    );
    assert!(
        by_id("plain")["status_error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a git checkout")
    );
    assert_eq!(
        by_id("broken")["error"]["code"],
        "config.invalid_declaration"
    );

    let err = views::component_status(&paths, "gone").unwrap_err();
    assert!(matches!(err, ComponentError::PathMissing { .. }), "{err}");
    let err = views::component_changes(&paths, "nope").unwrap_err();
    assert_eq!(err.code(), "not_found.component");
    let changes = serde_json::to_value(views::component_changes(&paths, "good").unwrap()).unwrap();
    assert_eq!(changes["changes"]["since"]["kind"], "root");
}

#[test]
fn stack_entries_are_applied_pending_conflicting_or_missing() {
    let (dir, paths) = home();
    let repo = Repo::init(&dir.path().join("app"));
    repo.commit("f.txt", "one\ntwo\nthree\n", "base");
    repo.git(&["branch", "release"]);
    // merged: a branch that release already contains.
    repo.git(&["checkout", "-q", "-b", "merged"]);
    repo.commit("m.txt", "m\n", "merged change");
    repo.git(&["checkout", "-q", "release"]);
    repo.git(&["merge", "-q", "--ff-only", "merged"]);
    // picked: a branch whose patch was cherry-picked onto release.
    repo.git(&["checkout", "-q", "-b", "picked", "main"]);
    let picked = repo.commit("p.txt", "p\n", "picked change");
    repo.git(&["checkout", "-q", "release"]);
    repo.git(&["cherry-pick", picked.as_str()]);
    // release changes line two; conflict changes it differently; clean touches another file.
    repo.commit("f.txt", "one\nTWO (release)\nthree\n", "release edit");
    repo.git(&["checkout", "-q", "-b", "conflict", "main"]);
    repo.commit("f.txt", "one\ntwo (conflict)\nthree\n", "conflicting edit");
    repo.git(&["checkout", "-q", "-b", "clean", "main"]);
    let clean = repo.commit("g.txt", "g\n", "clean change");
    repo.git(&["checkout", "-q", "main"]);
    declare(&paths, "app", &repo.dir, json!({}));
    let entry = |branch: &str| StackEntry {
        branch: Some(branch.into()),
        commit: None,
        title: format!("entry {branch}"),
    };
    let stack = Stack {
        id: "s".into(),
        component: "app".into(),
        base: "main".into(),
        target: "release".into(),
        entries: vec![
            entry("merged"),
            entry("picked"),
            entry("clean"),
            entry("conflict"),
            entry("nope"),
            StackEntry {
                branch: None,
                commit: Some(clean[..10].to_string()),
                title: "by commit".into(),
            },
        ],
    };
    stacks::store(&paths).put(&stack).unwrap();
    let before = repo.git(&["status", "--porcelain"]);

    let status = serde_json::to_value(views::stack_status(&paths, "s").unwrap().status).unwrap();
    let states: Vec<&str> = status["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "applied", "applied", "pending", "conflict", "missing", "pending"
        ]
    );
    assert_eq!(status["entries"][3]["conflicts"], json!(["f.txt"]));
    assert_eq!(status["entries"][2]["ahead"], 1);
    assert_eq!(status["entries"][2]["behind"], 3);
    assert_eq!(
        (status["applied"].as_u64(), status["conflict"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        before,
        "nothing changed"
    );
    assert_eq!(repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]), "main");

    let mut bad = stack.clone();
    bad.id = "bad".into();
    bad.target = "no-such-branch".into();
    stacks::store(&paths).put(&bad).unwrap();
    let err = views::stack_status(&paths, "bad").unwrap_err();
    assert_eq!(err.code(), "stacks.unknown_revision");
}

/// Lines seen, and an optional line at which to stop.
#[derive(Default)]
struct Seen {
    lines: Vec<String>,
    stop_at: Option<&'static str>,
}

impl Watcher for Seen {
    fn line(&mut self, _: Stream, text: &str) -> Control {
        self.lines.push(text.to_string());
        if self.stop_at == Some(text) {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

const SARIF: &str = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "fakelint"}},
  "results": [{"ruleId": "no-todo", "level": "warning", "message": {"text": "TODO left in code"},
    "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/lib.rs"}, "region": {"startLine": 2}}}]},
   {"ruleId": "no-panic", "level": "error", "message": {"text": "panic in library"},
    "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/lib.rs"}, "region": {"startLine": 3}}}]}]}]}"#;

#[test]
fn an_analysis_run_is_recorded_with_findings_and_artifacts() {
    let (dir, paths) = home();
    let repo = Repo::init(&dir.path().join("app"));
    repo.commit("src/lib.rs", "fn a() {}\n// TODO\npanic!();\n", "code");
    repo.write("sarif.json", SARIF);
    let script =
        "mkdir -p out && cp sarif.json out/lint.sarif && echo linted && echo warn >&2 && exit 1";
    declare(
        &paths,
        "app",
        &repo.dir,
        json!({
            "lint": {"command": ["sh", "-c", script], "artifacts": "out",
                     "findings": {"format": "sarif", "path": "out/lint.sarif"}},
            "test": {"command": ["sh", "-c", "echo go; sleep 30"]},
            "bench": {"command": ["sh", "-c", "echo '{\"rps\": 1500.25}' > m.json"], "metrics": "m.json"},
        }),
    );
    let rig: Rig = serde_json::from_value(json!({"id": "dev", "components": ["app"]})).unwrap();
    rigs::store(&paths).put(&rig).unwrap();
    let store = ObservationStore::open(&paths.observations_store()).unwrap();
    let recorder = Recorder {
        store: &store,
        artifact_root: paths.artifact_root(),
        owner: Owner::this_process("cli"),
        job_id: None,
    };

    let mut request = AnalysisRequest::new(ToolKind::Lint, "app");
    request.rig = Some("dev".into());
    let prepared = analysis::prepare(&paths, request).unwrap();
    let mut seen = Seen::default();
    let outcome = analysis::run(&prepared, &recorder, &mut seen).unwrap();
    seen.lines.sort();
    assert_eq!(
        seen.lines,
        ["linted", "warn"],
        "stdout and stderr arrive on separate pipes"
    );
    assert_eq!(outcome.exit_code, 1);
    let run = &outcome.run;
    assert_eq!(run.status, RunStatus::Fail);
    assert_eq!(run.kind, "lint");
    assert_eq!(run.rig_id.as_deref(), Some("dev"));
    assert_eq!(
        run.git_sha.as_deref(),
        Some(repo.git(&["rev-parse", "HEAD"]).as_str())
    );
    assert_eq!(run.metadata["tool"], "homeboy.lint");
    assert_eq!(run.metadata["findings"]["total"], 2);
    assert!(run.command.starts_with("sh -c 'mkdir"), "{}", run.command);

    let result = &outcome.result;
    assert_eq!(result["run"]["id"], run.id.as_str());
    assert_eq!(result["exit_code"], 1);
    assert_eq!(result["findings"]["total"], 2);
    assert_eq!(
        result["findings"]["by_severity"],
        json!({"error": 1, "warning": 1})
    );
    assert_eq!(result["findings"]["items"][0]["tool"], "fakelint");
    assert_eq!(result["findings"]["items"][0]["file"], "src/lib.rs");
    let kinds: Vec<(&str, &str)> = result["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("output.log", "log"), ("out/lint.sarif", "findings")]
    );
    let log = paths
        .artifact_root()
        .join(format!("runs/{}/output.log", run.id));
    // stdout and stderr are separate pipes, so their relative order in the log is not fixed.
    let log = std::fs::read_to_string(log).unwrap();
    let mut log_lines: Vec<&str> = log.lines().collect();
    log_lines.sort();
    assert_eq!(log_lines, ["[stderr] warn", "linted"]);
    assert!(log.ends_with('\n'));
    assert_eq!(
        analysis::result_json(&store, &store.run(&run.id).unwrap().unwrap()).unwrap(),
        outcome.result
    );

    // The same finding keeps its fingerprint in the next run.
    let again = analysis::run(&prepared, &recorder, &mut Seen::default()).unwrap();
    let prints = |id: &str| -> Vec<String> {
        store
            .findings(
                id,
                &FindingFilter {
                    limit: 10,
                    ..FindingFilter::default()
                },
            )
            .unwrap()
            .findings
            .into_iter()
            .map(|f| f.fingerprint)
            .collect()
    };
    assert_eq!(prints(&run.id), prints(&again.run.id));

    // Bench metrics.
    let bench = analysis::prepare(&paths, AnalysisRequest::new(ToolKind::Bench, "app")).unwrap();
    let outcome = analysis::run(&bench, &recorder, &mut Seen::default()).unwrap();
    assert_eq!(outcome.run.status, RunStatus::Pass);
    assert_eq!(outcome.result["metrics"], json!({"rps": 1500.25}));

    // A stopped run and a timed-out run are errors.
    let test = analysis::prepare(&paths, AnalysisRequest::new(ToolKind::Test, "app")).unwrap();
    let mut stopper = Seen {
        stop_at: Some("go"),
        ..Seen::default()
    };
    let stopped = analysis::run(&test, &recorder, &mut stopper).unwrap();
    assert_eq!(
        (stopped.run.status, stopped.exit_code),
        (RunStatus::Error, 130)
    );
    let mut quick = AnalysisRequest::new(ToolKind::Test, "app");
    quick.timeout_secs = Some(1);
    let quick = analysis::prepare(&paths, quick).unwrap();
    let timed_out = analysis::run(&quick, &recorder, &mut Seen::default()).unwrap();
    assert_eq!(
        (timed_out.run.status, timed_out.exit_code),
        (RunStatus::Error, 124)
    );
    assert!(
        timed_out.run.metadata["error"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );

    // Requests the declarations do not allow.
    let err = analysis::prepare(&paths, AnalysisRequest::new(ToolKind::Audit, "app")).unwrap_err();
    assert!(
        err.to_string().contains("declares no audit command"),
        "{err}"
    );
    let err = analysis::prepare(&paths, AnalysisRequest::new(ToolKind::Lint, "ghost")).unwrap_err();
    assert_eq!(err.code(), "not_found.component");
    let other: Rig = serde_json::from_value(json!({"id": "other"})).unwrap();
    rigs::store(&paths).put(&other).unwrap();
    let mut wrong_rig = AnalysisRequest::new(ToolKind::Lint, "app");
    wrong_rig.rig = Some("other".into());
    let err = analysis::prepare(&paths, wrong_rig).unwrap_err();
    assert!(
        err.to_string().contains("does not list component app"),
        "{err}"
    );
}
