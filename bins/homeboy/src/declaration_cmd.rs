//! What `homeboy component|rig|stack` share: adding a declaration from a JSON document (refused if the id
//! exists), `set` through the dynamic set contract, `remove`, and the exit codes of their errors.

use homeboy_components::ComponentError;
use homeboy_config::declarations::from_value_fields;
use homeboy_config::dynamic_set::{self, Edit};
use homeboy_config::{ConfigError, Declaration, DeclarationDir};
use serde::Serialize;
use serde_json::Value;

use crate::output::{Format, print_json, usage_error};
use crate::server_cmd::config_error;
use crate::set_args::SetArgs;

/// `--json '<merge patch>'` applied to `base` (RFC 7386).
pub fn with_patch(mut base: Value, patch: Option<&str>) -> anyhow::Result<Value> {
    if let Some(patch) = patch {
        match Edit::parse_merge_patch(patch)
            .map_err(|e| usage_error(format!("`{}` {}", e.field, e.problem)))?
        {
            Edit::MergePatch(patch) => dynamic_set::merge_patch(&mut base, &patch),
            Edit::Field { .. } => unreachable!("parse_merge_patch returns a merge patch"),
        }
    }
    Ok(base)
}

/// Validates `doc` as a `T` and writes it; refused (exit 2) if invalid or if the id exists.
pub fn add<T: Declaration>(dir: &DeclarationDir<T>, doc: Value) -> anyhow::Result<T> {
    let item: T = from_value_fields(doc).map_err(|e| {
        usage_error(format!(
            "invalid {}: field `{}` {}{}",
            T::KIND,
            e.field,
            e.problem,
            e.suggestion
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default()
        ))
    })?;
    if dir.get_opt(item.id()).map_err(config_error)?.is_some() {
        return Err(usage_error(format!(
            "{} {} already exists; change it with `homeboy {} set {}`",
            T::KIND,
            item.id(),
            T::KIND,
            item.id()
        )));
    }
    dir.put(&item).map_err(config_error)?;
    Ok(item)
}

/// `set <id> --field ... --json ...`, printing the changed declaration.
pub fn set<T: Declaration + Serialize>(
    dir: &DeclarationDir<T>,
    args: &SetArgs,
) -> anyhow::Result<()> {
    let item = dynamic_set::update(dir, &args.id, &args.edits()?).map_err(config_error)?;
    print_written(&item, "updated", args.format)
}

/// `remove <id>`.
pub fn remove<T: Declaration>(
    dir: &DeclarationDir<T>,
    id: &str,
    format: Format,
) -> anyhow::Result<()> {
    if !dir.remove(id).map_err(config_error)? {
        return Err(ConfigError::NotFound {
            kind: T::KIND,
            id: id.to_string(),
        }
        .into());
    }
    match format {
        Format::Json => print_json(&serde_json::json!({"removed": id})),
        Format::Text => {
            println!("removed {} {id}", T::KIND);
            Ok(())
        }
    }
}

/// Prints a declaration as JSON, or a one-line confirmation.
pub fn print_written<T: Declaration + Serialize>(
    item: &T,
    verb: &str,
    format: Format,
) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(item),
        Format::Text => {
            println!("{verb} {} {}", T::KIND, item.id());
            Ok(())
        }
    }
}

/// Refused input (unknown ids, invalid declarations or requests) exits 2; anything else 1.
pub fn component_error(error: ComponentError) -> anyhow::Error {
    match error {
        ComponentError::Config(config) => config_error(config),
        e @ (ComponentError::NotFound { .. }
        | ComponentError::NoTool { .. }
        | ComponentError::Invalid { .. }
        | ComponentError::UnknownRevision { .. }) => usage_error(e.to_string()),
        other => other.into(),
    }
}
