//! The `homeboy` executable: the allocator and a call into the library (`homeboy::main`), where the command
//! line and its wiring live.

use std::process::ExitCode;

/// mimalloc: the daemon allocates small, short-lived buffers per request, where it is markedly cheaper than
/// the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    homeboy::main()
}
