//! `homeboy runner enable <server_id>`: adds the runner capability (defaults for everything not given) or
//! updates the given settings of an existing one, through the validated merge of `servers::enable_runner`.

use clap::Args;
use homeboy_config::Paths;
use homeboy_config::servers;
use serde_json::{Map, Value};

use crate::output::{Format, print_json};
use crate::server_cmd::config_error;

#[derive(Args)]
pub struct EnableArgs {
    /// Server id (also the runner id)
    id: String,
    /// Where jobs get their working directories on the runner (default ~/homeboy-runner)
    #[arg(long)]
    workspace_root: Option<String>,
    /// The homeboy binary on the runner (default: `homeboy` from PATH)
    #[arg(long)]
    homeboy_path: Option<String>,
    /// How many jobs run at once (default 1)
    #[arg(long)]
    concurrency_limit: Option<u32>,
    /// Whether the runner keeps a homeboy daemon running (default false)
    #[arg(long)]
    daemon: Option<bool>,
    /// How artifacts produced on the runner are kept (default copy)
    #[arg(long)]
    artifact_policy: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: EnableArgs) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    let mut settings = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            settings.insert(key.to_string(), value);
        }
    };
    put("workspace_root", args.workspace_root.map(Value::from));
    put("homeboy_path", args.homeboy_path.map(Value::from));
    put("concurrency_limit", args.concurrency_limit.map(Value::from));
    put("daemon", args.daemon.map(Value::from));
    put("artifact_policy", args.artifact_policy.map(Value::from));
    let (server, became_runner) =
        servers::enable_runner(&servers::store(&paths), &args.id, settings)
            .map_err(config_error)?;
    let status = servers::runner_status(&server, false);
    match args.format {
        Format::Json => print_json(&status),
        Format::Text => {
            if became_runner {
                println!("runner enabled on server {}", server.id);
            } else {
                println!("runner settings of server {} updated", server.id);
            }
            if let Some(status) = &status {
                super::status::print_text(status);
            }
            Ok(())
        }
    }
}
