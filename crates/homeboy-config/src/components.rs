//! Component declarations, `<config>/components/<id>.json`: a local git checkout (`path`) and, per analysis
//! tool (`lint`, `test`, `audit`, `bench`, `build`, `review`), the argv that runs it in the checkout, an
//! optional artifacts directory, an optional findings source (`sarif`, `junit`, `checkstyle` + path) and, for
//! benchmarks, an optional metrics file.
//!
//! The schema is the contract's (`homeboy_api::components`); this module owns its validation: every path a tool declares is relative to the
//! checkout and may not leave it (no absolute paths, no `..`). Running the tools is `homeboy-components`'.
//!
//! ```json
//! {"id": "app", "path": "/home/me/src/app",
//!  "tools": {"lint": {"command": ["cargo", "clippy", "--message-format=json"],
//!                     "artifacts": "target/lint",
//!                     "findings": {"format": "sarif", "path": "target/lint/clippy.sarif"},
//!                     "timeout_secs": 600}}}
//! ```

use crate::Paths;
use crate::declarations::{Declaration, DeclarationDir, FieldError};

/// The analysis tools a component can declare, the timeouts, and the declaration itself: the contract's
/// types (a component is shown on the wire as its file says).
pub use homeboy_api::components::{
    Component, ComponentTools, DEFAULT_TIMEOUT_SECS, FindingsFormat, FindingsSource,
    MAX_TIMEOUT_SECS, ToolCommand,
};
pub use homeboy_api::tools::ToolKind;

impl Declaration for Component {
    const KIND: &'static str = "component";

    fn id(&self) -> &str {
        &self.id
    }

    fn validate(&self) -> Result<(), FieldError> {
        if self.path.trim().is_empty() {
            return Err(FieldError::new("path", "must not be empty"));
        }
        if !self.path.starts_with('/') {
            return Err(FieldError::new(
                "path",
                format!(
                    "must be an absolute path to a git checkout, got {:?}",
                    self.path
                ),
            ));
        }
        for kind in ToolKind::ALL {
            if let Some(tool) = self.tools.get(kind) {
                validate_tool(&format!("tools.{kind}"), tool)?;
            }
        }
        Ok(())
    }
}

fn validate_tool(field: &str, tool: &ToolCommand) -> Result<(), FieldError> {
    match tool.command.first() {
        Some(program) if !program.trim().is_empty() => {}
        _ => {
            return Err(FieldError::new(
                format!("{field}.command"),
                "must name a program (argv, no shell)",
            ));
        }
    }
    if let Some(dir) = &tool.artifacts {
        checkout_relative(&format!("{field}.artifacts"), dir)?;
    }
    if let Some(source) = &tool.findings {
        checkout_relative(&format!("{field}.findings.path"), &source.path)?;
    }
    if let Some(metrics) = &tool.metrics {
        checkout_relative(&format!("{field}.metrics"), metrics)?;
    }
    if let Some(secs) = tool.timeout_secs
        && !(1..=MAX_TIMEOUT_SECS).contains(&secs)
    {
        return Err(FieldError::new(
            format!("{field}.timeout_secs"),
            format!("must be between 1 and {MAX_TIMEOUT_SECS}"),
        ));
    }
    Ok(())
}

/// A path inside the checkout: relative, no `..` segment, no NUL or backslash.
pub fn checkout_relative(field: &str, path: &str) -> Result<(), FieldError> {
    let problem = if path.trim().is_empty() {
        Some("must not be empty")
    } else if path.starts_with('/') {
        Some("must be relative to the checkout, not absolute")
    } else if path.split('/').any(|segment| segment == "..") {
        Some("may not contain '..' (it must stay inside the checkout)")
    } else if path.contains('\0') || path.contains('\\') {
        Some("may not contain NUL or backslash characters")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(FieldError::new(field, problem)),
        None => Ok(()),
    }
}

/// The component declarations of `paths`.
pub fn store(paths: &Paths) -> DeclarationDir<Component> {
    DeclarationDir::new(paths.components_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigError;
    use crate::declarations::parse_json_fields;

    fn parse(json: &str) -> Result<Component, String> {
        let c: Component = parse_json_fields(json.as_bytes()).map_err(|e| {
            format!(
                "{}: {}{}",
                e.field,
                e.problem,
                e.suggestion.map(|s| format!(" ({s})")).unwrap_or_default()
            )
        })?;
        c.validate()
            .map_err(|e| format!("{}: {}", e.field, e.problem))?;
        Ok(c)
    }

    #[test]
    fn full_declaration_round_trips() {
        let c = parse(
            r#"{"id": "app", "path": "/src/app", "tools": {
                "lint": {"command": ["sh", "-c", "lint"], "artifacts": "out",
                         "findings": {"format": "sarif", "path": "out/lint.sarif"}, "timeout_secs": 60},
                "bench": {"command": ["bench"], "metrics": "out/metrics.json"}}}"#,
        )
        .unwrap();
        assert_eq!(c.tools.declared(), vec![ToolKind::Lint, ToolKind::Bench]);
        let lint = c.tools.get(ToolKind::Lint).unwrap();
        assert_eq!(
            lint.findings.as_ref().unwrap().format,
            FindingsFormat::Sarif
        );
        assert_eq!(lint.timeout_secs(), 60);
        assert_eq!(
            c.tools.get(ToolKind::Bench).unwrap().timeout_secs(),
            DEFAULT_TIMEOUT_SECS
        );
        let again: Component = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn problems_name_the_field() {
        let cases = [
            (r#"{"id": "a", "path": "rel"}"#, "path: must be an absolute"),
            (
                r#"{"id": "a", "path": "/x", "tools": {"lint": {"command": []}}}"#,
                "tools.lint.command: must name a program",
            ),
            (
                r#"{"id": "a", "path": "/x", "tools": {"test": {"command": ["t"], "artifacts": "../up"}}}"#,
                "tools.test.artifacts: may not contain '..'",
            ),
            (
                r#"{"id": "a", "path": "/x", "tools": {"test": {"command": ["t"], "findings": {"format": "junit", "path": "/etc/x"}}}}"#,
                "tools.test.findings.path: must be relative",
            ),
            (
                r#"{"id": "a", "path": "/x", "tools": {"lint": {"command": ["t"], "timeout_secs": 0}}}"#,
                "tools.lint.timeout_secs: must be between",
            ),
            (
                r#"{"id": "a", "path": "/x", "tools": {"lnit": {"command": ["t"]}}}"#,
                "tools.lnit: is not a known field (lint)",
            ),
            (
                r#"{"id": "a", "path": "/x", "tools": {"lint": {"command": ["t"], "findings": {"format": "xml", "path": "x"}}}}"#,
                "tools.lint.findings.format",
            ),
        ];
        for (json, expected) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.starts_with(expected), "{json}: {err}");
        }
    }

    #[test]
    fn invalid_declarations_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        let store = store(&paths);
        let mut c = Component {
            id: "app".into(),
            path: "/src/app".into(),
            tools: ComponentTools::default(),
        };
        store.put(&c).unwrap();
        c.path = "relative".into();
        let err = store.put(&c).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("app.json"), "{err}");
        assert_eq!(store.get("app").unwrap().path, "/src/app");
    }
}
