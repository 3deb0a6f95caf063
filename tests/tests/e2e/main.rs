//! End-to-end tests: one test binary, a module per area, real binaries on loopback.

mod broker;
mod contract;
mod daemon;
mod dashboard;
mod harness;
mod hostile;
mod ingress_locality;
mod masking;
mod multi_broker;
mod observations;
mod ops;
mod preview;
mod servers;
mod sse_resume;
mod tunnel;
