//! Server logs: every server (daemon, broker, ingress) writes its log through `tracing` to stderr — text by
//! default, one JSON object per line with `--log-format json` — filtered by `HOMEBOY_LOG` (an
//! `EnvFilter` directive such as `info` or `homeboy_daemon=debug`; default `info`). Nothing logged carries
//! a secret: internal failures are logged under the error id the client got (see `homeboy_api::ApiError`).
//!
//! A background daemon logs to a file instead ([`init_file`]): the file becomes the process's stdout and
//! stderr (so a panic or a banner lands there too), and it is capped: past [`LogCap::max_bytes`] it is
//! rotated (`daemon.log` → `daemon.log.1` → … → `daemon.log.<keep>`, the oldest dropped) and a fresh file
//! takes over stdout and stderr. Why ours and not a rotating-file crate: `docs/decisions/0009-log-rotation.md`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not one of text, json")),
        }
    }
}

/// Installs the process's log subscriber (once; later calls are ignored).
pub fn init(format: LogFormat) {
    install(format, std::io::stderr);
}

fn install<W>(format: LogFormat, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_env("HOMEBOY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// How big a log file may grow and how many rotated files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCap {
    pub max_bytes: u64,
    pub keep: u32,
}

impl Default for LogCap {
    /// 8 MiB, three rotated files: at most 32 MiB of daemon log on disk.
    fn default() -> Self {
        LogCap {
            max_bytes: 8 * 1024 * 1024,
            keep: 3,
        }
    }
}

/// Installs the log subscriber writing to `path`, which also becomes this process's stdout and stderr,
/// capped and rotated as `cap` says (see the module docs).
pub fn init_file(format: LogFormat, path: &Path, cap: LogCap) -> std::io::Result<()> {
    let log = RotatingLog::open(path, cap)?;
    install(format, log);
    Ok(())
}

/// Moves `path` aside as `path.1` (and `path.1` to `path.2`, …, dropping `path.<keep>`) when it holds more
/// than `cap.max_bytes`. What `homeboy daemon start` does before it hands the file to a new daemon, and
/// what the daemon does when the file fills up.
pub fn rotate_if_full(path: &Path, cap: LogCap) -> std::io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > cap.max_bytes => {
            rotate(path, cap.keep)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// `path.<n>` of a rotated log.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    let keep = keep.max(1);
    for n in (1..keep).rev() {
        let from = rotated(path, n);
        if from.exists() {
            std::fs::rename(&from, rotated(path, n + 1))?;
        }
    }
    std::fs::rename(path, rotated(path, 1))
}

/// Opens the log for appending, `0600` like every file we write that can name jobs, paths and the detail
/// of internal errors.
fn open_append(path: &Path) -> std::io::Result<File> {
    use homeboy_config::private_file;
    if let Some(dir) = path.parent() {
        private_file::create_dir_all(dir)?;
    }
    private_file::open(private_file::options().create(true).append(true), path)
}

/// The capped log file that is this process's stdout and stderr.
struct RotatingLog {
    path: PathBuf,
    cap: LogCap,
    /// Bytes in the current file (as far as log lines go: a panic's few lines are not counted).
    written: Mutex<u64>,
}

impl RotatingLog {
    fn open(path: &Path, cap: LogCap) -> std::io::Result<RotatingLog> {
        rotate_if_full(path, cap)?;
        let file = open_append(path)?;
        let written = file.metadata()?.len();
        take_stdio(&file)?;
        Ok(RotatingLog {
            path: path.to_path_buf(),
            cap,
            written: Mutex::new(written),
        })
    }

    /// Rotates, then makes the fresh file stdout and stderr.
    fn roll(&self) -> std::io::Result<()> {
        rotate(&self.path, self.cap.keep)?;
        take_stdio(&open_append(&self.path)?)
    }
}

/// Points this process's stdout and stderr at `file`.
fn take_stdio(file: &File) -> std::io::Result<()> {
    rustix::stdio::dup2_stdout(file)?;
    rustix::stdio::dup2_stderr(file)?;
    Ok(())
}

/// One log line's hold on the file: the line is written whole, after a rotation if it would not fit.
pub struct LogLine<'a> {
    log: &'a RotatingLog,
    written: MutexGuard<'a, u64>,
}

impl Write for LogLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let len = buf.len() as u64;
        if *self.written > 0 && *self.written + len > self.log.cap.max_bytes {
            // A failed rotation keeps writing to the full file rather than losing lines.
            if self.log.roll().is_ok() {
                *self.written = 0;
            }
        }
        std::io::stderr().write_all(buf)?;
        *self.written += len;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for RotatingLog {
    type Writer = LogLine<'a>;

    fn make_writer(&'a self) -> LogLine<'a> {
        LogLine {
            log: self,
            written: self.written.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("yaml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn rotation_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/daemon.log");
        let cap = LogCap {
            max_bytes: 10,
            keep: 2,
        };
        assert!(!rotate_if_full(&path, cap).unwrap(), "no file yet");
        for round in 0..4 {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("round {round} is longer than ten bytes")).unwrap();
            assert!(rotate_if_full(&path, cap).unwrap());
            assert!(!path.exists());
        }
        let read = |n| std::fs::read_to_string(rotated(&path, n)).unwrap();
        assert!(read(1).starts_with("round 3"));
        assert!(read(2).starts_with("round 2"));
        assert!(!rotated(&path, 3).exists(), "only `keep` rotated files");
        std::fs::write(&path, "short").unwrap();
        assert!(!rotate_if_full(&path, cap).unwrap());
    }
}
