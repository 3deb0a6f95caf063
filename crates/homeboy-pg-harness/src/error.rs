//! The harness's error type: PostgreSQL missing, a step of starting a cluster failing, a SQL command failing.

use std::path::PathBuf;

/// What can go wrong starting or using a test cluster. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// No PostgreSQL server programs were found.
    #[error(
        "PostgreSQL is not installed (looked in $HOMEBOY_PG_BINDIR, /usr/lib/postgresql/*/bin, `pg_config --bindir` and PATH): install Debian's `postgresql` package (apt-get install postgresql)"
    )]
    NotInstalled,
    /// Running as root, but there is no unprivileged user to run the server as (initdb refuses root).
    #[error(
        "running as root, but there is no `postgres` user to run the cluster as (initdb refuses root); install Debian's `postgresql` package, which creates it"
    )]
    NoUnprivilegedUser,
    /// A program of the cluster failed.
    #[error("`{program}` failed ({status}): {output}")]
    Command {
        program: String,
        status: String,
        output: String,
    },
    /// The server did not start (the tail of its log says why).
    #[error("the PostgreSQL server in {dir} did not start: {log_tail}")]
    Start { dir: PathBuf, log_tail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl HarnessError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            what: what.into(),
            source,
        }
    }
}
