//! The answers (the contract's `homeboy_api::components` types) about components, rigs and stacks that both the HTTP routes and the CLI print: one
//! function per question, so `GET /components/api/status` and `homeboy component status api --format json`
//! cannot drift apart.
//!
//! Listings never fail because of one item: a declaration that does not parse is listed with its `error`,
//! and a component whose path is missing or not a git checkout is listed with a `status_error`
//! (`{code, message}`) instead of a `status`.

use std::path::Path;

use homeboy_api::components::{
    BrokenDeclaration, ComponentAnswer, ComponentChangesAnswer, ComponentList, ComponentListItem,
    ComponentStatusAnswer, ComponentSummary, GitStatus, ItemError, RigAnswer, RigCheckAnswer,
    RigList, RigListItem, RigMember, RigSummary, StackAnswer, StackList, StackListItem,
    StackStatusAnswer, StackSummary,
};
use homeboy_config::Paths;
use homeboy_config::components::{self, Component};
use homeboy_config::rigs::{self, Rig};
use homeboy_config::stacks::{self, Stack};

use crate::git::Checkout;
use crate::{ComponentError, load, rig_check, stack_status};

fn item_error(error: &ComponentError) -> ItemError {
    ItemError {
        code: error.code().to_string(),
        message: error.to_string(),
    }
}

fn broken(id: String, error: homeboy_config::ConfigError) -> BrokenDeclaration {
    BrokenDeclaration {
        id,
        error: item_error(&ComponentError::Config(error)),
    }
}

fn status_of(component: &Component) -> Result<GitStatus, ComponentError> {
    Checkout::open(&component.id, Path::new(&component.path))?.status()
}

/// `{components: [{id, path, tools, status | status_error} | {id, error}]}`.
pub fn components(paths: &Paths) -> Result<ComponentList, ComponentError> {
    let listed = components::store(paths).list()?;
    let components = listed
        .into_iter()
        .map(|entry| match entry.item {
            Ok(component) => {
                let (status, status_error) = match status_of(&component) {
                    Ok(status) => (Some(status), None),
                    Err(e) => (None, Some(item_error(&e))),
                };
                ComponentListItem::Component(ComponentSummary {
                    tools: component.tools.declared(),
                    id: component.id,
                    path: component.path,
                    status,
                    status_error,
                })
            }
            Err(e) => ComponentListItem::Broken(broken(entry.id, e)),
        })
        .collect();
    Ok(ComponentList { components })
}

/// `{component, tools}`.
pub fn component(paths: &Paths, id: &str) -> Result<ComponentAnswer, ComponentError> {
    let component: Component = load(&components::store(paths), id)?;
    let tools = component.tools.declared();
    Ok(ComponentAnswer { component, tools })
}

/// `{component_id, path, status}`.
pub fn component_status(paths: &Paths, id: &str) -> Result<ComponentStatusAnswer, ComponentError> {
    let component: Component = load(&components::store(paths), id)?;
    let status = status_of(&component)?;
    Ok(ComponentStatusAnswer {
        component_id: component.id,
        path: component.path,
        status,
    })
}

/// `{component_id, path, changes}`.
pub fn component_changes(
    paths: &Paths,
    id: &str,
) -> Result<ComponentChangesAnswer, ComponentError> {
    let component: Component = load(&components::store(paths), id)?;
    let checkout = Checkout::open(&component.id, Path::new(&component.path))?;
    let changes = checkout.changes()?;
    Ok(ComponentChangesAnswer {
        component_id: component.id,
        path: component.path,
        changes,
    })
}

/// `{rigs: [{id, components, check_steps} | {id, error}]}`.
pub fn rigs(paths: &Paths) -> Result<RigList, ComponentError> {
    let rigs = rigs::store(paths)
        .list()?
        .into_iter()
        .map(|entry| match entry.item {
            Ok(rig) => RigListItem::Rig(RigSummary {
                check_steps: rig.check.len(),
                id: rig.id,
                components: rig.components,
            }),
            Err(e) => RigListItem::Broken(broken(entry.id, e)),
        })
        .collect();
    Ok(RigList { rigs })
}

/// `{rig, components: [{id, declared}]}`.
pub fn rig(paths: &Paths, id: &str) -> Result<RigAnswer, ComponentError> {
    let rig: Rig = load(&rigs::store(paths), id)?;
    let store = components::store(paths);
    let components = rig
        .components
        .iter()
        .map(|c| RigMember {
            id: c.clone(),
            declared: matches!(store.get_opt(c), Ok(Some(_))),
        })
        .collect();
    Ok(RigAnswer { rig, components })
}

/// `{check}`: runs the rig's check steps.
pub fn rig_check(paths: &Paths, id: &str) -> Result<RigCheckAnswer, ComponentError> {
    let rig: Rig = load(&rigs::store(paths), id)?;
    Ok(RigCheckAnswer {
        check: rig_check::check(paths, &rig),
    })
}

/// `{stacks: [{id, component, base, target, entries} | {id, error}]}`.
pub fn stacks(paths: &Paths) -> Result<StackList, ComponentError> {
    let stacks = stacks::store(paths)
        .list()?
        .into_iter()
        .map(|entry| match entry.item {
            Ok(stack) => StackListItem::Stack(StackSummary {
                entries: stack.entries.len(),
                id: stack.id,
                component: stack.component,
                base: stack.base,
                target: stack.target,
            }),
            Err(e) => StackListItem::Broken(broken(entry.id, e)),
        })
        .collect();
    Ok(StackList { stacks })
}

/// `{stack}`.
pub fn stack(paths: &Paths, id: &str) -> Result<StackAnswer, ComponentError> {
    let stack: Stack = load(&stacks::store(paths), id)?;
    Ok(StackAnswer { stack })
}

/// `{status}`: the stack's entries against its target.
pub fn stack_status(paths: &Paths, id: &str) -> Result<StackStatusAnswer, ComponentError> {
    let stack: Stack = load(&stacks::store(paths), id)?;
    let component: Component = load(&components::store(paths), &stack.component)?;
    let checkout = Checkout::open(&component.id, Path::new(&component.path))?;
    Ok(StackStatusAnswer {
        status: stack_status::status(&checkout, &stack)?,
    })
}
