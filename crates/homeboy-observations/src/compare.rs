//! Two runs side by side: how the status changed, which findings are new, fixed or unchanged (by
//! fingerprint), and how each benchmark metric moved. A pure function over the runs' evidence, so the CLI
//! (`homeboy runs compare A B`) and any future route produce the same answer from the same data.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::{Finding, Run, RunStatus};

/// What a comparison needs of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvidence {
    pub run: Run,
    pub findings: Vec<Finding>,
}

/// The identity of one compared run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSide {
    pub id: String,
    pub kind: String,
    pub component_id: String,
    pub status: RunStatus,
    pub started_at: String,
    pub git_sha: Option<String>,
    pub findings: usize,
}

/// `a.status` → `b.status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusChange {
    pub from: RunStatus,
    pub to: RunStatus,
    pub changed: bool,
}

/// Findings by fingerprint: `new` are only in B, `fixed` only in A.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingsDiff {
    pub new: Vec<Finding>,
    pub fixed: Vec<Finding>,
    pub unchanged: usize,
    /// Fingerprints present in both runs.
    pub unchanged_fingerprints: Vec<String>,
}

/// One metric in both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDelta {
    pub name: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// `b - a` when both exist.
    pub delta: Option<f64>,
    /// `100 * (b - a) / a` when both exist and `a` is not zero.
    pub delta_pct: Option<f64>,
}

/// The comparison of run A (before) with run B (after).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub a: RunSide,
    pub b: RunSide,
    pub status: StatusChange,
    pub findings: FindingsDiff,
    pub metrics: Vec<MetricDelta>,
    /// Things that make the comparison less meaningful (different components or kinds).
    pub notes: Vec<String>,
}

/// Compares run `a` (before) with run `b` (after).
pub fn compare(a: &RunEvidence, b: &RunEvidence) -> Comparison {
    let in_a: BTreeSet<&str> = a.findings.iter().map(|f| f.fingerprint.as_str()).collect();
    let in_b: BTreeSet<&str> = b.findings.iter().map(|f| f.fingerprint.as_str()).collect();
    let new = b
        .findings
        .iter()
        .filter(|f| !in_a.contains(f.fingerprint.as_str()))
        .cloned()
        .collect();
    let fixed = a
        .findings
        .iter()
        .filter(|f| !in_b.contains(f.fingerprint.as_str()))
        .cloned()
        .collect();
    let unchanged_fingerprints: Vec<String> =
        in_a.intersection(&in_b).map(|s| s.to_string()).collect();
    let mut notes = Vec::new();
    if a.run.component_id != b.run.component_id {
        notes.push(format!(
            "the runs are of different components ({} and {})",
            a.run.component_id, b.run.component_id
        ));
    }
    if a.run.kind != b.run.kind {
        notes.push(format!(
            "the runs are of different kinds ({} and {})",
            a.run.kind, b.run.kind
        ));
    }
    Comparison {
        a: side(a),
        b: side(b),
        status: StatusChange {
            from: a.run.status,
            to: b.run.status,
            changed: a.run.status != b.run.status,
        },
        findings: FindingsDiff {
            new,
            fixed,
            unchanged: unchanged_fingerprints.len(),
            unchanged_fingerprints,
        },
        metrics: metric_deltas(&a.run, &b.run),
        notes,
    }
}

fn side(evidence: &RunEvidence) -> RunSide {
    let run = &evidence.run;
    RunSide {
        id: run.id.clone(),
        kind: run.kind.clone(),
        component_id: run.component_id.clone(),
        status: run.status,
        started_at: run.started_at.clone(),
        git_sha: run.git_sha.clone(),
        findings: evidence.findings.len(),
    }
}

fn metric_deltas(a: &Run, b: &Run) -> Vec<MetricDelta> {
    let mut names: BTreeMap<String, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for (name, value) in a.metrics() {
        names.entry(name).or_default().0 = Some(value);
    }
    for (name, value) in b.metrics() {
        names.entry(name).or_default().1 = Some(value);
    }
    names
        .into_iter()
        .map(|(name, (a, b))| {
            let delta = a.zip(b).map(|(a, b)| b - a);
            let delta_pct = a
                .zip(b)
                .filter(|(a, _)| *a != 0.0)
                .map(|(a, b)| 100.0 * (b - a) / a);
            MetricDelta {
                name,
                a,
                b,
                delta,
                delta_pct,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn evidence(status: RunStatus, prints: &[&str], metrics: serde_json::Value) -> RunEvidence {
        let mut metadata = serde_json::Map::new();
        metadata.insert("metrics".into(), metrics);
        let run = Run {
            id: format!("run-{status}"),
            kind: "bench".into(),
            component_id: "api".into(),
            rig_id: None,
            status,
            started_at: String::new(),
            finished_at: None,
            command: String::new(),
            cwd: String::new(),
            homeboy_version: String::new(),
            git_sha: None,
            metadata,
            status_note: None,
        };
        let findings = prints
            .iter()
            .enumerate()
            .map(|(i, p)| Finding {
                id: format!("{}:{i}", run.id),
                run_id: run.id.clone(),
                tool: "t".into(),
                rule: "r".into(),
                file: None,
                line: None,
                severity: "warning".into(),
                fingerprint: p.to_string(),
                message: format!("finding {p}"),
                fixable: false,
                created_at: String::new(),
            })
            .collect();
        RunEvidence { run, findings }
    }

    #[test]
    fn status_findings_and_metrics() {
        let a = evidence(
            RunStatus::Fail,
            &["f1", "f2", "f3"],
            json!({"p50_ms": 10.0, "rps": 1000, "gone": 1}),
        );
        let b = evidence(
            RunStatus::Pass,
            &["f2", "f3", "f4"],
            json!({"p50_ms": 12.5, "rps": 0, "added": 2}),
        );
        let c = compare(&a, &b);
        assert_eq!(
            (c.status.from, c.status.to, c.status.changed),
            (RunStatus::Fail, RunStatus::Pass, true)
        );
        let fps = |list: &[Finding]| {
            list.iter()
                .map(|f| f.fingerprint.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(fps(&c.findings.new), ["f4"]);
        assert_eq!(fps(&c.findings.fixed), ["f1"]);
        assert_eq!(c.findings.unchanged, 2);
        assert_eq!(c.findings.unchanged_fingerprints, ["f2", "f3"]);
        let p50 = c.metrics.iter().find(|m| m.name == "p50_ms").unwrap();
        assert_eq!((p50.delta, p50.delta_pct), (Some(2.5), Some(25.0)));
        let rps = c.metrics.iter().find(|m| m.name == "rps").unwrap();
        assert_eq!(rps.delta_pct, Some(-100.0));
        let gone = c.metrics.iter().find(|m| m.name == "gone").unwrap();
        assert_eq!((gone.b, gone.delta), (None, None));
        assert!(c.notes.is_empty());
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["status"]["from"], "fail");
        assert_eq!(json["a"]["findings"], 3);
    }
}
