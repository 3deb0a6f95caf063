//! `homeboy rig add|list|show|set|remove|check`: rig declarations (`rigs/<id>.json`) and their check steps,
//! through `homeboy_components::views` (the JSON the daemon's `/rigs` routes return).

use clap::Subcommand;
use homeboy_client::components_view;
use homeboy_components::views;
use homeboy_config::Paths;
use homeboy_config::rigs::{self, Rig};
use serde_json::json;

use crate::component_cmd::print;
use crate::declaration_cmd::{self, component_error, print_written, with_patch};
use crate::output::{Exit, Format};
use crate::set_args::SetArgs;

#[derive(Subcommand)]
pub enum RigCommand {
    /// Declare a rig: components and check steps (steps with --json or `set`)
    Add {
        id: String,
        /// A component of the rig (repeatable)
        #[arg(long = "component", value_name = "ID")]
        components: Vec<String>,
        /// A JSON merge patch applied to {id, components}, e.g. '{"check": [{"tcp_open": "127.0.0.1:5432"}]}'
        #[arg(long, value_name = "PATCH")]
        json: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List rigs
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one rig (and whether its components are declared)
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Change a rig: --field path=value and/or --json with a JSON merge patch (validated first)
    Set(SetArgs),
    /// Remove a rig's declaration
    Remove {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Run the rig's check steps (each with its timeout); exits 1 if any fails
    Check {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(cmd: RigCommand) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    let store = rigs::store(&paths);
    match cmd {
        RigCommand::Add {
            id,
            components,
            json,
            format,
        } => {
            let doc = with_patch(json!({"id": id, "components": components}), json.as_deref())?;
            let rig: Rig = declaration_cmd::add(&store, doc)?;
            print_written(&rig, "added", format)
        }
        RigCommand::List { format } => {
            let data = serde_json::to_value(views::rigs(&paths).map_err(component_error)?)?;
            print(&data, format, |d| {
                let list = d["rigs"].as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    "no rigs (add one with `homeboy rig add <id> --component <id>`)".into()
                } else {
                    components_view::rigs_table(&list)
                }
            })
        }
        RigCommand::Show { id, format } => {
            let data = serde_json::to_value(views::rig(&paths, &id).map_err(component_error)?)?;
            print(&data, format, |d| {
                serde_json::to_string_pretty(&d["rig"]).unwrap_or_default()
            })
        }
        RigCommand::Set(args) => declaration_cmd::set(&store, &args),
        RigCommand::Remove { id, format } => declaration_cmd::remove(&store, &id, format),
        RigCommand::Check { id, format } => {
            let data =
                serde_json::to_value(views::rig_check(&paths, &id).map_err(component_error)?)?;
            print(&data, format, |d| {
                components_view::rig_check_text(&d["check"])
            })?;
            if data["check"]["passed"] == true {
                Ok(())
            } else {
                Err(Exit {
                    code: 1,
                    message: format!("rig {id}: a check step failed"),
                }
                .into())
            }
        }
    }
}
