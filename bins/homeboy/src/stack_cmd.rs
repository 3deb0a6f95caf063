//! `homeboy stack add|list|show|set|remove|status`: stack declarations (`stacks/<id>.json`) and their
//! entries' state against the target, through `homeboy_components::views` (the JSON of `/stacks`).

use clap::Subcommand;
use homeboy_client::components_view;
use homeboy_components::views;
use homeboy_config::Paths;
use homeboy_config::stacks::{self, Stack};
use serde_json::json;

use crate::component_cmd::print;
use crate::declaration_cmd::{self, component_error, print_written, with_patch};
use crate::output::Format;
use crate::set_args::SetArgs;

#[derive(Subcommand)]
pub enum StackCommand {
    /// Declare a stack: ordered branches of one component, from --base towards --target
    Add {
        id: String,
        #[arg(long)]
        component: String,
        #[arg(long)]
        base: String,
        #[arg(long)]
        target: String,
        /// An entry branch, titled with its name (repeatable, in order; commits and titles with --json)
        #[arg(long = "branch", value_name = "NAME")]
        branches: Vec<String>,
        /// A JSON merge patch applied to the declaration
        #[arg(long, value_name = "PATCH")]
        json: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List stacks
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one stack
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Change a stack: --field path=value and/or --json with a JSON merge patch (validated first)
    Set(SetArgs),
    /// Remove a stack's declaration
    Remove {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Each entry: applied to the target, pending, or would conflict (git merge-tree); ahead/behind.
    /// Changes nothing in the checkout
    Status {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(cmd: StackCommand) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    let store = stacks::store(&paths);
    match cmd {
        StackCommand::Add {
            id,
            component,
            base,
            target,
            branches,
            json,
            format,
        } => {
            let entries: Vec<_> = branches
                .iter()
                .map(|b| json!({"branch": b, "title": b}))
                .collect();
            let doc = json!({"id": id, "component": component, "base": base, "target": target,
                             "entries": entries});
            let stack: Stack = declaration_cmd::add(&store, with_patch(doc, json.as_deref())?)?;
            print_written(&stack, "added", format)
        }
        StackCommand::List { format } => {
            let data = serde_json::to_value(views::stacks(&paths).map_err(component_error)?)?;
            print(&data, format, |d| {
                let list = d["stacks"].as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    "no stacks".into()
                } else {
                    components_view::stacks_table(&list)
                }
            })
        }
        StackCommand::Show { id, format } => {
            let data = serde_json::to_value(views::stack(&paths, &id).map_err(component_error)?)?;
            print(&data, format, |d| {
                serde_json::to_string_pretty(&d["stack"]).unwrap_or_default()
            })
        }
        StackCommand::Set(args) => declaration_cmd::set(&store, &args),
        StackCommand::Remove { id, format } => declaration_cmd::remove(&store, &id, format),
        StackCommand::Status { id, format } => {
            let data =
                serde_json::to_value(views::stack_status(&paths, &id).map_err(component_error)?)?;
            print(&data, format, |d| {
                components_view::stack_status_text(&d["status"])
            })
        }
    }
}
