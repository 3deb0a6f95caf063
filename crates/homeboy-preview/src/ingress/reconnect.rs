//! Requests for a preview client that is coming back. A client whose channel broke (the network, a
//! restart of the ingress) reconnects with backoff and registers again; a public request that arrives
//! meanwhile waits for it instead of failing at once. While the session is known, its channel does the
//! waiting ([`crate::channel::mux`]); after an ingress restart no session is known yet, and this module
//! waits for the client's registration, until the grace period after the start has passed.

use std::sync::Arc;

use super::Ingress;
use crate::channel::ChannelSession;

impl Ingress {
    /// The open session of `session_id` on `host`; right after a start, waits for it to register (up to
    /// `client_grace` after the start).
    pub(super) async fn await_session(
        &self,
        host: &str,
        session_id: &str,
    ) -> Option<Arc<ChannelSession>> {
        let until = self.started + self.options.client_grace;
        loop {
            let registered = self.registered.notified();
            tokio::pin!(registered);
            registered.as_mut().enable();
            let session = self
                .session(host)
                .filter(|s| s.session_id == session_id && !s.is_closed());
            if session.is_some() || tokio::time::Instant::now() >= until {
                return session;
            }
            let _ = tokio::time::timeout_at(until, registered).await;
        }
    }

    /// Wakes requests waiting in [`Ingress::await_session`] (a session was registered).
    pub(super) fn session_registered(&self) {
        self.registered.notify_waiters();
    }
}
