//! How to reach the database: the connection string, where its password comes from, and how it is shown.
//!
//! The password is best kept out of the connection string. It is taken from, in order: the connection
//! string itself (works, but discouraged), a password file (`--store-password-file`, mode 0600), the
//! `PGPASSWORD` environment variable, or a libpq password file (`PGPASSFILE`, else `~/.pgpass`, lines of
//! `host:port:database:user:password` with `*` wildcards). Files readable by group or others are refused.
//!
//! Nothing here ever prints the password: a [`Dsn`] displays (and debugs) as
//! `postgres://user@host:port/dbname`, rebuilt from the parsed fields, so not even a malformed string's
//! userinfo reaches a log, an error or a status line.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use homeboy_config::secret_env::{self, SecretRef};
use homeboy_jobs::{JobError, StoreOptions};
use tokio_postgres::config::{Host, SslMode};

/// A parsed PostgreSQL connection string (URL or `key=value` form). Shown without its password.
#[derive(Clone)]
pub struct Dsn {
    config: tokio_postgres::Config,
}

impl Dsn {
    /// Parses `text`. Errors name the field (`store`), never the text.
    pub fn parse(text: &str) -> Result<Dsn, JobError> {
        let refuse = |problem: &str| invalid("store", problem);
        let config = tokio_postgres::Config::from_str(text).map_err(|_| {
            refuse("is not a PostgreSQL connection string (postgres://USER@HOST:PORT/DBNAME or key=value pairs)")
        })?;
        if config.get_user().is_none() {
            return Err(refuse("names no user (postgres://USER@HOST:PORT/DBNAME)"));
        }
        if config.get_hosts().is_empty() {
            return Err(refuse("names no host (postgres://USER@HOST:PORT/DBNAME)"));
        }
        if config.get_ssl_mode() == SslMode::Require {
            return Err(refuse(
                "asks for sslmode=require, but this build speaks to PostgreSQL without TLS; reach the database over a private network or a loopback tunnel",
            ));
        }
        Ok(Dsn { config })
    }

    /// Whether the string itself carries a password.
    pub fn has_password(&self) -> bool {
        self.config.get_password().is_some()
    }

    /// The user.
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or_default()
    }

    /// The database (libpq's default: the user's name).
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or(self.user())
    }

    /// The first host as written (a name, an address, or a socket directory).
    pub fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => String::new(),
        }
    }

    /// The first port (5432 by default).
    pub fn port(&self) -> u16 {
        self.config.get_ports().first().copied().unwrap_or(5432)
    }

    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host();
        let host = if host.contains(':') && !host.starts_with('/') {
            format!("[{host}]")
        } else {
            host
        };
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.user(),
            host,
            self.port(),
            self.dbname()
        )
    }
}

impl fmt::Debug for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dsn({self})")
    }
}

/// Everything [`crate::PgJobStore::open`] needs.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub dsn: Dsn,
    /// A file holding the password (mode 0600; its content, trimmed, is the password).
    pub password_file: Option<PathBuf>,
    /// Connections kept for store operations (the listener and the notifier have one each on top).
    pub pool_size: usize,
    /// The name of this daemon among those sharing the database. Daemon-executed jobs record the node that
    /// runs them, and a store opening under the same name fails those left running as stale; other nodes'
    /// running jobs are theirs. Default: the host name.
    pub node: String,
    /// Apply pending schema migrations on open (otherwise an out-of-date schema is refused).
    pub migrate: bool,
    pub store: StoreOptions,
}

impl PgOptions {
    /// Options for `dsn` with the defaults: no password file, 16 connections, the host name as node,
    /// migrations applied on open.
    pub fn new(dsn: Dsn) -> PgOptions {
        PgOptions {
            dsn,
            password_file: None,
            pool_size: 16,
            node: host_name(),
            migrate: true,
            store: StoreOptions::default(),
        }
    }

    /// The connection settings with the password resolved (see the module docs for the order).
    pub(crate) fn connect_config(&self) -> Result<tokio_postgres::Config, JobError> {
        let mut config = self.dsn.config().clone();
        if !self.dsn.has_password()
            && let Some(password) = self.password()?
        {
            config.password(password);
        }
        Ok(config)
    }

    fn password(&self) -> Result<Option<String>, JobError> {
        self.password_from(|name| std::env::var_os(name))
    }

