//! `runner.secret_env`: references to secrets (`{"env": "NAME"}` or `{"file": "~/.config/..."}`) and their
//! resolution at execution time, on the machine that runs the job.
//!
//! Configuration only ever holds the reference. [`resolve`] reads the value when a job's environment is
//! built; nothing here prints, logs or stores it, and every error names the variable and the reference, never
//! the value. A secret file that group or others may read is refused: the fix is `chmod 600`, not a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::error::SecretError;

/// The largest secret file read (secrets are tokens and keys, not documents).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// `{ "env": "NAME" }` or `{ "file": "~/.config/..." }` (serde: an object with exactly one of the keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SecretRef {
    /// An environment variable of the process that resolves it (the runner).
    Env { env: String },
    /// A file on the machine that resolves it; `~` is that user's home. Its content, trimmed, is the value.
    File { file: String },
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(
            deny_unknown_fields,
            expecting = "a reference {\"env\": \"VARIABLE\"} or {\"file\": \"PATH\"}, never the value itself"
        )]
        struct Raw {
            env: Option<String>,
            file: Option<String>,
        }
        match Raw::deserialize(deserializer)? {
            Raw {
                env: Some(env),
                file: None,
            } => Ok(SecretRef::Env { env }),
            Raw {
                env: None,
                file: Some(file),
            } => Ok(SecretRef::File { file }),
            _ => Err(D::Error::custom(
                "must be {\"env\": \"VARIABLE\"} or {\"file\": \"PATH\"} (exactly one of the two)",
            )),
        }
    }
}

impl fmt::Display for SecretRef {
    /// `env:NAME` or `file:PATH`: how status output shows a reference.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env { env } => write!(f, "env:{env}"),
            SecretRef::File { file } => write!(f, "file:{file}"),
        }
    }
}

impl SecretRef {
    /// The reference as the contract's server view shows it.
    pub fn view(&self) -> homeboy_api::servers::SecretRefView {
        use homeboy_api::servers::SecretRefView;
        match self {
            SecretRef::Env { env } => SecretRefView::Env { env: env.clone() },
            SecretRef::File { file } => SecretRefView::File { file: file.clone() },
        }
    }

    /// Checks the reference's own shape (not whether the secret exists: that is only known at execution
    /// time, on the runner). Returns the problem in words.
    pub fn shape_problem(&self) -> Option<String> {
        match self {
            // The text is not quoted: a secret typed in the wrong place must not be printed back.
            SecretRef::Env { env } if !is_env_name(env) => {
                Some("env is not an environment variable name".into())
            }
            SecretRef::File { file } if !(file.starts_with('/') || file.starts_with("~/")) => {
                Some("file must be an absolute path or start with ~/".into())
            }
            _ => None,
        }
    }
}

/// Resolves one reference at execution time (env of this process, or the file trimmed; `~` expands to $HOME;
/// a group/world-readable file is refused). Errors name the variable and the reference, never the value.
pub fn resolve(name: &str, reference: &SecretRef) -> Result<String, SecretError> {
    match reference {
        SecretRef::Env { env } => resolve_env(name, env),
        SecretRef::File { file } => resolve_file(name, file),
    }
}

/// Resolves every entry of a `runner.secret_env` map, in name order.
pub fn resolve_all(
    refs: &BTreeMap<String, SecretRef>,
) -> Result<Vec<(String, String)>, SecretError> {
    refs.iter()
        .map(|(name, reference)| Ok((name.clone(), resolve(name, reference)?)))
        .collect()
}

fn resolve_env(name: &str, env: &str) -> Result<String, SecretError> {
    match std::env::var(env) {
        Ok(value) if !value.is_empty() => Ok(value),
        Ok(_) | Err(std::env::VarError::NotPresent) => Err(SecretError::MissingEnv {
            name: name.to_string(),
            env: env.to_string(),
        }),
        Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::NotUnicodeEnv {
            name: name.to_string(),
            env: env.to_string(),
        }),
    }
}

fn resolve_file(name: &str, file: &str) -> Result<String, SecretError> {
    let path = expand_home(file).ok_or_else(|| SecretError::NoHome {
        name: name.to_string(),
        file: file.to_string(),
    })?;
    let bad = |problem: &'static str| SecretError::BadFile {
        name: name.to_string(),
        file: file.to_string(),
        path: path.clone(),
        problem,
    };
    let unreadable = |source: std::io::Error| SecretError::UnreadableFile {
        name: name.to_string(),
        file: file.to_string(),
        path: path.clone(),
        source,
    };
    // Permissions are checked on the opened file, so a swap between check and read changes nothing.
    let handle = std::fs::File::open(&path).map_err(unreadable)?;
    let metadata = handle.metadata().map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(bad("is not a regular file"));
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::PermissiveFile {
            name: name.to_string(),
            file: file.to_string(),
            path: path.clone(),
            mode,
        });
    }
    if metadata.len() > MAX_SECRET_FILE_BYTES {
        return Err(bad("is larger than 64 KiB"));
    }
    let mut bytes = Vec::new();
    handle
        .take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    let text = String::from_utf8(bytes).map_err(|_| bad("is not UTF-8 text"))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(bad("is empty"));
    }
    Ok(value.to_string())
}

/// `~/x` → `$HOME/x`; other paths unchanged; `None` when `~` is used and HOME is unset.
fn expand_home(file: &str) -> Option<PathBuf> {
    match file.strip_prefix("~/") {
        Some(rest) => {
            let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
            Some(PathBuf::from(home).join(rest))
        }
        None if file == "~" => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from),
        None => Some(PathBuf::from(file)),
    }
}

