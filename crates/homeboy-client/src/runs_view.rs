//! `homeboy runs` and `homeboy lint` for people: tables and summaries rendered from the same JSON the HTTP
//! routes return (runs, artifacts, findings, comparisons, analysis results).

use serde_json::Value;

use crate::text_table::table;

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A table of runs, then one line per run whose status cannot be verified.
pub fn runs_table(runs: &[Value]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            let status = if run["status_note"].is_string() {
                format!("{} (?)", text(&run["status"]))
            } else {
                text(&run["status"])
            };
            vec![
                text(&run["id"]),
                text(&run["kind"]),
                text(&run["component_id"]),
                text(&run["rig_id"]),
                status,
                text(&run["started_at"]),
                text(&run["metadata"]["findings"]["total"]),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID",
            "KIND",
            "COMPONENT",
            "RIG",
            "STATUS",
            "STARTED",
            "FINDINGS",
        ],
        &rows,
    );
    for run in runs {
        if let Some(note) = run["status_note"].as_str() {
            out.push_str(&format!("\n(?) {}: {note}", text(&run["id"])));
        }
    }
    out
}

/// A run's fields, one per line.
pub fn run_details(run: &Value) -> String {
    let mut lines = Vec::new();
    for key in [
        "id",
        "kind",
        "component_id",
        "rig_id",
        "status",
        "status_note",
        "started_at",
        "finished_at",
        "command",
        "cwd",
        "git_sha",
        "homeboy_version",
    ] {
        if !run[key].is_null() {
            lines.push(format!("{key}: {}", text(&run[key])));
        }
    }
    let meta = &run["metadata"];
    for key in ["exit_code", "duration_ms", "job_id", "label", "error"] {
        if !meta[key].is_null() {
            lines.push(format!("{key}: {}", text(&meta[key])));
        }
    }
    if meta["findings"].is_object() {
        lines.push(format!(
            "findings: {} ({})",
            text(&meta["findings"]["total"]),
            text(&meta["findings"]["path"])
        ));
        if let Some(error) = meta["findings"]["error"].as_str() {
            lines.push(format!("findings error: {error}"));
        }
    }
    if let Some(metrics) = meta["metrics"].as_object() {
        for (name, value) in metrics {
            lines.push(format!("metric {name}: {value}"));
        }
    }
    if let Some(owner) = meta["owner"].as_object() {
        lines.push(format!(
            "owner: {} pid {}",
            text(&owner["process"].clone()),
            text(&owner["pid"].clone())
        ));
    }
    lines.join("\n")
}

/// A table of artifacts.
pub fn artifacts_table(artifacts: &[Value]) -> String {
    let rows: Vec<Vec<String>> = artifacts
        .iter()
        .map(|a| {
            vec![
                text(&a["id"]),
                text(&a["kind"]),
                text(&a["name"]),
                text(&a["size_bytes"]),
                text(&a["mime"]),
                text(&a["retrieval"]["mode"]),
            ]
        })
        .collect();
    table(&["ID", "KIND", "NAME", "BYTES", "MIME", "RETRIEVAL"], &rows)
}

/// A table of findings.
pub fn findings_table(findings: &[Value]) -> String {
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            let location = match (f["file"].as_str(), f["line"].as_u64()) {
                (Some(file), Some(line)) => format!("{file}:{line}"),
                (Some(file), None) => file.to_string(),
                _ => "-".into(),
            };
            let print = f["fingerprint"].as_str().unwrap_or("-");
            vec![
                text(&f["severity"]),
                text(&f["tool"]),
                text(&f["rule"]),
                location,
                print.chars().take(12).collect(),
                text(&f["message"]).lines().next().unwrap_or("").to_string(),
            ]
        })
        .collect();
    table(
        &[
            "SEVERITY",
            "TOOL",
            "RULE",
            "LOCATION",
            "FINGERPRINT",
            "MESSAGE",
        ],
        &rows,
    )
}

