//! `homeboy runs list|show|artifacts|findings|compare`: the observation store read through the
//! transport-free handler on this machine (`homeboy_client::local::LocalApi`), so `--format json` prints
//! exactly what the daemon's `/runs` routes answer; `compare` is the library comparison of two runs.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use homeboy_api::{ApiError, ErrorKind};
use homeboy_client::local::LocalApi;
use homeboy_client::runs_view;
use homeboy_config::Paths;
use homeboy_observations::ObservationError;
use homeboy_observations::compare::{RunEvidence, compare};
use homeboy_observations::owner::annotate;

use crate::component_cmd::print;
use crate::jobs_cmd::encode;
use crate::output::{Exit, Format, print_json, usage_error};

#[derive(Subcommand)]
pub enum RunsCommand {
    /// List recorded runs, newest first
    List {
        /// Only runs of this kind (lint, test, audit, bench, build, review)
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        component: Option<String>,
        #[arg(long)]
        rig: Option<String>,
        /// Only runs in this status (running, pass, fail, error, skipped, stale)
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// Continue after this run id (printed as next_cursor)
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one run (a running run whose owner is gone says so)
    Show {
        /// The run id
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List a run's artifacts, or fetch one's bytes with --fetch
    Artifacts {
        /// The run id
        id: String,
        /// Write this artifact's bytes (to --output, else standard output)
        #[arg(long, value_name = "ARTIFACT_ID")]
        fetch: Option<String>,
        /// Where --fetch writes ('-' for standard output)
        #[arg(long, requires = "fetch")]
        output: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List a run's findings
    Findings {
        /// The run id
        id: String,
        #[arg(long)]
        tool: Option<String>,
        #[arg(long)]
        file: Option<String>,
        #[arg(long)]
        fingerprint: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Continue after this finding sequence (printed as next_cursor)
        #[arg(long)]
        cursor: Option<u64>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Compare run A (before) with run B (after): status change, new/fixed/unchanged findings by
    /// fingerprint, and benchmark metric deltas
    Compare {
        /// The earlier run id
        a: String,
        /// The later run id
        b: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Refused input (a bad filter) exits 2; anything else (an unknown run) 1.
fn api_error(error: ApiError) -> anyhow::Error {
    if error.kind == ErrorKind::Validation {
        usage_error(error.message)
    } else {
        Exit {
            code: 1,
            message: error.message,
        }
        .into()
    }
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    parts.join("&")
}

pub fn run(cmd: RunsCommand) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    let local = LocalApi::open(&paths)?;
    let get = |path: &str| local.get(path).map_err(api_error);
    match cmd {
        RunsCommand::List {
            kind,
            component,
            rig,
            status,
            limit,
            cursor,
            format,
        } => {
            let q = query(&[
                ("kind", kind),
                ("component", component),
                ("rig", rig),
                ("status", status),
                ("limit", Some(limit.to_string())),
                ("cursor", cursor),
            ]);
            let data = get(&format!("/runs?{q}"))?;
            print(&data, format, |d| {
                let runs = d["runs"].as_array().cloned().unwrap_or_default();
                let mut out = if runs.is_empty() {
                    "no runs".to_string()
                } else {
                    runs_view::runs_table(&runs)
                };
                if let Some(next) = d["next_cursor"].as_str() {
                    out.push_str(&format!("\nmore: --cursor {next}"));
                }
                out
            })
        }
        RunsCommand::Show { id, format } => {
            let data = get(&format!("/runs/{}", encode(&id)))?;
            print(&data, format, |d| runs_view::run_details(&d["run"]))
        }
        RunsCommand::Artifacts {
            id,
            fetch: Some(artifact_id),
            output,
            format,
        } => {
            let (_, mut opened) = local.open_artifact(&id, &artifact_id).map_err(api_error)?;
            let Some(path) = output.filter(|p| p.as_os_str() != "-") else {
                std::io::copy(&mut opened.file, &mut std::io::stdout().lock())?;
                return Ok(());
            };
            // `0600`: an artifact is job output.
            let mut out = homeboy_config::private_file::open(
                homeboy_config::private_file::options()
                    .write(true)
                    .create(true)
                    .truncate(true),
                &path,
            )
            .with_context(|| format!("create {}", path.display()))?;
            let bytes = std::io::copy(&mut opened.file, &mut out)?;
            out.flush()?;
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "run_id": id, "artifact_id": artifact_id, "output": path, "bytes": bytes,
                })),
                Format::Text => {
                    println!("wrote {bytes} bytes to {}", path.display());
                    Ok(())
                }
            }
        }
        RunsCommand::Artifacts { id, format, .. } => {
            let data = get(&format!("/runs/{}/artifacts", encode(&id)))?;
            print(&data, format, |d| {
                let list = d["artifacts"].as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    "no artifacts".into()
                } else {
                    runs_view::artifacts_table(&list)
                }
            })
        }
        RunsCommand::Findings {
            id,
            tool,
            file,
            fingerprint,
            limit,
            cursor,
            format,
        } => {
            let q = query(&[
                ("tool", tool),
                ("file", file),
                ("fingerprint", fingerprint),
                ("limit", Some(limit.to_string())),
                ("cursor", cursor.map(|c| c.to_string())),
            ]);
            let data = get(&format!("/runs/{}/findings?{q}", encode(&id)))?;
            print(&data, format, |d| {
                let list = d["findings"].as_array().cloned().unwrap_or_default();
                let mut out = if list.is_empty() {
                    "no findings".to_string()
                } else {
                    runs_view::findings_table(&list)
                };
                if let Some(next) = d["next_cursor"].as_u64() {
                    out.push_str(&format!("\nmore: --cursor {next}"));
                }
                out
            })
        }
        RunsCommand::Compare { a, b, format } => {
            let a = evidence(&local, &a)?;
            let b = evidence(&local, &b)?;
            let comparison = serde_json::to_value(compare(&a, &b))?;
            print(&comparison, format, runs_view::comparison_text)
        }
    }
}

/// A run and all its findings, read from the store.
fn evidence(local: &LocalApi, id: &str) -> anyhow::Result<RunEvidence> {
    let store = local.store();
    let mut run = store.run(id)?.ok_or_else(|| Exit {
        code: 1,
        message: ObservationError::NotFound {
            kind: "run",
            id: id.to_string(),
        }
        .to_string(),
    })?;
    annotate(&mut run);
    let findings = store.all_findings(id)?;
    Ok(RunEvidence { run, findings })
}
