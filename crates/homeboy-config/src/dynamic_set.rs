//! The dynamic set contract shared by every `... set <id>` command: `--field path=value` edits (dotted
//! paths, values parsed as JSON and taken as a plain string otherwise) and `--json '<merge patch>'` (RFC 7386),
//! applied to the stored JSON, re-parsed and validated, and written only when all of that succeeds.

use serde_json::{Map, Value};

use crate::ConfigError;
use crate::declarations::{Declaration, DeclarationDir, FieldError, check, from_value_fields};

/// One edit requested on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// `path=value`: set one (possibly nested) field.
    Field { path: String, value: Value },
    /// An RFC 7386 JSON merge patch (`null` removes a field).
    MergePatch(Value),
}

impl Edit {
    /// Parses `path=value`. The value is JSON when it parses as JSON (`4`, `true`, `["a"]`, `"x"`), else the
    /// raw text as a string, so `--field host=example.com` needs no quotes.
    pub fn parse_field(arg: &str) -> Result<Edit, FieldError> {
        let (path, raw) = arg.split_once('=').ok_or_else(|| {
            FieldError::new(
                arg,
                "expected path=value (for example runner.concurrency_limit=4)",
            )
        })?;
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(FieldError::new(path, "is not a dotted field path"));
        }
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        Ok(Edit::Field {
            path: path.to_string(),
            value,
        })
    }

    /// Parses a merge patch given as JSON text; it must be an object.
    pub fn parse_merge_patch(text: &str) -> Result<Edit, FieldError> {
        let patch: Value = serde_json::from_str(text)
            .map_err(|e| FieldError::new("--json", format!("is not valid JSON: {e}")))?;
        if !patch.is_object() {
            return Err(FieldError::new(
                "--json",
                "must be a JSON object (a merge patch)",
            ));
        }
        Ok(Edit::MergePatch(patch))
    }
}

/// The edits of a `set` command line, in the order they apply: the `--json` merge patch first, then each
/// `--field` in the order given. Asking for nothing is an error.
pub fn edits_from_cli(fields: &[String], json: Option<&str>) -> Result<Vec<Edit>, FieldError> {
    if fields.is_empty() && json.is_none() {
        return Err(FieldError::new(
            "--field/--json",
            "nothing to set: give --field path=value and/or --json '<merge patch>'",
        ));
    }
    let mut edits = Vec::with_capacity(fields.len() + 1);
    if let Some(patch) = json {
        edits.push(Edit::parse_merge_patch(patch)?);
    }
    for field in fields {
        edits.push(Edit::parse_field(field)?);
    }
    Ok(edits)
}

/// Applies `edits` in order to a JSON document.
pub fn apply_edits(doc: &mut Value, edits: &[Edit]) -> Result<(), FieldError> {
    for edit in edits {
        match edit {
            Edit::Field { path, value } => set_path(doc, path, value.clone())?,
            Edit::MergePatch(patch) => merge_patch(doc, patch),
        }
    }
    Ok(())
}

/// Sets `doc.<path>` to `value`, creating intermediate objects. Setting `null` removes the field.
pub fn set_path(doc: &mut Value, path: &str, value: Value) -> Result<(), FieldError> {
    let mut current = doc;
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last().expect("split yields at least one part");
    for (depth, part) in parents.iter().enumerate() {
        let here = parts[..=depth].join(".");
        let object = current
            .as_object_mut()
            .ok_or_else(|| FieldError::new(&here, "is not an object"))?;
        current = object
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if current.is_null() {
            *current = Value::Object(Map::new());
        }
    }
    let object = current.as_object_mut().ok_or_else(|| {
        FieldError::new(parents.join("."), "is not an object, so it has no fields")
    })?;
    if value.is_null() {
        object.remove(*last);
    } else {
        object.insert(last.to_string(), value);
    }
    Ok(())
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let object = target.as_object_mut().expect("just made an object");
    for (key, value) in patch {
        if value.is_null() {
            object.remove(key);
        } else {
            merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Loads item `id`, applies `edits`, re-parses and validates the result, and writes it. The id cannot be
/// changed this way. Nothing is written if any step fails.
pub fn update<T: Declaration>(
    dir: &DeclarationDir<T>,
    id: &str,
    edits: &[Edit],
) -> Result<T, ConfigError> {
    let path = dir.path(id)?;
    let current = dir.get(id)?;
    let mut doc = serde_json::to_value(&current).map_err(|source| ConfigError::InvalidJson {
        path: path.clone(),
        source,
    })?;
    let invalid = |e: FieldError| ConfigError::Invalid {
        path: path.clone(),
        field: e.field,
        problem: e.problem,
        suggestion: e.suggestion,
    };
    apply_edits(&mut doc, edits).map_err(invalid)?;
    if doc.get("id").and_then(Value::as_str) != Some(id) {
        return Err(invalid(FieldError::new(
            "id",
            "cannot be changed with set (add a new item and remove the old one)",
        )));
    }
    let updated: T = from_value_fields(doc).map_err(invalid)?;
    check(&path, &updated)?;
    dir.put(&updated)?;
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_values_parse_as_json_or_text() {
        assert_eq!(
            Edit::parse_field("runner.concurrency_limit=4").unwrap(),
            Edit::Field {
                path: "runner.concurrency_limit".into(),
                value: json!(4)
            }
        );
        assert_eq!(
            Edit::parse_field("host=example.com").unwrap(),
            Edit::Field {
                path: "host".into(),
                value: json!("example.com")
            }
        );
        assert!(Edit::parse_field("noequals").is_err());
        assert!(Edit::parse_field("a..b=1").is_err());
        assert!(Edit::parse_merge_patch("[1]").is_err());
    }

    #[test]
    fn set_and_merge() {
        let mut doc = json!({"id": "x", "runner": {"env": {"A": "1"}}});
        apply_edits(
            &mut doc,
            &[
                Edit::parse_field("runner.concurrency_limit=4").unwrap(),
                Edit::parse_field("auth.mode=key_plus_password_controlmaster").unwrap(),
                Edit::parse_merge_patch(r#"{"runner": {"env": {"A": null, "B": "2"}}}"#).unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"id": "x", "runner": {"concurrency_limit": 4, "env": {"B": "2"}},
                   "auth": {"mode": "key_plus_password_controlmaster"}})
        );
        let err = set_path(&mut json!({"a": 1}), "a.b", json!(2)).unwrap_err();
        assert_eq!(err.field, "a");
    }
}
