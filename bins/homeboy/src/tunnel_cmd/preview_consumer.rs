//! `homeboy tunnel preview-consumer run`: clap arguments and wiring to `homeboy_tunnel::consumer`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Subcommand};
use homeboy_config::Paths;
use homeboy_tunnel::consumer::{self, PreviewSource, RunRequest};

use super::errors::{exit, failure};
use crate::output::{Format, print_json};

#[derive(Subcommand)]
pub enum PreviewConsumerCommand {
    /// Run the configured command (argv, no shell) with ${preview_public_url} and ${artifacts_dir} filled
    /// in, capture its output, extract public_result_url, and write the preview-consumer-run artifact
    #[command(group(ArgGroup::new("preview").required(true).args(["service_id", "preview_public_url"])))]
    Run {
        /// The consumer config file (JSON: id, command{program, args, cwd, artifacts_dir}, output{...})
        #[arg(long)]
        config: PathBuf,
        /// Use the public URL recorded by `tunnel service start <ID> --public-tunnel-public-url`
        #[arg(long, value_name = "ID")]
        service_id: Option<String>,
        /// Use this public preview URL
        #[arg(long, value_name = "URL")]
        preview_public_url: Option<String>,
        /// Seconds the command may run before its process group is terminated
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(cmd: PreviewConsumerCommand) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    let PreviewConsumerCommand::Run {
        config,
        service_id,
        preview_public_url,
        timeout_secs,
        format,
    } = cmd;
    let source = match (service_id, preview_public_url) {
        (Some(id), _) => PreviewSource::ServiceId(id),
        (None, Some(url)) => PreviewSource::PublicUrl(url),
        (None, None) => unreachable!("clap requires one of --service-id and --preview-public-url"),
    };
    let request = RunRequest {
        config_path: config,
        source,
        timeout: Duration::from_secs(timeout_secs),
    };
    let run = consumer::run(&paths, &request).map_err(exit)?;
    match format {
        Format::Json => print_json(&run)?,
        Format::Text => {
            println!(
                "preview consumer {}: {}",
                run.consumer_id,
                if run.timed_out {
                    format!("timed out after {timeout_secs} s")
                } else {
                    run.exit_code.map_or_else(
                        || "killed by a signal".to_string(),
                        |c| format!("exit code {c}"),
                    )
                }
            );
            println!("preview url: {}", run.preview_public_url);
            println!(
                "public result url: {}",
                run.public_result_url.as_deref().unwrap_or("(none found)")
            );
            println!("evidence: {}", run.artifact_path.display());
        }
    }
    if !run.succeeded() {
        return Err(failure(format!(
            "preview consumer {} failed (evidence: {})",
            run.consumer_id,
            run.artifact_path.display()
        )));
    }
    Ok(())
}
