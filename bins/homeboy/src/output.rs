//! Output conventions shared by every subcommand: `--format text|json`, one readable error line, exit codes.

use std::process::ExitCode;

use clap::ValueEnum;
use serde::Serialize;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable text for people.
    #[default]
    Text,
    /// JSON for machines.
    Json,
}

/// An error that should exit with a specific code (2 for refused input).
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Refused input: exit code 2 with one line.
pub fn usage_error(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: crate::EXIT_USAGE,
        message: message.into(),
    }
    .into()
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Maps a command result to the process exit code, printing the error chain on one line.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    let Err(error) = result else {
        return ExitCode::SUCCESS;
    };
    if let Some(exit) = error.downcast_ref::<Exit>() {
        eprintln!("homeboy: {}", exit.message);
        return ExitCode::from(exit.code);
    }
    // A closed stdout (`homeboy ... | head`) is not an error worth a message.
    if error
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    {
        return ExitCode::SUCCESS;
    }
    let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
    eprintln!("homeboy: {}", chain.join(": "));
    ExitCode::FAILURE
}
