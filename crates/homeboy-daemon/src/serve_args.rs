//! The command-line flags of a serving daemon, shared by `homeboy daemon serve` and `homeboy-broker` so
//! both binaries stay wiring only and cannot drift apart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use homeboy_config::Paths;
use homeboy_http::logging::{self, LogCap, LogFormat};
use homeboy_jobs::{PrunePolicy, StoreOptions};
use homeboy_service::RunnerAuth;

use crate::server::{ServeOptions, StoreChoice, parse_listen_addr};
use homeboy_config::broker_auth::{BrokerAuthFile, CredentialStore};
use homeboy_jobs::JobError;
use homeboy_jobs_pg::{Dsn, PgJobStore, PgOptions};
use std::sync::Arc;

/// Where the job queue lives: the flags `serve`, `homeboy-broker migrate` and `homeboy runner broker`
/// share.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreFlags {
    /// Job store: a PostgreSQL connection string (postgres://USER@HOST:PORT/DBNAME) shared by several
    /// brokers; runner credentials and sessions live there too. Default: the embedded store in the data
    /// dir. Put the password in --store-password-file, PGPASSWORD or ~/.pgpass, not in the string (one
    /// there is accepted, and never shown)
    #[arg(
        long = "store",
        env = "HOMEBOY_JOB_STORE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// File holding the job store's database password (mode 0600)
    #[arg(long, value_name = "PATH")]
    pub store_password_file: Option<PathBuf>,
    /// Do not apply pending schema migrations at start: refuse an out-of-date schema instead (run
    /// `homeboy-broker migrate` first)
    #[arg(long)]
    pub no_migrate: bool,
}

impl StoreFlags {
    /// The PostgreSQL options these flags name (`None`: the embedded store). A bad connection string is
    /// an `Invalid` error naming the field `store`, never quoting it.
    pub fn pg_options(&self) -> Result<Option<PgOptions>, JobError> {
        let Some(url) = self.store.as_deref().filter(|u| !u.trim().is_empty()) else {
            if self.store_password_file.is_some() {
                return Err(JobError::Invalid {
                    field: "store_password_file".into(),
                    problem: "is only meaningful with --store postgres://...".into(),
                });
            }
            return Ok(None);
        };
        let mut options = PgOptions::new(Dsn::parse(url)?);
        options.password_file = self.store_password_file.clone();
        options.migrate = !self.no_migrate;
        Ok(Some(options))
    }

    /// Where runner credentials live for these flags: the database, or `<config>/broker_auth.json`.
    pub fn credentials(&self, paths: &Paths) -> Result<Arc<dyn CredentialStore>, JobError> {
        Ok(match self.pg_options()? {
            Some(options) => Arc::new(PgJobStore::open_credentials(options)?),
            None => Arc::new(BrokerAuthFile::new(paths.broker_auth())),
        })
    }
}

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
    /// Close a connection with no request in progress — idle keep-alive, or request headers unfinished —
    /// after this many seconds (up to twice that); 0 never closes one. The default outlasts the idle
    /// keep-alive of nginx and Caddy in front of a broker
    #[arg(long, value_name = "SECS", default_value_t = homeboy_http::serve::LOOPBACK_IDLE_TIMEOUT.as_secs())]
    pub connection_idle_secs: u64,
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
    /// Keep this daemon's state file, locks, job store and log under daemon/<host>-<port>/ instead of
    /// daemon/, so several daemons of one config dir run side by side (`homeboy daemon start --addr` sets
    /// it); needs --addr with a port
    #[arg(long)]
    pub state_per_address: bool,
    /// Exit cleanly after this long with no requests, no queued or running jobs and no managed services
    /// (e.g. 90s, 10m, 1h); commands that need the daemon start it again. (--connection-idle-secs is
    /// about single connections)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Log file of a background daemon, recorded in the state file; it becomes stdout and stderr and is
    /// rotated past --log-max-bytes
    #[arg(long, hide = true)]
    pub log_path: Option<PathBuf>,
    /// Size at which the --log-path file is rotated (three rotated files are kept)
    #[arg(long, hide = true, default_value_t = LogCap::default().max_bytes)]
    pub log_max_bytes: u64,
    #[command(flatten)]
    pub store: StoreFlags,
    /// Log line format on stderr: text or json (filter with HOMEBOY_LOG, e.g. `debug`)
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

impl ServeFlags {
    /// Installs the server log in the chosen format: on stderr, or in the capped `--log-path` file (which
    /// then also takes stdout and stderr).
    pub fn init_logging(&self) {
        if let Some(path) = &self.log_path {
            let cap = LogCap {
                max_bytes: self.log_max_bytes.max(1024),
                ..LogCap::default()
            };
            if let Err(e) = logging::init_file(self.log_format, path, cap) {
                // Still on the inherited stderr (the same file, uncapped): say so and go on.
                logging::init(self.log_format);
                tracing::warn!("cannot rotate {}: {e}", path.display());
            }
            return;
        }
        logging::init(self.log_format);
    }

    /// The serve options these flags describe, listening on `default_addr` unless `--addr` was given. A bad
    /// `--store` is an `Invalid` error naming the field.
    pub fn options(
        &self,
        paths: Paths,
        default_addr: SocketAddr,
    ) -> Result<ServeOptions, JobError> {
        let mut options = ServeOptions::new(paths);
        options.addr = self.addr.unwrap_or(default_addr);
        options.build_id = homeboy_build::build_id_from_env();
        options.http.max_body_bytes = self.max_body_bytes;
        options.http.allowed_hosts = self.allowed_hosts.clone();
        options.http.idle_timeout = (self.connection_idle_secs > 0)
            .then(|| std::time::Duration::from_secs(self.connection_idle_secs));
        options.log_path = self.log_path.clone();
        options.per_address = self.state_per_address;
        options.idle_timeout = self.idle_timeout;
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
        if let Some(pg) = self.store.pg_options()? {
            options.store = StoreChoice::Postgres(Box::new(pg));
        }
        Ok(options)
    }
}

/// A duration as people write it (`90s`, `10m`, `1h30m`, `500ms`; humantime's syntax), more than zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration such as 90s, 10m or 1h ({e})"))?;
    if duration.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0s").is_err());
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }
}
