//! The directory layout: which directory holds what, resolved once from the environment.
//!
//! Config (declarations, daemon state, credentials) lives under `HOMEBOY_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/homeboy`, else `~/.config/homeboy`. Data (logs, artifacts, stores that are not config)
//! lives under `HOMEBOY_DATA_DIR`, else `$XDG_DATA_HOME/homeboy`, else `~/.local/share/homeboy`.
//!
//! A daemon started for one address (`homeboy daemon start --addr 127.0.0.1:7500`) keeps its state, locks,
//! job store and log apart from the default daemon's, under `daemon/<host>-<port>/` ([`Paths::for_daemon_at`]),
//! so several daemons of one config dir run side by side.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::ConfigError;

/// The resolved config and data directories and every well-known path below them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    config_dir: PathBuf,
    data_dir: PathBuf,
    artifact_root: PathBuf,
    /// `<host>-<port>` of a daemon kept apart from the default one (see [`Paths::for_daemon_at`]).
    daemon_instance: Option<String>,
}

impl Paths {
    /// Resolves the directories from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::resolve(|name| std::env::var_os(name))
    }

    /// Resolves the directories from an arbitrary variable lookup (tests pass a closure over a map).
    pub fn resolve(var: impl Fn(&str) -> Option<OsString>) -> Result<Self, ConfigError> {
        let home = var("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let config_dir = pick_dir(
            &var,
            "HOMEBOY_CONFIG_DIR",
            "XDG_CONFIG_HOME",
            home.as_deref(),
            ".config",
            "config",
        )?;
        let data_dir = pick_dir(
            &var,
            "HOMEBOY_DATA_DIR",
            "XDG_DATA_HOME",
            home.as_deref(),
            ".local/share",
            "data",
        )?;
        let artifact_root = match explicit(&var, "HOMEBOY_ARTIFACT_ROOT")? {
            Some(root) => root,
            None => data_dir.join("artifacts"),
        };
        Ok(Paths {
            config_dir,
            data_dir,
            artifact_root,
            daemon_instance: None,
        })
    }

    /// Paths rooted at explicit directories (tests and embedders).
    pub fn at(config_dir: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Paths {
            config_dir: config_dir.into(),
            artifact_root: data_dir.join("artifacts"),
            data_dir,
            daemon_instance: None,
        }
    }

    /// The same directories for the daemon listening on `addr`: its state, locks, job store and log live
    /// under `daemon/<host>-<port>/` instead of `daemon/` (several daemons side by side). Everything that
    /// is not the daemon's own (declarations, observations, artifacts) stays shared.
    pub fn for_daemon_at(&self, addr: SocketAddr) -> Paths {
        Paths {
            daemon_instance: Some(daemon_instance_name(addr)),
            ..self.clone()
        }
    }

    /// The default daemon's paths (undoes [`Paths::for_daemon_at`]).
    pub fn default_daemon(&self) -> Paths {
        Paths {
            daemon_instance: None,
            ..self.clone()
        }
    }

    /// `<host>-<port>` when these paths are those of a daemon kept apart for one address.
    pub fn daemon_instance(&self) -> Option<&str> {
        self.daemon_instance.as_deref()
    }

    /// The per-address daemon directories that exist under `daemon/` (their `<host>-<port>` names, sorted):
    /// what `homeboy daemon status --all` looks at besides the default daemon.
    pub fn daemon_instances(&self) -> Vec<Paths> {
        let root = self.config_dir.join("daemon");
        let Ok(entries) = std::fs::read_dir(&root) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|name| parse_instance_name(name).is_some())
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|name| Paths {
                daemon_instance: Some(name),
                ..self.clone()
            })
            .collect()
    }

    /// The homeboy config directory.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }
    /// The homeboy data directory (logs, artifacts).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    /// The artifact root (`HOMEBOY_ARTIFACT_ROOT`, else `<data>/artifacts`).
    pub fn artifact_root(&self) -> &Path {
        &self.artifact_root
    }
    /// `servers/<id>.json` live here.
    pub fn servers_dir(&self) -> PathBuf {
        self.config_dir.join("servers")
    }
    /// `components/<id>.json` live here.
    pub fn components_dir(&self) -> PathBuf {
        self.config_dir.join("components")
    }
    /// `rigs/<id>.json` live here.
    pub fn rigs_dir(&self) -> PathBuf {
        self.config_dir.join("rigs")
    }
    /// `stacks/<id>.json` live here.
    pub fn stacks_dir(&self) -> PathBuf {
        self.config_dir.join("stacks")
    }
    /// `tunnel/services/<id>.json` live here.
    pub fn tunnel_services_dir(&self) -> PathBuf {
        self.config_dir.join("tunnel").join("services")
    }
    /// Broker pairing credentials (token digests only).
    pub fn broker_auth(&self) -> PathBuf {
        self.config_dir.join("broker_auth.json")
    }
    /// The daemon's own config directory (state file, locks, job store): `daemon/`, or
    /// `daemon/<host>-<port>/` for a daemon kept apart for its address.
    pub fn daemon_dir(&self) -> PathBuf {
        let dir = self.config_dir.join("daemon");
        match &self.daemon_instance {
            Some(instance) => dir.join(instance),
            None => dir,
        }
    }
    /// The daemon state file: pid, address, build of the running daemon.
    pub fn daemon_state(&self) -> PathBuf {
        self.daemon_dir().join("state.json")
    }
    /// The durable job store of the daemon.
    pub fn daemon_jobs(&self) -> PathBuf {
        self.daemon_dir().join("jobs.redb")
    }
    /// The observation store: runs, their artifacts' records and findings (a redb file).
    pub fn observations_store(&self) -> PathBuf {
        self.data_dir.join("observations").join("observations.redb")
    }
    /// The daemon's log directory under the data dir (per address like [`Paths::daemon_dir`]).
    pub fn daemon_log_dir(&self) -> PathBuf {
        let dir = self.data_dir.join("daemon");
        match &self.daemon_instance {
            Some(instance) => dir.join(instance),
            None => dir,
        }
    }
    /// The daemon's log file (stdout and stderr of a background daemon).
    pub fn daemon_log(&self) -> PathBuf {
        self.daemon_log_dir().join("daemon.log")
    }
}

