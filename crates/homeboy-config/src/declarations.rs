//! Declarations: one JSON file per item under a config subdirectory (`servers/<id>.json`,
//! `components/<id>.json`, ...), parsed with errors that name the file, the field and what is wrong — an
//! unknown field suggests the nearest known name — and written atomically only after validation passes.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ConfigError;

/// A problem with one field of a declaration (`field` is a dotted path such as `runner.concurrency_limit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
    pub suggestion: Option<String>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            problem: problem.into(),
            suggestion: None,
        }
    }
}

/// A kind of item kept as `<dir>/<id>.json`.
pub trait Declaration: Serialize + DeserializeOwned {
    /// What people call it (`server`, `component`): used in messages.
    const KIND: &'static str;
    /// Its id, which is also its file name.
    fn id(&self) -> &str;
    /// Checks beyond the JSON shape (ranges, references, formats).
    fn validate(&self) -> Result<(), FieldError> {
        Ok(())
    }
}

/// One listed item: its id and either the parsed item or why it could not be read.
pub struct Listed<T> {
    pub id: String,
    pub item: Result<T, ConfigError>,
}

/// The directory holding every declaration of one kind.
pub struct DeclarationDir<T> {
    dir: PathBuf,
    _kind: PhantomData<fn() -> T>,
}

impl<T: Declaration> DeclarationDir<T> {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DeclarationDir {
            dir: dir.into(),
            _kind: PhantomData,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of item `id` (the id is checked: no path tricks).
    pub fn path(&self, id: &str) -> Result<PathBuf, ConfigError> {
        validate_id(T::KIND, id)?;
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Item `id`, or `NotFound`.
    pub fn get(&self, id: &str) -> Result<T, ConfigError> {
        self.get_opt(id)?.ok_or_else(|| ConfigError::NotFound {
            kind: T::KIND,
            id: id.to_string(),
        })
    }

    /// Item `id` if it exists.
    pub fn get_opt(&self, id: &str) -> Result<Option<T>, ConfigError> {
        let path = self.path(id)?;
        match std::fs::read(&path) {
            Ok(bytes) => parse_declaration::<T>(&path, &bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ConfigError::io("read", &path, e)),
        }
    }

    /// Every item, sorted by id. A file that does not parse is listed with its error rather than failing the
    /// whole listing.
    pub fn list(&self) -> Result<Vec<Listed<T>>, ConfigError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ConfigError::io("list", &self.dir, e)),
        };
        let mut listed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ConfigError::io("list", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if id.starts_with('.') || validate_id(T::KIND, id).is_err() {
                continue;
            }
            let item = self.get(id);
            listed.push(Listed {
                id: id.to_string(),
                item,
            });
        }
        listed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(listed)
    }

    /// Validates `item` and writes it atomically. Nothing is written when validation fails.
    pub fn put(&self, item: &T) -> Result<PathBuf, ConfigError> {
        let path = self.path(item.id())?;
        check(&path, item)?;
        crate::write_json_atomic(&path, item)?;
        Ok(path)
    }

    /// Removes item `id`; false if it did not exist.
    pub fn remove(&self, id: &str) -> Result<bool, ConfigError> {
        let path = self.path(id)?;
        let existed = path.exists();
        crate::remove_file_durable(&path)?;
        Ok(existed)
    }
}

/// Runs `validate` and turns a field problem into an error naming `path`.
pub fn check<T: Declaration>(path: &Path, item: &T) -> Result<(), ConfigError> {
    item.validate().map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        field: e.field,
        problem: e.problem,
        suggestion: e.suggestion,
    })
}

/// Parses a declaration file and validates it, with errors naming `path`, the field and the problem.
pub fn parse_declaration<T: Declaration>(path: &Path, bytes: &[u8]) -> Result<T, ConfigError> {
    let item: T = parse_json_fields(bytes).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        field: e.field,
        problem: e.problem,
        suggestion: e.suggestion,
    })?;
    check(path, &item)?;
    let expected = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if item.id() != expected {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            field: "id".into(),
            problem: format!("is {:?} but the file is named {expected:?}.json", item.id()),
            suggestion: None,
        });
    }
    Ok(item)
}

