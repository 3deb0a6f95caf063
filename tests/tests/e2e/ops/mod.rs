//! What operators expect of a daily tool, through the real binaries: shell completions, several daemons
//! side by side, idle shutdown and the reaper of managed services, progress on a terminal only, the capped
//! daemon log, metrics.

mod completions;
mod daemons;
mod idle;
mod logs;
mod metrics;
mod progress;
mod reused_pids;
