//! `homeboy lint|test|audit|bench|build|review <component>`: run the component's declared tool in its
//! checkout and record the run, its artifacts and findings in the observation store.
//!
//! By default the tool runs in this process (`homeboy_client::local::run_here`), with its output on stderr;
//! with `--via-daemon` it runs as a job of the local daemon and the job's `result` event is printed. Both
//! produce the result through the same library function, so `--format json` prints the same JSON either way.
//! Exit code: 0 when the run passed, 1 when it failed or errored, 2 for a refused request.

use clap::Args;
use homeboy_client::local::{self, run_via_daemon};
use homeboy_client::runs_view;
use homeboy_components::command::{Control, Stream, Watcher};
use homeboy_components::tools::{self, Refusal};
use homeboy_config::Paths;
use homeboy_config::components::ToolKind;
use serde_json::Value;

use crate::daemon_cmd::runtime;
use crate::declaration_cmd::component_error;
use crate::output::{Exit, Format, print_json, usage_error};

#[derive(Args)]
pub struct AnalysisArgs {
    /// The component whose declared command runs
    component: String,
    /// Record the run as part of this rig (which must list the component)
    #[arg(long)]
    rig: Option<String>,
    /// Stop the tool after this many seconds (default: the component's timeout)
    #[arg(long)]
    timeout_secs: Option<u64>,
    /// A free-text label kept in the run's metadata
    #[arg(long)]
    label: Option<String>,
    /// Run it as a job of the local daemon instead of in this process
    #[arg(long)]
    via_daemon: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Prints the tool's output on stderr (text mode), so stdout keeps only the result.
struct Echo {
    quiet: bool,
}

impl Watcher for Echo {
    fn line(&mut self, _: Stream, text: &str) -> Control {
        if !self.quiet {
            eprintln!("{text}");
        }
        Control::Continue
    }
}

pub fn run(tool: ToolKind, args: AnalysisArgs) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    // The same validation as the HTTP routes: the arguments as a request body.
    let body = serde_json::json!({
        "component": args.component,
        "rig": args.rig,
        "timeout_secs": args.timeout_secs,
        "label": args.label,
    });
    let request = tools::parse_request(tool, &body).map_err(|refusal| match refusal {
        Refusal::Invalid { field, problem } => {
            usage_error(format!("--{}: {problem}", field.replace('_', "-")))
        }
        other => usage_error(format!("{other:?}")),
    })?;
    let quiet = args.format == Format::Json;
    let result = if args.via_daemon {
        let client = crate::daemon_cmd::local_client(&paths, args.format)?;
        let done = runtime()?.block_on(run_via_daemon(&client, &request, |_, line| {
            if !quiet {
                eprintln!("{line}");
            }
        }));
        let done = done.map_err(|e| match e {
            homeboy_client::ClientError::Api(api) if api.status() < 500 => usage_error(api.message),
            other => other.into(),
        })?;
        done.result.ok_or_else(|| Exit {
            code: 1,
            message: format!(
                "job {} ended without a result: {}",
                done.job_id,
                done.errors.join("; ")
            ),
        })?
    } else {
        local::run_here(&paths, request, &mut Echo { quiet })
            .map_err(component_error)?
            .result
    };
    match args.format {
        Format::Json => print_json(&result)?,
        Format::Text => println!("{}", runs_view::result_summary(&result)),
    }
    finish(&result)
}

fn finish(result: &Value) -> anyhow::Result<()> {
    if result["run"]["status"] == "pass" {
        return Ok(());
    }
    Err(Exit {
        code: 1,
        message: format!(
            "{} {}: {}",
            result["run"]["kind"].as_str().unwrap_or("run"),
            result["run"]["component_id"].as_str().unwrap_or(""),
            result["run"]["status"].as_str().unwrap_or("?")
        ),
    }
    .into())
}
