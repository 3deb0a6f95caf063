//! The JSON answers about components, rigs and stacks that both the HTTP routes and the CLI print: one
//! function per question, so `GET /components/api/status` and `homeboy component status api --format json`
//! cannot drift apart.
//!
//! Listings never fail because of one item: a declaration that does not parse is listed with its `error`,
//! and a component whose path is missing or not a git checkout is listed with a `status_error`
//! (`{code, message}`) instead of a `status`.

use std::path::Path;

use homeboy_config::Paths;
use homeboy_config::components::{self, Component};
use homeboy_config::rigs::{self, Rig};
use homeboy_config::stacks::{self, Stack};
use serde_json::{Value, json};

use crate::git::Checkout;
use crate::{ComponentError, load, rig_check, stack_status};

fn error_json(error: &ComponentError) -> Value {
    json!({"code": error.code(), "message": error.to_string()})
}

fn status_of(component: &Component) -> Result<Value, ComponentError> {
    let checkout = Checkout::open(&component.id, Path::new(&component.path))?;
    Ok(serde_json::to_value(checkout.status()?).unwrap_or_default())
}

/// `{components: [{id, path, tools, status | status_error} | {id, error}]}`.
pub fn components(paths: &Paths) -> Result<Value, ComponentError> {
    let listed = components::store(paths).list()?;
    let items: Vec<Value> = listed
        .into_iter()
        .map(|entry| match entry.item {
            Ok(component) => {
                let (status, status_error) = match status_of(&component) {
                    Ok(status) => (status, Value::Null),
                    Err(e) => (Value::Null, error_json(&e)),
                };
                json!({
                    "id": component.id,
                    "path": component.path,
                    "tools": component.tools.declared(),
                    "status": status,
                    "status_error": status_error,
                })
            }
            Err(e) => json!({"id": entry.id, "error": error_json(&ComponentError::Config(e))}),
        })
        .collect();
    Ok(json!({"components": items}))
}

/// `{component, tools}`.
pub fn component(paths: &Paths, id: &str) -> Result<Value, ComponentError> {
    let component: Component = load(&components::store(paths), id)?;
    let tools = component.tools.declared();
    Ok(json!({"component": component, "tools": tools}))
}

/// `{component_id, path, status}`.
pub fn component_status(paths: &Paths, id: &str) -> Result<Value, ComponentError> {
    let component: Component = load(&components::store(paths), id)?;
    let status = status_of(&component)?;
    Ok(json!({"component_id": component.id, "path": component.path, "status": status}))
}

/// `{component_id, path, changes}`.
pub fn component_changes(paths: &Paths, id: &str) -> Result<Value, ComponentError> {
    let component: Component = load(&components::store(paths), id)?;
    let checkout = Checkout::open(&component.id, Path::new(&component.path))?;
    let changes = checkout.changes()?;
    Ok(json!({"component_id": component.id, "path": component.path, "changes": changes}))
}

/// `{rigs: [{id, components, check_steps} | {id, error}]}`.
pub fn rigs(paths: &Paths) -> Result<Value, ComponentError> {
    let items: Vec<Value> = rigs::store(paths)
        .list()?
        .into_iter()
        .map(|entry| match entry.item {
            Ok(rig) => {
                json!({"id": rig.id, "components": rig.components, "check_steps": rig.check.len()})
            }
            Err(e) => json!({"id": entry.id, "error": error_json(&ComponentError::Config(e))}),
        })
        .collect();
    Ok(json!({"rigs": items}))
}

/// `{rig, components: [{id, declared}]}`.
pub fn rig(paths: &Paths, id: &str) -> Result<Value, ComponentError> {
    let rig: Rig = load(&rigs::store(paths), id)?;
    let store = components::store(paths);
    let members: Vec<Value> = rig
        .components
        .iter()
        .map(|c| json!({"id": c, "declared": matches!(store.get_opt(c), Ok(Some(_)))}))
        .collect();
    Ok(json!({"rig": rig, "components": members}))
}

/// `{check}`: runs the rig's check steps.
pub fn rig_check(paths: &Paths, id: &str) -> Result<Value, ComponentError> {
    let rig: Rig = load(&rigs::store(paths), id)?;
    Ok(json!({"check": rig_check::check(paths, &rig)}))
}

/// `{stacks: [{id, component, base, target, entries} | {id, error}]}`.
pub fn stacks(paths: &Paths) -> Result<Value, ComponentError> {
    let items: Vec<Value> = stacks::store(paths)
        .list()?
        .into_iter()
        .map(|entry| match entry.item {
            Ok(stack) => json!({
                "id": stack.id, "component": stack.component, "base": stack.base,
                "target": stack.target, "entries": stack.entries.len(),
            }),
            Err(e) => json!({"id": entry.id, "error": error_json(&ComponentError::Config(e))}),
        })
        .collect();
    Ok(json!({"stacks": items}))
}

/// `{stack}`.
pub fn stack(paths: &Paths, id: &str) -> Result<Value, ComponentError> {
    let stack: Stack = load(&stacks::store(paths), id)?;
    Ok(json!({"stack": stack}))
}

/// `{status}`: the stack's entries against its target.
pub fn stack_status(paths: &Paths, id: &str) -> Result<Value, ComponentError> {
    let stack: Stack = load(&stacks::store(paths), id)?;
    let component: Component = load(&components::store(paths), &stack.component)?;
    let checkout = Checkout::open(&component.id, Path::new(&component.path))?;
    Ok(json!({"status": stack_status::status(&checkout, &stack)?}))
}
