//! End-to-end tests: one test binary, a module per area, real binaries on loopback.

mod broker;
mod daemon;
mod harness;
mod observations;
mod preview;
mod servers;
mod tunnel;
