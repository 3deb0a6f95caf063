//! Components, rigs and stacks: `GET /components[/:id[/status|/changes]]`, `GET /rigs[/:id]`,
//! `POST /rigs/:id/check`, `GET /stacks[/:id]`, `POST /stacks/:id/status`. Each answer is the contract type
//! (`homeboy_api::components`) of the matching `homeboy_components::views` function, which the CLI prints
//! too. The POST routes take an empty body (`NoOptions`: unknown fields are refused).

use homeboy_api::components::NoOptions;
use homeboy_components::{ComponentError, views};
use serde_json::Value;

use super::domain_errors::component_error;
use crate::router::{Call, Cost, Router, data};
use crate::{Api, ApiError, Method};

pub(crate) fn register(router: &mut Router<Api>) {
    router.add(Method::Get, "/components", Cost::Blocking, list_components);
    router.add(
        Method::Get,
        "/components/:id",
        Cost::Blocking,
        show_component,
    );
    router.add(
        Method::Get,
        "/components/:id/status",
        Cost::Blocking,
        component_status,
    );
    router.add(
        Method::Get,
        "/components/:id/changes",
        Cost::Blocking,
        component_changes,
    );
    router.add(Method::Get, "/rigs", Cost::Blocking, list_rigs);
    router.add(Method::Get, "/rigs/:id", Cost::Blocking, show_rig);
    router.add(Method::Post, "/rigs/:id/check", Cost::Blocking, check_rig);
    router.add(Method::Get, "/stacks", Cost::Blocking, list_stacks);
    router.add(Method::Get, "/stacks/:id", Cost::Blocking, show_stack);
    router.add(
        Method::Post,
        "/stacks/:id/status",
        Cost::Blocking,
        stack_status,
    );
}

fn answer(result: Result<impl serde::Serialize, ComponentError>) -> Result<Value, ApiError> {
    data(result.map_err(component_error)?)
}

fn list_components(api: &Api, _: &Call<'_>) -> Result<Value, ApiError> {
    answer(views::components(&api.paths))
}

fn show_component(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    answer(views::component(&api.paths, call.param("id")))
}

fn component_status(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    answer(views::component_status(&api.paths, call.param("id")))
}

fn component_changes(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    answer(views::component_changes(&api.paths, call.param("id")))
}

fn list_rigs(api: &Api, _: &Call<'_>) -> Result<Value, ApiError> {
    answer(views::rigs(&api.paths))
}

fn show_rig(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    answer(views::rig(&api.paths, call.param("id")))
}

fn check_rig(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let NoOptions {} = call.req.json_body()?;
    answer(views::rig_check(&api.paths, call.param("id")))
}

fn list_stacks(api: &Api, _: &Call<'_>) -> Result<Value, ApiError> {
    answer(views::stacks(&api.paths))
}

fn show_stack(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    answer(views::stack(&api.paths, call.param("id")))
}

fn stack_status(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let NoOptions {} = call.req.json_body()?;
    answer(views::stack_status(&api.paths, call.param("id")))
}
