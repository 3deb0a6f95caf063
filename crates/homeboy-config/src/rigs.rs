//! Rig declarations, `<config>/rigs/<id>.json`: a named set of components and the `check` steps that say
//! whether the rig is up — a `command` (argv) that must exit 0, an `http_ok` URL that must answer 2xx, or a
//! `tcp_open` address that must accept a connection.
//!
//! The schema is the contract's (`homeboy_api::components`); this module owns its validation. Running the checks is `homeboy-components`'.
//!
//! ```json
//! {"id": "dev", "components": ["api", "web"],
//!  "check": [{"name": "db", "tcp_open": "127.0.0.1:5432"},
//!            {"http_ok": "http://127.0.0.1:8080/health", "timeout_secs": 5},
//!            {"command": ["sh", "-c", "test -f .env"], "component": "api"}]}
//! ```

use crate::Paths;
use crate::declarations::{Declaration, DeclarationDir, FieldError, validate_id};

/// The rig declaration and its step timeouts: the contract's types (a rig is shown on the wire as its file
/// says).
pub use homeboy_api::components::{
    CheckStep, DEFAULT_STEP_TIMEOUT_SECS, MAX_STEP_TIMEOUT_SECS, Rig, StepKind,
};

impl Declaration for Rig {
    const KIND: &'static str = "rig";

    fn id(&self) -> &str {
        &self.id
    }

    fn validate(&self) -> Result<(), FieldError> {
        for (i, component) in self.components.iter().enumerate() {
            if validate_id("component", component).is_err() {
                return Err(FieldError::new(
                    format!("components[{i}]"),
                    format!("{component:?} is not a component id"),
                ));
            }
        }
        for (i, step) in self.check.iter().enumerate() {
            validate_step(&format!("check[{i}]"), step)?;
        }
        Ok(())
    }
}

fn validate_step(field: &str, step: &CheckStep) -> Result<(), FieldError> {
    let Some(kind) = step.kind() else {
        return Err(FieldError::new(
            field,
            "must have exactly one of `command`, `http_ok`, `tcp_open`",
        ));
    };
    match kind {
        StepKind::Command(argv) => {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(FieldError::new(
                    format!("{field}.command"),
                    "must name a program (argv, no shell)",
                ));
            }
        }
        StepKind::HttpOk(url) => {
            let rest = url.strip_prefix("http://").ok_or_else(|| {
                FieldError::new(
                    format!("{field}.http_ok"),
                    "must be a plain http:// URL (use a command step with curl for https)",
                )
            })?;
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if authority.is_empty() || authority.contains('@') {
                return Err(FieldError::new(
                    format!("{field}.http_ok"),
                    "must name a host (and no credentials)",
                ));
            }
        }
        StepKind::TcpOpen(addr) => match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
            _ => {
                return Err(FieldError::new(
                    format!("{field}.tcp_open"),
                    format!("must be host:port, got {addr:?}"),
                ));
            }
        },
    }
    if step.component.is_some() && !matches!(kind, StepKind::Command(_)) {
        return Err(FieldError::new(
            format!("{field}.component"),
            "only applies to command steps",
        ));
    }
    if let Some(component) = &step.component
        && validate_id("component", component).is_err()
    {
        return Err(FieldError::new(
            format!("{field}.component"),
            format!("{component:?} is not a component id"),
        ));
    }
    if let Some(secs) = step.timeout_secs
        && !(1..=MAX_STEP_TIMEOUT_SECS).contains(&secs)
    {
        return Err(FieldError::new(
            format!("{field}.timeout_secs"),
            format!("must be between 1 and {MAX_STEP_TIMEOUT_SECS}"),
        ));
    }
    Ok(())
}

/// The rig declarations of `paths`.
pub fn store(paths: &Paths) -> DeclarationDir<Rig> {
    DeclarationDir::new(paths.rigs_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declarations::parse_json_fields;

    fn check(json: &str) -> Result<Rig, String> {
        let rig: Rig = parse_json_fields(json.as_bytes()).map_err(|e| e.field)?;
        rig.validate()
            .map_err(|e| format!("{}: {}", e.field, e.problem))?;
        Ok(rig)
    }

    #[test]
    fn steps_have_one_kind() {
        let rig = check(
            r#"{"id": "dev", "components": ["api"], "check": [
                {"tcp_open": "127.0.0.1:5432"}, {"http_ok": "http://127.0.0.1:1/h", "timeout_secs": 2},
                {"name": "env", "command": ["test", "-f", ".env"], "component": "api"}]}"#,
        )
        .unwrap();
        let kinds: Vec<&str> = rig
            .check
            .iter()
            .map(|s| s.kind().unwrap().as_str())
            .collect();
        assert_eq!(kinds, ["tcp_open", "http_ok", "command"]);
        assert_eq!(rig.check[0].label(), "tcp 127.0.0.1:5432");
        assert_eq!(rig.check[2].label(), "env");
        assert_eq!(rig.check[0].timeout_secs(), DEFAULT_STEP_TIMEOUT_SECS);
    }

    #[test]
    fn bad_steps_name_the_field() {
        for (json, expected) in [
            (
                r#"{"id": "r", "check": [{"tcp_open": "x:1", "http_ok": "http://x"}]}"#,
                "check[0]: must have exactly one",
            ),
            (r#"{"id": "r", "check": [{}]}"#, "check[0]: must have"),
            (
                r#"{"id": "r", "check": [{"http_ok": "https://x"}]}"#,
                "check[0].http_ok: must be a plain http://",
            ),
            (
                r#"{"id": "r", "check": [{"tcp_open": "nohost"}]}"#,
                "check[0].tcp_open: must be host:port",
            ),
            (
                r#"{"id": "r", "check": [{"command": [""]}]}"#,
                "check[0].command: must name",
            ),
            (
                r#"{"id": "r", "components": ["../x"]}"#,
                "components[0]: \"../x\" is not",
            ),
            (
                r#"{"id": "r", "check": [{"tcp_open": "h:1", "component": "api"}]}"#,
                "check[0].component: only applies",
            ),
        ] {
            let err = check(json).unwrap_err();
            assert!(err.starts_with(expected), "{json}: {err}");
        }
    }
}
