//! Progress on long waits, for people at a terminal only: a spinner on stderr with what is being waited
//! for (`daemon start` until `/health` answers, `tunnel service start` until the readiness gates pass,
//! `preview-client start` until the ingress registered it, `runner work` with the job it runs). When stderr
//! is not a terminal, or the command prints `--format json`, nothing at all is drawn and lines go to stderr
//! as they always did, so scripts and logs see exactly what they saw before.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::output::Format;

/// A spinner that comes and goes, or nothing.
pub struct Progress {
    /// Whether this process draws at all (a terminal, text output).
    shown: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress {
    /// A spinner showing `message` when stderr is a terminal and `format` is text; otherwise inert.
    pub fn start(format: Format, message: impl Into<String>) -> Progress {
        let progress = Progress::idle(format);
        progress.set(message);
        progress
    }

    /// Nothing drawn yet; [`Progress::set`] draws.
    pub fn idle(format: Format) -> Progress {
        Progress {
            shown: format == Format::Text && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }

    /// Shows the spinner (again) saying `message`.
    pub fn set(&self, message: impl Into<String>) {
        if !self.shown {
            return;
        }
        let mut bar = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bar.get_or_insert_with(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        bar.set_message(message.into());
        bar.tick();
    }

    /// A line on stderr, above the spinner when there is one.
    pub fn line(&self, text: &str) {
        self.suspend(|| eprintln!("{text}"));
    }

    /// Runs `print` (output on stdout or stderr) with the spinner out of the way.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        let bar = self.bar.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Removes the spinner (a later [`Progress::set`] shows a new one).
    pub fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
