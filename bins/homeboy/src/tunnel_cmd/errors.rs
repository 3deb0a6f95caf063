//! How a tunnel error leaves the process: one readable line, exit code 2 for refused input and 1 for
//! everything else.

use homeboy_tunnel::TunnelError;

use crate::output::Exit;

/// Turns a library error into the process exit (see the module docs).
pub fn exit(error: TunnelError) -> anyhow::Error {
    let code = if error.is_refused_input() {
        crate::EXIT_USAGE
    } else {
        1
    };
    Exit {
        code,
        message: error.to_string(),
    }
    .into()
}

/// A failure (exit code 1) with one line.
pub fn failure(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: 1,
        message: message.into(),
    }
    .into()
}
