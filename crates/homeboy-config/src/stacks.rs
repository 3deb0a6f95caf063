//! Stack declarations, `<config>/stacks/<id>.json`: an ordered series of changes (branches or commits, each
//! with a title) on one component, to be landed from `base` onto `target`.
//!
//! The schema is the contract's (`homeboy_api::components`); this module owns its validation (refs that git could read as options or ranges are
//! refused); computing a stack's status is `homeboy-components`'.
//!
//! ```json
//! {"id": "auth-rework", "component": "api", "base": "main", "target": "release",
//!  "entries": [{"branch": "auth-1", "title": "Split the session store"},
//!              {"commit": "4f1c2e9", "title": "Hotfix"}]}
//! ```

use crate::Paths;
use crate::declarations::{Declaration, DeclarationDir, FieldError, validate_id};

/// The stack declaration: the contract's types (a stack is shown on the wire as its file says).
pub use homeboy_api::components::{Stack, StackEntry};

impl Declaration for Stack {
    const KIND: &'static str = "stack";

    fn id(&self) -> &str {
        &self.id
    }

    fn validate(&self) -> Result<(), FieldError> {
        if validate_id("component", &self.component).is_err() {
            return Err(FieldError::new(
                "component",
                format!("{:?} is not a component id", self.component),
            ));
        }
        git_ref("base", &self.base)?;
        git_ref("target", &self.target)?;
        for (i, entry) in self.entries.iter().enumerate() {
            let field = format!("entries[{i}]");
            match (&entry.branch, &entry.commit) {
                (Some(branch), None) => git_ref(&format!("{field}.branch"), branch)?,
                (None, Some(commit)) => {
                    let hex = commit.len() >= 4
                        && commit.len() <= 64
                        && commit.bytes().all(|b| b.is_ascii_hexdigit());
                    if !hex {
                        return Err(FieldError::new(
                            format!("{field}.commit"),
                            "must be a commit id (4 to 64 hex digits)",
                        ));
                    }
                }
                _ => {
                    return Err(FieldError::new(
                        field,
                        "must have exactly one of `branch` or `commit`",
                    ));
                }
            }
            if entry.title.trim().is_empty() {
                return Err(FieldError::new(
                    format!("{field}.title"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

/// A ref name git cannot mistake for an option or a range: not empty, no leading `-`, no whitespace or
/// control characters, no `..`, none of `~^:?*[\`.
pub fn git_ref(field: &str, name: &str) -> Result<(), FieldError> {
    let bad = name.is_empty()
        || name.starts_with('-')
        || name.contains("..")
        || name.contains("@{")
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    if bad {
        return Err(FieldError::new(
            field,
            format!("{name:?} is not a usable branch, tag or commit name"),
        ));
    }
    Ok(())
}

/// The stack declarations of `paths`.
pub fn store(paths: &Paths) -> DeclarationDir<Stack> {
    DeclarationDir::new(paths.stacks_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declarations::parse_json_fields;

    fn check(json: &str) -> Result<Stack, String> {
        let stack: Stack = parse_json_fields(json.as_bytes()).map_err(|e| e.field)?;
        stack
            .validate()
            .map_err(|e| format!("{}: {}", e.field, e.problem))?;
        Ok(stack)
    }

    #[test]
    fn entries_name_a_branch_or_a_commit() {
        let s = check(
            r#"{"id": "s", "component": "api", "base": "main", "target": "release/1.x",
                "entries": [{"branch": "feat/a", "title": "A"}, {"commit": "abc123", "title": "B"}]}"#,
        )
        .unwrap();
        assert_eq!(s.entries[0].rev(), "feat/a");
        assert_eq!(s.entries[1].rev(), "abc123");
    }

    #[test]
    fn refs_that_git_would_misread_are_refused() {
        for (json, expected) in [
            (
                r#"{"id": "s", "component": "a", "base": "--all", "target": "t"}"#,
                "base:",
            ),
            (
                r#"{"id": "s", "component": "a", "base": "b", "target": "main..x"}"#,
                "target:",
            ),
            (
                r#"{"id": "s", "component": "a", "base": "b", "target": "t", "entries": [{"branch": "x", "commit": "abcd", "title": "t"}]}"#,
                "entries[0]: must have exactly one",
            ),
            (
                r#"{"id": "s", "component": "a", "base": "b", "target": "t", "entries": [{"commit": "xyz!", "title": "t"}]}"#,
                "entries[0].commit:",
            ),
            (
                r#"{"id": "s", "component": "a", "base": "b", "target": "t", "entries": [{"branch": "x", "title": " "}]}"#,
                "entries[0].title:",
            ),
            (
                r#"{"id": "s", "component": "../a", "base": "b", "target": "t"}"#,
                "component:",
            ),
        ] {
            let err = check(json).unwrap_err();
            assert!(err.starts_with(expected), "{json}: {err}");
        }
    }
}
