//! `homeboy component add|list|show|set|remove|status|changes`: component declarations
//! (`components/<id>.json`) and their checkouts' git state, through `homeboy_components::views` (the JSON the
//! daemon's `/components` routes return).

use std::path::PathBuf;

use clap::Subcommand;
use homeboy_client::components_view;
use homeboy_components::views;
use homeboy_config::Paths;
use homeboy_config::components::{self, Component};
use serde_json::{Value, json};

use crate::declaration_cmd::{self, component_error, print_written, with_patch};
use crate::output::{Format, print_json};
use crate::set_args::SetArgs;

#[derive(Subcommand)]
pub enum ComponentCommand {
    /// Declare a component: a local git checkout (tools are added with --json or `set`)
    Add {
        id: String,
        /// The checkout (made absolute)
        #[arg(long)]
        path: PathBuf,
        /// A JSON merge patch applied to {id, path}, e.g. '{"tools": {"lint": {"command": ["make", "lint"]}}}'
        #[arg(long, value_name = "PATCH")]
        json: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List components with their git status (a broken one shows its error)
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one component's declaration
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Change a component: --field path=value and/or --json with a JSON merge patch (validated first)
    Set(SetArgs),
    /// Remove a component's declaration (the checkout is not touched)
    Remove {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// The checkout's branch, head, upstream ahead/behind, dirty and untracked counts (needs git)
    Status {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Uncommitted files and the commits since the upstream, else the last tag (needs git)
    Changes {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(cmd: ComponentCommand) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    let store = components::store(&paths);
    match cmd {
        ComponentCommand::Add {
            id,
            path,
            json,
            format,
        } => {
            let path = std::path::absolute(&path)?;
            let doc = with_patch(json!({"id": id, "path": path}), json.as_deref())?;
            let component: Component = declaration_cmd::add(&store, doc)?;
            print_written(&component, "added", format)
        }
        ComponentCommand::List { format } => {
            let data = serde_json::to_value(views::components(&paths).map_err(component_error)?)?;
            print(&data, format, |d| {
                let list = d["components"].as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    "no components (add one with `homeboy component add <id> --path <checkout>`)"
                        .into()
                } else {
                    components_view::components_table(&list)
                }
            })
        }
        ComponentCommand::Show { id, format } => {
            let data =
                serde_json::to_value(views::component(&paths, &id).map_err(component_error)?)?;
            print(&data, format, |d| {
                serde_json::to_string_pretty(&d["component"]).unwrap_or_default()
            })
        }
        ComponentCommand::Set(args) => declaration_cmd::set(&store, &args),
        ComponentCommand::Remove { id, format } => declaration_cmd::remove(&store, &id, format),
        ComponentCommand::Status { id, format } => {
            let data = serde_json::to_value(
                views::component_status(&paths, &id).map_err(component_error)?,
            )?;
            print(&data, format, |d| {
                format!(
                    "{}: {}",
                    d["component_id"].as_str().unwrap_or(""),
                    components_view::status_phrase(&d["status"])
                )
            })
        }
        ComponentCommand::Changes { id, format } => {
            let data = serde_json::to_value(
                views::component_changes(&paths, &id).map_err(component_error)?,
            )?;
            print(&data, format, |d| {
                components_view::changes_text(&d["changes"])
            })
        }
    }
}

/// Prints `data` as JSON, or as `render` makes it readable.
pub fn print(
    data: &Value,
    format: Format,
    render: impl Fn(&Value) -> String,
) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(data),
        Format::Text => {
            println!("{}", render(data));
            Ok(())
        }
    }
}