/// Parses JSON into `T`, reporting the failing field's dotted path and, for an unknown field, the nearest
/// known name.
pub fn parse_json_fields<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FieldError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| FieldError::new("(file)", format!("is not valid JSON: {e}")))?;
    from_value_fields(value)
}

/// Like [`parse_json_fields`] for an already parsed value (merge patches, CLI input).
pub fn from_value_fields<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = err.into_inner().to_string();
        let join = |name: &str| {
            if path.is_empty() || path.ends_with(name) {
                if path.is_empty() {
                    name.to_string()
                } else {
                    path.clone()
                }
            } else {
                format!("{path}.{name}")
            }
        };
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let known = backticked(expected);
            let mut error = FieldError::new(join(name), "is not a known field");
            error.suggestion = nearest(name, &known);
            if error.suggestion.is_none() && !known.is_empty() {
                error.problem = format!("is not a known field (known: {})", known.join(", "));
            }
            error
        } else if let Some(rest) = message.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or_default();
            FieldError::new(join(name), "is required")
        } else {
            let field = if path.is_empty() {
                "(root)".into()
            } else {
                path
            };
            FieldError::new(field, without_values(&message))
        }
    })
}

/// serde's message without the value it quotes: `invalid type: string "sk-…", expected a string` becomes
/// `invalid type: string, expected a string`, an unknown variant is not repeated, and `expected struct Raw`
/// (a Rust type name) becomes `expected an object`. The field is named next to it; a value in a config file
/// may be a secret typed in the wrong place, and an error message is printed, logged and pasted into issues.
pub fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (kind, tail) = split_unexpected(rest);
            return format!("{prefix}{kind}{}", expected_in_words(tail));
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        for end in ["`, expected ", "`, there are no variants"] {
            if let Some(at) = rest.rfind(end) {
                return format!("unknown variant{}", &rest[at + 1..]);
            }
        }
        return "unknown variant".into();
    }
    message.to_string()
}

/// `string "…", expected X` → (`string`, `, expected X`); `integer `5`, expected X` → (`integer`, …).
fn split_unexpected(rest: &str) -> (&str, &str) {
    if let Some(quoted) = rest.strip_prefix("string \"") {
        // The value is written with Rust's Debug escapes: find its closing quote.
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return ("string", &quoted[i + 1..]),
                _ => {}
            }
        }
        return ("string", "");
    }
    if let Some((kind, after)) = rest.split_once(" `")
        && let Some((_, tail)) = after.split_once('`')
    {
        return (kind, tail);
    }
    match rest.split_once(", expected ") {
        Some((kind, _)) => (kind, &rest[kind.len()..]),
        None => (rest, ""),
    }
}

/// `, expected struct Raw` → `, expected an object`; anything else unchanged.
fn expected_in_words(tail: &str) -> String {
    match tail.strip_prefix(", expected struct ") {
        Some(name) if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
            ", expected an object".to_string()
        }
        _ => tail.to_string(),
    }
}

/// Names between backticks in serde's "expected one of `a`, `b`" text.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The known name closest to `name`, if it is close enough to be a plausible typo.
pub fn nearest(name: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone())
}