    /// [`PgOptions::password`] with the environment given (tests cannot change the process's own safely).
    fn password_from(
        &self,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Option<String>, JobError> {
        if let Some(path) = &self.password_file {
            let absolute = std::path::absolute(path)
                .map_err(|e| invalid("store_password_file", e.to_string()))?;
            let reference = SecretRef::File {
                file: absolute.display().to_string(),
            };
            return secret_env::resolve("store_password_file", &reference)
                .map(Some)
                .map_err(|e| invalid("store_password_file", e.to_string()));
        }
        if let Some(password) = env("PGPASSWORD").and_then(|p| p.into_string().ok())
            && !password.is_empty()
        {
            return Ok(Some(password));
        }
        let passfile = match env("PGPASSFILE") {
            Some(path) => PathBuf::from(path),
            None => match env("HOME") {
                Some(home) => PathBuf::from(home).join(".pgpass"),
                None => return Ok(None),
            },
        };
        passfile_lookup(&passfile, &self.dsn)
    }
}

/// The password for `dsn` from a libpq password file, if the file exists and has a matching line.
fn passfile_lookup(path: &Path, dsn: &Dsn) -> Result<Option<String>, JobError> {
    let problem = |p: String| invalid("PGPASSFILE", p);
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(problem(format!("{}: {e}", path.display()))),
    };
    let metadata = file
        .metadata()
        .map_err(|e| problem(format!("{}: {e}", path.display())))?;
    if !metadata.is_file() {
        return Ok(None);
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(problem(format!(
            "{} may be read by group or others; chmod 600 it",
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(1024 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| problem(format!("{}: {e}", path.display())))?;
    let host = dsn.host();
    let wanted = [
        host.as_str(),
        &dsn.port().to_string(),
        dsn.dbname(),
        dsn.user(),
    ]
    .map(str::to_string);
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let fields = passfile_fields(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = fields[..4].iter().zip(&wanted).all(|(field, want)| {
            field == "*" || field == want || (field == "localhost" && want.starts_with('/'))
        });
        if matches {
            return Ok(Some(fields[4].clone()));
        }
    }
    Ok(None)
}

/// Splits a password-file line on unescaped `:` (`\:` and `\\` are literal).
fn passfile_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(field)) = (chars.next(), fields.last_mut()) {
                    field.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

/// A refusal naming the field, never its value.
pub(crate) fn invalid(field: &str, problem: impl Into<String>) -> JobError {
    JobError::Invalid {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// This machine's host name (the default node name).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsn_never_shows_its_password() {
        for text in [
            "postgres://broker:s3cr3t-pw@db.internal:6543/jobs",
            "host=db.internal port=6543 user=broker password=s3cr3t-pw dbname=jobs",
        ] {
            let dsn = Dsn::parse(text).unwrap();
            assert!(dsn.has_password());
            let shown = format!("{dsn} {dsn:?}");
            assert_eq!(dsn.to_string(), "postgres://broker@db.internal:6543/jobs");
            assert!(!shown.contains("s3cr3t"), "{shown}");
            let options = PgOptions::new(dsn);
            assert!(!format!("{options:?}").contains("s3cr3t"));
        }
    }

    #[test]
    fn malformed_strings_are_refused_without_quoting_them() {
        for text in [
            "postgres://broker:s3cr3t@db:notaport/jobs",
            "user=broker password='s3cr3t",
            "host=db password=s3cr3t",
        ] {
            let error = Dsn::parse(text).unwrap_err();
            let shown = format!("{error} {error:?}");
            assert!(shown.contains("store"), "{shown}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
    }

    #[test]
    fn passfile_lines_match_like_libpq() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(
            &path,
            "# comment\nother:5432:*:broker:nope\ndb.internal:6543:jobs:broker:pa\\:ss:word\n*:*:*:*:fallback\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let dsn = Dsn::parse("postgres://broker@db.internal:6543/jobs").unwrap();
        assert_eq!(
            passfile_lookup(&path, &dsn).unwrap().as_deref(),
            Some("pa:ss:word")
        );
        let other = Dsn::parse("postgres://someone@elsewhere/x").unwrap();
        assert_eq!(
            passfile_lookup(&path, &other).unwrap().as_deref(),
            Some("fallback")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = passfile_lookup(&path, &dsn).unwrap_err().to_string();
        assert!(refused.contains("chmod 600"), "{refused}");
        assert!(!refused.contains("word"), "{refused}");
    }

    #[test]
    fn the_password_comes_from_the_url_a_file_pgpassword_or_a_passfile_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let passfile = dir.path().join("pgpass");
        std::fs::write(&passfile, "*:*:*:*:from-passfile\n").unwrap();
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "from-file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = |pgpassword: Option<&str>| {
            let passfile = passfile.clone();
            let pgpassword = pgpassword.map(OsString::from);
            move |name: &str| match name {
                "PGPASSWORD" => pgpassword.clone(),
                "PGPASSFILE" => Some(passfile.clone().into_os_string()),
                _ => None,
            }
        };
        let plain = PgOptions::new(Dsn::parse("postgres://broker@db/jobs").unwrap());
        let got = |o: &PgOptions, pw: Option<&str>| o.password_from(env(pw)).unwrap();
        assert_eq!(got(&plain, None).as_deref(), Some("from-passfile"));
        assert_eq!(got(&plain, Some("from-env")).as_deref(), Some("from-env"));
        let with_file = PgOptions {
            password_file: Some(file.clone()),
            ..plain.clone()
        };
        assert_eq!(
            got(&with_file, Some("from-env")).as_deref(),
            Some("from-file")
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let refused = with_file.password_from(env(None)).unwrap_err();
        assert!(
            matches!(&refused, JobError::Invalid { field, .. } if field == "store_password_file")
        );
        assert!(!refused.to_string().contains("from-file"));
        let in_url = PgOptions::new(Dsn::parse("postgres://broker:from-url@db/jobs").unwrap());
        let config = in_url.connect_config().unwrap();
        assert_eq!(config.get_password(), Some(&b"from-url"[..]));
    }
}
