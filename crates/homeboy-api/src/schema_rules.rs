//! The rules of request bodies that a type alone does not say, as JSON Schema (feature `schema`): each
//! transform here is attached to a field or type with `#[schemars(transform = ...)]` and mirrors a check a
//! server makes, named in its doc. Plus [`IntegerBounds`]: every integer states the range its Rust type can
//! hold, since a larger number is refused when it is read.

use schemars::Schema;
use schemars::transform::{Transform, transform_subschemas};
use serde_json::{Value, json};

use crate::patterns::{ENV_NAME, NOT_BLANK, SENSITIVE_NAME};

/// Fields a runner job submission may not carry (the broker's `inline_secret` refusal).
const SECRET_FIELDS: [&str; 4] = ["secret_env", "secrets", "secret_values", "secret"];

/// `SubmitRequest`: the secret-carrying fields a newer client might send are refused.
pub fn no_inline_secrets(schema: &mut Schema) {
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        for field in SECRET_FIELDS {
            properties.insert(field.to_string(), Value::Bool(false));
        }
    }
}

/// An argv: at least one word, and the first names a program (not blank).
pub fn argv(schema: &mut Schema) {
    schema.insert("minItems".into(), json!(1));
    schema.insert(
        "prefixItems".into(),
        json!([{"type": "string", "pattern": NOT_BLANK}]),
    );
}

/// `env` of a submission: environment variable names that do not look sensitive.
pub fn plain_env_names(schema: &mut Schema) {
    schema.insert(
        "propertyNames".into(),
        json!({"pattern": ENV_NAME, "not": {"pattern": SENSITIVE_NAME}}),
    );
}

/// `metadata` of a submission: `submission_key`, when given, is a non-empty string.
pub fn submission_metadata(schema: &mut Schema) {
    schema.insert(
        "properties".into(),
        json!({"submission_key": {"type": ["string", "null"], "minLength": 1}}),
    );
}

/// The kinds of events a runner may post.
pub fn runner_event_kind(schema: &mut Schema) {
    schema.insert(
        "enum".into(),
        json!(["stdout", "stderr", "progress", "result", "error"]),
    );
}

/// `POST /runner/jobs/:id/events`: one event (`kind` inline) or a batch (`events`).
pub fn one_event_or_a_batch(schema: &mut Schema) {
    schema.insert(
        "anyOf".into(),
        json!([
            {"required": ["kind"]},
            {"required": ["events"], "properties": {"events": {"type": "array"}}},
        ]),
    );
}

/// Adds the range of its Rust type to every integer schema that names one in `format`.
#[derive(Debug, Clone, Copy, Default)]
pub struct IntegerBounds;

impl Transform for IntegerBounds {
    fn transform(&mut self, schema: &mut Schema) {
        let range: Option<(i128, i128)> = match schema.get("format").and_then(Value::as_str) {
            Some("int8") => Some((i8::MIN.into(), i8::MAX.into())),
            Some("int16") => Some((i16::MIN.into(), i16::MAX.into())),
            Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
            Some("int64") | Some("int") => Some((i64::MIN.into(), i64::MAX.into())),
            Some("uint8") => Some((0, u8::MAX.into())),
            Some("uint16") => Some((0, u16::MAX.into())),
            Some("uint32") => Some((0, u32::MAX.into())),
            Some("uint64") | Some("uint") => Some((0, u64::MAX.into())),
            _ => None,
        };
        if let Some((min, max)) = range {
            let number = |n: i128| {
                u64::try_from(n)
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(n as i64))
            };
            if schema.get("minimum").is_none() {
                schema.insert("minimum".into(), number(min));
            }
            if schema.get("maximum").is_none() {
                schema.insert("maximum".into(), number(max));
            }
        }
        transform_subschemas(self, schema);
    }
}
