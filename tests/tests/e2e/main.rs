//! End-to-end tests: one test binary, a module per area, real binaries on loopback.

mod daemon;
mod preview;
