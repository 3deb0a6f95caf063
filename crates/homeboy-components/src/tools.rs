//! The typed tool allowlist: the six analysis tools a client may start (`homeboy.audit`, `homeboy.lint`,
//! `homeboy.test`, `homeboy.bench`, `homeboy.build`, `homeboy.review`), what each needs (capability
//! `run:<x>`, risk `bounded_local_run`), the JSON arguments each accepts, and the validation of a request body
//! against them.
//!
//! A body is refused before anything runs when it is not an object, carries a field the tool does not
//! declare, carries a mutating field (`fix`, `write`, `baseline`, `ratchet`: none of these tools may change
//! the checkout), or gives a declared field the wrong type. Everything else in homeboy — deploys, releases,
//! SSH, secrets, databases — is not a tool and is refused by id.

use homeboy_config::components::{MAX_TIMEOUT_SECS, ToolKind};
use std::borrow::Cow;

use serde_json::{Map, Value};

/// Fields that would make an analysis tool change something; always refused.
pub const MUTATING_FIELDS: [&str; 4] = ["fix", "write", "baseline", "ratchet"];
pub use homeboy_api::tools::{MAX_LABEL_CHARS, ToolArgument, ToolSpec};

const ARGUMENTS: [ToolArgument; 4] = [
    ToolArgument {
        name: Cow::Borrowed("component"),
        value_type: Cow::Borrowed("string"),
        required: true,
        description: Cow::Borrowed("the component whose declared command runs, in its checkout"),
    },
    ToolArgument {
        name: Cow::Borrowed("rig"),
        value_type: Cow::Borrowed("string"),
        required: false,
        description: Cow::Borrowed(
            "record the run as part of this rig (which must list the component)",
        ),
    },
    ToolArgument {
        name: Cow::Borrowed("timeout_secs"),
        value_type: Cow::Borrowed("integer"),
        required: false,
        description: Cow::Borrowed(
            "stop the tool after this many seconds (default: the component's timeout)",
        ),
    },
    ToolArgument {
        name: Cow::Borrowed("label"),
        value_type: Cow::Borrowed("string"),
        required: false,
        description: Cow::Borrowed("a free-text label kept in the run's metadata"),
    },
];

/// `homeboy.<kind>`.
pub fn tool_id(kind: ToolKind) -> String {
    format!("homeboy.{kind}")
}

/// The tool with this id.
pub fn find(id: &str) -> Option<ToolSpec> {
    let kind = ToolKind::parse(id.strip_prefix("homeboy.")?)?;
    Some(spec(kind))
}

/// Every tool, in listing order (audit first, as the contract lists them).
pub fn catalogue() -> Vec<ToolSpec> {
    [
        ToolKind::Audit,
        ToolKind::Lint,
        ToolKind::Test,
        ToolKind::Bench,
        ToolKind::Build,
        ToolKind::Review,
    ]
    .into_iter()
    .map(spec)
    .collect()
}

fn spec(kind: ToolKind) -> ToolSpec {
    let description = match kind {
        ToolKind::Audit => "run the component's audit command and record its findings",
        ToolKind::Lint => "run the component's lint command and record its findings",
        ToolKind::Test => "run the component's test command and record its failures",
        ToolKind::Bench => "run the component's benchmark command and record its metrics",
        ToolKind::Build => "run the component's build command and record its artifacts",
        ToolKind::Review => "run the component's review command and record its findings",
    };
    let route = matches!(
        kind,
        ToolKind::Audit | ToolKind::Lint | ToolKind::Test | ToolKind::Bench
    )
    .then(|| format!("/{kind}"));
    ToolSpec {
        id: tool_id(kind),
        command: format!("homeboy {kind} <component>"),
        required_capability: format!("run:{kind}"),
        risk: Cow::Borrowed("bounded_local_run"),
        runs_as_job: true,
        allowed_arguments: ARGUMENTS.to_vec(),
        kind,
        description: description.into(),
        route,
    }
}

/// A validated request to run one tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisRequest {
    pub tool: ToolKind,
    pub component: String,
    pub rig: Option<String>,
    pub timeout_secs: Option<u64>,
    pub label: Option<String>,
}

impl AnalysisRequest {
    /// A request for `tool` on `component` with no options.
    pub fn new(tool: ToolKind, component: impl Into<String>) -> Self {
        AnalysisRequest {
            tool,
            component: component.into(),
            rig: None,
            timeout_secs: None,
            label: None,
        }
    }

    /// The request as the job keeps it (`{tool, component, ...}`); [`parse_request`] reads it back.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("component".into(), Value::String(self.component.clone()));
        if let Some(rig) = &self.rig {
            body.insert("rig".into(), Value::String(rig.clone()));
        }
        if let Some(secs) = self.timeout_secs {
            body.insert("timeout_secs".into(), Value::from(secs));
        }
        if let Some(label) = &self.label {
            body.insert("label".into(), Value::String(label.clone()));
        }
        let mut job = Map::new();
        job.insert("tool".into(), Value::String(tool_id(self.tool)));
        job.insert("arguments".into(), Value::Object(body));
        Value::Object(job)
    }

    /// Reads back [`AnalysisRequest::to_json`].
    pub fn from_json(value: &Value) -> Result<AnalysisRequest, Refusal> {
        let tool = value
            .get("tool")
            .and_then(Value::as_str)
            .and_then(find)
            .ok_or(Refusal::Invalid {
                field: "tool".into(),
                problem: "is not a tool id".into(),
            })?;
        parse_request(tool.kind, value.get("arguments").unwrap_or(&Value::Null))
    }
}

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A field the tool does not declare.
    Unknown { field: String },
    /// A field that would change something.
    Mutating { field: String },
    /// A declared field with a wrong value (or a missing required one).
    Invalid { field: String, problem: String },
}