/// Whether `name` can be an environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declarations::{FieldError, from_value_fields};
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    const VALUE: &str = "hunter2-very-secret-value";

    fn secret_file(dir: &std::path::Path, mode: u32, content: &str) -> String {
        let path = dir.join("token");
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn references_parse_and_print() {
        let env: SecretRef = from_value_fields(json!({"env": "OPENAI_API_KEY"})).unwrap();
        assert_eq!(
            env,
            SecretRef::Env {
                env: "OPENAI_API_KEY".into()
            }
        );
        assert_eq!(env.to_string(), "env:OPENAI_API_KEY");
        assert_eq!(
            serde_json::to_value(&env).unwrap(),
            json!({"env": "OPENAI_API_KEY"})
        );
        let file: SecretRef = from_value_fields(json!({"file": "~/.config/t"})).unwrap();
        assert_eq!(
            serde_json::to_value(&file).unwrap(),
            json!({"file": "~/.config/t"})
        );
        let both: Result<SecretRef, FieldError> =
            from_value_fields(json!({"env": "A", "file": "/b"}));
        assert!(both.unwrap_err().problem.contains("exactly one"));
        let none: Result<SecretRef, FieldError> = from_value_fields(json!({}));
        assert!(none.unwrap_err().problem.contains("exactly one"));
        let typo: FieldError = from_value_fields::<SecretRef>(json!({"fiel": "/b"})).unwrap_err();
        assert_eq!(typo.suggestion.as_deref(), Some("file"));
        assert!(
            SecretRef::Env { env: "1X".into() }
                .shape_problem()
                .is_some()
        );
        assert!(
            SecretRef::File {
                file: "relative".into()
            }
            .shape_problem()
            .is_some()
        );
    }

    #[test]
    fn env_reference_resolves_from_this_process() {
        // `set_var` is unsafe (and unsafe code is denied), so this test reads variables the test process
        // has (PATH) or surely lacks; the end-to-end tests set a real secret in a child's environment.
        let var = "HOMEBOY_TEST_SECRET_ENV_NEVER_SET";
        let missing = resolve(
            "SERVICE_TOKEN",
            &SecretRef::Env {
                env: var.to_string(),
            },
        )
        .unwrap_err();
        let text = missing.to_string();
        assert!(
            text.contains("SERVICE_TOKEN") && text.contains(var),
            "{text}"
        );
        let path = resolve(
            "SOME_PATH",
            &SecretRef::Env {
                env: "PATH".to_string(),
            },
        )
        .unwrap();
        assert_eq!(path, std::env::var("PATH").unwrap());
    }

    #[test]
    fn file_reference_is_trimmed_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = secret_file(dir.path(), 0o600, &format!("  {VALUE}\n"));
        let reference = SecretRef::File { file: file.clone() };
        assert_eq!(resolve("SERVICE_TOKEN", &reference).unwrap(), VALUE);

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = resolve("SERVICE_TOKEN", &reference).unwrap_err();
        assert!(matches!(
            err,
            SecretError::PermissiveFile { mode: 0o640, .. }
        ));
        let text = err.to_string();
        assert!(
            text.contains("SERVICE_TOKEN") && text.contains(&file),
            "{text}"
        );
        assert!(text.contains("chmod 600"), "{text}");
        assert!(!text.contains(VALUE), "{text}");

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert!(matches!(
            resolve("SERVICE_TOKEN", &reference),
            Err(SecretError::PermissiveFile { .. })
        ));
    }

    #[test]
    fn file_problems_never_show_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let missing = SecretRef::File {
            file: dir.path().join("absent").to_string_lossy().into_owned(),
        };
        let err = resolve("API_KEY", &missing).unwrap_err();
        assert!(matches!(err, SecretError::UnreadableFile { .. }), "{err}");
        assert!(err.to_string().contains("API_KEY"));

        let empty = secret_file(dir.path(), 0o600, " \n");
        let err = resolve("API_KEY", &SecretRef::File { file: empty }).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");

        let binary = dir.path().join("bin");
        std::fs::write(&binary, [0xff, 0xfe, b'x']).unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = resolve(
            "API_KEY",
            &SecretRef::File {
                file: binary.to_string_lossy().into_owned(),
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");

        let err = resolve(
            "API_KEY",
            &SecretRef::File {
                file: dir.path().to_string_lossy().into_owned(),
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                SecretError::BadFile { .. } | SecretError::PermissiveFile { .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn resolve_all_goes_in_name_order_and_stops_at_the_first_missing() {
        let dir = tempfile::tempdir().unwrap();
        let file = secret_file(dir.path(), 0o400, VALUE);
        let mut refs = BTreeMap::new();
        refs.insert("B_TOKEN".to_string(), SecretRef::File { file });
        refs.insert(
            "A_PATH".to_string(),
            SecretRef::Env {
                env: "PATH".to_string(),
            },
        );
        let resolved = resolve_all(&refs).unwrap();
        let names: Vec<&str> = resolved.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["A_PATH", "B_TOKEN"]);
        assert_eq!(resolved[1].1, VALUE);
        refs.insert(
            "C_MISSING".to_string(),
            SecretRef::Env {
                env: "HOMEBOY_TEST_NOT_SET_ANYWHERE".to_string(),
            },
        );
        let err = resolve_all(&refs).unwrap_err();
        assert!(err.to_string().contains("C_MISSING"), "{err}");
        assert!(!err.to_string().contains(VALUE));
    }

    #[test]
    fn home_expansion() {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        if let Some(home) = home {
            assert_eq!(expand_home("~/a/b"), Some(home.join("a/b")));
        }
        assert_eq!(expand_home("/abs"), Some(PathBuf::from("/abs")));
    }
}