/// A comparison of two runs.
pub fn comparison_text(c: &Value) -> String {
    let mut out = vec![
        format!(
            "A: {} {} {} ({} findings)",
            text(&c["a"]["id"]),
            text(&c["a"]["kind"]),
            text(&c["a"]["component_id"]),
            text(&c["a"]["findings"])
        ),
        format!(
            "B: {} {} {} ({} findings)",
            text(&c["b"]["id"]),
            text(&c["b"]["kind"]),
            text(&c["b"]["component_id"]),
            text(&c["b"]["findings"])
        ),
        format!(
            "status: {} -> {}{}",
            text(&c["status"]["from"]),
            text(&c["status"]["to"]),
            if c["status"]["changed"] == true {
                " (changed)"
            } else {
                ""
            }
        ),
    ];
    let new = c["findings"]["new"].as_array().cloned().unwrap_or_default();
    let fixed = c["findings"]["fixed"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    out.push(format!(
        "findings: {} new, {} fixed, {} unchanged",
        new.len(),
        fixed.len(),
        text(&c["findings"]["unchanged"])
    ));
    for (sign, list) in [("+", &new), ("-", &fixed)] {
        for f in list {
            out.push(format!(
                "  {sign} {} {} {}:{} {}",
                text(&f["severity"]),
                text(&f["rule"]),
                text(&f["file"]),
                text(&f["line"]),
                text(&f["message"]).lines().next().unwrap_or("")
            ));
        }
    }
    let metrics = c["metrics"].as_array().cloned().unwrap_or_default();
    if !metrics.is_empty() {
        let rows: Vec<Vec<String>> = metrics
            .iter()
            .map(|m| {
                let pct = m["delta_pct"]
                    .as_f64()
                    .map_or("-".into(), |p| format!("{p:+.1}%"));
                vec![
                    text(&m["name"]),
                    text(&m["a"]),
                    text(&m["b"]),
                    text(&m["delta"]),
                    pct,
                ]
            })
            .collect();
        out.push(table(&["METRIC", "A", "B", "DELTA", "DELTA %"], &rows));
    }
    for note in c["notes"].as_array().into_iter().flatten() {
        out.push(format!("note: {}", text(note)));
    }
    out.join("\n")
}

/// An analysis result in a few lines.
pub fn result_summary(result: &Value) -> String {
    let run = &result["run"];
    let findings = &result["findings"];
    let severities: Vec<String> = findings["by_severity"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{v} {k}")).collect())
        .unwrap_or_default();
    let mut lines = vec![format!(
        "{} {}: {} (exit {}), {} findings{} — run {}",
        text(&run["kind"]),
        text(&run["component_id"]),
        text(&run["status"]),
        text(&result["exit_code"]),
        text(&findings["total"]),
        if severities.is_empty() {
            String::new()
        } else {
            format!(" ({})", severities.join(", "))
        },
        text(&run["id"]),
    )];
    if let Some(error) = run["metadata"]["error"].as_str() {
        lines.push(format!("error: {error}"));
    }
    if let Some(error) = run["metadata"]["findings"]["error"].as_str() {
        lines.push(format!("findings: {error}"));
    }
    if let Some(metrics) = result["metrics"].as_object() {
        for (name, value) in metrics {
            lines.push(format!("metric {name}: {value}"));
        }
    }
    for artifact in result["artifacts"].as_array().into_iter().flatten() {
        lines.push(format!(
            "artifact {} {} ({} bytes)",
            text(&artifact["id"]),
            text(&artifact["name"]),
            text(&artifact["size_bytes"])
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_for_people() {
        let runs = [
            json!({"id": "r1", "kind": "lint", "component_id": "api", "status": "running",
                           "status_note": "owner gone", "started_at": "t", "metadata": {}}),
        ];
        let table = runs_table(&runs);
        assert!(table.contains("running (?)"), "{table}");
        assert!(table.ends_with("(?) r1: owner gone"), "{table}");
        let c = json!({"a": {"id": "a", "findings": 1}, "b": {"id": "b", "findings": 1},
                       "status": {"from": "fail", "to": "pass", "changed": true},
                       "findings": {"new": [{"severity": "error", "rule": "r", "file": "f", "line": 1, "message": "m"}],
                                    "fixed": [], "unchanged": 0},
                       "metrics": [{"name": "rps", "a": 1.0, "b": 2.0, "delta": 1.0, "delta_pct": 100.0}],
                       "notes": []});
        let text = comparison_text(&c);
        assert!(text.contains("status: fail -> pass (changed)"), "{text}");
        assert!(text.contains("1 new, 0 fixed, 0 unchanged"), "{text}");
        assert!(text.contains("+100.0%"), "{text}");
        let summary = result_summary(
            &json!({"run": {"kind": "lint", "component_id": "api", "status": "fail", "id": "r",
                                                     "metadata": {}},
                                             "exit_code": 1, "findings": {"total": 2, "by_severity": {"error": 2}},
                                             "artifacts": [], "metrics": {}}),
        );
        assert!(
            summary.starts_with("lint api: fail (exit 1), 2 findings (2 error) — run r"),
            "{summary}"
        );
    }
}
