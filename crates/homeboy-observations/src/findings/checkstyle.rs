//! Checkstyle XML (checkstyle, eslint's and phpcs' `checkstyle` formatters, ktlint, ...): every `<error>`
//! inside a `<file name="...">` is a finding. Tool `checkstyle`; rule from `source` (else `unknown`);
//! severity from `severity` (`error`, `warning`, `info`; `ignore` becomes `info`); line from `line`.

use super::xml::{XmlEvent, walk};
use super::{Anchor, RawFinding, SourceContext, severity};

/// Parses a checkstyle XML report.
pub fn parse(bytes: &[u8], context: &SourceContext) -> Result<Vec<RawFinding>, String> {
    let mut out = Vec::new();
    let mut file: Option<String> = None;
    let mut root: Option<String> = None;
    walk(bytes, |event| match event {
        XmlEvent::Open { name, attrs } => {
            root.get_or_insert_with(|| name.clone());
            match name.as_str() {
                "file" => file = attrs.get("name").map(|n| context.normalise_path(n)),
                "error" => out.push(RawFinding {
                    tool: "checkstyle".into(),
                    rule: attrs
                        .get("source")
                        .cloned()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "unknown".into()),
                    file: file.clone(),
                    line: attrs.get("line").and_then(|l| l.parse().ok()),
                    severity: severity(attrs.get("severity").map_or("warning", String::as_str)),
                    message: attrs.get("message").cloned().unwrap_or_default(),
                    fixable: false,
                    anchor: Anchor::Message,
                }),
                _ => {}
            }
        }
        XmlEvent::Close(name) if name == "file" => file = None,
        _ => {}
    })?;
    match root.as_deref() {
        Some("checkstyle") => Ok(out),
        Some(other) => Err(format!("the root element is <{other}>, not <checkstyle>")),
        None => Err("empty document".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<checkstyle version="4.3">
  <file name="/src/app/web/app.js">
    <error line="3" column="7" severity="error" message="&apos;x&apos; is assigned a value but never used." source="eslint.rules.no-unused-vars"/>
    <error line="9" severity="warning" message="Unexpected console statement." source="eslint.rules.no-console"/>
  </file>
  <file name="web/empty.js"/>
  <file name="web/util.js"><error line="1" severity="ignore" message="m"/></file>
</checkstyle>"#;

    #[test]
    fn errors_become_findings() {
        let context = SourceContext::checkout(std::path::Path::new("/src/app"));
        let found = parse(REPORT.as_bytes(), &context).unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].file.as_deref(), Some("web/app.js"));
        assert_eq!(found[0].rule, "eslint.rules.no-unused-vars");
        assert_eq!(found[0].message, "'x' is assigned a value but never used.");
        assert_eq!(found[0].severity, "error");
        assert_eq!(found[0].line, Some(3));
        assert_eq!(found[1].severity, "warning");
        assert_eq!(found[2].file.as_deref(), Some("web/util.js"));
        assert_eq!(
            (found[2].rule.as_str(), found[2].severity.as_str()),
            ("unknown", "info")
        );
        assert!(parse(b"<testsuites/>", &context).is_err());
    }
}
