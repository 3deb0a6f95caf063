//! The preview consumer's configuration file and its templates.
//!
//! ```json
//! {"id": "sample-preview-consumer",
//!  "command": {"program": "node", "args": ["tools/open.mjs", "--public-url", "${preview_public_url}",
//!              "--artifacts", "${artifacts_dir}"],
//!              "cwd": "/workspace/project", "artifacts_dir": "artifacts/sample-preview-consumer"},
//!  "output": {"public_result_json_file": "summary.json", "public_result_json_pointer": "/public_result_url",
//!             "public_result_stdout_prefix": "Public result URL:"}}
//! ```
//!
//! A relative `cwd` is resolved against the config file's directory (default: that directory); a relative
//! `artifacts_dir` against `cwd` (default: `<artifact_root>/preview-consumers/<id>`); a relative
//! `public_result_json_file` against `artifacts_dir`. Templates `${preview_public_url}` and
//! `${artifacts_dir}` are replaced in `program` and `args`; any other `${...}` is refused, since nothing
//! (no shell) would ever expand it.

use std::path::{Path, PathBuf};

use homeboy_config::declarations::{parse_json_fields, validate_id};
use serde::Deserialize;

use crate::TunnelError;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    pub id: String,
    pub command: ConsumerCommand,
    #[serde(default)]
    pub output: ConsumerOutput,
}

/// What to run, where.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerCommand {
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub artifacts_dir: Option<PathBuf>,
}

/// Where the reviewer-clickable result URL comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerOutput {
    #[serde(default)]
    pub public_result_json_file: Option<PathBuf>,
    #[serde(default)]
    pub public_result_json_pointer: Option<String>,
    #[serde(default)]
    pub public_result_stdout_prefix: Option<String>,
}

/// Reads and checks a config file. Errors name the file and the dotted field.
pub fn load(path: &Path) -> Result<ConsumerConfig, TunnelError> {
    let bytes = std::fs::read(path).map_err(|e| TunnelError::io("read", path, e))?;
    let invalid = |field: &str, problem: &str| {
        TunnelError::invalid(
            format!("{} field `{field}`", path.display()),
            problem.to_string(),
        )
    };
    let config: ConsumerConfig = parse_json_fields(&bytes).map_err(|e| {
        let problem = match e.suggestion {
            Some(s) => format!("{}; did you mean `{s}`?", e.problem),
            None => e.problem,
        };
        invalid(&e.field, &problem)
    })?;
    if validate_id("preview consumer", &config.id).is_err() {
        return Err(invalid("id", "use letters, digits, '.', '_' and '-'"));
    }
    if config.command.program.trim().is_empty() {
        return Err(invalid("command.program", "must not be empty"));
    }
    let output = &config.output;
    if let Some(pointer) = &output.public_result_json_pointer
        && !(pointer.is_empty() || pointer.starts_with('/'))
    {
        return Err(invalid(
            "output.public_result_json_pointer",
            "is not a JSON pointer (it starts with '/')",
        ));
    }
    match (
        &output.public_result_json_file,
        &output.public_result_json_pointer,
    ) {
        (Some(_), None) => {
            return Err(invalid(
                "output.public_result_json_pointer",
                "is required with output.public_result_json_file",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "output.public_result_json_file",
                "is required with output.public_result_json_pointer",
            ));
        }
        _ => {}
    }
    Ok(config)
}

/// Replaces `${name}` with the value of `name`; unknown names and an unclosed `${` are refused.
pub fn render(template: &str, values: &[(&str, &str)]) -> Result<String, TunnelError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(TunnelError::invalid(
                "command template",
                format!("{template:?} has an unclosed '${{'"),
            ));
        };
        let name = &after[..end];
        let Some((_, value)) = values.iter().find(|(n, _)| *n == name) else {
            let known: Vec<String> = values.iter().map(|(n, _)| format!("${{{n}}}")).collect();
            return Err(TunnelError::invalid(
                "command template",
                format!("unknown value ${{{name}}} (known: {})", known.join(", ")),
            ));
        };
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let values = [
            ("preview_public_url", "https://p.example"),
            ("artifacts_dir", "/a"),
        ];
        assert_eq!(
            render("--url=${preview_public_url}/x", &values).unwrap(),
            "--url=https://p.example/x"
        );
        assert_eq!(render("$HOME and $", &values).unwrap(), "$HOME and $");
        assert_eq!(
            render("${artifacts_dir}${artifacts_dir}", &values).unwrap(),
            "/a/a"
        );
        assert!(render("${HOME}", &values).unwrap_err().is_refused_input());
        assert!(render("${artifacts_dir", &values).is_err());
    }

    #[test]
    fn config_errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let write = |text: &str| std::fs::write(&path, text).unwrap();
        write(r#"{"id": "c", "command": {"program": "echo", "arg": []}}"#);
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("command.arg") && err.contains("args"), "{err}");
        write(
            r#"{"id": "c", "command": {"program": "echo"}, "output": {"public_result_json_file": "s.json"}}"#,
        );
        assert!(
            load(&path)
                .unwrap_err()
                .to_string()
                .contains("public_result_json_pointer")
        );
        write(r#"{"id": "c", "command": {"program": "echo"}}"#);
        assert_eq!(load(&path).unwrap().command.program, "echo");
    }
}
