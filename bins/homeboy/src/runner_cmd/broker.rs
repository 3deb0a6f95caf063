//! `homeboy runner broker pair|list|revoke`: broker credentials (digests only) in `<config>/broker_auth.json`,
//! or with `--store postgres://...` (or `HOMEBOY_JOB_STORE_URL`) in the database several brokers share.

use std::sync::Arc;

use clap::Subcommand;
use homeboy_config::Paths;
use homeboy_config::broker_auth::{CredentialStore, Scope};
use homeboy_daemon::serve_args::StoreFlags;
use serde_json::json;

use crate::output::{Format, print_json, usage_error};

#[derive(Subcommand)]
pub enum BrokerCommand {
    /// Mint a token for a runner; it is printed once and only its SHA-256 digest is stored
    Pair {
        #[arg(long)]
        runner_id: String,
        /// work (claim and run jobs), submit (enqueue jobs), or both: --scopes work,submit
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        #[command(flatten)]
        target: StoreFlags,
    },
    /// List credentials (never shows tokens)
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        #[command(flatten)]
        target: StoreFlags,
    },
    /// Revoke a credential by id; the broker refuses its token from the next request on
    Revoke {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        #[command(flatten)]
        target: StoreFlags,
    },
}

/// The credentials the broker's own `--store` names (default: this config dir's broker_auth.json).
fn open(flags: StoreFlags) -> anyhow::Result<Arc<dyn CredentialStore>> {
    let paths = Paths::from_env()?;
    flags.credentials(&paths).map_err(|e| match e {
        homeboy_jobs::JobError::Invalid { .. } => usage_error(e.to_string()),
        other => other.into(),
    })
}

pub fn run(cmd: BrokerCommand) -> anyhow::Result<()> {
    match cmd {
        BrokerCommand::Pair {
            runner_id,
            scopes,
            format,
            target,
        } => {
            let file = open(target)?;
            let scopes = scopes
                .iter()
                .map(|s| {
                    Scope::parse(s).ok_or_else(|| {
                        usage_error(format!("unknown scope {s:?}: use work or submit"))
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let (credential, token) = file.pair(&runner_id, &scopes)?;
            match format {
                Format::Json => print_json(&json!({"credential": credential, "token": token})),
                Format::Text => {
                    println!(
                        "paired {} for runner {} ({})",
                        credential.id,
                        credential.runner_id,
                        scope_list(&credential.scopes)
                    );
                    println!("token (shown once, store it in the runner's secret store):");
                    println!("{token}");
                    Ok(())
                }
            }
        }
        BrokerCommand::List { format, target } => {
            let all = open(target)?.load()?;
            match format {
                Format::Json => print_json(&all),
                Format::Text => {
                    if all.credentials.is_empty() {
                        println!(
                            "no broker credentials (pair one with `homeboy runner broker pair`)"
                        );
                    }
                    for c in &all.credentials {
                        let state = c
                            .revoked_at
                            .as_deref()
                            .map_or("active".to_string(), |t| format!("revoked {t}"));
                        println!(
                            "{}  runner={}  scopes={}  created={}  {state}",
                            c.id,
                            c.runner_id,
                            scope_list(&c.scopes),
                            c.created_at
                        );
                    }
                    Ok(())
                }
            }
        }
        BrokerCommand::Revoke { id, format, target } => {
            let credential = open(target)?.revoke(&id)?;
            match format {
                Format::Json => print_json(&json!({"credential": credential})),
                Format::Text => {
                    println!(
                        "revoked {} (runner {})",
                        credential.id, credential.runner_id
                    );
                    Ok(())
                }
            }
        }
    }
}

fn scope_list(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
