//! What `homeboy daemon serve` asks the daemon to watch: the managed tunnel services (reaped within a
//! second, cleaned after a reboot, and keeping an idle daemon up while they run) and the control sockets of
//! managed SSH sessions (stale ones left by a reboot removed at start). Adapters only: the work is
//! `homeboy_tunnel::service::reaper` and `homeboy_ssh`; the daemon cannot depend on them itself (same layer).

use std::sync::Arc;

use homeboy_config::Paths;
use homeboy_config::servers;
use homeboy_daemon::liveness::{Watched, Watchers};
use homeboy_ssh::Ssh;
use homeboy_tunnel::service::reaper;

/// Everything the daemon watches for a `homeboy daemon serve` of `paths`.
pub fn watchers(paths: &Paths) -> Watchers {
    Watchers(vec![
        Arc::new(ManagedServices(paths.clone())),
        Arc::new(SshSessions(paths.clone())),
    ])
}

struct ManagedServices(Paths);

impl Watched for ManagedServices {
    fn name(&self) -> &'static str {
        "managed services"
    }
    fn clean_stale(&self) -> Result<usize, String> {
        reaper::clean_after_reboot(&self.0)
            .map(|ids| ids.len())
            .map_err(|e| e.to_string())
    }
    fn reap(&self) -> Result<usize, String> {
        reaper::reap(&self.0)
            .map(|ended| ended.len())
            .map_err(|e| e.to_string())
    }
    fn busy(&self) -> bool {
        reaper::any_running(&self.0)
    }
}

struct SshSessions(Paths);

impl Watched for SshSessions {
    fn name(&self) -> &'static str {
        "ssh sessions"
    }
    fn clean_stale(&self) -> Result<usize, String> {
        let listed = servers::store(&self.0).list().map_err(|e| e.to_string())?;
        let ssh = Ssh::from_env();
        let mut cleaned = 0;
        for server in listed.into_iter().filter_map(|l| l.item.ok()) {
            if server.managed_session().is_some()
                && matches!(ssh.clean_stale_socket(&server), Ok(true))
            {
                cleaned += 1;
            }
        }
        Ok(cleaned)
    }
    fn reap(&self) -> Result<usize, String> {
        Ok(0)
    }
    fn busy(&self) -> bool {
        false
    }
}