/// Ids are file names: letters, digits, `.`, `_`, `-`; starting with a letter or digit; at most 128 bytes.
pub fn validate_id(kind: &'static str, id: &str) -> Result<(), ConfigError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidId {
            kind,
            id: id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Widget {
        id: String,
        size: u32,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        concurrency_limit: u32,
    }

    impl Declaration for Widget {
        const KIND: &'static str = "widget";
        fn id(&self) -> &str {
            &self.id
        }
        fn validate(&self) -> Result<(), FieldError> {
            if self.size == 0 {
                return Err(FieldError::new("size", "must be at least 1"));
            }
            Ok(())
        }
    }

    #[test]
    fn round_trip_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = DeclarationDir::<Widget>::new(dir.path().join("widgets"));
        assert!(store.list().unwrap().is_empty());
        let w = Widget {
            id: "w1".into(),
            size: 3,
            inner: None,
        };
        store.put(&w).unwrap();
        assert_eq!(store.get("w1").unwrap(), w);
        std::fs::write(dir.path().join("widgets/broken.json"), b"{").unwrap();
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed[0].item.is_err(), "broken sorts first");
        assert!(listed[1].item.is_ok());
        assert!(store.remove("w1").unwrap());
        assert!(!store.remove("w1").unwrap());
        assert!(matches!(store.get("w1"), Err(ConfigError::NotFound { .. })));
    }

    #[test]
    fn errors_name_file_field_and_suggestion() {
        let dir = tempfile::tempdir().unwrap();
        let store = DeclarationDir::<Widget>::new(dir.path());
        std::fs::write(
            dir.path().join("w.json"),
            br#"{"id": "w", "size": 1, "inner": {"concurency_limit": 2}}"#,
        )
        .unwrap();
        let err = store.get("w").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("w.json"), "{text}");
        assert!(text.contains("inner.concurency_limit"), "{text}");
        assert!(text.contains("did you mean `concurrency_limit`"), "{text}");
        std::fs::write(dir.path().join("w.json"), br#"{"id": "w", "size": "big"}"#).unwrap();
        let text = store.get("w").unwrap_err().to_string();
        assert!(text.contains("`size`"), "{text}");
        std::fs::write(dir.path().join("w.json"), br#"{"id": "other", "size": 1}"#).unwrap();
        let text = store.get("w").unwrap_err().to_string();
        assert!(text.contains("`id`"), "{text}");
    }

    #[test]
    fn messages_never_quote_the_value() {
        let cases = [
            (
                r#"invalid type: string "sk-live-1", expected struct Raw"#,
                "invalid type: string, expected an object",
            ),
            (
                r#"invalid type: string "a\", expected x", expected a map"#,
                "invalid type: string, expected a map",
            ),
            (
                "invalid type: integer `424242`, expected a string",
                "invalid type: integer, expected a string",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "invalid value: integer, expected u32",
            ),
            (
                "invalid type: floating point `1.5`, expected a string",
                "invalid type: floating point, expected a string",
            ),
            (
                "invalid type: map, expected a string",
                "invalid type: map, expected a string",
            ),
            (
                "unknown variant `hunter2`, expected `a` or `b`",
                "unknown variant, expected `a` or `b`",
            ),
            (
                "unknown variant `x`, expected `y`, there are no variants`",
                "unknown variant, expected `y`, there are no variants`",
            ),
            ("must be between 1 and 65535", "must be between 1 and 65535"),
        ];
        for (serde, ours) in cases {
            assert_eq!(without_values(serde), ours, "{serde}");
        }
        // Through a real parse: the field is named, the value is not quoted.
        let error =
            parse_json_fields::<Widget>(br#"{"id": "w", "size": "sk-live-2"}"#).unwrap_err();
        assert_eq!(error.field, "size");
        assert!(!error.problem.contains("sk-live-2"), "{error:?}");
        let error = parse_json_fields::<Widget>(br#"{"id": 31337, "size": 1}"#).unwrap_err();
        assert_eq!(error.field, "id");
        assert!(!error.problem.contains("31337"), "{error:?}");
    }

    #[test]
    fn invalid_items_are_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = DeclarationDir::<Widget>::new(dir.path());
        store
            .put(&Widget {
                id: "w".into(),
                size: 1,
                inner: None,
            })
            .unwrap();
        let err = store
            .put(&Widget {
                id: "w".into(),
                size: 0,
                inner: None,
            })
            .unwrap_err();
        assert!(err.to_string().contains("must be at least 1"));
        assert_eq!(store.get("w").unwrap().size, 1);
        for bad in ["", "../x", "a/b", ".hidden", "x y"] {
            assert!(store.path(bad).is_err(), "{bad:?}");
        }
    }
}
