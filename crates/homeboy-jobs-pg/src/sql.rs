//! The store's SQL, in one place. Every write is a single statement (one round trip, one commit) except a
//! claim, which is `BEGIN`, the `FOR UPDATE SKIP LOCKED` pick and the sweep check pipelined in one round
//! trip, then the save and `COMMIT` pipelined in a second. JSON travels as text and is cast server-side.

/// A new job and its first event, unless its submission key is taken.
/// `$1 id, $2 executor, $3 operation, $4 target, $5 project, $6 key, $7 digest, $8 record, $9 request,
/// $10 first event` → the number of jobs inserted (0 or 1).
pub(crate) const INSERT: &str = "
WITH j AS (
    INSERT INTO homeboy_jobs (id, status, executor, operation, target_runner_id, project_id,
                              submission_key, request_sha256, record, request)
    VALUES ($1, 'queued', $2, $3, $4, $5, $6, $7, $8::text::json, $9::text::json)
    ON CONFLICT (submission_key) WHERE submission_key IS NOT NULL DO NOTHING
    RETURNING id
), e AS (
    INSERT INTO homeboy_job_events (job_id, sequence, event)
    SELECT id, 1, $10::text::json FROM j
)
SELECT count(*) FROM j";

/// The job holding a submission key: `$1 key` → digest, record, request.
pub(crate) const BY_KEY: &str = "
SELECT request_sha256, record::text, request::text FROM homeboy_jobs WHERE submission_key = $1";

/// A job as last committed: `$1 id` → rev, record.
pub(crate) const LOAD: &str = "SELECT rev, record::text FROM homeboy_jobs WHERE id = $1";

/// Saves a job if it is still at the rev it was read at, with its new events and the events retention
/// dropped, in one statement: `$1 id, $2 rev read, $3 status, $4 claimed by, $5 lease expiry,
/// $6 daemon node (kept when null), $7 finished at, $8 record, $9 event sequences, $10 events, $11..$12 dropped sequences`
/// → 1 when saved, 0 when another writer moved the rev first.
pub(crate) const SAVE: &str = "
WITH u AS (
    UPDATE homeboy_jobs
       SET rev = rev + 1, status = $3, claimed_by_runner_id = $4, lease_expires_at_ms = $5,
           daemon_node = coalesce($6, daemon_node), finished_at_ms = $7, record = $8::text::json, changed_at = clock_timestamp()
     WHERE id = $1 AND rev = $2
 RETURNING id
), e AS (
    INSERT INTO homeboy_job_events (job_id, sequence, event)
    SELECT u.id, t.sequence, t.event::json
      FROM u, unnest($9::bigint[], $10::text[]) AS t(sequence, event)
), d AS (
    DELETE FROM homeboy_job_events
     WHERE job_id = (SELECT id FROM u) AND sequence >= $11::bigint AND sequence < $12::bigint
)
SELECT count(*) FROM u";

/// The oldest queued runner job `$1 runner` may take (optionally only project `$2`), locked; jobs other
/// claimers hold are skipped, not waited for. → id, rev, record, request.
pub(crate) const PICK_RUNNER_JOB: &str = "
SELECT id, rev, record::text, request::text FROM homeboy_jobs
 WHERE status = 'queued' AND executor = 'runner'
   AND (target_runner_id IS NULL OR target_runner_id = $1)
   AND ($2::text IS NULL OR project_id = $2)
 ORDER BY seq
 LIMIT 1
   FOR UPDATE SKIP LOCKED";

/// The oldest queued daemon-executed job, locked. → id, rev, record, request.
pub(crate) const PICK_DAEMON_JOB: &str = "
SELECT id, rev, record::text, request::text FROM homeboy_jobs
 WHERE status = 'queued' AND executor = 'daemon'
 ORDER BY seq
 LIMIT 1
   FOR UPDATE SKIP LOCKED";