/// `127.0.0.1:7500` → `127.0.0.1-7500`, `[::1]:7500` → `::1-7500`.
fn daemon_instance_name(addr: SocketAddr) -> String {
    format!("{}-{}", addr.ip(), addr.port())
}

/// The address a per-address directory name stands for, if it is one.
fn parse_instance_name(name: &str) -> Option<SocketAddr> {
    let (host, port) = name.rsplit_once('-')?;
    let ip: std::net::IpAddr = host.parse().ok()?;
    let port: u16 = port.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// `explicit` if set, else `<xdg>/homeboy`, else `<home>/<home_suffix>/homeboy`.
fn pick_dir(
    var: &impl Fn(&str) -> Option<OsString>,
    explicit_var: &'static str,
    xdg_var: &'static str,
    home: Option<&Path>,
    home_suffix: &str,
    what: &'static str,
) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = explicit(var, explicit_var)? {
        return Ok(dir);
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(xdg) = var(xdg_var).map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Ok(xdg.join("homeboy"));
    }
    match home {
        Some(home) => Ok(home.join(home_suffix).join("homeboy")),
        None => Err(ConfigError::NoHomeDirectory { what, explicit_var }),
    }
}

fn explicit(
    var: &impl Fn(&str) -> Option<OsString>,
    name: &'static str,
) -> Result<Option<PathBuf>, ConfigError> {
    match var(name).filter(|v| !v.is_empty()).map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => Ok(Some(dir)),
        Some(dir) => Err(ConfigError::RelativeDirectory {
            var: name,
            value: dir,
        }),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(vars: &[(&str, &str)]) -> Result<Paths, ConfigError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Paths::resolve(|name| map.get(name).cloned())
    }

    #[test]
    fn explicit_variables_win() {
        let p = resolve(&[
            ("HOME", "/home/u"),
            ("XDG_CONFIG_HOME", "/xdg/c"),
            ("HOMEBOY_CONFIG_DIR", "/hb/c"),
            ("HOMEBOY_DATA_DIR", "/hb/d"),
        ])
        .unwrap();
        assert_eq!(p.config_dir(), Path::new("/hb/c"));
        assert_eq!(p.data_dir(), Path::new("/hb/d"));
        assert_eq!(p.daemon_state(), Path::new("/hb/c/daemon/state.json"));
        assert_eq!(p.daemon_log(), Path::new("/hb/d/daemon/daemon.log"));
        assert_eq!(p.artifact_root(), Path::new("/hb/d/artifacts"));
    }

    #[test]
    fn a_daemon_per_address_keeps_its_own_directories() {
        let p = Paths::at("/c", "/d");
        let v4 = p.for_daemon_at("127.0.0.1:7500".parse().unwrap());
        assert_eq!(
            v4.daemon_state(),
            Path::new("/c/daemon/127.0.0.1-7500/state.json")
        );
        assert_eq!(
            v4.daemon_jobs(),
            Path::new("/c/daemon/127.0.0.1-7500/jobs.redb")
        );
        assert_eq!(
            v4.daemon_log(),
            Path::new("/d/daemon/127.0.0.1-7500/daemon.log")
        );
        assert_eq!(v4.servers_dir(), p.servers_dir());
        assert_eq!(v4.observations_store(), p.observations_store());
        assert_eq!(v4.default_daemon(), p);
        let v6 = p.for_daemon_at("[::1]:9".parse().unwrap());
        assert_eq!(v6.daemon_instance(), Some("::1-9"));
        assert_eq!(
            parse_instance_name("::1-9"),
            Some("[::1]:9".parse().unwrap())
        );
        assert_eq!(parse_instance_name("jobs.redb"), None);

        let dir = tempfile::tempdir().unwrap();
        let p = Paths::at(dir.path().join("c"), dir.path().join("d"));
        for name in [
            "127.0.0.1-7500",
            "127.0.0.1-7400",
            "not-an-address",
            "::1-9",
        ] {
            std::fs::create_dir_all(p.daemon_dir().join(name)).unwrap();
        }
        std::fs::write(p.daemon_dir().join("127.0.0.1-1"), "a file").unwrap();
        let found: Vec<String> = p
            .daemon_instances()
            .iter()
            .map(|i| i.daemon_instance().unwrap().to_string())
            .collect();
        assert_eq!(found, ["127.0.0.1-7400", "127.0.0.1-7500", "::1-9"]);
    }

    #[test]
    fn xdg_then_home() {
        let p = resolve(&[("HOME", "/home/u"), ("XDG_DATA_HOME", "/xdg/d")]).unwrap();
        assert_eq!(p.config_dir(), Path::new("/home/u/.config/homeboy"));
        assert_eq!(p.data_dir(), Path::new("/xdg/d/homeboy"));
        let p = resolve(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "relative")]).unwrap();
        assert_eq!(p.config_dir(), Path::new("/home/u/.config/homeboy"));
        assert_eq!(p.data_dir(), Path::new("/home/u/.local/share/homeboy"));
    }

    #[test]
    fn artifact_root_override() {
        let p = resolve(&[("HOME", "/h"), ("HOMEBOY_ARTIFACT_ROOT", "/srv/art")]).unwrap();
        assert_eq!(p.artifact_root(), Path::new("/srv/art"));
    }

    #[test]
    fn errors_are_clear() {
        let err = resolve(&[]).unwrap_err();
        assert!(err.to_string().contains("HOMEBOY_CONFIG_DIR"), "{err}");
        let err = resolve(&[("HOME", "/h"), ("HOMEBOY_DATA_DIR", "rel/dir")]).unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
    }
}
