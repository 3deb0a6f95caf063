//! What a finished tool leaves behind, collected into the observation store: the run's output as
//! `output.log`, every regular file under the tool's artifacts directory, its findings file (parsed into
//! findings) and, for benchmarks, its metrics file (kept in `metadata.metrics`).
//!
//! Every file is opened beneath the checkout with the kernel's `RESOLVE_BENEATH` check, so a symlink in
//! the artifacts directory cannot smuggle a file from elsewhere into the artifact root; symlinks are listed
//! in `metadata.artifacts_skipped` instead of being followed. Files over [`MAX_KEPT_BYTES`] are recorded as
//! metadata only. Problems with the evidence never fail the run: they are noted in its metadata.
//!
//! A checkout file is kept under its path with `.` and empty segments dropped (`./out/a.txt` is `out/a.txt`),
//! and at most one artifact of a run has a given name: a file whose name is taken — by the run's own
//! `output.log`, say — is skipped, never written over the kept one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use homeboy_config::components::{FindingsFormat, ToolCommand};
use homeboy_observations::artifact_path::open_beneath;
use homeboy_observations::artifacts::{ArtifactSource, describe_only, keep_bytes, keep_file};
use homeboy_observations::findings::{self, Format, SourceContext};
use homeboy_observations::{NewFinding, StoredArtifact};
use serde_json::{Map, Value, json};

/// Larger files are described (size, SHA-256) but not copied.
pub const MAX_KEPT_BYTES: u64 = 256 * 1024 * 1024;
/// At most this many files are collected from an artifacts directory.
pub const MAX_FILES: usize = 1000;
/// Findings and metrics files larger than this are not parsed.
pub const MAX_REPORT_BYTES: u64 = 64 * 1024 * 1024;

/// The evidence of one run.
#[derive(Debug, Default)]
pub struct Collected {
    pub artifacts: Vec<StoredArtifact>,
    pub findings: Vec<NewFinding>,
    /// Entries for the run's metadata (`findings`, `metrics`, `artifacts_skipped`, ...).
    pub metadata: Map<String, Value>,
}

/// Collects the evidence of run `run_id` of `tool` in `checkout`, keeping bytes under `root`.
pub fn collect(
    root: &Path,
    run_id: &str,
    checkout: &Path,
    tool: &ToolCommand,
    log: &[u8],
) -> Collected {
    let mut out = Collected::default();
    let mut skipped = Vec::new();
    let log_source = ArtifactSource {
        run_id,
        kind: "log",
        name: "output.log",
        source_path: None,
    };
    match keep_bytes(root, &log_source, log) {
        Ok(artifact) => out.artifacts.push(artifact),
        Err(e) => skipped.push(json!({"path": "output.log", "reason": e.to_string()})),
    }
    if let Some(dir) = &tool.artifacts {
        collect_dir(root, run_id, checkout, dir, &mut out, &mut skipped);
    }
    if let Some(source) = &tool.findings {
        let summary = collect_findings(
            root,
            run_id,
            checkout,
            &source.path,
            source.format,
            &mut out,
            &mut skipped,
        );
        out.metadata.insert("findings".into(), summary);
    }
    if let Some(path) = &tool.metrics {
        match read_report(checkout, path) {
            Ok(bytes) => {
                keep_report(
                    root,
                    run_id,
                    checkout,
                    path,
                    "metrics",
                    &mut out,
                    &mut skipped,
                );
                match parse_metrics(&bytes) {
                    Ok(metrics) => {
                        out.metadata
                            .insert("metrics".into(), Value::Object(metrics));
                    }
                    Err(problem) => {
                        out.metadata
                            .insert("metrics_error".into(), json!(format!("{path}: {problem}")));
                    }
                }
            }
            Err(problem) => {
                out.metadata
                    .insert("metrics_error".into(), json!(format!("{path}: {problem}")));
            }
        }
    }
    if !skipped.is_empty() {
        out.metadata
            .insert("artifacts_skipped".into(), Value::Array(skipped));
    }
    out
}

