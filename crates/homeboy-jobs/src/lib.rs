//! The durable job queue of the daemon and the broker: jobs, their leases and their event logs, on an
//! embedded store. Nothing here knows about HTTP.
