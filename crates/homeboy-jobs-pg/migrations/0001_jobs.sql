-- homeboy job store, schema version 1: jobs and their events.
--
-- A job's full state is `record` (the wire job plus bookkeeping, as JSON); the other columns are derived
-- from it by the store on every write, so the queries below can use indexes. `rev` moves on every write:
-- an update names the rev it read, so two writers can never both apply a change to the same version.
--
-- Every write changes an indexed column, so every index gains an entry per write: indexes are few, and
-- partial where only some rows need one (listing by status scans `seq` backwards with a filter, as the
-- embedded store does).

CREATE TABLE homeboy_jobs (
    id                   text PRIMARY KEY,
    -- Creation order: listing, queue position, list cursors.
    seq                  bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    rev                  bigint NOT NULL DEFAULT 1,
    status               text NOT NULL
                         CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    executor             text NOT NULL CHECK (executor IN ('daemon', 'runner')),
    operation            text NOT NULL,
    target_runner_id     text,
    project_id           text,
    claimed_by_runner_id text,
    -- Set while a runner holds a live lease (the sweeper's index).
    lease_expires_at_ms  bigint,
    -- The daemon running a daemon-executed job.
    daemon_node          text,
    submission_key       text,
    request_sha256       text,
    -- Terminal jobs: when they finished (pruning by age).
    finished_at_ms       bigint,
    -- Database time of the last write: the notification fallback polls by it.
    changed_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    record               json NOT NULL,
    request              json NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- The queues, oldest first: claims read the head with FOR UPDATE SKIP LOCKED.
CREATE INDEX homeboy_jobs_runner_queue ON homeboy_jobs (seq)
    WHERE status = 'queued' AND executor = 'runner';
CREATE INDEX homeboy_jobs_daemon_queue ON homeboy_jobs (seq)
    WHERE status = 'queued' AND executor = 'daemon';
CREATE INDEX homeboy_jobs_leases ON homeboy_jobs (lease_expires_at_ms)
    WHERE lease_expires_at_ms IS NOT NULL;
CREATE UNIQUE INDEX homeboy_jobs_submission_key ON homeboy_jobs (submission_key)
    WHERE submission_key IS NOT NULL;
CREATE INDEX homeboy_jobs_terminal ON homeboy_jobs (seq)
    WHERE status IN ('succeeded', 'failed', 'cancelled');
CREATE INDEX homeboy_jobs_changed ON homeboy_jobs (changed_at);

-- Each job's event log: sequences start at 1 and are gap-free; retention deletes the oldest.
CREATE TABLE homeboy_job_events (
    job_id   text NOT NULL,
    sequence bigint NOT NULL,
    event    json NOT NULL,
    PRIMARY KEY (job_id, sequence)
);