/// Every regular file under `checkout/dir`, recursively, in name order.
fn collect_dir(
    root: &Path,
    run_id: &str,
    checkout: &Path,
    dir: &str,
    out: &mut Collected,
    skipped: &mut Vec<Value>,
) {
    let declared = dir.trim_end_matches('/');
    let dir = clean(dir);
    let mut pending = vec![dir.clone()];
    let mut files = Vec::new();
    while let Some(relative) = pending.pop() {
        let entries = match std::fs::read_dir(checkout.join(&relative)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && relative == dir => {
                out.metadata.insert(
                    "artifacts_missing".into(),
                    json!(format!("the tool left no {declared}/ directory")),
                );
                return;
            }
            Err(e) => {
                skipped.push(json!({"path": relative, "reason": e.to_string()}));
                continue;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            match entry.file_type() {
                Ok(t) if t.is_symlink() => {
                    skipped.push(json!({"path": path, "reason": "a symbolic link (not followed)"}))
                }
                Ok(t) if t.is_dir() => pending.push(path),
                Ok(t) if t.is_file() => files.push(path),
                _ => skipped.push(json!({"path": path, "reason": "not a regular file"})),
            }
        }
    }
    files.sort();
    for (i, path) in files.into_iter().enumerate() {
        if i >= MAX_FILES {
            skipped.push(json!({"path": path, "reason": format!("more than {MAX_FILES} files")}));
            continue;
        }
        keep_one(root, run_id, checkout, &path, "file", out, skipped);
    }
}

fn keep_one(
    root: &Path,
    run_id: &str,
    checkout: &Path,
    path: &str,
    kind: &str,
    out: &mut Collected,
    skipped: &mut Vec<Value>,
) {
    let path = clean(path);
    if let Some(taken) = out.artifacts.iter().find(|a| a.name == path) {
        let reason = match taken.source_path.as_deref() {
            Some(_) => "another file of this run is already kept under this name".to_string(),
            None => format!("the run's own {path} is kept under this name"),
        };
        skipped.push(json!({"path": path, "reason": reason}));
        return;
    }
    let path = path.as_str();
    let source = ArtifactSource {
        run_id,
        kind,
        name: path,
        source_path: Some(path),
    };
    let mut file: File = match open_beneath(checkout, path) {
        Ok(file) => file,
        Err(e) => {
            skipped.push(json!({"path": path, "reason": e.to_string()}));
            return;
        }
    };
    let too_large = file
        .metadata()
        .map(|m| m.len() > MAX_KEPT_BYTES)
        .unwrap_or(false);
    let kept = if too_large {
        describe_only(
            &source,
            &mut file,
            &format!("larger than {MAX_KEPT_BYTES} bytes; described, not kept"),
        )
    } else {
        keep_file(root, &source, &mut file)
    };
    match kept {
        Ok(artifact) => out.artifacts.push(artifact),
        Err(e) => skipped.push(json!({"path": path, "reason": e.to_string()})),
    }
}

/// Keeps a report file as an artifact of `kind` (or re-labels it if the artifacts directory held it).
fn keep_report(
    root: &Path,
    run_id: &str,
    checkout: &Path,
    path: &str,
    kind: &str,
    out: &mut Collected,
    skipped: &mut Vec<Value>,
) {
    let cleaned = clean(path);
    if let Some(existing) = out
        .artifacts
        .iter_mut()
        .find(|a| a.source_path.as_deref() == Some(cleaned.as_str()))
    {
        existing.kind = kind.to_string();
        return;
    }
    keep_one(root, run_id, checkout, &cleaned, kind, out, skipped);
}

/// A checkout-relative path without `.` and empty segments: the name its file is kept under.
fn clean(path: &str) -> String {
    path.split('/')
        .filter(|segment| !segment.is_empty() && *segment != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn collect_findings(
    root: &Path,
    run_id: &str,
    checkout: &Path,
    path: &str,
    format: FindingsFormat,
    out: &mut Collected,
    skipped: &mut Vec<Value>,
) -> Value {
    let mut summary = json!({"format": format.as_str(), "path": path});
    let bytes = match read_report(checkout, path) {
        Ok(bytes) => bytes,
        Err(problem) => {
            summary["total"] = json!(0);
            summary["error"] = json!(format!("{path}: {problem}"));
            return summary;
        }
    };
    keep_report(root, run_id, checkout, path, "findings", out, skipped);
    let format = match format {
        FindingsFormat::Sarif => Format::Sarif,
        FindingsFormat::Junit => Format::Junit,
        FindingsFormat::Checkstyle => Format::Checkstyle,
    };
    match findings::parse(format, &bytes, &SourceContext::checkout(checkout)) {
        Ok(found) => {
            let mut by_severity: BTreeMap<String, u64> = BTreeMap::new();
            for finding in &found {
                *by_severity.entry(finding.severity.clone()).or_default() += 1;
            }
            summary["total"] = json!(found.len());
            summary["by_severity"] = json!(by_severity);
            out.findings = found;
        }
        Err(problem) => {
            summary["total"] = json!(0);
            summary["error"] = json!(format!(
                "{path}: not a valid {} report: {problem}",
                format.as_str()
            ));
        }
    }
    summary
}

/// A report file's bytes, read beneath the checkout.
fn read_report(checkout: &Path, path: &str) -> Result<Vec<u8>, String> {
    let file = open_beneath(checkout, path).map_err(|e| match e {
        homeboy_observations::ArtifactAccess::Missing { .. } => {
            "the tool did not write this file".to_string()
        }
        other => other.to_string(),
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_REPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_REPORT_BYTES {
        return Err(format!("larger than {MAX_REPORT_BYTES} bytes"));
    }
    Ok(bytes)
}

/// `{"name": number}` or `{"metrics": {"name": number}}`; non-numbers are ignored.
fn parse_metrics(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let object = match value.get("metrics") {
        Some(Value::Object(metrics)) => metrics.clone(),
        _ => match value {
            Value::Object(all) => all,
            _ => return Err("is not a JSON object".into()),
        },
    };
    Ok(object.into_iter().filter(|(_, v)| v.is_number()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeboy_config::components::FindingsSource;

    #[test]
    fn evidence_is_collected_and_escapes_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let checkout = dir.path().join("app");
        let root = dir.path().join("artifacts");
        std::fs::create_dir_all(checkout.join("out/nested")).unwrap();
        std::fs::write(checkout.join("out/report.txt"), "report").unwrap();
        std::fs::write(checkout.join("out/nested/deep.json"), "{}").unwrap();
        std::fs::write(
            checkout.join("out/results.xml"),
            r#"<testsuite name="s"><testcase classname="s" name="t"><failure message="boom"/></testcase></testsuite>"#,
        )
        .unwrap();
        std::fs::write(
            checkout.join("bench.json"),
            r#"{"metrics": {"rps": 1200.5, "note": "x"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("secret"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), checkout.join("out/leak")).unwrap();
        let tool = ToolCommand {
            command: vec!["true".into()],
            artifacts: Some("out".into()),
            findings: Some(FindingsSource {
                format: FindingsFormat::Junit,
                path: "out/results.xml".into(),
            }),
            metrics: Some("bench.json".into()),
            timeout_secs: None,
        };
        let got = collect(&root, "r1", &checkout, &tool, b"hello\n");
        let names: Vec<(&str, &str)> = got
            .artifacts
            .iter()
            .map(|a| (a.name.as_str(), a.kind.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("output.log", "log"),
                ("out/nested/deep.json", "file"),
                ("out/report.txt", "file"),
                ("out/results.xml", "findings"),
                ("bench.json", "metrics"),
            ]
        );
        assert_eq!(got.findings.len(), 1);
        assert_eq!(got.metadata["findings"]["total"], 1);
        assert_eq!(got.metadata["findings"]["by_severity"]["error"], 1);
        assert_eq!(got.metadata["metrics"], json!({"rps": 1200.5}));
        let skipped = got.metadata["artifacts_skipped"].as_array().unwrap();
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0]["path"], "out/leak");
        assert!(!root.join("runs/r1/out/leak").exists());
        assert_eq!(
            std::fs::read_to_string(root.join("runs/r1/out/report.txt")).unwrap(),
            "report"
        );

        // A missing findings file and a broken one are noted, not fatal.
        std::fs::remove_file(checkout.join("out/results.xml")).unwrap();
        let got = collect(&root, "r2", &checkout, &tool, b"");
        assert!(
            got.metadata["findings"]["error"]
                .as_str()
                .unwrap()
                .contains("did not write")
        );
        std::fs::write(checkout.join("out/results.xml"), "<nope").unwrap();
        let got = collect(&root, "r3", &checkout, &tool, b"");
        assert!(
            got.metadata["findings"]["error"]
                .as_str()
                .unwrap()
                .contains("not a valid junit report")
        );
    }

    #[test]
    fn a_checkout_file_cannot_replace_the_run_log() {
        // The run's output is kept as `runs/<run>/output.log`; a checkout file reaching the same stored path
        // (an artifacts directory of `.`, or a findings or metrics file named `output.log`) overwrote it, so
        // the log record's size and SHA-256 no longer described its bytes.
        let dir = tempfile::tempdir().unwrap();
        let checkout = dir.path().join("app");
        let root = dir.path().join("artifacts");
        std::fs::create_dir_all(&checkout).unwrap();
        std::fs::write(checkout.join("output.log"), r#"{"rps": 5}"#).unwrap();
        std::fs::write(checkout.join("notes.txt"), "notes").unwrap();
        for (run, artifacts, metrics) in [
            ("r1", Some("."), None),
            ("r2", Some("./"), Some("output.log")),
            ("r3", None, Some("./output.log")),
        ] {
            let tool = ToolCommand {
                command: vec!["true".into()],
                artifacts: artifacts.map(str::to_string),
                findings: None,
                metrics: metrics.map(str::to_string),
                timeout_secs: None,
            };
            let got = collect(&root, run, &checkout, &tool, b"the run's output\n");
            let log = &got.artifacts[0];
            assert_eq!(
                (log.name.as_str(), log.kind.as_str()),
                ("output.log", "log")
            );
            let kept = std::fs::read(root.join(format!("runs/{run}/output.log"))).unwrap();
            assert_eq!(kept, b"the run's output\n", "{run}");
            assert_eq!(log.size_bytes, kept.len() as u64, "{run}");
            let mut names: Vec<&str> = got.artifacts.iter().map(|a| a.name.as_str()).collect();
            names.sort();
            names.dedup();
            assert_eq!(
                names.len(),
                got.artifacts.len(),
                "{run}: one record per name"
            );
            if artifacts.is_some() {
                assert!(names.contains(&"notes.txt"), "{run}: {names:?}");
            }
            if metrics.is_some() {
                assert_eq!(got.metadata["metrics"], json!({"rps": 5}), "{run}");
            }
            let skipped = got.metadata["artifacts_skipped"].to_string();
            assert!(skipped.contains("output.log"), "{run}: {skipped}");
        }
    }
}
