//! JUnit XML (the de-facto format of surefire, pytest, cargo-nextest, jest-junit): every `<testcase>` with a
//! `<failure>` or `<error>` child is a finding. Rule `test_failure` or `test_error`; file and line from the
//! test case's `file`/`line` attributes (else the suite's `file`); the message is the test's name and the
//! failure's `message` attribute (else the first line of its text); the fingerprint anchor is the test's
//! identity (`classname::name`), so a test that keeps failing keeps its fingerprint whatever it prints.

use std::collections::HashMap;

use super::xml::{XmlEvent, walk};
use super::{Anchor, RawFinding, SourceContext};

#[derive(Default)]
struct Case {
    attrs: HashMap<String, String>,
    outcome: Option<(&'static str, HashMap<String, String>)>,
    text: String,
    in_outcome: bool,
}

/// Parses a JUnit XML report.
pub fn parse(bytes: &[u8], context: &SourceContext) -> Result<Vec<RawFinding>, String> {
    let mut out = Vec::new();
    let mut suites: Vec<HashMap<String, String>> = Vec::new();
    let mut case: Option<Case> = None;
    let mut root: Option<String> = None;
    walk(bytes, |event| match event {
        XmlEvent::Open { name, attrs } => {
            root.get_or_insert_with(|| name.clone());
            match name.as_str() {
                "testsuite" => suites.push(attrs),
                "testcase" => {
                    case = Some(Case {
                        attrs,
                        ..Case::default()
                    })
                }
                "failure" | "error" => {
                    if let Some(case) = case.as_mut()
                        && case.outcome.is_none()
                    {
                        let rule = if name == "failure" {
                            "test_failure"
                        } else {
                            "test_error"
                        };
                        case.outcome = Some((rule, attrs));
                        case.in_outcome = true;
                    }
                }
                _ => {}
            }
        }
        XmlEvent::Text(text) => {
            if let Some(case) = case.as_mut()
                && case.in_outcome
            {
                case.text.push_str(&text);
            }
        }
        XmlEvent::Close(name) => match name.as_str() {
            "failure" | "error" => {
                if let Some(case) = case.as_mut() {
                    case.in_outcome = false;
                }
            }
            "testcase" => {
                if let Some(finished) = case.take()
                    && let Some(finding) = finding(finished, suites.last(), context)
                {
                    out.push(finding);
                }
            }
            "testsuite" => {
                suites.pop();
            }
            _ => {}
        },
    })?;
    match root.as_deref() {
        Some("testsuites" | "testsuite") => Ok(out),
        Some(other) => Err(format!(
            "the root element is <{other}>, not <testsuites> or <testsuite>"
        )),
        None => Err("empty document".into()),
    }
}

fn finding(
    case: Case,
    suite: Option<&HashMap<String, String>>,
    context: &SourceContext,
) -> Option<RawFinding> {
    let (rule, outcome) = case.outcome?;
    let name = case.attrs.get("name").cloned().unwrap_or_default();
    let class = case
        .attrs
        .get("classname")
        .or_else(|| suite.and_then(|s| s.get("name")))
        .cloned()
        .unwrap_or_default();
    let detail = outcome
        .get("message")
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .or_else(|| {
            case.text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| rule.replace('_', " "));
    let id = if class.is_empty() {
        name.clone()
    } else {
        format!("{class}::{name}")
    };
    let file = case
        .attrs
        .get("file")
        .or_else(|| suite.and_then(|s| s.get("file")))
        .map(|f| context.normalise_path(f));
    Some(RawFinding {
        tool: "junit".into(),
        rule: rule.into(),
        file,
        line: case.attrs.get("line").and_then(|l| l.parse().ok()),
        severity: "error".into(),
        message: format!("{id}: {detail}"),
        fixable: false,
        anchor: Anchor::Test(id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4" failures="1" errors="1">
  <testsuite name="api.tests" file="tests/api.rs">
    <testcase classname="api.tests" name="passes" time="0.01"/>
    <testcase classname="api.tests" name="adds" file="tests/math.rs" line="14">
      <failure message="assertion `left == right` failed&#10;  left: 3" type="panic">thread panicked at tests/math.rs:14</failure>
    </testcase>
    <testcase classname="api.tests" name="connects"><error type="io"><![CDATA[connection refused
second line]]></error></testcase>
    <testcase classname="api.tests" name="skipped"><skipped/></testcase>
  </testsuite>
</testsuites>"#;

    #[test]
    fn failures_and_errors_become_findings() {
        let found = parse(REPORT.as_bytes(), &SourceContext::default()).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].rule, "test_failure");
        assert_eq!(found[0].file.as_deref(), Some("tests/math.rs"));
        assert_eq!(found[0].line, Some(14));
        assert_eq!(
            found[0].message,
            "api.tests::adds: assertion `left == right` failed\n  left: 3"
        );
        assert_eq!(found[0].anchor, Anchor::Test("api.tests::adds".into()));
        assert_eq!(found[1].rule, "test_error");
        assert_eq!(
            found[1].file.as_deref(),
            Some("tests/api.rs"),
            "the suite's file"
        );
        assert_eq!(found[1].message, "api.tests::connects: connection refused");
        assert_eq!(found[1].severity, "error");
    }

    #[test]
    fn other_documents_are_refused() {
        let context = SourceContext::default();
        assert!(
            parse(b"<checkstyle/>", &context)
                .unwrap_err()
                .contains("<checkstyle>")
        );
        assert!(parse(b"not xml", &context).is_err());
        assert!(parse(b"<testsuite a=\"1></testsuite>", &context).is_err());
    }
}