/// The soonest lease expiry (ms), if any lease is live. Written so that even a generic plan reads one entry
/// of the lease index: `EXISTS (… WHERE lease_expires_at_ms <= $1)` was planned as a table scan.
pub(crate) const SOONEST_LEASE: &str = "
SELECT lease_expires_at_ms FROM homeboy_jobs
 WHERE lease_expires_at_ms IS NOT NULL
 ORDER BY lease_expires_at_ms
 LIMIT 1";

/// Jobs whose lease has passed at `$1` (ms), soonest first. → id.
pub(crate) const EXPIRED: &str = "
SELECT id FROM homeboy_jobs
 WHERE lease_expires_at_ms IS NOT NULL AND lease_expires_at_ms <= $1
 ORDER BY lease_expires_at_ms
 LIMIT 256";

/// Daemon-executed jobs node `$1` was running. → id.
pub(crate) const RUNNING_ON_NODE: &str = "
SELECT id FROM homeboy_jobs WHERE status = 'running' AND executor = 'daemon' AND daemon_node = $1";

pub(crate) const GET: &str = "SELECT record::text FROM homeboy_jobs WHERE id = $1";

pub(crate) const REQUEST: &str = "SELECT request::text FROM homeboy_jobs WHERE id = $1";

pub(crate) const EXISTS: &str = "SELECT 1 FROM homeboy_jobs WHERE id = $1";

/// `$1 job, $2 after, $3 limit` → events, oldest first.
pub(crate) const EVENTS: &str = "
SELECT event::text FROM homeboy_job_events
 WHERE job_id = $1 AND sequence > $2
 ORDER BY sequence
 LIMIT $3";

/// Newest first before cursor `$1`, filtered by `$2 status, $3 operation, $4 runner` (claiming or
/// targeted); `$5` rows. → seq, record.
pub(crate) const LIST: &str = "
SELECT seq, record::text FROM homeboy_jobs
 WHERE seq < $1
   AND ($2::text IS NULL OR status = $2)
   AND ($3::text IS NULL OR operation = $3)
   AND ($4::text IS NULL OR claimed_by_runner_id = $4 OR target_runner_id = $4)
 ORDER BY seq DESC
 LIMIT $5";

/// Jobs per status (metrics, the daemon's idle check) → `(status, count)` for each status that has any.
pub(crate) const COUNT_BY_STATUS: &str =
    "SELECT status, count(*) FROM homeboy_jobs GROUP BY status";

/// Deletes up to `$3` terminal jobs (and their events): those beyond the newest `$1`, or finished before
/// `$2` (ms). Jobs another pruner holds are skipped. → the deleted ids.
pub(crate) const PRUNE: &str = "
WITH cut AS (
    SELECT seq FROM homeboy_jobs
     WHERE status IN ('succeeded', 'failed', 'cancelled')
     ORDER BY seq DESC OFFSET $1 LIMIT 1
), doomed AS (
    SELECT id FROM homeboy_jobs
     WHERE status IN ('succeeded', 'failed', 'cancelled')
       AND (seq <= (SELECT seq FROM cut) OR finished_at_ms < $2)
     ORDER BY seq
     LIMIT $3
       FOR UPDATE SKIP LOCKED
), e AS (
    DELETE FROM homeboy_job_events WHERE job_id IN (SELECT id FROM doomed)
)
DELETE FROM homeboy_jobs WHERE id IN (SELECT id FROM doomed) RETURNING id";

/// The notification channel every store of a database listens on.
pub(crate) const CHANNEL: &str = "homeboy_jobs";

/// Sends hints: `$1` payloads.
pub(crate) const NOTIFY: &str = "SELECT pg_notify('homeboy_jobs', p) FROM unnest($1::text[]) AS p";

/// Jobs written after `$1` (µs since the epoch, database time), for the fallback poll.
/// → id, queued?, when (µs).
pub(crate) const CHANGED_SINCE: &str = "
SELECT id, status = 'queued', (extract(epoch FROM changed_at) * 1000000)::bigint
  FROM homeboy_jobs
 WHERE changed_at > to_timestamp(($1::bigint / 1000000.0)::double precision)
 ORDER BY changed_at
 LIMIT 10000";

/// The database's time now (µs since the epoch).
pub(crate) const NOW_US: &str = "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint";
