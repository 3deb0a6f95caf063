//! `homeboy tunnel artifact-origin status|inspect|serve`: clap arguments and wiring to
//! `homeboy_tunnel::origin`.

use std::io::Write;
use std::net::SocketAddr;

use clap::Subcommand;
use homeboy_config::Paths;
use homeboy_tunnel::origin::{self, OriginConfig, PUBLIC_BASE_ENV, server};

use super::errors::{exit, failure};
use crate::output::{Format, print_json};

#[derive(Subcommand)]
pub enum ArtifactOriginCommand {
    /// Show the artifact root and its public URL mapping (starts nothing)
    Status {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show where one root-relative path lives, whether it exists, its size, type and public URL
    Inspect {
        /// Path relative to the artifact root, e.g. workflow-bench/<bundle>/report.html
        path: String,
        /// Exit 1 when the path does not exist
        #[arg(long)]
        fail_on_missing: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Serve the artifact root over HTTP until SIGTERM or Ctrl-C (CORS, Range, ETag, gzip/br for text)
    Serve {
        /// Address to listen on; non-loopback addresses need --allow-public-bind
        #[arg(long, default_value = "127.0.0.1:7351")]
        bind: SocketAddr,
        /// Allow a non-loopback --bind (put the origin behind your TLS proxy)
        #[arg(long)]
        allow_public_bind: bool,
    },
}

pub fn run(cmd: ArtifactOriginCommand) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    let config = OriginConfig::new(&paths, std::env::var(PUBLIC_BASE_ENV).ok()).map_err(exit)?;
    match cmd {
        ArtifactOriginCommand::Status { format } => {
            let status = origin::status(&config);
            match format {
                Format::Json => print_json(&status),
                Format::Text => {
                    println!(
                        "artifact root: {} ({})",
                        status.root.display(),
                        if status.root_exists {
                            format!("exists, {} entries", status.root_entries)
                        } else {
                            "does not exist".to_string()
                        }
                    );
                    println!(
                        "public base: {}",
                        status
                            .public_base_url
                            .as_deref()
                            .unwrap_or("(not set: HOMEBOY_PUBLIC_ARTIFACT_BASE_URL)")
                    );
                    println!("mapping: {}", status.mapping);
                    Ok(())
                }
            }
        }
        ArtifactOriginCommand::Inspect {
            path,
            fail_on_missing,
            format,
        } => {
            let inspection = origin::inspect(&config, &path).map_err(exit)?;
            match format {
                Format::Json => print_json(&inspection)?,
                Format::Text => {
                    println!("path: {}", inspection.path);
                    println!("file: {}", inspection.file_path.display());
                    println!("exists: {} ({})", inspection.exists, inspection.kind);
                    if let Some(size) = inspection.size_bytes {
                        println!("size: {size} bytes");
                    }
                    if let Some(ct) = &inspection.content_type {
                        println!("type: {ct}");
                    }
                    if inspection.index_html == Some(false) {
                        println!(
                            "note: no index.html, so the origin answers 404 for this directory"
                        );
                    }
                    println!(
                        "public url: {}",
                        inspection
                            .public_url
                            .as_deref()
                            .unwrap_or("(no public base: set HOMEBOY_PUBLIC_ARTIFACT_BASE_URL)")
                    );
                }
            }
            if fail_on_missing && !inspection.exists {
                return Err(failure(format!(
                    "{} does not exist under the artifact root {}",
                    inspection.path,
                    config.root.display()
                )));
            }
            Ok(())
        }
        ArtifactOriginCommand::Serve {
            bind,
            allow_public_bind,
        } => serve(&config, bind, allow_public_bind),
    }
}

fn serve(config: &OriginConfig, bind: SocketAddr, allow_public_bind: bool) -> anyhow::Result<()> {
    let options = server::ServeOptions {
        bind,
        allow_public_bind,
        workers: None,
    };
    let bound = server::bind(config, &options).map_err(exit)?;
    let _ = writeln!(
        std::io::stdout(),
        "homeboy artifact origin listening on http://{} (root {}, public base {})",
        bound.local_addr(),
        bound.root().display(),
        config.public_base_url.as_deref().unwrap_or("not set")
    );
    let _ = std::io::stdout().flush();
    bound
        .run(homeboy_daemon::server::shutdown_signal())
        .map_err(exit)
}