/// Validates `body` against `tool`'s declared arguments.
pub fn parse_request(tool: ToolKind, body: &Value) -> Result<AnalysisRequest, Refusal> {
    let empty = Map::new();
    let fields = match body {
        Value::Object(map) => map,
        Value::Null => &empty,
        _ => {
            return Err(Refusal::Invalid {
                field: "body".into(),
                problem: "must be a JSON object".into(),
            });
        }
    };
    // Mutating fields first: they are refused as such even though they are also unknown.
    if let Some(field) = fields
        .keys()
        .find(|k| MUTATING_FIELDS.contains(&k.as_str()))
    {
        return Err(Refusal::Mutating {
            field: field.clone(),
        });
    }
    if let Some(field) = fields
        .keys()
        .find(|k| !ARGUMENTS.iter().any(|a| a.name == k.as_str()))
    {
        return Err(Refusal::Unknown {
            field: field.clone(),
        });
    }
    let text = |name: &str| -> Result<Option<String>, Refusal> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(Refusal::Invalid {
                field: name.into(),
                problem: "must be a non-empty string".into(),
            }),
        }
    };
    let component = text("component")?.ok_or(Refusal::Invalid {
        field: "component".into(),
        problem: "is required".into(),
    })?;
    let rig = text("rig")?;
    let label = text("label")?;
    if label
        .as_ref()
        .is_some_and(|l| l.chars().count() > MAX_LABEL_CHARS)
    {
        return Err(Refusal::Invalid {
            field: "label".into(),
            problem: format!("must be at most {MAX_LABEL_CHARS} characters"),
        });
    }
    let timeout_secs = match fields.get("timeout_secs") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) => Some(secs),
            _ => {
                return Err(Refusal::Invalid {
                    field: "timeout_secs".into(),
                    problem: format!("must be an integer between 1 and {MAX_TIMEOUT_SECS}"),
                });
            }
        },
    };
    Ok(AnalysisRequest {
        tool,
        component,
        rig,
        timeout_secs,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_catalogue_is_the_contract() {
        let tools = catalogue();
        let ids: Vec<&str> = tools.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "homeboy.audit",
                "homeboy.lint",
                "homeboy.test",
                "homeboy.bench",
                "homeboy.build",
                "homeboy.review"
            ]
        );
        let json = serde_json::to_value(&tools[1]).unwrap();
        assert_eq!(json["required_capability"], "run:lint");
        assert_eq!(json["risk"], "bounded_local_run");
        assert_eq!(json["runs_as_job"], true);
        assert_eq!(
            json["allowed_arguments"][0],
            json!({"name": "component", "type": "string", "required": true,
                   "description": "the component whose declared command runs, in its checkout"})
        );
        assert_eq!(json["route"], "/lint");
        assert!(find("homeboy.deploy").is_none());
        assert!(find("lint").is_none());
        assert!(find("homeboy.review").is_some());
    }

    #[test]
    fn bodies_are_checked_against_the_arguments() {
        let ok = parse_request(
            ToolKind::Lint,
            &json!({"component": "api", "rig": "dev", "timeout_secs": 60, "label": "ci"}),
        )
        .unwrap();
        assert_eq!(ok.rig.as_deref(), Some("dev"));
        assert_eq!(AnalysisRequest::from_json(&ok.to_json()).unwrap(), ok);
        for (body, expected) in [
            (
                json!({"component": "api", "fix": true}),
                Refusal::Mutating {
                    field: "fix".into(),
                },
            ),
            (
                json!({"component": "api", "ratchet": false}),
                Refusal::Mutating {
                    field: "ratchet".into(),
                },
            ),
            (
                json!({"component": "api", "paths": ["src"]}),
                Refusal::Unknown {
                    field: "paths".into(),
                },
            ),
            (
                json!({}),
                Refusal::Invalid {
                    field: "component".into(),
                    problem: "is required".into(),
                },
            ),
        ] {
            assert_eq!(parse_request(ToolKind::Lint, &body).unwrap_err(), expected);
        }
        for body in [
            json!({"component": 3}),
            json!({"component": "a", "timeout_secs": 0}),
            json!({"component": "a", "timeout_secs": "5"}),
            json!({"component": "a", "label": "x".repeat(201)}),
            json!(["component"]),
        ] {
            assert!(
                matches!(
                    parse_request(ToolKind::Test, &body),
                    Err(Refusal::Invalid { .. })
                ),
                "{body}"
            );
        }
    }
}
