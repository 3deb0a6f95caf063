//! `homeboy server add|list|show|set|remove|connect|disconnect|passphrase`: wiring to
//! `homeboy_config::servers` (the declarations) and `homeboy_ssh` (managed sessions, key passphrases in the
//! OS keychain). Everything printed goes through the redacted view; a passphrase is never printed.

use clap::{Args, Subcommand};
use homeboy_config::dynamic_set;
use homeboy_config::servers::{self, Server};
use homeboy_config::{ConfigError, Paths};
use homeboy_ssh::keychain::{self, Keychain, Stored};
use homeboy_ssh::{ConnectOutcome, DisconnectOutcome, SessionStatus, Ssh, SshError};

use crate::output::{Exit, Format, print_json, usage_error};
use crate::set_args::SetArgs;

#[derive(Subcommand)]
pub enum ServerCommand {
    /// Add a server (<config>/servers/<id>.json); refused if the id exists
    Add(AddArgs),
    /// List every server
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one server (env values of sensitive-looking names are redacted)
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Change a server: --field path=value (dotted path; the value is JSON, else text) and/or --json with a
    /// JSON merge patch. The result is validated before anything is written
    Set(SetArgs),
    /// Remove a server's declaration
    Remove {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Start the SSH control master of a managed session (auth.mode key_plus_password_controlmaster); ssh
    /// asks for the password on this terminal and homeboy never sees it. With --check, only report whether
    /// the master runs (exit 1 if not)
    Connect {
        id: String,
        /// Only check the master (`ssh -O check`)
        #[arg(long)]
        check: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Stop the SSH control master of a managed session (`ssh -O exit`)
    Disconnect {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// The passphrase of a server's SSH key in the OS keychain (Secret Service, macOS Keychain): `homeboy
    /// ssh`, `server connect` and `runner connect` then unlock the key without asking
    #[command(subcommand)]
    Passphrase(PassphraseCommand),
}

#[derive(Subcommand)]
pub enum PassphraseCommand {
    /// Store (or replace) the passphrase: asked twice on the terminal without echo, or read from the first
    /// line of stdin with --stdin
    Set {
        id: String,
        /// Read the passphrase from stdin (one line) instead of the terminal
        #[arg(long)]
        stdin: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove the passphrase from the keychain
    Clear {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Whether the keychain holds a passphrase for the server (never the passphrase)
    Status {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Args)]
pub struct AddArgs {
    /// Server id (letters, digits, '.', '_', '-'); also the runner id if it becomes a runner
    id: String,
    /// Hostname or IP address
    #[arg(long)]
    host: String,
    /// SSH user
    #[arg(long)]
    user: String,
    /// Human-readable name (default: the id)
    #[arg(long)]
    name: Option<String>,
    /// SSH port
    #[arg(long, default_value_t = servers::DEFAULT_PORT)]
    port: u16,
    /// Private key file
    #[arg(long)]
    identity_file: Option<String>,
    /// Free-form classification
    #[arg(long)]
    kind: Option<String>,
    /// Forward the SSH agent (off by default: it hands the server your identities)
    #[arg(long)]
    forward_agent: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(cmd: ServerCommand) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    let store = servers::store(&paths);
    match cmd {
        ServerCommand::Add(args) => add(&store, args),
        ServerCommand::List { format } => list(&store, format),
        ServerCommand::Show { id, format } => {
            let server = load(&paths, &id)?;
            show(&server, format)
        }
        ServerCommand::Set(args) => set(&store, &args),
        ServerCommand::Remove { id, format } => remove(&store, &id, format),
        ServerCommand::Connect { id, check, format } => {
            let server = load(&paths, &id)?;
            if check {
                check_session(&server, format)
            } else {
                connect(&server, format)
            }
        }
        ServerCommand::Disconnect { id, format } => disconnect(&load(&paths, &id)?, format),
        ServerCommand::Passphrase(cmd) => passphrase(&paths, cmd),
    }
}

fn passphrase(paths: &Paths, cmd: PassphraseCommand) -> anyhow::Result<()> {
    let keychain = Keychain::for_config_dir(paths.config_dir());
    let (id, format, report) = match cmd {
        PassphraseCommand::Set { id, stdin, format } => {
            load(paths, &id)?;
            let secret = if stdin {
                keychain::read_line(std::io::stdin().lock())
            } else {
                keychain::prompt_new(&id)
            }
            .map_err(ssh_error)?;
            keychain.set(&id, &secret).map_err(ssh_error)?;
            (id, format, "stored in the keychain")
        }
        PassphraseCommand::Clear { id, format } => {
            let removed = keychain.clear(&id).map_err(ssh_error)?;
            let report = if removed {
                "removed from the keychain"
            } else {
                "was not in the keychain"
            };
            (id, format, report)
        }
        PassphraseCommand::Status { id, format } => {
            load(paths, &id)?;
            let report = match keychain.status(&id).map_err(ssh_error)? {
                Stored::Stored => "stored in the keychain",
                Stored::NotStored => "not in the keychain (ssh asks on the terminal)",
            };
            (id, format, report)
        }
    };
    let stored = keychain.status(&id).map_err(ssh_error)?;
    match format {
        Format::Json => print_json(&serde_json::json!({"server": id, "passphrase": stored})),
        Format::Text => {
            println!("passphrase of {id}: {report}");
            Ok(())
        }
    }
}

/// Loads server `id`, mapping config errors to exit codes.
pub fn load(paths: &Paths, id: &str) -> anyhow::Result<Server> {
    servers::store(paths).get(id).map_err(config_error)
}

/// Refused input (an invalid declaration or id) exits 2; anything else 1.
pub fn config_error(error: ConfigError) -> anyhow::Error {
    match error {
        ConfigError::Invalid { .. } | ConfigError::InvalidId { .. } => {
            usage_error(error.to_string())
        }
        other => other.into(),
    }
}

/// Refused input (no managed session, a non-loopback address) exits 2; anything else 1.
pub fn ssh_error(error: SshError) -> anyhow::Error {
    if error.is_refusal() {
        usage_error(error.to_string())
    } else {
        error.into()
    }
}

fn add(store: &homeboy_config::DeclarationDir<Server>, args: AddArgs) -> anyhow::Result<()> {
    let mut server = Server::new(
        &args.id,
        args.name.unwrap_or_else(|| args.id.clone()),
        args.host,
        args.user,
    );
    server.port = args.port;
    server.identity_file = args.identity_file;
    server.kind = args.kind;
    server.forward_agent = args.forward_agent;
    let path = servers::add(store, &server).map_err(config_error)?;
    match args.format {
        Format::Json => print_json(&server.view())?,
        Format::Text => println!(
            "added server {} ({}) in {}",
            server.id,
            server.destination(),
            path.display()
        ),
    }
    Ok(())
}

fn list(store: &homeboy_config::DeclarationDir<Server>, format: Format) -> anyhow::Result<()> {
    let listed = store.list()?;
    if format == Format::Json {
        let items: Vec<serde_json::Value> = listed
            .iter()
            .map(|l| match &l.item {
                Ok(server) => serde_json::to_value(server.view()).unwrap_or_default(),
                Err(e) => serde_json::json!({"id": l.id, "error": e.to_string()}),
            })
            .collect();
        print_json(&items)?;
        return Ok(());
    }
    if listed.is_empty() {
        println!("no servers (add one with `homeboy server add <id> --host HOST --user USER`)");
        return Ok(());
    }
    println!(
        "{:<20} {:<24} {:<32} {:<10} {:<8} RUNNER",
        "ID", "NAME", "DESTINATION", "KIND", "SESSION"
    );
    for entry in &listed {
        match &entry.item {
            Ok(server) => println!(
                "{:<20} {:<24} {:<32} {:<10} {:<8} {}",
                server.id,
                server.name,
                server.destination(),
                server.kind.as_deref().unwrap_or("-"),
                if server.managed_session().is_some() {
                    "managed"
                } else {
                    "-"
                },
                if server.runner.is_some() { "yes" } else { "-" }
            ),
            Err(e) => println!("{:<20} (unreadable: {e})", entry.id),
        }
    }
    Ok(())
}

fn show(server: &Server, format: Format) -> anyhow::Result<()> {
    let shown = server.view();
    if format == Format::Json {
        print_json(&shown)?;
        return Ok(());
    }
    println!("id: {}", shown.id);
    println!("name: {}", shown.name);
    println!("destination: {}", server.destination());
    if let Some(identity) = &shown.identity_file {
        println!("identity_file: {identity}");
    }
    if let Some(kind) = &shown.kind {
        println!("kind: {kind}");
    }
    println!("forward_agent: {}", shown.forward_agent);
    match server.managed_session() {
        Some(auth) => println!(
            "session: managed control master (control_path {}, persist {}); `homeboy server connect {}`",
            auth.control_path, auth.persist, shown.id
        ),
        None => println!("session: direct (no managed control master)"),
    }
    match &shown.runner {
        Some(_) => println!("runner: yes (`homeboy runner status {}`)", shown.id),
        None => println!("runner: no"),
    }
    Ok(())
}

fn set(store: &homeboy_config::DeclarationDir<Server>, args: &SetArgs) -> anyhow::Result<()> {
    let (id, format) = (&args.id, args.format);
    let edits = args.edits()?;
    let server = dynamic_set::update(store, id, &edits).map_err(config_error)?;
    match format {
        Format::Json => print_json(&server.view())?,
        Format::Text => {
            println!("updated server {id}");
            show(&server, Format::Text)?;
        }
    }
    Ok(())
}

fn remove(
    store: &homeboy_config::DeclarationDir<Server>,
    id: &str,
    format: Format,
) -> anyhow::Result<()> {
    if !store.remove(id).map_err(config_error)? {
        return Err(ConfigError::NotFound {
            kind: "server",
            id: id.to_string(),
        }
        .into());
    }
    match format {
        Format::Json => print_json(&serde_json::json!({"removed": id}))?,
        Format::Text => println!("removed server {id}"),
    }
    Ok(())
}

fn check_session(server: &Server, format: Format) -> anyhow::Result<()> {
    let status = Ssh::from_env().check(server).map_err(ssh_error)?;
    match format {
        Format::Json => print_json(&status)?,
        Format::Text => print_session(&status),
    }
    if status.connected {
        Ok(())
    } else {
        Err(Exit {
            code: 1,
            message: format!("{} is not connected", server.id),
        }
        .into())
    }
}

fn print_session(status: &SessionStatus) {
    if status.connected {
        println!(
            "{} ({}): connected, master pid {}, socket {}",
            status.server,
            status.destination,
            status
                .master_pid
                .map_or_else(|| "?".to_string(), |p| p.to_string()),
            status.control_path.display()
        );
    } else {
        println!(
            "{} ({}): not connected (socket {}); start it with `homeboy server connect {}`",
            status.server,
            status.destination,
            status.control_path.display(),
            status.server
        );
    }
}

fn connect(server: &Server, format: Format) -> anyhow::Result<()> {
    let (outcome, status) = Ssh::from_env().connect(server).map_err(ssh_error)?;
    match format {
        Format::Json => print_json(&serde_json::json!({"outcome": outcome, "status": status}))?,
        Format::Text => {
            if outcome == ConnectOutcome::AlreadyConnected {
                print!("already connected: ");
            }
            print_session(&status);
        }
    }
    Ok(())
}

fn disconnect(server: &Server, format: Format) -> anyhow::Result<()> {
    let (outcome, status) = Ssh::from_env().disconnect(server).map_err(ssh_error)?;
    if status.connected {
        return Err(Exit {
            code: 1,
            message: format!(
                "the control master of {} still runs after `ssh -O exit`",
                server.id
            ),
        }
        .into());
    }
    match format {
        Format::Json => print_json(&serde_json::json!({"outcome": outcome, "status": status}))?,
        Format::Text => match outcome {
            DisconnectOutcome::Disconnected => println!(
                "disconnected {} (socket {} removed)",
                server.id,
                status.control_path.display()
            ),
            DisconnectOutcome::NotConnected => println!("{} was not connected", server.id),
        },
    }
    Ok(())
}
