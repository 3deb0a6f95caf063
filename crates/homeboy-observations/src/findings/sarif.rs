//! SARIF 2.1.0: every `result` of every `run`, with its rule (`ruleId`, else the rule at `ruleIndex`), level
//! (`level`, else the rule's `defaultConfiguration.level`, else `warning`), message (`message.text`, else the
//! rule's `shortDescription`), first physical location (`artifactLocation.uri` and `region.startLine`),
//! `fixes` (fixable) and `partialFingerprints` (the fingerprint anchor when present). Only the members used
//! are read; everything else in the log is ignored. A `ruleIndex` or `startLine` that is not a usable index
//! or line (SARIF's `-1` "no rule", a negative, zero or too large line) is treated as absent rather than
//! refusing the whole report.

use serde::Deserialize;
use serde_json::{Number, Value};

use super::{Anchor, RawFinding, SourceContext, severity};

#[derive(Deserialize)]
struct Log {
    version: Option<String>,
    #[serde(default)]
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    tool: Tool,
    #[serde(default)]
    results: Vec<SarifResult>,
}

#[derive(Deserialize)]
struct Tool {
    driver: Driver,
}

#[derive(Deserialize)]
struct Driver {
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    id: Option<String>,
    #[serde(rename = "shortDescription")]
    short_description: Option<Message>,
    #[serde(rename = "defaultConfiguration")]
    default_configuration: Option<Configuration>,
}

#[derive(Deserialize)]
struct Configuration {
    level: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    text: Option<String>,
}

#[derive(Deserialize)]
struct SarifResult {
    #[serde(rename = "ruleId")]
    rule_id: Option<String>,
    #[serde(rename = "ruleIndex")]
    rule_index: Option<Number>,
    level: Option<String>,
    message: Option<Message>,
    #[serde(default)]
    locations: Vec<Location>,
    #[serde(default)]
    fixes: Vec<Value>,
    #[serde(rename = "partialFingerprints", default)]
    partial_fingerprints: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(rename = "physicalLocation")]
    physical_location: Option<PhysicalLocation>,
}

#[derive(Deserialize)]
struct PhysicalLocation {
    #[serde(rename = "artifactLocation")]
    artifact_location: Option<ArtifactLocation>,
    region: Option<Region>,
}

#[derive(Deserialize)]
struct ArtifactLocation {
    uri: Option<String>,
}

#[derive(Deserialize)]
struct Region {
    #[serde(rename = "startLine")]
    start_line: Option<Number>,
}

