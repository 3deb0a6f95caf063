//! The `homeboy-ingress` executable: the allocator and a call into the library (`homeboy_ingress::main`).

use std::process::ExitCode;

/// mimalloc: the ingress allocates small, short-lived buffers per proxied request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    homeboy_ingress::main()
}
