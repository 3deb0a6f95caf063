//! `homeboy runner broker pair|list|revoke`: broker credentials in `<config>/broker_auth.json` (digests only).

use clap::Subcommand;
use homeboy_config::Paths;
use homeboy_config::broker_auth::{BrokerAuthFile, Scope};
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
    },
    /// List credentials (never shows tokens)
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Revoke a credential by id; the broker refuses its token from the next request on
    Revoke {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(cmd: BrokerCommand) -> anyhow::Result<()> {
    let file = BrokerAuthFile::new(Paths::from_env()?.broker_auth());
    match cmd {
        BrokerCommand::Pair {
            runner_id,
            scopes,
            format,
        } => {
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
        BrokerCommand::List { format } => {
            let all = file.load()?;
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
        BrokerCommand::Revoke { id, format } => {
            let credential = file.revoke(&id)?;
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