/// Parses a SARIF 2.1.0 log.
pub fn parse(bytes: &[u8], context: &SourceContext) -> Result<Vec<RawFinding>, String> {
    let log: Log = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if let Some(version) = &log.version
        && version != "2.1.0"
    {
        return Err(format!("version {version:?} is not 2.1.0"));
    }
    let mut out = Vec::new();
    for run in log.runs {
        let driver = run.tool.driver;
        for result in run.results {
            let rule = result
                .rule_index
                .as_ref()
                .and_then(Number::as_u64)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| driver.rules.get(i))
                .or_else(|| {
                    let id = result.rule_id.as_deref()?;
                    driver.rules.iter().find(|r| r.id.as_deref() == Some(id))
                });
            let rule_id = result
                .rule_id
                .clone()
                .or_else(|| rule.and_then(|r| r.id.clone()))
                .unwrap_or_else(|| "unknown".into());
            let level = result
                .level
                .clone()
                .or_else(|| rule.and_then(|r| r.default_configuration.as_ref()?.level.clone()))
                .unwrap_or_else(|| "warning".into());
            let message = result
                .message
                .and_then(|m| m.text)
                .or_else(|| rule.and_then(|r| r.short_description.as_ref()?.text.clone()))
                .unwrap_or_default();
            let physical = result
                .locations
                .into_iter()
                .find_map(|l| l.physical_location);
            let file = physical
                .as_ref()
                .and_then(|p| p.artifact_location.as_ref()?.uri.as_deref())
                .map(|uri| context.normalise_path(uri));
            let line = physical
                .as_ref()
                .and_then(|p| p.region.as_ref()?.start_line.as_ref()?.as_u64())
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n >= 1);
            let anchor = if result.partial_fingerprints.is_empty() {
                Anchor::Message
            } else {
                let mut pairs: Vec<String> = result
                    .partial_fingerprints
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                pairs.sort();
                Anchor::Provided(pairs.join("\n"))
            };
            out.push(RawFinding {
                tool: driver.name.clone(),
                rule: rule_id,
                file,
                line,
                severity: match level.as_str() {
                    "none" => "info".into(),
                    other => severity(other),
                },
                message,
                fixable: !result.fixes.is_empty(),
                anchor,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{
      "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
      "version": "2.1.0",
      "runs": [{
        "tool": {"driver": {"name": "clippy", "rules": [
          {"id": "clippy::needless_return", "defaultConfiguration": {"level": "note"},
           "shortDescription": {"text": "needless return"}}]}},
        "results": [
          {"ruleId": "clippy::needless_return", "ruleIndex": 0,
           "message": {"text": "unneeded `return` statement"},
           "locations": [{"physicalLocation": {"artifactLocation": {"uri": "file:///src/app/src/lib.rs"},
                                               "region": {"startLine": 12, "startColumn": 5}}}],
           "fixes": [{"description": {"text": "remove return"}}]},
          {"ruleId": "E501", "level": "error", "message": {"text": "line too long"},
           "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/main.rs"},
                                               "region": {"startLine": 3}}}],
           "partialFingerprints": {"primaryLocationLineHash": "39fa2ee980eb94b0:1"}},
          {"ruleIndex": 0}
        ]}]
    }"#;

    #[test]
    fn results_become_findings() {
        let context = SourceContext::checkout(std::path::Path::new("/src/app"));
        let found = parse(LOG.as_bytes(), &context).unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].tool, "clippy");
        assert_eq!(found[0].rule, "clippy::needless_return");
        assert_eq!(found[0].severity, "note", "the rule's default level");
        assert_eq!(found[0].file.as_deref(), Some("src/lib.rs"));
        assert_eq!(found[0].line, Some(12));
        assert!(found[0].fixable);
        assert_eq!(found[1].severity, "error");
        assert!(
            matches!(found[1].anchor, Anchor::Provided(ref p) if p == "primaryLocationLineHash=39fa2ee980eb94b0:1")
        );
        assert_eq!(
            found[2].message, "needless return",
            "falls back to the rule text"
        );
        assert_eq!(found[2].file, None);
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let context = SourceContext::default();
        assert!(
            parse(br#"{"version": "1.0.0", "runs": []}"#, &context)
                .unwrap_err()
                .contains("2.1.0")
        );
        assert!(parse(b"<xml/>", &context).is_err());
        assert!(
            parse(
                br#"{"version": "2.1.0", "runs": [{"results": []}]}"#,
                &context
            )
            .is_err()
        );
    }

    #[test]
    fn out_of_range_numbers_do_not_sink_the_report() {
        // `ruleIndex: -1` is SARIF's own "no rule" value; a line number that is negative, zero or beyond
        // u32 is unusable. Each drops that one member, not the whole report.
        let log = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "t",
            "rules": [{"id": "r0"}]}}, "results": [
            {"ruleId": "a", "ruleIndex": -1, "message": {"text": "m"},
             "locations": [{"physicalLocation": {"artifactLocation": {"uri": "x.rs"},
                                                 "region": {"startLine": -3}}}]},
            {"ruleIndex": 0, "message": {"text": "m"},
             "locations": [{"physicalLocation": {"region": {"startLine": 18446744073709551616}}}]},
            {"ruleIndex": 99999999999999999999, "message": {"text": "m"},
             "locations": [{"physicalLocation": {"region": {"startLine": 0}}}]},
            {"ruleId": "b", "locations": [{"physicalLocation": {"region": {"startLine": 4294967295}}}]}
        ]}]}"#;
        let found = parse(log.as_bytes(), &SourceContext::default()).unwrap();
        let got: Vec<(&str, Option<u32>)> =
            found.iter().map(|f| (f.rule.as_str(), f.line)).collect();
        assert_eq!(
            got,
            [
                ("a", None),
                ("r0", None),
                ("unknown", None),
                ("b", Some(u32::MAX))
            ]
        );
        assert_eq!(found[0].file.as_deref(), Some("x.rs"));
    }
}
