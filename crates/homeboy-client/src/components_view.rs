//! `homeboy component|rig|stack` for people: tables and reports rendered from the JSON of
//! `homeboy_components::views` (the same JSON the HTTP routes return).

use serde_json::Value;

use crate::text_table::table;

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn short(sha: &Value) -> String {
    sha.as_str()
        .map_or("-".into(), |s| s.chars().take(10).collect())
}

/// One status as a phrase: `main @ 1a2b3c4d5e, 2 dirty, 1 untracked, ahead 1 behind 0 of origin/main`.
pub fn status_phrase(status: &Value) -> String {
    let mut parts = vec![format!(
        "{} @ {}",
        status["branch"].as_str().unwrap_or("(detached)"),
        short(&status["head"])
    )];
    if status["clean"] == true {
        parts.push("clean".into());
    } else {
        parts.push(format!(
            "{} dirty, {} untracked",
            text(&status["dirty"]),
            text(&status["untracked"])
        ));
    }
    if let Some(upstream) = status["upstream"].as_str() {
        parts.push(format!(
            "ahead {} behind {} of {upstream}",
            text(&status["ahead"]),
            text(&status["behind"])
        ));
    }
    parts.join(", ")
}

/// The component listing.
pub fn components_table(components: &[Value]) -> String {
    let rows: Vec<Vec<String>> = components
        .iter()
        .map(|c| {
            let state = if let Some(error) = c["error"]["message"].as_str() {
                format!("error: {error}")
            } else if let Some(error) = c["status_error"]["message"].as_str() {
                format!("error: {error}")
            } else {
                status_phrase(&c["status"])
            };
            let tools: Vec<String> = c["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            vec![text(&c["id"]), text(&c["path"]), tools.join(","), state]
        })
        .collect();
    table(&["ID", "PATH", "TOOLS", "STATUS"], &rows)
}

/// `homeboy component changes`.
pub fn changes_text(changes: &Value) -> String {
    let mut lines = Vec::new();
    let files = changes["files"].as_array().cloned().unwrap_or_default();
    lines.push(format!("uncommitted files: {}", files.len()));
    for f in &files {
        lines.push(format!("  {} {}", text(&f["status"]), text(&f["path"])));
    }
    let since = match changes["since"]["reference"].as_str() {
        Some(reference) => format!("{} {reference}", text(&changes["since"]["kind"])),
        None => "the first commit".into(),
    };
    let commits = changes["commits"].as_array().cloned().unwrap_or_default();
    lines.push(format!(
        "commits since {since}: {}{}",
        commits.len(),
        if changes["commits_truncated"] == true {
            "+"
        } else {
            ""
        }
    ));
    for c in &commits {
        lines.push(format!("  {} {}", short(&c["sha"]), text(&c["subject"])));
    }
    lines.join("\n")
}

/// The rig listing.
pub fn rigs_table(rigs: &[Value]) -> String {
    let rows: Vec<Vec<String>> = rigs
        .iter()
        .map(|r| {
            if let Some(error) = r["error"]["message"].as_str() {
                return vec![text(&r["id"]), format!("error: {error}"), String::new()];
            }
            let components: Vec<String> = r["components"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            vec![
                text(&r["id"]),
                components.join(","),
                text(&r["check_steps"]),
            ]
        })
        .collect();
    table(&["ID", "COMPONENTS", "CHECK STEPS"], &rows)
}

/// A rig check report.
pub fn rig_check_text(check: &Value) -> String {
    let mut lines = vec![format!(
        "rig {}: {} ({} ms)",
        text(&check["rig_id"]),
        if check["passed"] == true {
            "pass"
        } else {
            "FAIL"
        },
        text(&check["duration_ms"])
    )];
    for step in check["steps"].as_array().into_iter().flatten() {
        let evidence = &step["evidence"];
        let detail = if let Some(error) = evidence["error"].as_str() {
            error.to_string()
        } else {
            match step["kind"].as_str() {
                Some("command") => format!(
                    "exit {}{}",
                    text(&evidence["exit_code"]),
                    if evidence["timed_out"] == true {
                        " (timed out)"
                    } else {
                        ""
                    }
                ),
                Some("http_ok") => format!("HTTP {}", text(&evidence["status"])),
                _ => format!("connected {}", text(&evidence["connected"])),
            }
        };
        lines.push(format!(
            "  [{}] {} — {detail} ({} ms)",
            if step["passed"] == true {
                "pass"
            } else {
                "FAIL"
            },
            text(&step["name"]),
            text(&step["duration_ms"])
        ));
    }
    lines.join("\n")
}

/// The stack listing.
pub fn stacks_table(stacks: &[Value]) -> String {
    let rows: Vec<Vec<String>> = stacks
        .iter()
        .map(|s| {
            if let Some(error) = s["error"]["message"].as_str() {
                return vec![text(&s["id"]), format!("error: {error}")];
            }
            vec![
                text(&s["id"]),
                text(&s["component"]),
                format!("{} -> {}", text(&s["base"]), text(&s["target"])),
                text(&s["entries"]),
            ]
        })
        .collect();
    table(&["ID", "COMPONENT", "BASE -> TARGET", "ENTRIES"], &rows)
}

/// A stack status report.
pub fn stack_status_text(status: &Value) -> String {
    let mut lines = vec![format!(
        "stack {} on {}: {} -> {} ({} applied, {} pending, {} conflict, {} missing)",
        text(&status["stack_id"]),
        text(&status["component_id"]),
        text(&status["base"]),
        text(&status["target"]),
        text(&status["applied"]),
        text(&status["pending"]),
        text(&status["conflict"]),
        text(&status["missing"])
    )];
    let rows: Vec<Vec<String>> = status["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let conflicts: Vec<String> = e["conflicts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            vec![
                text(&e["index"]),
                text(&e["state"]),
                text(&e["rev"]),
                short(&e["sha"]),
                format!("+{} -{}", text(&e["ahead"]), text(&e["behind"])),
                text(&e["title"]),
                conflicts.join(","),
            ]
        })
        .collect();
    lines.push(table(
        &[
            "#",
            "STATE",
            "REV",
            "SHA",
            "AHEAD/BEHIND",
            "TITLE",
            "CONFLICTS",
        ],
        &rows,
    ));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_for_people() {
        let list = [
            json!({"id": "api", "path": "/src/api", "tools": ["lint"], "status":
                   {"branch": "main", "head": "0123456789abcdef", "clean": false, "dirty": 1, "untracked": 2,
                    "upstream": "origin/main", "ahead": 1, "behind": 0}}),
            json!({"id": "gone", "path": "/x", "tools": [], "status": null,
                   "status_error": {"code": "components.path_missing", "message": "its path /x does not exist"}}),
        ];
        let t = components_table(&list);
        assert!(
            t.contains("main @ 0123456789, 1 dirty, 2 untracked, ahead 1 behind 0 of origin/main"),
            "{t}"
        );
        assert!(t.contains("error: its path /x does not exist"), "{t}");
        let check = json!({"rig_id": "dev", "passed": false, "duration_ms": 3, "steps": [
            {"name": "db", "kind": "tcp_open", "passed": false, "duration_ms": 1,
             "evidence": {"connected": false, "error": "refused"}}]});
        assert!(rig_check_text(&check).contains("[FAIL] db — refused"));
    }
}
