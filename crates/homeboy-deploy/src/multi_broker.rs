//! The several-brokers shape of `homeboy daemon broker-config --store postgres://…`: brokers sharing one
//! PostgreSQL job store, each a systemd service reading the connection string from an environment file
//! (never a password: that lives in a 0600 password file), an nginx `upstream` spreading runners over
//! them, and the caveats of sharing a queue.
//!
//! The renderer is handed the connection string as it may be shown (`postgres://user@host:port/db`,
//! rebuilt by the store's parser without a password), so no password can reach what it renders.

use std::net::SocketAddr;

use serde::Serialize;

use crate::DeployError;
use crate::broker_config::refused;

/// Where the unit's environment file lives.
pub const ENVIRONMENT_FILE: &str = "/etc/homeboy/broker.env";
/// Where the database password lives (mode 0600, owned by the service user).
pub const PASSWORD_FILE: &str = "/etc/homeboy/store-password";
/// The nginx upstream's name.
pub const UPSTREAM_NAME: &str = "homeboy_brokers";

/// The shared job store, as the operator named it.
#[derive(Debug, Clone)]
pub struct SharedStore {
    /// The connection string without a password (`postgres://user@host:port/db`).
    pub url_shown: String,
    /// The database host (a name, an address, or a socket directory).
    pub host: String,
    /// Whether the string the operator typed carried a password (it is dropped; the recipe says where
    /// it belongs instead).
    pub had_password: bool,
}

/// The multi-broker part of the recipe.
#[derive(Debug, Clone, Serialize)]
pub struct MultiBroker {
    /// The job store every broker shares (no password).
    pub store_url: String,
    pub environment_file_path: String,
    /// Its content: the connection string, no password.
    pub environment_file: String,
    pub password_file_path: String,
    /// The brokers the proxy spreads runners over.
    pub upstream_brokers: Vec<String>,
    /// The nginx `upstream` block (used by `nginx_site` when a domain is given).
    pub nginx_upstream: String,
    pub install_steps: Vec<String>,
    pub caveats: Vec<String>,
}

/// Characters a shown connection string may have (anything else could mean something to systemd).
fn plain_url(url: &str) -> bool {
    url.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(b, b':' | b'/' | b'@' | b'.' | b'_' | b'-' | b'[' | b']')
    })
}

/// Renders the shape for `store` with the brokers at `brokers` (this one first).
pub fn render(
    store: &SharedStore,
    brokers: &[SocketAddr],
    service_name: &str,
) -> Result<MultiBroker, DeployError> {
    if !plain_url(&store.url_shown) {
        return Err(refused(
            "store",
            "names a user, host or database with characters a systemd environment file would interpret",
        ));
    }
    let upstream_brokers: Vec<String> = brokers.iter().map(ToString::to_string).collect();
    let servers = upstream_brokers
        .iter()
        .map(|b| format!("    server {b} max_fails=1 fail_timeout=5s;"))
        .collect::<Vec<_>>()
        .join("\n");
    let nginx_upstream = format!(
        "\
# Several brokers, one PostgreSQL queue: any broker answers any runner (a claim long-polling at one is woken
# by an enqueue at another). A broker that is down is skipped for 5 s.
upstream {UPSTREAM_NAME} {{
{servers}
    keepalive 32;
}}
"
    );
    let environment_file = format!(
        "\
# {ENVIRONMENT_FILE} (rendered by `homeboy daemon broker-config`), mode 0640, root:<service group>.
# The job store every broker shares. No password here: it is in {PASSWORD_FILE} (mode 0600).
HOMEBOY_JOB_STORE_URL={url}
",
        url = store.url_shown
    );
    let mut install_steps = vec![
        format!(
            "Create the database and its owner once (psql as an admin): CREATE ROLE <user> LOGIN PASSWORD '<password>'; CREATE DATABASE <db> OWNER <user>;"
        ),
        format!(
            "Write environment_file to {ENVIRONMENT_FILE} on every broker host; write the database password alone to {PASSWORD_FILE} (chown <service user>; chmod 600)."
        ),
        format!(
            "Apply the schema once (brokers also apply it at start under an advisory lock): HOMEBOY_JOB_STORE_URL={url} homeboy-broker migrate --store-password-file {PASSWORD_FILE}",
            url = store.url_shown
        ),
        format!(
            "Start each broker ({service_name}, one unit per broker and port), then pair runners once against the database from any host: homeboy runner broker pair --runner-id <id> --scopes work --store {url} --store-password-file {PASSWORD_FILE}",
            url = store.url_shown
        ),
    ];
    if store.had_password {
        install_steps.insert(
            0,
            "The --store you gave carried a password: it was left out of everything rendered here. Put it in the password file instead, and rotate it if the string was stored anywhere."
                .to_string(),
        );
    }
    let caveats = vec![
        "One queue: jobs, events, runner credentials and runner sessions live in the database, so a runner paired through one broker authenticates at every broker, and a revoke holds everywhere from the next request on.".to_string(),
        "Clocks: leases are compared with the clock of whichever broker looks; keep the broker hosts on NTP (a skew lengthens or shortens leases by the skew).".to_string(),
        "Database loss: brokers answer 503 store.unavailable (nothing is acknowledged that is not committed) and reconnect with backoff; runners retry. Make PostgreSQL itself durable (fsync and synchronous_commit on, backups, a replica if the queue must survive the loss of its machine).".to_string(),
        "Wake-ups cross brokers through LISTEN/NOTIFY on a dedicated connection (with a 100 ms poll while it is down): each broker holds its pool (16 connections) plus two; size max_connections for every broker and the CLI.".to_string(),
        "No TLS to the database yet: reach it over loopback, a private network or a tunnel (sslmode=require is refused).".to_string(),
        format!("Network: the unit's IPAddressAllow must include the database host ({}); an address is added automatically, a name must be resolved and added by hand.", store.host),
        "Migrations: a broker refuses to start (exit code 3) against a schema newer than it knows; upgrade brokers before migrating to a newer homeboy, and use --no-migrate to keep a broker from migrating.".to_string(),
    ];
    Ok(MultiBroker {
        store_url: store.url_shown.clone(),
        environment_file_path: ENVIRONMENT_FILE.to_string(),
        environment_file,
        password_file_path: PASSWORD_FILE.to_string(),
        upstream_brokers,
        nginx_upstream,
        install_steps,
        caveats,
    })
}

/// The unit lines the shared store adds to `[Service]`.
pub fn unit_lines() -> String {
    format!(
        "# The shared job store: HOMEBOY_JOB_STORE_URL (no password) from the environment file, the password\n\
# from a 0600 file.\nEnvironmentFile={ENVIRONMENT_FILE}\n"
    )
}

/// The ExecStart flags the shared store adds.
pub fn exec_flags() -> String {
    format!(" --store-password-file {PASSWORD_FILE}")
}

/// The database host as an `IPAddressAllow=` entry, when it is an address.
pub fn allowed_address(store: &SharedStore) -> Option<String> {
    let host = store.host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<std::net::IpAddr>()
        .ok()
        .filter(|ip| !ip.is_loopback())
        .map(|ip| ip.to_string())
}
