//! The logical tables of the job store and their key encodings. Every table maps bytes to bytes, so the
//! write-ahead log can carry any change generically; keys are encoded so that byte order is the order we
//! scan in (big-endian numbers). All logical tables share one redb table under a one-byte prefix (the
//! engine's business).

/// A table of the store. The discriminant is the table's id in log records: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Table {
    /// job id → job record (JSON).
    Jobs = 1,
    /// job id → the submitted request (JSON).
    Requests = 2,
    /// queue seq → queue entry: queued runner jobs, oldest first.
    Queue = 3,
    /// creation seq → status code ‖ job id: every job, for newest-first listing, status filters without
    /// loading records, recovery and pruning. (5 was a status index; codes are never reused.)
    Created = 4,
    /// job id ‖ 0x00 ‖ event sequence → event (JSON).
    Events = 6,
    /// lease expiry ms ‖ job id → (): runner claims, soonest expiry first.
    Leases = 7,
    /// submission key → {job_id, request_sha256} (JSON).
    Submissions = 8,
    /// name → u64: counters and the checkpoint lsn.
    Meta = 9,
    /// queue seq → queue entry: queued daemon-executed jobs, oldest first (apart from the runners' queue,
    /// so the daemon's executor never walks the runners' backlog).
    DaemonQueue = 10,
}

impl Table {
    pub const ALL: [Table; 9] = [
        Table::Jobs,
        Table::Requests,
        Table::Queue,
        Table::Created,
        Table::Events,
        Table::Leases,
        Table::Submissions,
        Table::Meta,
        Table::DaemonQueue,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.code() == code)
    }
}

/// Meta keys.
pub(crate) const META_CHECKPOINT_LSN: &[u8] = b"checkpoint_lsn";
/// Times the log filled and restarted (a checkpoint because it was full), since the store was created.
pub(crate) const META_LOG_WRAPS: &[u8] = b"log_wraps";

pub(crate) fn u64_key(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

pub(crate) fn read_u64(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// A `Created` value: the job's status code, then its id.
pub(crate) fn created_value(status_code: u8, job_id: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(1 + job_id.len());
    value.push(status_code);
    value.extend_from_slice(job_id.as_bytes());
    value
}

pub(crate) fn event_key(job_id: &str, sequence: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(job_id.len() + 9);
    key.extend_from_slice(job_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

pub(crate) fn lease_key(expires_at_ms: u64, job_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + job_id.len());
    key.extend_from_slice(&expires_at_ms.to_be_bytes());
    key.extend_from_slice(job_id.as_bytes());
    key
}

/// The job id of a lease key.
pub(crate) fn lease_job_id(key: &[u8]) -> String {
    String::from_utf8_lossy(key.get(8..).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_scan_order() {
        assert!(u64_key(2) < u64_key(10));
        assert!(event_key("job", 9) < event_key("job", 10));
        assert!(
            event_key("job", u64::MAX) < event_key("job2", 0),
            "a job's events stay together"
        );
        assert!(lease_key(5, "z") < lease_key(6, "a"));
        assert_eq!(lease_job_id(&lease_key(7, "abc")), "abc");
        for t in Table::ALL {
            assert_eq!(Table::from_code(t.code()), Some(t));
        }
    }
}
