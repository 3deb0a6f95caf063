//! The directory layout: which directory holds what, resolved once from the environment.
//!
//! Config (declarations, daemon state, credentials) lives under `HOMEBOY_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/homeboy`, else `~/.config/homeboy`. Data (logs, artifacts, stores that are not config)
//! lives under `HOMEBOY_DATA_DIR`, else `$XDG_DATA_HOME/homeboy`, else `~/.local/share/homeboy`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::ConfigError;

/// The resolved config and data directories and every well-known path below them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    config_dir: PathBuf,
    data_dir: PathBuf,
    artifact_root: PathBuf,
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
        })
    }

    /// Paths rooted at explicit directories (tests and embedders).
    pub fn at(config_dir: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Paths {
            config_dir: config_dir.into(),
            artifact_root: data_dir.join("artifacts"),
            data_dir,
        }
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
    /// The daemon's own config directory (state file, locks, job store).
    pub fn daemon_dir(&self) -> PathBuf {
        self.config_dir.join("daemon")
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
    /// The daemon's log directory under the data dir.
    pub fn daemon_log_dir(&self) -> PathBuf {
        self.data_dir.join("daemon")
    }
    /// The daemon's log file (stdout and stderr of a background daemon).
    pub fn daemon_log(&self) -> PathBuf {
        self.daemon_log_dir().join("daemon.log")
    }
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
