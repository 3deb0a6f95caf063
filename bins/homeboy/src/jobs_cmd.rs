//! `homeboy jobs list|show|events|cancel`: the daemon's jobs for people (tables) and machines (`--format
//! json`), through the same HTTP routes a dashboard uses.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use homeboy_api::jobs::{JobAnswer, JobDetail, JobEvent, JobEvents, JobList};
use homeboy_client::client::DaemonClient;
use homeboy_client::jobs_view;
use homeboy_config::Paths;
use serde_json::Value;

use crate::daemon_cmd::runtime;
use crate::output::{Format, print_json};

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args)]
pub struct Target {
    /// Daemon or broker URL (default: the local daemon from its state file, started when none runs)
    #[arg(long, value_name = "URL")]
    daemon: Option<String>,
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first
    List {
        #[command(flatten)]
        target: Target,
        /// Only jobs in this status (queued, running, succeeded, failed, cancelled)
        #[arg(long)]
        status: Option<String>,
        /// Only jobs of this operation
        #[arg(long)]
        operation: Option<String>,
        /// Only jobs claimed by or targeted at this runner
        #[arg(long)]
        runner: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// Continue after this cursor (printed as next_cursor)
        #[arg(long)]
        cursor: Option<u64>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one job
    Show {
        id: String,
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Print a job's events; --follow streams new ones until the job ends
    Events {
        id: String,
        #[command(flatten)]
        target: Target,
        /// Only events after this sequence number
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 1000)]
        limit: u64,
        #[arg(long)]
        follow: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Cancel a queued or running job (a running job's runner stops it at its next heartbeat)
    Cancel {
        id: String,
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

fn client(target: &Target, format: Format) -> anyhow::Result<DaemonClient> {
    match &target.daemon {
        Some(url) => Ok(DaemonClient::new(url.clone())?),
        None => crate::daemon_cmd::local_client(&Paths::from_env()?, format),
    }
}

pub(crate) fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The daemon's answer as the route's wire type, for text rendering (`--format json` prints the answer as
/// it came, so fields of a newer daemon are kept).
fn typed<T: serde::de::DeserializeOwned>(data: Value) -> anyhow::Result<T> {
    serde_json::from_value(data).context("the daemon's answer does not have the contract's shape")
}

fn now_ms() -> u64 {
    homeboy_config::clock::now_ms()
}

pub fn run(cmd: JobsCommand) -> anyhow::Result<()> {
    let rt = runtime()?;
    match cmd {
        JobsCommand::List {
            target,
            status,
            operation,
            runner,
            limit,
            cursor,
            format,
        } => {
            let mut query = vec![format!("limit={limit}")];
            for (key, value) in [
                ("status", status),
                ("operation", operation),
                ("runner", runner),
            ] {
                if let Some(value) = value {
                    query.push(format!("{key}={}", encode(&value)));
                }
            }
            if let Some(cursor) = cursor {
                query.push(format!("cursor={cursor}"));
            }
            let client = client(&target, format)?;
            let data = rt.block_on(client.get(&format!("/jobs?{}", query.join("&")), TIMEOUT))?;
            match format {
                Format::Json => print_json(&data),
                Format::Text => {
                    let page: JobList = typed(data)?;
                    if page.jobs.is_empty() {
                        println!("no jobs");
                    } else {
                        println!("{}", jobs_view::jobs_table(&page.jobs, now_ms()));
                    }
                    if let Some(next) = page.next_cursor {
                        println!("more: --cursor {next}");
                    }
                    Ok(())
                }
            }
        }
        JobsCommand::Show { id, target, format } => {
            let client = client(&target, format)?;
            let data = rt.block_on(client.get(&format!("/jobs/{}", encode(&id)), TIMEOUT))?;
            match format {
                Format::Json => print_json(&data),
                Format::Text => {
                    let detail: JobDetail = typed(data)?;
                    println!("{}", jobs_view::job_details(&detail.job, &detail.request));
                    Ok(())
                }
            }
        }
        JobsCommand::Events {
            id,
            target,
            after,
            limit,
            follow,
            format,
        } => {
            let client = client(&target, format)?;
            let print = |event: &JobEvent| match format {
                Format::Json => println!("{}", serde_json::to_string(event).unwrap_or_default()),
                Format::Text => println!("{}", jobs_view::event_line(event)),
            };
            if follow {
                return rt
                    .block_on(jobs_view::follow_events(&client, &id, after, print))
                    .context("following the job's events");
            }
            let path = format!("/jobs/{}/events?after={after}&limit={limit}", encode(&id));
            let data = rt.block_on(client.get(&path, TIMEOUT))?;
            if format == Format::Json {
                return print_json(&data);
            }
            let page: JobEvents = typed(data)?;
            for event in &page.events {
                print(event);
            }
            Ok(())
        }
        JobsCommand::Cancel { id, target, format } => {
            let client = client(&target, format)?;
            let data = rt.block_on(client.post(
                &format!("/jobs/{}/cancel", encode(&id)),
                &serde_json::json!({}),
                TIMEOUT,
            ))?;
            match format {
                Format::Json => print_json(&data),
                Format::Text => {
                    let answer: JobAnswer = typed(data)?;
                    println!("job {} {}", answer.job.id, answer.job.status.as_str());
                    Ok(())
                }
            }
        }
    }
}
