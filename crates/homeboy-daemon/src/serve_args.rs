//! The command-line flags of a serving daemon, shared by `homeboy daemon serve` and `homeboy-broker` so
//! both binaries stay wiring only and cannot drift apart.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use homeboy_config::Paths;
use homeboy_http::logging::LogFormat;
use homeboy_jobs::{PrunePolicy, StoreOptions};
use homeboy_service::RunnerAuth;

use crate::server::{ServeOptions, parse_listen_addr};

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeFlags {
    /// Loopback address to listen on; port 0 picks a free port (recorded in the state file). Default:
    /// 127.0.0.1:0 for `homeboy daemon serve`, 127.0.0.1:7421 for `homeboy-broker`
    #[arg(long, value_parser = parse_listen_addr)]
    pub addr: Option<SocketAddr>,
    /// Largest accepted request body in bytes
    #[arg(long, default_value_t = crate::http::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Also answer requests whose Host is NAME (for a broker behind a reverse proxy); repeatable
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// Accept /runner/* requests without a broker token (loopback-only daemons; refused with --allowed-host)
    #[arg(long)]
    pub allow_unauthenticated_loopback: bool,
    /// Events kept per job; older ones are dropped and counted
    #[arg(long, default_value_t = StoreOptions::default().event_retention)]
    pub event_retention: u64,
    /// Default attempts of a runner job whose lease keeps expiring
    #[arg(long, default_value_t = StoreOptions::default().max_attempts)]
    pub max_attempts: u32,
    /// Finished jobs kept (the newest)
    #[arg(long, default_value_t = PrunePolicy::default().max_terminal_jobs)]
    pub keep_finished_jobs: usize,
    /// Hours a finished job is kept
    #[arg(long, default_value_t = PrunePolicy::default().max_terminal_age_ms / 3_600_000)]
    pub keep_finished_hours: u64,
    /// Analysis jobs (POST /lint, /tools/:id/run, ...) run at once
    #[arg(long, default_value_t = crate::executor::DEFAULT_CONCURRENCY as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub analysis_concurrency: u16,
    /// Log file of a background daemon, recorded in the state file
    #[arg(long, hide = true)]
    pub log_path: Option<PathBuf>,
    /// Log line format on stderr: text or json (filter with HOMEBOY_LOG, e.g. `debug`)
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

impl ServeFlags {
    /// Installs the server log in the chosen format.
    pub fn init_logging(&self) {
        homeboy_http::logging::init(self.log_format);
    }

    /// The serve options these flags describe, listening on `default_addr` unless `--addr` was given.
    pub fn options(&self, paths: Paths, default_addr: SocketAddr) -> ServeOptions {
        let mut options = ServeOptions::new(paths);
        options.addr = self.addr.unwrap_or(default_addr);
        options.build_id = homeboy_build::build_id_from_env();
        options.http.max_body_bytes = self.max_body_bytes;
        options.http.allowed_hosts = self.allowed_hosts.clone();
        options.log_path = self.log_path.clone();
        options.runner_auth = if self.allow_unauthenticated_loopback {
            RunnerAuth::AllowUnauthenticatedLoopback
        } else {
            RunnerAuth::Required
        };
        options.jobs.event_retention = self.event_retention.max(1);
        options.jobs.max_attempts = self.max_attempts.max(1);
        options.analysis_concurrency = usize::from(self.analysis_concurrency);
        options.prune = PrunePolicy {
            max_terminal_jobs: self.keep_finished_jobs,
            max_terminal_age_ms: self.keep_finished_hours.saturating_mul(3_600_000),
        };
        options
    }
}
